"""Storage benchmark: registrations per second and resolve latency, SQLite vs PostgreSQL,
measured side by side in one run.

    .venv/bin/python scripts/bench_storage.py [--registrations 300] [--resolves 2000]

PostgreSQL: ``GENREG_TEST_POSTGRES_URL`` (an admin URL) if set, else a throw-away server is
started with ``scripts/ci_services.sh`` and stopped afterwards. Each backend gets a fresh
registry (SQLite file in a temp home / a fresh PostgreSQL schema) and local objects.

Measured per backend:
- sequential registrations/s (one process, distinct prompts, each its own transaction);
- concurrent registrations/s (4 processes x N/4 into the same artifact);
- resolve latency p50/p99 over a mix of refs (latest, @vN, @alias, @sha256:prefix) through
  ``Registry.resolve`` (the stdlib-sqlite3 fast path on SQLite, SQLAlchemy on PostgreSQL) and
  through the SQLAlchemy repo on both (like for like).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("GENREG_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    state = tempfile.mkdtemp(prefix="genreg-bench-")
    script = ROOT / "scripts" / "ci_services.sh"
    subprocess.run(["bash", str(script), "start", state], check=True)
    try:
        env = (Path(state) / "env").read_text()
        yield env.split('GENREG_TEST_POSTGRES_URL="', 1)[1].split('"', 1)[0]
    finally:
        subprocess.run(["bash", str(script), "stop", state], check=False)


@contextlib.contextmanager
def postgres_schema(admin_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "bench_" + uuid.uuid4().hex[:12]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def _prompt(tag: str, i: int) -> dict[str, Any]:
    return {"template": f"bench prompt {tag} {i}: answer {{{{ q }}}}", "variables": _VARS}


_VARS = {"type": "object", "properties": {"q": {"type": "string"}}}


def _open(home: Path, db_url: str | None) -> Any:
    if db_url:
        os.environ["GENREG_DATABASE_URL"] = db_url
    else:
        os.environ.pop("GENREG_DATABASE_URL", None)
    os.environ["GENREG_HOME"] = str(home)
    from genreg import Registry

    return Registry.init(home)


def _worker(home: str, db_url: str | None, w: int, n: int, barrier: Any, out: Any) -> None:
    reg = _open(Path(home), db_url)
    _ = reg.engine
    barrier.wait()
    for i in range(n):
        reg.register_content("prompt", "conc", _prompt(f"w{w}", i))
    reg.close()
    out.put(w)


def concurrent_rate(home: Path, db_url: str | None, total: int, procs: int = 4) -> float:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(procs + 1), ctx.Queue()
    ps = [
        ctx.Process(target=_worker, args=(str(home), db_url, w, total // procs, barrier, out))
        for w in range(procs)
    ]
    for p in ps:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for _ in ps:
        out.get(timeout=600)
    elapsed = time.perf_counter() - t0
    for p in ps:
        p.join()
    return (total // procs) * procs / elapsed


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bench(label: str, home: Path, db_url: str | None, n_reg: int, n_res: int) -> dict[str, Any]:
    from genreg.core.refs import parse_ref

    reg = _open(home, db_url)
    t0 = time.perf_counter()
    infos = [reg.register_content("prompt", "qa", _prompt("s", i)).version for i in range(n_reg)]
    seq = n_reg / (time.perf_counter() - t0)
    reg.set_alias(f"prompt:qa@v{n_reg // 2}", "production")
    conc = concurrent_rate(home, db_url, n_reg)

    rng = random.Random(7)
    refs = []
    for _ in range(n_res):
        v = rng.choice(infos)
        form = rng.randrange(4)
        refs.append(
            [
                "prompt:qa",
                f"prompt:qa@v{v.version}",
                "prompt:qa@production",
                f"prompt:qa@{v.digest[:19]}",
            ][form]
        )
    parsed = [parse_ref(r) for r in refs]
    reg2 = _open(home, db_url)  # fresh process-level caches, as a new CLI/API process would
    reg2.resolve(refs[0])
    svc, orm = [], []
    for r in refs:
        t = time.perf_counter()
        reg2.resolve(r)
        svc.append((time.perf_counter() - t) * 1000)
    for p in parsed:
        t = time.perf_counter()
        reg2.repo.resolve(p)
        orm.append((time.perf_counter() - t) * 1000)
    reg.close()
    reg2.close()
    return {
        "backend": label,
        "reg_seq": seq,
        "reg_conc": conc,
        "svc_p50": statistics.median(svc),
        "svc_p99": pct(svc, 0.99),
        "orm_p50": statistics.median(orm),
        "orm_p99": pct(orm, 0.99),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registrations", type=int, default=300)
    ap.add_argument("--resolves", type=int, default=2000)
    args = ap.parse_args()
    os.environ.setdefault("GENREG_AUTHOR", "bench")
    os.environ.pop("GENREG_OBJECTS_URL", None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="genreg-bench-") as tmp:
        rows.append(bench("sqlite", Path(tmp) / "sqlite", None, args.registrations, args.resolves))
        with postgres_admin_url() as admin, postgres_schema(admin) as url:
            rows.append(
                bench("postgresql", Path(tmp) / "pg", url, args.registrations, args.resolves)
            )
    cols = [
        ("backend", "backend", "{}"),
        ("reg_seq", "registrations/s (1 proc)", "{:.0f}"),
        ("reg_conc", "registrations/s (4 procs)", "{:.0f}"),
        ("svc_p50", "resolve p50 ms", "{:.3f}"),
        ("svc_p99", "resolve p99 ms", "{:.3f}"),
        ("orm_p50", "ORM resolve p50 ms", "{:.3f}"),
        ("orm_p99", "ORM resolve p99 ms", "{:.3f}"),
    ]
    print(
        f"{args.registrations} registrations, {args.resolves} resolves; python {sys.version.split()[0]}"
    )
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt.format(r[k]) for k, _, fmt in cols) + " |")
    s, p = rows
    print(
        f"\nratios postgresql/sqlite: registrations {p['reg_seq'] / s['reg_seq']:.2f}x (1 proc), "
        f"{p['reg_conc'] / s['reg_conc']:.2f}x (4 procs); resolve p50 {p['svc_p50'] / s['svc_p50']:.1f}x, "
        f"ORM resolve p50 {p['orm_p50'] / s['orm_p50']:.2f}x"
    )


if __name__ == "__main__":
    main()
