"""Terminal views of runs: the lineage tree and the per-query table (plain text, no colour)."""

from __future__ import annotations

from typing import Any

from genreg.report import generation_nodes, readable


def tree(label: str, children: list[Any], prefix: str = "") -> list[str]:
    """Lines of a tree: each child is a string (a leaf) or ``(label, [children])``; the last
    child of each node gets ``└──``."""
    out = [label] if not prefix else []
    for i, child in enumerate(children):
        last = i == len(children) - 1
        branch, cont = ("└── ", "    ") if last else ("├── ", "│   ")
        if isinstance(child, tuple):
            out.append(prefix + branch + child[0])
            out.extend(tree("", child[1], prefix + cont))
        else:
            out.append(prefix + branch + child)
    return out


def lineage_tree(t: dict[str, Any]) -> list[str]:
    """The ``genreg lineage RUN`` tree."""
    inputs = [
        f"{i['role']}: {i['ref']}  {i['digest']}"
        + ("" if i["resolvable"] else "  [NOT RESOLVABLE]")
        for i in t["inputs"]
    ]
    retrieval = []
    for k, v in (t.get("retrieval") or {}).items():
        if v is None:
            continue
        if k == "embedding" and isinstance(v, dict):
            rest = {x: y for x, y in v.items() if x not in ("model", "digest")}
            text = f"{v.get('model')}  {v.get('digest') or ''}".rstrip()
            retrieval.append(f"embedding: {text}" + (f"  ({readable(rest)})" if rest else ""))
        else:
            retrieval.append(f"{k}: {readable(v)}")
    children: list[Any] = [f"fingerprint {t['fingerprint']}", ("inputs", inputs or ["(none)"])]
    if retrieval:
        children.append(("retrieval", retrieval))
    if t.get("generation"):
        refs = {
            i["role"].split(":", 1)[1]: i["ref"]
            for i in t["inputs"]
            if str(i["role"]).startswith("judge:")
        }
        children.append(
            ("generation", generation_nodes(t["generation"], t.get("generation_stats"), refs))
        )
    if t.get("run_file"):
        children.append(f"run file {t['run_file']}")
    code = t.get("code") or {}
    code_line = f"commit {code.get('commit') or '-'}"
    if code.get("dirty"):
        code_line += " (dirty)"
    children.append(f"code: {code_line}, genreg {code.get('genreg') or '-'}")
    packages = {k: v for k, v in (t.get("packages") or {}).items() if v}
    if packages:
        children.append("packages: " + ", ".join(f"{k} {v}" for k, v in packages.items()))
    host = t.get("host") or {}
    if host:
        ram = host.get("ram_bytes")
        gpu = ", ".join(host.get("gpu") or []) or "none"
        children.append(
            f"host: {host.get('cpu')}, {host.get('cores')} cores, "
            f"{(ram or 0) / 2**30:.1f} GiB RAM, gpu: {gpu}"
        )
    head = f"run {t['run']} ({t['name']}, {t['source']})  {t['started_at']} -> {t['ended_at']}"
    return tree(head, children)


RELEVANCE_LEGEND = "marks: ✓ relevant (grade if > 1), ✗ judged non-relevant, · not judged"


def _mark(doc: str, judged: dict[str, int]) -> str:
    if doc not in judged:
        return f"·{doc}"
    g = judged[doc]
    if g <= 0:
        return f"✗{doc}"
    return f"✓{doc}" + (f"({g})" if g > 1 else "")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def select_queries(
    queries: list[dict[str, Any]], *, sort: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The queries in table order: ``sort`` by a metric (lowest first; ``-metric`` highest
    first) or ``id``; queries without that metric sort last; at most ``limit``."""
    from genreg.errors import ConfigError

    qs = list(queries)
    if sort:
        key = sort.lstrip("-")
        desc = sort.startswith("-")
        if key == "id":
            qs.sort(key=lambda q: str(q["id"]), reverse=desc)
        else:
            known = {m for q in qs for m in (q.get("metrics") or {})}
            if key not in known:
                raise ConfigError(
                    f"--sort {sort}: metric not in this run (have: {', '.join(sorted(known))})"
                )
            have = [q for q in qs if key in (q.get("metrics") or {})]
            missing = [q for q in qs if key not in (q.get("metrics") or {})]
            have.sort(key=lambda q: q["metrics"][key], reverse=desc)
            qs = have + missing
    if limit is not None:
        qs = qs[: max(limit, 0)]
    return qs


def _num(v: Any, fmt: str = "{:.4f}") -> str:
    return "-" if v is None else fmt.format(v)


def answer_lines(
    queries: list[dict[str, Any]], golds: dict[str, list[str]], width: int = 160
) -> list[str]:
    """Per query with an answer: the answer vs the gold answer(s), usage, latency, route,
    cache, error and the judges' verdicts (``runs show --queries``)."""
    out: list[str] = []
    for q in queries:
        if "answer" not in q and "generation" not in q:
            continue
        qid = str(q["id"])
        g = q.get("generation") or {}
        u = q.get("usage") or {}
        gold = golds.get(qid) or []
        out.append(f"{qid}  answer: {_short(q.get('answer') or '(none)', width)}")
        out.append(
            f"{' ' * len(qid)}  gold:   {_short(' | '.join(gold), width) if gold else '(none: not scored)'}"
        )
        facts = [
            f"tokens {u.get('input_tokens', '-')} in / {u.get('output_tokens', '-')} out",
            f"cost {_num(u.get('cost'), '{:.6f}')}",
        ]
        if g:
            facts.append(f"{_num(g.get('latency_ms'), '{:.1f}')} ms")
            facts.append(f"route {g.get('route')} ({g.get('model')})")
            facts.append("cache hit" if g.get("cache_hit") else "called")
            if g.get("finish_reason"):
                facts.append(f"finish {g['finish_reason']}")
            if g.get("error"):
                facts.append(f"ERROR {g['error']}")
        out.append(f"{' ' * len(qid)}  " + ", ".join(facts))
        verdicts = []
        for m, v in (q.get("verdicts") or {}).items():
            if v.get("error"):
                verdicts.append(f"{m} ERROR ({_short(v['error'], 80)})")
                continue
            text = f"{m} {_num(v.get('score'), '{:.2f}')}"
            st = v.get("statements")
            if st is not None:
                text += f" ({sum(x['verdict'] for x in st)}/{len(st)} statements supported)"
            if v.get("noncommittal"):
                text += " (noncommittal)"
            if v.get("note"):
                text += f" ({v['note']})"
            verdicts.append(text)
        if verdicts:
            out.append(f"{' ' * len(qid)}  verdicts: " + ", ".join(verdicts))
    return out


def queries_rows(
    queries: list[dict[str, Any]],
    qrels: dict[str, dict[str, int]],
    metrics: list[str],
    *,
    sort: str | None = None,
    limit: int | None = None,
    top: int = 5,
    query_width: int = 48,
) -> list[dict[str, Any]]:
    """Rows of the per-query table. ``sort``: a metric (lowest first; ``-metric`` highest
    first) or ``id``; queries without that metric sort last."""
    qs = select_queries(queries, sort=sort, limit=limit)
    rows = []
    for q in qs:
        judged = qrels.get(str(q["id"]), {})
        row: dict[str, Any] = {"id": q["id"], "query": _short(q.get("query") or "", query_width)}
        for m in metrics:
            v = (q.get("metrics") or {}).get(m)
            row[m] = "-" if v is None else f"{v:.4f}"
        row["top docs"] = " ".join(_mark(str(d[0]), judged) for d in (q.get("ranked") or [])[:top])
        rows.append(row)
    return rows


def qrels_of(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Eval-set rows to ``{query id: {doc id: grade}}`` (binary lists are grade 1)."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        rel = r["relevant"]
        out[str(r["id"])] = {d: 1 for d in rel} if isinstance(rel, list) else dict(rel)
    return out
