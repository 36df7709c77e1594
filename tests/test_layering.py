"""The shells (cli/, api/, ui/, the fast CLI, the lock file) call ``Registry`` methods only:
they never touch persistence handles or store internals (docs/architecture.md)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "genreg"
SHELLS = [SRC / "cli", SRC / "api", SRC / "ui", SRC / "fastcli.py", SRC / "lockfile.py"]
HANDLES = re.compile(
    r"\b(reg|registry|_reg|state\.registry)\."
    r"(metadata|engine|repo|objects|derived|runs_repo|fast|_packidx)\b"
)
PRIVATE = re.compile(
    r"(?<!self)\.(_commit|_key|_tmp|_trash)\b|getattr\(\w+, \"fs\"|LocalObjectStore"
)


def _files() -> list[Path]:
    out: list[Path] = []
    for p in SHELLS:
        out.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return out


def test_shells_never_touch_persistence_handles() -> None:
    bad = []
    for f in _files():
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if HANDLES.search(code) and "import" not in code:
                bad.append(f"{f.relative_to(SRC)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_nothing_outside_store_reaches_into_object_store_internals() -> None:
    bad = []
    for f in sorted(SRC.rglob("*.py")):
        if f.is_relative_to(SRC / "store"):
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if PRIVATE.search(line.split("#", 1)[0]):
                bad.append(f"{f.relative_to(SRC)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_no_service_branches_on_the_metadata_backend() -> None:
    bad = []
    for f in sorted((SRC / "service").rglob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"\.fast\b|FastReader|FastWriter|isinstance\(\S*metadata", line):
                bad.append(f"{f.relative_to(SRC)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
