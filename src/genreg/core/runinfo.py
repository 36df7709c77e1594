"""Domain objects of recorded eval runs (returned by the service; never SQL rows)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunInput:
    role: str  # prompt | evalset | corpus | routing
    kind: str
    name: str
    version: int
    digest: str
    split: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}@v{self.version}" + (f"#{self.split}" if self.split else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ref": self.ref}


@dataclass
class RunInfo:
    id: str
    name: str
    source: str  # eval | score
    status: str
    passed: bool | None
    fingerprint: str
    started_at: str
    ended_at: str | None
    author: str
    config: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    results_object: str | None = None
    inputs: list[RunInput] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [i.to_dict() for i in self.inputs]
        return d

    def input(self, role: str) -> RunInput | None:
        return next((i for i in self.inputs if i.role == role), None)
