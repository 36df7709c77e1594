"""Comparing two runs: metric deltas with paired tests, per-query wins/losses, which lineage
inputs differ (a delta is attributable only when exactly one input changed) and, separately,
which parts of the environment differ (git commit, genreg and package versions: reported, but
they do not make a delta unattributable).

``B - A`` everywhere: a positive delta means B is better. The tests are paired over the
queries both runs scored: a paired bootstrap of the mean difference (confidence interval) and
a paired randomization (sign-flip) test (two-sided p-value), from :mod:`genreg.core.stats`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genreg.core.lineage import INPUT_ROLES, Lineage, generation_identity

if TYPE_CHECKING:
    from genreg.core.runinfo import RunInfo

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
    "generation",
)


def lineage_view(lineage: Lineage) -> dict[str, Any]:
    """The comparable value of each input field of a lineage record, then each extra input
    role (a judge prompt: ``judge:faithfulness``)."""
    out: dict[str, Any] = {}
    for f in INPUT_FIELDS:
        if f in INPUT_ROLES:
            i = lineage.input(f)
            out[f] = None if i is None else f"{i.ref} ({i.digest[:19]})"
        elif f == "embedding":
            out[f] = lineage.embedding.identity() if lineage.embedding else None
        elif f == "k":
            out[f] = list(lineage.k) if lineage.k is not None else None
        elif f == "generation":
            g = lineage.generation
            out[f] = generation_identity(g) if g is not None else None
        else:
            v = getattr(lineage, f)
            out[f] = dict(v) if hasattr(v, "keys") else v
    for i in lineage.inputs:
        if i.role not in INPUT_ROLES:
            out[i.role] = f"{i.ref} ({i.digest[:19]})"
    return out


def lineage_diff(a: Lineage, b: Lineage) -> dict[str, dict[str, Any]]:
    """The *inputs* that differ between two runs (what a delta could be attributed to)."""
    va, vb = lineage_view(a), lineage_view(b)
    fields = [*INPUT_FIELDS, *sorted((set(va) | set(vb)) - set(INPUT_FIELDS))]
    return {f: {"a": va.get(f), "b": vb.get(f)} for f in fields if va.get(f) != vb.get(f)}


def environment_view(lineage: Lineage) -> dict[str, Any]:
    """The comparable environment: ``commit`` (short, ``+dirty``, with the diff digest when
    dirty), ``genreg`` and each recorded package version (``python``, ``torch``, ...)."""
    code = lineage.code
    out: dict[str, Any] = {}
    if code is not None:
        commit = code.short
        if code.dirty and code.diff_digest:
            commit += f" ({code.diff_digest[7:19]})"
        out["commit"] = commit
        out["genreg"] = code.genreg
    for name, version in (lineage.packages or {}).items():
        out[name] = version
    return out


def environment_diff(a: Lineage, b: Lineage) -> dict[str, dict[str, Any]]:
    """Environment entries that differ (code state, genreg and package versions). Shown, and
    part of the fingerprint, but never counted as an input that makes a delta unattributable."""
    va, vb = environment_view(a), environment_view(b)
    keys = list(va) + [k for k in vb if k not in va]
    return {k: {"a": va.get(k), "b": vb.get(k)} for k in keys if va.get(k) != vb.get(k)}


def environment_note(diff: dict[str, dict[str, Any]]) -> str | None:
    """``environment differs: commit 1a2b3c4d5e6f -> 0f9e8d7c6b5a, torch 2.12.0 -> 2.13.0``."""
    if not diff:
        return None
    parts = [f"{k} {v['a']} -> {v['b']}" for k, v in diff.items()]
    return "environment differs: " + ", ".join(parts)


def ann_recall_diff(
    report_a: dict[str, Any] | None, report_b: dict[str, Any] | None
) -> dict[str, dict[str, float | None]]:
    """``ann_recall@k`` of two runs side by side (``None`` for a run on an exact index, or
    recorded before ANN recall existed): the index's error, kept apart from the metrics so a
    drop in nDCG can be told apart from an approximate index missing neighbours."""
    ra = ((report_a or {}).get("ann") or {}).get("recall") or {}
    rb = ((report_b or {}).get("ann") or {}).get("recall") or {}
    names = list(ra) + [m for m in rb if m not in ra]
    return {m: {"a": ra.get(m), "b": rb.get(m)} for m in names}


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


def pair_header(ra: RunInfo, rb: RunInfo) -> dict[str, Any]:
    """What every comparison of two runs says beside its metrics: metrics only one run has,
    the inputs that differ (and whether a delta is attributable), the environment that
    differs, and whether the two fingerprints are equal. One place for ``runs compare`` and
    the UI's pending comparison."""
    diff = lineage_diff(ra.lineage, rb.lineage)
    env = environment_diff(ra.lineage, rb.lineage)
    return {
        "only_in_a": [m for m in ra.metrics if m not in rb.metrics],
        "only_in_b": [m for m in rb.metrics if m not in ra.metrics],
        "differs": diff,
        "attributable": len(diff) <= 1 and "evalset" not in diff,
        "warnings": warnings_for(diff),
        "environment_differs": env,
        "environment_note": environment_note(env),
        "identical_fingerprint": ra.fingerprint == rb.fingerprint,
    }


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
