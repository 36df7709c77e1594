"""What the metadata stores share: the derived-row and object-reference records, and the
"not found" / "ambiguous" messages of ``store/repo.py``, written once
(:func:`artifact_not_found` ...). Imports neither SQLAlchemy nor ``sqlite3``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genreg.core.refs import Ref
from genreg.errors import AmbiguousRef, NotFound


@dataclass(frozen=True)
class Derived:
    """A derived object (pack, embedding-cache shard, FAISS index): ``key`` is a digest of
    everything it depends on, so it is built once and reused; ``scope`` groups rows."""

    kind: str
    scope: str
    key: str
    object_digest: str
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""


@dataclass(frozen=True)
class ObjectRef:
    """One object a row names (for ``verify`` and ``gc``)."""

    digest: str  # bare sha256 hex
    owner: str  # who references it, e.g. "prompt:qa@v3"
    kind: str  # version | layout | derived | derived-index | run
    artifact_kind: str = ""  # for versions: prompt | evalset | corpus | routing
    content_digest: str = ""  # for versions: the version's "sha256:..." digest
    meta: object = None  # for derived rows: their meta map (may name further objects)


# ---- the messages every metadata reader raises ------------------------------------------
def artifact_not_found(kind: str, name: str) -> NotFound:
    return NotFound(f"{kind}:{name} not found")


def version_not_found(kind: str, name: str, version: int) -> NotFound:
    return NotFound(f"{kind}:{name}@v{version} not found")


def digest_not_found(ref: Ref) -> NotFound:
    return NotFound(f"{ref.artifact}@sha256:{ref.digest_prefix} matches no version")


def digest_ambiguous(ref: Ref, a: int, b: int) -> AmbiguousRef:
    return AmbiguousRef(
        f"{ref.artifact}@sha256:{ref.digest_prefix} is ambiguous: matches v{a} and v{b}; "
        "give more digits"
    )


def alias_not_found(kind: str, name: str, alias: str) -> NotFound:
    return NotFound(f"{kind}:{name} has no alias {alias!r}")


def no_versions(ref: Ref) -> NotFound:
    return NotFound(f"{ref.artifact} has no versions")
