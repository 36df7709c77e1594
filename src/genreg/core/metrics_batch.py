"""Vectorised engine behind :func:`genreg.core.metrics.evaluate` (imports numpy).

Every metric here depends only on *where the relevant documents landed*: for each query the
0-based ranks and relevance levels of its retrieved judged-relevant documents ("hits"), the
number of relevant documents R, and the ideal gains. So the engine keeps just those hits,
flat over all queries, computes the shared per-hit terms once (discounted gain, the hit's
ordinal for average precision), and each metric is one masked ``np.bincount`` per query.
Queries that retrieved nothing have no hits and score 0. The definitions are those of the
per-query functions in :mod:`genreg.core.metrics`; tests hold both to ``pytrec_eval``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import chain

import numpy as np

_DISC = np.zeros(0)


def discounts(n: int) -> np.ndarray:
    """1 / log2(i + 2) for 0-based positions i < n (a table grown once, shared by calls)."""
    global _DISC
    if len(_DISC) < n:
        _DISC = 1.0 / np.log2(np.arange(2, max(n, 2 * len(_DISC), 1024) + 2, dtype=np.float64))
    return _DISC[:n]


class Batch:
    """Hits of many queries: ``hit_q[i]`` (query index), ``hit_pos[i]`` (0-based rank),
    ``hit_rel[i]`` (relevance > 0); ``judged[q]`` = every relevance level judged for query q
    (the ideal ranking and R are derived from these)."""

    def __init__(
        self,
        nq: int,
        hit_q: Sequence[int],
        hit_pos: Sequence[int],
        hit_rel: Sequence[float],
        judged: Sequence[Collection[float]],
    ) -> None:
        self.nq = nq
        q = np.asarray(hit_q, dtype=np.int64)
        pos = np.asarray(hit_pos, dtype=np.int64)
        order = np.lexsort((pos, q))  # by query, then rank
        self.q, self.pos = q[order], pos[order]
        self.rel = np.asarray(hit_rel, dtype=np.float64)[order]
        self.binary = (self.rel >= 1).astype(np.float64)
        # ideal ranking: each query's judged levels sorted descending; relevant ones first
        jlens = np.fromiter(map(len, judged), dtype=np.int64, count=nq)
        levels = np.fromiter(chain.from_iterable(judged), dtype=np.float64, count=int(jlens.sum()))
        jq = np.repeat(np.arange(nq, dtype=np.int64), jlens)
        keep = levels >= 1
        levels, jq = levels[keep], jq[keep]
        levels = levels[np.lexsort((-levels, jq))]  # jq is already sorted, lexsort is stable
        self.r_count = np.bincount(jq, minlength=nq)
        self.r = self.r_count.astype(np.float64)
        self.iq = jq
        self.ipos = np.arange(len(jq), dtype=np.int64) - np.repeat(
            np.cumsum(self.r_count) - self.r_count, self.r_count
        )
        top = int(self.r_count.max()) if nq else 0
        self.ideal_gain = levels * discounts(top)[self.ipos]
        self._gain: np.ndarray | None = None
        self._ordinal: np.ndarray | None = None

    def _sum(self, weights: np.ndarray, k: int | np.ndarray | None) -> np.ndarray:
        """Per query: sum of a per-hit weight over hits ranked within the top k."""
        if k is not None:
            weights = weights * (self.pos < k)
        return np.bincount(self.q, weights=weights, minlength=self.nq).astype(np.float64)

    def _per_r(self, x: np.ndarray) -> np.ndarray:
        return np.divide(x, self.r, out=np.zeros_like(x), where=self.r > 0)

    def ordinal(self) -> np.ndarray:
        """For a relevant hit: how many relevant hits its query has at its rank or better."""
        if self._ordinal is None:
            c = np.cumsum(self.binary)
            starts = np.flatnonzero(np.r_[True, self.q[1:] != self.q[:-1]]) if len(c) else c
            lens = np.diff(np.r_[starts, len(c)]).astype(np.int64)
            base = c[starts.astype(np.int64)] - self.binary[starts.astype(np.int64)]
            self._ordinal = c - np.repeat(base, lens)
        return self._ordinal

    def gain(self) -> np.ndarray:
        if self._gain is None:
            n = int(self.pos.max()) + 1 if len(self.pos) else 0
            self._gain = self.rel * discounts(n)[self.pos]
        return self._gain

    def compute(self, family: str, k: int | None) -> np.ndarray:
        """Values of one metric family at cutoff k for every query."""
        b = self.binary
        if family == "recall":
            return self._per_r(self._sum(b, k))
        if family == "precision":
            return self._sum(b, k) / k
        if family == "hit_rate":
            return (self._sum(b, k) > 0).astype(np.float64)
        if family == "map":
            return self._per_r(self._sum(b * self.ordinal() / (self.pos + 1), k))
        if family == "mrr":
            first = b * (self.ordinal() == 1)
            return self._sum(first / (self.pos + 1), k)
        if family == "r_precision":
            return self._per_r(self._sum(b, self.r[self.q]))
        if family == "ndcg":
            dcg = self._sum(self.gain(), k)
            iw = self.ideal_gain if k is None else self.ideal_gain * (self.ipos < k)
            idcg = np.bincount(self.iq, weights=iw, minlength=self.nq).astype(np.float64)
            return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
        raise KeyError(family)  # parse_metric only yields known families
