"""Issue 14 items 4, 12 and 16: line separators inside content, run-file BOMs and unmatched
query ids, non-regular files and size caps.

Item 4: a registered version must always be readable. Every kind is registered with
U+2028, U+2029 and U+0085 (and a form feed) in its content, then read back by every reader:
``show`` (text and --json), ``diff``, ``export`` + ``import`` into a fresh registry, the
API's read route, and -- for the eval set -- an eval run reading it (``eval score``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from genreg.api.app import create_app

SEPS = "\u2028|\u2029|\u0085|\x0c|\x1c"
ROWS = [
    {"id": "q1", "query": f"alpha{SEPS}beta", "relevant": ["d1"], "answer": f"a{SEPS}b"},
    {"id": "q2", "query": "plain", "relevant": ["d2"], "tags": [f"x{SEPS}"]},
]
PROMPT = {
    "template": f"Q{SEPS}: {{{{ question }}}}",
    "variables": {"properties": {"question": {"type": "string"}}},
    "metadata": {"note": SEPS},
}
ROUTING = {
    "routes": [
        {
            "name": "r",
            "match": {"query_regex": "alpha", "tags": [SEPS]},
            "target": {
                "model": "m",
                "params": {"stop": [SEPS]},
                "price": {"input_per_1m": 1, "output_per_1m": 1},
            },
        }
    ],
    "default": {"target": {"model": "d", "price": {"input_per_1m": 1, "output_per_1m": 1}}},
}
URL = {"prompt": "prompts", "evalset": "evalsets", "routing": "routing", "corpus": "corpus"}


def _files(tmp: Path) -> dict[str, Path]:
    es = tmp / "es.jsonl"
    es.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), "utf-8")
    p = tmp / "p.json"
    p.write_text(json.dumps(PROMPT, ensure_ascii=False), "utf-8")
    rt = tmp / "r.yaml"
    rt.write_text(json.dumps(ROUTING, ensure_ascii=False), "utf-8")  # JSON is YAML
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(f"one{SEPS}two\n", "utf-8")
    (docs / "recs.jsonl").write_text(
        json.dumps({"id": "r1", "text": f"rec{SEPS}ord"}, ensure_ascii=False) + "\n", "utf-8"
    )
    return {"evalset": es, "prompt": p, "routing": rt, "corpus": docs}


def _ok(r: Any) -> Any:
    assert r.exit_code == 0, (r.output, r.exception)
    assert "Traceback" not in r.output
    return r


def test_every_kind_with_unicode_line_separators_reads_back_everywhere(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    files = _files(tmp_path)
    for kind in ("prompt", "evalset", "routing"):
        _ok(cli("register", kind, "x", files[kind]))
    _ok(cli("corpus", "snapshot", "x", files["corpus"]))
    # second versions registered as data (the API/import path), content with separators too
    registry.register_content(
        "evalset", "x", [*ROWS, {"id": "q3", "query": SEPS, "relevant": ["d3"]}]
    )
    registry.register_content("prompt", "x", {**PROMPT, "description": SEPS})
    registry.register_content(
        "routing",
        "x",
        {**ROUTING, "default": {"target": {**ROUTING["default"]["target"], "params": {"s": SEPS}}}},
    )
    (files["corpus"] / "b.txt").write_text(SEPS, "utf-8")
    _ok(cli("corpus", "snapshot", "x", files["corpus"]))
    api = TestClient(create_app(registry=registry), raise_server_exceptions=False)
    tok = str(registry.create_token("reader", ["read", "evalsets:read"])[0])
    api.headers["Authorization"] = f"Bearer {tok}"
    other = tmp_path / "other" / ".genreg"
    from genreg import Registry

    Registry.init(other).close()
    for kind in ("prompt", "evalset", "routing", "corpus"):
        ref = f"{kind}:x@v1"
        _ok(cli("show", ref))
        shown = json.loads(_ok(cli("show", ref, "--json")).output)
        _ok(cli("diff", ref, f"{kind}:x@v2"))
        d = json.loads(_ok(cli("diff", ref, f"{kind}:x@v2", "--json")).output)
        assert d, kind
        got = api.get(f"/v1/{URL[kind]}/x/versions/1")
        assert got.status_code == 200, (kind, got.text)
        assert got.json()["digest"] == shown["digest"]
        if kind == "corpus":
            out = tmp_path / "export-corpus"
            _ok(cli("corpus", "export", ref, out))
            assert (out / "a.txt").read_text("utf-8") == f"one{SEPS}two\n"
            continue
        if kind == "evalset":
            assert shown["content"] == sorted(ROWS, key=lambda r: r["id"])
        bundle = tmp_path / f"{kind}.bundle.json"
        _ok(cli("export", ref, "-o", bundle))
        r = CliRunner().invoke(
            __import__("genreg.cli", fromlist=["app"]).app,
            ["import", str(bundle), "--json"],
            env={"GENREG_HOME": str(other)},
        )
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["digest"] == shown["digest"]
    # an eval run reads the eval set (rows with separators are scored, not split apart)
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 2.0 t\nq2 Q0 d9 1 1.0 t\n")
    r = _ok(cli("eval", "score", "--evalset", "evalset:x@v1", "--run", run, "--json"))
    out = json.loads(r.output)
    assert out["report"]["n_queries"] == 2
    assert _ok(cli("verify"))


def test_split_lines_splits_on_newline_only() -> None:
    from genreg.core.validation import split_lines, split_lines_keepends

    text = "a\u2028b\r\nc\u0085\x0cd\n\ne"
    assert split_lines(text) == ["a\u2028b", "c\u0085\x0cd", "", "e"]
    assert split_lines_keepends(text) == ["a\u2028b\r\n", "c\u0085\x0cd\n", "\n", "e"]


def test_no_reader_of_jsonl_or_user_data_uses_str_splitlines() -> None:
    """Every reader of JSONL / run files / corpora / answers files / response bundles splits
    through ``core.validation.split_lines``: a new ``.splitlines()`` there fails this test.
    (Elsewhere it only cuts our own text: error messages, /proc, subprocess output.)"""
    src = Path(__file__).resolve().parents[1] / "src" / "genreg"
    readers = [
        *sorted((src / "core").glob("*.py")),
        *sorted((src / "store").glob("*.py")),
        src / "generation" / "answers_file.py",
        src / "generation" / "cache.py",
        src / "lockfile.py",
    ]
    import ast

    # the first line of a parser's own exception message is not user data
    allowed = {("core/inputs.py", "str(exc).splitlines()[0]")}
    found = []
    for f in readers:
        rel = f.relative_to(src).as_posix()
        text = f.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Attribute) and node.attr == "splitlines":
                line = text.split("\n")[node.lineno - 1].strip()
                if not any(rel == a and snippet in line for a, snippet in allowed):
                    found.append(f"{rel}:{node.lineno}: {line}")
    assert not found, found


def test_run_file_rows_with_separators_inside_json_strings(tmp_path: Path) -> None:
    from genreg.core.runfile import read_run

    f = tmp_path / "run.jsonl"
    f.write_text(json.dumps({"qid": "q\u2028", "docid": "d\u0085", "score": 1}) + "\n")
    assert read_run(f) == {"q\u2028": {"d\u0085": 1.0}}


# ---- item 12: BOM and run-file ids that match no query ----------------------------------------
def _evalset(cli: Any, tmp: Path) -> None:
    es = tmp / "gold.jsonl"
    es.write_text(
        '{"id": "q1", "query": "a", "relevant": ["d1"]}\n'
        '{"id": "q2", "query": "b", "relevant": ["d2"]}\n'
    )
    _ok(cli("register", "evalset", "gold", es))


def test_bom_at_the_start_of_a_trec_run_file_is_stripped(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    _evalset(cli, tmp_path)
    run = tmp_path / "run.trec"
    run.write_bytes(b"\xef\xbb\xbfq1 Q0 d1 1 2.0 t\nq2 Q0 d2 1 1.0 t\n")
    r = _ok(cli("eval", "score", "--evalset", "evalset:gold", "--run", run, "--json"))
    out = json.loads(r.output)
    assert out["metrics"]["mrr@10"] == 1.0, out["metrics"]
    assert "run_file_unmatched" not in out["report"]


def test_run_file_query_ids_matching_no_eval_set_query_are_warned_and_recorded(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    _evalset(cli, tmp_path)
    run = tmp_path / "run.trec"
    run.write_text("Q1 Q0 d1 1 2.0 t\nq2 Q0 d2 1 1.0 t\nq7 Q0 d2 1 1.0 t\n")
    r = CliRunner().invoke(
        __import__("genreg.cli", fromlist=["app"]).app,
        ["eval", "score", "--evalset", "evalset:gold", "--run", str(run)],
        env={"GENREG_HOME": os.environ["GENREG_HOME"]},
    )
    assert r.exit_code == 0, r.output
    assert "warning: 2 of 3 run-file query ids match no eval-set query ('Q1', 'q7')" in r.stderr
    run_id = registry.list_runs()[0].id
    shown = json.loads(_ok(cli("runs", "show", run_id, "--json")).output)
    assert shown["report"]["run_file_unmatched"] == 2
    assert shown["report"]["run_file_unmatched_ids"] == ["Q1", "q7"]


# ---- item 16: non-regular files and size caps -------------------------------------------------
def _one_line(r: Any) -> str:
    assert r.exit_code == 1, (r.exit_code, r.output)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output
    return lines[0]


@pytest.mark.parametrize("kind", ["prompt", "routing", "evalset"])
def test_devices_and_fifos_are_refused_not_read_forever(
    cli: Any, registry: Any, tmp_path: Path, kind: str
) -> None:
    line = _one_line(cli("register", kind, "z", "/dev/zero"))
    assert "/dev/zero: not a regular file" in line
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)
    line = _one_line(cli("register", kind, "z", fifo))
    assert "f.yaml: not a regular file" in line
    assert registry.list(kind) == []


def test_fifo_run_file_is_refused(cli: Any, registry: Any, tmp_path: Path) -> None:
    _evalset(cli, tmp_path)
    fifo = tmp_path / "run.trec"
    os.mkfifo(fifo)
    line = _one_line(cli("eval", "score", "--evalset", "evalset:gold", "--run", fifo))
    assert "run.trec: not a regular file" in line


def test_prompt_size_cap_is_enforced_and_configurable(
    cli: Any, registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * (1 << 20) + "{{ q }}")
    line = _one_line(cli("register", "prompt", "big", big))
    assert "larger than the prompt size cap (1 MiB; GENREG_MAX_PROMPT_BYTES)" in line
    assert registry.list("prompt") == []
    monkeypatch.setenv("GENREG_MAX_PROMPT_BYTES", str(2 << 20))
    _ok(cli("register", "prompt", "big", big))
    monkeypatch.setenv("GENREG_MAX_PROMPT_BYTES", "many")
    r = cli("register", "prompt", "big2", big)
    assert r.exit_code != 0 and "GENREG_MAX_PROMPT_BYTES='many'" in r.output


def test_payload_size_cap_applies_to_api_and_import_content(
    registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genreg.errors import InvalidArtifact

    monkeypatch.setenv("GENREG_MAX_EVALSET_BYTES", "200")
    rows = [{"id": f"q{i}", "query": "x" * 20, "relevant": ["d"]} for i in range(10)]
    with pytest.raises(InvalidArtifact, match="larger than the evalset size cap"):
        registry.register_content("evalset", "big", rows)
    assert registry.list("evalset") == []
