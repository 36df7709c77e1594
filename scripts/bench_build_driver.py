#!/usr/bin/env python
"""Benchmark: peak RSS of the on-disk (``ivfpq``) index build's driver -- the process that runs
``corpus index`` -- for two source trees side by side in one run (``--before``: e.g. main's
``src``, which held every chunk as Python lists; ``--after``: this tree's, which streams the
chunks into on-disk tables).

    flock /work/team/bench.lock .venv/bin/python scripts/bench_build_driver.py \\
        --docs 250000 --before /work/main/src --after src

**Data** (deterministic): ``--docs`` documents of 2,500-2,800 characters (``doc N`` then words
drawn by ``numpy.random.default_rng([seed, block])``), one JSONL file snapshotted as
``genreg corpus snapshot`` does, chunked ``chars:700`` -- 4 chunks a document (three of 700
characters, one of 400-700): 1M chunks at the default 250,000 documents. The embedding cache
is filled first, through genreg's own cache code (``EmbeddingCache.add``, 50,000-vector
shards), with a synthetic L2-normalised 384-d vector for every chunk's text digest, under a
synthetic embedder's digest -- so the build embeds nothing (the embedder raises if asked) and
what is measured is the driver: chunking, the row tables, planning, training, the streamed
build of the inverted lists, storing.

**What runs**: ``prepare`` once (a registry home in ``--work``), then for each tree a copy of
that home (objects hard-linked: they are immutable) and ``build`` in its own process under
``/usr/bin/time -v`` with ``PYTHONPATH=<tree>``: ``Registry.build_index`` with the synthetic
embedder and ``--spec`` (default ivfpq nlist 1024, m 48) -- the service call ``genreg corpus
index`` makes (the CLI cannot take a Python embedder object). Both builds must store the same
index object (checked). The load average is printed beside each phase. ``--flat`` also
builds a ``flat`` index of the same corpus with the ``--after`` tree, the issue's baseline
("peak RSS during build under 10% of a flat index's"), side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
DIM = 384
BLOCK = 50_000
MODEL = "sha256:" + hashlib.sha256(b"bench_build_driver synthetic vectors").hexdigest()
CHUNKING = "chars:700"
SPEC = '{"type": "ivfpq", "nlist": 1024, "m": 48}'
WORDS = [
    "cell",
    "gene",
    "virus",
    "cancer",
    "drug",
    "trial",
    "dose",
    "blood",
    "brain",
    "heart",
    "lung",
    "risk",
    "protein",
    "mouse",
    "liver",
    "kidney",
    "tumor",
    "immune",
    "therapy",
    "patient",
    "model",
    "signal",
    "pathway",
    "receptor",
    "enzyme",
    "acid",
    "growth",
    "factor",
    "tissue",
    "sample",
    "study",
    "effect",
    "level",
    "response",
    "rate",
    "method",
    "result",
    "group",
    "control",
]


class SyntheticEmbedder:
    """The cached vectors' model: digest and dimension only; embedding is an error here."""

    tokenizer = None
    name = "bench-synthetic-384"
    digest = MODEL
    dim = DIM

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
        raise SystemExit(f"bench: {len(texts)} chunks were not cached (nothing should embed)")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def phase_prepare(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from genreg import Registry
    from genreg.retrieval.cache import EmbeddingCache
    from genreg.retrieval.chunking import ChunkingSpec, iter_chunks

    home = args.work / "base" / ".genreg"
    if home.exists():
        shutil.rmtree(home.parent)
    home.parent.mkdir(parents=True)
    src = args.work / "corpus.jsonl"
    t0 = time.perf_counter()
    words = np.array(WORDS)
    with src.open("w", encoding="utf-8") as fh:
        for b in range(0, args.docs, 10_000):
            rng = np.random.default_rng([args.seed, b])
            picks = words[rng.integers(0, len(words), size=(min(10_000, args.docs - b), 520))]
            lengths = rng.integers(2500, 2801, size=len(picks))
            for i, (row, n) in enumerate(zip(picks, lengths, strict=True)):
                text = (f"doc {b + i} " + " ".join(row.tolist()))[: int(n)]
                fh.write(json.dumps({"_id": f"doc-{b + i:07d}", "text": text}) + "\n")
    reg = Registry.init(home)
    try:
        reg.snapshot("bench", src)
        t1 = time.perf_counter()
        cache = EmbeddingCache(reg.objects, reg.derived, MODEL, DIM)
        chunks = iter_chunks(reg.iter_documents("bench"), ChunkingSpec.parse(CHUNKING))
        n = chars = 0
        seen: set[str] = set()
        pending: list[str] = []

        def flush() -> None:
            rng = np.random.default_rng([args.seed, 1, n])
            x = rng.standard_normal((len(pending), DIM)).astype(np.float32)
            cache.add(pending, x / np.linalg.norm(x, axis=1, keepdims=True))
            pending.clear()

        for ch in chunks:
            n += 1
            chars += len(ch.text)
            if ch.digest not in seen:
                seen.add(ch.digest)
                pending.append(ch.digest)
                if len(pending) == BLOCK:
                    flush()
        if pending:
            flush()
    finally:
        reg.close()
    return {
        "docs": args.docs,
        "chunks": n,
        "distinct": len(seen),
        "mean_chunk_chars": round(chars / max(n, 1), 1),
        "corpus_mb": round(src.stat().st_size / 2**20, 1),
        "snapshot_s": round(t1 - t0, 1),
        "cache_s": round(time.perf_counter() - t1, 1),
    }


def phase_build(args: argparse.Namespace) -> dict[str, Any]:
    from genreg import Registry

    reg = Registry(args.home)
    try:
        t0 = time.perf_counter()
        info = reg.build_index(
            "bench", model=SyntheticEmbedder(), chunking=CHUNKING, index=json.loads(args.spec)
        )
        seconds = time.perf_counter() - t0
    finally:
        reg.close()
    assert not info.reused and info.embedded == 0, info
    return {"object": info.object_digest, "chunks": info.n_chunks, "build_s": round(seconds, 1)}


def copy_home(base: Path, dest: Path) -> None:
    """``base`` copied to ``dest``: the immutable objects hard-linked, the rest copied."""
    if dest.exists():
        shutil.rmtree(dest)

    def link_or_copy(s: str, d: str) -> Any:
        if f"{os.sep}objects{os.sep}" in s:
            os.link(s, d)
            return d
        return shutil.copy2(s, d)

    shutil.copytree(base, dest, copy_function=link_or_copy)


def run(args: argparse.Namespace, phase: str, tree: Path, home: Path | None = None) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--phase", phase]
    cmd += ["--work", str(args.work), "--docs", str(args.docs), "--seed", str(args.seed)]
    cmd += ["--spec", args.spec] + (["--home", str(home)] if home else [])
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    load0 = loadavg()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"phase {phase} ({tree}) failed (exit {p.returncode})")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out.update(
        phase=phase,
        tree=str(tree),
        wall_s=round(time.perf_counter() - t0, 1),
        peak_rss_mb=round(int(rss.group(1)) / 1024, 1) if rss else None,
        load=f"{load0} -> {loadavg()}",
    )
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spec", default=SPEC)
    ap.add_argument("--work", type=Path, default=Path("/tmp/genreg-bench-build-driver"))
    ap.add_argument("--before", type=Path, default=Path("/work/main/src"))
    ap.add_argument("--after", type=Path, default=ROOT / "src")
    ap.add_argument("--phase", choices=["prepare", "build"])
    ap.add_argument("--home", type=Path)
    ap.add_argument(
        "--flat",
        action="store_true",
        help="also build a flat index of the same corpus (--after tree): the issue's baseline",
    )
    args = ap.parse_args()
    if args.phase:
        fn = phase_prepare if args.phase == "prepare" else phase_build
        print(json.dumps(fn(args)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"spec {args.spec}; chunking {CHUNKING}; one process per phase (/usr/bin/time -v)")
    prep = run(args, "prepare", args.after)
    results = {}
    builds = [("before", args.before, args.spec), ("after", args.after, args.spec)]
    if args.flat:
        builds.append(("flat", args.after, '{"type": "flat"}'))
    for label, tree, spec in builds:
        home = args.work / label / ".genreg"
        copy_home(args.work / "base" / ".genreg", home)
        results[label] = run(
            argparse.Namespace(**{**vars(args), "spec": spec}), "build", tree, home
        )
        shutil.rmtree(home.parent)
    b, a = results["before"], results["after"]
    if a["object"] != b["object"]:
        raise SystemExit(f"the two builds stored different index objects: {b} vs {a}")
    print(
        f"\n{prep['chunks']:,} chunks ({prep['docs']:,} documents, mean "
        f"{prep['mean_chunk_chars']} chars), corpus {prep['corpus_mb']} MB; same index object"
    )
    print("| driver of `corpus index` (ivfpq) | before | after | ratio |")
    print("|---|---|---|---|")
    print(
        f"| peak RSS | {b['peak_rss_mb']:,.0f} MB | {a['peak_rss_mb']:,.0f} MB | "
        f"{a['peak_rss_mb'] / b['peak_rss_mb']:.3f} |"
    )
    print(
        f"| build time | {b['build_s']} s | {a['build_s']} s | {a['build_s'] / b['build_s']:.2f} |"
    )
    print(f"| load average | {b['load']} | {a['load']} | |")
    if "flat" in results:
        f = results["flat"]
        print(
            f"\nflat index of the same corpus (after tree): peak RSS {f['peak_rss_mb']:,.0f} MB, "
            f"build {f['build_s']} s (load {f['load']}); after / flat: peak RSS "
            f"{a['peak_rss_mb'] / f['peak_rss_mb']:.3f}, time {a['build_s'] / f['build_s']:.2f}"
        )


if __name__ == "__main__":
    main()
