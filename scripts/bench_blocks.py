"""Benchmark: the in-process cold index build before and after the shared block plan
(``genreg.retrieval.blocks``: one ``encode`` call per planned block, the Ray engine's
blocks), side by side in one run, each build in a fresh process on a fresh registry.

    .venv/bin/python scripts/bench_blocks.py --before <rev> [--chunks 50000] [--scifact 500]

- ``trivial``: ~``--chunks`` synthetic one-chunk documents, a trivial embedder (a text's
  sha256 as a 32-d vector), so the time is the build's non-embedding overhead (chunking,
  planning, encode calls, cache shards, index) -- flat and ivfpq, alternating before/after
  (``--repeat`` rounds);
- ``model``: the first ``--scifact`` SciFact abstracts with the real default model
  (all-MiniLM-L6-v2, torch), flat, once before and once after (model load included in both).

``--before`` is a git revision of this repository; its ``src/`` is exported to a temp dir and
put first on the child's ``PYTHONPATH`` (``after`` is this working tree).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
SCIFACT = Path("/work/shared/data/scifact/corpus.jsonl")
IVFPQ = {"type": "ivfpq", "nlist": 64, "m": 8, "nprobe": 8, "train_size": 5000}


class ShaEmbedder:
    """A text's sha256 as a normalised 32-d vector: no model, so only overhead is timed."""

    tokenizer = None
    name, dim, digest = "sha-32", 32, "sha256:" + "5a" * 32

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
        import numpy as np

        raw = b"".join(hashlib.sha256(t.encode()).digest() for t in texts)
        out = np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), 32).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def child(args: argparse.Namespace) -> None:
    """One cold build in this process; prints ``{"seconds", "embedded"}``."""
    from genreg import Registry

    home = Path(tempfile.mkdtemp(prefix="bench-blocks-")) / ".genreg"
    reg = Registry.init(home)
    try:
        reg.snapshot("kb", Path(args.corpus))
        model: Any = ShaEmbedder() if args.kind == "trivial" else None
        index: Any = IVFPQ if args.index == "ivfpq" else "flat"
        t0 = time.perf_counter()
        info = reg.build_index("kb", model=model, chunking="none", index=index)
        dt = time.perf_counter() - t0
        print(json.dumps({"seconds": round(dt, 3), "embedded": info.embedded}))
    finally:
        reg.close()
        import shutil

        shutil.rmtree(home.parent, ignore_errors=True)


def run(src: Path, kind: str, index: str, corpus: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--child", kind, "--index", index, "--corpus", str(corpus)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="HEAD", help="git revision of the 'before' code")
    ap.add_argument("--chunks", type=int, default=50_000)
    ap.add_argument("--scifact", type=int, default=500, help="0: skip the real-model part")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child", choices=["trivial", "model"])
    ap.add_argument("--index", default="flat")
    ap.add_argument("--corpus")
    args = ap.parse_args()
    if args.child:
        args.kind = args.child
        child(args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-blocks-"))
    before = work / "before"
    before.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.before, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
    srcs = {"before": before / "src", "after": ROOT / "src"}
    synth = work / "synth.jsonl"
    with synth.open("w", encoding="utf-8") as fh:  # lengths vary: the block order matters
        for i in range(args.chunks):
            text = f"chunk {i} " + " ".join(f"w{(i * 7 + j) % 997}" for j in range(5 + i % 40))
            fh.write(json.dumps({"_id": f"d{i}", "text": text}) + "\n")
    print(f"load {Path('/proc/loadavg').read_text().strip()}")
    for index in ("flat", "ivfpq"):
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.repeat):
            for side in ("before", "after"):
                r = run(srcs[side], "trivial", index, synth)
                times[side].append(r["seconds"])
        b, a = statistics.mean(times["before"]), statistics.mean(times["after"])
        print(
            f"trivial {index} {args.chunks} chunks: before {times['before']} s, "
            f"after {times['after']} s, after/before {a / b:.3f}"
        )
    if args.scifact:
        sci = work / "scifact.jsonl"
        with SCIFACT.open(encoding="utf-8") as src, sci.open("w", encoding="utf-8") as out:
            for _, line in zip(range(args.scifact), src, strict=False):
                out.write(line)
        res = {side: run(srcs[side], "model", "flat", sci) for side in ("before", "after")}
        b, a = res["before"]["seconds"], res["after"]["seconds"]
        print(
            f"model flat {args.scifact} scifact docs ({res['after']['embedded']} chunks): "
            f"before {b} s, after {a} s, after/before {a / b:.3f}"
        )
    print(f"load {Path('/proc/loadavg').read_text().strip()}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
