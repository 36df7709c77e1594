"""Shaping service-layer objects into what the templates show: tables, gate sentences,
lineage trees, chart markup. No I/O except through the registry passed in."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from markupsafe import Markup

from genreg.service.run_queries import top_ids
from genreg.ui import svg
from genreg.ui.tables import Col, Table

if TYPE_CHECKING:
    from genreg.core.runinfo import RunInfo
    from genreg.service.run_queries import RunPage
    from genreg.ui.session import Viewer

ROLE_ORDER = ("evalset", "corpus", "prompt", "routing", "embedding", "chunking", "index", "k")
PROMOTE_ORDER = ("prompt", "routing", "corpus")


def qs(params: Any, **over: Any) -> str:
    """The current query string with ``over`` replacing (None: removing) parameters."""
    d = {k: v for k, v in dict(params).items() if k not in ("format", "table")}
    for k, v in over.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return "?" + urlencode(d) if d else "?"


def safe_next(nxt: str | None) -> str:
    """Only same-site paths under /ui are followed after sign-in."""
    if nxt and nxt.startswith("/ui") and not nxt.startswith("//") and "\\" not in nxt:
        return nxt
    return "/ui/runs"


def when(ts: str | None) -> str:
    """``2026-12-02 18:34`` (UTC) from a stored ISO timestamp."""
    if not ts:
        return "–"
    return ts[:16].replace("T", " ")


def age(ts: str) -> str:
    try:
        t = datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return ""
    s = (datetime.now(timezone.utc) - t).total_seconds()
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{int(s // n)} {unit} ago"
    return "just now"


def version_href(kind: str, name: str, version: int) -> str:
    return f"/ui/artifacts/{quote(kind)}/{quote(name)}/v/{version}"


def status_word(run: RunInfo) -> str:
    if run.status != "done":
        return run.status
    return {True: "passed", False: "failed", None: "no gates"}[run.passed]


# ---- runs -------------------------------------------------------------------------------
def runs_table(pg: RunPage) -> Table:
    named = any(r.run_name for r in pg.runs)
    labelled = any(r.tags or r.params for r in pg.runs)
    cols = [Col("id", "run")]
    if named:
        cols.append(Col("run_name", "run name"))
    cols += [
        Col("name", "eval", sort="name"),
        Col("started_at", "started (UTC)", sort="started_at"),
        Col("status", "result", sort="passed"),
    ]
    cols += [Col(m, m, num=True, sort=f"metric:{m}", fmt="f4") for m in pg.metric_names]
    cols += [
        Col("cost", "cost", num=True, fmt="usd"),
        Col("p50_ms", "p50 latency", num=True, fmt="ms"),
        Col("inputs", "inputs"),
    ]
    if labelled:
        cols.append(Col("labels", "params · tags"))
    cols.append(Col("author", "who", sort="author"))
    rows = []
    for r in pg.runs:
        rep = r.report or {}
        rows.append(
            {
                "id": r.id,
                "_href_id": f"/ui/runs/{r.id}",
                "name": r.name,
                "_href_name": "/ui/runs" + qs({"name": r.name}),
                "started_at": when(r.started_at),
                "status": status_word(r),
                "_cls_status": status_word(r).replace(" ", "-"),
                **{m: r.metrics.get(m) for m in pg.metric_names},
                "cost": (rep.get("cost") or {}).get("total_cost"),
                "p50_ms": (rep.get("latency") or {}).get("p50_ms"),
                "inputs": [i.ref for i in sorted(r.inputs, key=lambda i: _role_rank(i.role))],
                "run_name": r.run_name,
                "labels": [f"{k}={v}" for k, v in sorted(r.params.items())]
                + [f"#{k}={v}" for k, v in sorted(r.tags.items())],
                "author": r.author,
            }
        )
    return Table("runs", cols, rows, links={"id": "_href_id", "name": "_href_name"}, total=pg.total)


def _role_rank(role: str) -> int:
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)


# ---- one run ----------------------------------------------------------------------------
def metrics_table(run: RunInfo, cis: dict[str, dict[str, float]]) -> Table:
    rows = []
    for m, v in run.metrics.items():
        ci = cis.get(m, {})
        rows.append(
            {
                "metric": m,
                "value": v,
                "ci_low": ci.get("ci_low"),
                "ci_high": ci.get("ci_high"),
                "se": ci.get("se"),
                "n": ci.get("n"),
            }
        )
    cols = [
        Col("metric", "metric"),
        Col("value", "mean", num=True, fmt="f4"),
        Col("ci_low", "95% CI low", num=True, fmt="f4"),
        Col("ci_high", "95% CI high", num=True, fmt="f4"),
        Col("se", "std. error", num=True, fmt="f4"),
        Col("n", "queries", num=True),
    ]
    return Table("metrics", cols, rows)


def gate_sentence(g: dict[str, Any]) -> str:
    """The comparison that actually holds, e.g. ``0.3817 < 0.40`` for a failed
    ``recall@5 >= 0.40`` (recomputed, so runs recorded before the CLI wrote it so read the
    same)."""
    if g.get("kind") == "significance" or g.get("actual") is None or g.get("threshold") is None:
        return str(g.get("detail", ""))
    from genreg.core.gates import holds, parse_gate
    from genreg.errors import ConfigError

    try:
        op = parse_gate(g["gate"]).op
    except ConfigError:  # a stored gate this version cannot parse: show what was recorded
        return str(g.get("detail", ""))
    text = holds(float(g["actual"]), op, float(g["threshold"]), bool(g.get("passed")))
    base = g.get("baseline")
    return text + (
        f" (baseline {base:.4f})" if g.get("kind") == "relative" and base is not None else ""
    )


def gates(run: RunInfo) -> list[dict[str, Any]]:
    return [{**g, "holds": gate_sentence(g)} for g in (run.report or {}).get("gates", [])]


def gates_table(gs: list[dict[str, Any]]) -> Table:
    cols = [
        Col("gate", "gate"),
        Col("passed", "passed"),
        Col("holds", "result"),
        Col("p_value", "p", num=True, fmt="f4"),
    ]
    return Table("gates", cols, gs)


def latency(run: RunInfo, res: dict[str, Any]) -> dict[str, Any]:
    lat = dict((run.report or {}).get("latency") or {})
    ms = [float(q["latency"]) * 1000 for q in res.get("rows", []) if q.get("latency") is not None]
    lat["chart"] = (
        Markup(svg.histogram(ms, unit="ms", title="Per-query retrieval latency")) if ms else ""
    )
    lat["distinct"] = len({round(x, 3) for x in ms})
    return lat


def cost_table(run: RunInfo) -> Table | None:
    cost = (run.report or {}).get("cost")
    if not cost or not cost.get("routes"):
        return None
    rows = [
        {
            "route": name,
            **{
                k: r.get(k)
                for k in ("model", "queries", "share", "input_tokens", "cost", "cost_share")
            },
        }
        for name, r in cost["routes"].items()
    ]
    cols = [
        Col("route", "route"),
        Col("model", "model"),
        Col("queries", "queries", num=True),
        Col("share", "of queries", num=True, fmt="pct"),
        Col("input_tokens", "input tokens", num=True),
        Col("cost", "cost", num=True, fmt="usd"),
        Col("cost_share", "of cost", num=True, fmt="pct"),
    ]
    t = Table("cost", cols, rows)
    t.summary = cost  # type: ignore[attr-defined]  # extra attribute read by the cost template
    return t


def lineage_tree(run: RunInfo) -> list[dict[str, Any]]:
    """Nodes ``{label, value, href?, children}`` for the lineage tree."""
    lin = run.lineage
    inputs = []
    for i in sorted(run.inputs, key=lambda i: _role_rank(i.role)):
        inputs.append(
            {
                "label": i.role,
                "value": i.ref,
                "href": version_href(i.kind, i.name, i.version),
                "note": i.digest[:19],
            }
        )
    retrieval = []
    emb = lin.get("embedding") or {}
    if emb:
        retrieval.append(
            {
                "label": "embedding",
                "value": emb.get("model"),
                "note": str(emb.get("digest") or "")[:19],
            }
        )
    for f in ("chunking", "index", "k"):
        if lin.get(f) is not None:
            retrieval.append({"label": f, "value": _kv(lin[f])})
    if lin.get("run_file"):
        retrieval.append(
            {
                "label": "run file",
                "value": lin.get("run_file_path", ""),
                "note": str(lin["run_file"])[:19],
            }
        )
    gen = [
        {"label": k, "value": _kv(v)}
        for k, v in (lin.get("generation") or {}).items()
        if not isinstance(v, dict) or k != "inputs"
    ]
    code = lin.get("code") or {}
    env = []
    if code:
        env.append(
            {
                "label": "code",
                "value": f"{str(code.get('commit') or '-')[:12]}"
                + (" (dirty)" if code.get("dirty") else ""),
                "note": f"genreg {code.get('genreg', '?')}",
            }
        )
    pk = lin.get("packages") or {}
    if pk:
        env.append({"label": "packages", "value": ", ".join(f"{k} {v}" for k, v in pk.items())})
    host = lin.get("host") or {}
    if host:
        env.append(
            {
                "label": "host",
                "value": f"{host.get('cpu', '')} x{host.get('cores', '?')}"
                f", {round((host.get('ram_bytes') or 0) / 2**30)} GiB"
                + (f", GPU {', '.join(map(str, host['gpu']))}" if host.get("gpu") else ""),
                "note": str(host.get("platform", "")),
            }
        )
    out = [{"label": "inputs", "children": inputs}]
    if retrieval:
        out.append({"label": "retrieval", "children": retrieval})
    if gen:
        out.append({"label": "generation", "children": gen})
    if env:
        out.append({"label": "environment", "children": env})
    return out


def _kv(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_kv(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_kv(x) for x in v)
    return str(v)


def promote_state(run: RunInfo, v: Viewer) -> dict[str, Any]:
    """What the promote form offers and, when it cannot be used, why."""
    why = ""
    if run.passed is None:
        why = "This run ran no gates, so it cannot promote anything (same rule as the CLI)."
    elif not run.passed:
        why = "This run failed its gates, so it cannot promote anything."
    refs = sorted(
        (i for i in run.inputs if i.role in PROMOTE_ORDER),
        key=lambda i: PROMOTE_ORDER.index(i.role),
    ) or list(run.inputs)
    return {
        "why": why,
        "refs": [f"{i.kind}:{i.name}@v{i.version}" for i in refs],
        "signed_in": v.principal is not None,
        "can_write": v.allows("write"),
    }


def top_k(run: RunInfo) -> int:
    """The ranking depth worth showing: the largest metric cutoff (default 10)."""
    ks = []
    for m in run.metrics:
        _, _, k = m.partition("@")
        if k.isdigit():
            ks.append(int(k))
    return max(ks) if ks else 10


def _sort_value(q: dict[str, Any], key: str) -> Any:
    if key == "id":
        return q["id"]
    if key == "latency_ms":
        return q.get("latency")
    if key in ("route", "cost"):
        return q.get(key)
    return (q.get("metrics") or {}).get(key)


def _ordered(res: dict[str, Any], sort: str, desc: bool, search: str, can_es: bool) -> list[Any]:
    """The summary rows filtered by ``search`` and sorted (missing values last), remembered on
    the (cached, immutable) summary per view so paging re-sorts nothing."""
    memo = res.setdefault("_orders", {})
    key = (sort, desc, search, can_es)
    hit = memo.get(key)
    if hit is not None:
        return hit
    rows = res.get("rows", [])
    if search:
        rows = [
            q
            for q in rows
            if search in q["id"].lower() or (can_es and search in (q.get("query") or "").lower())
        ]
    have = [q for q in rows if _sort_value(q, sort) is not None]
    none = [q for q in rows if _sort_value(q, sort) is None]
    have.sort(key=lambda q: q["id"])
    have.sort(key=lambda q: _sort_value(q, sort), reverse=desc)
    none.sort(key=lambda q: q["id"])
    out = have + none
    if len(memo) >= 8:
        memo.clear()
    memo[key] = out
    return out


def _flags(res: dict[str, Any]) -> dict[str, Any]:
    f = res.get("_flags")
    if f is None:
        rows = res.get("rows", [])
        f = {
            "latency": any(q.get("latency") is not None for q in rows),
            "route": any(q.get("route") for q in rows),
            "answer": any("answer" in q for q in rows),
            "gen": sorted({k for q in rows for k in (q.get("gen") or {})}),
        }
        res["_flags"] = f
    return f


GEN_COLUMNS = {  # per-query generation fields the summary keeps: label, numeric, format
    "gen_latency_ms": ("generation latency", True, "ms"),
    "output_tokens": ("output tokens", True, ""),
    "verdict": ("judge", False, ""),
}


def queries_table(
    run: RunInfo, res: dict[str, Any], qp: Any, can_es: bool, per_page: int
) -> tuple[Table, dict[str, Any]]:
    metrics = list(res.get("metrics") or run.metrics)
    search = (qp.get("q") or "").strip().lower()
    sort = qp.get("qsort") or (metrics[0] if metrics else "id")
    desc = qp.get("qorder", "asc") == "desc"
    ordered = _ordered(res, sort, desc, search, can_es)
    flags = _flags(res)
    cols = [Col("id", "query id", sort="id")]
    if can_es:
        cols.append(Col("query", "query"))
    cols += [Col(m, m, num=True, sort=m, fmt="f4") for m in metrics]
    if flags["latency"]:
        cols.append(Col("latency_ms", "latency", num=True, sort="latency_ms", fmt="ms"))
    if flags["route"]:
        cols += [
            Col("route", "route", sort="route"),
            Col("cost", "cost", num=True, sort="cost", fmt="usd"),
        ]
    for g in flags["gen"]:
        label, num, f = GEN_COLUMNS.get(g, (g.replace("_", " "), False, ""))
        cols.append(Col(g, label, num=num, fmt=f))
    if flags["answer"] and can_es:
        cols.append(Col("answer", "answer"))
    t = Table("queries", cols, [], links={"id": "_href_id"}, total=len(ordered))
    info = _paginate_rows(len(ordered), qp, "qpage", per_page)
    shown = ordered if qp.get("format") in ("csv", "json") else ordered[info["slice"]]
    for q in shown:
        row = {
            "id": q["id"],
            "_href_id": f"/ui/runs/{run.id}/queries/{quote(q['id'], safe='')}",
            "query": q.get("query", "") if can_es else None,
            **{m: (q.get("metrics") or {}).get(m) for m in metrics},
            "latency_ms": q["latency"] * 1000 if q.get("latency") is not None else None,
            "route": q.get("route"),
            "cost": q.get("cost"),
            **(q.get("gen") or {}),
        }
        if "answer" in q:
            row["answer"] = q.get("answer") if can_es else None
        t.rows.append(row)
    info.pop("slice")
    info.update(sort=sort, desc=desc, search=qp.get("q") or "")
    return t, info


def _paginate_rows(total: int, qp: Any, key: str, per_page: int) -> dict[str, Any]:
    pages = max(1, -(-total // per_page))
    try:
        n = min(max(1, int(qp.get(key, 1))), pages)
    except ValueError:
        n = 1
    return {
        "page": n,
        "pages": pages,
        "total": total,
        "key": key,
        "slice": slice((n - 1) * per_page, n * per_page),
    }


def judgment(row: dict[str, Any] | None, doc: str) -> str | None:
    """relevant | non-relevant (judged 0) | unjudged, or None when judgments are hidden."""
    if row is None:
        return None
    rel = row.get("relevant") or {}
    if isinstance(rel, list):
        return "relevant" if doc in rel else "unjudged"
    if doc not in rel:
        return "unjudged"
    return "relevant" if float(rel[doc]) > 0 else "non-relevant"


def ranked_docs(
    q: dict[str, Any], row: dict[str, Any] | None, snips: dict[str, str], can_es: bool
) -> list[dict[str, Any]]:
    out = []
    for i, (doc, score) in enumerate(q.get("ranked", []), start=1):
        rel = row.get("relevant") if row else None
        grade = rel.get(doc) if isinstance(rel, dict) else (1 if rel and doc in rel else None)
        out.append(
            {
                "rank": i,
                "doc": doc,
                "score": score,
                "judgment": judgment(row, doc) if can_es else None,
                "grade": grade,
                "snippet": snips.get(doc, ""),
            }
        )
    return out


def docs_table(docs: list[dict[str, Any]], can_es: bool) -> Table:
    cols = [Col("rank", "#", num=True), Col("doc", "document")]
    if can_es:
        cols.append(Col("judgment", "judgment"))
    cols += [Col("score", "score", num=True, fmt="f4"), Col("snippet", "snippet")]
    return Table("ranked", cols, docs)


def missing_relevant(row: dict[str, Any] | None, ranked: list[Any]) -> list[str]:
    """Relevant documents the run did not retrieve at all."""
    if not row:
        return []
    rel = row.get("relevant") or {}
    got = {d for d, _ in ranked}
    wanted = rel if isinstance(rel, list) else [d for d, g in rel.items() if float(g) > 0]
    return [d for d in wanted if d not in got]


GEN_KEYS = ("answer", "usage", "verdicts", "judges", "judgments", "generation")
GEN_HIDDEN = ("answer", "samples", "usage", "verdicts", "latency_ms", "model")


def _gold(row: dict[str, Any] | None) -> Any:
    if not row:
        return None
    for k in ("answer", "answers", "gold", "gold_answer", "gold_answers"):
        if row.get(k):
            return row[k]
    return None


def generation(q: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any] | None:
    """Answer, gold answer, usage, latency, judge verdicts and every other per-query generation
    field the run recorded (shown generically), when the run generated."""
    if not any(k in q for k in GEN_KEYS):
        return None
    g: dict[str, Any] = q["generation"] if isinstance(q.get("generation"), dict) else {}
    answer = q.get("answer", g.get("answer"))
    verdicts = q.get("verdicts") or q.get("judges") or q.get("judgments") or g.get("verdicts")
    if isinstance(verdicts, dict):
        verdicts = [
            {"judge": k, **(v if isinstance(v, dict) else {"verdict": v})}
            for k, v in verdicts.items()
        ]
    elif verdicts is not None and not isinstance(verdicts, list):
        verdicts = [{"judge": "judge", "verdict": verdicts}]
    usage = q.get("usage") or g.get("usage") or {}
    lat = g.get("latency_ms")
    if lat is None and isinstance(q.get("generation_latency"), (int, float)):
        lat = float(q["generation_latency"]) * 1000
    gold = _gold(row)
    samples: list[Any] = g["samples"] if isinstance(g.get("samples"), list) else []
    return {
        "answer": answer,
        "gold": " | ".join(map(str, gold)) if isinstance(gold, list) else gold,
        "usage": usage if isinstance(usage, dict) else {"usage": usage},
        "latency_ms": float(lat) if isinstance(lat, (int, float)) else None,
        "verdicts": verdicts or [],
        "answer_metrics": {
            k: v for k, v in (q.get("metrics") or {}).items() if not re.search(r"@\d+$", k)
        },
        "model": q.get("model") or g.get("model"),
        # everything else the generation stage recorded for this query, as is
        "details": {
            k: v
            for k, v in g.items()
            if k not in GEN_HIDDEN and v is not None and not isinstance(v, (dict, list))
        },
        "samples": [
            {"answer": x.get("answer"), "latency_ms": x.get("latency_ms"), "error": x.get("error")}
            for x in samples
            if isinstance(x, dict)
        ],
    }


# ---- compare ----------------------------------------------------------------------------
def deltas_table(cmp: dict[str, Any]) -> Table:
    rows = []
    for m, s in cmp["metrics"].items():
        rows.append(
            {
                "metric": m,
                "base": s.get("mean_a"),
                "head": s.get("mean_b"),
                "delta": s.get("delta"),
                "ci_low": s.get("ci_low"),
                "ci_high": s.get("ci_high"),
                "p_value": s.get("p_value"),
                "wins": s.get("wins"),
                "losses": s.get("losses"),
                "ties": s.get("ties"),
                "n": s.get("n_shared"),
                "_cls_delta": _sign_cls(s.get("delta"), s.get("p_value")),
            }
        )
    cols = [
        Col("metric", "metric"),
        Col("base", "base", num=True, fmt="f4"),
        Col("head", "head", num=True, fmt="f4"),
        Col("delta", "Δ head − base", num=True, fmt="delta"),
        Col("ci_low", "95% CI low", num=True, fmt="delta"),
        Col("ci_high", "95% CI high", num=True, fmt="delta"),
        Col("p_value", "p (paired)", num=True, fmt="f4"),
        Col("wins", "wins", num=True),
        Col("losses", "losses", num=True),
        Col("ties", "ties", num=True),
        Col("n", "shared queries", num=True),
    ]
    return Table("deltas", cols, rows)


def _sign_cls(d: Any, p: Any) -> str:
    if d is None or abs(d) <= 1e-12:
        return "same"
    sig = p is not None and p < 0.05
    return ("up" if d > 0 else "down") + (" sig" if sig else "")


def inputs_diff_table(cmp: dict[str, Any]) -> Table:
    rows = [
        {"input": f, "base": _kv(v["a"]), "head": _kv(v["b"])} for f, v in cmp["differs"].items()
    ]
    return Table("inputs", [Col("input", "input"), Col("base", "base"), Col("head", "head")], rows)


def compare_queries(
    ra: RunInfo,
    rb: RunInfo,
    res_a: dict[str, Any],
    res_b: dict[str, Any],
    metric: str | None,
    qp: Any,
    can_es: bool,
    per_page: int,
) -> tuple[Table, dict[str, Any]]:
    qa = _by_id(res_a)
    only_changed = qp.get("changed") == "1"
    search = (qp.get("q") or "").strip().lower()
    memo = res_b.setdefault("_cmp_orders", {})
    key = (ra.id, metric, only_changed, search, can_es)
    ordered = memo.get(key)
    if ordered is None:  # sorted once per view of the (immutable) pair, then paged
        pa = (res_a.get("per_query_metrics") or {}).get(metric or "", {})
        pb = (res_b.get("per_query_metrics") or {}).get(metric or "", {})
        ordered = []
        for q in res_b.get("rows", []):
            qid = q["id"]
            if qid not in pa or qid not in pb:
                continue
            d = float(pb[qid]) - float(pa[qid])
            if only_changed and abs(d) <= 1e-12:
                continue
            text = q.get("query", "") if can_es else ""
            if search and search not in qid.lower() and search not in text.lower():
                continue
            ordered.append((qid, float(pa[qid]), float(pb[qid]), d, q))
        ordered.sort(key=lambda r: (-abs(r[3]), r[3], r[0]))
        if len(memo) >= 8:
            memo.clear()
        memo[key] = ordered
    rows = [
        {
            "id": qid,
            "query": q.get("query", "") if can_es else None,
            "base": base,
            "head": head,
            "delta": d,
            "_q": q,
        }
        for qid, base, head, d, q in (
            ordered
            if qp.get("format") in ("csv", "json")
            else ordered[_paginate_rows(len(ordered), qp, "page", per_page)["slice"]]
        )
    ]
    cols = [Col("id", "query id")]
    if can_es:
        cols.append(Col("query", "query"))
    cols += [
        Col("base", f"base {metric}", num=True, fmt="f4"),
        Col("head", f"head {metric}", num=True, fmt="f4"),
        Col("delta", "Δ", num=True, fmt="delta"),
        Col("entered", "new in top 10", num=True),
    ]
    t = Table("per_query", cols, rows, links={"id": "_href_id"}, total=len(ordered))
    info = _paginate_rows(len(ordered), qp, "page", per_page)
    info.pop("slice")
    pair = urlencode({"base": ra.id, "head": rb.id})
    for r in t.rows:  # only the shown page (or every row when downloading)
        q = r.pop("_q")
        a_top = set(top_ids(qa.get(r["id"]) or {}))
        r["entered"] = sum(1 for x in top_ids(q) if x not in a_top)
        r["_href_id"] = f"/ui/compare/queries/{quote(r['id'], safe='')}?{pair}"
        r["_cls_delta"] = _sign_cls(r["delta"], None)
    info.update(only_changed=only_changed, search=qp.get("q") or "")
    return t, info


def _by_id(res: dict[str, Any]) -> dict[str, Any]:
    hit = res.get("_by_id")
    if hit is None:
        hit = res["_by_id"] = {q["id"]: q for q in res.get("rows", [])}
    return hit


def scatter(
    res_a: dict[str, Any], res_b: dict[str, Any], metric: str | None, a: str, b: str
) -> Markup:
    pa = (res_a.get("per_query_metrics") or {}).get(metric or "", {})
    pb = (res_b.get("per_query_metrics") or {}).get(metric or "", {})
    pts = [(q, float(pa[q]), float(pb[q])) for q in sorted(set(pa) & set(pb))]
    href = "/ui/compare/queries/{id}?" + urlencode({"base": a, "head": b})
    return Markup(
        svg.scatter(
            pts,
            xlabel=f"base {metric}",
            ylabel=f"head {metric}",
            title=f"{metric} per query: base vs head",
            href=href,
        )
    )


def moved_docs(
    qa: dict[str, Any],
    qb: dict[str, Any],
    row: dict[str, Any] | None,
    snips: dict[str, str],
    k: int,
    can_es: bool,
) -> Table:
    ra = {d: i for i, (d, _) in enumerate(qa.get("ranked", [])[:k], start=1)}
    rb = {d: i for i, (d, _) in enumerate(qb.get("ranked", [])[:k], start=1)}
    rows = []
    for d in list(rb) + [d for d in ra if d not in rb]:
        change = (
            "entered"
            if d not in ra
            else "left"
            if d not in rb
            else ("up" if rb[d] < ra[d] else "down" if rb[d] > ra[d] else "same")
        )
        rows.append(
            {
                "doc": d,
                "change": change,
                "_cls_change": change,
                "base_rank": ra.get(d),
                "head_rank": rb.get(d),
                "judgment": judgment(row, d) if can_es else None,
                "_cls_judgment": f"judg-{judgment(row, d)}" if can_es else "",
                "snippet": snips.get(d, ""),
            }
        )
    order = {"entered": 0, "left": 1, "up": 2, "down": 3, "same": 4}
    rows.sort(key=lambda r: (order[r["change"]], r["head_rank"] or 10**9, r["base_rank"] or 0))
    cols = [
        Col("doc", "document"),
        Col("change", f"top {k}"),
        Col("base_rank", "base rank", num=True),
        Col("head_rank", "head rank", num=True),
    ]
    if can_es:
        cols.append(Col("judgment", "judgment"))
    cols.append(Col("snippet", "snippet"))
    return Table("docs", cols, rows)


# ---- trend ------------------------------------------------------------------------------
def trend_table(series: list[dict[str, Any]], metric: str) -> Table:
    rows = []
    for p in series:
        rows.append(
            {
                "run": p["run"],
                "_href_run": f"/ui/runs/{p['run']}",
                "started_at": when(p["started_at"]),
                metric: p["value"],
                "passed": p["passed"],
                **{f"input_{k}": v for k, v in p["inputs"].items()},
            }
        )
    roles = sorted({k for p in series for k in p["inputs"]}, key=_role_rank)
    cols = [
        Col("run", "run"),
        Col("started_at", "started (UTC)"),
        Col(metric, metric, num=True, fmt="f4"),
        Col("passed", "passed"),
    ]
    cols += [Col(f"input_{r}", r) for r in roles]
    return Table("trend", cols, list(reversed(rows)), links={"run": "_href_run"})


def trend_chart(series: list[dict[str, Any]], metric: str) -> Markup:
    pts = [
        (p["run"], p["value"], {True: "pass", False: "fail", None: "none"}[p["passed"]])
        for p in series
    ]
    return Markup(svg.line(pts, ylabel=metric, title=f"{metric} over runs", href="/ui/runs/{id}"))


def input_changes(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where an input's version changed between consecutive runs (what may explain a step)."""
    out = []
    for prev, cur in zip(series, series[1:]):
        for role, ref in cur["inputs"].items():
            if prev["inputs"].get(role) != ref:
                out.append(
                    {
                        "run": cur["run"],
                        "role": role,
                        "from": prev["inputs"].get(role),
                        "to": ref,
                        "delta": cur["value"] - prev["value"],
                    }
                )
    return out


# ---- artifacts --------------------------------------------------------------------------
def artifacts_table(arts: list[Any]) -> Table:
    rows = [
        {
            "kind": a.kind,
            "name": a.name,
            "_href_name": f"/ui/artifacts/{quote(a.kind)}/{quote(a.name)}",
            "versions": a.versions,
            "latest": a.latest,
            "_href_latest": version_href(a.kind, a.name, a.latest) if a.latest else None,
            "aliases": [f"{k}→v{v}" for k, v in sorted(a.aliases.items())],
            "created_at": when(a.created_at),
        }
        for a in arts
    ]
    cols = [
        Col("kind", "kind"),
        Col("name", "name"),
        Col("versions", "versions", num=True),
        Col("latest", "latest", num=True),
        Col("aliases", "aliases"),
        Col("created_at", "created (UTC)"),
    ]
    return Table("artifacts", cols, rows, links={"name": "_href_name", "latest": "_href_latest"})


def versions_table(hist: list[Any]) -> Table:
    rows = [
        {
            "version": h.version,
            "_href_version": version_href(h.kind, h.name, h.version),
            "digest": h.digest[:19],
            "created_at": when(h.created_at),
            "author": h.author,
            "message": h.message,
            "aliases": list(h.aliases),
            "summary": _kv(h.summary),
        }
        for h in reversed(hist)
    ]
    cols = [
        Col("version", "version", num=True),
        Col("aliases", "aliases"),
        Col("created_at", "created (UTC)"),
        Col("author", "author"),
        Col("message", "message"),
        Col("summary", "summary"),
        Col("digest", "digest"),
    ]
    return Table("versions", cols, rows, links={"version": "_href_version"})


def journal_table(events: list[Any]) -> Table:
    rows = [
        {
            "created_at": when(e.created_at),
            "alias": e.alias,
            "action": e.action,
            "from": e.from_version,
            "to": e.to_version,
            "actor": e.actor,
            "reason": e.reason,
            "run": e.run_id,
            "_href_run": f"/ui/runs/{e.run_id}" if e.run_id else None,
        }
        for e in reversed(events)
    ]
    cols = [
        Col("created_at", "when (UTC)"),
        Col("alias", "alias"),
        Col("action", "action"),
        Col("from", "from", num=True),
        Col("to", "to", num=True),
        Col("actor", "who"),
        Col("reason", "reason"),
        Col("run", "run"),
    ]
    return Table("alias_journal", cols, rows, links={"run": "_href_run"})


def used_by_table(runs: list[Any]) -> Table:
    rows = [
        {
            "run": r.id,
            "_href_run": f"/ui/runs/{r.id}",
            "name": r.name,
            "started_at": when(r.started_at),
            "status": status_word(r),
            "_cls_status": status_word(r).replace(" ", "-"),
            **{m: v for m, v in list(r.metrics.items())[:4]},
        }
        for r in runs
    ]
    ms: list[str] = []
    for r in runs:
        ms += [m for m in list(r.metrics)[:4] if m not in ms]
    cols = [
        Col("run", "run"),
        Col("name", "eval"),
        Col("started_at", "started (UTC)"),
        Col("status", "result"),
    ] + [Col(m, m, num=True, fmt="f4") for m in ms]
    return Table("runs", cols, rows, links={"run": "_href_run"})


def version_content(reg: Any, info: Any) -> dict[str, Any]:
    """What a version page shows of the content, by kind."""
    if info.kind == "prompt":
        p = reg.load_prompt(info.ref)
        data = reg.show(info.ref)[1]
        return {"type": "prompt", "data": data, "prompt": p}
    if info.kind == "routing":
        import yaml

        data = reg.show(info.ref)[1]
        return {"type": "text", "text": yaml.safe_dump(data, sort_keys=False, allow_unicode=True)}
    if info.kind == "evalset":
        es = reg.load_evalset(info.ref)
        rows = [
            {
                "id": r["id"],
                "query": r["query"],
                "split": r.get("split"),
                "relevant": _kv(r.get("relevant")),
                "answer": r.get("answer"),
                "tags": r.get("tags"),
            }
            for r in es.rows
        ]
        cols = [
            Col("id", "id"),
            Col("query", "query"),
            Col("split", "split"),
            Col("relevant", "judgments (doc=grade)"),
            Col("answer", "gold answer"),
            Col("tags", "tags"),
        ]
        return {
            "type": "evalset",
            "splits": es.splits(),
            "n": len(rows),
            "table": Table("rows", cols, rows),
        }
    if info.kind == "corpus":
        man = reg.corpus_manifest(info)
        rows = [
            {"doc": e[0], "sha256": e[1][:12], "bytes": e[2], "format": e[3]} for e in man.entries
        ]
        cols = [
            Col("doc", "document"),
            Col("format", "format"),
            Col("bytes", "bytes", num=True),
            Col("sha256", "sha256"),
        ]
        return {
            "type": "corpus",
            "n": len(rows),
            "table": Table("documents", cols, rows),
            "header": man.header,
        }
    return {"type": "text", "text": str(reg.show(info.ref)[1])}


def diff_view(reg: Any, kind: str, name: str, a: int, b: int) -> dict[str, Any]:
    ra, rb = f"{kind}:{name}@v{a}", f"{kind}:{name}@v{b}"
    if kind == "corpus":
        d = reg.corpus_diff(ra, rb)
        rows = (
            [{"doc": x, "change": "added"} for x in _ids(d.added)]
            + [{"doc": x, "change": "removed"} for x in _ids(d.removed)]
            + [{"doc": x, "change": "changed"} for x in _ids(d.changed)]
        )
        return {
            "type": "rows",
            "same": d.unchanged,
            "identical": d.identical,
            "table": Table(
                "changes", [Col("doc", "document"), Col("change", "change")], rows, links={}
            ),
        }
    d = reg.diff(ra, rb)
    if kind == "evalset":
        rows = [
            {"row": x, "change": ch}
            for ch in ("added", "removed", "changed")
            for x in (d.get("rows") or {}).get(ch, [])
        ]
        return {
            "type": "rows",
            "table": Table("changes", [Col("row", "row id"), Col("change", "change")], rows),
            "identical": d.get("identical"),
        }
    text = d.get("diff") or d.get("unified") or ""
    lines = [
        {
            "cls": "add"
            if ln.startswith("+") and not ln.startswith("+++")
            else "del"
            if ln.startswith("-") and not ln.startswith("---")
            else "hunk"
            if ln.startswith("@@")
            else "",
            "text": ln,
        }
        for ln in str(text).splitlines()
    ]
    return {"type": "unified", "lines": lines, "identical": d.get("identical"), "raw": d}


def _ids(xs: Any) -> list[str]:
    return [x[0] if isinstance(x, (list, tuple)) else getattr(x, "doc_id", str(x)) for x in xs]
