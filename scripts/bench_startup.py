"""CLI start-up, measured side by side in one run: each command's wall time (median of N
interleaved runs) next to a bare ``python -c pass``, for the fast entry point and for the full
typer CLI (``GENREG_NO_FAST_CLI=1``). Target: each within 0.15 s of the bare interpreter.
Also ``genreg serve``: the time from starting it until ``/readyz`` answers (target < 1.5 s),
interleaved with the same runs.

    .venv/bin/python scripts/bench_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ENTRY = "from genreg.fastcli import main; main()"


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def _serve_ready(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``genreg serve`` on a free loopback port to ``/readyz`` = 200."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - t0 < 30:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    return time.perf_counter() - t0
            except OSError:
                time.sleep(0.01)
        raise SystemExit("genreg serve did not answer /readyz within 30 s")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "home"
        env = {**os.environ, "GENREG_HOME": str(home), "PYTHONPATH": str(SRC),
               "GENREG_AUTHOR": "bench", "GENREG_CACHE_DIR": str(Path(d) / "cache")}  # fmt: skip
        env.pop("GENREG_NO_FAST_CLI", None)
        g = [sys.executable, "-c", ENTRY]
        subprocess.run([*g, "init"], env=env, check=True, capture_output=True)
        p = Path(d) / "qa.yaml"
        p.write_text(
            "template: 'Q {{ q }}'\nvariables: {type: object, properties: {q: {type: string}}}\n"
        )
        for _ in range(3):
            subprocess.run(
                [*g, "register", "prompt", "qa", str(p)], env=env, check=True, capture_output=True
            )
            p.write_text(p.read_text().replace("Q ", "QQ "))
        subprocess.run([*g, "--help"], env=env, check=True, capture_output=True)  # fill the cache
        cmds = [["--help"], ["resolve", "prompt:qa@v1"], ["list"], ["history", "prompt:qa"]]
        slow_env = {**env, "GENREG_NO_FAST_CLI": "1"}
        times: dict[str, list[float]] = {"bare": []}
        for _ in range(a.runs):
            times["bare"].append(_time([sys.executable, "-c", "pass"], env))
            for c in cmds:
                times.setdefault("fast " + " ".join(c), []).append(_time([*g, *c], env))
                times.setdefault("full " + " ".join(c), []).append(_time([*g, *c], slow_env))
            times.setdefault("serve (until /readyz)", []).append(_serve_ready(g, env))
        bare = statistics.median(times["bare"])
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; runs={a.runs}")
        print(f"{'command':32} {'median s':>9} {'- bare s':>9} {'x bare':>7}  target <= +0.15 s")
        for k, v in times.items():
            m = statistics.median(v)
            if k.startswith("serve"):
                ok = "ok (< 1.5 s)" if m < 1.5 else "MISS (>= 1.5 s)"
            elif k == "bare" or k.startswith("full"):
                ok = ""
            else:
                ok = "ok" if m - bare <= 0.15 else "MISS"
            print(f"{k:32} {m:9.3f} {m - bare:9.3f} {m / bare:7.1f}  {ok}")


if __name__ == "__main__":
    main()
