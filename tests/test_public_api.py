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
