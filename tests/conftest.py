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


def _outside_homes(basetemp: Path) -> list[Path]:
    """Places a stray registry would land if a test escaped its tmp dir: the repo, the
    user's home, the system temp dir and every parent of pytest's basetemp."""
    import tempfile

    spots = {REPO_ROOT, Path.home(), Path(tempfile.gettempdir()), *basetemp.parents}
    return sorted(d / ".genreg" for d in spots)


def _stamp(homes: list[Path]) -> dict[Path, tuple[float, float] | None]:
    out: dict[Path, tuple[float, float] | None] = {}
    for h in homes:
        try:
            db = h / "registry.db"
            out[h] = (h.stat().st_mtime, db.stat().st_mtime if db.exists() else 0.0)
        except OSError:
            out[h] = None
    return out


@pytest.fixture(scope="session")
def _outside(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _outside_homes(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def registry_stays_in_tmp(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    _outside: list[Path],
) -> Iterator[None]:
    """Guard: fail any test that opens or writes a registry outside pytest's tmp dirs.

    In-process, every registry is opened through ``Settings.for_home``: its home must lie
    under the basetemp. Subprocesses are caught after the fact: no ``.genreg`` outside the
    tmp dirs (repo, ~, the temp dir, parents of the basetemp) may appear or change."""
    from genreg.settings import Settings

    base = tmp_path_factory.getbasetemp().resolve()
    escaped: list[Path] = []
    original = Settings.for_home.__func__  # type: ignore[attr-defined]

    def guarded(cls: type[Settings], home: Path) -> Settings:
        resolved = Path(home).resolve()
        if not resolved.is_relative_to(base):
            escaped.append(resolved)
        return original(cls, home)

    monkeypatch.setattr(Settings, "for_home", classmethod(guarded))
    before = _stamp(_outside)
    yield
    changed = [h for h, st in _stamp(_outside).items() if st != before[h] and st is not None]
    if escaped or changed:
        pytest.fail(
            "test used a registry outside its tmp home: "
            + ", ".join(str(p) for p in [*escaped, *changed])
        )


@pytest.fixture(autouse=True)
def genreg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Redirect GENREG_HOME to a fresh tmp dir so no test touches a user's registry, and
    stop registry discovery (which walks up like git) at the tmp dir: whatever lies above it
    (a stray ``/tmp/.genreg``) cannot change a test's outcome.

    Metadata and objects use the home's SQLite file and directory, unless
    ``GENREG_TEST_BACKEND`` (e.g. ``postgres-local``) asks for a fresh PostgreSQL database /
    S3 bucket per test (see tests/_backends.py)."""
    home = tmp_path / ".genreg"
    monkeypatch.setenv("GENREG_HOME", str(home))
    monkeypatch.setenv("GENREG_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("GENREG_CACHE_DIR", str(tmp_path / ".cache"))  # the --help cache
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
