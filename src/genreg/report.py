"""Run reports for people and CI: a Markdown summary (step summary / PR comment), JUnit XML,
and the lines the terminal prints. Rendering only: every writer takes a
:class:`genreg.core.runinfo.RunOutcome` (its :class:`~genreg.core.lineage.Lineage` typed).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from genreg.core.lineage import Lineage
from genreg.core.runinfo import RunOutcome


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def readable(v: Any) -> str:
    """A value for people, not a Python repr: ``size=500, overlap=50``; lists comma-joined;
    None as ``-``; booleans as ``yes``/``no``."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return ", ".join(
            f"{k}=({readable(x)})" if isinstance(x, dict) else f"{k}={readable(x)}"
            for k, x in v.items()
            if x is not None
        )
    if isinstance(v, (list, tuple)):
        return ", ".join(readable(x) for x in v)
    return str(v)


def _price(p: Any) -> str:
    if not p:
        return "unpriced"
    cur = p.get("currency", "USD")
    return f"{cur} {p.get('input_per_1m', 0):g} in / {p.get('output_per_1m', 0):g} out per 1M"


def generation_nodes(
    gen: Any, stats: Any = None, judge_refs: dict[str, str] | None = None
) -> list[Any]:
    """The generation part of a lineage as tree children (strings, or ``(label, children)``):
    settings, each route's model/params/endpoint/price, the judges, cache mode and hits."""
    gen = dict(gen or {})
    settings = {
        k: gen.get(k)
        for k in ("context_k", "context_chars", "repeats", "stream", "max_cost_usd")
        if k in gen
    }
    out: list[Any] = [f"settings: {readable(settings)}"]
    if gen.get("answer_metrics"):
        out.append(f"answer metrics: {readable(gen['answer_metrics'])}")
    routes = []
    for name, r in (gen.get("routes") or {}).items():
        params = readable(r.get("params") or {}) or "-"
        routes.append(
            f"{name}: {r.get('model')} @ {r.get('endpoint')}  params {params}  "
            f"price {_price(r.get('price'))}"
        )
    if routes:
        out.append(("routes", routes))
    judge = dict(gen.get("judge") or {})
    price = judge.pop("price", None)
    judges = []
    for metric, j in judge.items():
        ref = (judge_refs or {}).get(metric, "-")
        extra = {k: j[k] for k in ("n_questions",) if k in j}
        if j.get("embedding"):
            extra["embedding"] = j["embedding"].get("model")
        params = readable(j.get("params") or {}) or "-"
        judges.append(
            f"{metric}: {ref}  model {j.get('model')} @ {j.get('endpoint')}  params {params}"
            + (f"  ({readable(extra)})" if extra else "")
        )
    if judges:
        if price:
            judges.append(f"price {_price(price)}")
        out.append(("judge", judges))
    st = dict(stats or {})
    cache = f"cache: {gen.get('cache', st.get('cache_mode', '-'))}"
    if st:
        cache += f", {st.get('cache_hits', 0)} hits, {st.get('calls', 0)} calls"
        if "judge_calls" in st:
            cache += (
                f"; judge {st.get('judge_cache_hits', 0)} hits, {st.get('judge_calls', 0)} calls"
            )
        cache += f"; {st.get('errors', 0)} failed calls"
    out.append(cache)
    return out


def _flatten(nodes: list[Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for n in nodes:
        if isinstance(n, tuple):
            out.extend(_flatten(n[1], f"{prefix}{n[0]} "))
        else:
            out.append(prefix + n)
    return out


def inputs_lines(lineage: Lineage) -> list[str]:
    out = [f"{i.role}: {i.ref} ({i.digest[:19]})" for i in lineage.inputs]
    emb = lineage.embedding
    if emb:
        out.append(f"embedding: {emb.model} ({str(emb.digest)[:19]})")
    for f in ("chunking", "index"):
        v = getattr(lineage, f)
        if v is not None:
            out.append(f"{f}: {readable(dict(v))}")
    if lineage.k is not None:
        out.append(f"k: {readable(list(lineage.k))}")
    if lineage.generation is not None:
        refs = {
            i.role.split(":", 1)[1]: i.ref for i in lineage.inputs if i.role.startswith("judge:")
        }
        stats = lineage.get("generation_stats")
        out += [
            f"generation {line}"
            for line in _flatten(generation_nodes(lineage.generation, stats, refs))
        ]
    code = lineage.code
    if code:
        dirty = " (dirty)" if code.dirty else ""
        out.append(f"code: {str(code.commit)[:12]}{dirty}, genreg {code.genreg}")
    return out


def unmatched_line(rep: dict[str, Any]) -> str | None:
    """The warning for run-file query ids that match no eval-set query (they score nothing:
    a BOM, a prefix or another eval set's ids would otherwise go unnoticed)."""
    n = rep.get("run_file_unmatched")
    if not n:
        return None
    ids = ", ".join(repr(q) for q in rep.get("run_file_unmatched_ids", [])[:5])
    more = ", ..." if n > 5 else ""
    return (
        f"{n} of {rep.get('run_file_queries')} run-file query ids match no eval-set query"
        f" ({ids}{more}); their results are ignored"
    )


def latency_line(lat: dict[str, Any]) -> str | None:
    """One line of latency percentiles, saying how they were measured."""
    if not lat or not lat.get("queries"):
        return None
    how = lat.get("mode") or "per-batch"
    if how == "per-batch":
        how = f"per-batch, batch {lat['batch_size']}"
    qps = lat.get("qps")
    return (
        f"latency ({how}): p50 {lat['p50_ms']:.2f} ms  p95 {lat['p95_ms']:.2f} ms  "
        f"p99 {lat['p99_ms']:.2f} ms  mean {lat['mean_ms']:.2f} ms"
        + (f"  {qps:.1f} q/s" if qps else "")
    )


def ann_line(rep: dict[str, Any]) -> str | None:
    """The index's own error, apart from retrieval quality: ``ann_recall@k`` against an
    exhaustive search of the same vectors (runs on an ANN index only)."""
    ann = rep.get("ann") or {}
    recall = ann.get("recall") or {}
    if not recall:
        return None
    figures = "  ".join(f"{m} {v:.4f}" for m, v in recall.items())
    return (
        f"ann recall ({ann.get('index')} index vs exact search, {ann.get('queries')} queries; "
        f"index error, not retrieval quality): {figures}"
    )


def delta_rows(deltas: dict[str, Any]) -> list[dict[str, str]]:
    """Table rows of per-metric deltas vs the baseline (value, baseline, delta, CI, p)."""
    rows = []
    for m, d in deltas.items():
        if not d.get("n_shared"):
            rows.append({"metric": m, "value": _fmt(d.get("value")), "delta": "no shared queries"})
            continue
        rows.append(
            {
                "metric": m,
                "value": _fmt(d.get("value")),
                "baseline": _fmt(d.get("baseline")),
                "delta": f"{d['delta']:+.4f}",
                "95% ci": f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]",
                "p": f"{d['p_value']:.4f}",
                "w/l/t": f"{d['wins']}/{d['losses']}/{d['ties']}",
            }
        )
    return rows


DELTA_COLUMNS = ["metric", "value", "baseline", "delta", "95% ci", "p", "w/l/t"]


def markdown(o: RunOutcome) -> str:
    r = o.run
    status = {True: "PASSED", False: "FAILED", None: "no gates"}[o.passed]
    title = f"`{r.name}`" + (f" / `{r.run_name}`" if r.run_name else "")
    lines = [f"### genreg eval {title}: {status}", "", f"Run `{r.id}`"]
    if r.tags:
        lines.append("Tags: " + ", ".join(f"`{k}={v}`" for k, v in r.tags.items()))
    if r.params:
        lines.append("Parameters: " + ", ".join(f"`{k}={v}`" for k, v in r.params.items()))
    if o.identical_to:
        lines.append(f"(identical to run `{o.identical_to}`: same fingerprint)")
    deltas = o.baseline_deltas
    if deltas and o.baseline:
        lines += ["", f"Against baseline run `{o.baseline}` (delta = this run - baseline):", ""]
        lines += ["| " + " | ".join(DELTA_COLUMNS) + " |", "|" + "---|" * len(DELTA_COLUMNS)]
        for row in delta_rows(deltas):
            lines.append("| " + " | ".join(row.get(c, "") for c in DELTA_COLUMNS) + " |")
    else:
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {m} | {_fmt(v)} |" for m, v in r.metrics.items()]
    rep = r.report or {}
    if rep.get("empty_queries"):
        lines += [
            "",
            f"{rep['empty_queries']} of {rep.get('n_queries')} queries retrieved nothing (scored 0).",
        ]
    unmatched = unmatched_line(rep)
    if unmatched:
        lines += ["", f"**Warning:** {unmatched}."]
    if o.gates:
        lines += ["", "| gate | result | detail |", "|---|---|---|"]
        for g in o.gates:
            lines.append(f"| `{g.gate}` | {'pass' if g.passed else '**FAIL**'} | {g.detail} |")
        if o.baseline and not deltas:
            lines.append(f"\nBaseline: run `{o.baseline}`")
    lat = latency_line(rep.get("latency") or {})
    if lat:
        lines += ["", lat[0].upper() + lat[1:]]
    ann = ann_line(rep)
    if ann:
        lines += ["", ann[0].upper() + ann[1:]]
    cost = rep.get("cost")
    if cost:
        lines += ["", cost_line(cost)]
    gen = generation_lines(rep)
    if gen:
        lines += ["", *gen]
    lines += ["", "<details><summary>Lineage</summary>", ""]
    lines += [f"- {x}" for x in inputs_lines(r.lineage)]
    lines += [f"- fingerprint: `{r.fingerprint}`", "", "</details>", ""]
    return "\n".join(lines)


def cost_line(cost: dict[str, Any]) -> str:
    label = {
        "tokenizer": "",
        "usage": " (real usage reported by the model server x route prices)",
    }.get(cost["token_counts"], " (token counts are an ESTIMATE)")
    shares = ", ".join(
        f"{r}: {v['share']:.0%} of queries ({v['model']})" for r, v in cost["routes"].items()
    )
    return (
        f"Token cost: {cost['total_cost']:.6f} {cost['currency']} total, "
        f"{cost['mean_cost_per_query']:.6f} per query, "
        f"{cost['mean_input_tokens']:.0f} input tokens per query{label}; {shares}"
    )


def generation_lines(rep: dict[str, Any]) -> list[str]:
    """What the generate stage did: calls, cache, errors, gold coverage, latency, abort."""
    g = rep.get("generation")
    if not g:
        return []
    c = g["cache"]
    out = [
        f"generation: {g['calls']} calls, {c['hits']} cache hits (cache {c['mode']}), "
        f"{g['errors']} failed, {g['not_generated']} not generated; answers scored on "
        f"{g['answers_scored']} queries ({g['no_gold']} without a gold answer, excluded); "
        f"served by {', '.join(g['served_by']) or '-'}"
    ]
    lat = g.get("latency_ms")
    if lat:
        ttft = g.get("ttft_ms")
        out.append(
            f"generation latency: p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms"
            + (f"  time to first token p50 {ttft['p50']:.1f} ms" if ttft else "")
        )
    for m, sp in (g.get("spread") or {}).items():
        out.append(f"{m} over {len(sp['repeat_means'])} repeats: std {sp['std']:.4f}")
    j = rep.get("judge")
    if j:
        judges = ", ".join(f"{m} ({v['prompt']}, {v['model']})" for m, v in j["metrics"].items())
        unscored = ", ".join(f"{m} {n}" for m, n in (j.get("unscored") or {}).items())
        out.append(
            f"judge: {judges}; {j['calls']} calls, {j['cache']['hits']} cache hits, "
            f"{j['errors']} per-query errors (excluded from the means, counted in judge_errors)"
            + (f"; unscored (no statements): {unscored}" if unscored else "")
            + (f"; {j['input_tokens']} in / {j['output_tokens']} out tokens, cost {j['cost']:.6f}")
        )
    ab = rep.get("aborted")
    if ab:
        missed = ab.get("not_generated", ab.get("not_judged", 0))
        out.append(
            f"ABORTED: spend {ab['spent']:.6f} passed max_cost_usd {ab['max_cost_usd']}; "
            f"{missed} calls not made; the run cannot pass a gate or promote"
        )
    return out


def junit(o: RunOutcome) -> str:
    """One testsuite; one testcase per gate (or one per metric when there are no gates)."""
    r = o.run
    cases = []
    for g in o.gates:
        body = "" if g.passed else f"<failure message={quoteattr(g.detail)}/>"
        cases.append(
            f'  <testcase classname="genreg.{escape(r.name)}" name={quoteattr(g.gate)}>'
            f"{body}</testcase>"
        )
    if not o.gates:
        for m, v in r.metrics.items():
            cases.append(
                f'  <testcase classname="genreg.{escape(r.name)}" '
                f"name={quoteattr(f'{m} = {_fmt(v)}')}/>"
            )
    failures = sum(not g.passed for g in o.gates)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name={quoteattr("genreg eval " + r.name)} tests="{len(cases)}" '
        f'failures="{failures}" errors="0">\n'
        f'  <properties><property name="run_id" value={quoteattr(r.id)}/>'
        f'<property name="fingerprint" value={quoteattr(r.fingerprint)}/></properties>\n'
        + "\n".join(cases)
        + "\n</testsuite>\n"
    )
