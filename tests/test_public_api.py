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
