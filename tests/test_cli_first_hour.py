"""What a new user trips on in the CLI: help text, alias no-ops, JSON errors, did-you-mean,
gate text, TREC run files with extra fields."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from _evalhelp import BAD, GOOD, add_evalset, trec

PROMPT = "template: 'Q: {{ question }}'\nvariables: {type: object, properties: {question: {type: string}}, required: [question]}\n"


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            out.extend(_commands(cmd, (*prefix, name)))
    return out


def test_help_of_every_command_has_no_type_placeholders_on_flags(cli: Any) -> None:
    from genreg.cli import app

    paths = _commands(typer.main.get_command(app))  # type: ignore[arg-type]
    assert ("register",) in paths and ("runs", "show") in paths
    for path in [(), *paths]:
        r = cli(*path, "--help")
        assert r.exit_code == 0, (path, r.output)
        assert not re.search(r"<(str|bool|int|float|path|list\[[^\]]*\]|[a-z_.]+)>", r.output), (
            path,
            r.output,
        )
        assert "\x1b[" not in r.output
    out = cli("runs", "list", "--help").output
    assert "--limit N" in out and "--tag KEY=VALUE" in out and "--name NAME" in out
    assert "{FILE}" in cli("eval", "run", "--help").output


@pytest.mark.parametrize(
    "argv, field, message",
    [
        (("list", "--bogus"), "--bogus", "No such option: --bogus"),
        (("resolve",), "ref", "Missing argument 'REF'."),
        (("runs", "list", "--limit", "abc"), "--limit", "Invalid value for '--limit'"),
        (("runs", "nosuch"), "(command line)", "No such command 'nosuch'."),
        (("--bogus", "list"), "--bogus", "No such option: --bogus"),
    ],
)
def test_usage_errors_under_json_are_the_api_envelope(
    cli: Any, registry: Any, argv: tuple[str, ...], field: str, message: str
) -> None:
    r = cli(*argv, "--json")
    assert r.exit_code == 2 and r.stdout == "", r.output
    err = json.loads(r.stderr)["error"]
    # the API's answer to an invalid request: 422 "invalid", one entry per bad field
    assert err["status"] == 422 and err["code"] == "invalid"
    assert err["message"].startswith(message)
    assert err["details"]["errors"][0]["field"] == field
    assert "[OPTIONS]" in err["details"]["usage"]  # the command's usage line
    plain = cli(*argv)  # without --json: click's usage text, same exit code
    assert plain.exit_code == 2 and "{" not in plain.stderr.split("Error:")[-1][:1]
    assert f"Error: {message}" in plain.stderr


def test_register_help_describes_the_name_rule(cli: Any) -> None:
    out = cli("register", "--help").output
    assert "Artifact name: lowercase letters, digits, '.', '_', '-'" in " ".join(out.split())
    assert "Artifact name: *" not in out
    assert "--tag KEY=VALUE" in out


def test_alias_set_to_the_same_version_is_unchanged_and_journals_nothing(
    cli: Any, registry: Any, write: Any
) -> None:
    cli("register", "prompt", "qa", write("a.yaml", PROMPT))
    assert cli("alias", "set", "prompt:qa@v1", "production").exit_code == 0
    r = cli("alias", "set", "prompt:qa@v1", "production")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "unchanged: prompt:qa@production already -> v1"
    assert "moved" not in r.stdout
    assert [e.action for e in registry.alias_history("prompt:qa")] == ["set"]
    ev = json.loads(cli("alias", "set", "prompt:qa@v1", "production", "--json").stdout)
    assert ev["action"] == "unchanged" and ev["to_version"] == 1
    assert len(registry.alias_history("prompt:qa")) == 1


def test_errors_under_json_are_the_api_envelope_on_stderr(
    cli: Any, registry: Any, write: Any
) -> None:
    r = cli("resolve", "prompt:nope", "--json")
    assert r.exit_code == 1 and r.stdout == ""
    err = json.loads(r.stderr)
    assert err["error"]["code"] == "not_found" and err["error"]["status"] == 404
    assert "prompt:nope not found" in err["error"]["message"]
    r = cli("register", "prompt", "qa", write("bad.yaml", "template: 3\n"), "--json")
    assert r.exit_code == 1
    err = json.loads(r.stderr)["error"]
    assert err["code"] == "invalid" and err["status"] == 422 and "bad.yaml" in err["message"]
    # the same error without --json stays one plain line
    r = cli("resolve", "prompt:nope")
    assert r.stderr.startswith("error: prompt:nope not found")


def test_unknown_ref_with_a_close_match_says_did_you_mean(
    cli: Any, registry: Any, write: Any
) -> None:
    docs = write("kb/a.txt", "hello")
    registry.snapshot("cranfield", docs.parent)
    r = cli("resolve", "corpus:cranfeld")
    assert r.exit_code == 1
    assert "did you mean corpus:cranfield?" in r.stderr
    r = cli("resolve", "evalset:cranfield")  # right name, wrong kind
    assert "did you mean corpus:cranfield?" in r.stderr
    r = cli("resolve", "prompt:something-else-entirely")
    assert "did you mean" not in r.stderr
    err = json.loads(cli("resolve", "corpus:cranfeld", "--json").stderr)["error"]
    assert err["details"]["suggestion"] == "corpus:cranfield"


def _score(cli: Any, path: Path, *extra: str) -> Any:
    return cli(
        "eval", "score", "--evalset", "evalset:gold#test", "--run", path,
        "--metrics", "ndcg@10,mrr@10", *extra,
    )  # fmt: skip


def test_failing_gate_prints_the_comparison_that_holds(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    add_evalset(registry)
    r = _score(cli, trec(tmp_path / "b.trec", BAD), "--gate", "ndcg@10 >= 0.90")
    assert r.exit_code == 1, r.output
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("gate FAIL"))
    value = float(line.split("(")[1].split()[0])
    assert value < 0.9 and f"({value:.4f} < 0.90)" in line, line
    assert ">= 0.9)" not in line
    r = _score(cli, trec(tmp_path / "g.trec", GOOD), "--gate", "ndcg@10 >= 0.4")
    assert r.exit_code == 0 and ">= 0.40)" in r.stdout


@pytest.mark.parametrize(
    ("op", "ok", "want"),
    [
        (">=", False, "<"),
        (">", False, "<="),
        ("<=", False, ">"),
        ("<", False, ">="),
        (">=", True, ">="),
    ],
)
def test_gate_text_negates_the_failing_operator(op: str, ok: bool, want: str) -> None:
    from genreg.core.gates import holds

    assert holds(0.3817, op, 0.4, ok) == f"0.3817 {want} 0.40"
    assert holds(0.3817, op, 0.425, ok).endswith(" 0.425")


def test_trec_run_file_with_extra_trailing_fields_is_accepted(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    add_evalset(registry)
    plain = trec(tmp_path / "plain.trec", GOOD)
    extra = tmp_path / "extra.trec"
    extra.write_text(
        "".join(ln + " extra=1 more text\n" for ln in plain.read_text().splitlines()),
        encoding="utf-8",
    )
    a = json.loads(_score(cli, plain, "--json").stdout)
    r = _score(cli, extra, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metrics"] == a["metrics"]
    short = tmp_path / "short.trec"
    short.write_text("q1 Q0 d1 1\n", encoding="utf-8")
    r = _score(cli, short)
    assert r.exit_code == 1 and "short.trec:1: expected 6 fields" in r.stderr
