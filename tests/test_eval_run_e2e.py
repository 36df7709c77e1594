"""End to end with the real embedding model on the shipped example: ``genreg eval run``
resolves every ref, records lineage, reports latency and cost, gates, and detects repeats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "evals" / "baseline.yaml"

pytestmark = pytest.mark.skipif(
    not (REPO / "examples" / "corpus").is_dir()
    or not (REPO / "evals" / "sets" / "gold.jsonl").is_file(),
    reason="example corpus / gold eval set not present",
)


@pytest.fixture
def project(registry, tmp_path: Path):
    for sub in ("registry", "evals/sets"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    registry.push([tmp_path / "registry", tmp_path / "evals"])
    registry.snapshot("docs", REPO / "examples" / "corpus")
    return registry


def test_eval_run_records_full_lineage_gates_and_detects_repeat(
    project, cli, tmp_path: Path
) -> None:
    reg = project
    r = cli("eval", "run", BASELINE, "--set", "chunking=none", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert list(out["metrics"]) == ["recall@5", "ndcg@10", "mrr@10", "precision@5"]
    assert out["passed"] is True and out["identical_to"] is None
    lin = out["lineage"]
    assert set(lin["inputs"]) == {"evalset", "corpus", "prompt", "routing"}
    assert lin["inputs"]["evalset"]["split"] == "test"
    assert lin["embedding"]["digest"].startswith("sha256:")
    assert lin["chunking"] == {"by": "none"} and lin["index"]["type"] == "flat"
    assert lin["k"] == [1, 5, 10]
    assert lin["packages"]["torch"] and lin["host"]["cores"] >= 1
    assert lin["started_at"] <= lin["ended_at"]
    rep = out["report"]
    assert rep["latency"]["queries"] == rep["n_queries"] > 0 and rep["latency"]["p95_ms"] > 0
    cost = rep["cost"]
    assert cost["token_counts"] == "estimate" and cost["total_cost"] > 0
    assert sum(v["share"] for v in cost["routes"].values()) == pytest.approx(1.0)
    # every recorded input is re-resolvable to the same digest
    run = reg.get_run(out["run_id"])
    for i in run.inputs:
        assert reg.resolve(f"{i.kind}:{i.name}@v{i.version}").digest == i.digest
    q = reg.run_results(run.id)["queries"][0]
    assert q["ranked"] and q["route"] and q["tokens"]["input"] > 0 and q["latency"] > 0
    # the same eval again: same fingerprint, reported, still recorded
    again = cli("eval", "run", BASELINE, "--set", "chunking=none", "--json", "--quiet")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["identical_to"] == out["run_id"]
    # a failing gate: exit 1; promote refuses it, accepts the passing run
    bad = cli(
        "eval", "run", BASELINE, "--set", "chunking=none", "--gate", "recall@5 >= 0.999", "--quiet"
    )
    assert bad.exit_code == 1, bad.output
    failed = reg.list_runs()[0]
    assert (
        cli("promote", "prompt:rag-answer@v1", "--to", "production", "--run", failed.id).exit_code
        == 1
    )
    ok = cli("promote", "prompt:rag-answer@v1", "--to", "production", "--run", out["run_id"])
    assert ok.exit_code == 0, ok.output
    # baseline through the alias: the run that promoted prompt:rag-answer@production
    rel = cli(
        "eval",
        "run",
        BASELINE,
        "--set",
        "chunking=none",
        "--gate",
        "ndcg@10 >= baseline - 0.01",
        "--baseline",
        "prompt:rag-answer@production",
        "--json",
        "--quiet",
    )
    assert rel.exit_code == 0, rel.output
    assert json.loads(rel.output)["baseline"] == out["run_id"]


def test_config_errors_exit_2_before_any_work(project, cli, write) -> None:
    cfg = write("evals/bad.yaml", BASELINE.read_text().replace("ndcg@10", "ndcg@50"))
    r = cli("eval", "run", cfg)
    assert r.exit_code == 2 and "max(k)" in r.output
    assert cli("eval", "run", BASELINE, "--set", "corpus=corpus:nope").exit_code == 2
    assert cli("eval", "run", BASELINE, "--set", "index={type: nosuch}").exit_code == 2
    assert cli("eval", "run", BASELINE, "--set", "bogus=1").exit_code == 2
    r = cli("eval", "run", BASELINE, "--set", "embedding.model=no-such/model-xyz")
    assert r.exit_code == 2 and "no-such/model-xyz" in r.output
    assert project.list_runs() == []
