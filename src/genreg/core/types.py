"""Domain objects returned by the service layer (never SQL rows)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class VersionInfo:
    kind: str
    name: str
    version: int
    digest: str
    object_digest: str
    created_at: str
    author: str
    message: str
    tags: dict[str, Any] = field(default_factory=dict)
    parent: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """The full form (CLI ``--json``, bundles): every field plus ``ref``."""
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        d["ref"] = self.ref
        return d

    def public_dict(self, *, aliases: bool = True) -> dict[str, Any]:
        """The HTTP API's form: :meth:`to_dict` without the storage-internal
        ``object_digest``; ``aliases=False`` also drops the (mutable) alias list, for bodies
        served as immutable."""
        d = self.to_dict()
        del d["object_digest"]
        if not aliases:
            del d["aliases"]
        return d


@dataclass(frozen=True)
class ArtifactInfo:
    kind: str
    name: str
    created_at: str
    latest: int | None
    versions: int
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AliasEvent:
    kind: str
    name: str
    alias: str
    action: str  # set | move | delete (journaled) | unchanged (already there: not journaled)
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    run_id: str | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RegisterResult:
    version: VersionInfo
    created: bool  # False: identical content already registered, nothing new

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "status": "created" if self.created else "unchanged",
            **self.version.to_dict(),
        }

    def public_dict(self) -> dict[str, Any]:
        """The HTTP API's form (see :meth:`VersionInfo.public_dict`)."""
        return {
            "created": self.created,
            "status": "created" if self.created else "unchanged",
            **self.version.public_dict(),
        }
