"""``genreg eval score``: scoring external run files (TREC and JSONL) with lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _evalhelp import BAD, GOOD, add_evalset, jsonl, trec


def test_score_trec_run_file_matches_pytrec_eval(registry, cli, tmp_path: Path) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    add_evalset(registry)
    f = trec(tmp_path / "bad.trec", BAD)
    r = cli(
        "eval",
        "score",
        "--evalset",
        "evalset:gold#test",
        "--run",
        f,
        "--metrics",
        "ndcg@10,mrr@10,recall@2",
        "--json",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    qrels = {"q1": {"d1": 2, "d2": 1}, "q2": {"d3": 1}, "q3": {"d4": 1, "d9": 0}}
    run = {q: {d: 10.0 - i for i, d in enumerate(BAD[q], 1)} for q in qrels}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recip_rank", "recall_2"})
    res = ev.evaluate(run)
    for ours, theirs in (
        ("ndcg@10", "ndcg_cut_10"),
        ("mrr@10", "recip_rank"),
        ("recall@2", "recall_2"),
    ):
        want = sum(v[theirs] for v in res.values()) / 3
        assert out["metrics"][ours] == pytest.approx(want, abs=1e-9)
    run_rec = registry.get_run(out["run_id"])
    assert run_rec.source == "score"
    assert [i.ref for i in run_rec.inputs] == ["evalset:gold@v1#test"]
    assert run_rec.lineage["run_file"].startswith("sha256:")


def test_score_jsonl_equals_trec_of_same_ranking(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    a = cli(
        "eval",
        "score",
        "--evalset",
        "evalset:gold",
        "--run",
        trec(tmp_path / "g.trec", GOOD),
        "--json",
    )
    b = cli(
        "eval",
        "score",
        "--evalset",
        "evalset:gold",
        "--run",
        jsonl(tmp_path / "g.jsonl", GOOD),
        "--json",
    )
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ma, mb = json.loads(a.output)["metrics"], json.loads(b.output)["metrics"]
    assert ma == mb
    assert ma["ndcg@10"] == pytest.approx(1.0)


def test_query_without_results_counts_as_zero_and_is_reported(
    registry, cli, tmp_path: Path
) -> None:
    add_evalset(registry)
    partial = {"q1": GOOD["q1"], "q2": GOOD["q2"]}  # q3 retrieved nothing
    r = cli(
        "eval",
        "score",
        "--evalset",
        "evalset:gold#test",
        "--run",
        trec(tmp_path / "p.trec", partial),
        "--metrics",
        "recall@10",
        "--json",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["metrics"]["recall@10"] == pytest.approx(2 / 3)
    assert out["report"]["empty_queries"] == 1
    assert out["report"]["empty_query_ids"] == ["q3"]


def test_per_query_results_are_stored_as_one_object(registry, tmp_path: Path) -> None:
    add_evalset(registry)
    o = registry.eval_score(
        "evalset:gold#test", trec(tmp_path / "g.trec", GOOD), metrics=["mrr@10"]
    )
    res = registry.run_results(o.run.id)
    assert registry.objects.has(o.run.results_object)
    assert [q["id"] for q in res["queries"]] == ["q1", "q2", "q3"]
    assert res["queries"][0]["ranked"][0] == ["d1", 9.0]
    assert res["queries"][0]["metrics"] == {"mrr@10": 1.0}


def test_unknown_metric_is_a_config_error(registry, cli, tmp_path: Path) -> None:
    add_evalset(registry)
    r = cli(
        "eval",
        "score",
        "--evalset",
        "evalset:gold",
        "--run",
        trec(tmp_path / "g.trec", GOOD),
        "--metrics",
        "nope@3",
    )
    assert r.exit_code == 2, r.output
    assert registry.list_runs() == []


def test_duplicate_doc_in_run_file_names_the_line(registry, cli, write) -> None:
    add_evalset(registry)
    f = write("dup.trec", "q1 Q0 d1 1 2.0 x\nq1 Q0 d1 2 1.0 x\n")
    r = cli("eval", "score", "--evalset", "evalset:gold", "--run", f)
    assert r.exit_code != 0
    assert "dup.trec:2" in r.output


def test_score_answers_from_any_generator_with_answer_metrics(registry, cli, tmp_path) -> None:
    import json

    from _evalhelp import GOOD, ROWS, add_evalset, trec

    rows = [dict(r) for r in ROWS]
    rows[0]["answer"] = "Refunds take 14 days"
    rows[1]["answer"] = ["Use the reset link", "reset link"]
    add_evalset(registry, rows=rows)
    ans = tmp_path / "answers.jsonl"
    ans.write_text(
        json.dumps({"id": "q1", "answer": "refunds take 14 days.", "usage": {"input_tokens": 9}})
        + "\n"
        + json.dumps({"id": "q2", "answer": "click the reset link"})
        + "\n"
    )
    r = cli("eval", "score", "--evalset", "evalset:gold#test", "--answers", ans, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    m = out["metrics"]
    # q1: exact match. q2: "click reset link" vs "use reset link" P = R = 2/3 -> F1 2/3;
    # vs "reset link" P = 2/3, R = 1 -> F1 0.8; max over golds = 0.8. q3: no gold, excluded.
    assert m["exact_match"] == 0.5
    assert abs(m["token_f1"] - (1 + 0.8) / 2) < 1e-9
    assert set(m) == {"exact_match", "token_f1", "rouge_l"}
    assert out["report"]["answers"]["no_gold"] == 1
    both = cli(
        "eval",
        "score",
        "--evalset",
        "evalset:gold#test",
        "--answers",
        ans,
        "--run",
        trec(tmp_path / "run.trec", GOOD),
        "--json",
    )
    assert both.exit_code == 0, both.output
    assert {"ndcg@10", "token_f1"} <= set(json.loads(both.stdout)["metrics"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "q1", "answer": "x"}\n{"id": "nope", "answer": "y"}\n')
    r = cli("eval", "score", "--evalset", "evalset:gold#test", "--answers", bad)
    assert r.exit_code == 2 and "bad.jsonl:2: id 'nope' is not a query" in r.output


def test_answers_file_splits_on_newline_only(registry, cli, tmp_path) -> None:
    """U+2028, U+2029 and U+0085 are legal inside a JSON string written without escaping:
    the answers file is split on "\\n" only, and line numbers count "\\n" lines (issue 14)."""
    import json

    from _evalhelp import ROWS, add_evalset
    from genreg.generation.answers_file import read_answers

    rows = [dict(r) for r in ROWS]
    rows[0]["answer"] = "Refunds take 14 days"
    add_evalset(registry, rows=rows)
    odd = "refunds take\u2028 14\u0085 days\u2029"
    ans = tmp_path / "answers.jsonl"
    ans.write_text(
        "\ufeff"
        + json.dumps({"id": "q1", "answer": odd}, ensure_ascii=False)
        + "\n"
        + json.dumps({"id": "q2", "answer": "click\u0085 the reset link"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    got = read_answers(ans)
    assert got["q1"]["answer"] == odd and got["q1"]["_line"] == 1
    assert got["q2"]["_line"] == 2
    r = cli("eval", "score", "--evalset", "evalset:gold#test", "--answers", ans, "--json")
    assert r.exit_code == 0, r.output
    assert "token_f1" in json.loads(r.stdout)["metrics"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"id": "q1", "answer": "a\u2028b"}, ensure_ascii=False)
        + "\n"
        + '{"id": "nope", "answer": "y"}\n',
        encoding="utf-8",
    )
    r = cli("eval", "score", "--evalset", "evalset:gold#test", "--answers", bad)
    assert r.exit_code == 2 and "bad.jsonl:2: id 'nope' is not a query" in r.output
