"""Runs get names, tags and parameters (listed, filtered); with a baseline the summary,
terminal output and ``--json`` carry each metric's delta, CI and p-value."""

from __future__ import annotations

import json
from pathlib import Path

from _evalhelp import BAD, GOOD, add_evalset, trec


def _score(cli, f: Path, *extra: str):
    return cli("eval", "score", "--evalset", "evalset:gold#test", "--run", f, *extra)


def test_run_name_and_tags_are_recorded_listed_and_filtered(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    g, b = trec(tmp_path / "g.trec", GOOD), trec(tmp_path / "b.trec", BAD)
    r = _score(cli, g, "--run-name", "good-one", "--tag", "team=search", "--tag", "pr=12", "--json")
    assert r.exit_code == 0, r.output
    first = json.loads(r.output)
    assert first["run_name"] == "good-one" and first["tags"] == {"team": "search", "pr": "12"}
    r = _score(cli, b, "--tag", "team=ranking", "--json")
    assert r.exit_code == 0, r.output
    second = json.loads(r.output)
    run = registry.get_run(first["run_id"])
    assert run.run_name == "good-one" and run.tags == {"team": "search", "pr": "12"}
    r = cli("runs", "list", "--tag", "team=search", "--json")
    assert r.exit_code == 0, r.output
    assert [x["id"] for x in json.loads(r.output)] == [first["run_id"]]
    assert [x.id for x in registry.list_runs(tags={"team": "ranking"})] == [second["run_id"]]
    assert registry.list_runs(tags={"team": "search", "pr": "13"}) == []
    out = cli("runs", "list").output
    header = out.splitlines()[0]
    assert "RUN NAME" in header and "TAGS" in header and "PARAMS" in header
    assert "good-one" in out and "team=search,pr=12" in out
    assert _score(cli, g, "--tag", "novalue").exit_code == 2


def test_set_overrides_are_parameters_filterable_in_runs_list(registry, cli) -> None:
    """Parameters are the --set overrides as given; recorded through the service, listed and
    filtered through the CLI (the eval-run CLI path is covered end to end with the model)."""
    from genreg.core.lineage import Lineage
    from genreg.core.runinfo import RunInfo

    def put(run_id: str, params: dict[str, str]) -> None:
        registry.runs_repo.create(
            RunInfo(
                run_id,
                "cranfield",
                "eval",
                "done",
                None,
                "sha256:00",
                f"t{run_id}",
                None,
                "me",
                lineage=Lineage("eval"),
                params=params,
            )
        )

    put("run1aaaa", {"chunking": "none", "k": "[1,5,10]"})
    put("run2bbbb", {"chunking": "tokens:128:16"})
    r = cli("runs", "list", "--param", "chunking=none", "--json")
    assert r.exit_code == 0, r.output
    assert [x["id"] for x in json.loads(r.output)] == ["run1aaaa"]
    assert json.loads(r.output)[0]["params"] == {"chunking": "none", "k": "[1,5,10]"}
    both = cli("runs", "list", "--param", "chunking=none", "--param", "k=[1,5,10]", "--json")
    assert [x["id"] for x in json.loads(both.output)] == ["run1aaaa"]
    assert "chunking=tokens:128:16" in cli("runs", "list").output


def test_baseline_deltas_in_json_terminal_and_markdown(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    good = registry.eval_score("evalset:gold#test", trec(tmp_path / "g.trec", GOOD))
    bad = trec(tmp_path / "b.trec", BAD)
    r = _score(cli, bad, "--baseline", good.run.id, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    d = out["baseline_deltas"]
    assert list(d) == ["ndcg@10", "recall@100", "mrr@10"]
    m = d["mrr@10"]
    assert m["baseline"] == 1.0 and m["value"] == out["metrics"]["mrr@10"]
    assert m["delta"] == m["value"] - m["baseline"] < 0
    assert m["ci_low"] <= m["delta"] <= m["ci_high"] and 0 < m["p_value"] <= 1
    assert m["losses"] == 3 and m["n_shared"] == 3
    md = tmp_path / "s.md"
    r = _score(cli, bad, "--baseline", good.run.id, "--markdown", md)
    assert r.exit_code == 0, r.output
    assert f"against baseline run {good.run.id}" in r.output
    assert "DELTA" in r.output and "95% CI" in r.output and f"{m['delta']:+.4f}" in r.output
    text = md.read_text()
    assert f"Against baseline run `{good.run.id}`" in text
    assert f"| mrr@10 | {m['value']:.4f} | 1.0000 | {m['delta']:+.4f} |" in text
    # recorded: runs show renders the same table
    shown = cli("runs", "show", registry.list_runs()[0].id).output
    assert "Against baseline run" in shown and f"{m['delta']:+.4f}" in shown


def test_no_baseline_no_deltas(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    r = _score(cli, trec(tmp_path / "g.trec", GOOD), "--json")
    assert json.loads(r.output)["baseline_deltas"] == {}
