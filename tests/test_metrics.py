"""Metrics: identical to trec_eval (through pytrec_eval), hand-computed cases, eval-set rules."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from genreg.core import metrics as M
from genreg.core.metrics import evaluate, evaluate_ranked, parse_metric, rank
from genreg.errors import ConfigError, InvalidArtifact

# metric as users write it -> (pytrec_eval measure to request, key in its results)
PYTREC = {
    "recall@1": ("recall.1", "recall_1"),
    "recall@5": ("recall.5", "recall_5"),
    "recall@100": ("recall.100", "recall_100"),
    "precision@1": ("P.1", "P_1"),
    "precision@3": ("P.3", "P_3"),
    "precision@20": ("P.20", "P_20"),
    "ndcg@1": ("ndcg_cut.1", "ndcg_cut_1"),
    "ndcg@5": ("ndcg_cut.5", "ndcg_cut_5"),
    "ndcg@10": ("ndcg_cut.10", "ndcg_cut_10"),
    "ndcg@100": ("ndcg_cut.100", "ndcg_cut_100"),
    "ndcg": ("ndcg", "ndcg"),
    "hit_rate@1": ("success.1", "success_1"),
    "hit-rate@5": ("success.5", "success_5"),
    "hit_rate@10": ("success.10", "success_10"),
    "map@5": ("map_cut.5", "map_cut_5"),
    "map@100": ("map_cut.100", "map_cut_100"),
    "map": ("map", "map"),
    "mrr": ("recip_rank", "recip_rank"),
    "r_precision": ("Rprec", "Rprec"),
    "r-precision": ("Rprec", "Rprec"),
}
MRR_CUTOFFS = [1, 3, 10]


def random_case(seed: int, *, graded: bool, ties: bool, nq: int = 120):
    """Qrels/run with unjudged retrieved docs, judged non-relevant docs, queries with no
    relevant docs, queries missing from the run or not in the qrels, and (optionally) ties."""
    rng = random.Random(seed)
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for i in range(nq):
        qid = f"q{i}"
        pool = [f"d{rng.randrange(400)}" for _ in range(80)]
        levels = [0, 1, 2, 3] if graded else [0, 1]
        judged = rng.sample(pool, rng.randrange(1, 15))
        qrels[qid] = {d: rng.choice(levels) for d in judged}
        if i % 17 == 0:
            qrels[qid] = {d: 0 for d in judged}  # judged, nothing relevant
        if i % 23 == 5:
            continue  # absent from the run
        n = rng.randrange(1, 60)
        run[qid] = {
            d: (rng.randrange(6) / 5 if ties else rng.random()) for d in rng.sample(pool, n)
        }
    run["not-judged"] = {"d1": 1.0}
    return qrels, run


def truncate(run, k):
    return {q: {d: s[d] for d in rank(s)[:k]} for q, s in run.items()}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("graded", [True, False])
@pytest.mark.parametrize("ties", [True, False])
def test_every_metric_equals_pytrec_eval(seed: int, graded: bool, ties: bool) -> None:
    qrels, run = random_case(seed, graded=graded, ties=ties)
    names = list(PYTREC) + [f"mrr@{k}" for k in MRR_CUTOFFS]
    ours = evaluate(qrels, run, names)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {m for m, _ in PYTREC.values()}).evaluate(run)
    refs = {name: {q: v[key] for q, v in ref.items()} for name, (_, key) in PYTREC.items()}
    for k in MRR_CUTOFFS:
        cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(truncate(run, k))
        refs[f"mrr@{k}"] = {q: v["recip_rank"] for q, v in cut.items()}
    assert ref, "the case must give pytrec_eval something to score"
    for name, expected in refs.items():
        got = ours.per_query[name]
        for q, value in expected.items():
            assert got[q] == pytest.approx(value, abs=1e-9), (name, q)
        # the queries pytrec_eval drops are exactly the empty ones, and they score 0
        extra = set(got) - set(expected)
        assert extra == set(ours.empty_queries)
        assert all(got[q] == 0.0 for q in extra)
        assert ours.mean[name] == pytest.approx(sum(expected.values()) / ours.n_queries, abs=1e-9)


@pytest.mark.parametrize("seed", [5, 6])
def test_vectorised_engine_equals_per_query_definitions(seed: int) -> None:
    qrels, run = random_case(seed, graded=True, ties=True, nq=60)
    ranked = {q: rank(s) for q, s in run.items()}
    for name in [*PYTREC, "mrr@3", "precision@7"]:
        expected = M.reference_values(qrels, ranked, name)
        assert evaluate(qrels, run, [name]).per_query[name] == pytest.approx(expected, abs=1e-12)
        assert evaluate_ranked(qrels, ranked, [name]).per_query[name] == pytest.approx(
            expected, abs=1e-12
        )


def test_ties_are_broken_by_doc_id_descending_never_insertion_order() -> None:
    assert rank({"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5, "y": 2.0}) == ["y", "c", "b", "a", "z"]
    assert rank({"d10": 1.0, "d9": 1.0}) == ["d9", "d10"]  # string order, not numeric
    qrels = {"q": {"a": 1}}
    forward = evaluate(qrels, {"q": {"a": 1.0, "b": 1.0}}, ["mrr"])
    backward = evaluate(qrels, {"q": {"b": 1.0, "a": 1.0}}, ["mrr"])
    assert forward.per_query["mrr"]["q"] == backward.per_query["mrr"]["q"] == 0.5


# Hand-computed cases. Ranking r = [d1, d2, d3, d4, d5] with relevance
# d1=0 (judged non-relevant), d2=2, d3 unjudged, d4=1, d5=0; d6=3 relevant but not retrieved.
# R = 3 relevant documents (d2, d4, d6); ideal gains sorted = [3, 2, 1].
HAND_QRELS = {"q": {"d1": 0, "d2": 2, "d4": 1, "d5": 0, "d6": 3}}
HAND_RUN = {"q": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6, "d5": 0.5}}
L2, L3, L4 = math.log2(3), math.log2(4), math.log2(5)  # discounts of ranks 2, 3, 4
HAND = {
    "recall@1": 0 / 3,  # top 1 = [d1]: no relevant
    "recall@4": 2 / 3,  # d2, d4 of 3 relevant
    "precision@2": 1 / 2,  # d2 among 2
    "precision@10": 2 / 10,  # divides by k even though only 5 retrieved
    "mrr@1": 0.0,  # first relevant at rank 2 > 1
    "mrr@10": 1 / 2,  # first relevant at rank 2
    "hit_rate@1": 0.0,
    "hit_rate@2": 1.0,
    # DCG@4 = 2/log2(3) + 1/log2(5); IDCG@4 = 3/log2(2) + 2/log2(3) + 1/log2(4)
    "ndcg@4": (2 / L2 + 1 / L4) / (3 + 2 / L2 + 1 / L3),
    # DCG@2 = 2/log2(3); IDCG@2 = 3 + 2/log2(3)
    "ndcg@2": (2 / L2) / (3 + 2 / L2),
    # AP@5: precision at the relevant ranks 2 (1/2) and 4 (2/4), divided by R = 3
    "map@5": (1 / 2 + 2 / 4) / 3,
    "map@3": (1 / 2) / 3,  # only rank 2 is within the top 3
    "map": (1 / 2 + 2 / 4) / 3,
    # R = 3: top 3 = [d1, d2, d3] holds one relevant
    "r_precision": 1 / 3,
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_computed_value(name: str) -> None:
    got = evaluate(HAND_QRELS, HAND_RUN, [name])
    assert got.per_query[name]["q"] == pytest.approx(HAND[name], abs=1e-12)
    spec = parse_metric(name)
    rels = [HAND_QRELS["q"].get(d, 0) for d in rank(HAND_RUN["q"])]
    assert M.FAMILIES[spec.family].fn(rels, [3, 2, 1], spec.k) == pytest.approx(HAND[name])


def test_query_that_retrieved_nothing_counts_as_zero_and_is_reported() -> None:
    qrels = {"a": {"d1": 1}, "b": {"d2": 1}, "c": {"d3": 1}}
    run = {"a": {"d1": 1.0}, "b": {}, "extra": {"d9": 1.0}}  # c absent, b empty
    res = evaluate(qrels, run, ["recall@10", "ndcg@10"])
    assert res.n_queries == 3
    assert res.empty_queries == ["b", "c"]
    assert res.mean == {"recall@10": pytest.approx(1 / 3), "ndcg@10": pytest.approx(1 / 3)}
    assert "extra" not in res.per_query["recall@10"]  # queries without judgments are ignored
    # pytrec_eval drops "c" (absent from the run): mean 1/2, the documented difference
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"recall.10"}).evaluate(run)
    assert sorted(ref) == ["a", "b"] and ref["b"]["recall_10"] == 0.0


def test_query_with_judgments_but_no_relevant_doc_counts_with_zero_like_trec_eval() -> None:
    qrels = {"a": {"d1": 1}, "none": {"d1": 0, "d2": 0}, "unjudged": {}}
    run = {"a": {"d1": 1.0}, "none": {"d1": 1.0, "d2": 0.5}, "unjudged": {"d1": 1.0}}
    res = evaluate(qrels, run, ["ndcg@10", "map", "r_precision", "mrr"])
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map"}).evaluate(run)
    assert set(ref) == {"a", "none"} and ref["none"]["ndcg_cut_10"] == 0.0
    assert res.n_queries == 2  # the query with an empty judgment map is not in the eval set
    assert all(res.per_query[m]["none"] == 0.0 for m in res.per_query)
    assert res.mean["map"] == 0.5


def test_evaluate_ranked_refuses_a_doc_ranked_twice() -> None:
    with pytest.raises(InvalidArtifact, match="'d1' ranked twice"):
        evaluate_ranked({"q": {"d1": 1}}, {"q": ["d1", "d2", "d1"]}, ["mrr@10"])


def test_parse_metric_accepts_names_as_users_write_them() -> None:
    assert parse_metric("ndcg@10") == M.MetricSpec("ndcg@10", "ndcg", 10)
    assert parse_metric("MRR@10") == M.MetricSpec("MRR@10", "mrr", 10)
    assert parse_metric("hit-rate@5").family == "hit_rate"
    assert parse_metric("r-precision") == M.MetricSpec("r-precision", "r_precision", None)
    assert parse_metric("map").k is None


@pytest.mark.parametrize(
    "bad", ["ndgc@10", "recall", "precision", "ndcg@0", "ndcg@x", "r_precision@5", "", "@10"]
)
def test_invalid_metric_name_is_a_config_error_listing_families(bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        evaluate({"q": {"d": 1}}, {"q": {"d": 1.0}}, [bad])
    assert repr(bad) in str(e.value)
    if bad in ("ndgc@10", "", "@10"):
        assert "ndcg" in str(e.value) and "hit_rate@k" in str(e.value)


def test_result_serialises_with_metric_names_as_written() -> None:
    res = evaluate({"q": {"d": 1}}, {"q": {"d": 1.0}}, ["ndcg@10", "recall@100", "mrr@10"])
    out = res.to_dict()
    assert out["mean"] == {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
    assert out["n_queries"] == 1 and out["empty_queries"] == []
    assert out["per_query"]["ndcg@10"] == {"q": 1.0}
