"""genreg: a registry for prompt templates, gold eval sets, RAG corpus snapshots and routing
configs, with retrieval evals whose every score names the exact versions behind it.

Public surface (pinned by ``tests/test_public_api.py``)::

    from genreg import Registry, parse_ref, GenregError
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genreg.core.refs import Ref, parse_ref
from genreg.errors import (
    AlreadyExists,
    AmbiguousRef,
    ConfigError,
    GenregError,
    IntegrityError,
    InvalidArtifact,
    InvalidRef,
    NotFound,
    RenderError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from genreg.client import Client
    from genreg.service import Registry

__all__ = [
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


def __getattr__(name: str) -> Any:
    # Lazy: ``import genreg`` stays light (no SQLAlchemy) until a Registry is needed.
    if name == "Registry":
        from genreg.service import Registry

        return Registry
    if name == "Client":
        from genreg.client import Client

        return Client
    raise AttributeError(f"module 'genreg' has no attribute {name!r}")
