"""gc racing writers in separate processes never deletes what a committed version names.

The hostile case (issue 14 item 1): an old, unreferenced object (left by a failed
registration or import) has the same content as a new registration. The writer finds it
stored, skips writing it and commits its version row; a ``gc --delete`` that read the
references before that commit must not delete it. Likewise a snapshot re-run after a killed
one reuses the packs and manifest the killed run left behind.

Writers and gc are real processes (``forkserver``), started together on a barrier; the loops
are bounded. Afterwards every version must verify and read back.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from _backends import Backend

N = 60  # registrations racing gc


def _content(i: int) -> dict[str, Any]:
    return {"template": f"reused content number {i}"}


def _writer(n: int, env: dict[str, str], barrier: Any, stop: Any, out: Any) -> None:
    try:
        os.environ.update(env)
        from genreg import Registry

        with Registry() as reg:
            _ = reg.engine
            barrier.wait(timeout=120)
            for i in range(n):
                reg.register_content("prompt", f"p{i}", _content(i))
            out.put(("ok", "writer", n))
    except BaseException:  # noqa: BLE001 - reported to the parent
        out.put(("error", "writer", traceback.format_exc()))
    finally:
        stop.set()


def _snapshotter(src: str, rounds: int, env: dict[str, str], barrier: Any, stop: Any, out: Any):  # type: ignore[no-untyped-def]
    try:
        os.environ.update(env)
        from genreg import Registry

        with Registry() as reg:
            _ = reg.engine
            barrier.wait(timeout=120)
            for i in range(rounds):  # each round adds one new document: new pack, manifest
                (Path(src) / "new.md").write_text(f"# round {i}\n" + "text " * 200)
                reg.snapshot(f"docs{i}", src)
            out.put(("ok", "snapshot", rounds))
    except BaseException:  # noqa: BLE001
        out.put(("error", "snapshot", traceback.format_exc()))
    finally:
        stop.set()


def _collector(grace: float, env: dict[str, str], barrier: Any, stop: Any, out: Any) -> None:
    try:
        os.environ.update(env)
        from genreg import Registry

        runs = deleted = 0
        with Registry() as reg:
            _ = reg.engine
            barrier.wait(timeout=120)
            while not stop.is_set() and runs < 2000:  # bounded
                deleted += len(reg.gc(dry_run=False, grace_seconds=grace).deleted)
                runs += 1
        out.put(("ok", "gc", (runs, deleted)))
    except BaseException:  # noqa: BLE001
        out.put(("error", "gc", traceback.format_exc()))


def _race(writer: Any, writer_args: tuple[Any, ...], grace: float) -> dict[str, Any]:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["genreg.service", "sqlalchemy", "sqlmodel", "psycopg"])
    env = {k: v for k, v in os.environ.items() if k.startswith(("GENREG_", "AWS_"))}
    barrier, stop, out = ctx.Barrier(2), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=writer, args=(*writer_args, env, barrier, stop, out)),
        ctx.Process(target=_collector, args=(grace, env, barrier, stop, out)),
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r[2] for r in results if r[0] == "error"]
    assert not errors, errors[0]
    return {r[1]: r[2] for r in results}


def _age(reg: Any, digests: list[str], seconds: float = 7200) -> None:
    """Make objects look old (as if left behind by a failed registration hours ago)."""
    past = time.time() - seconds
    for d in digests:
        path = reg.objects.local_path(d)
        if path is not None:
            os.utime(path, (past, past))


def _orphans(reg: Any) -> list[str]:
    """Objects equal to what the writer will register, stored but named by no version."""
    from genreg.core import artifacts as kinds

    out = [reg.objects.put_bytes(kinds.parse_payload("prompt", _content(i)).data) for i in range(N)]
    _age(reg, out)
    return out


@pytest.mark.parametrize("grace", [0.0, 3600.0], ids=["grace0", "grace1h"])
def test_gc_racing_registrations_of_reused_objects_keeps_every_version(
    backend: Backend, backend_registry: Any, grace: float
) -> None:
    if backend.objects == "s3" and grace > 0:
        pytest.skip("S3 objects cannot be aged: the grace case is covered on local objects")
    reg = backend_registry
    orphans = _orphans(reg)
    got = _race(_writer, (N,), grace)
    report = reg.verify()
    assert report.ok, [str(p) for p in report.problems][:5]
    for i in range(N):
        info = reg.resolve(f"prompt:p{i}")
        assert info.object_digest == orphans[i]
        assert reg.load_prompt(f"prompt:p{i}").template == _content(i)["template"]
    assert got["gc"][0] >= 1
    assert not list(getattr(reg.objects, "iter_hidden", list)())


def test_gc_racing_a_rerun_of_a_killed_snapshot_keeps_its_packs_and_manifest(
    db_backend: Backend, tmp_path: Path
) -> None:
    """A killed snapshot leaves its packs and manifest unreferenced; re-runs reuse them, and
    each round also writes new ones (grace 0: only the two-phase delete protects them)."""
    from genreg import Registry

    src = tmp_path / "docs"
    for i in range(40):
        (src / f"d{i // 10}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i // 10}" / f"doc{i}.md").write_text(f"# doc {i}\nbody {i}\n")
    with Registry.init(db_backend.home) as reg:
        first = reg.snapshot("seed", src)
        # undo the version row and pack rows: what a kill -9 before the commit leaves behind
        from sqlalchemy import text

        with reg.engine.begin() as c:
            c.execute(text("DELETE FROM version"))
            c.execute(text("DELETE FROM artifact"))
            c.execute(text("DELETE FROM derived"))
        (db_backend.home / "packs.sqlite").unlink()
        for name in ("packs.sqlite-wal", "packs.sqlite-shm"):
            (db_backend.home / name).unlink(missing_ok=True)
        leftovers = list(reg.objects.iter_digests())
        assert first.version.object_digest in leftovers and len(leftovers) >= 3
        _age(reg, leftovers)
    rounds = 12
    _race(_snapshotter, (str(src), rounds), 0.0)
    with Registry(db_backend.home) as reg:
        report = reg.verify()
        assert report.ok, [str(p) for p in report.problems][:5]
        for i in range(rounds):
            docs = list(reg.iter_documents(f"corpus:docs{i}"))
            assert len(docs) == 41
            assert [d.text for d in docs if d.doc_id == "new.md"] == [
                f"# round {i}\n" + "text " * 200
            ]
