"""Test fixtures. Every test gets its own registry home (a real SQLite file) in a tmp dir.

Factories, not shared state: ``registry`` opens the tmp registry; ``write`` writes a file;
``cli`` invokes the typer app through CliRunner and returns the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from _backends import backend, backend_registry, db_backend  # noqa: F401 - fixtures

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture(autouse=True)
def genreg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Redirect GENREG_HOME to a fresh tmp dir so no test touches a user's registry.

    Metadata and objects use the home's SQLite file and directory, unless
    ``GENREG_TEST_BACKEND`` (e.g. ``postgres-local``) asks for a fresh PostgreSQL database /
    S3 bucket per test (see tests/_backends.py)."""
    home = tmp_path / ".genreg"
    monkeypatch.setenv("GENREG_HOME", str(home))
    monkeypatch.setenv("GENREG_AUTHOR", "tester")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("GENREG_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    from _backends import env_backend

    with env_backend(home, monkeypatch):
        yield home


@pytest.fixture
def registry(genreg_home: Path) -> Iterator[Any]:
    from genreg import Registry

    reg = Registry.init(genreg_home)
    yield reg
    reg.close()


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    def _write(rel: str, content: str | bytes) -> Path:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return p

    return _write


@pytest.fixture
def cli() -> Callable[..., Any]:
    from genreg.cli import app

    runner = CliRunner()

    def _invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(
            app, [str(a) for a in args], input=input, env={"GENREG_HOME": os.environ["GENREG_HOME"]}
        )

    return _invoke
