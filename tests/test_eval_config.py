"""Eval configs: the minimal config of the issue parses as written; overrides; errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from genreg.core.evalconfig import apply_overrides, load_config, parse_config, schema
from genreg.errors import ConfigError

MINIMAL = """\
name: scifact-baseline
evalset: evalset:scifact#test
corpus: corpus:scifact
embedding: {model: sentence-transformers/all-MiniLM-L6-v2}
chunking: none            # or {by: tokens, size: 256, overlap: 32}
index: flat               # or {type: hnsw, m: 32, ef_search: 128}
k: [10, 100]
metrics: [ndcg@10, recall@100, mrr@10]
# prompt: prompt:rag-answer@production   routing: routing:default   gates: [...]  (optional)
"""


def test_minimal_config_of_the_issue_parses_as_written(write) -> None:
    cfg = load_config(write("evals/scifact.yaml", MINIMAL))
    assert cfg.name == "scifact-baseline"
    assert (cfg.evalset.name, cfg.evalset.split) == ("scifact", "test")
    assert str(cfg.corpus) == "corpus:scifact"
    assert cfg.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert (cfg.chunking, cfg.index, cfg.k, cfg.depth) == ("none", "flat", [10, 100], 100)
    assert cfg.metrics == ["ndcg@10", "recall@100", "mrr@10"]
    assert cfg.prompt is None and cfg.routing is None and cfg.gates == []


def test_set_overrides_refs_nested_keys_and_lists(write) -> None:
    cfg = load_config(
        write("e.yaml", MINIMAL),
        [
            "corpus=corpus:scifact@v4",
            "k=[5, 100]",
            "index={type: hnsw, m: 32}",
            "embedding.batch_size=8",
            "gates=['ndcg@10 >= 0.6']",
        ],
    )
    assert cfg.corpus.version == 4
    assert cfg.k == [5, 100] and cfg.index == {"type": "hnsw", "m": 32}
    assert cfg.batch_size == 8 and cfg.gates[0].value == 0.6
    assert cfg.to_dict()["corpus"] == "corpus:scifact@v4"


def test_overrides_do_not_mutate_the_input() -> None:
    data = {"embedding": {"model": "a"}}
    out = apply_overrides(data, ["embedding.model=b"])
    assert data["embedding"]["model"] == "a" and out["embedding"]["model"] == "b"


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"metrics": ["ndcg@1000"]}, "max(k)"),
        ({"metrics": ["bogus@3"]}, "unknown metric"),
        ({"metrics": ["mrr@10", "mrr@10"]}, "duplicate"),
        ({"evalset": "prompt:x"}, "evalset"),
        ({"k": [0]}, "k"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"gates": ["recall@5 >> 1"]}, "gates.0"),
    ],
)
def test_invalid_config_raises_config_error_naming_the_field(edit, needle) -> None:
    data = {
        "name": "x",
        "evalset": "evalset:e",
        "corpus": "corpus:c",
        "metrics": ["mrr@10"],
        "k": [10],
    }
    with pytest.raises(ConfigError) as exc:
        parse_config({**data, **edit})
    assert needle in exc.value.message


def test_config_error_names_file_and_line(write) -> None:
    p = write("evals/bad.yaml", MINIMAL.replace("mrr@10]", "mrr@1000]"))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert f"{p}:8:" in exc.value.message


def test_missing_config_and_bad_set_are_exit_2(registry, cli, write) -> None:
    r = cli("eval", "run", "nope.yaml")
    assert r.exit_code == 2 and "not found" in r.output
    p = write("e.yaml", MINIMAL)
    r = cli("eval", "run", p, "--set", "novalue")
    assert r.exit_code == 2 and "key=value" in r.output


def test_schema_is_published(cli) -> None:
    r = cli("eval", "schema")
    assert r.exit_code == 0
    s = json.loads(r.output)
    assert s == schema() and {"evalset", "corpus", "metrics"} <= set(s["required"])
