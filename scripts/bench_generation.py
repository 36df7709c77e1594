"""Generation benchmark, ratios measured side by side in one run.

The sleeping server is this script's own asyncio HTTP/1.1 server (``--serve``), run as a
separate process, answering every ``POST .../chat/completions`` after a fixed ``--delay-ms``
with a canned Chat Completions body (with usage): so the server costs almost no CPU and the
client side is what is measured. ``genreg llm serve --delay-ms`` (threaded, runs the
extractive model and the tokenizer per call) is measured too, for reference.

1. 500 chat calls at concurrency 16 through :class:`genreg.generation.client.ChatClient`
   (aiohttp): wall time / ideal (500 x 50 ms / 16), client CPU per call; the same calls
   through a bare httpx AsyncClient (the previous transport) for comparison;
2. the generate stage on 500 synthetic queries (prompt:rag-answer, routing:default, 5 context
   chunks each) with the response cache: a cold run (calls) then a fully cached re-run; the
   cached stage's wall time is what a cached re-run adds over retrieval-only;
3. the generate stage's own CPU per query (render, route, cache lookup, parsing: process CPU
   time of the cached stage / 500).

    python scripts/bench_generation.py [--queries 500] [--concurrency 16] [--delay-ms 50]
"""

from __future__ import annotations

import argparse
import json
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


CANNED = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "bench-sleeper",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Refunds take 14 days."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 420, "completion_tokens": 6, "total_tokens": 426},
    }
).encode()


def serve(port: int, delay_ms: float) -> None:
    """The asyncio sleeping server (HTTP/1.1 keep-alive; GET answers /healthz)."""
    import asyncio

    delay = delay_ms / 1000

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        n = int(line[15:])
                if n:
                    await r.readexactly(n)
                if not head.startswith(b"GET"):
                    await asyncio.sleep(delay)
                w.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(CANNED), CANNED)
                )
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


def start_server(
    delay_ms: float, genreg_serve: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    if genreg_serve:
        cmd = ["-c", "from genreg.cli import main; main()", "llm", "serve"]
        cmd += ["--port", str(port), "--delay-ms", str(delay_ms)]
    else:
        cmd = [__file__, "--serve", str(port), "--delay-ms", str(delay_ms)]
    proc = subprocess.Popen(
        [sys.executable, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the sleeping server did not start")


def httpx_calls(base: str, msgs: list[dict[str, str]], n: int, c: int) -> tuple[float, float]:
    """The same calls through a bare httpx AsyncClient (pool = concurrency): wall, CPU."""
    import asyncio

    import httpx

    async def go() -> tuple[float, float]:
        lim = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        async with httpx.AsyncClient(limits=lim, timeout=60) as http:
            sem = asyncio.Semaphore(c)

            async def one() -> None:
                async with sem:
                    r = await http.post(
                        base + "/chat/completions", json={"model": "m", "messages": msgs}
                    )
                    json.loads(r.content)

            await asyncio.gather(*[one() for _ in range(c)])
            t0, cpu0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*[one() for _ in range(n)])
            return time.perf_counter() - t0, time.process_time() - cpu0

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve is not None:
        serve(a.serve, a.delay_ms)
        return
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
        ChatClient(ClientOptions(concurrency=c)).run(reqs[:c])  # warm up
        t0, cpu0 = time.perf_counter(), time.process_time()
        out = ChatClient(ClientOptions(concurrency=c)).run(reqs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert len(out) == n and all(r.ok for r in out.values())
        print(
            f"client (aiohttp): {n} calls x {a.delay_ms:g} ms at concurrency {c}: {wall:.3f} s, "
            f"ideal {ideal:.3f} s, ratio {wall / ideal:.3f} (target <= 1.25); "
            f"client CPU {cpu / n * 1000:.3f} ms per call"
        )
        hx_wall, hx_cpu = httpx_calls(base, msgs, n, c)
        print(
            f"bare httpx AsyncClient, same calls: {hx_wall:.3f} s, ratio {hx_wall / ideal:.3f}; "
            f"CPU {hx_cpu / n * 1000:.3f} ms per call = {hx_cpu / cpu:.1f}x the aiohttp client's"
        )
        gproc, gbase = start_server(a.delay_ms, genreg_serve=True)
        try:
            greqs = [
                ChatRequest(str(i), 0, Endpoint("default", gbase), r.body)
                for i, r in enumerate(reqs)
            ]
            ChatClient(ClientOptions(concurrency=c)).run(greqs[:c])
            t0 = time.perf_counter()
            ChatClient(ClientOptions(concurrency=c)).run(greqs)
            g_wall = time.perf_counter() - t0
            print(
                f"reference: the same calls to genreg llm serve --delay-ms {a.delay_ms:g} "
                f"(threaded, extractive model + tokenizer per call): {g_wall:.3f} s, "
                f"ratio {g_wall / ideal:.3f}"
            )
        finally:
            gproc.terminate()
            gproc.wait(timeout=10)

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
