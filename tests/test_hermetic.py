"""Tests are hermetic: nothing above a test's tmp dir changes its outcome, and a test that
escapes its tmp home fails. Also: ``genreg init`` honours GENREG_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def _stray_registry(where: Path) -> Path:
    """A real, non-empty registry at WHERE/.genreg (what a user's /tmp might hold)."""
    home = where / ".genreg"
    env = {**os.environ, "GENREG_HOME": str(home), "PYTHONPATH": str(SRC)}
    prompt = where / "stray.txt"
    prompt.write_text("stray {{ x }}\n", encoding="utf-8")
    for args in (["init"], ["register", "prompt", "stray", str(prompt)]):
        subprocess.run(
            [sys.executable, "-c", "from genreg.cli import main; main()", *args],
            env=env,
            check=True,
            capture_output=True,
        )
    return home


def _pytest(args: list[str], *, tmpdir: Path, basetemp: Path, cwd: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENREG_", "PYTEST_"))}
    env.update(TMPDIR=str(tmpdir), PYTHONPATH=str(SRC), GENREG_AUTHOR="tester")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
         str(basetemp), *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_home_discovery_stops_at_a_ceiling_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genreg.settings import find_home

    (tmp_path / ".genreg").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.delenv("GENREG_HOME")
    monkeypatch.setenv("GENREG_CEILING_DIRECTORIES", str(tmp_path / "a"))
    assert find_home(deep) is None
    monkeypatch.setenv("GENREG_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert find_home(deep) == tmp_path / ".genreg"


def test_suite_passes_with_stray_registries_in_tmp_and_above_basetemp(tmp_path: Path) -> None:
    """A fresh run with a `.genreg` in the temp dir and in the parent of pytest's basetemp:
    the tests that discover registries by walking up still pass."""
    fake_tmp = tmp_path / "tmp"
    parent = fake_tmp / "parent"
    parent.mkdir(parents=True)
    _stray_registry(fake_tmp)
    _stray_registry(parent)
    r = _pytest(
        [str(TESTS / "test_cli.py"), str(TESTS / "test_push.py"), str(TESTS / "test_registry.py")],
        tmpdir=fake_tmp,
        basetemp=parent / "basetemp",
        cwd=fake_tmp,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "error" not in r.stdout.splitlines()[-1]


def test_guard_fails_a_test_that_writes_a_registry_outside_its_tmp_home(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    for f in ("conftest.py", "_backends.py"):
        shutil.copy(TESTS / f, inner / f)
    outside = tmp_path / "outside"
    (inner / "test_escape.py").write_text(
        "from pathlib import Path\n"
        "from genreg import Registry\n\n"
        "def test_escapes():\n"
        f"    Registry.init(Path({str(outside)!r})).close()\n\n"
        "def test_stays_home(registry):\n"
        "    assert registry.list() == []\n",
        encoding="utf-8",
    )
    r = _pytest([str(inner)], tmpdir=tmp_path, basetemp=tmp_path / "bt", cwd=inner)
    assert r.returncode == 1, r.stdout
    assert "test used a registry outside its tmp home" in r.stdout
    assert str(outside) in r.stdout
    assert "ERROR test_escape.py::test_escapes" in r.stdout and "1 error" in r.stdout
    assert "test_stays_home" not in r.stdout  # the test that stays home is not flagged


def test_init_honours_genreg_home_and_says_where(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "srv" / "reg"
    from typer.testing import CliRunner

    from genreg.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["init"], env={"GENREG_HOME": str(target)})
    assert r.exit_code == 0, r.output
    assert f"in {target.resolve()}" in r.output
    assert (target / "registry.db").exists()
    assert not (tmp_path / ".genreg").exists()  # not ./.genreg
    # the next command finds it: no 'run genreg init' loop
    r = runner.invoke(app, ["list"], env={"GENREG_HOME": str(target)})
    assert r.exit_code == 0, r.output
    # an explicit PATH still wins over GENREG_HOME
    explicit = tmp_path / "explicit"
    r = runner.invoke(app, ["init", str(explicit)], env={"GENREG_HOME": str(target)})
    assert r.exit_code == 0 and f"in {explicit.resolve()}" in r.output
    assert (explicit / "registry.db").exists()
    r = runner.invoke(app, ["init"], env={"GENREG_HOME": str(target)})
    assert f"Reinitialized existing genreg registry in {target.resolve()}" in r.output
