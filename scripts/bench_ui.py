#!/usr/bin/env python
"""Benchmark the web UI against the equivalent JSON API calls, on a real ``genreg serve``.

Builds a throw-away registry with
- two real scored runs of N queries each (``eval_score`` over generated TREC run files with
  100 ranked docs per query, an eval set of N rows) -- recording them also stores their UI
  index (summary + per-query shards, :mod:`genreg.service.run_queries`);
- one more run over the same results re-encoded as a new results object *without* a UI index
  (a run recorded before the index existed: its first view builds and stores it);
- R recorded runs in all: the remaining rows are written through the real run store
  (``RunRepo.create``: run row, lineage edges, metric rows) as copies of the first run with
  their own ids, times and metric values, because scoring 10,000 run files would take minutes;

then times, over loopback, each page side by side with the JSON call that returns the same
data: the first (cold) request of a fresh server process, then median and p95 of ``--repeat``
requests:

    runs page      /ui/runs                 vs  /v1/runs?limit=50
    run page       /ui/runs/ID              vs  /v1/runs/ID  (+ /v1/runs/ID/lineage)
    compare page   /ui/compare?base&head    vs  the page's JSON download of the deltas table

A compare page over a pair never compared before answers at once with the exact means, deltas,
wins/losses and per-query table, and computes the paired bootstrap + randomization tests
(10,000 resamples per metric) in the background; the script reports how long until they are
stored (``/ui/compare/status``) and, for reference, ``genreg runs compare --json`` (which
computes them in the foreground every time). Also: the time from starting ``genreg serve``
until ``/readyz`` answers, and what storing the UI index costs when a run is recorded.

    .venv/bin/python scripts/bench_ui.py [--runs 10000] [--queries 10000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(home: Path, n_runs: int, n_queries: int) -> tuple[str, str, str]:
    from genreg import Registry
    from genreg.service.run_queries import index_results

    rng = random.Random(0)
    reg = Registry.init(home)
    docs = [f"doc{i:06d}" for i in range(50_000)]
    rows = []
    for i in range(n_queries):
        rel = {d: rng.choice((0, 1, 2)) for d in rng.sample(docs, 3)}
        rows.append({"id": f"q{i:05d}", "query": f"benchmark query number {i}", "relevant": rel})
    reg.register_content("evalset", "bench", rows)
    ids = []
    for tag in ("a", "b"):
        path = home.parent / f"{tag}.trec"
        with path.open("w") as f:
            for r in rows:
                rel = [d for d, g in r["relevant"].items() if g > 0]
                ranked = [d for d in rng.sample(docs, 100) if d not in r["relevant"]]
                for d in rel:
                    if rng.random() < (0.6 if tag == "a" else 0.65):
                        ranked.insert(rng.randrange(0, 20), d)
                for rank, d in enumerate(ranked[:100], start=1):
                    f.write(f"{r['id']} Q0 {d} {rank} {100 - rank} {tag}\n")
        t0 = time.perf_counter()
        out = reg.eval_score(
            "evalset:bench", path, metrics=["ndcg@10", "recall@100", "mrr@10"], name="bench"
        )
        print(f"eval score of {n_queries} queries (run {tag}): {time.perf_counter() - t0:.2f} s")
        ids.append(out.run.id)
    base = reg.get_run(ids[0])
    results = reg.run_results(base.id)
    t0 = time.perf_counter()
    index_results(reg, "0" * 64, results)  # what recording a run now adds (a throw-away key)
    print(f"storing the UI index of {n_queries} queries: {time.perf_counter() - t0:.2f} s")
    repo = reg.runs_repo
    # a run recorded before the UI index existed: same results, new object, no index
    old_obj = reg.objects.put_bytes(gzip.compress(json.dumps(results, indent=1).encode()))
    old = dataclasses.replace(base, id=uuid.uuid4().hex[:16], results_object=old_obj)
    repo.create(old)
    for i in range(n_runs - 3):
        m = {k: max(0.0, min(1.0, v + rng.uniform(-0.05, 0.05))) for k, v in base.metrics.items()}
        repo.create(
            dataclasses.replace(
                base,
                id=uuid.uuid4().hex[:16],
                name=f"eval-{i % 20}",
                started_at=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00.{i:06d}Z",
                metrics=m,
                passed=rng.choice((True, False, None)),
            )
        )
    reg.close()
    return ids[0], ids[1], old.id


SERVER_PID = 0


def cpu_ns(pid: int) -> int:
    """CPU time the server process has used so far, all threads (``/proc/PID/task/*/schedstat``,
    nanoseconds): a request's server-side cost that other load on the machine does not inflate
    the way it inflates wall time."""
    total = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that just ended
            total += int((t / "schedstat").read_text().split()[0])
    return total


def timed(conn: http.client.HTTPConnection, path: str) -> tuple[float, int, int]:
    t0, c0 = time.perf_counter(), cpu_ns(SERVER_PID)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    LAST_CPU[0] = (cpu_ns(SERVER_PID) - c0) / 1e6
    return (time.perf_counter() - t0) * 1000, r.status, len(body)


LAST_CPU = [0.0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds to wait after /readyz before the first page (the UI warms up meanwhile)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="genreg-bench-ui-"))
    home = tmp / ".genreg"
    t0 = time.perf_counter()
    a, b, old = build(home, args.runs, args.queries)
    print(
        f"built {args.runs} runs (three of {args.queries} queries) in "
        f"{time.perf_counter() - t0:.0f} s under {tmp}"
    )
    port = free_port()
    env = {**os.environ, "GENREG_HOME": str(home)}
    exe = str(Path(sys.executable).parent / "genreg")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    global SERVER_PID
    SERVER_PID = proc.pid
    try:
        ready = None
        while time.perf_counter() - t0 < 30:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    ready = time.perf_counter() - t0
                    break
            except OSError:
                time.sleep(0.02)
        assert ready is not None, "server did not start"
        print(f"genreg serve ready in {ready * 1000:.0f} ms; first page {args.settle:g} s later")
        time.sleep(args.settle)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        pairs = [
            ("runs page", "/ui/runs", "/v1/runs?limit=50"),
            (
                "runs page, sorted by a metric, page 100",
                "/ui/runs?sort=metric:ndcg@10&page=100",
                "/v1/runs?limit=1000",
            ),
            ("run page (10k queries, per-query page 1)", f"/ui/runs/{a}", f"/v1/runs/{a}"),
            (
                "run page, per-query sorted by ndcg, page 50",
                f"/ui/runs/{a}?qsort=ndcg@10&qpage=50",
                f"/v1/runs/{a}/lineage",
            ),
            ("query drill-down", f"/ui/runs/{a}/queries/q00042", f"/v1/runs/{a}"),
            ("run page of a run without a UI index", f"/ui/runs/{old}", f"/v1/runs/{old}"),
            (
                "compare page (2 x 10k queries, new pair)",
                f"/ui/compare?base={a}&head={b}",
                f"/ui/compare?base={a}&head={b}&table=deltas&format=json",
            ),
            (
                "compare query drill-down",
                f"/ui/compare/queries/q00042?base={a}&head={b}",
                f"/v1/runs/{b}",
            ),
        ]
        print(
            "\nwall ms over loopback; cpu = the server process's CPU ms for the request "
            "(all threads)"
        )
        print(
            f"{'page':46} {'cold':>7} {'cpu':>6} {'p50':>7} {'cpu':>6} {'p95':>7}   "
            f"{'JSON call':40} {'cold':>7} {'cpu':>6} {'p50':>7} {'cpu':>6} {'p95':>7}"
        )
        ready_s = None
        for label, ui, api in pairs:
            cold, st, _ = timed(conn, ui)
            cold_cpu = LAST_CPU[0]
            assert st == 200, (ui, st)
            if "compare?" in ui:  # wait for the background tests, then time the warm page
                t1 = time.perf_counter()
                status = f"/ui/compare/status?base={a}&head={b}"
                while True:
                    conn.request("GET", status)
                    if json.loads(conn.getresponse().read())["ready"]:
                        break
                    time.sleep(0.05)
                ready_s = time.perf_counter() - t1
            jcold, jst, _ = timed(conn, api)
            jcold_cpu = LAST_CPU[0]
            assert jst == 200, (api, jst)
            u, ucpu, j, jcpu = [], [], [], []
            for _ in range(args.repeat):
                u.append(timed(conn, ui)[0])
                ucpu.append(LAST_CPU[0])
                j.append(timed(conn, api)[0])
                jcpu.append(LAST_CPU[0])
            u.sort()
            j.sort()
            p95 = max(0, int(len(u) * 0.95) - 1)
            med = statistics.median
            print(
                f"{label:46} {cold:7.0f} {cold_cpu:6.0f} {med(u):7.1f} {med(ucpu):6.1f} "
                f"{u[p95]:7.1f}   {api[:40]:40} {jcold:7.0f} {jcold_cpu:6.0f} {med(j):7.1f} "
                f"{med(jcpu):6.1f} {j[p95]:7.1f}"
            )
        print(f"\ncompare: CIs and p-values stored {ready_s:.1f} s after the first view")
        t1 = time.perf_counter()
        subprocess.run(
            [exe, "runs", "compare", a, b, "--json"], env=env, check=True, capture_output=True
        )
        print(
            f"genreg runs compare --json (foreground, same tests): {time.perf_counter() - t1:.1f} s"
        )
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
