"""gc and the on-disk index build: the build's work directory (``<home>/cache/tmp/ann-*/``,
holding the corpus's whole chunk text) is reclaimed once its build is gone -- a build killed
with ``kill -9`` mid-way leaves it behind -- and never while the build runs, whatever its age;
the build's lock on it (:class:`genreg.store.objects.StagingDir`) is what tells them apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from genreg.store.objects import WORKDIR_LOCK, StagingDir

# a real ivfpq build, killed (-9) the moment it starts embedding: its text table is written
_KILLED_BUILD = """
import hashlib, os, signal, sys
import numpy as np
from genreg import Registry

class KillingEmbedder:
    tokenizer = None
    name, dim, digest = "sha-32", 32, "sha256:" + "cd" * 32
    def encode(self, texts, batch_size=32, *, progress=None):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 mid-build

reg = Registry(sys.argv[1])
reg.build_index("kb", model=KillingEmbedder(), chunking={"by": "chars", "size": 20, "overlap": 4},
                index={"type": "ivfpq", "nlist": 16, "m": 8, "nprobe": 4, "train_size": 1000})
"""

# holds a build work directory's lock until its stdin closes
_LIVE_BUILD = """
import sys
from pathlib import Path
from genreg.store.objects import StagingDir
work = StagingDir(Path(sys.argv[1]), prefix="ann-")
(work.path / "texts.part").write_bytes(b"x" * 4096)
print(work.path, flush=True)
sys.stdin.read()
work.close()
"""


def _work_root(registry: Any) -> Path:
    return registry.settings.home / "cache" / "tmp"


def _old(path: Path, age: float = 7200.0) -> None:
    t = time.time() - age
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t))


def test_gc_reclaims_the_work_dir_of_a_killed_ann_build_and_reports_it(
    registry: Any, tmp_path: Path, cli: Any
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):
        (src / f"d{i:04d}.txt").write_text(f"document {i} " + "word " * 30, encoding="utf-8")
    registry.snapshot("kb", src)
    proc = subprocess.run([sys.executable, "-c", _KILLED_BUILD, str(registry.home)])
    assert proc.returncode == -9
    (work,) = list(_work_root(registry).iterdir())
    assert work.name.startswith("ann-") and (work / WORKDIR_LOCK).is_file()
    texts = work / "texts.part"
    assert texts.stat().st_size > 300 * 150  # the whole chunk text
    size = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())

    r = cli("gc", "--dry-run", "--json")  # a dead build's dir is stale at any age
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert [(f["path"], f["recent"]) for f in out["staging"]] == [(str(work), False)]
    assert out["staging_bytes_reclaimable"] == size and texts.exists()
    r = cli("gc", "--delete")  # default grace: still reclaimed (its build is gone)
    assert r.exit_code == 0, r.output
    assert "deleted" in r.output and not work.exists()
    assert list(_work_root(registry).iterdir()) == []


def test_gc_never_reclaims_the_work_dir_of_a_live_build_in_another_process(
    registry: Any,
) -> None:
    root = _work_root(registry)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _LIVE_BUILD, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        work = Path(proc.stdout.readline().strip())
        _old(work)  # age is no reason: the build is running
        report = registry.gc(dry_run=False, grace_seconds=0)
        assert report.staging == [] and (work / "texts.part").exists()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0 and not work.exists()  # the build removes its own dir


def test_a_live_build_in_this_process_is_kept_and_a_finished_one_leaves_nothing(
    registry: Any,
) -> None:
    root = _work_root(registry)
    with StagingDir(root, prefix="ann-") as work:
        (work / "texts.part").write_bytes(b"y" * 1000)
        _old(work)
        assert registry.gc(dry_run=False, grace_seconds=0).staging == []
        assert (work / "texts.part").exists()
    assert list(root.iterdir()) == []


def test_a_work_dir_whose_lock_state_is_unknown_is_kept_for_the_grace_period(
    registry: Any,
) -> None:
    """A dir without a lock file (an older genreg's, or one being created): only its age
    tells; past the grace period gc reclaims it, holding the lock itself meanwhile."""
    work = _work_root(registry) / "ann-killed"
    work.mkdir(parents=True)
    (work / "texts.part").write_bytes(b"z" * 5000)
    report = registry.gc(dry_run=False)  # fresh: reported, kept
    assert [(f["path"], f["recent"], f["deleted"]) for f in report.staging] == [
        (str(work), True, False)
    ]
    assert work.exists()
    _old(work)
    report = registry.gc(dry_run=True)
    assert [(f["size"], f["recent"]) for f in report.staging] == [(5000, False)]
    assert work.exists()  # a dry run deletes nothing
    report = registry.gc(dry_run=False)
    assert [f["deleted"] for f in report.staging] == [True] and not work.exists()


def test_a_work_dir_reclaimed_before_its_lock_is_taken_is_made_again(
    registry: Any, monkeypatch: Any
) -> None:
    """gc removing a brand-new dir (no lock file yet, zero grace) between mkdtemp and the
    build taking its lock: the build starts over with a new dir it holds."""
    import tempfile

    from genreg.store import objects as objects_mod

    real = tempfile.mkdtemp
    made: list[str] = []

    def mkdtemp(**kw: Any) -> str:
        path = real(**kw)
        made.append(path)
        if len(made) == 1:
            assert objects_mod.reclaim_staging_dir(Path(path))  # the gc, in that instant
        return path

    monkeypatch.setattr(objects_mod.tempfile, "mkdtemp", mkdtemp)
    work = StagingDir(_work_root(registry), prefix="ann-")
    try:
        assert len(made) == 2 and work.path == Path(made[1]) and work.path.is_dir()
        assert not Path(made[0]).exists()
        assert objects_mod.staging_dir_state(work.path) == "live"
        assert not objects_mod.reclaim_staging_dir(work.path)
    finally:
        work.close()
    assert not work.path.exists()
