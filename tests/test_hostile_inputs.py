"""Issue 14 items 5, 6, 7 and 14: hostile structured input gets one clear line, never a
traceback, a hang or a version that cannot be read back.

Everything goes through the real CLI (CliRunner) on a real registry, or the service layer
the API and imports call."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from genreg.core.hashing import canonical_json, digest_bytes
from genreg.errors import GenregError, InvalidArtifact

TEMPLATE = 'template: "Hi {{ name }}"\nvariables: {properties: {name: {type: string}}}\n'

BOMB = "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi")
)

# (file name, content, expected fragment of the one-line error)
BAD_FILES: list[tuple[str, str, str]] = [
    ("bomb.yaml", TEMPLATE + BOMB.replace("a: &a", "metadata:\n  a: &a", 1), "alias"),
    ("dup.yaml", TEMPLATE + "metadata: {a: 1}\nmetadata: {a: 2}\n", "duplicate key 'metadata'"),
    ("dup.json", '{"template": "x", "template": "y"}', "duplicate key 'template'"),
    ("nan.yaml", TEMPLATE + "metadata: {score: .nan}\n", "must be finite"),
    ("inf.json", '{"template": "x", "metadata": {"s": Infinity}}', "must be finite"),
    ("nan.json", '{"template": "x", "metadata": {"s": NaN}}', "must be finite"),
    ("bin.yaml", TEMPLATE + "metadata: {b: !!binary aGVsbG8=}\n", "binary is not supported"),
    ("set.yaml", TEMPLATE + "metadata: !!set {a, b}\n", "set is not supported"),
    ("bigint.yaml", TEMPLATE + f"metadata: {{n: {'9' * 5000}}}\n", "4300 digits"),
    ("bigint.json", '{"template": "x", "metadata": {"n": ' + "9" * 5000 + "}}", "4300 digits"),
    ("surrogate.json", '{"template": "x \\ud800"}', "lone surrogate"),
    ("surrogate.yaml", 'template: "x \\ud800"\n', "lone surrogate"),
    ("keys.yaml", TEMPLATE + "metadata: {1: a, 2: b}\n", "is not a string"),
    ("boolkey.yaml", TEMPLATE + "metadata: {yes: a}\n", "is not a string"),
    ("deep.json", '{"template": "x", "metadata": ' + "[" * 1000 + "]" * 1000 + "}", "deeper"),
    ("deep.yaml", TEMPLATE + "metadata: " + "[" * 1000 + "]" * 1000 + "\n", "deeper"),
    # item 14: 950 levels registered, then `show` crashed with RecursionError
    ("deep950.json", '{"template": "x", "metadata": ' + '{"a":' * 950 + "1" + "}" * 951, "deeper"),
]


def _one_line_error(r: Any) -> str:
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


@pytest.mark.parametrize(("fname", "content", "expect"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_prompt_files_are_one_line_and_register_nothing(
    cli, registry, tmp_path, fname, content, expect
) -> None:
    f = tmp_path / fname
    f.write_text(content, encoding="utf-8")
    t = time.monotonic()
    r = cli("register", "prompt", "p", str(f))
    assert time.monotonic() - t < 5
    line = _one_line_error(r)
    assert expect in line and fname in line, line
    assert registry.list("prompt") == []


def test_alias_bomb_is_refused_fast_and_small_aliases_still_work(cli, registry, tmp_path) -> None:
    f = tmp_path / "bomb.yaml"
    f.write_text(TEMPLATE + "metadata:\n" + "".join("  " + ln + "\n" for ln in BOMB.splitlines()))
    t = time.monotonic()
    line = _one_line_error(cli("register", "prompt", "p", str(f)))
    assert time.monotonic() - t < 2 and "alias" in line and ":" in line.split("bomb.yaml")[1]
    ok = tmp_path / "ok.yaml"
    ok.write_text(
        TEMPLATE + "metadata:\n  base: &b {x: 1, y: [1, 2]}\n  again: *b\n  m:\n"
        "    <<: *b\n    x: 2\n"
    )
    assert cli("register", "prompt", "ok", str(ok)).exit_code == 0
    assert registry.show("prompt:ok")[1]["metadata"]["m"] == {"x": 2, "y": [1, 2]}


def test_yaml_dates_stay_strings(cli, registry, tmp_path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(TEMPLATE + "metadata: {released: 2024-01-01, at: 2024-01-01T10:00:00Z}\n")
    r = cli("register", "prompt", "d", str(f))
    assert r.exit_code == 0, r.output
    md = registry.show("prompt:d")[1]["metadata"]
    assert md == {"released": "2024-01-01", "at": "2024-01-01T10:00:00Z"}
    assert cli("show", "prompt:d").exit_code == 0


def test_nesting_within_the_bound_registers_and_shows(cli, registry, tmp_path) -> None:
    f = tmp_path / "n.json"
    f.write_text('{"template": "x", "metadata": ' + '{"a":' * 90 + "1" + "}" * 91)
    assert cli("register", "prompt", "n", str(f)).exit_code == 0
    for args in (
        ("show", "prompt:n"),
        ("show", "prompt:n", "--json"),
        ("export", "prompt:n", "-o", str(tmp_path / "b")),
    ):
        assert cli(*args).exit_code == 0


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        ('{"id": "q1", "query": "a", "relevant": ["d"], "id": "q2"}', "duplicate key 'id'"),
        ('{"id": "q1", "query": "a", "relevant": {"d": NaN}}', "must be finite"),
        ('{"id": "q1", "query": "a\\udc00", "relevant": ["d"]}', "lone surrogate"),
        (
            '{"id": "q1", "query": "a", "relevant": ["d"], "tags": ' + "[" * 500 + "]" * 500 + "}",
            "deeper",
        ),
    ],
)
def test_bad_evalset_rows_name_file_and_line(cli, registry, tmp_path, line, expect) -> None:
    f = tmp_path / "set.jsonl"
    f.write_text('{"id": "q0", "query": "ok", "relevant": ["d"]}\n' + line + "\n")
    msg = _one_line_error(cli("register", "evalset", "gold", str(f)))
    assert expect in msg and "set.jsonl:2" in msg, msg


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('{"qid": "q", "docid": "d", "score": NaN}\n', "must be finite"),
        ('{"qid": "q", "docid": "d", "score": 1, "score": 2}\n', "duplicate key"),
        ("q Q0 d 1 inf tag\n", "infinite"),
    ],
)
def test_bad_run_files(tmp_path, text, expect) -> None:
    from genreg.core.runfile import read_run

    f = tmp_path / ("r.jsonl" if text.startswith("{") else "r.trec")
    f.write_text(text)
    with pytest.raises(InvalidArtifact, match=expect):
        read_run(f)


# ---- item 6: NaN / Infinity in metadata via the service layer (what the API calls) -----------
@pytest.mark.parametrize(
    "tags", [{"x": float("nan")}, {"x": [float("inf")]}, {"x": "\ud800"}, {"deep": [[[[]]]] * 1}]
)
def test_non_finite_or_invalid_tags_are_refused_before_anything_is_stored(registry, tags) -> None:
    if tags.get("deep") is not None:
        d: Any = 1
        for _ in range(200):
            d = [d]
        tags = {"deep": d}
    objects = sorted(p for p in Path(registry.home).rglob("*") if p.is_file())
    with pytest.raises(InvalidArtifact):
        registry.register_content("prompt", "p", {"template": "x"}, tags=tags)
    assert registry.list("prompt") == []
    assert sorted(p for p in Path(registry.home).rglob("*") if p.is_file()) == objects


# ---- item 7: crafted bundles ----------------------------------------------------------------
def _bundle(registry: Any) -> dict[str, Any]:
    registry.register_content("prompt", "src", {"template": "hello"})
    return registry.export("prompt:src")


def _b64(obj: Any) -> str:
    return base64.b64encode(obj if isinstance(obj, bytes) else canonical_json(obj)).decode()


@pytest.mark.parametrize(
    "patch",
    [
        {"content_b64": 5},
        {"name": 5},
        {"kind": ["prompt"]},
        {"tags": [1]},
        {"tags": {"x": float("nan")}},
        {"author": {}},
        {"author": {"a": 1}},
        {"message": 7},
        "non-json",
        "json-not-a-mapping",
        "nested",
    ],
    ids=str,
)
def test_crafted_bundles_are_one_line_and_leave_no_stray_object(
    cli, registry, tmp_path, patch
) -> None:
    b = _bundle(registry)
    if patch == "non-json":
        data = b"\xff not json"
        b.update(content_b64=_b64(data), digest=digest_bytes(data))
    elif patch == "json-not-a-mapping":
        data = b"5"
        b.update(content_b64=_b64(data), digest=digest_bytes(data))
    elif patch == "nested":
        data = b"[" * 5000 + b"]" * 5000
        b.update(content_b64=_b64(data), digest=digest_bytes(data))
    else:
        b.update(patch)
    f = tmp_path / "b.json"
    f.write_text(json.dumps(b))
    before = sorted(p for p in Path(registry.home, "objects").rglob("*") if p.is_file())
    line = _one_line_error(
        cli("import", str(f), "--name", "dst") if patch != {"name": 5} else cli("import", str(f))
    )
    assert "Traceback" not in line
    after = sorted(p for p in Path(registry.home, "objects").rglob("*") if p.is_file())
    assert after == before, "a refused import left an object behind"
    assert [a.name for a in registry.list("prompt")] == ["src"]


def test_bundle_file_with_duplicate_keys_or_nan_is_refused(cli, registry, tmp_path) -> None:
    b = _bundle(registry)
    text = json.dumps(b)
    f = tmp_path / "b.json"
    f.write_text(text[:-1] + ', "name": "other"}')
    assert "duplicate key 'name'" in _one_line_error(cli("import", str(f)))


def test_service_errors_are_genreg_errors(registry) -> None:
    with pytest.raises(GenregError):
        registry.register_content("prompt", "p", {"template": "x", 1: "y"})
    with pytest.raises(GenregError):
        registry.register_content("routing", "r", {"default": {"target": {"model": float("inf")}}})
