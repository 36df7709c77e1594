#!/usr/bin/env python
"""Benchmark ``genreg serve`` and ``genreg.Client`` on loopback.

Measures: time until ``genreg serve`` answers ``/readyz``, its RSS (and whether torch/faiss
got loaded), requests/s and p50/p99 latency for a pinned prompt fetch and an alias fetch at
concurrency 1 and 16 with ``wrk`` (bounded duration, 127.0.0.1 only), the client's uncached
fetch (HTTP requests made, latency) and cache-hit latency, and ``import genreg`` + client.

    .venv/bin/python scripts/bench_api.py [--duration 10] [--port 0]

``wrk`` comes from Debian: ``apt-get install -y wrk`` (the load tests are skipped without it).
MLflow is compared side by side when installed in a separate venv at ``$MLFLOW_VENV`` (default
``/work/bench-venvs/mlflow``; never a genreg dependency): ``import mlflow``, and the same
prompt registered in a real ``mlflow server`` (SQLite store, one worker) read by version and
by alias over its REST API with the same wrk runs (ready time, RSS of the server's process
tree, requests/s, p50/p99, server CPU per request)::

    python3 -m venv /tmp/mlflowvenv && /tmp/mlflowvenv/bin/pip install mlflow
    MLFLOW_VENV=/tmp/mlflowvenv .venv/bin/python scripts/bench_api.py
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

PROMPT = {
    "messages": [
        {
            "role": "system",
            "content": "You answer questions about our product documentation. Use only the "
            "context below; say 'I don't know' when it does not contain the answer. Cite the "
            "document ids you used in [brackets].\n\nContext:\n{{ context }}",
        },
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1},
            "context": {"type": "string"},
        },
        "required": ["question", "context"],
    },
    "model": {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 512},
    "metadata": {"owner": "search-team"},
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def get(port: int, path: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        c.request("GET", path)
        return c.getresponse().status
    finally:
        c.close()


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's worker processes)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process and its descendants have used (/proc/PID/stat)."""
    total = 0
    for p in tree_pids(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])
    return total / os.sysconf("SC_CLK_TCK")


def tree_pss_mb(pid: int) -> float:
    """Summed proportional set size (MB) of a process and its descendants: shared pages
    (libraries, forked copies) counted once, unlike a sum of RSS."""
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total / 1024


def post_json(port: int, path: str, body: dict[str, object]) -> dict[str, object]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit(f"POST {path}: HTTP {r.status}: {data[:300]!r}")
        return json.loads(data or b"{}")
    finally:
        c.close()


def bench_mlflow(venv: Path, duration: int) -> dict[str, object]:
    """The same prompt as an MLflow 3 prompt (a registered model version with the template in
    its ``mlflow.prompt.text`` tag, as ``mlflow.genai.register_prompt`` stores it), 5 versions,
    alias ``production`` -> 3, served by ``mlflow server`` (SQLite backend store, one worker,
    loopback), measured like genreg: ready time, RSS, wrk on the pinned and alias REST reads."""
    tmp = Path(tempfile.mkdtemp(prefix="genreg-bench-mlflow-"))
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    out: dict[str, object] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(venv / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
         "--default-artifact-root", str(tmp / "artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        while True:
            try:
                if get(port, "/health") == 200:
                    break
            except OSError:
                time.sleep(0.05)
            if time.perf_counter() - t0 > 120:
                raise SystemExit("mlflow server did not become ready in 120 s")
        out["ready_s"] = time.perf_counter() - t0
        out["pss_ready_mb"] = tree_pss_mb(proc.pid)
        out["processes"] = len(tree_pids(proc.pid))
        name = "rag-answer"
        prompt_tag = {"key": "mlflow.prompt.is_prompt", "value": "true"}
        post_json(port, "/api/2.0/mlflow/registered-models/create",
                  {"name": name, "tags": [prompt_tag]})  # fmt: skip
        for i in range(5):
            text = json.dumps({**PROMPT, "metadata": {"rev": i}})
            post_json(port, "/api/2.0/mlflow/model-versions/create",
                      {"name": name, "source": "dummy-source",
                       "tags": [prompt_tag, {"key": "mlflow.prompt.text", "value": text}]})  # fmt: skip
        post_json(port, "/api/2.0/mlflow/registered-models/alias",
                  {"name": name, "alias": "production", "version": "3"})  # fmt: skip
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        pinned = f"{base}/model-versions/get?name={name}&version=3"
        alias = f"{base}/registered-models/alias?name={name}&alias=production"
        for url in (pinned, alias):
            path = url.split(str(port), 1)[1]
            if get(port, path) != 200:
                raise SystemExit(f"mlflow: GET {path} did not answer 200")
            for _ in range(100):
                get(port, path)
        load: dict[str, dict[str, float] | None] = {}
        for label, url in (("pinned", pinned), ("alias", alias)):
            wrk(url, 16, 2, proc.pid)
            for c in (1, 16):
                load[f"{label}_c{c}"] = wrk(url, c, duration, proc.pid)
        out["wrk"] = load
        out["pss_after_load_mb"] = tree_pss_mb(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def wrk(url: str, conns: int, duration: int, pid: int) -> dict[str, float] | None:
    if not shutil.which("wrk"):
        return None
    cpu0 = cpu_s(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    cpu = cpu_s(pid) - cpu0
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        # server CPU per request: what one otherwise idle core would sustain, whatever the load
        "server_cpu_us_per_req": cpu / int(total.group(1)) * 1e6 if total else float("nan"),
    }


def import_time(python: str, code: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [
                python,
                "-c",
                f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        times.append(float(out.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (bounded)")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    port = args.port or free_port()
    py = sys.executable
    genreg_bin = str(Path(py).parent / "genreg")
    tmp = Path(tempfile.mkdtemp(prefix="genreg-bench-api-"))
    home = tmp / ".genreg"
    env = {**os.environ, "GENREG_HOME": str(home), "GENREG_AUTHOR": "bench"}
    os.environ.update(GENREG_HOME=str(home), GENREG_AUTHOR="bench")

    from genreg import Registry

    reg = Registry.init(home)
    for i in range(5):
        reg.register_content("prompt", "rag-answer", {**PROMPT, "metadata": {"rev": i}})
    reg.set_alias("prompt:rag-answer@v3", "production")
    reg.close()
    figures: dict[str, object] = {"loadavg_before": os.getloadavg()[0]}

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [genreg_bin, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if get(port, "/readyz") == 200:
                    break
            except OSError:
                time.sleep(0.01)
            if time.perf_counter() - t0 > 30:
                raise SystemExit("genreg serve did not become ready in 30 s")
        figures["ready_s"] = time.perf_counter() - t0
        figures["rss_ready_mb"] = rss_mb(proc.pid)[0]
        pinned = f"http://127.0.0.1:{port}/v1/prompts/rag-answer/versions/3"
        alias = f"http://127.0.0.1:{port}/v1/prompts/rag-answer?alias=production"
        for _ in range(300):  # warm-up: caches, first-request imports
            get(port, "/v1/prompts/rag-answer/versions/3")
            get(port, "/v1/prompts/rag-answer?alias=production")
        load: dict[str, dict[str, float] | None] = {}
        for name, url in (("pinned", pinned), ("alias", alias)):
            wrk(url, 16, 2, proc.pid)  # warm the connection path
            for c in (1, 16):
                load[f"{name}_c{c}"] = wrk(url, c, args.duration, proc.pid)
        figures["wrk"] = load
        rss, peak = rss_mb(proc.pid)
        figures["rss_after_load_mb"], figures["rss_peak_mb"] = rss, peak
        figures["pss_after_load_mb"] = tree_pss_mb(proc.pid)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        figures["server_loaded_torch_or_faiss"] = any(x in maps for x in ("libtorch", "faiss"))

        # ---- client ---------------------------------------------------------------------
        from genreg.client import Client

        uncached = []
        for _ in range(50):
            c = Client(f"http://127.0.0.1:{port}")
            t = time.perf_counter()
            c.load_prompt("prompt:rag-answer@production")
            uncached.append(time.perf_counter() - t)
            assert c.requests == 1
            c.close()
        figures["client_uncached_ms_median"] = statistics.median(uncached) * 1000
        figures["client_requests_per_uncached_fetch"] = 1
        c = Client(f"http://127.0.0.1:{port}")
        c.load_prompt("prompt:rag-answer@production")
        c.load_prompt("prompt:rag-answer@v3")
        n = 200_000
        figures["client_hit_alias_us"] = (
            min(
                timeit.repeat(
                    lambda: c.load_prompt("prompt:rag-answer@production"), number=n, repeat=3
                )
            )
            / n
            * 1e6
        )
        figures["client_hit_pinned_us"] = (
            min(timeit.repeat(lambda: c.load_prompt("prompt:rag-answer@v3"), number=n, repeat=3))
            / n
            * 1e6
        )
        figures["client_hit_render_us"] = (
            min(
                timeit.repeat(
                    lambda: c.render("prompt:rag-answer@production", question="q?", context="ctx"),
                    number=2000,
                    repeat=3,
                )
            )
            / 2000
            * 1e6
        )
    finally:
        proc.terminate()
        proc.wait(10)
    figures["import_genreg_client_s"] = import_time(py, "import genreg; genreg.Client")
    figures["loadavg_after"] = os.getloadavg()[0]

    mlflow_venv = Path(os.environ.get("MLFLOW_VENV", "/work/bench-venvs/mlflow"))
    if (mlflow_venv / "bin" / "mlflow").exists():
        figures["mlflow_import_s"] = import_time(
            str(mlflow_venv / "bin" / "python"), "import mlflow", 3
        )
        figures["mlflow_version"] = subprocess.run(
            [str(mlflow_venv / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        figures["mlflow_server"] = bench_mlflow(mlflow_venv, args.duration)
    else:
        figures["mlflow"] = f"not installed at {mlflow_venv}: no side-by-side run"

    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(figures, indent=2, default=str))
    w = figures["wrk"]
    if isinstance(w, dict) and all(w.values()):
        print("\n| fetch | concurrency | requests/s | p50 | p99 | server CPU/request |")
        print("|---|---|---|---|---|---|")
        for k, v in w.items():
            name, c = k.split("_c")
            print(
                f"| {name} | {c} | {v['rps']:.0f} | {v['p50_ms']:.2f} ms | {v['p99_ms']:.2f} ms "
                f"| {v['server_cpu_us_per_req']:.0f} µs |"
            )
    else:
        print("\nwrk not found: install it with 'apt-get install -y wrk' for the load figures")
    m = figures.get("mlflow_server")
    mw = m.get("wrk") if isinstance(m, dict) else None
    if isinstance(m, dict) and isinstance(mw, dict) and isinstance(w, dict):
        print(f"\nside by side with MLflow {figures['mlflow_version']} (same machine, same run)")
        print("| figure | genreg | MLflow | genreg / MLflow |")
        print("|---|---|---|---|")
        rg, rm = float(figures["ready_s"]), float(m["ready_s"])  # type: ignore[arg-type]
        print(f"| ready | {rg:.2f} s | {rm:.2f} s | {rm / rg:.1f}x faster |")
        sg, sm = float(figures["pss_after_load_mb"]), float(m["pss_after_load_mb"])  # type: ignore[arg-type]
        print(f"| memory after load (PSS, all processes) | {sg:.0f} MB | {sm:.0f} MB "
              f"({m['processes']} processes) | {sm / sg:.1f}x less |")  # fmt: skip
        for k in w:
            g, o = w[k], mw.get(k)
            if not g or not o:
                continue
            print(
                f"| {k} requests/s (p99) | {g['rps']:.0f} ({g['p99_ms']:.2f} ms) "
                f"| {o['rps']:.0f} ({o['p99_ms']:.2f} ms) | {g['rps'] / o['rps']:.1f}x |"
            )
            print(
                f"| {k} server CPU/request | {g['server_cpu_us_per_req']:.0f} µs "
                f"| {o['server_cpu_us_per_req']:.0f} µs "
                f"| {o['server_cpu_us_per_req'] / g['server_cpu_us_per_req']:.1f}x less |"
            )


if __name__ == "__main__":
    main()
