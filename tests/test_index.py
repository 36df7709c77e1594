"""Index specs, FAISS build/search for flat, hnsw and ivf, chunk->document collapsing."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.retrieval.index import IndexSpec, build_faiss, decode_index, encode_index
from genreg.retrieval.retriever import IndexInfo, Retriever
from retrieval_helpers import HashEmbedder

TOPICS = [
    "apple banana fruit",
    "car engine wheel",
    "ocean wave surf",
    "guitar music song",
    "python code bug",
    "mountain snow ski",
    "coffee bean roast",
    "rocket orbit launch",
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"type": "flat"}),
        ("flat", {"type": "flat"}),
        ("hnsw", {"type": "hnsw", "m": 32, "ef_construction": 200, "ef_search": 128}),
        (
            '{"type": "hnsw", "m": 16}',
            {"type": "hnsw", "m": 16, "ef_construction": 200, "ef_search": 128},
        ),
        ({"type": "ivf", "nlist": 8, "nprobe": 2}, {"type": "ivf", "nlist": 8, "nprobe": 2}),
    ],
)
def test_index_spec_parses_to_canonical_dict(value, expected):
    spec = IndexSpec.parse(value)
    assert spec.to_dict() == expected
    assert IndexSpec.parse(spec.to_dict()) == spec


def test_search_time_params_are_not_build_params():
    a = IndexSpec.parse({"type": "hnsw", "ef_search": 16})
    b = IndexSpec.parse({"type": "hnsw", "ef_search": 256})
    assert a.build_dict() == b.build_dict() and a.to_dict() != b.to_dict()


@pytest.mark.parametrize(
    "value",
    [
        "annoy",
        {"type": "flat", "m": 3},
        {"type": "hnsw", "m": 0},
        {"type": "ivf", "nlist": "8"},
        "{nope",
    ],
)
def test_bad_index_spec_is_a_config_error(value):
    with pytest.raises(ConfigError):
        IndexSpec.parse(value)


def _retriever(spec: IndexSpec, doc_ids, chunk_index, texts, emb) -> Retriever:
    vecs = emb.encode(texts)
    index, meta = decode_index(encode_index(build_faiss(vecs, spec), {"n": len(texts)}))
    assert meta == {"n": len(texts)}
    from genreg.retrieval.index import apply_search_params

    apply_search_params(index, spec)
    info = IndexInfo(
        "k",
        "corpus:t@v1",
        1,
        "sha256:x",
        emb.name,
        emb.digest,
        {},
        spec.to_dict(),
        len(set(doc_ids)),
        len(doc_ids),
        0,
        False,
        0.0,
    )
    return Retriever(info, index, list(doc_ids), list(chunk_index), emb, lambda: list(texts))


@pytest.mark.parametrize("spec", ["flat", "hnsw", {"type": "ivf", "nlist": 4, "nprobe": 4}])
def test_every_index_type_finds_the_matching_document(spec):
    emb = HashEmbedder(64)
    texts = [f"{t} item{i}" for i in range(6) for t in TOPICS]
    ids = [f"d{j}" for j in range(len(texts))]
    r = _retriever(IndexSpec.parse(spec), ids, [0] * len(ids), texts, emb)
    res = r.search(["ocean wave surf", "rocket orbit launch"], k=5, batch_size=1)
    assert len(res.hits) == 2 and len(res.latencies) == 2
    assert all(len(h) == 5 for h in res.hits)
    assert all("ocean" in texts[ids.index(h.doc_id)] for h in res.hits[0])
    assert res.hits[0][0].score >= res.hits[0][-1].score
    assert all(lat > 0 for lat in res.latencies)


def test_chunks_collapse_to_distinct_documents_ranked_by_best_chunk():
    emb = HashEmbedder(64)
    # doc "a" has 6 chunks all about coffee; four other docs, one chunk each, one about coffee.
    texts = ["coffee bean roast"] * 6 + ["coffee bean", "car engine", "ocean wave", "guitar music"]
    ids = ["a"] * 6 + ["b", "c", "d", "e"]
    chunk_index = list(range(6)) + [0, 0, 0, 0]
    r = _retriever(IndexSpec.parse("flat"), ids, chunk_index, texts, emb)
    hits = r.search(["coffee bean roast"], k=3, with_text=True).hits[0]
    assert [h.doc_id for h in hits][:2] == ["a", "b"]
    assert len(hits) == 3 and len({h.doc_id for h in hits}) == 3
    assert hits[0].text == "coffee bean roast"
    everything = r.search(["coffee"], k=50).hits[0]
    assert sorted(h.doc_id for h in everything) == ["a", "b", "c", "d", "e"]


def test_batched_search_gives_the_same_hits_as_one_by_one():
    emb = HashEmbedder(32)
    texts = [f"{t} n{i}" for i, t in enumerate(TOPICS)]
    r = _retriever(IndexSpec.parse("flat"), [str(i) for i in range(8)], [0] * 8, texts, emb)
    qs = ["music", "snow ski", "bug in code", "fruit"]
    batched = r.search(qs, k=3, batch_size=4)
    single = r.search(qs, k=3, batch_size=1)
    assert batched.hits == single.hits
    assert batched.batch_size == 4 and len(set(batched.latencies)) == 1
    assert np.isclose(sum(batched.latencies) / 4, batched.latencies[0])


# ---- through the service: built once, reused ---------------------------------------------------
def _snapshot(registry, tmp_path, n=30):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(n):
        (src / f"d{i:03d}.txt").write_text(f"{TOPICS[i % 8]} note {i} " * 3, encoding="utf-8")
    registry.snapshot("kb", src)


def test_index_is_built_once_and_reused(registry, tmp_path):
    _snapshot(registry, tmp_path)
    emb = HashEmbedder(64)
    first = registry.build_index("corpus:kb", model=emb, index="hnsw")
    objects = set(registry.objects.iter_digests())
    second = registry.build_index("corpus:kb@v1", model=emb, index="hnsw")
    assert not first.reused and second.reused and second.embedded == 0
    assert second.key == first.key and second.object_digest == first.object_digest
    assert emb.calls == 1
    assert set(registry.objects.iter_digests()) == objects
    assert len(registry.derived.list("index", scope=first.corpus_digest)) == 1
    retriever = registry.open_retriever("corpus:kb", model=emb, index="hnsw")
    assert retriever.info.reused and emb.encoded == first.embedded
    assert len(registry.derived.list("index")) == 1


def test_changing_a_search_time_param_reuses_the_built_index(registry, tmp_path):
    _snapshot(registry, tmp_path)
    emb = HashEmbedder(64)
    a = registry.build_index("kb", model=emb, index={"type": "ivf", "nlist": 4, "nprobe": 1})
    b = registry.open_retriever("kb", model=emb, index={"type": "ivf", "nlist": 4, "nprobe": 4})
    assert b.info.reused and b.info.key == a.key
    assert b.info.index["nprobe"] == 4 and b.index.nprobe == 4


def test_different_chunking_or_model_builds_a_different_index(registry, tmp_path):
    _snapshot(registry, tmp_path)
    a = registry.build_index("kb", model=HashEmbedder(64))
    b = registry.build_index("kb", model=HashEmbedder(64), chunking="chars:20:5")
    c = registry.build_index("kb", model=HashEmbedder(64, "v2"))
    assert len({a.key, b.key, c.key}) == 3
    assert b.n_chunks > b.n_docs == a.n_docs == 30


def test_chunked_search_returns_k_distinct_documents(registry, tmp_path):
    _snapshot(registry, tmp_path)
    r = registry.open_retriever("kb", model=HashEmbedder(64), chunking="chars:12:4", index="flat")
    res = r.search(["ocean wave surf", "guitar"], k=10)
    for hits in res.hits:
        assert len(hits) == 10 and len({h.doc_id for h in hits}) == 10
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
