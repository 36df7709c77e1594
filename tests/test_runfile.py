"""Run files: TREC and JSONL read to the same run; every error names file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genreg.core.metrics import evaluate
from genreg.core.runfile import read_run, write_trec_run
from genreg.errors import ConfigError, InvalidArtifact

TREC = """q1 Q0 d1 1 2.5 bm25
q1 Q0 d2 2 1.5 bm25

q2 Q0 d3 1 -0.25 bm25
"""
EXPECTED = {"q1": {"d1": 2.5, "d2": 1.5}, "q2": {"d3": -0.25}}


def test_trec_and_both_jsonl_shapes_read_to_the_same_run(write) -> None:
    rows = "\n".join(
        json.dumps({"qid": q, "docid": d, "score": s})
        for q, docs in EXPECTED.items()
        for d, s in docs.items()
    )
    grouped = "\n".join(
        json.dumps({"qid": q, "results": [{"docid": d, "score": s} for d, s in docs.items()]})
        for q, docs in EXPECTED.items()
    )
    assert read_run(write("run.trec", TREC)) == EXPECTED
    assert read_run(write("rows.jsonl", rows)) == EXPECTED
    assert read_run(write("grouped.txt", grouped)) == EXPECTED  # detected by content


def test_ranks_in_the_file_are_ignored_scores_decide(write) -> None:
    # ranks claim d1 is first, scores say d2: like trec_eval, the scores win
    path = write("run.trec", "q Q0 d1 1 0.1 x\nq Q0 d2 2 0.9 x\n")
    res = evaluate({"q": {"d2": 1}}, read_run(path), ["mrr@10"])
    assert res.mean["mrr@10"] == 1.0


def test_written_run_reads_back_identically_in_trec_eval_order(tmp_path: Path) -> None:
    run = {"q2": {"b": 0.1, "a": 0.1, "c": 1 / 3}, "q1": {"x": 7.0}}
    path = tmp_path / "out.trec"
    write_trec_run(run, path, tag="dense")
    lines = path.read_text().splitlines()
    assert lines == [
        "q1 Q0 x 1 7.0 dense",
        f"q2 Q0 c 1 {1 / 3!r} dense",
        "q2 Q0 b 2 0.1 dense",
        "q2 Q0 a 3 0.1 dense",
    ]
    assert read_run(path) == run


def test_write_refuses_ids_or_tags_with_whitespace(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="doc id 'a b'"):
        write_trec_run({"q": {"a b": 1.0}}, tmp_path / "r.trec")
    with pytest.raises(ConfigError, match="tag"):
        write_trec_run({"q": {"a": 1.0}}, tmp_path / "r.trec", tag="my run")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "dup.trec",
            "q Q0 d1 1 1.0 t\nq Q0 d2 2 0.5 t\nq Q0 d1 3 0.2 t\n",
            ":3: duplicate doc 'd1'",
        ),
        ("short.trec", "q Q0 d1 1 1.0 t\nq Q0 d2 0.5\n", ":2: expected 6 fields"),
        ("nan.trec", "q Q0 d1 1 1.0 t\n\nq Q0 d2 2 abc t\n", ":3: score 'abc' is not a number"),
        ("nan2.trec", "q Q0 d1 1 nan t\n", ":1: score is NaN"),
        ("empty.trec", "\n  \n", ":1: run file is empty"),
        ("bad.jsonl", '{"qid": "q", "docid": "d", "score": 1}\n{"qid": \n', ":2: invalid JSON"),
        ("str.jsonl", '{"qid": "q", "docid": "d", "score": "high"}\n', ":1: score 'high'"),
        ("noid.jsonl", '{"qid": "q", "score": 1}\n', ":1: 'docid' must be"),
        ("list.jsonl", "[1, 2]\n", ":1: expected a JSON object"),
        (
            "dupg.jsonl",
            '{"qid": "q", "results": [{"docid": "a", "score": 1}]}\n'
            '{"qid": "q", "results": [{"docid": "a", "score": 2}]}\n',
            ":2: duplicate doc 'a' for query 'q' (first at line 1)",
        ),
    ],
)
def test_bad_run_file_error_names_file_and_line(write, name, content, message) -> None:
    path = write(name, content)
    with pytest.raises(InvalidArtifact) as e:
        read_run(path)
    assert f"{path}{message}" in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_run_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="not found"):
        read_run(tmp_path / "nope.trec")


def test_query_listed_with_no_results_reads_as_an_empty_query(write) -> None:
    path = write(
        "run.jsonl",
        '{"qid": "a", "results": [{"docid": "d1", "score": 1}]}\n{"qid": "b", "results": []}\n',
    )
    run = read_run(path)
    assert run == {"a": {"d1": 1.0}, "b": {}}
    res = evaluate({"a": {"d1": 1}, "b": {"d2": 1}}, run, ["recall@10"])
    assert res.empty_queries == ["b"] and res.mean["recall@10"] == 0.5
