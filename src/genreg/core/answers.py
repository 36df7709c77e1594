"""Answer metrics: how well a generated answer matches the eval set's gold ``answer``.

Each metric is a small pure function ``fn(prediction, gold) -> float`` over one gold answer;
:func:`score_answer` takes the **maximum over the gold answers** of a row (``answer`` is a
string or a list of strings), as SQuAD v1.1's official ``evaluate-v1.1.py`` does.

- ``exact_match``: 1.0 when :func:`normalize_answer` of prediction and gold are equal, else 0.
- ``token_f1``: the harmonic mean of token precision and recall between the normalised
  prediction and gold, tokens being the whitespace-separated words after normalisation and
  shared tokens counted with multiplicity (``Counter`` intersection); 0 when nothing is shared.
- ``rouge_l``: ROUGE-L F-measure (longest common subsequence) from Google's ``rouge-score``
  package (``RougeScorer(["rougeL"], use_stemmer=False)``) with its default tokenizer:
  lowercase, every run of characters outside ``[a-z0-9]`` becomes a space (so punctuation and
  non-ASCII letters are dropped), split on whitespace, no stemming. 0 when either side has no
  tokens.

:func:`normalize_answer` is SQuAD v1.1's: lowercase, remove ASCII punctuation
(``string.punctuation``), drop the articles a/an/the, collapse whitespace.

Rows without a gold answer (no ``answer`` field, or an empty string/list) are excluded from
the answer metrics and counted (:attr:`AnswerScores.no_gold`). A query whose generation
failed scores 0 (its prediction is ``None``) and counts.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """SQuAD v1.1: lower, remove punctuation, remove articles, fix whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 iff normalize_answer(prediction) == normalize_answer(gold)."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 = 2PR/(P+R) with P = shared/|pred tokens|, R = shared/|gold tokens| (normalised)."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(gold).split()
    shared = sum((Counter(pred) & Counter(ref)).values())
    if shared == 0:
        return 0.0
    p, r = shared / len(pred), shared / len(ref)
    return 2 * p * r / (p + r)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer  # imported only when rouge_l is asked for (~1 s)

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, gold: str) -> float:
    """ROUGE-L F-measure (rouge-score, default tokenizer, no stemming)."""
    return float(_rouge().score(gold, prediction)["rougeL"].fmeasure)


ANSWER_METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
}
# Counts a gate can bound, reported next to the answer metrics (not per-query values).
COUNT_METRICS = ("generation_errors", "judge_errors")


def gold_answers(row: Mapping[str, Any]) -> list[str]:
    """The gold answers of an eval-set row: [] when it has none."""
    a = row.get("answer")
    if a is None:
        return []
    golds = [a] if isinstance(a, str) else list(a)
    return [g for g in golds if isinstance(g, str) and g.strip()]


def score_answer(metric: str, prediction: str | None, golds: list[str]) -> float:
    """Max over gold answers; a missing prediction (failed call) scores 0."""
    if prediction is None or not golds:
        return 0.0
    fn = ANSWER_METRICS[metric]
    return max(fn(prediction, g) for g in golds)


def check_answer_metrics(names: Iterable[str], where: str) -> list[str]:
    from genreg.errors import ConfigError

    out = []
    for i, n in enumerate(names):
        if n not in ANSWER_METRICS:
            raise ConfigError(
                f"{where}.{i}: unknown answer metric {n!r} (known: {', '.join(ANSWER_METRICS)})"
            )
        if n in out:
            raise ConfigError(f"{where}.{i}: duplicate answer metric {n!r}")
        out.append(n)
    return out


@dataclass
class AnswerScores:
    """Per-query values ``{metric: {qid: value}}`` and means over the scored queries."""

    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    scored: int = 0
    no_gold: int = 0
    no_gold_ids: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "scored": self.scored,
            "no_gold": self.no_gold,
            "no_gold_ids": self.no_gold_ids[:50],
        }


def score_answers(
    metrics: list[str],
    rows: Iterable[Mapping[str, Any]],
    predictions: Mapping[str, list[str | None]],
) -> AnswerScores:
    """Score each row's predictions (one per repeat; the query's value is their mean)."""
    out = AnswerScores(per_query={m: {} for m in metrics})
    for row in rows:
        qid = str(row["id"])
        golds = gold_answers(row)
        if not golds:
            out.no_gold += 1
            out.no_gold_ids.append(qid)
            continue
        preds = predictions.get(qid) or [None]
        out.scored += 1
        for m in metrics:
            vals = [score_answer(m, p, golds) for p in preds]
            out.per_query[m][qid] = sum(vals) / len(vals)
    for m in metrics:
        vals = list(out.per_query[m].values())
        out.mean[m] = sum(vals) / len(vals) if vals else 0.0
    return out


def repeat_spread(
    metrics: list[str],
    rows: Iterable[Mapping[str, Any]],
    predictions: Mapping[str, list[str | None]],
    repeats: int,
) -> dict[str, dict[str, Any]]:
    """For repeats > 1: each repeat's mean, and their standard deviation (population)."""
    rows = list(rows)
    out: dict[str, dict[str, Any]] = {}
    for m in metrics:
        means = []
        for r in range(repeats):
            vals = [
                score_answer(m, _nth(predictions.get(str(row["id"])), r), g)
                for row in rows
                if (g := gold_answers(row))
            ]
            means.append(sum(vals) / len(vals) if vals else 0.0)
        mu = sum(means) / len(means)
        sd = (sum((x - mu) ** 2 for x in means) / len(means)) ** 0.5
        out[m] = {"repeat_means": means, "std": sd, "min": min(means), "max": max(means)}
    return out


def _nth(preds: list[str | None] | None, i: int) -> str | None:
    return preds[i] if preds and i < len(preds) else None
