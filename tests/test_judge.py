"""LLM-as-judge: parsing of judge replies, the baseline-overlap-judge, and the judge stage end
to end through ``genreg eval run`` against genreg's local server on a free loopback port --
malformed judge output is a counted per-query error (never a silent 0), the judge prompt is a
versioned input (lineage, cache key, ``runs compare``), gates work on judge metrics."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _llmservers import FaultServer
from _ragproject import copy_project
from genreg.generation import baseline_judge
from genreg.generation.judge import (
    JudgeOutputError,
    parse_faithfulness,
    parse_object,
    parse_relevance,
    relevance,
)

REPO = Path(__file__).resolve().parent.parent
RAG = REPO / "evals" / "rag.yaml"


# ---- parsing ----------------------------------------------------------------------------------
def test_faithfulness_is_supported_statements_over_statements() -> None:
    text = json.dumps(
        {
            "statements": [
                {"statement": "a", "reason": "r", "verdict": 1},
                {"statement": "b", "reason": "r", "verdict": 0},
                {"statement": "c", "reason": "r", "verdict": True},
            ]
        }
    )
    score, details = parse_faithfulness(text)
    assert score == pytest.approx(2 / 3)
    assert [s["verdict"] for s in details["statements"]] == [1, 0, 1]
    assert parse_faithfulness('{"statements": []}')[0] is None  # no statements: not scored


def test_judge_json_in_a_code_fence_or_prose_is_read() -> None:
    assert parse_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_object('Here you go: {"a": 1} hope it helps') == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        "I think it is faithful.",
        "[1, 2]",
        '{"statements": "all good"}',
        '{"statements": [{"statement": "a", "verdict": "yes"}]}',
        '{"statements": [{"statement": "a", "verdict": 2}]}',
        "",
        None,
    ],
)
def test_malformed_faithfulness_output_raises(text: Any) -> None:
    with pytest.raises(JudgeOutputError):
        parse_faithfulness(text)


@pytest.mark.parametrize(
    "text",
    ['{"questions": [], "noncommittal": 0}', '{"questions": ["q?"]}', '{"questions": [3]}'],
)
def test_malformed_relevance_output_raises(text: str) -> None:
    with pytest.raises(JudgeOutputError):
        parse_relevance(text)


def test_answer_relevance_is_mean_cosine_and_zero_when_noncommittal() -> None:
    import numpy as np

    q = np.array([1.0, 0.0])
    gen = [np.array([1.0, 0.0]), np.array([0.6, 0.8])]
    assert relevance(q, gen, 0) == (pytest.approx(0.8), [pytest.approx(1.0), pytest.approx(0.6)])
    assert relevance(q, gen, 1)[0] == 0.0


# ---- the baseline judge --------------------------------------------------------------------------
def test_baseline_judge_marks_statements_by_lexical_support() -> None:
    from genreg.core.prompt import parse_prompt_file

    prompt = parse_prompt_file(REPO / "registry" / "prompts" / "judge-faithfulness.yaml")
    msgs = prompt.render(
        {
            "question": "How long do refunds take?",
            "context": "[billing/refunds.md]\nRefunds are issued within 14 days of purchase.",
            "answer": "Refunds are issued within 14 days. Every customer gets a free unicorn.",
        }
    )
    out = json.loads(baseline_judge.reply(msgs))
    assert [s["verdict"] for s in out["statements"]] == [1, 0]
    assert parse_faithfulness(json.dumps(out))[0] == 0.5


def test_baseline_judge_flags_a_noncommittal_answer() -> None:
    from genreg.core.prompt import parse_prompt_file

    prompt = parse_prompt_file(REPO / "registry" / "prompts" / "judge-answer-relevance.yaml")
    out = json.loads(baseline_judge.reply(prompt.render({"answer": "I don't know."})))
    assert out["noncommittal"] == 1 and out["questions"] == ["I don't know."]
    out = json.loads(
        baseline_judge.reply(prompt.render({"answer": "Refunds take 14 days.", "n_questions": 2}))
    )
    assert out == {"questions": ["Refunds take 14 days."], "noncommittal": 0}


# ---- the judge stage end to end -------------------------------------------------------------------
class JudgeFaults(FaultServer):
    """genreg's server; judge calls whose answer section contains a key of ``bad`` get that
    value as the judge's reply (fault injection for malformed judge output)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.bad: dict[str, str] = {}
        self.judge_calls = 0

    def complete(self, body: dict[str, Any]) -> tuple[str, str]:
        if body.get("model") == baseline_judge.MODEL_NAME:
            with self.lock:
                self.judge_calls += 1
            answer = baseline_judge.sections(body["messages"][-1]["content"]).get("answer", "")
            for needle, reply in self.bad.items():
                if needle in answer:
                    return reply, "stop"
        return super().complete(body)


@pytest.fixture
def project(genreg_home: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The example, indexed (a copy of the session's indexed home: see _ragproject)."""
    reg = copy_project(tmp_path_factory, genreg_home, tmp_path)
    yield reg
    reg.close()


@pytest.fixture
def fresh_project(registry, tmp_path: Path):
    """The example pushed into an empty registry (nothing indexed yet)."""
    for sub in ("registry", "evals/sets"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    registry.push([tmp_path / "registry", tmp_path / "evals"])
    registry.snapshot("docs", REPO / "examples" / "corpus")
    return registry


@pytest.fixture
def llm() -> Iterator[JudgeFaults]:
    s = JudgeFaults()
    s.start()
    yield s
    s.stop()


def run(cli, llm: JudgeFaults, *sets: str) -> tuple[int, dict, str]:
    args = ["eval", "run", RAG, "--json", "--quiet", "--set", "chunking=none"]
    args += ["--set", f"generate.endpoint={{base_url: '{llm.base_url}', api_key_env: null}}"]
    for s in sets:
        args += ["--set", s]
    r = cli(*args)
    try:
        return r.exit_code, json.loads(r.stdout), r.output
    except ValueError:
        return r.exit_code, {}, r.output


def test_malformed_judge_output_is_a_counted_per_query_error_not_a_zero(project, cli, llm):
    code, good, text = run(cli, llm, "generate.cache='off'")
    assert code == 0, text
    answers = {q["id"]: q["answer"] for q in project.run_results(good["run_id"])["queries"]}
    victim = "q016"
    llm.bad = {answers[victim]: "Sure! The answer looks faithful to me."}
    code, out, text = run(cli, llm, "generate.cache='off'")
    assert code == 1, text  # the judge_errors <= 0 gate of evals/rag.yaml fails
    m = out["metrics"]
    n_bad = sum(1 for a in answers.values() if a == answers[victim])
    assert m["judge_errors"] == 2 * n_bad  # both judges of each query with that answer
    gate = next(g for g in out["gates"] if g["gate"] == "judge_errors <= 0")
    assert gate["passed"] is False
    assert out["report"]["judge"]["errors"] == 2 * n_bad
    assert victim in out["report"]["judge"]["error_ids"]["faithfulness"]
    q = next(q for q in project.run_results(out["run_id"])["queries"] if q["id"] == victim)
    v = q["verdicts"]["faithfulness"]
    assert v["score"] is None and "does not parse" in v["error"] and "faithful" in v["output"]
    assert "faithfulness" not in q["metrics"] and q["metrics"]["judge_errors"] == 2
    # excluded from the mean, not averaged in as 0: the mean over the other queries is unchanged
    others = [
        x["metrics"]["faithfulness"]
        for x in project.run_results(good["run_id"])["queries"]
        if x["answer"] != answers[victim] and "faithfulness" in x["metrics"]
    ]
    assert m["faithfulness"] == pytest.approx(sum(others) / len(others))


def test_judge_prompt_version_is_an_input_in_lineage_cache_key_and_compare(
    project, cli, llm, tmp_path: Path
):
    code, a, text = run(cli, llm, "gates=[faithfulness >= 0.5]")
    assert code == 0, text
    calls = llm.judge_calls
    assert calls > 0
    # a new judge prompt version: a different cache key, so every verdict is asked again
    p = tmp_path / "registry" / "prompts" / "judge-faithfulness.yaml"
    p.write_text(p.read_text().replace("careful fact checker", "meticulous fact checker"))
    project.push([tmp_path / "registry"])
    code, b, text = run(cli, llm, "gates=[faithfulness >= 0.5]")
    assert code == 0, text
    assert b["lineage"]["inputs"]["judge:faithfulness"]["version"] == 2
    assert b["report"]["judge"]["cache"]["hits"] > 0  # answer_relevance verdicts reused
    assert b["report"]["generation"]["cache"]["hits"] == 26
    assert llm.judge_calls - calls == b["report"]["judge"]["calls"] > 0
    c = project.compare_runs(a["run_id"], b["run_id"], n_resamples=200)
    assert list(c["differs"]) == ["judge:faithfulness"] and c["attributable"]
    assert "faithfulness" in c["metrics"] and "answer_relevance" in c["metrics"]
    r = cli("runs", "compare", a["run_id"], b["run_id"])
    assert "inputs that differ: judge:faithfulness" in r.output, r.output
    r = cli("runs", "list", "--used", "prompt:judge-faithfulness@v2", "--json")
    assert [x["id"] for x in json.loads(r.stdout)] == [b["run_id"]]
    # the lineage tree names the generation settings, routes, judge prompt versions and models
    r = cli("lineage", b["run_id"])
    assert r.exit_code == 0, r.output
    tree = r.output
    assert "├── generation" in tree and "settings: context_k=3" in tree
    assert "default: gpt-4o-mini @ 127.0.0.1 " in tree and "temperature=0.1" in tree
    assert "faithfulness: prompt:judge-faithfulness@v2  model baseline-overlap-judge" in tree
    assert "cache: rw, 26 hits, 0 calls; judge" in tree
    # runs show --queries: the answers section (answer vs gold, usage, latency, verdicts)
    r = cli("runs", "show", b["run_id"], "--queries", "--limit", "2", "--sort", "id")
    assert r.exit_code == 0, r.output
    assert "answers (answer vs gold" in r.output and "q016  answer: " in r.output
    assert "gold:   " in r.output and " in / " in r.output and "route default" in r.output
    assert "statements supported" in r.output and "answer_relevance " in r.output
    # a gate against the baseline on a judge metric
    code, _, text = run(cli, llm, f"baseline={a['run_id']}", "gates=[faithfulness >= baseline]")
    assert code == 0, text


def test_a_judge_prompt_that_names_nothing_is_exit_2_before_any_call(project, cli, llm):
    code, _, text = run(cli, llm, "judge.faithfulness.prompt=prompt:no-such-judge")
    assert code == 2 and "judge" in text and "no-such-judge" in text, text
    assert llm.requests == 0 and project.list_runs() == []


# ---- eval run --dry-run ----------------------------------------------------------------------------
def test_dry_run_checks_everything_prints_the_estimate_and_calls_nothing(
    fresh_project, cli, llm, monkeypatch
):
    monkeypatch.setenv("DRY_KEY", "sk-dry-NEVER-SHOWN-123456")
    key_set = f"generate.endpoint={{base_url: '{llm.base_url}', api_key_env: DRY_KEY}}"
    args = ["eval", "run", RAG, "--dry-run", "--set", key_set]
    r = cli(*args, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["dry_run"] is True and d["queries"] == 26
    assert d["stages"] == ["resolve", "retrieve", "generate", "judge", "score", "record"]
    assert {i["role"] for i in d["inputs"]} >= {"evalset", "corpus", "prompt", "routing"}
    assert {"judge:faithfulness", "judge:answer_relevance"} <= {i["role"] for i in d["inputs"]}
    assert d["calls"] == {"generate": 26, "judge": 52} and d["api_key_env"] == ["DRY_KEY"]
    est = d["estimate"]
    assert est["total_cost"] > 0 and est["input_tokens"] > 0 and est["queries"] == 26
    assert {"faithfulness", "judge_errors", "token_f1"} <= set(d["metrics"])
    r = cli(*args)
    assert r.exit_code == 0, r.output
    assert "nothing was called" in r.output and "estimate: Token cost:" in r.output
    assert "sk-dry" not in r.output
    # nothing called, nothing indexed, nothing recorded
    assert llm.requests == 0
    assert fresh_project.list_runs() == []
    assert fresh_project.derived.list("index") == []


@pytest.mark.parametrize(
    ("sets", "says"),
    [
        (["generate.endpoint.api_key_env=NO_SUCH_KEY_VAR"], "NO_SUCH_KEY_VAR"),
        (["gates=[faithfulnes >= 0.5]"], "faithfulnes"),
        (["judge.answer_relevance.prompt=prompt:rag-answer"], "does not take answer"),
        (["prompt=prompt:nope"], "prompt"),
    ],
)
def test_dry_run_fails_on_what_a_run_would_fail_on_with_exit_2(
    fresh_project, cli, llm, sets: list[str], says: str
):
    args = ["eval", "run", RAG, "--dry-run", "--set", f"generate.endpoint.base_url={llm.base_url}"]
    for s in sets:
        args += ["--set", s]
    r = cli(*args)
    assert r.exit_code == 2 and says in r.output, r.output
    assert llm.requests == 0 and fresh_project.list_runs() == []
