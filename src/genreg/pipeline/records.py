"""What flows through the eval pipeline: the request, the per-query records, the run state
each stage reads and extends, and the :class:`RunDraft` the record stage stores.

The per-query record is the unit every stage works on: ``resolve`` creates one per eval-set
query (id, text, judgments, tags, the row as given); ``retrieve`` (or ``read run file``) sets
the ranked ``hits`` and ``latency``; ``generate`` sets ``answer`` and ``usage``; ``judge`` sets
``verdicts``; ``score`` sets ``metrics``. Stage-specific per-query values that are stored with
the results (route, model, cost, tokens, ...) go into ``extra``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genreg.core.evalconfig import EvalConfig
    from genreg.core.gates import Gate, GateResult
    from genreg.core.lineage import Lineage
    from genreg.core.metrics import EvalResult
    from genreg.core.prompt import Prompt
    from genreg.core.refs import Ref
    from genreg.core.routing import Routing
    from genreg.core.runinfo import RunInfo, RunInput, RunOutcome

# (stage, done, total) -- the CLI draws one bar per stage from it.
Progress = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class Hit:
    """One ranked document for a query: its id, score and (when a later stage needs it) text."""

    doc_id: str
    score: float
    text: str | None = None


@dataclass
class QueryRecord:
    id: str
    query: str
    relevant: dict[str, float]  # judgments {doc_id: relevance}
    tags: list[str] | None = None
    row: Mapping[str, Any] = field(default_factory=dict)  # the eval-set row as given
    hits: list[Hit] = field(default_factory=list)  # best first
    latency: float | None = None  # seconds (retrieve); None when not measured (run files)
    answer: str | None = None  # generate
    usage: dict[str, Any] | None = None  # generate: tokens, cost, ...
    verdicts: dict[str, Any] | None = None  # judge
    metrics: dict[str, float] = field(default_factory=dict)  # score
    extra: dict[str, Any] = field(default_factory=dict)  # stored with the results as is

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> QueryRecord:
        rel = row["relevant"]
        relevant = {d: 1 for d in rel} if isinstance(rel, list) else dict(rel)
        return cls(row["id"], row["query"], relevant, row.get("tags"), row)

    def scores(self) -> dict[str, float]:
        """``{doc_id: score}`` (what the metrics rank, trec_eval-style)."""
        return {h.doc_id: h.score for h in self.hits}

    def result(self) -> dict[str, Any]:
        """The stored per-query results entry (``genreg-run-results/1``)."""
        out: dict[str, Any] = {
            "id": self.id,
            "query": self.query,
            "ranked": [[h.doc_id, h.score] for h in self.hits],
        }
        if self.latency is not None:
            out["latency"] = self.latency
        for key in ("answer", "usage", "verdicts"):
            v = getattr(self, key)
            if v is not None:
                out[key] = v
        out.update(self.extra)
        out["metrics"] = dict(self.metrics)
        return out


@dataclass(frozen=True)
class RunRequest:
    """What was asked for: everything known before anything is resolved (cheap to build)."""

    source: str  # eval | score
    name: str  # the eval's name
    metrics: list[str]
    evalset: Ref
    config: dict[str, Any]  # the effective config, recorded on the run
    eval_config: EvalConfig | None = None  # eval runs
    run_file: Path | None = None  # eval score
    gates: list[Gate] = field(default_factory=list)
    baseline: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class RunState:
    """The run as the stages build it. Each field names the stage that sets it."""

    request: RunRequest
    started_at: str
    inputs: list[RunInput] = field(default_factory=list)  # resolve
    records: list[QueryRecord] = field(default_factory=list)  # resolve; later stages fill
    query_ids: frozenset[str] = frozenset()  # resolve: every id of the eval set (all splits)
    prompt: Prompt | None = None  # resolve (when the config names one)
    routing: Routing | None = None  # resolve
    baseline: RunInfo | None = None  # resolve
    lineage: dict[str, Any] = field(default_factory=dict)  # Lineage fields, each stage its own
    report: dict[str, Any] = field(default_factory=dict)  # report sections, each stage its own
    need_text: bool = False  # set in prepare by a stage that reads hit texts (cost, generate)
    metric_names: list[str] = field(default_factory=list)  # what score computes, in order
    stage_metrics: set[str] = field(default_factory=set)  # metrics a stage computes per query
    # set in prepare by a stage that renders per-query templates after an expensive stage
    # (judge): checks over the retrieved records the generate stage runs before its first call
    prechecks: list[Callable[[RunState], None]] = field(default_factory=list)
    # retrieve, for a non-exact (ANN) index: per query id, the documents an exhaustive search
    # of the same vectors ranks first (score turns them into ann_recall@k)
    exact_hits: dict[str, list[str]] = field(default_factory=dict)
    scores: EvalResult | None = None  # score
    gate_results: list[GateResult] = field(default_factory=list)  # score
    outcome: RunOutcome | None = None  # record

    def __post_init__(self) -> None:
        if not self.metric_names:
            self.metric_names = list(self.request.metrics)

    @property
    def config(self) -> EvalConfig | None:
        return self.request.eval_config

    def input_ref(self, role: str) -> str:
        """The exact ref (``kind:name@vN``) resolve pinned for ``role``."""
        i = next((i for i in self.inputs if i.role == role), None)
        if i is None:
            raise KeyError(f"no {role} input resolved")
        return i.ref

    def sample(self) -> QueryRecord:
        """The record cheap checks render templates with (the first query)."""
        if not self.records:
            from genreg.errors import ConfigError

            raise ConfigError(f"{self.request.evalset}: the eval set selects no queries")
        return self.records[0]


@dataclass(frozen=True)
class RunDraft:
    """A finished run before it is stored: what the record stage turns into a RunInfo."""

    name: str
    source: str
    config: dict[str, Any]
    inputs: list[RunInput]
    lineage: Lineage  # without start/end times; the record stage sets them
    metrics: dict[str, float]  # means
    per_query_metrics: dict[str, dict[str, float]]
    metric_names: list[str]
    results: list[dict[str, Any]]  # per-query results entries, sorted by query id
    report: dict[str, Any]
    gate_results: list[GateResult]
    baseline: RunInfo | None
    started_at: str
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
