"""Retrieval metrics with trec_eval's definitions, registered by name (``ndcg@10``, ``mrr@10``).

Every family is a small pure function over one query, ``fn(rels, ideal, k) -> float``:

- ``rels``: the relevance of the retrieved documents in rank order (0 for unjudged or
  judged non-relevant documents; rank i = position i, 1-based in the formulas);
- ``ideal``: the relevance levels of *all* judged relevant documents of the query (rel >= 1),
  sorted descending, so ``R = len(ideal)`` is the number of relevant documents;
- ``k``: the cutoff, or None where the family allows none.

These functions are the readable definitions; :func:`evaluate` computes the same numbers for
many queries at once in a vectorised single pass (tests hold both to ``pytrec_eval``).

trec_eval conventions followed exactly (``pytrec_eval`` measure in brackets):
``recall@k`` [recall_k], ``precision@k`` [P_k], ``mrr@k`` [recip_rank on the run truncated to
k], ``ndcg@k`` [ndcg_cut_k: linear gain = relevance level, discount log2(rank + 1), ideal
ranking built from all judged relevant documents], ``hit_rate@k`` [success_k], ``map@k``
[map_cut_k], ``map`` [map], ``ndcg`` [ndcg], ``mrr`` [recip_rank], ``r_precision`` [Rprec].

- Ranking: score descending, ties broken by doc id *descending* as strings (trec_eval's
  order; never insertion order), see :func:`rank`.
- A document is relevant when its judged relevance is >= 1; relevance 0 (and negative) means
  judged non-relevant and gives no gain.
- Queries in the run but not in the qrels are ignored. A qrels query with an empty judgment
  map is not part of the eval set. A query that has judgments but no relevant document at
  all scores 0 on every metric and *counts* in the mean (as trec_eval/pytrec_eval do).
- **The one deliberate difference from pytrec_eval**: a query of the eval set that is absent
  from the run scores 0 on every metric and counts in the mean, like ``trec_eval -c``;
  pytrec_eval silently leaves it out of its results (it does score a query present with an
  empty result list, as 0). :attr:`EvalResult.empty_queries` lists every query for which the
  run retrieved nothing (absent or empty) so reports can say how many there were.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from genreg.errors import ConfigError, InvalidArtifact

Rels = Sequence[float]
MetricFn = Callable[[Rels, Rels, "int | None"], float]

RELEVANT = 1  # trec_eval's default relevance level: rel >= 1 counts as relevant


def _disc(i: int) -> float:
    """Discount of 0-based position i: 1 / log2(i + 2)."""
    return 1.0 / math.log2(i + 2)


def _top(rels: Rels, k: int | None) -> Rels:
    return rels if k is None else rels[:k]


def recall(rels: Rels, ideal: Rels, k: int | None) -> float:
    """recall@k = |{i <= k : rel_i >= 1}| / R   (0 when R = 0)."""
    r = len(ideal)
    return sum(1 for x in _top(rels, k) if x >= RELEVANT) / r if r else 0.0


def precision(rels: Rels, ideal: Rels, k: int | None) -> float:
    """precision@k = |{i <= k : rel_i >= 1}| / k   (k, not the number retrieved)."""
    if k is None:
        raise ConfigError("precision needs a cutoff, e.g. precision@10")
    return sum(1 for x in rels[:k] if x >= RELEVANT) / k


def mrr(rels: Rels, ideal: Rels, k: int | None) -> float:
    """rr@k = 1 / (rank of the first relevant document within the top k), 0 if none."""
    for i, x in enumerate(_top(rels, k)):
        if x >= RELEVANT:
            return 1.0 / (i + 1)
    return 0.0


def ndcg(rels: Rels, ideal: Rels, k: int | None) -> float:
    """ndcg@k = DCG@k / IDCG@k with DCG@k = sum_{i<=k} max(rel_i, 0) / log2(i + 1) and IDCG@k
    the DCG@k of ``ideal`` (all judged relevant documents, best first); 0 when IDCG = 0."""
    dcg = sum(x * _disc(i) for i, x in enumerate(_top(rels, k)) if x > 0)
    idcg = sum(x * _disc(i) for i, x in enumerate(_top(ideal, k)))
    return dcg / idcg if idcg > 0 else 0.0


def hit_rate(rels: Rels, ideal: Rels, k: int | None) -> float:
    """hit_rate@k = 1 if any of the top k is relevant, else 0."""
    return 1.0 if any(x >= RELEVANT for x in _top(rels, k)) else 0.0


def average_precision(rels: Rels, ideal: Rels, k: int | None) -> float:
    """ap@k = (1 / R) * sum_{i <= k, rel_i >= 1} precision@i   (0 when R = 0)."""
    r = len(ideal)
    if not r:
        return 0.0
    hits, total = 0, 0.0
    for i, x in enumerate(_top(rels, k)):
        if x >= RELEVANT:
            hits += 1
            total += hits / (i + 1)
    return total / r


def r_precision(rels: Rels, ideal: Rels, k: int | None) -> float:
    """r_precision = |{i <= R : rel_i >= 1}| / R   (0 when R = 0)."""
    r = len(ideal)
    return sum(1 for x in rels[:r] if x >= RELEVANT) / r if r else 0.0


@dataclass(frozen=True)
class Family:
    fn: MetricFn
    cutoff: str  # "required" | "optional" | "none"
    pytrec: str  # the pytrec_eval measure (``{k}`` = cutoff)


FAMILIES: dict[str, Family] = {
    "recall": Family(recall, "required", "recall_{k}"),
    "precision": Family(precision, "required", "P_{k}"),
    "mrr": Family(mrr, "optional", "recip_rank"),
    "ndcg": Family(ndcg, "optional", "ndcg_cut_{k}"),
    "hit_rate": Family(hit_rate, "required", "success_{k}"),
    "map": Family(average_precision, "optional", "map_cut_{k}"),
    "r_precision": Family(r_precision, "none", "Rprec"),
}
ALIASES = {"hit-rate": "hit_rate", "r-precision": "r_precision"}

_NAME = re.compile(r"^([a-z_-]+)(?:@(\d+))?$")


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as the user wrote it (key of the results)
    family: str  # canonical family (key of FAMILIES)
    k: int | None


def parse_metric(name: str) -> MetricSpec:
    """``"ndcg@10"`` -> MetricSpec("ndcg@10", "ndcg", 10); ConfigError for anything unknown."""
    valid = ", ".join(f"{f}@k" if d.cutoff == "required" else f for f, d in FAMILIES.items())
    text = name.strip() if isinstance(name, str) else ""
    m = _NAME.match(text.lower())
    family = ALIASES.get(m.group(1), m.group(1)) if m else None
    if m is None or family not in FAMILIES:
        raise ConfigError(f"unknown metric {name!r} (valid: {valid}; e.g. ndcg@10, recall@100)")
    spec = FAMILIES[family]
    k = int(m.group(2)) if m.group(2) is not None else None
    if k is not None and k < 1:
        raise ConfigError(f"metric {name!r}: cutoff must be a positive integer")
    if k is None and spec.cutoff == "required":
        raise ConfigError(f"metric {name!r} needs a cutoff, e.g. {family}@10")
    if k is not None and spec.cutoff == "none":
        raise ConfigError(f"metric {name!r}: {family} takes no cutoff (write {family})")
    return MetricSpec(text, family, k)


def rank(scores: Mapping[str, float]) -> list[str]:
    """Doc ids in trec_eval order: score descending, ties by doc id descending (as strings)."""
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


@dataclass
class EvalResult:
    per_query: dict[str, dict[str, float]]  # metric name -> {qid: value}
    mean: dict[str, float]
    n_queries: int
    empty_queries: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": dict(self.mean),
            "n_queries": self.n_queries,
            "empty_queries": list(self.empty_queries),
            "per_query": {m: dict(v) for m, v in self.per_query.items()},
        }


def evaluate(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
) -> EvalResult:
    """Score a run ``{qid: {docid: score}}`` against ``{qid: {docid: relevance}}``.

    Scores must be numbers without NaN. The ranking is :func:`rank`'s, but only the rank of
    each judged relevant document is needed: the number of documents scoring higher (a
    bisection in the sorted scores) plus, when its score is tied, the documents with that
    score and a greater doc id (trec_eval's tie order), read off the same slice of the doc
    ids sorted by score.
    """
    specs = _specs(metrics)
    qids = _eval_qids(qrels)
    hq: list[int] = []
    hp: list[int] = []
    hr: list[float] = []
    empty: list[str] = []
    for qi, q in enumerate(qids):
        scores = run.get(q)
        if not scores:
            empty.append(q)
            continue
        asc = sorted(scores.values())
        n = len(asc)
        get = scores.get
        by_score: list[str] | None = None  # doc ids by ascending score, built on a tie
        for d, v in qrels[q].items():
            if v > 0 and (x := get(d)) is not None:
                hi = bisect_right(asc, x)
                lo = bisect_left(asc, x)
                pos = n - hi  # documents scoring higher
                if hi - lo > 1:  # tied: those with the same score and a greater id go first
                    if by_score is None:
                        by_score = sorted(scores, key=scores.__getitem__)
                    pos += sum(map(d.__lt__, by_score[lo:hi]))
                hq.append(qi)
                hp.append(pos)
                hr.append(v)
    return _score(qrels, qids, specs, (hq, hp, hr), empty)


def evaluate_ranked(
    qrels: Mapping[str, Mapping[str, int]],
    ranked: Mapping[str, Sequence[str]],
    metrics: Sequence[str],
) -> EvalResult:
    """Score already-ordered lists ``{qid: [docid, ...]}`` (rank i = position i).

    A doc id listed twice for one query is an error: collapse chunks to documents first.
    """
    specs = _specs(metrics)
    qids = _eval_qids(qrels)
    hq: list[int] = []
    hp: list[int] = []
    hr: list[float] = []
    empty: list[str] = []
    for qi, q in enumerate(qids):
        ids = ranked.get(q) or []
        if not ids:
            empty.append(q)
            continue
        if len(set(ids)) != len(ids):
            dup = next(d for i, d in enumerate(ids) if d in ids[:i])
            raise InvalidArtifact(f"query {q!r}: doc id {dup!r} ranked twice")
        get = qrels[q].get
        for i, v in enumerate(map(get, ids, repeat(0))):
            if v > 0:
                hq.append(qi)
                hp.append(i)
                hr.append(v)
    return _score(qrels, qids, specs, (hq, hp, hr), empty)


def _eval_qids(qrels: Mapping[str, Mapping[str, int]]) -> list[str]:
    """The eval set: every qrels query with at least one judgment, sorted."""
    return sorted(q for q, judged in qrels.items() if judged)


def _specs(metrics: Sequence[str]) -> list[MetricSpec]:
    if isinstance(metrics, str):
        metrics = [metrics]
    out: dict[str, MetricSpec] = {}
    for m in metrics:
        spec = parse_metric(m)
        out.setdefault(spec.name, spec)
    if not out:
        raise ConfigError("no metrics requested")
    return list(out.values())


def _score(
    qrels: Mapping[str, Mapping[str, int]],
    qids: list[str],
    specs: list[MetricSpec],
    hits: tuple[list[int], list[int], list[float]],
    empty: list[str],
) -> EvalResult:
    from genreg.core.metrics_batch import Batch  # numpy, imported lazily

    batch = Batch(len(qids), *hits, [qrels[q].values() for q in qids])
    per_query: dict[str, dict[str, float]] = {}
    mean: dict[str, float] = {}
    n = len(qids)
    for spec in specs:
        values = batch.compute(spec.family, spec.k)
        per_query[spec.name] = dict(zip(qids, values.tolist()))
        mean[spec.name] = float(values.sum() / n) if n else 0.0
    return EvalResult(per_query, mean, n, empty)


def reference_values(
    qrels: Mapping[str, Mapping[str, int]],
    ranked: Mapping[str, Sequence[str]],
    metric: str,
) -> dict[str, float]:
    """One metric per query through the plain per-query function (slow; for checking)."""
    spec = parse_metric(metric)
    fn = FAMILIES[spec.family].fn
    out = {}
    for q in sorted(q for q, j in qrels.items() if j):
        judged = qrels[q]
        rels = [judged.get(d, 0) for d in ranked.get(q) or []]
        ideal = sorted((v for v in judged.values() if v >= RELEVANT), reverse=True)
        out[q] = fn(rels, ideal, spec.k)
    return out


__all__ = [
    "ALIASES",
    "FAMILIES",
    "EvalResult",
    "Family",
    "MetricSpec",
    "evaluate",
    "evaluate_ranked",
    "parse_metric",
    "rank",
    "reference_values",
    "average_precision",
    "hit_rate",
    "mrr",
    "ndcg",
    "precision",
    "r_precision",
    "recall",
]
