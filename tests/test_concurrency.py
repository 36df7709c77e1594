"""Concurrent writers in separate processes, on SQLite and on PostgreSQL.

Workers are real processes (multiprocessing ``forkserver``: a clean server process with genreg
preloaded, forked per worker) that open their own registry from the test's environment
(``GENREG_HOME`` / ``GENREG_DATABASE_URL``, passed explicitly), wait on a barrier so they
start together, and report any exception back: "no error surfaced" is checked, not assumed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections.abc import Callable
from typing import Any

from _backends import Backend


def _prompt(worker: int, i: int) -> dict[str, Any]:
    return {"template": f"worker {worker} item {i}"}


def _register_many(worker: int, n: int, env: dict[str, str], barrier: Any, out: Any) -> None:
    try:
        os.environ.update(env)
        from genreg import Registry

        with Registry() as reg:
            _ = reg.engine
            barrier.wait(timeout=120)
            created = [reg.register_content("prompt", "qa", _prompt(worker, i)) for i in range(n)]
            out.put(("ok", worker, [r.version.version for r in created]))
    except BaseException:  # noqa: BLE001 - reported to the parent
        out.put(("error", worker, traceback.format_exc()))


def _register_file(worker: int, path: str, env: dict[str, str], barrier: Any, out: Any) -> None:
    try:
        os.environ.update(env)
        from genreg import Registry

        with Registry() as reg:
            _ = reg.engine
            barrier.wait(timeout=120)
            r = reg.register("prompt", "shared", path)
            out.put(("ok", worker, (r.version.version, r.created)))
    except BaseException:  # noqa: BLE001
        out.put(("error", worker, traceback.format_exc()))


def _move_alias(worker: int, moves: int, env: dict[str, str], barrier: Any, out: Any) -> None:
    try:
        os.environ.update(env)
        from genreg import Registry

        with Registry() as reg:
            _ = reg.engine
            barrier.wait(timeout=120)
            unchanged = []  # a set to the version already there journals nothing (issue 13)
            for i in range(moves):
                target = (worker + i) % 4 + 1
                ev = reg.set_alias(f"prompt:qa@v{target}", "production", reason=f"w{worker} m{i}")
                if ev.action == "unchanged":
                    unchanged.append(f"w{worker} m{i}")
            out.put(("ok", worker, unchanged))
    except BaseException:  # noqa: BLE001
        out.put(("error", worker, traceback.format_exc()))


def _run(target: Callable[..., None], args_per_worker: list[tuple[Any, ...]]) -> list[Any]:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["genreg.service", "sqlalchemy", "sqlmodel", "psycopg"])
    env = {k: v for k, v in os.environ.items() if k.startswith(("GENREG_", "AWS_"))}
    barrier = ctx.Barrier(len(args_per_worker))
    out = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(w, *args, env, barrier, out))
        for w, args in enumerate(args_per_worker)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r for r in results if r[0] == "error"]
    assert not errors, "\n".join(e[2] for e in errors)
    assert all(p.exitcode == 0 for p in procs)
    return sorted(results, key=lambda r: r[1])


def _open(backend: Backend) -> Any:
    from genreg import Registry

    return Registry.init(backend.home)


def test_eight_processes_registering_get_versions_1_to_200_without_gaps(
    db_backend: Backend,
) -> None:
    _open(db_backend).close()
    results = _run(_register_many, [(25,)] * 8)
    numbers = sorted(n for r in results for n in r[2])
    assert numbers == list(range(1, 201))  # each worker was told its own numbers, no dupes
    with _open(db_backend) as reg:
        hist = reg.history("prompt:qa")
        assert [v.version for v in hist] == list(range(1, 201))
        assert [v.parent for v in hist] == [None, *range(1, 200)]
        assert len({v.digest for v in hist}) == 200


def test_two_processes_registering_the_same_file_make_one_version(
    db_backend: Backend, write: Any
) -> None:
    path = write("same.txt", "The same prompt for everyone.\n")
    _open(db_backend).close()
    results = _run(_register_file, [(str(path),), (str(path),)])
    outcomes = sorted(r[2] for r in results)
    assert outcomes == [(1, False), (1, True)]
    with _open(db_backend) as reg:
        assert [v.version for v in reg.history("prompt:shared")] == [1]


def test_two_processes_registering_different_files_get_consecutive_numbers(
    db_backend: Backend, write: Any
) -> None:
    a = write("a.txt", "Prompt A\n")
    b = write("b.txt", "Prompt B\n")
    _open(db_backend).close()
    results = _run(_register_file, [(str(a),), (str(b),)])
    assert sorted(r[2][0] for r in results) == [1, 2]
    assert all(r[2][1] for r in results)
    with _open(db_backend) as reg:
        assert [v.version for v in reg.history("prompt:shared")] == [1, 2]


def test_concurrent_alias_moves_are_serialised_and_all_journaled(db_backend: Backend) -> None:
    with _open(db_backend) as reg:
        for i in range(4):
            reg.register_content("prompt", "qa", _prompt(99, i))
    workers, moves = 4, 10
    results = _run(_move_alias, [(moves,)] * workers)
    unchanged = {why for r in results for why in r[2]}
    with _open(db_backend) as reg:
        events = reg.alias_history("prompt:qa", "production")
        assert len(events) == workers * moves - len(unchanged)
        assert events[0].action == "set" and all(e.action == "move" for e in events[1:])
        # serialised: every move starts where the previous one left the alias
        for prev, ev in zip(events, events[1:]):
            assert ev.from_version == prev.to_version
        assert reg.resolve("prompt:qa@production").version == events[-1].to_version
        reasons = {e.reason for e in events}
        assert reasons == {f"w{w} m{i}" for w in range(workers) for i in range(moves)} - unchanged


def test_concurrent_first_open_migrates_once(db_backend: Backend) -> None:
    """Several processes opening a brand-new database at once all end up at head."""
    db_backend.home.mkdir(parents=True, exist_ok=True)
    results = _run(_register_many, [(1,)] * 4)
    assert sorted(r[2][0] for r in results) == [1, 2, 3, 4]
    with _open(db_backend) as reg:
        assert reg.db_current()["current"] == reg.db_current()["head"]
