"""Benchmark: cold index vs re-index after a 1% change; our embedding throughput vs bare
``SentenceTransformer.encode``. Everything is measured side by side in one run.

    .venv/bin/python scripts/bench_index.py --docs 1000
    .venv/bin/python scripts/bench_index.py --docs 0        # the whole corpus (5,183 docs)

Figures printed:
- ``bare``: one ``SentenceTransformer.encode`` call over the corpus texts (batch 32,
  normalised), measured twice, alternating with ours (bare, cold build, bare, our encode);
- ``cold``: ``Registry.build_index`` of the first snapshot (chunking none, flat index) with
  an empty embedding cache, in-process (model already loaded, like the bare call); the
  throughput ratio compares the mean bare time with the mean of our encode stage in the cold
  build and a separate ``Embedder.encode`` call; the whole cold build is compared too;
- ``reindex``: ``build_index`` of a second snapshot where 1% of the documents changed;
- ``reindex_cli``: ``genreg corpus index`` in a fresh process on a third snapshot (another
  1% change), start-up, model load and everything included.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = Path("/work/shared/data/scifact/corpus.jsonl")


def write_version(records: list[dict], out: Path, changed: set[int], tag: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for i, r in enumerate(records):
            if i in changed:
                r = {**r, "text": r["text"] + f" (revised {tag})"}
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--docs", type=int, default=1000, help="first N documents (0: all)")
    ap.add_argument("--change", type=float, default=0.01, help="fraction of docs changed")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    records = [json.loads(line) for line in args.corpus.open(encoding="utf-8") if line.strip()]
    if args.docs:
        records = records[: args.docs]
    n = len(records)
    rng = random.Random(7)
    n_changed = max(1, round(n * args.change))
    change2 = set(rng.sample(range(n), n_changed))
    change3 = set(rng.sample(range(n), n_changed))

    tmp = Path(tempfile.mkdtemp(prefix="genreg-bench-index-"))
    home = tmp / ".genreg"
    os.environ["GENREG_HOME"] = str(home)
    from genreg.retrieval.embedders import Embedder
    from genreg.service import Registry

    reg = Registry.init(home)
    write_version(records, tmp / "v1" / "corpus.jsonl", set(), "")
    reg.snapshot("bench", tmp / "v1" / "corpus.jsonl")
    texts = [d.embed_text() for d in reg.iter_documents("corpus:bench@v1")]

    emb = reg.load_embedder(None)
    model = emb.model  # load once, outside every timing
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up

    class Timed(Embedder):
        seconds = 0.0

        def encode(self, texts, batch_size=32, *, progress=None):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return super().encode(texts, batch_size, progress=progress)
            finally:
                Timed.seconds += time.perf_counter() - t

    timed = Timed(emb.name, emb.path, emb.digest)

    def bare() -> float:
        t = time.perf_counter()
        model.encode(
            texts,
            batch_size=args.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return time.perf_counter() - t

    # Side by side, alternating to spread the noise of a shared machine: bare, our cold build
    # (its encode stage timed), bare, our encode alone.
    bare1 = bare()
    t = time.perf_counter()
    cold = reg.build_index("corpus:bench@v1", model=timed, batch_size=args.batch_size)
    cold_s = time.perf_counter() - t
    embed1 = Timed.seconds
    bare2 = bare()
    t = time.perf_counter()
    emb.encode(texts, batch_size=args.batch_size)
    embed2 = time.perf_counter() - t
    bare_s, embed_s = (bare1 + bare2) / 2, (embed1 + embed2) / 2

    write_version(records, tmp / "v2" / "corpus.jsonl", change2, "2")
    reg.snapshot("bench", tmp / "v2" / "corpus.jsonl")
    t = time.perf_counter()
    re = reg.build_index("corpus:bench@v2", model=timed, batch_size=args.batch_size)
    re_s = time.perf_counter() - t

    write_version(records, tmp / "v3" / "corpus.jsonl", change3, "3")
    reg.snapshot("bench", tmp / "v3" / "corpus.jsonl")
    reg.close()
    genreg = str(Path(sys.executable).with_name("genreg"))
    t = time.perf_counter()
    out = subprocess.run(
        [genreg, "corpus", "index", "corpus:bench@v3", "--quiet", "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    re_cli_s = time.perf_counter() - t
    re_cli = json.loads(out.stdout)

    print(
        f"corpus: {args.corpus} first {n} docs; {n_changed} changed per new version; cpus={os.cpu_count()}"
    )
    print(
        f"bare SentenceTransformer.encode: {bare1:.2f}s / {bare2:.2f}s (mean {bare_s:.2f}s, {n / bare_s:.1f} texts/s)"
    )
    print(
        f"cold build_index: {cold_s:.2f}s ({cold.embedded} embedded; its encode stage {embed1:.2f}s)"
    )
    print(f"our Embedder.encode alone: {embed2:.2f}s (mean of ours {embed_s:.2f}s)")
    print(f"  throughput ratio, our encode stage vs bare: {bare_s / embed_s:.3f}x")
    print(f"  throughput ratio, whole cold index vs bare encode: {bare_s / cold_s:.3f}x")
    print(
        f"re-index after {args.change:.0%} change (in-process): {re_s:.3f}s, {re.embedded} embedded "
        f"-> {re_s / cold_s:.2%} of cold"
    )
    print(
        f"re-index after {args.change:.0%} change (fresh `genreg corpus index` process): "
        f"{re_cli_s:.2f}s, {re_cli['embedded']} embedded -> {re_cli_s / cold_s:.2%} of cold"
    )


if __name__ == "__main__":
    main()
