"""Recorded runs: list/show/lineage, fingerprints, compare, baselines through aliases, promote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _evalhelp import BAD, GOOD, ROWS, add_evalset, trec


def _score(registry, tmp_path: Path, ranked, *, name="score", evalset="evalset:gold#test", **kw):
    f = trec(tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.trec", ranked)
    return registry.eval_score(evalset, f, metrics=["ndcg@10", "mrr@10"], name=name, **kw)


def test_repeated_identical_run_is_detected_by_fingerprint(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    f = trec(tmp_path / "g.trec", GOOD)
    first = json.loads(
        cli("eval", "score", "--evalset", "evalset:gold#test", "--run", f, "--json").output
    )
    r = cli("eval", "score", "--evalset", "evalset:gold#test", "--run", f)
    assert r.exit_code == 0, r.output
    assert f"identical to run {first['run_id']}" in r.output
    second = registry.list_runs()[0]
    assert second.id != first["run_id"] and second.fingerprint == first["fingerprint"]
    assert second.report["identical_to"] == first["run_id"]
    other = _score(registry, tmp_path, BAD)
    assert other.identical_to is None and other.run.fingerprint != first["fingerprint"]


def test_runs_list_filters_by_input_and_name(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    a = _score(registry, tmp_path, GOOD, name="alpha")
    add_evalset(
        registry, rows=[*ROWS, {"id": "q5", "query": "x", "relevant": ["d1"], "split": "test"}]
    )
    b = _score(registry, tmp_path, GOOD, name="beta")
    r = cli("runs", "list", "--used", "evalset:gold@v1", "--json")
    assert r.exit_code == 0, r.output
    assert [x["id"] for x in json.loads(r.output)] == [a.run.id]
    assert [x.id for x in registry.list_runs(name="beta")] == [b.run.id]
    assert [x.id for x in registry.used_by("evalset:gold@v2")] == [b.run.id]
    r = cli("lineage", "--used-by", "evalset:gold@v2", "--json")
    assert [x["run"] for x in json.loads(r.output)] == [b.run.id]
    assert b.run.id in cli("runs", "list").output


def test_recorded_inputs_are_all_re_resolvable(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    o = _score(registry, tmp_path, GOOD)
    checks = registry.verify_run_inputs(o.run.id)
    assert checks and all(c["ok"] for c in checks)
    for i in o.run.inputs:
        assert registry.resolve(f"{i.kind}:{i.name}@v{i.version}").digest == i.digest
    r = cli("lineage", o.run.id[:8], "--json")
    assert r.exit_code == 0, r.output
    tree = json.loads(r.output)
    assert tree["inputs"][0]["resolvable"] is True
    assert tree["code"]["genreg"] and tree["packages"]["python"]
    assert tree["host"]["cores"] >= 1
    assert "fingerprint" in cli("lineage", o.run.id).output


def test_runs_show_prints_metrics_and_queries(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    o = _score(registry, tmp_path, GOOD)
    r = cli("runs", "show", o.run.id, "--queries", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["metrics"]["mrr@10"] == pytest.approx(1.0)
    assert len(d["results"]["queries"]) == 3
    assert "mrr@10" in cli("runs", "show", o.run.id).output


def test_compare_single_change_is_attributable(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    a, b = _score(registry, tmp_path, GOOD), _score(registry, tmp_path, BAD)
    r = cli("runs", "compare", a.run.id, b.run.id, "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.output)
    assert list(c["differs"]) == ["run_file"] and c["attributable"] and c["warnings"] == []
    m = c["metrics"]["mrr@10"]
    assert m["delta"] < 0 and m["losses"] == 3 and m["wins"] == 0
    assert m["ci_low"] <= m["delta"] <= m["ci_high"] and 0 < m["p_value"] <= 1
    assert m["most_regressed"][0]["delta"] < 0


def test_compare_warns_loudly_when_several_inputs_differ(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    a = _score(registry, tmp_path, GOOD)
    add_evalset(
        registry, rows=[*ROWS, {"id": "q5", "query": "x", "relevant": ["d1"], "split": "test"}]
    )
    b = _score(registry, tmp_path, BAD)
    c = registry.compare_runs(a.run.id, b.run.id)
    assert set(c["differs"]) == {"evalset", "run_file"}
    assert not c["attributable"]
    assert any("EVAL SETS DIFFER" in w for w in c["warnings"])
    assert any("2 INPUTS CHANGED" in w for w in c["warnings"])
    r = cli("runs", "compare", a.run.id, b.run.id)
    assert r.exit_code == 0
    assert "WARNING: EVAL SETS DIFFER" in r.output


def test_baseline_resolves_through_alias_journal(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    good = _score(registry, tmp_path, GOOD, gates=["ndcg@10 >= 0.5"])
    _score(registry, tmp_path, BAD)  # a later run of the same version, not promoted
    r = cli("promote", "evalset:gold@v1", "--to", "production", "--run", good.run.id, "--json")
    assert r.exit_code == 0, r.output
    assert registry.resolve_baseline("evalset:gold@production").id == good.run.id
    # a version ref (no alias): the latest run that used it
    assert registry.resolve_baseline("evalset:gold@v1").id != good.run.id
    out = _score(
        registry,
        tmp_path,
        BAD,
        gates=["ndcg@10 >= baseline - 0.01"],
        baseline="evalset:gold@production",
    )
    assert out.baseline == good.run.id and out.passed is False


def test_promote_records_run_and_refuses_failed_or_foreign_runs(
    registry, cli, tmp_path: Path
) -> None:
    add_evalset(registry)
    passed = _score(registry, tmp_path, GOOD, gates=["ndcg@10 >= 0.5"])
    failed = _score(registry, tmp_path, BAD, gates=["ndcg@10 >= 0.9"])
    ungated = _score(registry, tmp_path, GOOD)
    add_evalset(
        registry, rows=[*ROWS, {"id": "q5", "query": "x", "relevant": ["d1"], "split": "test"}]
    )
    r = cli("promote", "evalset:gold@v1", "--to", "production", "--run", failed.run.id)
    assert r.exit_code == 1 and "failed its gate" in r.output
    assert (
        cli("promote", "evalset:gold@v1", "--to", "production", "--run", ungated.run.id).exit_code
        == 1
    )
    r = cli("promote", "evalset:gold@v2", "--to", "production", "--run", passed.run.id)
    assert r.exit_code == 1 and "not evalset:gold@v2" in r.output
    assert registry.alias_history("evalset:gold") == []
    r = cli("promote", "evalset:gold@v1", "--to", "production", "--run", passed.run.id)
    assert r.exit_code == 0, r.output
    (ev,) = registry.alias_history("evalset:gold", "production")
    assert ev.run_id == passed.run.id and ev.to_version == 1
