"""Comparing two runs: metric deltas with paired tests, per-query wins/losses, and which
lineage inputs differ (a delta is attributable only when exactly one input changed).

``B - A`` everywhere: a positive delta means B is better. The tests are paired over the
queries both runs scored: a paired bootstrap of the mean difference (confidence interval) and
a paired randomization (sign-flip) test (two-sided p-value), from :mod:`genreg.core.stats`.
"""

from __future__ import annotations

from typing import Any

# Lineage fields that are "inputs" for attribution, in report order.
INPUT_FIELDS = (
    "evalset",
    "corpus",
    "prompt",
    "routing",
    "embedding",
    "chunking",
    "index",
    "k",
    "run_file",
    "code",
    "packages",
)


def lineage_view(lineage: dict[str, Any]) -> dict[str, Any]:
    """The comparable value of each input field of a lineage record."""
    inputs = lineage.get("inputs") or {}
    out: dict[str, Any] = {}
    for f in INPUT_FIELDS:
        if f in ("evalset", "corpus", "prompt", "routing"):
            i = inputs.get(f)
            out[f] = None if i is None else _ref(i)
        elif f == "code":
            c = lineage.get("code") or {}
            out[f] = {k: c.get(k) for k in ("commit", "dirty", "diff_digest", "genreg")}
        else:
            out[f] = lineage.get(f)
    return out


def _ref(i: dict[str, Any]) -> str:
    s = f"{i['kind']}:{i['name']}@v{i['version']}"
    if i.get("split"):
        s += f"#{i['split']}"
    return f"{s} ({i['digest'][:19]})"


def lineage_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    va, vb = lineage_view(a), lineage_view(b)
    return {f: {"a": va[f], "b": vb[f]} for f in INPUT_FIELDS if va[f] != vb[f]}


def warnings_for(diff: dict[str, Any]) -> list[str]:
    out = []
    if "evalset" in diff:
        out.append(
            "EVAL SETS DIFFER: the runs were scored on different queries/judgments; "
            "the delta is not attributable to any change"
        )
    if len(diff) > 1:
        out.append(
            f"{len(diff)} INPUTS CHANGED ({', '.join(diff)}): the delta cannot be attributed "
            "to a single change"
        )
    return out


def compare_metric(
    a: dict[str, float],
    b: dict[str, float],
    *,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    worst: int = 10,
) -> dict[str, Any]:
    """Paired comparison of one metric's per-query values ``{qid: value}`` (B - A)."""
    from genreg.core.stats import paired_bootstrap, paired_randomization

    common = sorted(set(a) & set(b))
    out: dict[str, Any] = {
        "n_shared": len(common),
        "only_a": len(set(a) - set(b)),
        "only_b": len(set(b) - set(a)),
    }
    if not common:
        return out
    xa = [float(a[q]) for q in common]
    xb = [float(b[q]) for q in common]
    deltas = {q: y - x for q, x, y in zip(common, xa, xb)}
    boot = paired_bootstrap(xa, xb, n_resamples=n_resamples, confidence=confidence, seed=seed)
    p = paired_randomization(xa, xb, n_resamples=n_resamples, seed=seed)
    mean_a, mean_b = sum(xa) / len(xa), sum(xb) / len(xb)
    out.update(
        mean_a=mean_a,
        mean_b=mean_b,
        delta=mean_b - mean_a,
        ci_low=float(boot.ci_low),
        ci_high=float(boot.ci_high),
        confidence=confidence,
        p_value=float(p),
        p_bootstrap=float(boot.p_value),
        wins=sum(d > 1e-12 for d in deltas.values()),
        losses=sum(d < -1e-12 for d in deltas.values()),
        ties=sum(abs(d) <= 1e-12 for d in deltas.values()),
        most_regressed=[
            {"query": q, "a": a[q], "b": b[q], "delta": d}
            for q, d in sorted(deltas.items(), key=lambda kv: (kv[1], kv[0]))[:worst]
            if d < -1e-12
        ],
    )
    return out
