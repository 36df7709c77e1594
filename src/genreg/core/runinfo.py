"""Domain objects of recorded eval runs (returned by the service; never SQL rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genreg.core.gates import GateResult
from genreg.core.lineage import InputPin, Lineage

# A run's lineage edge: the exact version it used under a role (the same pin the lineage holds).
RunInput = InputPin


@dataclass
class RunInfo:
    id: str
    name: str  # the eval's name
    source: str  # eval | score
    status: str
    passed: bool | None
    fingerprint: str
    started_at: str
    ended_at: str | None
    author: str
    config: dict[str, Any] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=lambda: Lineage("eval"))
    metrics: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    results_object: str | None = None
    inputs: list[RunInput] = field(default_factory=list)
    run_name: str | None = None  # --run-name: this run's own label (the eval name is ``name``)
    tags: dict[str, str] = field(default_factory=dict)  # --tag k=v
    params: dict[str, str] = field(default_factory=dict)  # --set overrides, as given

    def input(self, role: str) -> RunInput | None:
        return next((i for i in self.inputs if i.role == role), None)

    @property
    def label(self) -> str:
        """What to call the run in one line: its run name, else the eval's name."""
        return self.run_name or self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "run_name": self.run_name,
            "source": self.source,
            "status": self.status,
            "passed": self.passed,
            "fingerprint": self.fingerprint,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "author": self.author,
            "tags": dict(self.tags),
            "params": dict(self.params),
            "config": self.config,
            "lineage": self.lineage.to_dict(),
            "metrics": dict(self.metrics),
            "report": self.report,
            "results_object": self.results_object,
            "inputs": [i.to_dict() for i in self.inputs],
        }


@dataclass
class RunOutcome:
    """A recorded run with its gate results, repeat detection and baseline comparison."""

    run: RunInfo
    gates: list[GateResult] = field(default_factory=list)
    identical_to: str | None = None
    baseline: str | None = None

    @property
    def passed(self) -> bool | None:
        return self.run.passed

    @property
    def baseline_deltas(self) -> dict[str, Any]:
        """Per metric vs the baseline run: value, baseline, delta, CI, p-value (or {})."""
        return dict(self.run.report.get("baseline_deltas") or {})

    @classmethod
    def from_run(cls, run: RunInfo) -> RunOutcome:
        """The outcome as recorded (``runs show``): gates and baseline from the run's report."""
        gates = [GateResult(**g) for g in run.report.get("gates") or []]
        return cls(run, gates, run.report.get("identical_to"), run.report.get("baseline"))

    def to_dict(self) -> dict[str, Any]:
        r = self.run
        return {
            "run_id": r.id,
            "name": r.name,
            "run_name": r.run_name,
            "source": r.source,
            "fingerprint": r.fingerprint,
            "identical_to": self.identical_to,
            "metrics": r.metrics,
            "passed": r.passed,
            "gates": [g.to_dict() for g in self.gates],
            "baseline": self.baseline,
            "baseline_deltas": self.baseline_deltas,
            "tags": dict(r.tags),
            "params": dict(r.params),
            "lineage": r.lineage.to_dict(),
            "report": r.report,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
        }
