"""Eval configs: a YAML file naming refs and parameters of one retrieval evaluation.

Schema: ``core/schemas/evalconfig.schema.json`` (published; ``genreg eval schema`` prints it).
Every error is a :class:`ConfigError` (exit code 2) naming ``file:line: field``.

Overrides (``--set key=value``) are applied before validation; ``key`` is a dotted path
(``embedding.model``, ``cost.context_k``) and ``value`` is parsed as a YAML scalar or flow
value (``k=[1,5,10]``, ``index={type: hnsw, m: 32}``, ``corpus=corpus:docs@v4``).

Semantics: ``max(k)`` documents are retrieved per query (after collapsing chunks to their
documents); a metric cutoff above ``max(k)`` is a config error, and metrics without a cutoff
(``map``, ``r-precision``) see the ``max(k)`` retrieved documents. When ``k`` is omitted it
is the largest metric cutoff (10 if none).

``embedding``: ``model`` plus ``backend`` (torch | onnx | openvino), ``quantize`` (none | int8:
onnx or openvino), ``precision`` (f32 | bf16: openvino), ``device`` (auto | cpu | cuda;
openvino: auto | cpu) -- the combinations of :mod:`genreg.core.embedding` --, ``engine``
(local | ray: what embeds chunks missing from the cache) and ``ray`` (actors, num_cpus, num_gpus, address). :attr:`EvalConfig.embedding`
is the model part as a mapping for the indexing service.

``latency``: ``per-query`` (default: each query embedded and searched alone and timed alone)
or ``per-batch`` (``batch_size`` queries at a time, each given the batch's mean time).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genreg.core.embedding import DEFAULTS, combination_error
from genreg.core.gates import Gate, parse_gates
from genreg.core.refs import Ref, parse_ref
from genreg.core.validation import load_schema, parse_structured, schema_errors
from genreg.errors import ConfigError, GenregError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_BATCH = 32
_CUTOFF_RE = re.compile(r"@(\d+)$")


@dataclass(frozen=True)
class JudgeSpec:
    """One judge metric of ``judge:`` with the section-wide defaults applied."""

    metric: str  # faithfulness | answer_relevance
    prompt: Ref
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    n_questions: int = 3  # answer_relevance
    embedding: str | None = None  # answer_relevance (None: the eval's embedding model)


@dataclass
class EvalConfig:
    name: str
    evalset: Ref
    corpus: Ref
    metrics: list[str]
    k: list[int]
    model: str = DEFAULT_MODEL
    chunking: Any = "none"
    index: Any = "flat"
    prompt: Ref | None = None
    routing: Ref | None = None
    batch_size: int = DEFAULT_BATCH
    latency: str = "per-query"  # how per-query latency is measured (genreg.core.latency)
    backend: str = "torch"  # embedding backend: torch | onnx | openvino
    quantize: str = "none"  # none | int8 (onnx, openvino)
    precision: str = "f32"  # f32 | bf16 (openvino)
    device: str = "auto"  # auto | cpu | cuda
    engine: str = "local"  # local | ray: what embeds chunks missing from the cache
    ray: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    generate: dict[str, Any] | None = None  # genreg.generation.stage
    answer_metrics: list[str] = field(default_factory=list)
    judge: dict[str, Any] | None = None  # the raw judge: section (genreg.generation.judge)
    judges: list[JudgeSpec] = field(default_factory=list)  # judge:, one per metric
    gates: list[Gate] = field(default_factory=list)
    baseline: str | None = None
    source: str = "<config>"
    raw: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # top-level key -> line in source

    @property
    def embedding(self) -> str | dict[str, Any]:
        """The model argument of the indexing service: the name, or a spec mapping."""
        if (self.backend, self.quantize, self.precision, self.device) == (
            "torch",
            "none",
            "f32",
            "auto",
        ):
            return self.model
        return {
            "model": self.model,
            "backend": self.backend,
            "quantize": self.quantize,
            "precision": self.precision,
            "device": self.device,
        }

    @property
    def depth(self) -> int:
        return max(self.k)

    def where(self, fieldname: str) -> str:
        """``file:line`` of a top-level field (``file`` when the line is unknown)."""
        top = fieldname.split(".")[0]
        return f"{self.source}:{self.lines[top]}" if top in self.lines else self.source

    def to_dict(self) -> dict[str, Any]:
        """The effective config (after overrides), as recorded on the run."""
        return copy.deepcopy(self.raw)


def parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted keys) to a copy of ``data``."""
    out = copy.deepcopy(data)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. corpus=corpus:docs@v4)")
        parts = key.split(".")
        cur = out
        for p in parts[:-1]:
            nxt = cur.get(p)
            if nxt is None or isinstance(nxt, str):
                nxt = {}
                cur[p] = nxt
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: {p} is not a mapping")
            cur = nxt
        cur[parts[-1]] = parse_value(value)
    return out


def _lines(path: Path | None, text: str | None) -> dict[str, int]:
    """Line numbers of the top-level keys (best effort, for error messages)."""
    if path is None or text is None:
        return {}
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}


def load_config(path: str | Path, overrides: list[str] | None = None) -> EvalConfig:
    from genreg.core.validation import read_text

    p = Path(path)
    try:
        text = read_text(p, "config")
    except GenregError as exc:
        if "file not found" in exc.message:
            raise ConfigError(f"{p}: eval config not found") from None
        raise ConfigError(exc.message) from None
    try:
        data = parse_structured(p, text)
    except GenregError as exc:
        raise ConfigError(exc.message) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: an eval config must be a mapping (name, evalset, corpus, ...)")
    return parse_config(data, overrides, source=str(p), lines=_lines(p, text))


def parse_config(
    data: dict[str, Any],
    overrides: list[str] | None = None,
    *,
    source: str = "<config>",
    lines: dict[str, int] | None = None,
) -> EvalConfig:
    data = apply_overrides(data, overrides)
    lines = lines or {}

    def where(fieldname: str) -> str:
        top = fieldname.split(".")[0]
        return f"{source}:{lines[top]}" if top in lines else source

    errors = schema_errors("evalconfig", data)
    if errors:
        fld = errors[0].split(":")[0]
        raise ConfigError(f"{where(fld)}: {errors[0]}", details={"errors": errors})

    def ref(fieldname: str, kind: str) -> Ref | None:
        v = data.get(fieldname)
        if v is None:
            return None
        try:
            return parse_ref(v, kind=kind)
        except GenregError as exc:
            raise ConfigError(f"{where(fieldname)}: {fieldname}: {exc.message}") from None

    metrics = [m.strip() for m in data["metrics"]]
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"{where('metrics')}: metrics: duplicate metric names")
    _check_metrics(metrics, where("metrics"))
    cutoffs = [int(m.group(1)) for m in map(_CUTOFF_RE.search, metrics) if m]
    k = sorted(set(data.get("k") or [max(cutoffs, default=10)]))
    over = [m for m in metrics if (c := _CUTOFF_RE.search(m)) and int(c.group(1)) > max(k)]
    if over:
        raise ConfigError(
            f"{where('metrics')}: metrics: {', '.join(over)} cut off deeper than max(k)={max(k)}; "
            "add a larger k"
        )
    emb = data.get("embedding") or {}
    for fld in ("chunking", "index"):
        v = data.get(fld)
        if isinstance(v, str) and not v.strip():
            raise ConfigError(f"{where(fld)}: {fld}: must not be empty")
    gates = parse_gates(data.get("gates"), f"{where('gates')}: gates")
    bad = combination_error(**{f: emb.get(f) or DEFAULTS[f] for f in DEFAULTS})
    if bad:
        raise ConfigError(f"{where('embedding')}: embedding.{bad}")
    return EvalConfig(
        name=data["name"],
        evalset=ref("evalset", "evalset"),  # type: ignore[arg-type]  # required: schema-checked above
        corpus=ref("corpus", "corpus"),  # type: ignore[arg-type]  # required: schema-checked above
        metrics=metrics,
        k=k,
        model=emb.get("model") or DEFAULT_MODEL,
        chunking=data.get("chunking", "none"),
        index=data.get("index", "flat"),
        prompt=ref("prompt", "prompt"),
        routing=ref("routing", "routing"),
        batch_size=int(data.get("batch_size") or emb.get("batch_size") or DEFAULT_BATCH),
        latency=data.get("latency") or "per-query",
        backend=emb.get("backend") or "torch",
        quantize=emb.get("quantize") or "none",
        precision=emb.get("precision") or "f32",
        device=emb.get("device") or "auto",
        engine=emb.get("engine") or "local",
        ray=dict(emb.get("ray") or {}),
        cost=dict(data.get("cost") or {}),
        generate=_generate(data, where),
        answer_metrics=_answer_metrics(data, where),
        judge=dict(data["judge"]) if data.get("judge") else None,
        judges=_judges(data, where),
        gates=gates,
        baseline=data.get("baseline"),
        source=source,
        raw=data,
        lines=dict(lines),
    )


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def check_name(name: str, where: str) -> None:
    """An eval name as the schema allows it (lowercase letters, digits, ``._-``)."""
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"{where}: eval name {name!r} must match {_NAME_RE.pattern} (e.g. cranfield-baseline)"
        )


def check_metrics(metrics: list[str], where: str) -> None:
    """Metric names: known to the metrics registry, none listed twice."""
    if not metrics:
        raise ConfigError(f"{where}: no metrics given")
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"{where}: duplicate metric names")
    _check_metrics(metrics, where)


def _check_metrics(metrics: list[str], where: str) -> None:
    """Every name must be known to the metrics registry."""
    from genreg.core.metrics import parse_metric

    for i, m in enumerate(metrics):
        try:
            parse_metric(m)
        except GenregError as exc:
            raise ConfigError(f"{where}: metrics.{i}: {exc.message}") from None
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{where}: metrics.{i}: unknown metric {m!r} ({exc})") from None


def _generate(data: dict[str, Any], where: Any) -> dict[str, Any] | None:
    gen = data.get("generate")
    if gen is None:
        if data.get("answer_metrics") or data.get("judge"):
            raise ConfigError(
                f"{where('answer_metrics')}: answer_metrics/judge need a generate: section"
            )
        return None
    if not data.get("prompt") or not data.get("routing"):
        raise ConfigError(f"{where('generate')}: generate: needs prompt and routing")
    return dict(gen)


def _answer_metrics(data: dict[str, Any], where: Any) -> list[str]:
    from genreg.core.answers import ANSWER_METRICS, check_answer_metrics

    if data.get("generate") is None:
        return []
    names = data.get("answer_metrics")
    if names is None:
        return list(ANSWER_METRICS)
    return check_answer_metrics(names, f"{where('answer_metrics')}: answer_metrics")


def _judges(data: dict[str, Any], where: Any) -> list[JudgeSpec]:
    """The ``judge:`` section as one spec per metric (schema-checked before this runs)."""
    from genreg.core.answers import JUDGE_METRICS

    j = data.get("judge")
    if not j:
        return []
    if data.get("generate") is None:
        raise ConfigError(f"{where('judge')}: judge: needs a generate: section")
    out = []
    for metric in JUDGE_METRICS:
        m = j.get(metric)
        if m is None:
            continue
        model = m.get("model") or j.get("model")
        if not model:
            raise ConfigError(
                f"{where('judge')}: judge.{metric}: no model (set judge.model or "
                f"judge.{metric}.model, e.g. baseline-overlap-judge on genreg llm serve)"
            )
        try:
            ref = parse_ref(m["prompt"], kind="prompt")
        except GenregError as exc:
            raise ConfigError(f"{where('judge')}: judge.{metric}.prompt: {exc.message}") from None
        out.append(
            JudgeSpec(
                metric,
                ref,
                model,
                {**(j.get("params") or {}), **(m.get("params") or {})},
                int(m.get("n_questions", 3)),
                m.get("embedding"),
            )
        )
    return out


def schema() -> dict[str, Any]:
    return load_schema("evalconfig")
