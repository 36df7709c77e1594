"""ann_recall@k's exact reference kept per query (``ann.ExactCache``): an unchanged eval re-run
reads it instead of streaming every cached vector again; the numbers are the same with and
without it; a changed query set searches only its new queries; another index (rows) or model
never answers from it; a corrupt or mis-scoped object is an IntegrityError; gc keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genreg.errors import IntegrityError
from genreg.retrieval import ann
from genreg.retrieval.cache import QUERY_KIND, EmbeddingCache
from genreg.retrieval.chunking import text_digest
from test_ann_index import SPEC, TableEmbedder, _corpus, _prefilled_eval, clustered

CFG = (
    "name: ann\nevalset: evalset:{evalset}\ncorpus: corpus:kb\nmetrics: [ndcg@10]\nk: [5, 10]\n"
    "index: {{type: ivfpq, nlist: 32, m: 16, nprobe: 2, train_size: 1500}}\n"
)


@pytest.fixture
def exact_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of queries of every exhaustive search (``ExactSearch.__call__``) made."""
    calls: list[int] = []
    real = ann.ExactSearch.__call__

    def counting(self, q, fetch):
        calls.append(len(q))
        return real(self, q, fetch)

    monkeypatch.setattr(ann.ExactSearch, "__call__", counting)
    return calls


def _run(cli, cfg: Path) -> dict:
    r = cli("eval", "run", cfg, "--json", "--quiet")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def _per_query(registry, run_id: str, k: int) -> dict[str, float]:
    return {q["id"]: q[f"ann_recall@{k}"] for q in registry.run_results(run_id)["queries"]}


def _hand_recall(registry, run_id: str, x, q, ids: list[int], k: int) -> dict[str, float]:
    """ann_recall@k computed here: exact top-k by numpy vs the documents the run retrieved."""
    results = {r["id"]: r for r in registry.run_results(run_id)["queries"]}
    exact = np.argsort(-(q @ x.T), axis=1, kind="stable")
    out = {}
    for i in ids:
        got = [d for d, _ in results[f"q{i}"]["ranked"]][:k]
        out[f"q{i}"] = len({f"d{j:05d}.txt" for j in exact[i, :k]} & set(got)) / k
    return out


def test_eval_rerun_reads_the_exact_results_and_reports_the_same_recall(
    cli, registry, tmp_path, exact_calls
):
    n, nq = 1500, 30
    x, q = _prefilled_eval(registry, tmp_path, n, nq)
    cfg = tmp_path / "ann.yaml"
    cfg.write_text(CFG.format(evalset="gold"), encoding="utf-8")
    first = _run(cli, cfg)
    assert sum(exact_calls) == nq  # searched once, every query
    assert first["report"]["ann"]["exact_searched"] == nq
    assert first["report"]["ann"]["exact_cached"] == 0
    assert len(registry.derived.list(ann.EXACT_KIND)) == 1

    exact_calls.clear()
    second = _run(cli, cfg)
    assert exact_calls == []  # not one exhaustive search: the stored results answered
    assert second["report"]["ann"]["exact_cached"] == nq
    assert second["report"]["ann"]["exact_searched"] == 0
    assert second["report"]["ann"]["recall"] == first["report"]["ann"]["recall"]
    for k in (5, 10):
        want = _hand_recall(registry, first["run_id"], x, q, list(range(nq)), k)
        assert _per_query(registry, first["run_id"], k) == pytest.approx(want)
        assert _per_query(registry, second["run_id"], k) == pytest.approx(want)
    assert 0.2 < first["report"]["ann"]["recall"]["ann_recall@10"] < 1.0  # a real ANN error
    assert len(registry.derived.list(ann.EXACT_KIND)) == 1  # nothing new stored

    # a changed query set: 20 known queries and 5 new ones -- only the new ones are searched
    extra = [f"query {i}" for i in range(nq, nq + 5)]
    emb = registry.load_embedder(None)
    q_new = clustered(5, emb.dim, seed=7)
    EmbeddingCache(registry.objects, registry.derived, emb.digest, emb.dim, kind=QUERY_KIND).add(
        [text_digest(t) for t in extra], q_new
    )
    rows = [
        {"id": f"q{i}", "query": f"query {i}", "relevant": [f"d{i:05d}.txt"]}
        for i in [*range(20), *range(nq, nq + 5)]
    ]
    registry.register_content("evalset", "gold2", rows)
    cfg2 = tmp_path / "ann2.yaml"
    cfg2.write_text(CFG.format(evalset="gold2"), encoding="utf-8")
    exact_calls.clear()
    third = _run(cli, cfg2)
    assert exact_calls == [5]
    assert (third["report"]["ann"]["exact_searched"], third["report"]["ann"]["exact_cached"]) == (
        5,
        20,
    )
    q_all = np.concatenate([q, q_new])
    for k in (5, 10):
        want = _hand_recall(registry, third["run_id"], x, q_all, [*range(20), *range(30, 35)], k)
        assert _per_query(registry, third["run_id"], k) == pytest.approx(want)

    # gc keeps the stored results (their derived rows reference them); a re-run still reads them
    registry.gc(dry_run=False, grace_seconds=0)
    exact_calls.clear()
    assert _run(cli, cfg)["report"]["ann"]["exact_cached"] == nq
    assert exact_calls == []


def test_exact_cache_answers_bit_for_bit_and_only_for_its_own_rows_model_and_fetch(
    registry, exact_calls
):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    digests = [text_digest(f"t{i}") for i in range(len(x))]
    model = "sha256:" + "cd" * 32
    EmbeddingCache(registry.objects, registry.derived, model, 16).add(digests, x)
    rows = ann.digests_array(digests)
    plain = ann.ExactSearch(registry.objects, registry.derived, model, 16, rows)
    q = x[:7] + 0.1

    def cache(model_digest=model, rows_digest="sha256:" + "01" * 32):
        return ann.ExactCache(
            plain,
            registry.objects,
            registry.derived,
            model_digest=model_digest,
            dim=16,
            rows_digest=rows_digest,
        )

    want_s, want_i = plain(q, 10)
    exact_calls.clear()
    got = cache()(q, 10)  # computed and stored
    assert exact_calls == [7]
    again = cache()(q, 10)  # a new cache object: read back from the registry
    assert exact_calls == [7]
    for s, i in (got, again):
        assert np.array_equal(s.view(np.uint32), want_s.view(np.uint32))
        assert np.array_equal(i, want_i)
    # a prefix of known queries, repeated: still nothing searched
    s, i = cache()(np.concatenate([q[:3], q[:3]]), 10)
    assert exact_calls == [7] and np.array_equal(i, np.concatenate([want_i[:3], want_i[:3]]))
    # another index's rows, another model, another fetch: each searches for itself
    cache(rows_digest="sha256:" + "02" * 32)(q, 10)
    cache(model_digest="sha256:" + "ef" * 32)(q, 10)
    cache()(q, 12)
    assert exact_calls == [7, 7, 7, 7]


def test_a_corrupt_or_mis_scoped_exact_object_is_an_integrity_error(registry):
    mine = ann.exact_scope("sha256:" + "cd" * 32, 16, "sha256:" + "01" * 32)
    other = ann.exact_scope("sha256:" + "cd" * 32, 16, "sha256:" + "02" * 32)
    assert mine != other
    blob = ann.encode_exact(
        other, 4, [b"\x01" * 32], np.zeros((1, 4), np.float32), np.zeros((1, 4), np.int64)
    )
    # a row of this index naming an object made for another index's rows
    obj = registry.objects.put_bytes(blob)
    registry.derived.put(ann.EXACT_KIND, mine, obj, obj, {"count": 1, "fetch": 4})

    def search(q, fetch):
        raise AssertionError("must not search: the bad object is an error first")

    exact = ann.ExactCache(
        search,
        registry.objects,
        registry.derived,
        model_digest="sha256:" + "cd" * 32,
        dim=16,
        rows_digest="sha256:" + "01" * 32,
    )
    with pytest.raises(IntegrityError, match="another index, model or fetch"):
        exact(np.zeros((1, 16), np.float32), 4)
    # and bytes that are not what the row's digest says
    good = ann.encode_exact(
        mine, 4, [b"\x02" * 32], np.zeros((1, 4), np.float32), np.zeros((1, 4), np.int64)
    )
    obj2 = registry.objects.put_bytes(good)
    path = registry.objects.local_path(obj2)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(good[:-1] + b"\x07")
    with pytest.raises(IntegrityError):
        ann.decode_exact(registry.objects.get_bytes(obj2), mine, 4, "x")
    with pytest.raises(IntegrityError, match="not a genreg exact-results object"):
        ann.decode_exact(good[:-8], mine, 4, "x")


def test_retrievers_of_two_indexes_never_share_exact_results(registry, tmp_path, exact_calls):
    n = 1200
    _corpus(registry, tmp_path, n)
    emb = TableEmbedder(n)
    q = emb.table[:5]
    r1 = registry.open_retriever("kb", model=emb, index=SPEC)
    first = r1.exact_search_vectors(q, 10)
    assert exact_calls == [5]
    again = registry.open_retriever("kb", model=emb, index=SPEC).exact_search_vectors(q, 10)
    assert exact_calls == [5] and again == first
    # a new corpus version (one more document): another index, other rows
    src = tmp_path / "src"
    (src / f"d{n:05d}.txt").write_text(f"doc {n}", encoding="utf-8")
    registry.snapshot("kb", src)
    other = registry.open_retriever("kb", model=emb, index=SPEC)
    assert other.info.key != r1.info.key
    other.exact_search_vectors(q, 10)
    assert exact_calls == [5, 5]


def test_exact_cache_counts_each_query_once_across_retries(registry) -> None:
    """A chunked retriever asks again with a larger fetch for queries short of k documents:
    ``searched``/``cached`` count distinct queries, so together they never exceed the query
    set (a retry answered from the cache is not a second cached query)."""

    def search(x, fetch):
        s = np.sort(x @ np.eye(x.shape[1], dtype=np.float32)[:, :1], axis=0)
        return np.repeat(s, fetch, axis=1).astype(np.float32), np.tile(
            np.arange(fetch, dtype=np.int64), (len(x), 1)
        )

    kw = {"model_digest": "sha256:" + "ab" * 32, "dim": 4, "rows_digest": "sha256:" + "cd" * 32}
    q = clustered(3, 4, seed=2)
    first = ann.ExactCache(search, registry.objects, registry.derived, **kw)
    first(q, 10)
    first(q[:2], 20)  # the retry: searched again (another fetch), still the same 2 queries
    first(q, 10)
    assert (first.searched, first.cached) == (3, 0)
    again = ann.ExactCache(search, registry.objects, registry.derived, **kw)  # a re-run
    again(q, 10)
    again(q[:1], 20)  # the retry, answered from the cache too
    assert (again.searched, again.cached) == (0, 3)
