"""The eval run as a pipeline of stages: every cheap check before any expensive stage, the
stage order of both pipelines, stages added without touching retrieval or scoring, and the
bring-your-own-run-file pipeline recording no fake corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _evalhelp import GOOD, ROWS, add_evalset, trec
from genreg.core.refs import parse_ref
from genreg.pipeline import Hit, Pipeline, QueryRecord, RunRequest, RunState
from genreg.pipeline.stages import now

PROMPT_NEEDS_AUDIENCE = """\
template: "For {{ audience }}: {{ question }} {{ context }}"
variables:
  type: object
  properties:
    question: {type: string}
    context: {type: string}
    audience: {type: string}
  required: [question, context, audience]
"""
ROUTING = """\
default:
  target:
    model: m
    price: {input_per_1m: 1.0, output_per_1m: 1.0}
"""


class Spy:
    """A stage that records when it is called and what it saw."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def prepare(self, state: RunState) -> None:
        self.log.append(f"prepare {self.name} records={len(state.records)}")

    def run(self, state: RunState, progress: Any) -> None:
        hits = sum(len(r.hits) for r in state.records)
        self.log.append(f"run {self.name} hits={hits}")


class JudgeLike:
    """A stage computing its own per-query metric (what a judge stage does)."""

    name = "judge"

    def prepare(self, state: RunState) -> None:
        state.metric_names.append("top_is_d1")
        state.stage_metrics.add("top_is_d1")

    def run(self, state: RunState, progress: Any) -> None:
        for r in state.records:
            r.verdicts = {"top": r.hits[0].doc_id if r.hits else None}
            r.metrics["top_is_d1"] = 1.0 if r.hits and r.hits[0].doc_id == "d1" else 0.0


def _request(run_file: Path, **kw: Any) -> RunRequest:
    return RunRequest(
        source="score",
        name="piped",
        metrics=["mrr@10"],
        evalset=parse_ref("evalset:gold#test", kind="evalset"),
        config={"name": "piped"},
        run_file=run_file,
        **kw,
    )


def test_shipped_pipelines_have_the_documented_stage_order(registry) -> None:
    assert registry.eval_pipeline().names == ["resolve", "retrieve", "cost", "score", "record"]
    assert registry.score_pipeline().names == ["resolve", "read-run-file", "score", "record"]


def test_every_prepare_runs_before_any_run(registry, tmp_path: Path) -> None:
    add_evalset(registry)
    log: list[str] = []
    pipe = registry.score_pipeline()
    pipe.insert(Spy("after-read", log), after="read-run-file")
    pipe.insert(Spy("first", log), before="resolve")
    state = pipe.run(RunState(_request(trec(tmp_path / "g.trec", GOOD)), now()))
    assert log == [
        "prepare first records=0",
        "prepare after-read records=3",  # resolve already found the queries
        "run first hits=0",
        "run after-read hits=7",  # read-run-file ran in between
    ]
    assert state.outcome is not None and state.outcome.run.metrics["mrr@10"] == 1.0


def test_an_added_stage_contributes_per_query_metrics_scored_and_stored(
    registry, tmp_path: Path
) -> None:
    add_evalset(registry)
    pipe = registry.score_pipeline()
    pipe.insert(JudgeLike(), after="read-run-file")
    state = pipe.run(RunState(_request(trec(tmp_path / "g.trec", GOOD)), now()))
    run = state.outcome.run
    assert list(run.metrics) == ["mrr@10", "top_is_d1"]
    assert run.metrics["top_is_d1"] == pytest.approx(1 / 3)  # only q1's top doc is d1
    q1 = registry.run_results(run.id)["queries"][0]
    assert q1["verdicts"] == {"top": "d1"} and q1["metrics"]["top_is_d1"] == 1.0


def test_gate_on_a_stage_metric_is_checked(registry, tmp_path: Path) -> None:
    from genreg.core.gates import Gate

    add_evalset(registry)
    pipe = registry.score_pipeline()
    pipe.insert(JudgeLike(), after="read-run-file")
    gate = Gate("top_is_d1 >= 0.5", "absolute", "top_is_d1", ">=", 0.5)
    req = _request(trec(tmp_path / "g.trec", GOOD), gates=[gate])
    out = pipe.run(RunState(req, now())).outcome
    assert out.passed is False and out.gates[0].actual == pytest.approx(1 / 3)


def test_stage_names_must_be_unique() -> None:
    with pytest.raises(ValueError):
        Pipeline([Spy("a", []), Spy("a", [])])


def test_query_record_result_is_the_stored_results_entry() -> None:
    rec = QueryRecord.from_row(ROWS[1])
    assert rec.relevant == {"d3": 1}
    rec.hits = [Hit("d3", 2.0, "text"), Hit("d8", 1.0)]
    rec.latency = 0.004
    rec.metrics = {"mrr@10": 1.0}
    assert rec.result() == {
        "id": "q2",
        "query": "reset my password",
        "ranked": [["d3", 2.0], ["d8", 1.0]],
        "latency": 0.004,
        "metrics": {"mrr@10": 1.0},
    }


def test_eval_score_records_no_fake_corpus(registry, tmp_path: Path) -> None:
    add_evalset(registry)
    o = registry.eval_score("evalset:gold#test", trec(tmp_path / "g.trec", GOOD))
    assert "corpus" not in o.run.config and "external" not in json.dumps(o.run.to_dict())
    assert [i.role for i in o.run.inputs] == ["evalset"]
    assert o.run.lineage.run_file and o.run.lineage.embedding is None


def _project(registry, write) -> Path:
    registry.register("prompt", "audience", write("p/audience.yaml", PROMPT_NEEDS_AUDIENCE))
    registry.register("routing", "default", write("r/default.yaml", ROUTING))
    write("c/d3.md", "reset your password from the login page")
    registry.snapshot("docs", write("c/d1.md", "refunds are processed in 5 days").parent)
    add_evalset(registry)
    return write(
        "evals/e.yaml",
        "name: e\nevalset: evalset:gold#test\ncorpus: corpus:docs\n"
        "prompt: prompt:audience\nrouting: routing:default\n"
        # a model that does not exist: if anything tried to index, the error would say so
        "embedding: {model: no-such/model-xyz}\n"
        "metrics: [mrr@10]\n",
    )


def test_template_failure_names_prompt_and_query_before_any_indexing(registry, cli, write) -> None:
    cfg = _project(registry, write)
    r = cli("eval", "run", cfg)
    assert r.exit_code == 2, r.output
    assert "prompt:audience@v1" in r.output and "'q1'" in r.output
    assert "audience" in r.output and "no-such/model-xyz" not in r.output
    assert registry.list_indexes() == [] and registry.list_runs() == []


def test_gate_on_an_uncomputed_metric_fails_before_any_indexing(registry, cli, write) -> None:
    cfg = _project(registry, write)
    r = cli("eval", "run", cfg, "--set", "prompt=null", "--gate", "recall@5 >= 0.5")
    assert r.exit_code == 2, r.output
    assert "recall@5" in r.output and "no-such/model-xyz" not in r.output
    assert registry.list_indexes() == [] and registry.list_runs() == []
