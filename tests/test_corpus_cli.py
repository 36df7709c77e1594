"""``genreg corpus snapshot|diff|status|export|docs`` through the CLI, asserted via the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _tree(root: Path) -> Path:
    for i in range(5):
        p = root / "faq" / f"q{i}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# Question {i}\nanswer {i}\n")
    return root


def test_snapshot_json_then_unchanged(cli: Any, registry: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    r = cli("corpus", "snapshot", "kb", src, "--json", "-m", "first", "--tag", "team=ml")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["status"] == "created" and out["stats"]["docs"] == 5
    v = registry.resolve("corpus:kb")
    assert (v.digest, v.message, v.tags) == (out["digest"], "first", {"team": "ml"})
    r = cli("corpus", "snapshot", "kb", src, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["status"] == "unchanged"


def test_diff_status_and_export_commands(cli: Any, registry: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    assert cli("corpus", "snapshot", "kb", src, "-q").exit_code == 0
    r = cli("corpus", "status", "corpus:kb", src, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["drifted"] is False
    (src / "faq" / "q2.md").write_text("edited\n")
    r = cli("corpus", "status", "corpus:kb@v1", src, "--json")
    assert r.exit_code == 1, r.output
    st = json.loads(r.output)
    assert st["drifted"] is True and st["changed"] == ["faq/q2.md"]
    r = cli("corpus", "status", "corpus:kb", src)
    assert r.exit_code == 1 and "M faq/q2.md" in r.output
    assert cli("corpus", "snapshot", "kb", src).exit_code == 0
    r = cli("corpus", "diff", "corpus:kb@v1", "corpus:kb@v2", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["counts"] == {"added": 0, "removed": 0, "changed": 1, "unchanged": 4}
    assert d["changed"] == ["faq/q2.md"]
    r = cli("corpus", "export", "corpus:kb@v1", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["docs"] == 5
    assert (tmp_path / "out" / "faq" / "q2.md").read_text() == "# Question 2\nanswer 2\n"
    r = cli("corpus", "docs", "corpus:kb@v2", "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["documents"]) == 5
    assert len(registry.history("corpus:kb")) == 2


def test_bad_source_is_one_line_error_and_skip_invalid_prints_skips(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    src = _tree(tmp_path / "src")
    (src / "blob.bin").write_bytes(b"\x00\xff")
    r = cli("corpus", "snapshot", "kb", src)
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "error: blob.bin: binary file (NUL byte at offset 0), not a text document"
    ]
    assert registry.list("corpus") == []
    r = cli("corpus", "snapshot", "kb", src, "--skip-invalid")
    assert r.exit_code == 0, r.output
    assert "skipped    blob.bin: binary file" in r.output
    assert registry.resolve("corpus:kb").summary["skipped"] == 1
