"""``genreg eval run|score|schema``, ``genreg runs list|show|compare``, ``genreg lineage``,
``genreg promote``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from genreg.cli._common import JsonOpt, QuietOpt, echo, emit_json, open_registry, progress, table

eval_app = typer.Typer(no_args_is_help=True)
runs_app = typer.Typer(no_args_is_help=True)

GateOpt = typer.Option(None, "--gate", help="Extra gate, e.g. 'recall@5 >= 0.7' (repeatable).")
BaselineOpt = typer.Option(
    None, "--baseline", help="Baseline run id, or a ref whose alias names the run that promoted it."
)
MarkdownOpt = typer.Option(None, "--markdown", help="Write a Markdown summary to this file.")
JunitOpt = typer.Option(None, "--junit", help="Write JUnit XML (one test per gate) to this file.")


RunNameOpt = typer.Option(
    None, "--run-name", help="A name for this run (runs list shows it next to the eval name)."
)
TagOpt = typer.Option(None, "--tag", help="Tag the run: key=value (repeatable).")


def _finish(outcome: Any, json_out: bool, markdown: Path | None, junit: Path | None) -> None:
    from genreg.cli import github
    from genreg.report import (
        DELTA_COLUMNS,
        ann_line,
        cost_line,
        delta_rows,
        generation_lines,
        inputs_lines,
        latency_line,
        unmatched_line,
    )
    from genreg.report import junit as to_junit
    from genreg.report import markdown as to_md

    if markdown:
        Path(markdown).write_text(to_md(outcome), encoding="utf-8")
    if github.active():  # GITHUB_ACTIONS=true: step summary + ::error:: per failed gate
        github.report(outcome.to_dict(), to_md(outcome), json_out=json_out)
    if junit:
        Path(junit).write_text(to_junit(outcome), encoding="utf-8")
    o = outcome.to_dict()
    unmatched = unmatched_line(o["report"])
    if unmatched and not json_out:  # --json: the count is in report.run_file_unmatched
        typer.echo(f"warning: {unmatched}", err=True)
    if json_out:
        emit_json(o)
    else:
        label = o["name"] + (f" / {o['run_name']}" if o.get("run_name") else "")
        echo(f"run {o['run_id']}  ({label})")
        if o["identical_to"]:
            echo(f"identical to run {o['identical_to']} (same fingerprint)")
        if o["baseline_deltas"]:
            echo(f"against baseline run {o['baseline']} (delta = this run - baseline):")
            table(delta_rows(o["baseline_deltas"]), DELTA_COLUMNS)
        else:
            table(
                [{"metric": m, "value": f"{v:.4f}"} for m, v in o["metrics"].items()],
                ["metric", "value"],
            )
        rep = o["report"]
        if rep.get("empty_queries"):
            echo(
                f"{rep['empty_queries']} of {rep['n_queries']} queries retrieved nothing (scored 0)"
            )
        lat = latency_line(rep.get("latency") or {})
        if lat:
            echo(lat)
        ann = ann_line(rep)
        if ann:
            echo(ann)
        if rep.get("cost"):
            echo(cost_line(rep["cost"]))
        for line in generation_lines(rep):
            echo(line)
        for line in inputs_lines(outcome.run.lineage):
            echo(f"  {line}")
        for g in o["gates"]:
            echo(f"gate {'PASS' if g['passed'] else 'FAIL'}  {g['gate']}  ({g['detail']})")
    if o["passed"] is False:
        raise typer.Exit(1)


def dry_run_lines(d: dict[str, Any]) -> list[str]:
    """The terminal form of ``eval run --dry-run``."""
    from genreg.report import cost_line

    out = [f"dry run of {d['name']} ({d['config']}): every check passed; nothing was called"]
    out += [f"  {i['role']}: {i['ref']}  {i['digest']}" for i in d["inputs"]]
    out.append(f"stages: {' -> '.join(d['stages'])}")
    out.append(
        f"{d['queries']} queries; templates rendered for query {d['sample_query']}; "
        f"metrics: {', '.join(d['metrics'])}"
    )
    if d["gates"]:
        out.append("gates: " + "; ".join(d["gates"]))
    if d["calls"]:
        calls = ", ".join(f"{k} {v}" for k, v in d["calls"].items())
        out.append(f"calls a run would make (before cache hits, cache {d.get('cache')}): {calls}")
    if d.get("api_key_env"):
        out.append("API-key variables set: " + ", ".join(d["api_key_env"]))
    est = d.get("estimate")
    if est:
        rep = f" x {est['repeats']} repeats" if est.get("repeats", 1) > 1 else ""
        out.append(f"estimate{rep}: {cost_line(est)}")
        out.append(f"  (context {est['context']}; output tokens from the routes' expectations)")
        if d["calls"].get("judge"):
            out.append("  judge calls are counted, not priced, in the estimate")
    return out


@eval_app.command("run")
def run(
    file: Path = typer.Argument(..., help="Eval config (YAML), e.g. evals/baseline.yaml."),
    set_: list[str] = typer.Option(None, "--set", help="Override a config key: key=value."),
    gate: list[str] = GateOpt,
    baseline: str = BaselineOpt,
    json_out: bool = JsonOpt,
    markdown: Path = MarkdownOpt,
    junit: Path = JunitOpt,
    quiet: bool = QuietOpt,
    run_name: str = RunNameOpt,
    tag: list[str] = TagOpt,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Check everything cheap (refs, config, templates, metrics, gates, API-key "
        "variables) and print the estimated cost; call no model, build no index, record nothing.",
    ),
) -> None:
    """Resolve every ref of an eval config, evaluate retrieval, record the run and check gates
    (exit 0 pass, 1 gate failed, 2 config error). --set overrides are recorded as the run's
    parameters."""
    if dry_run:
        d = open_registry().eval_dry_run(
            file, overrides=list(set_ or []), gates=list(gate or []), baseline=baseline
        )
        if json_out:
            emit_json(d)
        else:
            for line in dry_run_lines(d):
                echo(line)
        return
    with progress(quiet) as cb:
        outcome = open_registry().eval_run(
            file,
            overrides=list(set_ or []),
            gates=list(gate or []),
            baseline=baseline,
            progress=cb,
            run_name=run_name,
            tags=list(tag or []),
        )
    _finish(outcome, json_out, markdown, junit)


@eval_app.command("score")
def score(
    evalset: str = typer.Option(..., "--evalset", help="Eval set ref, e.g. evalset:gold#test."),
    run_file: Path = typer.Option(
        None, "--run", help="Run file: TREC (qid Q0 doc rank score tag) or JSONL."
    ),
    answers: Path = typer.Option(
        None, "--answers", help='Answers JSONL: {"id", "answer", "contexts"?, "usage"?} per line.'
    ),
    metrics: str = typer.Option(
        None, "--metrics", help="Comma-separated (default ndcg@10,recall@100,mrr@10 with --run)."
    ),
    name: str = typer.Option("score", "--name", help="Eval name to record the run under."),
    gate: list[str] = GateOpt,
    baseline: str = BaselineOpt,
    json_out: bool = JsonOpt,
    markdown: Path = MarkdownOpt,
    junit: Path = JunitOpt,
    run_name: str = RunNameOpt,
    tag: list[str] = TagOpt,
) -> None:
    """Score a run file from any retriever and/or answers from any generator against an eval
    set (retrieval and answer metrics) and record it with lineage."""
    ms = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    outcome = open_registry().eval_score(
        evalset,
        run_file,
        answers=answers,
        metrics=ms,
        name=name,
        gates=list(gate or []),
        baseline=baseline,
        run_name=run_name,
        tags=list(tag or []),
    )
    _finish(outcome, json_out, markdown, junit)


@eval_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of eval configs."""
    from genreg.core.evalconfig import schema as get

    emit_json(get())


def _labels(d: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in d.items())


def _row(r: Any) -> dict[str, Any]:
    m = ", ".join(f"{k}={v:.4f}" for k, v in list(r.metrics.items())[:3])
    passed = {True: "pass", False: "FAIL", None: "-"}[r.passed]
    return {
        "id": r.id,
        "name": r.name,
        "run name": r.run_name or "",
        "source": r.source,
        "gate": passed,
        "started": r.started_at[:19],
        "tags": _labels(r.tags),
        "params": _labels(r.params),
        "metrics": m,
    }


RUN_COLUMNS = ["id", "name", "run name", "source", "gate", "started", "tags", "params", "metrics"]


@runs_app.command("list")
def list_(
    used: str = typer.Option(
        None, "--used", help="Only runs that used this exact version (a ref)."
    ),
    name: str = typer.Option(None, "--name", help="Only runs of this eval."),
    tag: list[str] = typer.Option(
        None, "--tag", help="Only runs with this tag: key=value (repeatable: all must match)."
    ),
    param: list[str] = typer.Option(
        None,
        "--param",
        help="Only runs with this parameter (--set override): key=value (repeatable).",
    ),
    limit: int = typer.Option(None, "--limit", help="At most N runs."),
    json_out: bool = JsonOpt,
) -> None:
    """List runs, newest first, filtered by an input used, eval name, tags or parameters."""
    from genreg.service.runs import parse_labels

    runs = open_registry().list_runs(
        used=used,
        name=name,
        limit=limit,
        tags=parse_labels(list(tag or []), "--tag"),
        params=parse_labels(list(param or []), "--param"),
    )
    if json_out:
        emit_json([r.to_dict() for r in runs])
        return
    table([_row(r) for r in runs], RUN_COLUMNS)


@runs_app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    queries: bool = typer.Option(False, "--queries", help="Include per-query results."),
    sort: str = typer.Option(
        None,
        "--sort",
        help="With --queries: sort by a metric, lowest first ('-ndcg@10': highest first) or 'id'.",
    ),
    limit: int = typer.Option(None, "--limit", help="With --queries: at most N queries."),
    metric: list[str] = typer.Option(
        None,
        "--metric",
        help="With --queries: metric column(s) to show (default: the run's first 3).",
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Show a run: metrics, gates, baseline deltas, latency, cost and lineage (--queries: a
    per-query table)."""
    from genreg.core.runinfo import RunOutcome
    from genreg.report import markdown as to_md

    reg = open_registry()
    r = reg.get_run(run_id)
    d = r.to_dict()
    if queries:
        d["results"] = reg.run_results(r.id)
    if json_out:
        emit_json(d)
        return
    echo(to_md(RunOutcome.from_run(r)))
    if queries:
        _queries_table(reg, r, d["results"], sort=sort, limit=limit, metrics=list(metric or []))


def _queries_table(
    reg: Any, run: Any, results: dict[str, Any], *, sort: Any, limit: Any, metrics: list[str]
) -> None:
    from genreg.cli.display import (
        RELEVANCE_LEGEND,
        answer_lines,
        qrels_of,
        queries_rows,
        select_queries,
    )
    from genreg.core.answers import gold_answers

    ev = run.input("evalset")
    es_rows = reg.load_evalset(ev.ref).rows if ev is not None else []
    qrels = qrels_of(es_rows)
    chosen = metrics or list(results.get("metrics") or run.metrics)[:3]
    rows = queries_rows(results.get("queries", []), qrels, chosen, sort=sort, limit=limit)
    n = len(results.get("queries", []))
    echo("")
    echo(f"per-query results ({len(rows)} of {n}; {RELEVANCE_LEGEND})")
    table(rows, ["id", "query", *chosen, "top docs"])
    shown = select_queries(results.get("queries", []), sort=sort, limit=limit)
    lines = answer_lines(shown, {str(r["id"]): gold_answers(r) for r in es_rows})
    if lines:
        echo("")
        echo("answers (answer vs gold, usage, latency, route, cache, judge verdicts):")
        for line in lines:
            echo(f"  {line}")


@runs_app.command("compare")
def compare(
    a: str = typer.Argument(..., help="Run A (the baseline)."),
    b: str = typer.Argument(..., help="Run B (the candidate); deltas are B - A."),
    json_out: bool = JsonOpt,
) -> None:
    """Metric deltas with paired bootstrap CI and randomization p-value, per-query wins and
    losses, and which lineage inputs differ (warns when the delta is not attributable)."""
    c = open_registry().compare_runs(a, b)
    if json_out:
        emit_json(c)
        return
    for w in c["warnings"]:
        typer.echo(f"WARNING: {w}", err=True)
    echo(f"A = {c['a']} ({c['a_name']})   B = {c['b']} ({c['b_name']})")
    rows = []
    for m, s in c["metrics"].items():
        if not s.get("n_shared"):
            rows.append({"metric": m, "delta": "no shared queries"})
            continue
        rows.append(
            {
                "metric": m,
                "a": f"{s['mean_a']:.4f}",
                "b": f"{s['mean_b']:.4f}",
                "delta": f"{s['delta']:+.4f}",
                "95% ci": f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}]",
                "p": f"{s['p_value']:.4f}",
                "w/l/t": f"{s['wins']}/{s['losses']}/{s['ties']}",
            }
        )
    table(rows, ["metric", "a", "b", "delta", "95% ci", "p", "w/l/t"])
    echo("inputs that differ: " + (", ".join(c["differs"]) or "none"))
    for f, v in c["differs"].items():
        echo(f"  {f}: {v['a']}  ->  {v['b']}")
    if c["environment_note"]:
        echo(c["environment_note"] + " (not an input: the delta stays attributable)")
    if c.get("ann_recall"):
        echo("ann recall (index vs exact search; index error, not a retrieval metric):")
        for m, v in c["ann_recall"].items():
            a_, b_ = ("-" if x is None else f"{x:.4f}" for x in (v["a"], v["b"]))
            echo(f"  {m}: {a_}  ->  {b_}")
    first: dict[str, Any] = next(iter(c["metrics"].values()), {})
    if first.get("most_regressed"):
        echo(f"most regressed queries ({next(iter(c['metrics']))}):")
        for q in first["most_regressed"]:
            echo(f"  {q['query']}: {q['a']:.4f} -> {q['b']:.4f} ({q['delta']:+.4f})")
    ans = c.get("answers")
    if ans and ans["queries"]:
        echo(f"answers of the most changed queries ({ans['metric']}, A | B):")
        for q in ans["queries"]:
            echo(f"  {q['query']} ({q['a']:.3f} -> {q['b']:.3f}): {q['text']}")
            echo(f"    A: {q['answer_a']}")
            echo(f"    B: {q['answer_b']}")


def lineage(
    run_id: str = typer.Argument(None, help="Run id (or prefix) whose inputs to show."),
    used_by: str = typer.Option(
        None, "--used-by", help="Reverse: runs that used this exact version."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """The tree of exact inputs of a run, or (--used-by REF) every run that used a version."""
    from genreg.errors import ConfigError

    reg = open_registry()
    if bool(run_id) == bool(used_by):
        raise ConfigError("give either RUN or --used-by REF")
    if used_by:
        runs = reg.used_by(used_by)
        if json_out:
            emit_json(
                [
                    {
                        "run": r.id,
                        "name": r.name,
                        "started_at": r.started_at,
                        "passed": r.passed,
                        "metrics": r.metrics,
                    }
                    for r in runs
                ]
            )
            return
        table([_row(r) for r in runs], RUN_COLUMNS)
        return
    t = reg.lineage(run_id)
    if json_out:
        emit_json(t)
        return
    from genreg.cli.display import lineage_tree

    for line in lineage_tree(t):
        echo(line)


def promote(
    ref: str = typer.Argument(..., help="The exact version to promote, e.g. prompt:rag-answer@v3."),
    to: str = typer.Option(..., "--to", help="Alias to move, e.g. production."),
    run_id: str = typer.Option(..., "--run", help="A run that used REF and passed its gates."),
    reason: str = typer.Option("", "--reason", help="Reason recorded in the alias journal."),
    json_out: bool = JsonOpt,
) -> None:
    """Move an alias only if RUN passed its gates and used exactly that version."""
    ev = open_registry().promote(ref, to, run_id, reason=reason)
    if json_out:
        emit_json(ev.to_dict())
        return
    echo(f"{ev.kind}:{ev.name}@{ev.alias} -> v{ev.to_version} (run {ev.run_id})")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval", help="Run eval configs and score run files.")
    app.add_typer(runs_app, name="runs", help="List, show and compare recorded eval runs.")
    app.command(name="lineage")(lineage)
    app.command(name="promote")(promote)
