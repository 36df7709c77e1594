"""The web UI's persisted read side: the per-run UI index (written when a run is recorded, or on
the first view of an older run), query drill-downs read from one shard, comparisons stored per
pair (and computed in the background for large pairs), snippets looked up by doc id, per-run
CIs by a seeded bootstrap, the compare page's environment note."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from _evalhelp import BAD, GOOD, add_evalset, trec
from genreg.api.app import create_app
from genreg.api.auth import ApiConfig
from genreg.core.runinfo import RunInput
from genreg.service.run_queries import (
    COMPARE_KIND,
    INDEX_KIND,
    RunQueries,
    index_key,
    metric_cis,
    shard_of,
    summarize,
    top_ids,
    unpack_entry,
)


@pytest.fixture
def pair(registry, tmp_path: Path) -> dict[str, Any]:
    add_evalset(registry)
    mk = {"metrics": ["ndcg@10", "mrr@10"], "name": "search"}
    good = registry.eval_score("evalset:gold#test", trec(tmp_path / "g.trec", GOOD), **mk).run
    bad = registry.eval_score("evalset:gold#test", trec(tmp_path / "b.trec", BAD), **mk).run
    return {"good": good, "bad": bad}


def client(registry) -> TestClient:
    return TestClient(create_app(registry=registry, config=ApiConfig()))


def copy_run(registry, run: Any, **changes: Any) -> Any:
    new = dataclasses.replace(run, id=uuid.uuid4().hex[:16], **changes)
    registry.runs_repo.create(new)
    return registry.get_run(new.id)


def test_recording_a_run_stores_its_ui_index(registry, pair) -> None:
    run = pair["good"]
    d = registry.derived.get(index_key(run.results_object))
    assert d is not None and d.kind == INDEX_KIND
    results = registry.run_results(run.id)
    stored = json.loads(gzip.decompress(registry.objects.get_bytes(d.object_digest)))
    assert [r["id"] for r in stored["rows"]] == [q["id"] for q in results["queries"]]
    assert "per_query_values" in stored  # compact: values aligned with rows
    assert RunQueries(registry).summary(run)["per_query_metrics"] == results["per_query_metrics"]
    # every shard is named in the derived row's metadata (what gc keeps) and holds its queries
    assert d.meta["shards"] == stored["shard_objects"]
    for q in results["queries"]:
        digest = stored["shard_objects"][shard_of(q["id"], stored["shards"])]
        shard = json.loads(gzip.decompress(registry.objects.get_bytes(digest)))
        assert unpack_entry(shard[q["id"]]) == q
    # a fresh reader (a new server) answers from the stored index
    rq = RunQueries(registry)
    assert rq.summary(run)["rows"] == stored["rows"]
    assert [top_ids(r) for r in stored["rows"]] == [
        [d for d, _ in q["ranked"][:10]] for q in results["queries"]
    ]
    assert rq.query(run, "q1") == next(q for q in results["queries"] if q["id"] == "q1")


def test_a_run_without_an_index_is_indexed_on_first_view(registry, pair) -> None:
    run = pair["bad"]
    results = registry.run_results(run.id)
    blob = gzip.compress(json.dumps(results, indent=1).encode(), mtime=0)  # a new object
    obj = registry.objects.put_bytes(blob)
    old = copy_run(registry, run, results_object=obj)
    assert registry.derived.get(index_key(obj)) is None
    c = client(registry)
    r = c.get(f"/ui/runs/{old.id}")
    assert r.status_code == 200 and f'href="/ui/runs/{old.id}/queries/q1"' in r.text
    assert registry.derived.get(index_key(obj)) is not None
    q = c.get(f"/ui/runs/{old.id}/queries/q2")
    assert q.status_code == 200 and "d8" in q.text
    assert c.get(f"/ui/runs/{old.id}/queries/nope").status_code == 404


def test_summary_keeps_the_top_documents_and_clips_long_answers() -> None:
    results = {
        "metrics": ["token_f1"],
        "per_query_metrics": {"token_f1": {"a": 0.5}},
        "queries": [
            {
                "id": "a",
                "query": "x",
                "ranked": [[f"d{i}", 1.0 / (i + 1)] for i in range(30)],
                "answer": "w " * 400,
                "usage": {"input_tokens": 3},
                "metrics": {"token_f1": 0.5},
            }
        ],
    }
    s, shards = summarize(results)
    row = s["rows"][0]
    assert top_ids(row) == [f"d{i}" for i in range(10)]
    assert len(row["answer"]) == 303 and row["answer"].endswith("...") and row["generated"]
    entry = unpack_entry(shards[0]["a"])
    assert entry["answer"] == "w " * 400 and entry["ranked"] == results["queries"][0]["ranked"]
    odd = {"id": "b", "ranked": [["has\nnewline", 0.1], ["x", -2.5e-300]]}
    assert unpack_entry(summarize({"queries": [odd]})[1][0]["b"]) == odd


def test_comparison_is_stored_per_pair(registry, pair) -> None:
    a, b = pair["good"], pair["bad"]
    rq = RunQueries(registry)
    out = rq.compare(a, b)
    assert "pending" not in out
    want = registry.compare_runs(a.id, b.id)
    assert out["metrics"] == want["metrics"]
    stored = [d for d in registry.derived.list(COMPARE_KIND) if d.meta == {"a": a.id, "b": b.id}]
    assert len(stored) == 1
    assert RunQueries(registry).compare(a, b)["metrics"] == want["metrics"]  # read back


def test_large_pair_is_compared_in_the_background(registry, pair, monkeypatch) -> None:
    monkeypatch.setattr(RunQueries, "sync_limit", 0)
    a, b = pair["good"], pair["bad"]
    c = client(registry)
    url = f"/ui/compare?base={a.id}&head={b.id}"
    first = c.get(url)
    assert first.status_code == 200
    # the exact parts are there at once; CI and p-values say they are being computed
    assert 'id="stats-pending"' in first.text
    assert "Computing the 95% CIs and p-values" in first.text
    assert 'data-status="/ui/compare/status?base=' in first.text
    assert "most-regressed" in first.text
    deadline = time.monotonic() + 60
    while not c.get(f"/ui/compare/status?base={a.id}&head={b.id}").json()["ready"]:
        assert time.monotonic() < deadline, "background comparison did not finish"
        time.sleep(0.1)
    done = c.get(url).text
    assert 'id="stats-pending"' not in done
    want = registry.compare_runs(a.id, b.id)["metrics"]["ndcg@10"]
    assert f"{want['ci_low']:+.4f}" in done and f"{want['p_value']:.4f}" in done
    assert c.get("/ui/compare/status?base=nope&head=nope").status_code == 404


def test_cheap_comparison_matches_the_full_one_where_it_is_exact(registry, pair) -> None:
    from genreg.service.run_queries import cheap_compare

    a, b = pair["good"], pair["bad"]
    rq = RunQueries(registry)
    quick = cheap_compare(a, b, rq.summary(a), rq.summary(b))
    full = registry.compare_runs(a.id, b.id)
    for m, s in full["metrics"].items():
        for k in ("mean_a", "mean_b", "delta", "wins", "losses", "ties"):
            assert quick["metrics"][m][k] == pytest.approx(s[k]), (m, k)
        assert quick["metrics"][m]["most_regressed"] == s["most_regressed"]
        assert quick["metrics"][m]["ci_low"] is None
    for k in ("differs", "attributable", "warnings", "environment_note", "only_in_a"):
        assert quick[k] == full[k], k


def test_drill_down_snippets_are_read_by_doc_id(registry, pair, tmp_path: Path) -> None:
    src = tmp_path / "kb.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": d, "text": f"text of document {d}: refunds and passwords"}) + "\n"
            for d in ("d1", "d2", "d3", "d7", "d8")
        )
    )
    v = registry.snapshot("kb", src).version
    run = pair["good"]
    pin = RunInput("corpus", "corpus", "kb", v.version, v.digest)
    withc = copy_run(registry, run, inputs=[*run.inputs, pin])
    rq = RunQueries(registry)
    got = rq.snippets(withc, ["d1", "not-a-doc"])
    assert got["d1"] == "text of document d1: refunds and passwords" and got["not-a-doc"] == ""
    assert registry.corpus_documents(v.ref, ["d2", "zzz"]).keys() == {"d2"}
    assert rq.snippets(run, ["d1"]) == {}  # a scored run file has no corpus
    c = client(registry)
    html = c.get(f"/ui/runs/{withc.id}/queries/q1").text
    assert "text of document d7: refunds" in html and 'id="no-snippets"' not in html
    assert 'id="no-snippets"' in c.get(f"/ui/runs/{run.id}/queries/q1").text


def test_run_page_cis_are_a_seeded_bootstrap(registry, pair) -> None:
    vals = {"m": {f"q{i}": (1.0 if i == 0 else 0.0) for i in range(20)}}
    ci = metric_cis(vals)["m"]
    # the normal approximation's lower bound would be below 0; the bootstrap's never is
    assert ci["mean"] - 1.96 * ci["se"] < 0 <= ci["ci_low"] <= ci["mean"] <= ci["ci_high"] <= 1
    assert metric_cis(vals) == metric_cis(vals)  # seeded: deterministic
    same = metric_cis({"m": {"a": 0.5, "b": 0.5}})["m"]
    assert same["ci_low"] == same["ci_high"] == 0.5
    html = client(registry).get(f"/ui/runs/{pair['good'].id}").text
    assert "percentile bootstrap, 1000 resamples, seed 0" in html
    cis = RunQueries(registry).summary(pair["bad"])["cis"]
    page = client(registry).get(f"/ui/runs/{pair['bad'].id}").text
    assert f"{cis['ndcg@10']['ci_low']:.4f}" in page


def test_compare_page_notes_the_environment_apart_from_inputs(registry, pair) -> None:
    base = pair["good"]
    a = copy_run(
        registry, base, lineage=dataclasses.replace(base.lineage, packages={"torch": "2.12.0"})
    )
    b = copy_run(
        registry, base, lineage=dataclasses.replace(base.lineage, packages={"torch": "2.13.0"})
    )
    html = client(registry).get(f"/ui/compare?base={a.id}&head={b.id}").text
    assert "environment differs: torch 2.12.0 -&gt; 2.13.0" in html
    assert "No input differs." in html  # the environment is not an input
    assert "cannot be attributed" not in html
    assert not re.search(r"<td>\s*torch\s*</td>", html)


def _answers_run(registry: Any, tmp_path: Path, answers: dict[str, str], name: str) -> Any:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {"id": q, "answer": a, "usage": {"input_tokens": 40, "output_tokens": len(a)}}
            )
            + "\n"
            for q, a in answers.items()
        )
    )
    return registry.eval_score(
        "evalset:qa#test",
        trec(tmp_path / f"{name}.trec", GOOD),
        answers=path,
        metrics=["ndcg@10"],
        name="qa",
    ).run


def test_generated_answers_beside_gold_with_usage_and_verdicts(registry, tmp_path: Path) -> None:
    from _evalhelp import ROWS

    rows = [dict(r) for r in ROWS]
    rows[0]["answer"] = "Refunds take 14 days"
    rows[1]["answer"] = ["Use the reset link", "reset link"]
    add_evalset(registry, "qa", rows)
    a = _answers_run(registry, tmp_path, {"q1": "refunds take 14 days", "q2": "no idea"}, "a")
    b = _answers_run(registry, tmp_path, {"q1": "about a week", "q2": "use the reset link"}, "b")
    c = client(registry)
    token = registry.create_token("grader", ["read", "evalsets:read"])[0]
    assert c.post("/ui/login", data={"token": token}, follow_redirects=False).status_code == 303
    page = c.get(f"/ui/runs/{a.id}").text
    for col in ("answer", "output tokens", "token_f1"):
        assert re.search(rf"<th[^>]*>\s*(<a [^>]*>)?{col}\b", page), col
    q = c.get(f"/ui/runs/{a.id}/queries/q1").text
    assert '<blockquote class="gen">refunds take 14 days</blockquote>' in q
    assert '<blockquote class="gold">Refunds take 14 days</blockquote>' in q
    assert "output tokens</dt><dd>20</dd>" in q and "input tokens</dt><dd>40</dd>" in q
    gold2 = c.get(f"/ui/runs/{a.id}/queries/q2").text
    assert "Use the reset link | reset link" in gold2  # every gold answer
    cq = c.get(f"/ui/compare/queries/q1?base={a.id}&head={b.id}").text
    assert "refunds take 14 days" in cq and "about a week" in cq
    # whatever else a generator/judge records per query is shown as is
    results = registry.run_results(b.id)
    for entry in results["queries"]:
        entry["generation"] = {"latency_ms": 812.5, "finish_reason": "stop", "attempts": 2}
        entry["verdicts"] = {"faithful": {"verdict": "no", "reason": "not in the context"}}
    blob = gzip.compress(json.dumps(results).encode(), mtime=0)
    judged = copy_run(registry, b, results_object=registry.objects.put_bytes(blob))
    page = c.get(f"/ui/runs/{judged.id}").text
    assert re.search(r"<th[^>]*>\s*generation latency", page) and "812.5 ms" in page
    assert "faithful: no" in page
    q = c.get(f"/ui/runs/{judged.id}/queries/q2").text
    assert "finish reason</dt><dd>stop</dd>" in q and "attempts</dt><dd>2</dd>" in q
    assert "<td>faithful</td>" in q and "not in the context" in q
    assert "generation latency</dt><dd>812.5 ms</dd>" in q


def test_a_failed_background_comparison_says_why(registry, pair, monkeypatch) -> None:
    monkeypatch.setattr(RunQueries, "sync_limit", 0)
    monkeypatch.setattr(RunQueries, "n_resamples", 0)  # the comparing process refuses it
    a, b = pair["good"], pair["bad"]
    c = client(registry)
    assert 'id="stats-pending"' in c.get(f"/ui/compare?base={a.id}&head={b.id}").text
    deadline = time.monotonic() + 60
    while not c.get(f"/ui/compare/status?base={a.id}&head={b.id}").json()["ready"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    html = c.get(f"/ui/compare?base={a.id}&head={b.id}").text
    assert 'id="stats-failed"' in html and "n_resamples must be a positive integer" in html
    assert 'id="stats-pending"' not in html


def test_a_lost_shard_falls_back_to_the_results(registry, pair) -> None:
    run = pair["good"]
    d = registry.derived.get(index_key(run.results_object))
    for digest in d.meta["shards"]:
        registry.objects.delete(digest)
    rq = RunQueries(registry)
    want = next(q for q in registry.run_results(run.id)["queries"] if q["id"] == "q2")
    assert rq.query(run, "q2") == want
    assert client(registry).get(f"/ui/runs/{run.id}/queries/q2").status_code == 200
