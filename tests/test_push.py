"""Files in git are the source of truth: `genreg push` registers what changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conftest import REPO_ROOT


def project(tmp_path: Path) -> Path:
    for d in ("registry", "evals/sets"):
        shutil.copytree(REPO_ROOT / d, tmp_path / d, dirs_exist_ok=True)
    return tmp_path


def test_push_registers_shipped_examples_then_is_idempotent(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    project(tmp_path)
    first = json.loads(cli("push", "--json").stdout)
    kinds = {(r["kind"], r["name"]) for r in first}
    assert {("prompt", "rag-answer"), ("prompt", "query-rewrite"), ("routing", "default")} <= kinds
    assert all(r["status"] == "created" for r in first)
    second = cli("push")
    assert second.exit_code == 0, second.output
    assert "0 new version(s)" in second.stdout
    assert len(registry.history("prompt:rag-answer")) == 1


def test_push_creates_one_version_for_each_changed_file(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    root = project(tmp_path)
    cli("push")
    p = root / "registry/prompts/rag-answer.yaml"
    p.write_text(p.read_text().replace("temperature: 0.1", "temperature: 0.0"))
    res = json.loads(cli("push", "--json").stdout)
    created = [(r["kind"], r["name"], r["version"]) for r in res if r["status"] == "created"]
    assert created == [("prompt", "rag-answer", 2)]


def test_push_with_one_bad_file_registers_nothing(cli: Any, registry: Any, tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "registry/prompts/broken.yaml").write_text("template: '{{ x'\n")
    r = cli("push")
    assert r.exit_code == 1 and "broken.yaml" in r.stderr
    assert registry.list() == []


def test_push_explicit_path_only_pushes_that_file(cli: Any, registry: Any, tmp_path: Path) -> None:
    root = project(tmp_path)
    r = cli("push", root / "registry/routing/default.yaml")
    assert r.exit_code == 0, r.output
    assert [(a.kind, a.name) for a in registry.list()] == [("routing", "default")]


def test_home_is_found_by_walking_up(tmp_path: Path, monkeypatch: Any) -> None:
    from genreg import Registry
    from genreg.settings import find_home

    Registry.init(tmp_path / ".genreg").close()
    monkeypatch.delenv("GENREG_HOME")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_home() == tmp_path / ".genreg"
