"""CI gates: absolute thresholds, thresholds relative to a baseline run, and "no significant
regression" tests over per-query values.

Grammar (in an eval config's ``gates:`` list or ``--gate EXPR``)::

    recall@5 >= 0.70                          absolute
    ndcg@10 >= baseline - 0.01                relative to the baseline run's mean
    mrr@10 > baseline                         relative, no margin
    no_significant_regression(ndcg@10)        p < 0.05 (default)
    no_significant_regression(ndcg@10, p=0.01)
    {no_significant_regression: {metric: ndcg@10, p: 0.05}}      the same, as a mapping

Operators: ``>=  >  <=  <  ==``. A significance gate fails when the run's mean is lower than
the baseline's and the paired randomization test over the queries both runs share gives
p < the threshold. Relative and significance gates need a baseline (else ConfigError).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from genreg.errors import ConfigError

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": lambda a, b: abs(a - b) <= 1e-12,
}
# The relation that holds when a comparison fails: a failing `x >= 0.40` is `x < 0.40`.
NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_METRIC = r"[A-Za-z][A-Za-z0-9_.\-]*(?:@\d+)?"
_CMP_RE = re.compile(
    rf"^\s*(?P<metric>{_METRIC})\s*(?P<op>>=|<=|==|>|<)\s*"
    rf"(?:(?P<value>{_NUM})|baseline\s*(?:(?P<sign>[-+])\s*(?P<offset>{_NUM}))?)\s*$"
)
_SIG_RE = re.compile(
    rf"^\s*no_significant_regression\s*\(\s*(?P<metric>{_METRIC})\s*"
    rf"(?:,\s*p\s*=\s*(?P<p>{_NUM})\s*)?\)\s*$"
)
DEFAULT_P = 0.05


@dataclass(frozen=True)
class Gate:
    expr: str
    kind: str  # absolute | relative | significance
    metric: str
    op: str = ">="
    value: float = 0.0  # absolute threshold, or the offset added to the baseline
    p: float = DEFAULT_P

    @property
    def needs_baseline(self) -> bool:
        return self.kind != "absolute"


@dataclass
class GateResult:
    gate: str
    kind: str
    metric: str
    passed: bool
    actual: float | None
    threshold: float | None
    baseline: float | None = None
    p_value: float | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_gate(spec: str | dict[str, Any], where: str = "gate") -> Gate:
    """Parse one gate (a string expression or a mapping); ConfigError names ``where``."""
    if isinstance(spec, dict):
        if set(spec) == {"no_significant_regression"} and isinstance(
            spec["no_significant_regression"], dict
        ):
            body = spec["no_significant_regression"]
            metric, p = body.get("metric"), body.get("p", DEFAULT_P)
            if not isinstance(metric, str) or not isinstance(p, (int, float)):
                raise ConfigError(
                    f"{where}: no_significant_regression needs {{metric: NAME, p: NUMBER}}"
                )
            return _sig(f"no_significant_regression({metric}, p={p})", metric, float(p), where)
        raise ConfigError(
            f"{where}: a gate mapping must be {{no_significant_regression: {{metric, p}}}}; "
            "use a string such as 'recall@5 >= 0.7' otherwise"
        )
    if not isinstance(spec, str):
        raise ConfigError(f"{where}: a gate must be a string or a mapping")
    text = " ".join(spec.split())
    m = _SIG_RE.match(text)
    if m:
        return _sig(text, m["metric"], float(m["p"]) if m["p"] else DEFAULT_P, where)
    m = _CMP_RE.match(text)
    if not m:
        raise ConfigError(
            f"{where}: cannot parse gate {spec!r}: expected 'METRIC OP NUMBER', "
            "'METRIC OP baseline [+|- NUMBER]' or 'no_significant_regression(METRIC, p=0.05)'"
        )
    _metric(m["metric"], where)
    if m["value"] is not None:
        return Gate(text, "absolute", m["metric"], m["op"], float(m["value"]))
    off = float(m["offset"]) if m["offset"] else 0.0
    return Gate(text, "relative", m["metric"], m["op"], -off if m["sign"] == "-" else off)


def _metric(name: str, where: str) -> None:
    from genreg.core.metrics import parse_metric

    try:
        parse_metric(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def _sig(text: str, metric: str, p: float, where: str) -> Gate:
    _metric(metric, where)
    if not 0 < p < 1:
        raise ConfigError(f"{where}: p must be between 0 and 1, got {p}")
    return Gate(text, "significance", metric, "<", 0.0, p)


def parse_gates(specs: list[Any] | None, where: str = "gates") -> list[Gate]:
    return [parse_gate(s, f"{where}.{i}") for i, s in enumerate(specs or [])]


@dataclass
class Side:
    """What a gate needs from one run: mean metric values and per-query values."""

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    run_id: str | None = None


def _lookup(values: dict[str, Any], metric: str, who: str) -> Any:
    if metric in values:
        return values[metric]
    low = {k.lower(): v for k, v in values.items()}
    if metric.lower() in low:
        return low[metric.lower()]
    raise ConfigError(
        f"gate metric {metric!r} was not computed by the {who} "
        f"(metrics: {', '.join(sorted(values)) or 'none'})"
    )


def check(
    gates: list[Gate],
    run: Side,
    baseline: Side | None,
    *,
    n_resamples: int = 10000,
    seed: int = 0,
) -> list[GateResult]:
    """Evaluate every gate. Relative/significance gates without a baseline: ConfigError."""
    out: list[GateResult] = []
    for g in gates:
        actual = float(_lookup(run.metrics, g.metric, "run"))
        if g.kind == "absolute":
            ok = OPS[g.op](actual, g.value)
            out.append(
                GateResult(g.expr, g.kind, g.metric, ok, actual, g.value, detail=_d(actual, g))
            )
            continue
        if baseline is None:
            raise ConfigError(
                f"gate {g.expr!r} compares with a baseline: pass --baseline RUN|REF "
                "or set 'baseline:' in the eval config"
            )
        base = float(_lookup(baseline.metrics, g.metric, f"baseline run {baseline.run_id}"))
        if g.kind == "relative":
            thr = base + g.value
            ok = OPS[g.op](actual, thr)
            out.append(
                GateResult(
                    g.expr,
                    g.kind,
                    g.metric,
                    ok,
                    actual,
                    thr,
                    base,
                    detail=f"{holds(actual, g.op, thr, ok)} (baseline {base:.4f})",
                )
            )
            continue
        a = _lookup(baseline.per_query, g.metric, f"baseline run {baseline.run_id}")
        b = _lookup(run.per_query, g.metric, "run")
        common = sorted(set(a) & set(b))
        if not common:
            raise ConfigError(f"gate {g.expr!r}: the run and its baseline share no queries")
        xa = [float(a[q]) for q in common]
        xb = [float(b[q]) for q in common]
        from genreg.core.stats import paired_randomization

        pv = float(paired_randomization(xa, xb, n_resamples=n_resamples, seed=seed))
        delta = (sum(xb) - sum(xa)) / len(common)
        regressed = delta < 0 and pv < g.p
        out.append(
            GateResult(
                g.expr,
                g.kind,
                g.metric,
                not regressed,
                actual,
                None,
                base,
                pv,
                detail=f"delta {delta:+.4f} over {len(common)} shared queries, p={pv:.4f}"
                + (f" < {g.p}: significant regression" if regressed else ""),
                extra={"delta": delta, "n_queries": len(common)},
            )
        )
    return out


def threshold_text(v: float) -> str:
    """A threshold as people write it: at least two decimals (0.4 -> ``0.40``), more only
    when needed (0.425 -> ``0.425``)."""
    s = f"{v:.6f}".rstrip("0")
    head, _, tail = s.partition(".")
    return f"{head}.{tail.ljust(2, '0')}"


def holds(actual: float, op: str, threshold: float, ok: bool) -> str:
    """The comparison that holds: ``0.4123 >= 0.40`` when passing, ``0.3817 < 0.40`` when not."""
    return f"{actual:.4f} {op if ok else NEGATED[op]} {threshold_text(threshold)}"


def _d(actual: float, g: Gate) -> str:
    return holds(actual, g.op, g.value, OPS[g.op](actual, g.value))
