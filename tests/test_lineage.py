"""Lineage capture and the fingerprint's documented field set."""

from __future__ import annotations

import subprocess
from pathlib import Path

from genreg.core.hashing import digest_json
from genreg.core.lineage import FINGERPRINT_FIELDS, capture_environment, fingerprint, git_state


def _lineage(**over):
    base = {
        "source": "eval",
        "inputs": {
            "corpus": {
                "kind": "corpus",
                "name": "d",
                "version": 1,
                "digest": "sha256:aa",
                "split": None,
            }
        },
        "embedding": {"model": "m", "digest": "sha256:bb"},
        "chunking": {"by": "none"},
        "index": {"type": "flat"},
        "k": [10],
        "metrics": ["mrr@10"],
        "cost": None,
        "run_file": None,
        "code": {"commit": "abc", "dirty": False, "diff_digest": None, "genreg": "0.1.0"},
        "packages": {"python": "3.12"},
        "host": {"cpu": "x", "cores": 2},
        "started_at": "t1",
        "ended_at": "t2",
    }
    base.update(over)
    return base


def test_fingerprint_is_sha256_of_canonical_json_of_documented_fields() -> None:
    lin = _lineage()
    assert fingerprint(lin) == digest_json({f: lin.get(f) for f in FINGERPRINT_FIELDS})


def test_fingerprint_ignores_time_and_host_but_not_inputs() -> None:
    fp = fingerprint(_lineage())
    assert fingerprint(_lineage(started_at="t9", ended_at="t10", host={"cpu": "other"})) == fp
    assert fingerprint(_lineage(k=[10, 100])) != fp
    assert fingerprint(_lineage(embedding={"model": "m", "digest": "sha256:cc"})) != fp
    changed = _lineage()
    changed["inputs"] = {
        "corpus": {**changed["inputs"]["corpus"], "version": 2, "digest": "sha256:ab"}
    }
    assert fingerprint(changed) != fp
    assert (
        fingerprint(
            _lineage(code={"commit": "abc", "dirty": True, "diff_digest": "x", "genreg": "0.1.0"})
        )
        != fp
    )


def test_git_state_reports_commit_and_dirty_flag(tmp_path: Path) -> None:
    assert git_state(tmp_path)["commit"] is None
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    run("add", "f.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    clean = git_state(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and clean["diff_digest"] is None
    (tmp_path / "f.txt").write_text("b")
    d1 = git_state(tmp_path)
    (tmp_path / "f.txt").write_text("c")
    d2 = git_state(tmp_path)
    assert d1["dirty"] is True and d1["diff_digest"] != d2["diff_digest"]


def test_environment_has_versions_and_hardware() -> None:
    env = capture_environment()
    assert env["code"]["genreg"]
    assert env["packages"]["python"] and "numpy" in env["packages"] and "torch" in env["packages"]
    assert env["host"]["cores"] >= 1 and env["host"]["ram_bytes"] > 0 and env["host"]["cpu"]
    assert isinstance(env["host"]["gpu"], list)
