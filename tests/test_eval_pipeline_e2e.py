"""End to end with the real embedding model: true per-query latency, --set overrides recorded
as parameters and filterable, baseline deltas of a real run in --json and Markdown."""

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


def test_real_run_latency_params_tags_and_baseline_deltas(project, cli, tmp_path: Path) -> None:
    reg = project
    r = cli(
        "eval", "run", BASELINE, "--set", "chunking=none", "--tag", "team=search",
        "--run-name", "first", "--json", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    a = json.loads(r.output)
    lat = a["report"]["latency"]
    assert lat["mode"] == "per-query" and a["lineage"]["latency"] == "per-query"
    assert lat["p50_ms"] != lat["p99_ms"] and lat["p50_ms"] > 0
    per_q = [q["latency"] for q in reg.run_results(a["run_id"])["queries"]]
    assert len(set(per_q)) > 1  # measured per query, not a batch's mean
    assert a["params"] == {"chunking": "none"} and a["tags"] == {"team": "search"}
    assert a["run_name"] == "first"

    md = tmp_path / "summary.md"
    r = cli(
        "eval", "run", BASELINE, "--set", "chunking=none", "--set", "latency=per-batch",
        "--baseline", a["run_id"], "--markdown", md, "--json", "--quiet",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    b = json.loads(r.output)
    assert b["report"]["latency"]["mode"] == "per-batch"
    assert b["params"] == {"chunking": "none", "latency": "per-batch"}
    assert b["fingerprint"] == a["fingerprint"]  # how latency is measured changes no number
    assert b["identical_to"] == a["run_id"]
    d = b["baseline_deltas"]
    assert set(d) == set(b["metrics"])
    for m, v in d.items():
        assert v["baseline"] == pytest.approx(a["metrics"][m]) and v["delta"] == pytest.approx(0)
        assert v["ci_low"] <= v["delta"] <= v["ci_high"] and v["n_shared"] == v["ties"]
    text = md.read_text()
    assert f"Against baseline run `{a['run_id']}`" in text and "| ndcg@10 |" in text
    assert "Latency (per-batch, batch 32)" in text

    r = cli("runs", "list", "--param", "latency=per-batch", "--json")
    assert [x["id"] for x in json.loads(r.output)] == [b["run_id"]]
    r = cli("runs", "list", "--tag", "team=search", "--param", "chunking=none", "--json")
    assert [x["id"] for x in json.loads(r.output)] == [a["run_id"]]
