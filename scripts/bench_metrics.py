"""Metric speed: genreg.core.metrics.evaluate vs pytrec_eval on the same dict input.

Builds random qrels (10 judged docs per query, graded 0-3) and a run of 10,000 queries x 100
retrieved docs, then times, best of 3 interleaved rounds in this one process:

- pytrec_eval: ``RelevanceEvaluator(qrels, measures)`` construction + ``evaluate(run)``;
- genreg: ``evaluate(qrels, run, metrics)``;

measuring this process's CPU time by default (both are single-threaded, and CPU time is
steadier than wall-clock time on a shared machine; ``--wall`` for wall-clock time),

for the same metric set. pytrec_eval's ``recip_rank`` has no cutoff, so it is timed on the
full run (a lower bound for it: a true mrr@10 would need a second pass on a truncated run).
Three score regimes: continuous scores (no ties, like a dense retriever), scores rounded to
two decimals (many ties), and to one decimal (11 distinct scores: nearly every document is
tied), where trec_eval's tie-breaking by doc id does real work.
The means are checked to agree to 1e-9 before any figure is printed.

    .venv/bin/python scripts/bench_metrics.py [--queries 10000] [--docs 100] [--repeat 3] [--wall]
"""

from __future__ import annotations

import argparse
import random
import time

import pytrec_eval

from genreg.core.metrics import evaluate

PAIRS = {  # genreg metric -> (pytrec_eval measure, result key)
    "ndcg@10": ("ndcg_cut.10", "ndcg_cut_10"),
    "ndcg@100": ("ndcg_cut.100", "ndcg_cut_100"),
    "recall@10": ("recall.10", "recall_10"),
    "recall@100": ("recall.100", "recall_100"),
    "precision@10": ("P.10", "P_10"),
    "mrr@10": ("recip_rank", "recip_rank"),
    "map@10": ("map_cut.10", "map_cut_10"),
    "map": ("map", "map"),
    "r_precision": ("Rprec", "Rprec"),
    "hit_rate@10": ("success.10", "success_10"),
}


def build(nq: int, nd: int, decimals: int | None, seed: int = 0):
    rng = random.Random(seed)
    qrels, run = {}, {}
    for i in range(nq):
        qid = f"q{i}"
        docs = [f"d{rng.randrange(1_000_000)}" for _ in range(nd + 30)]
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, 10)}
        scores = {}
        for d in docs:
            if len(scores) == nd:
                break
            x = rng.random()
            scores[d] = round(x, decimals) if decimals is not None else x
        run[qid] = scores
    return qrels, run


def interleaved(n: int, fns, clock=time.process_time):
    """Best time of each function over n rounds, alternating them so load spikes hit both."""
    best = [float("inf")] * len(fns)
    outs = [None] * len(fns)
    for _ in range(n):
        for i, fn in enumerate(fns):
            t = clock()
            outs[i] = fn()
            best[i] = min(best[i], clock() - t)
    return best, outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--docs", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; best time is kept")
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time")
    args = ap.parse_args()
    measures = {m for m, _ in PAIRS.values()}
    what = "wall-clock" if args.wall else "CPU (time.process_time)"
    print(f"{args.queries} queries x {args.docs} docs, {len(PAIRS)} metrics: {', '.join(PAIRS)}")
    print(f"best of {args.repeat} interleaved rounds, {what} time")
    regimes = (
        ("continuous scores", None),
        ("scores rounded to 0.01", 2),
        ("scores 0.0-1.0 step .1", 1),
    )
    for label, decimals in regimes:
        qrels, run = build(args.queries, args.docs, decimals)
        clock = time.perf_counter if args.wall else time.process_time
        (t_ref, t_ours), (ref, ours) = interleaved(
            args.repeat,
            [
                lambda q=qrels, r=run: pytrec_eval.RelevanceEvaluator(q, measures).evaluate(r),
                lambda q=qrels, r=run: evaluate(q, r, list(PAIRS)),
            ],
            clock,
        )
        for name, (_, key) in PAIRS.items():
            if name == "mrr@10":
                continue  # different cutoff by construction
            mean = sum(v[key] for v in ref.values()) / len(ref)
            assert abs(mean - ours.mean[name]) < 1e-9, (name, mean, ours.mean[name])
        print(
            f"{label:24s} pytrec_eval {t_ref * 1000:7.1f} ms   genreg {t_ours * 1000:7.1f} ms"
            f"   pytrec_eval/genreg = {t_ref / t_ours:.2f}x"
        )


if __name__ == "__main__":
    main()
