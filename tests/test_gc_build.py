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

import pytest

from genreg.store.objects import WORKDIR_LOCK, StagingDir
from test_stream_tables import CHUNKS, SPEC
from test_stream_tables import ShaEmbedder as _ShaEmbedder

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


# ---- leases: what a running build stored before its index row names it -------------------------
def _backdate_object(registry: Any, digest: str, age: float = 7200.0) -> None:
    path = registry.objects.local_path(digest)
    t = time.time() - age
    os.utime(path, (t, t))


def test_the_text_table_of_a_running_ray_build_survives_gc_and_no_lease_is_left(
    registry: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """engine=ray stores the chunk-text table before the job (the actors read it); a
    ``gc --delete --grace 0`` while the job runs -- the table older than any grace period --
    keeps it (the build's lease names it); the finished build leaves no lease."""
    import contextlib

    from genreg.retrieval import ann, ray_engine
    from genreg.retrieval.cache import EmbeddingCache
    from genreg.retrieval.chunking import ChunkingSpec, iter_chunks
    from genreg.service.leases import LEASE_KIND

    src = tmp_path / "src"
    src.mkdir()
    for i in range(400):
        (src / f"d{i:04d}.txt").write_text(f"doc {i} " + f"w{i}x " * 12, encoding="utf-8")
    registry.snapshot("kb", src)
    chunks = list(iter_chunks(registry.iter_documents("kb"), ChunkingSpec.parse(CHUNKS)))
    seen: dict[str, Any] = {}

    def embed_rows(
        settings: Any,
        emb: Any,
        table: str,
        rows: Any,
        lengths: Any,
        missing: Any,
        options: Any,
        progress: Any = None,
        *,
        digests: Any = None,  # the rows' expected text digests (the actors check them)
    ) -> dict[str, Any]:
        # the job, hours in: the table is older than gc's grace, a gc runs
        _backdate_object(registry, table)
        report = registry.gc(dry_run=False, grace_seconds=0)
        seen["table"], seen["report"] = table, report
        seen["stored"] = registry.objects.has(table)
        todo = [int(r) for r, m in zip(rows, missing, strict=True) if m]
        cache = EmbeddingCache(registry.objects, registry.derived, emb.digest, emb.dim)
        cache.add([chunks[r].digest for r in todo], emb.encode([chunks[r].text for r in todo]))
        return {"shards": 1, "embedded": len(todo), "seconds": 0.0, "actors": 1}

    def build_units(objects_url: str, trained: bytes, units: Any, paths: Any, options: Any) -> Any:
        for u, p in zip(units, paths, strict=True):  # the Ray tasks, run here
            yield ann.build_unit(registry.objects, trained, u, p)

    monkeypatch.setattr(ray_engine, "preflight", lambda options: None)
    monkeypatch.setattr(ray_engine, "ray_session", lambda options: contextlib.nullcontext())
    monkeypatch.setattr(ray_engine, "embed_rows", embed_rows)
    monkeypatch.setattr(ray_engine, "build_units", build_units)
    info = registry.build_index(
        "kb", model=_ShaEmbedder(), chunking=CHUNKS, index=SPEC, engine="ray"
    )
    assert seen["stored"], "gc deleted the text table of a running build"
    report = seen["report"]
    assert seen["table"] not in report.deleted
    assert seen["table"] not in {o["digest"] for o in report.unreferenced}
    (lease,) = report.leases
    assert lease["objects"] == [seen["table"]] and not lease["expired"]
    assert registry.derived.get(info.key).meta["text_table"] == seen["table"]
    assert registry.derived.list(LEASE_KIND) == []  # the finished build leaves none
    assert registry.verify().ok
    r = registry.open_retriever("kb", model=_ShaEmbedder(), chunking=CHUNKS, index=SPEC)
    hits = r.search_vectors(_ShaEmbedder().encode([chunks[5].text]), 1, with_text=True)[0]
    assert hits[0].text == chunks[5].text


_KILLED_LEASE = """
import os, signal, sys
from genreg import Registry
from genreg.service.leases import Lease
reg = Registry(sys.argv[1])
d = reg.objects.put_bytes(b"a text table stored by a build that is then killed")
Lease(reg.derived, "scope", "index build", ttl=float(sys.argv[2])).add(d)
print(d, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_builds_lease_expires_then_gc_removes_it_and_its_objects(
    registry: Any, cli: Any
) -> None:
    from genreg.service.leases import LEASE_KIND

    ttl = 6.0
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_LEASE, str(registry.home), str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.returncode == -9
    digest = proc.stdout.strip()
    _backdate_object(registry, digest)
    (lease_row,) = registry.derived.list(LEASE_KIND)
    expires = float(lease_row.meta["expires"])
    report = registry.gc(dry_run=False, grace_seconds=0)  # the lease is not expired yet
    assert time.time() < expires, "the machine took longer than the lease's ttl to get here"
    assert registry.objects.has(digest) and report.deleted == []
    assert [(x["expired"], x["deleted"]) for x in report.leases] == [(False, False)]
    while time.time() < expires + 0.5:
        time.sleep(0.1)
    r = cli("gc", "--dry-run", "--json")
    out = json.loads(r.output)
    assert [(x["expired"], x["deleted"]) for x in out["leases"]] == [(True, False)]
    assert [o["digest"] for o in out["unreferenced"]] == [digest]  # the lease keeps nothing
    assert len(registry.derived.list(LEASE_KIND)) == 1 and registry.objects.has(digest)
    r = cli("gc", "--delete")
    assert r.exit_code == 0, r.output
    assert "lease " in r.output and "deleted" in r.output
    assert registry.derived.list(LEASE_KIND) == [] and not registry.objects.has(digest)
    assert registry.verify().ok


def test_gc_recognises_a_lease_by_its_row_kind_not_by_how_its_name_reads(
    registry: Any,
) -> None:
    """Only a derived row of kind ``lease`` stops protecting its objects once its
    ``meta.expires`` is past: a row of another kind whose kind, scope and key all start with
    "lease" and whose meta says expired keeps its objects, as does a live lease."""
    from genreg.service.leases import LEASE_KIND

    put = registry.objects.put_bytes
    dead, dead_too = put(b"expired lease object"), put(b"expired lease, meta only")
    live, live_too = put(b"live lease object"), put(b"live lease, meta only")
    other, other_too = put(b"lookalike row object"), put(b"lookalike row, meta only")
    for d in (dead, dead_too, live, live_too, other, other_too):
        _backdate_object(registry, d)
    past, future = time.time() - 60, time.time() + 3600
    registry.derived.put(
        LEASE_KIND, "scope", "lease:dead:1", dead, {"objects": [dead, dead_too], "expires": past}
    )
    registry.derived.put(
        LEASE_KIND, "scope", "lease:live:1", live, {"objects": [live, live_too], "expires": future}
    )
    registry.derived.put(
        # its owner name reads "derived lease copy ...": a name-prefix test would take it
        "lease copy",
        "lease",
        "lease:other:1",
        other,
        {"objects": [other_too], "expires": past},
    )
    report = registry.gc(dry_run=True, grace_seconds=0)
    assert sorted(o["digest"] for o in report.unreferenced) == sorted([dead, dead_too])
    assert sorted((x["key"], x["expired"]) for x in report.leases) == [
        ("lease:dead:1", True),
        ("lease:live:1", False),
    ]
    report = registry.gc(dry_run=False, grace_seconds=0)
    assert sorted(report.deleted) == sorted([dead, dead_too])
    assert [r.key for r in registry.derived.list(LEASE_KIND)] == ["lease:live:1"]
    assert registry.derived.get("lease:other:1") is not None
    for d in (live, live_too, other, other_too):
        assert registry.objects.has(d)
    assert registry.verify().ok


def test_a_live_lease_is_renewed_past_its_ttl_and_closing_it_leaves_no_row(
    db_backend: Any,
) -> None:
    """On SQLite and PostgreSQL (the lease row is written, renewed and deleted)."""
    from genreg import Registry
    from genreg.service.leases import LEASE_KIND, Lease

    registry = Registry.init(db_backend.home)
    try:
        _renewed_then_closed(registry, Lease, LEASE_KIND)
    finally:
        registry.close()


def _renewed_then_closed(registry: Any, Lease: Any, LEASE_KIND: str) -> None:
    digest = registry.objects.put_bytes(b"the objects of a long job")
    _backdate_object(registry, digest)
    lease = Lease(registry.derived, "scope", "index build", ttl=1.2)
    try:
        lease.add(digest)
        first = lease.key
        time.sleep(2.0)  # 1.7 TTLs: alive only because its thread renews it
        report = registry.gc(dry_run=False, grace_seconds=0)
        assert registry.objects.has(digest) and report.deleted == []
        assert lease.key != first and len(registry.derived.list(LEASE_KIND)) == 1
    finally:
        lease.close()
    assert registry.derived.list(LEASE_KIND) == []
    assert registry.gc(dry_run=False, grace_seconds=0).deleted == [digest]


def test_a_lease_whose_renewals_fail_until_it_runs_out_is_lost_and_stops_the_job(
    registry: Any, capsys: Any
) -> None:
    """The metadata database refuses every renewal: once the lease has run out it is lost --
    one warning, and ``check``/``add`` raise instead of the job going on with objects gc may
    have taken."""
    from genreg.errors import IntegrityError
    from genreg.service.leases import Lease

    class Failing:
        def __init__(self, inner: Any) -> None:
            self.inner, self.fail = inner, False

        def put(self, **kw: Any) -> Any:
            if self.fail:
                raise OSError("database is gone")
            return self.inner.put(**kw)

        def delete(self, key: str) -> Any:
            return self.inner.delete(key)

    derived = Failing(registry.derived)
    d = registry.objects.put_bytes(b"leased")
    lease = Lease(derived, "scope", "index build", ttl=0.4)  # type: ignore[arg-type]
    lease.add(d)
    lease.check()  # renewed fine so far
    derived.fail = True
    deadline = time.time() + 5
    while not lease.lost and time.time() < deadline:
        time.sleep(0.05)
    assert lease.lost
    with pytest.raises(IntegrityError, match="lease ran out"):
        lease.check()
    with pytest.raises(IntegrityError):
        lease.add(registry.objects.put_bytes(b"more"))
    derived.fail = False
    lease.close()
    err = capsys.readouterr().err
    assert err.count("lease ran out") == 1 and "database is gone" not in err
