"""The fast entry point (genreg.fastcli): the hot commands print byte-identical output to the
full typer CLI, without importing typer, pydantic or SQLAlchemy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PROMPT = "template: 'Q: {{ q }}'\nvariables: {type: object, properties: {q: {type: string}}}\n"


def _genreg(args: list[str], home: Path, *, fast: bool, cwd: Path, **env: str) -> Any:
    e = {k: v for k, v in os.environ.items() if k != "GENREG_NO_FAST_CLI"}
    e.update({"GENREG_HOME": str(home), "PYTHONPATH": str(SRC), "COLUMNS": "100", **env})
    if not fast:
        e["GENREG_NO_FAST_CLI"] = "1"
    return subprocess.run(
        [sys.executable, "-c", "from genreg.fastcli import main; main()", *args],
        env=e, cwd=cwd, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def populated(registry: Any, write: Any, tmp_path: Path) -> Path:
    for i in range(3):
        registry.register("prompt", "qa", write(f"qa{i}.yaml", PROMPT.replace("Q:", f"Q{i}:")))
    registry.register("prompt", "other", write("o.txt", "Hello {{ who }}"), message="hi there")
    registry.register_content("routing", "r", {
        "routes": [],
        "default": {"target": {"model": "m", "price": {"input_per_1m": 1, "output_per_1m": 1}}},
    })  # fmt: skip
    registry.set_alias("prompt:qa@v2", "production", reason="r")
    registry.set_alias("prompt:qa@v2", "staging")
    registry.set_alias("prompt:qa@v3", "canary")
    return registry.home


READS = [
    ["resolve", "prompt:qa"],
    ["resolve", "prompt:qa@production", "--json"],
    ["resolve", "prompt:qa@v1"],
    ["list"],
    ["list", "prompt"],
    ["list", "--json"],
    ["history", "prompt:qa"],
    ["history", "prompt:qa", "--json"],
    ["history", "prompt:other@v1"],
    ["resolve", "prompt:nope"],  # errors: the full CLI answers (did-you-mean included)
    ["list", "nokind"],
    ["history", "prompt:qaa", "--json"],
    ["--help"],
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_fast_path_output_is_byte_identical_to_the_full_cli(
    populated: Path, tmp_path: Path, args: list[str]
) -> None:
    fast = _genreg(args, populated, fast=True, cwd=tmp_path)
    full = _genreg(args, populated, fast=False, cwd=tmp_path)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    )
    assert fast.stdout or fast.stderr


def test_snapshot_fast_path_matches_the_full_cli(tmp_path: Path) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    for i in range(20):
        (src / f"d{i}.txt").write_text(f"doc {i}", encoding="utf-8")
    outs = []
    for fast in (True, False):
        home = tmp_path / f"home-{fast}"
        _genreg(["init"], home, fast=fast, cwd=tmp_path)
        args = ["corpus", "snapshot", "kb", str(src), "-m", "first", "--tag", "t=1"]
        first = _genreg(args, home, fast=fast, cwd=tmp_path)
        again = _genreg([*args, "--json"], home, fast=fast, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        outs.append((first.stdout, first.stderr, json.loads(again.stdout)["created"]))
    assert outs[0] == outs[1]
    assert outs[0][0].startswith(b"created    corpus:kb@v1")


def test_hot_commands_import_neither_typer_nor_pydantic_nor_sqlalchemy(
    populated: Path, tmp_path: Path
) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    (src / "a.txt").write_text("a", encoding="utf-8")
    probe = (
        "import sys\n"
        "from genreg.fastcli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'typer', 'click', 'pydantic', 'sqlalchemy', 'sqlmodel', 'rich', 'fastapi'})\n"
        # nor the components a hot command does not use (Registry builds them on first use)
        "heavy += sorted(set(sys.modules) & {'genreg.service.runs', 'genreg.service.indexing', "
        "'genreg.service.admin', 'genreg.service.tokens', 'genreg.pipeline', 'genreg.retrieval'})\n"
        "sys.stderr.write(f'HEAVY={heavy} CODE={code}')\n"
    )
    _genreg(["--help"], populated, fast=True, cwd=tmp_path)  # renders through typer, caches
    assert list((tmp_path / ".cache").glob("help-*.txt")), "help was never cached"
    for args in (
        ["resolve", "prompt:qa"],
        ["list"],
        ["history", "prompt:qa", "--json"],
        ["--help"],  # served from the cache
        ["corpus", "snapshot", "kb", str(src)],
    ):
        e = {**os.environ, "GENREG_HOME": str(populated), "PYTHONPATH": str(SRC), "COLUMNS": "100"}
        e.pop("GENREG_NO_FAST_CLI", None)
        r = subprocess.run(
            [sys.executable, "-c", probe, *args], env=e, capture_output=True, text=True, timeout=120
        )
        assert r.stderr.endswith("HEAVY=[] CODE=0"), (args, r.stderr[-500:])


def test_help_cache_is_keyed_by_width(populated: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    narrow = _genreg(
        ["--help"], populated, fast=True, cwd=tmp_path, GENREG_CACHE_DIR=str(cache), COLUMNS="60"
    )
    wide = _genreg(["--help"], populated, fast=True, cwd=tmp_path, GENREG_CACHE_DIR=str(cache))
    assert len(list(cache.glob("help-*.txt"))) == 2
    assert narrow.stdout != wide.stdout
    assert wide.stdout == _genreg(["--help"], populated, fast=False, cwd=tmp_path).stdout
