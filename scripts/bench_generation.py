"""Generation benchmark, ratios measured side by side in one run.

Against ``genreg llm serve --delay-ms 50`` (a subprocess on a free loopback port, so the
server does not share the client's GIL):

1. 500 chat calls at concurrency 16 through :class:`genreg.generation.client.ChatClient`:
   wall time / ideal (500 x 50 ms / 16);
2. the generate stage on 500 synthetic queries (prompt:rag-answer, routing:default, 5 context
   chunks each) with the response cache: a cold run (calls) then a fully cached re-run; the
   cached stage's wall time is what a cached re-run adds over retrieval-only;
3. the generate stage's own CPU per query (render, route, cache lookup, parsing; process
   CPU time of the cached stage / 500).

    python scripts/bench_generation.py [--queries 500] [--concurrency 16] [--delay-ms 50]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(delay_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from genreg.cli import main; main()",
            "llm",
            "serve",
            "--port",
            str(port),
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("genreg llm serve did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from genreg import Registry
    from genreg.core.evalconfig import parse_config
    from genreg.generation.cache import open_cache
    from genreg.generation.client import ChatClient, ChatRequest, ClientOptions, Endpoint
    from genreg.generation.stage import Generate
    from genreg.pipeline.records import Hit, QueryRecord, RunRequest, RunState

    proc, base = start_server(a.delay_ms)
    try:
        n, c = a.queries, a.concurrency
        ideal = n * a.delay_ms / 1000 / c
        ep = Endpoint("default", base)
        msgs = [{"role": "user", "content": "Context:\nRefunds take 14 days.\n\nQuestion: refund?"}]
        reqs = [ChatRequest(str(i), 0, ep, {"model": "m", "messages": msgs}) for i in range(n)]
        ChatClient(ClientOptions(concurrency=c)).run(reqs[:c])  # warm the connections
        t0 = time.perf_counter()
        out = ChatClient(ClientOptions(concurrency=c)).run(reqs)
        wall = time.perf_counter() - t0
        assert len(out) == n and all(r.ok for r in out.values())
        print(
            f"client: {n} calls x {a.delay_ms:g} ms at concurrency {c}: {wall:.3f} s, "
            f"ideal {ideal:.3f} s, ratio {wall / ideal:.3f} (target <= 1.25)"
        )

        with tempfile.TemporaryDirectory() as tmp:
            reg = Registry.init(Path(tmp) / ".genreg")
            reg.push([ROOT / "registry"])
            cfg = parse_config(
                {
                    "name": "bench",
                    "evalset": "evalset:x#test",
                    "corpus": "corpus:x",
                    "metrics": ["recall@5"],
                    "prompt": "prompt:rag-answer",
                    "routing": "routing:default",
                    "generate": {"concurrency": c, "endpoint": {"base_url": base}},
                    "answer_metrics": ["exact_match", "token_f1"],
                }
            )
            words = [
                "refund",
                "plan",
                "fee",
                "invoice",
                "charge",
                "billing",
                "ticket",
                "days",
                "card",
            ]
            records = []
            for i in range(n):
                rec = QueryRecord(
                    f"q{i:04d}",
                    f"how do I get a refund for charge {i}",
                    {"d": 1},
                    None,
                    {"id": f"q{i:04d}", "answer": "14 days"},
                )
                rec.hits = [
                    Hit(
                        f"doc{j}.md",
                        1.0 - j / 10,
                        " ".join(words[(i + j + k) % len(words)] for k in range(60)),
                    )
                    for j in range(5)
                ]
                records.append(rec)

            def stage_run() -> tuple[float, float, Generate]:
                req = RunRequest("eval", "bench", ["recall@5"], cfg.evalset, {}, cfg)
                state = RunState(
                    req,
                    "now",
                    records=[
                        QueryRecord(r.id, r.query, r.relevant, None, r.row, list(r.hits))
                        for r in records
                    ],
                )
                state.prompt = reg.load_prompt("prompt:rag-answer")
                state.routing = reg.load_routing("routing:default")
                state.inputs = []
                from genreg.core.lineage import InputPin

                state.inputs = [InputPin("prompt", "prompt", "rag-answer", 1, "sha256:x")]
                g = Generate(open_cache(reg, "rw"))
                g.prepare(state)
                t, cpu = time.perf_counter(), time.process_time()
                g.run(state, None)
                return time.perf_counter() - t, time.process_time() - cpu, g

            cold, cold_cpu, g1 = stage_run()
            warm, warm_cpu, g2 = stage_run()
            assert g2.cache.hits == n, g2.cache.hits
            print(
                f"generate stage, cold (calls): {cold:.3f} s wall, {cold_cpu / n * 1000:.3f} ms "
                f"CPU per query incl. HTTP; ratio to ideal {cold / ideal:.3f}"
            )
            print(
                f"generate stage, fully cached re-run: {warm:.3f} s added over retrieval-only "
                f"(target < 0.5 s), {warm_cpu / n * 1000:.3f} ms CPU per query "
                f"(render, route, cache lookup, parsing; target < 1 ms); calls made: "
                f"{g2.client.calls if g2.client else 0}"
            )
            reg.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
