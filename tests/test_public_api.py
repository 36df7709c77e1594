"""Pins the public surface of the package."""

from __future__ import annotations

import genreg


def test_public_names_are_pinned() -> None:
    assert set(genreg.__all__) >= {
        "Registry",
        "GenregError",
        "NotFound",
        "AmbiguousRef",
        "InvalidArtifact",
        "IntegrityError",
        "parse_ref",
        "Ref",
        "__version__",
    }
    for name in genreg.__all__:
        assert getattr(genreg, name) is not None


PUBLIC = [
    "AlreadyExists",
    "AmbiguousRef",
    "Client",
    "ConfigError",
    "GenregError",
    "IntegrityError",
    "InvalidArtifact",
    "InvalidRef",
    "NotFound",
    "Ref",
    "Registry",
    "RenderError",
    "__version__",
    "parse_ref",
]


def test_public_names_are_exactly_these() -> None:
    assert sorted(PUBLIC) == PUBLIC
    assert genreg.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(genreg, name) is not None, name


def test_registry_offers_every_cli_operation() -> None:
    from genreg import Registry

    for op in [
        "register",
        "push",
        "list",
        "show",
        "history",
        "diff",
        "resolve",
        "render",
        "set_alias",
        "remove_alias",
        "alias_history",
        "export",
        "import_bundle",
        "explain_route",
        "init",
    ]:
        assert callable(getattr(Registry, op)), op


def test_registry_delegates_every_component_method_with_its_signature() -> None:
    """The facade stays flat and complete: each public method of a service component is on
    ``Registry`` with the same signature (a method added to a component needs its delegate)."""
    import inspect

    from genreg.service import COMPONENTS, Registry

    owners: dict[str, list[type]] = {}
    for cls in COMPONENTS.values():
        for name, _fn in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_"):
                owners.setdefault(name, []).append(cls)
    missing = sorted(n for n in owners if not callable(getattr(Registry, n, None)))
    assert not missing, missing
    for name, classes in owners.items():

        def sig(obj: object) -> str:  # the facade spells list as builtins.list (Registry.list)
            return str(inspect.signature(obj)).replace("builtins.", "")

        assert any(sig(getattr(Registry, name)) == sig(getattr(c, name)) for c in classes), name


def test_components_take_their_dependencies_in_the_constructor() -> None:
    import inspect

    from genreg.service import COMPONENTS

    deps = {
        name: list(inspect.signature(cls.__init__).parameters)[1:]
        for name, cls in COMPONENTS.items()
    }
    assert deps == {
        "_artifacts": ["store"],
        "_tokens": ["store"],
        "_corpora": ["store", "artifacts"],
        "_indexes": ["store", "artifacts", "corpora"],
        "_evals": ["store", "artifacts", "corpora", "indexes"],
        "_admin": ["store"],
    }
