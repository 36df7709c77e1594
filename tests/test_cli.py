"""The CLI end to end through typer's CliRunner, asserting through the Python API."""

from __future__ import annotations

import json
from typing import Any

import pytest

PROMPT = "template: 'Q: {{ question }}'\nvariables: {type: object, properties: {question: {type: string}}, required: [question]}\n"


def test_init_creates_the_registry_home_and_is_idempotent(cli: Any, genreg_home: Any) -> None:
    for _ in range(2):
        r = cli("init", str(genreg_home))
        assert r.exit_code == 0, r.output
    assert (genreg_home / "registry.db").exists()


def test_register_show_history_resolve_with_json(cli: Any, registry: Any, write: Any) -> None:
    p = write("qa.yaml", PROMPT)
    r = cli(
        "register", "prompt", "qa", p, "-m", "first", "--tag", "team=search", "--author", "alice"
    )
    assert r.exit_code == 0, r.output
    assert "created prompt:qa@v1" in r.output
    r = cli("register", "prompt", "qa", p)
    assert "unchanged" in r.output
    hist = json.loads(cli("history", "prompt:qa", "--json").stdout)
    assert len(hist) == 1
    assert {"version", "digest", "created_at", "author", "message", "aliases"} <= set(hist[0])
    assert hist[0]["author"] == "alice" and hist[0]["message"] == "first"
    res = json.loads(cli("resolve", "prompt:qa@v1", "--json").stdout)
    assert {k: res[k] for k in ("kind", "name", "version")} == {
        "kind": "prompt",
        "name": "qa",
        "version": 1,
    }
    assert res["digest"] == registry.resolve("prompt:qa").digest
    shown = json.loads(cli("show", "prompt:qa", "--json").stdout)
    assert shown["content"]["template"] == "Q: {{ question }}" and shown["tags"] == {
        "team": "search"
    }
    assert "Q: {{ question }}" in cli("show", "prompt:qa").stdout


def test_alias_commands_move_and_journal(cli: Any, registry: Any, write: Any) -> None:
    cli("register", "prompt", "qa", write("a.yaml", PROMPT))
    cli("register", "prompt", "qa", write("b.yaml", PROMPT.replace("Q:", "Question:")))
    assert cli("alias", "set", "prompt:qa@v1", "production", "--reason", "launch").exit_code == 0
    r = cli("alias", "set", "prompt:qa@v2", "production")
    assert "v1 -> v2" in r.output
    assert registry.resolve("prompt:qa@production").version == 2
    r = cli("alias", "rm", "prompt:qa", "production")
    assert r.exit_code == 0, r.output
    journal = json.loads(cli("alias", "history", "prompt:qa", "--json").stdout)
    assert [e["action"] for e in journal] == ["set", "move", "delete"]
    assert journal[0]["reason"] == "launch"


def test_render_with_var_and_vars_file(cli: Any, registry: Any, write: Any) -> None:
    cli("register", "prompt", "qa", write("qa.yaml", PROMPT))
    assert cli("render", "prompt:qa", "--var", "question=why").stdout.strip() == "Q: why"
    vf = write("vars.json", '{"question": "from file"}')
    assert json.loads(cli("render", "prompt:qa", "--vars", vf, "--json").stdout) == "Q: from file"


def test_diff_prints_unified_diff_for_prompts(cli: Any, registry: Any, write: Any) -> None:
    cli("register", "prompt", "qa", write("a.yaml", PROMPT))
    cli("register", "prompt", "qa", write("b.yaml", PROMPT.replace("Q:", "Question:")))
    out = cli("diff", "prompt:qa@v1", "prompt:qa@v2").stdout
    assert (
        "-template: 'Q: {{ question }}'" in out and "+template: 'Question: {{ question }}'" in out
    )


def test_list_shows_every_kind(cli: Any, registry: Any, write: Any) -> None:
    cli("register", "prompt", "qa", write("qa.yaml", PROMPT))
    listed = json.loads(cli("list", "--json").stdout)
    assert [(a["kind"], a["name"], a["latest"]) for a in listed] == [("prompt", "qa", 1)]


def test_errors_are_one_line_on_stderr_with_exit_1(cli: Any, registry: Any) -> None:
    r = cli("resolve", "prompt:nope")
    assert r.exit_code == 1
    assert r.stderr == "error: prompt:nope not found\n"
    assert r.stdout == ""
    assert "Traceback" not in r.output


def test_bad_file_error_names_file_and_line(cli: Any, registry: Any, write: Any) -> None:
    p = write(
        "gold.jsonl",
        '{"id": "a", "query": "q", "relevant": ["d"]}\n{"id": "a", "query": "q", "relevant": ["d"]}\n',
    )
    r = cli("register", "evalset", "gold", p)
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and f"{p}:2: duplicate id 'a'" in r.stderr
    assert registry.list() == []


def test_usage_errors_exit_2(cli: Any, registry: Any) -> None:
    assert cli("register", "prompt").exit_code == 2
    assert cli("render", "prompt:x", "--var", "novalue").exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_debug_flag_shows_the_traceback(
    cli: Any, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genreg.errors import NotFound

    r = cli("--debug", "resolve", "prompt:nope")
    assert r.exit_code == 1 and isinstance(r.exception, NotFound)
    monkeypatch.delenv("GENREG_DEBUG", raising=False)


def test_missing_registry_says_how_to_create_one(
    cli: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GENREG_HOME")
    from typer.testing import CliRunner

    from genreg.cli import app

    r = CliRunner().invoke(app, ["list"], env={"GENREG_HOME": ""})
    assert r.exit_code == 2 and "genreg init" in r.stderr


def test_export_import_round_trip_is_digest_checked(
    cli: Any, registry: Any, write: Any, tmp_path: Any
) -> None:
    cli("register", "prompt", "qa", write("qa.yaml", PROMPT))
    out = tmp_path / "qa.bundle.json"
    assert cli("export", "prompt:qa@v1", "-o", out).exit_code == 0
    r = cli("import", out, "--name", "qa-copy", "--json")
    assert r.exit_code == 0, r.output
    assert registry.resolve("prompt:qa-copy").digest == registry.resolve("prompt:qa").digest
    bundle = json.loads(out.read_text())
    bundle["digest"] = "sha256:" + "0" * 64
    out.write_text(json.dumps(bundle))
    r = cli("import", out, "--name", "qa-tampered")
    assert r.exit_code == 1 and "does not match its digest" in r.stderr
    assert [a.name for a in registry.list("prompt")] == ["qa", "qa-copy"]
