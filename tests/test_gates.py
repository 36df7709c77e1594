"""Gates: parsing, evaluation, and exit codes 0 (pass) / 1 (gate failed) / 2 (config error)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _evalhelp import BAD, GOOD, add_evalset, trec
from genreg.core.gates import Side, check, parse_gate
from genreg.errors import ConfigError


def test_gate_grammar_parses_absolute_relative_and_significance() -> None:
    g = parse_gate("recall@5 >= 0.70")
    assert (g.kind, g.metric, g.op, g.value) == ("absolute", "recall@5", ">=", 0.7)
    g = parse_gate("ndcg@10 >= baseline - 0.01")
    assert (g.kind, g.metric, g.value) == ("relative", "ndcg@10", -0.01)
    assert parse_gate("mrr@10 > baseline").value == 0.0
    g = parse_gate("no_significant_regression(ndcg@10, p=0.01)")
    assert (g.kind, g.metric, g.p) == ("significance", "ndcg@10", 0.01)
    g = parse_gate({"no_significant_regression": {"metric": "ndcg@10", "p": 0.05}})
    assert (g.kind, g.p) == ("significance", 0.05)


@pytest.mark.parametrize(
    "bad", ["recall@5 >= ", "recall@5 ~ 0.7", "baseline >= 1", "x >= baseline * 2"]
)
def test_unparseable_gate_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_gate(bad)


def test_relative_gate_uses_baseline_mean() -> None:
    run = Side({"ndcg@10": 0.695}, {})
    base = Side({"ndcg@10": 0.70}, {}, "b1")
    assert check([parse_gate("ndcg@10 >= baseline - 0.01")], run, base)[0].passed
    assert not check([parse_gate("ndcg@10 >= baseline - 0.001")], run, base)[0].passed


def test_significance_gate_fails_only_on_a_significant_drop() -> None:
    base_pq = {"ndcg@10": {f"q{i}": 0.9 for i in range(40)}}
    worse = {"ndcg@10": {f"q{i}": 0.3 for i in range(40)}}
    noisy = {"ndcg@10": {f"q{i}": 0.9 - (0.01 if i % 2 else -0.01) for i in range(40)}}
    gate = [parse_gate("no_significant_regression(ndcg@10)")]
    base = Side({"ndcg@10": 0.9}, base_pq, "b")
    bad = check(gate, Side({"ndcg@10": 0.3}, worse), base)[0]
    assert not bad.passed and bad.p_value < 0.05
    assert check(gate, Side({"ndcg@10": 0.9}, noisy), base)[0].passed


def test_gate_on_metric_not_computed_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not computed"):
        check([parse_gate("map >= 0.1")], Side({"ndcg@10": 1.0}, {}), None)


def _score(cli, path: Path, *extra: str):
    return cli(
        "eval",
        "score",
        "--evalset",
        "evalset:gold#test",
        "--run",
        path,
        "--metrics",
        "ndcg@10,mrr@10",
        *extra,
    )


def test_exit_code_0_when_gates_pass(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    r = _score(cli, trec(tmp_path / "g.trec", GOOD), "--gate", "ndcg@10 >= 0.9", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["passed"] is True
    assert registry.get_run(out["run_id"]).passed is True


def test_exit_code_1_when_a_gate_fails_and_run_is_recorded_as_failed(
    registry, cli, tmp_path: Path
) -> None:
    add_evalset(registry)
    r = _score(
        cli,
        trec(tmp_path / "b.trec", BAD),
        "--gate",
        "ndcg@10 >= 0.9",
        "--gate",
        "mrr@10 >= 0.1",
        "--junit",
        tmp_path / "j.xml",
        "--markdown",
        tmp_path / "s.md",
    )
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output
    (run,) = registry.list_runs()
    assert run.passed is False
    assert [g["passed"] for g in run.report["gates"]] == [False, True]
    xml = (tmp_path / "j.xml").read_text()
    assert 'failures="1"' in xml and 'tests="2"' in xml
    assert "**FAIL**" in (tmp_path / "s.md").read_text()


def test_exit_code_2_on_bad_gate_or_missing_baseline(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    f = trec(tmp_path / "g.trec", GOOD)
    assert _score(cli, f, "--gate", "ndcg@10 >>= 1").exit_code == 2
    r = _score(cli, f, "--gate", "ndcg@10 >= baseline - 0.01")
    assert r.exit_code == 2, r.output
    assert "baseline" in r.output
    assert _score(cli, f, "--gate", "ndcg@10 >= 0.1", "--baseline", "nosuchrun").exit_code == 2
    assert registry.list_runs() == []


def test_relative_gate_against_baseline_run_through_cli(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    good = registry.eval_score(
        "evalset:gold#test", trec(tmp_path / "g.trec", GOOD), metrics=["ndcg@10"]
    )
    r = _score(
        cli,
        trec(tmp_path / "b.trec", BAD),
        "--gate",
        "ndcg@10 >= baseline - 0.01",
        "--baseline",
        good.run.id,
        "--json",
    )
    assert r.exit_code == 1, r.output
    out = json.loads(r.output)
    assert out["baseline"] == good.run.id
    assert out["gates"][0]["baseline"] == pytest.approx(1.0)
