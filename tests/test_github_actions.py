"""GitHub Actions: step summary and ::error:: annotations under GITHUB_ACTIONS=true, and the
shipped workflow recipe is a valid workflow whose genreg commands exist."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from _evalhelp import BAD, GOOD, add_evalset, trec

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "genreg-eval.yml"


def _score(cli: Any, run: Path, *extra: str) -> Any:
    return cli(
        "eval", "score", "--evalset", "evalset:gold#test", "--run", run,
        "--metrics", "ndcg@10,mrr@10", "--gate", "ndcg@10 >= 0.90", *extra,
    )  # fmt: skip


def test_failed_gate_writes_step_summary_and_error_annotation(
    cli: Any, registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_evalset(registry)
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = _score(cli, trec(tmp_path / "b.trec", BAD))
    assert r.exit_code == 1, r.output
    (note,) = [ln for ln in r.stdout.splitlines() if ln.startswith("::error")]
    assert note.startswith(
        "::error title=genreg gate failed%3A score::gate ndcg@10 >= 0.90 failed ("
    )
    assert "< 0.90" in note
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n")  # appended, never overwritten
    assert "### genreg eval `score`: FAILED" in text and "ndcg@10 >= 0.90" in text


def test_under_json_annotations_go_to_stderr_and_stdout_stays_json(
    cli: Any, registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_evalset(registry)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "s.md"))
    r = _score(cli, trec(tmp_path / "b.trec", BAD), "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["passed"] is False
    assert r.stderr.startswith("::error title=")


def test_passing_run_annotates_nothing_and_outside_actions_nothing_is_written(
    cli: Any, registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_evalset(registry)
    summary = tmp_path / "s.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    r = _score(cli, trec(tmp_path / "b.trec", BAD))
    assert "::error" not in r.output and not summary.exists()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    r = _score(cli, trec(tmp_path / "g.trec", GOOD))
    assert r.exit_code == 0 and "::error" not in r.output
    assert "PASSED" in summary.read_text(encoding="utf-8")


def test_annotation_escapes_newlines_and_percent() -> None:
    from genreg.cli.github import annotations

    o = {
        "name": "a,b",
        "run_id": "r1",
        "gates": [{"gate": "x", "passed": False, "detail": "50%\nboom"}],
    }
    (line,) = annotations(o)
    assert (
        "\n" not in line and "50%25%0Aboom" in line and "title=genreg gate failed%3A a%2Cb" in line
    )


def _check_workflow(path: Path) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_workflow_recipe_is_a_valid_github_workflow(tmp_path: Path) -> None:
    r = _check_workflow(WORKFLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"), encoding="utf-8")
    assert _check_workflow(broken).returncode != 0  # the check can fail


def test_workflow_recipe_restores_registry_evaluates_against_production_and_posts() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = wf["jobs"]["eval"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "--baseline prompt:rag-answer@production" in runs
    assert "genreg eval run evals/baseline.yaml" in runs
    assert "gh pr comment" in runs and "--body-file genreg-summary.md" in runs
    assert (WORKFLOW.parent.parent.parent / "evals" / "baseline.yaml").exists()


def _genreg_commands(script: str) -> list[list[str]]:
    script = script.replace("\\\n", " ")
    out = []
    for m in re.finditer(r"(?:^|\$\(|\|\s*|&&\s*|\bif\s+)\s*(genreg\s[^|\n)]*)", script, re.M):
        words = shlex.split(m.group(1).replace('"${BASELINE[@]}"', ""), comments=True)
        out.append(words[1:])
    return out


def test_every_genreg_command_in_the_recipe_exists_with_its_options(cli: Any) -> None:
    wf = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    cmds = [c for s in wf["jobs"]["eval"]["steps"] for c in _genreg_commands(s.get("run", ""))]
    assert len(cmds) >= 7, cmds
    for words in cmds:
        path = [w for w in words[:2] if not w.startswith("-") and re.fullmatch(r"[a-z]+", w)]
        r = cli(*path, "--help")
        while r.exit_code != 0 and path:  # "eval run" vs "push MESSAGE": trim to a command
            path = path[:-1]
            r = cli(*path, "--help")
        assert path and r.exit_code == 0, words
        for opt in (w.split("=")[0] for w in words if w.startswith("--")):
            assert opt in r.output, f"genreg {' '.join(path)} has no option {opt}"
