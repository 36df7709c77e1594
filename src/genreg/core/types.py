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
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        d["ref"] = self.ref
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
