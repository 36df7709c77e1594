"""Run reports for CI: a Markdown summary (step summary / PR comment) and JUnit XML.

:func:`latency_summary` turns per-query latencies into the reported percentiles.
The writers take the dict of :meth:`genreg.service.runs.RunOutcome.to_dict`.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr


def latency_summary(latencies: list[float], wall: float, batch_size: int) -> dict[str, Any]:
    import numpy as np

    if not latencies:
        return {"queries": 0, "batch_size": batch_size}
    ms = np.asarray(latencies) * 1000.0
    return {
        "queries": len(latencies),
        "batch_size": batch_size,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "qps": len(latencies) / wall if wall > 0 else None,
        "wall_seconds": wall,
    }


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def inputs_lines(lineage: dict[str, Any]) -> list[str]:
    out = []
    for role, i in (lineage.get("inputs") or {}).items():
        split = f"#{i['split']}" if i.get("split") else ""
        out.append(f"{role}: {i['kind']}:{i['name']}@v{i['version']}{split} ({i['digest'][:19]})")
    emb = lineage.get("embedding")
    if emb:
        out.append(f"embedding: {emb.get('model')} ({str(emb.get('digest'))[:19]})")
    for f in ("chunking", "index", "k"):
        if lineage.get(f) is not None:
            out.append(f"{f}: {lineage[f]}")
    code = lineage.get("code") or {}
    if code:
        dirty = " (dirty)" if code.get("dirty") else ""
        out.append(f"code: {str(code.get('commit'))[:12]}{dirty}, genreg {code.get('genreg')}")
    return out


def markdown(o: dict[str, Any]) -> str:
    passed = o.get("passed")
    status = {True: "PASSED", False: "FAILED", None: "no gates"}[passed]
    lines = [f"### genreg eval `{o['name']}`: {status}", "", f"Run `{o['run_id']}`"]
    if o.get("identical_to"):
        lines.append(f"(identical to run `{o['identical_to']}`: same fingerprint)")
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {m} | {_fmt(v)} |" for m, v in o["metrics"].items()]
    rep = o.get("report") or {}
    if rep.get("empty_queries"):
        lines += [
            "",
            f"{rep['empty_queries']} of {rep.get('n_queries')} queries retrieved nothing (scored 0).",
        ]
    if o.get("gates"):
        lines += ["", "| gate | result | detail |", "|---|---|---|"]
        for g in o["gates"]:
            lines.append(
                f"| `{g['gate']}` | {'pass' if g['passed'] else '**FAIL**'} | {g['detail']} |"
            )
        if o.get("baseline"):
            lines.append(f"\nBaseline: run `{o['baseline']}`")
    lat = rep.get("latency")
    if lat and lat.get("queries"):
        lines += [
            "",
            f"Latency (batch {lat['batch_size']}): p50 {_fmt(lat['p50_ms'], 2)} ms, "
            f"p95 {_fmt(lat['p95_ms'], 2)} ms, p99 {_fmt(lat['p99_ms'], 2)} ms, "
            f"{_fmt(lat.get('qps'), 1)} queries/s",
        ]
    cost = rep.get("cost")
    if cost:
        lines += ["", cost_line(cost)]
    lines += ["", "<details><summary>Lineage</summary>", ""]
    lines += [f"- {x}" for x in inputs_lines(o.get("lineage") or {})]
    lines += [f"- fingerprint: `{o['fingerprint']}`", "", "</details>", ""]
    return "\n".join(lines)


def cost_line(cost: dict[str, Any]) -> str:
    label = " (token counts are an ESTIMATE)" if cost["token_counts"] != "tokenizer" else ""
    shares = ", ".join(
        f"{r}: {v['share']:.0%} of queries ({v['model']})" for r, v in cost["routes"].items()
    )
    return (
        f"Token cost: {cost['total_cost']:.6f} {cost['currency']} total, "
        f"{cost['mean_cost_per_query']:.6f} per query, "
        f"{cost['mean_input_tokens']:.0f} input tokens per query{label}; {shares}"
    )


def junit(o: dict[str, Any]) -> str:
    """One testsuite; one testcase per gate (or one per metric when there are no gates)."""
    cases = []
    gates = o.get("gates") or []
    for g in gates:
        body = "" if g["passed"] else f"<failure message={quoteattr(g['detail'])}/>"
        cases.append(
            f'  <testcase classname="genreg.{escape(o["name"])}" name={quoteattr(g["gate"])}>'
            f"{body}</testcase>"
        )
    if not gates:
        for m, v in o["metrics"].items():
            cases.append(
                f'  <testcase classname="genreg.{escape(o["name"])}" '
                f"name={quoteattr(f'{m} = {_fmt(v)}')}/>"
            )
    failures = sum(not g["passed"] for g in gates)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name={quoteattr("genreg eval " + o["name"])} tests="{len(cases)}" '
        f'failures="{failures}" errors="0">\n'
        f'  <properties><property name="run_id" value={quoteattr(o["run_id"])}/>'
        f'<property name="fingerprint" value={quoteattr(o["fingerprint"])}/></properties>\n'
        + "\n".join(cases)
        + "\n</testsuite>\n"
    )
