"""Readable run views: the per-query table of `runs show --queries` and the lineage tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _evalhelp import BAD, add_evalset, trec


def _run(registry: Any, tmp_path: Path) -> Any:
    add_evalset(registry)
    return registry.eval_score(
        "evalset:gold#test", trec(tmp_path / "b.trec", BAD), metrics=["ndcg@10", "mrr@10"]
    ).run


def _table(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("per-query results"))
    return lines[start + 1 :]


def test_runs_show_queries_prints_a_readable_table(cli: Any, registry: Any, tmp_path: Path) -> None:
    run = _run(registry, tmp_path)
    r = cli("runs", "show", run.id, "--queries")
    assert r.exit_code == 0, r.output
    assert "{'" not in r.output and "': " not in r.output  # no dict reprs
    header, *rows = _table(r.output)
    assert header.split() == ["ID", "QUERY", "NDCG@10", "MRR@10", "TOP", "DOCS"]
    q1 = next(row for row in rows if row.startswith("q1 "))
    assert "how do refunds work" in q1
    # q1's relevant docs are d1 (grade 2) and d2; d7 is not judged
    assert "·d7 ✓d2 ✓d1(2)" in q1
    q3 = next(row for row in rows if row.startswith("q3 "))
    assert "✗d9" in q3  # judged non-relevant (grade 0)
    per_q = registry.run_results(run.id)["per_query_metrics"]["ndcg@10"]
    assert f"{per_q['q1']:.4f}" in q1


def test_runs_show_queries_sorts_and_limits(cli: Any, registry: Any, tmp_path: Path) -> None:
    run = _run(registry, tmp_path)
    per_q = registry.run_results(run.id)["per_query_metrics"]["ndcg@10"]
    r = cli("runs", "show", run.id, "--queries", "--sort", "ndcg@10", "--limit", "2")
    assert r.exit_code == 0, r.output
    _, *rows = _table(r.output)
    ids = [row.split()[0] for row in rows]
    assert ids == sorted(per_q, key=per_q.get)[:2]
    r = cli("runs", "show", run.id, "--queries", "--sort", "-ndcg@10", "--metric", "ndcg@10")
    _, *rows = _table(r.output)
    assert [row.split()[0] for row in rows] == sorted(per_q, key=per_q.get, reverse=True)
    assert "MRR@10" not in r.output.split("per-query results")[1]
    r = cli("runs", "show", run.id, "--queries", "--sort", "map")
    assert r.exit_code == 2 and "metric not in this run" in r.stderr


def test_runs_show_queries_json_is_unchanged(cli: Any, registry: Any, tmp_path: Path) -> None:
    run = _run(registry, tmp_path)
    d = json.loads(cli("runs", "show", run.id, "--queries", "--json", "--limit", "1").stdout)
    assert d["results"] == registry.run_results(run.id)  # the full results object
    assert len(d["results"]["queries"]) == 3


def test_lineage_tree_is_readable_with_last_children_closed(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    run = _run(registry, tmp_path)
    r = cli("lineage", run.id)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "{" not in r.output and "None" not in r.output and "True" not in r.output
    assert lines[-1].startswith("└── ")
    inputs = [ln for ln in lines if ln.startswith("│   ")]
    assert inputs and inputs[-1].startswith("│   └── evalset: evalset:gold@v1#test")


def test_lineage_tree_renders_nested_values_readably() -> None:
    from genreg.cli.display import lineage_tree

    t = {
        "run": "r1", "name": "base", "source": "eval", "fingerprint": "sha256:ab",
        "started_at": "t0", "ended_at": "t1",
        "inputs": [
            {"role": "prompt", "ref": "prompt:qa@v1", "digest": "sha256:1", "resolvable": True},
            {"role": "corpus", "ref": "corpus:kb@v2", "digest": "sha256:2", "resolvable": False},
        ],
        "retrieval": {
            "embedding": {"model": "all-MiniLM-L6-v2", "digest": "sha256:9", "dim": 384},
            "chunking": {"size": 500, "overlap": 50, "unit": "chars"},
            "index": {"type": "hnsw", "params": {"m": 32}},
            "k": [1, 5, 10],
            "index_key": None,
        },
        "code": {"commit": "abc123", "dirty": False, "genreg": "0.1.0"},
        "packages": {"torch": "2.13.0", "faiss": None},
        "host": {"cpu": "x86", "cores": 2, "ram_bytes": 2**31, "gpu": []},
    }  # fmt: skip
    out = "\n".join(lineage_tree(t))
    assert (
        "│   ├── prompt: prompt:qa@v1  sha256:1\n│   └── corpus: corpus:kb@v2  sha256:2  [NOT RESOLVABLE]"
        in out
    )
    assert "│   ├── embedding: all-MiniLM-L6-v2  sha256:9  (dim=384)" in out
    assert "│   ├── chunking: size=500, overlap=50, unit=chars" in out
    assert "│   ├── index: type=hnsw, params=(m=32)" in out
    assert "│   └── k: 1, 5, 10" in out
    assert "├── code: commit abc123, genreg 0.1.0" in out
    assert "├── packages: torch 2.13.0\n└── host: x86, 2 cores, 2.0 GiB RAM, gpu: none" in out
