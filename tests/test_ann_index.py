"""Compressed on-disk indexes (ivfpq, ivf_hnsw): parameters, the deterministic training sample
in key and lineage, streaming build from the cache shards, reuse, search through memory-mapped
inverted lists after reopening, sharded parallel builds, bad parameters, and ann_recall@k
reported apart from the retrieval metrics (checked against a hand-computed exact search)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genreg.errors import ConfigError, IntegrityError
from genreg.retrieval import ann
from genreg.retrieval.cache import QUERY_KIND, EmbeddingCache
from genreg.retrieval.chunking import ChunkingSpec, iter_chunks
from genreg.retrieval.index import IndexSpec
from genreg.service.indexing import index_key, sample_key

DIM = 32
SPEC = {"type": "ivfpq", "nlist": 16, "m": 8, "nprobe": 4, "train_size": 1000}


def clustered(n: int, dim: int, seed: int, centers: int = 24) -> np.ndarray:
    """Normalised vectors around ``centers`` random directions (seeded)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class TableEmbedder:
    """Text ``doc N`` / ``query N`` -> a fixed seeded vector; counts what it embeds."""

    tokenizer = None

    def __init__(self, n: int, dim: int = DIM) -> None:
        self.name, self.dim = f"table-{dim}", dim
        self.digest = "sha256:" + "ab" * 32
        self.table = clustered(n, dim, seed=1)
        self.encoded = 0

    def encode(self, texts, batch_size=32, *, progress=None):
        self.encoded += len(texts)
        return np.stack([self.table[int(t.split()[-1]) % len(self.table)] for t in texts])


def _corpus(registry, tmp_path: Path, n: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(n):
        (src / f"d{i:05d}.txt").write_text(f"doc {i}", encoding="utf-8")
    registry.snapshot("kb", src)


def _objects(home: Path) -> set[str]:
    return {p.name for p in (home / "objects").rglob("*") if p.is_file() and len(p.name) == 62}


# ---- parameters -------------------------------------------------------------------------------
def test_ann_specs_take_defaults_and_keep_search_knobs_out_of_the_build():
    a = IndexSpec.parse({"type": "ivfpq", "nprobe": 8})
    assert a.to_dict() == {
        "type": "ivfpq",
        "nlist": 1024,
        "m": 48,
        "nbits": 8,
        "nprobe": 8,
        "refine": 16,
        "train_size": 65536,
        "seed": 0,
    }
    b = IndexSpec.parse('{"type": "ivfpq", "nprobe": 64, "refine": 0}')
    assert a.build_dict() == b.build_dict() and a.ann
    h = IndexSpec.parse("ivf_hnsw")
    assert {"hnsw_m", "ef_search", "ef_construction"} <= set(h.to_dict())
    assert "ef_search" not in h.build_dict() and "refine" not in h.build_dict()


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"type": "ivfpq", "nbits": 17}, "index.nbits"),
        ({"type": "ivfpq", "seed": -1}, "index.seed"),
        ({"type": "ivfpq", "hnsw_m": 8}, "index.hnsw_m"),
        ({"type": "ivf_hnsw", "nlist": 0}, "index.nlist"),
        ({"type": "ivfpq", "refine": -1}, "index.refine"),
        ({"type": "ivfpq", "refine": 65}, "index.refine"),
        ({"type": "hnsw", "refine": 4}, "index.refine"),
    ],
)
def test_bad_ann_parameter_is_one_line_naming_it(value, field):
    with pytest.raises(ConfigError) as e:
        IndexSpec.parse(value)
    assert e.value.message.startswith(field) and "\n" not in e.value.message


def test_sample_is_deterministic_in_seed_and_size():
    s = IndexSpec.parse({**SPEC, "train_size": 50})
    a, b = ann.sample_positions(s, 400), ann.sample_positions(s, 400)
    assert np.array_equal(a, b) and len(a) == 50 and np.all(np.diff(a) > 0)
    other = ann.sample_positions(IndexSpec.parse({**SPEC, "train_size": 50, "seed": 1}), 400)
    assert not np.array_equal(a, other)
    assert len(ann.sample_positions(s, 30)) == 30  # fewer rows than train_size: all of them


@pytest.mark.parametrize("kind", ["ivfpq", "ivf_hnsw"])
def test_in_place_training_equals_faiss_own_train(kind):
    import faiss

    x = clustered(6000, DIM, seed=8)
    spec = IndexSpec.parse({"type": kind, "nlist": 32, "m": 8, "train_size": 6000})
    ref = ann.new_index(spec, DIM)
    with ann.quiet_native():
        ref.train(x.copy())
    assert ann.train(spec, x.copy()) == faiss.serialize_index(ref).tobytes()


# ---- build, key, lineage fields, reuse, on-disk search ----------------------------------------
def test_ivfpq_is_built_from_the_cache_keyed_by_its_sample_and_reused(registry, tmp_path):
    n = 2000
    _corpus(registry, tmp_path, n)
    emb = TableEmbedder(n)
    info = registry.build_index("kb", model=emb, index=SPEC)
    assert not info.reused and info.embedded == n and info.n_chunks == n
    # the training sample: the sampled rows' text digests, recorded as an object
    spec = IndexSpec.parse(SPEC)
    version = registry.resolve("corpus:kb")
    srow = registry.derived.get(sample_key(version.digest, emb.digest, ChunkingSpec(), spec))
    assert srow is not None and srow.meta["size"] == 1000
    blob = registry.objects.get_bytes(srow.object_digest)
    assert ann.sample_digest(blob) == srow.meta["digest"] == info.index["train_sample"]
    docs = list(iter_chunks(registry.iter_documents("corpus:kb@v1"), ChunkingSpec()))
    want = [docs[i].digest for i in ann.sample_positions(spec, n)]
    assert blob == bytes.fromhex("".join(want))
    assert info.key == index_key(
        version.digest, emb.digest, ChunkingSpec(), spec, info.index["train_sample"]
    )
    assert info.key != index_key(version.digest, emb.digest, ChunkingSpec(), spec)
    # re-run: the stored index is reused, nothing embedded or built
    emb2 = TableEmbedder(n)
    again = registry.build_index("kb", model=emb2, index={**SPEC, "nprobe": 16})
    assert again.reused and again.key == info.key and emb2.encoded == 0
    assert len(registry.derived.list("index")) == 1
    # a different seed is a different sample, hence a different index
    other = registry.build_index("kb", model=emb2, index={**SPEC, "seed": 7})
    assert other.key != info.key and other.index["train_sample"] != info.index["train_sample"]


def test_reopened_index_searches_through_memory_mapped_lists(registry, tmp_path, genreg_home):
    from genreg import Registry

    n = 1500
    _corpus(registry, tmp_path, n)
    registry.build_index("kb", model=TableEmbedder(n), index=SPEC)
    registry.close()
    reg = Registry(genreg_home)  # a fresh registry (as a new process would)
    try:
        r = reg.open_retriever("kb", model=TableEmbedder(n), index=SPEC)
        assert r.info.reused and ann.is_ondisk(r.index) and r.index.ntotal == n
        lists = genreg_home / "cache" / "ann" / r.info.object_digest / ann.LISTS
        maps = Path("/proc/self/maps").read_text()
        assert any(str(lists) in ln and ln.split()[1] == "r--s" for ln in maps.splitlines())
        assert lists.stat().st_size == n * (8 + 8)  # m=8 one-byte codes + an 8-byte id each
        q = TableEmbedder(n).table[:5]
        hits = r.search_vectors(q, 5)
        assert [h[0].doc_id for h in hits] == [f"d{i:05d}.txt" for i in range(5)]
    finally:
        reg.close()


def test_ivf_hnsw_matches_exact_search_when_probing_every_list(registry, tmp_path):
    n = 1200
    _corpus(registry, tmp_path, n)
    spec = {"type": "ivf_hnsw", "nlist": 16, "m": 16, "nprobe": 16, "train_size": 1200}
    r = registry.open_retriever("kb", model=TableEmbedder(n), index=spec)
    q = clustered(40, DIM, seed=9)
    got = r.search_vectors(q, 10)
    exact = r.exact_search_vectors(q, 10)
    x = TableEmbedder(n).table
    want = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    assert [[h.doc_id for h in e] for e in exact] == [
        [f"d{i:05d}.txt" for i in row] for row in want
    ]
    overlap = np.mean(
        [len({h.doc_id for h in g} & {h.doc_id for h in e}) / 10 for g, e in zip(got, exact)]
    )
    assert overlap >= 0.8  # only PQ error left (every list probed)


def test_parallel_sharded_build_equals_the_in_process_build(registry, tmp_path):
    n = 3000
    x = clustered(n, DIM, seed=3)
    digests = [f"{i:064x}" for i in range(n)]
    cache = EmbeddingCache(registry.objects, registry.derived, "sha256:" + "cd" * 32, DIM)
    for lo in range(0, n, 700):  # several cache shards
        cache.add(digests[lo : lo + 700], x[lo : lo + 700])
    spec = IndexSpec.parse(SPEC)
    rows = ann.digests_array(digests)
    plan = ann.plan_rows(registry.objects, registry.derived, cache.model_digest, DIM, rows)
    assert len(plan.shards) == 5 and not len(plan.missing())
    trained = ann.train(
        spec, ann.gather(registry.objects, plan, ann.sample_positions(spec, n), DIM)
    )
    out = []
    for workers in (1, 2):
        d = tmp_path / f"w{workers}"
        d.mkdir()
        assert (
            ann.build_ondisk(
                registry.objects, plan, trained, d, workers=workers, rows_per_unit=1000
            )
            == n
        )
        assert sorted(p.name for p in d.iterdir()) == [ann.TRUNK, ann.LISTS]
        out.append(((d / ann.TRUNK).read_bytes(), (d / ann.LISTS).read_bytes()))
    assert out[0] == out[1]  # the trunk too: it names its lists file without the build dir
    assert str(tmp_path).encode() not in out[0][0]


def test_ondisk_index_bytes_do_not_depend_on_the_cache_shard_layout(tmp_path, monkeypatch):
    """The same rows and vectors, cached as one shard in one registry and as many small
    shards in reverse order in another (as a Ray job's blocks and a resumed job leave them):
    the trained index's trunk and lists file are byte-identical -- every inverted list is
    sorted by row id after the merge. Without that sort they differ (checked)."""
    from genreg import Registry

    n = 2400
    x = clustered(n, DIM, seed=8)
    digests = [f"{i:064x}" for i in range(n)]
    spec = IndexSpec.parse(SPEC)
    rows = ann.digests_array(digests)
    model = "sha256:" + "ce" * 32

    def build(name: str, parts: list[range], canonical: bool) -> tuple[bytes, bytes]:
        reg = Registry.init(tmp_path / name / ".genreg")
        try:
            cache = EmbeddingCache(reg.objects, reg.derived, model, DIM)
            for part in parts:
                cache.add([digests[i] for i in part], x[list(part)])
            plan = ann.plan_rows(reg.objects, reg.derived, model, DIM, rows)
            assert len(plan.shards) == len(parts)
            sample = ann.gather(reg.objects, plan, ann.sample_positions(spec, n), DIM)
            trained = ann.train(spec, sample)
            d = tmp_path / name / "out"
            d.mkdir()
            with monkeypatch.context() as m:
                if not canonical:
                    m.setattr(ann, "canonical_order", lambda lists: None)
                ann.build_ondisk(reg.objects, plan, trained, d, rows_per_unit=500)
            return (d / ann.TRUNK).read_bytes(), (d / ann.LISTS).read_bytes()
        finally:
            reg.close()

    one = [range(n)]
    many = [range(lo, min(lo + 150, n)) for lo in range(0, n, 150)][::-1]
    assert build("one", one, True) == build("many", many, True)
    assert build("one-raw", one, False)[1] != build("many-raw", many, False)[1]


def test_plan_rows_first_shard_and_first_position_win(registry):
    rng = np.random.default_rng(5)
    pool = [f"{i:064x}" for i in range(400)]
    pool[7] = "00" * 4 + "ff" * 28  # same 8-byte prefix as pool[0], different digest
    pool[0] = "00" * 4 + "aa" * 28
    model = "sha256:" + "ef" * 32
    cache = EmbeddingCache(registry.objects, registry.derived, model, 4)
    tables = []
    for _ in range(5):  # overlapping shards, digests repeated within a shard too
        ds = [pool[i] for i in rng.integers(0, 300, 120)]
        cache.add(ds, rng.standard_normal((len(ds), 4)).astype(np.float32))
        tables.append(ds)
    want: dict[str, tuple[int, int]] = {}
    for s, ds in enumerate(tables):
        for p, d in enumerate(ds):
            want.setdefault(d, (s, p))
    row_digests = [pool[i] for i in rng.integers(0, 400, 1000)]
    plan = ann.plan_rows(
        registry.objects, registry.derived, model, 4, ann.digests_array(row_digests)
    )
    got = [(int(s), int(p)) if s >= 0 else None for s, p in zip(plan.shard_of, plan.pos_of)]
    assert got == [want.get(d) for d in row_digests]
    assert any(g is None for g in got) and len(plan.missing()) == got.count(None)


# ---- search-time knobs reach FAISS; refine -------------------------------------------------
def _recall(r, q: np.ndarray, k: int = 10) -> float:
    got = r.search_vectors(q, k)
    exact = r.exact_search_vectors(q, k)
    return float(
        np.mean(
            [len({h.doc_id for h in g} & {h.doc_id for h in e}) / k for g, e in zip(got, exact)]
        )
    )


@pytest.mark.parametrize("kind", ["ivfpq", "ivf_hnsw"])
def test_nprobe_and_ef_search_are_applied_at_search_time(registry, tmp_path, kind):
    import faiss

    n = 3000
    _corpus(registry, tmp_path, n)
    base = {"type": kind, "nlist": 64, "m": 8, "train_size": 3000, "refine": 0}
    q = clustered(60, DIM, seed=11)
    recalls, tops = {}, {}
    for nprobe, ef in ((1, 16), (64, 80)):
        spec = {**base, "nprobe": nprobe}
        if kind == "ivf_hnsw":
            spec["ef_search"] = ef
        r = registry.open_retriever("kb", model=TableEmbedder(n), index=spec)
        ivf = faiss.extract_index_ivf(r.index)
        assert ivf.nprobe == nprobe  # on the FAISS object, not a Python attribute of a wrapper
        if kind == "ivf_hnsw":
            assert faiss.downcast_index(ivf.quantizer).hnsw.efSearch == ef
        recalls[nprobe] = _recall(r, q)
        tops[nprobe] = [[h.doc_id for h in hs] for hs in r.search_vectors(q, 10)]
    assert len(registry.derived.list("index")) == 1  # search-time: the same index both times
    assert tops[1] != tops[64]
    assert recalls[64] > recalls[1] + 0.15, recalls


def test_refine_reranks_candidates_by_their_exact_vectors(registry, tmp_path):
    n = 3000
    _corpus(registry, tmp_path, n)
    coarse = {"type": "ivfpq", "nlist": 16, "m": 4, "nprobe": 16, "train_size": 3000}
    q = clustered(60, DIM, seed=12)
    plain = registry.open_retriever("kb", model=TableEmbedder(n), index={**coarse, "refine": 0})
    refined = registry.open_retriever("kb", model=TableEmbedder(n), index={**coarse, "refine": 10})
    assert not isinstance(plain.index, ann.Refined) and isinstance(refined.index, ann.Refined)
    assert refined.info.key == plain.info.key and ann.is_ondisk(refined.index)
    low, high = _recall(plain, q), _recall(refined, q)
    assert low < 0.6 and high >= 0.9, (low, high)  # 4-byte codes: PQ error, lifted by refine
    x = TableEmbedder(n).table
    for qi, hits in enumerate(refined.search_vectors(q, 10)):
        rows = [int(h.doc_id[1:6]) for h in hits]
        assert [h.score for h in hits] == pytest.approx((x[rows] @ q[qi]).tolist(), abs=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_refined_search_opens_the_stored_row_map_not_every_digest(registry, tmp_path, monkeypatch):
    n = 1500
    _corpus(registry, tmp_path, n)
    info = registry.build_index("kb", model=TableEmbedder(n), index=SPEC)
    row = registry.derived.get(info.key)
    stored = ann.decode_rowmap(registry.objects.get_bytes(row.meta["rowmap"]))
    docs = list(iter_chunks(registry.iter_documents("corpus:kb@v1"), ChunkingSpec()))
    rows = ann.digests_array([d.digest for d in docs])
    planned = ann.plan_rows(registry.objects, registry.derived, info.model_digest, DIM, rows)
    assert stored.shards == planned.shards
    assert np.array_equal(stored.shard_of, planned.shard_of)
    assert np.array_equal(stored.pos_of, planned.pos_of)
    for col in (stored.shard_of, stored.pos_of):  # views of the stored bytes: 8 B a row in RAM
        assert col.dtype == np.int32 and col.base is not None and not col.flags.writeable

    def no_plan(*a, **k):
        raise AssertionError("plan_rows called on open")

    monkeypatch.setattr(ann, "plan_rows", no_plan)
    r = registry.open_retriever("kb", model=TableEmbedder(n), index=SPEC)
    q = TableEmbedder(n).table[:4]
    assert [h[0].doc_id for h in r.search_vectors(q, 3)] == [f"d{i:05d}.txt" for i in range(4)]
    with pytest.raises(IntegrityError):
        ann.decode_rowmap(registry.objects.get_bytes(row.meta["rowmap"])[:-1])


class _RemoteLike:
    """An object store that cannot hand out local files (like S3)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def local_path(self, digest):
        return None

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _cached_rows(registry, n: int, per_shard: int) -> tuple[np.ndarray, list[str], str]:
    x = clustered(n, DIM, seed=3)
    digests = [f"{i:064x}" for i in range(n)]
    model = "sha256:" + "cd" * 32
    cache = EmbeddingCache(registry.objects, registry.derived, model, DIM)
    for lo in range(0, n, per_shard):
        cache.add(digests[lo : lo + per_shard], x[lo : lo + per_shard])
    return x, digests, model


def test_vector_reader_reads_just_the_rows_asked_for_local_or_copied(registry, tmp_path):
    x, digests, model = _cached_rows(registry, 2000, 300)
    rows = ann.digests_array(digests)
    rng = np.random.default_rng(0)
    want = rng.choice(2000, size=150, replace=False).astype(np.int64)
    local = ann.VectorReader(ann.ExactSearch(registry.objects, registry.derived, model, DIM, rows))
    assert np.array_equal(local.get(want), x[want])
    assert local.get(np.zeros(0, dtype=np.int64)).shape == (0, DIM)
    spill = tmp_path / "spill"
    remote = _RemoteLike(registry.objects)
    reader = ann.VectorReader(ann.ExactSearch(remote, registry.derived, model, DIM, rows), spill)
    assert np.array_equal(reader.get(want), x[want])
    shards = {r.object_digest.removeprefix("sha256:") for r in registry.derived.list("embshard")}
    assert {p.name for p in spill.iterdir()} <= shards and len(list(spill.iterdir())) == 7
    local.close()
    reader.close()


def test_exact_search_blocks_shrink_with_many_queries(registry, monkeypatch):
    x, digests, model = _cached_rows(registry, 2500, 900)
    rows = ann.digests_array(digests)
    q = clustered(40, DIM, seed=4)
    search = ann.ExactSearch(registry.objects, registry.derived, model, DIM, rows)
    s1, i1 = search(q, 10)
    seen = []
    real = ann.iter_vectors

    def spy(objects, digest, positions, block=ann.BLOCK_ROWS):
        seen.append(block)
        return real(objects, digest, positions, block)

    monkeypatch.setattr(ann, "iter_vectors", spy)
    monkeypatch.setattr(ann, "SCORE_BUDGET", 40 * 4 * 300)  # 300 rows a block for 40 queries
    s2, i2 = search(q, 10)
    assert seen == [300] * 3 and np.array_equal(i1, i2) and np.allclose(s1, s2)
    want = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    assert np.array_equal(i2, want)


# ---- bad parameters: one line, exit 2, nothing written ----------------------------------------
@pytest.mark.parametrize(
    ("index", "expect"),
    [
        ('{"type":"ivfpq","nlist":64}', "index.nlist 64: cannot train a ivfpq index on 40 vectors"),
        ('{"type":"ivfpq","nlist":8,"m":7}', "index.m 7: must divide the embedding dimension 384"),
        ('{"type":"ivf_hnsw","nlist":8,"nbits":8}', "index.nbits 8: cannot train 256 PQ centroids"),
    ],
)
def test_untrainable_index_is_one_line_and_writes_nothing(
    cli, registry, tmp_path, genreg_home, index, expect
):
    _corpus(registry, tmp_path, 40)
    before = _objects(genreg_home)
    r = cli("corpus", "index", "kb", "--index", index)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0], r.output
    assert _objects(genreg_home) == before
    assert registry.derived.list("index") == [] and registry.derived.list("embshard") == []
    assert not (genreg_home / "cache" / "ann").exists()


@pytest.mark.parametrize(
    ("index", "expect"),
    [
        ("{type: ivfpq, nlist: 64}", "index.nlist 64: cannot train a ivfpq index on 40 vectors"),
        ("{type: ivfpq, nlist: 8, m: 7}", "index.m 7: must divide the embedding dimension 384"),
        (
            "{type: ivfpq, nlist: 8, refine: 99}",
            "index.refine: 99 is greater than the maximum of 64",
        ),
    ],
)
def test_untrainable_index_in_an_eval_config_names_file_and_line(
    cli, registry, tmp_path, genreg_home, index, expect
):
    _corpus(registry, tmp_path, 40)
    rows = [{"id": "q0", "query": "query 0", "relevant": ["d00000.txt"]}]
    registry.register_content("evalset", "gold", rows)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "name: bad\nevalset: evalset:gold\ncorpus: corpus:kb\nmetrics: [ndcg@10]\n"
        f"index: {index}\n",
        encoding="utf-8",
    )
    before = _objects(genreg_home)
    r = cli("eval", "run", cfg)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{cfg}:5" in lines[0] and expect in lines[0], r.output
    assert _objects(genreg_home) == before and registry.list_runs() == []
    assert registry.derived.list("index") == [] and registry.derived.list("embshard") == []


# ---- eval run: ann_recall@k apart from the metrics; runs compare shows it ---------------------
def _prefilled_eval(registry, tmp_path: Path, n: int, nq: int) -> tuple[np.ndarray, np.ndarray]:
    """A corpus and eval set whose chunk and query vectors are already cached for the default
    model (seeded synthetic vectors), so eval runs load no model."""
    _corpus(registry, tmp_path, n)
    emb = registry.load_embedder(None)
    x = clustered(n, emb.dim, seed=5)
    q = clustered(nq, emb.dim, seed=6)
    docs = list(iter_chunks(registry.iter_documents("corpus:kb@v1"), ChunkingSpec()))
    EmbeddingCache(registry.objects, registry.derived, emb.digest, emb.dim).add(
        [d.digest for d in docs], x[[int(d.text.split()[-1]) for d in docs]]
    )
    from genreg.retrieval.chunking import text_digest

    queries = [f"query {i}" for i in range(nq)]
    EmbeddingCache(registry.objects, registry.derived, emb.digest, emb.dim, kind=QUERY_KIND).add(
        [text_digest(t) for t in queries], q
    )
    rows = [
        {"id": f"q{i}", "query": t, "relevant": [f"d{i:05d}.txt"]} for i, t in enumerate(queries)
    ]
    registry.register_content("evalset", "gold", rows)
    return x, q


def test_eval_reports_ann_recall_apart_and_compare_shows_it(cli, registry, tmp_path):
    n, nq = 1500, 30
    x, q = _prefilled_eval(registry, tmp_path, n, nq)
    cfg = tmp_path / "ann.yaml"
    cfg.write_text(
        "name: ann\nevalset: evalset:gold\ncorpus: corpus:kb\nmetrics: [ndcg@10, recall@5]\n"
        "k: [5, 10]\n"
        "index: {type: ivfpq, nlist: 32, m: 16, nprobe: 2, train_size: 1500}\n",
        encoding="utf-8",
    )
    r = cli("eval", "run", cfg, "--json", "--quiet")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    ann_rep = out["report"]["ann"]
    assert set(out["metrics"]) == {"ndcg@10", "recall@5"}  # kept apart from the metrics
    assert ann_rep["index"] == "ivfpq" and ann_rep["queries"] == nq
    # hand-computed: exact top-k over the same vectors vs the documents the run retrieved
    run = registry.get_run(out["run_id"])
    results = {rq["id"]: rq for rq in registry.run_results(run.id)["queries"]}
    exact = np.argsort(-(q @ x.T), axis=1, kind="stable")
    for k in (5, 10):
        per = []
        for i in range(nq):
            got = [d for d, _ in results[f"q{i}"]["ranked"]][:k]
            want = {f"d{j:05d}.txt" for j in exact[i, :k]}
            per.append(len(want & set(got)) / k)
            assert results[f"q{i}"][f"ann_recall@{k}"] == pytest.approx(per[-1])
        assert ann_rep["recall"][f"ann_recall@{k}"] == pytest.approx(sum(per) / nq)
    assert 0.2 < ann_rep["recall"]["ann_recall@10"] < 1.0  # nprobe 2 of 32: a real ANN error
    assert run.lineage.index["train_sample"].startswith("sha256:")
    assert run.lineage.index_key == index_key(
        registry.resolve("corpus:kb").digest,
        registry.load_embedder(None).digest,
        ChunkingSpec(),
        IndexSpec.parse({"type": "ivfpq", "nlist": 32, "m": 16, "train_size": 1500}),
        run.lineage.index["train_sample"],
    )
    shown = cli("runs", "show", run.id)
    assert "ann recall (ivfpq index vs exact search" in shown.output.lower()
    # the same eval on a flat index: no ann figure; compare shows both sides
    flat = cli("eval", "run", cfg, "--json", "--quiet", "--set", "index=flat")
    flat_id = json.loads(flat.output)["run_id"]
    assert "ann" not in json.loads(flat.output)["report"]
    c = cli("runs", "compare", flat_id, run.id)
    assert c.exit_code == 0, c.output
    assert "ann recall (index vs exact search" in c.output
    assert f"ann_recall@10: -  ->  {ann_rep['recall']['ann_recall@10']:.4f}" in c.output
    cj = json.loads(cli("runs", "compare", flat_id, run.id, "--json").output)
    assert cj["ann_recall"]["ann_recall@5"] == {"a": None, "b": ann_rep["recall"]["ann_recall@5"]}


# ---- gc: index cache copies of objects no longer referenced ---------------------------------
def test_gc_reclaims_index_cache_copies_nothing_references(registry, tmp_path, genreg_home, cli):
    import os
    import subprocess

    n = 1200
    _corpus(registry, tmp_path, n)
    r = registry.open_retriever("kb", model=TableEmbedder(n), index=SPEC)
    root = genreg_home / "cache" / "ann"
    live = root / r.info.object_digest
    assert (live / ann.LISTS).exists() and (live / ann.LISTS).stat().st_nlink == 2
    # a copy of an index whose object is gone (e.g. another object store, a lost row)
    dead = root / ("ee" * 32)
    dead.mkdir()
    (dead / ann.TRUNK).write_bytes(b"x" * 1000)
    (dead / ann.LISTS).write_bytes(b"y" * 5000)
    # the temp dir of a killed materialisation, and one of a live process
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = root / f"{'ab' * 32}.tmp-{gone.pid}"
    killed.mkdir()
    (killed / ann.TRUNK).write_bytes(b"z" * 10)
    busy = root / f"{'ab' * 32}.tmp-{os.getpid()}"
    busy.mkdir()
    # spilled shard copies: one of a live cache shard, one of nothing
    shards = root / "shards"
    shards.mkdir()
    live_shard = registry.derived.list("embshard")[0].object_digest
    (shards / live_shard).write_bytes(b"s")
    (shards / ("dd" * 32)).write_bytes(b"s" * 300)
    stale = {str(dead), str(killed), str(shards / ("dd" * 32))}

    dry = registry.gc(dry_run=True, grace_seconds=0)
    assert {c["path"] for c in dry.caches} == stale
    assert sum(c["size"] for c in dry.caches) == 6000 + 10 + 300
    assert all(p.exists() for p in map(Path, stale))
    young = registry.gc(dry_run=False)  # default grace: all of them are recent, kept
    assert all(c["recent"] and not c["deleted"] for c in young.caches)
    out = cli("gc", "--delete", "--grace", "0")
    assert out.exit_code == 0, out.output
    assert f"cache {dead}" in out.output and "3 unneeded index cache entries, 3 stale" in out.output
    assert not any(p.exists() for p in map(Path, stale))
    assert live.exists() and busy.exists() and (shards / live_shard).exists()
    again = registry.open_retriever("kb", model=TableEmbedder(n), index=SPEC)
    assert [h[0].doc_id for h in again.search_vectors(TableEmbedder(n).table[:3], 1)] == [
        f"d{i:05d}.txt" for i in range(3)
    ]
    assert registry.gc(dry_run=True, grace_seconds=0).caches == []


def _mapped(path: Path) -> bool:
    """``path`` is memory-mapped into this process (Linux: /proc/self/maps)."""
    return str(path) in Path("/proc/self/maps").read_text(encoding="utf-8")


# ---- the compact row-id table, read per lookup ----------------------------------------------------
def test_rowids_round_trip_keeps_every_row_and_stores_each_document_once():
    from genreg.retrieval.rowids import RowIds, encode_rowids

    doc_ids = ["a", "a", "bé", "c/d", "a", "", "bé", "日本"]
    chunk_index = [0, 1, 0, 0, 2, 0, 1, 7]
    blob = encode_rowids(doc_ids, chunk_index)
    t = RowIds(blob)
    assert list(t.doc_ids) == doc_ids and list(t.chunk_index) == chunk_index
    assert t.n_docs == 5 and t.chunked and len(t.doc_ids) == 8
    assert t.doc_ids[-1] == "日本" and t.doc_ids[2:4] == ["bé", "c/d"]
    assert type(t.chunk_index[7]) is int and t.chunk_index[7] == 7
    with pytest.raises(IndexError):
        t.doc_ids[8]
    assert not RowIds(encode_rowids(["x", "y"], [0, 0])).chunked
    for bad in (blob[:-1], blob + b"\0", b"GRROWIDX" + blob[8:], blob[:10]):
        with pytest.raises(IntegrityError):
            RowIds(bad)
    with pytest.raises(ValueError):
        encode_rowids(["a"], [2**31])


class HashEmbedder(TableEmbedder):
    """Any text -> a fixed vector of the table chosen by the text's sha256."""

    def encode(self, texts, batch_size=32, *, progress=None):
        import hashlib

        self.encoded += len(texts)
        pick = [
            int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) % len(self.table) for t in texts
        ]
        return self.table[pick]


def _chunked_corpus(registry, tmp_path: Path, n: int) -> None:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for i in range(n):
        words = " ".join(f"w{i}x{j}" for j in range(2 + i % 4))
        (src / f"d{i:04d}.txt").write_text(words, encoding="utf-8")
    registry.snapshot("kb", src)


CHUNKS = {"by": "chars", "size": 12, "overlap": 0}


def test_ondisk_index_reads_its_row_ids_per_lookup_not_as_lists(registry, tmp_path):
    from genreg.retrieval.index import decode_envelope
    from genreg.retrieval.rowids import DocIds, open_rowids

    _chunked_corpus(registry, tmp_path, 300)
    spec = {**SPEC, "nlist": 8}
    info = registry.build_index("kb", model=HashEmbedder(500), chunking=CHUNKS, index=spec)
    meta, _ = decode_envelope(registry.objects.get_bytes(info.object_digest))
    assert "doc_ids" not in meta and "chunk_index" not in meta  # no per-row JSON in the meta
    assert registry.derived.get(info.key).meta["rowids"] == meta["rowids"]
    r = registry.open_retriever("kb", model=HashEmbedder(500), chunking=CHUNKS, index=spec)
    assert isinstance(r.doc_ids, DocIds) and not isinstance(r.doc_ids, list)
    table = r.doc_ids.table
    assert table.src.path == registry.objects.local_path(meta["rowids"])  # read from the file
    assert list(r.doc_ids[:3]) and not _mapped(table.src.path)  # by pread: no pages mapped
    assert r.chunked and len(r) == info.n_chunks > 300
    docs = list(iter_chunks(registry.iter_documents("corpus:kb@v1"), ChunkingSpec.parse(CHUNKS)))
    assert list(r.doc_ids) == [c.doc_id for c in docs]
    assert list(r.chunk_index) == [c.chunk_index for c in docs]
    remote = open_rowids(_RemoteLike(registry.objects), meta["rowids"], tmp_path / "spill")
    assert list(remote.doc_ids) == list(r.doc_ids)  # no local object file: a verified copy
    assert (tmp_path / "spill" / meta["rowids"].removeprefix("sha256:")).exists()


def test_dropped_row_id_tables_close_their_files_without_the_cycle_collector(registry, tmp_path):
    """A table holds an open file; dropping the last reference closes it at once (no
    reference cycle between the table and its columns), so a server opening a retriever per
    request does not pile up descriptors until Python's cyclic gc runs."""
    import gc
    import os

    from genreg.retrieval.index import decode_envelope
    from genreg.retrieval.rowids import open_rowids

    _chunked_corpus(registry, tmp_path, 300)
    spec = {**SPEC, "nlist": 8}
    info = registry.build_index("kb", model=HashEmbedder(500), chunking=CHUNKS, index=spec)
    meta, _ = decode_envelope(registry.objects.get_bytes(info.object_digest))
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    gc.collect()
    gc.disable()
    try:
        before = fds()
        for _ in range(50):
            t = open_rowids(registry.objects, meta["rowids"], tmp_path / "spill")
            docs, chunks = t.doc_ids, t.chunk_index
            assert docs[0] and chunks[0] == 0
            del t, docs, chunks
        assert fds() == before
    finally:
        gc.enable()


def test_old_indexes_with_json_row_ids_still_open_and_search_identically(
    registry, tmp_path, monkeypatch
):
    """An index stored before the row-id table (doc_ids / chunk_index lists in its meta)
    opens through the JSON path and returns exactly the hits of the new format."""
    from genreg import Registry
    from genreg.retrieval import index as index_mod
    from genreg.retrieval.rowids import RowIds

    spec = {**SPEC, "nlist": 8}
    q = clustered(40, DIM, seed=21)
    found = []
    for old in (False, True):
        home = tmp_path / f"home-{old}"
        reg = Registry.init(home)
        _chunked_corpus(reg, tmp_path, 300)
        if old:  # write the meta exactly as genreg did before: lists, no "rowids"
            real = index_mod.encode_envelope

            def old_envelope(faiss_bytes, meta, reg=reg, real=real):
                meta = dict(meta)
                t = RowIds(reg.objects.get_bytes(meta.pop("rowids")))
                meta["doc_ids"], meta["chunk_index"] = list(t.doc_ids), list(t.chunk_index)
                return real(faiss_bytes, meta)

            monkeypatch.setattr(index_mod, "encode_envelope", old_envelope)
        kw = {"model": HashEmbedder(500), "chunking": CHUNKS, "index": spec}
        info = reg.build_index("kb", **kw)
        meta, _ = index_mod.decode_envelope(reg.objects.get_bytes(info.object_digest))
        assert ("doc_ids" in meta) == old and ("rowids" in meta) != old
        r = reg.open_retriever("kb", **kw)
        assert isinstance(r.doc_ids, list) == old and r.chunked
        hits = r.search_vectors(q, 5) + r.exact_search_vectors(q, 5)
        found.append([[(h.doc_id, h.chunk_index, h.score) for h in qh] for qh in hits])
        assert all(len(qh) == 5 for qh in hits)
        reg.close()
    assert found[0] == found[1]


# ---- the chunk texts: a compact table, read per row ---------------------------------------------

TEXTS = [
    "",
    "plain",
    "naïve café — 東京 🚀",
    "a\u2028b\u2029c\nd\r\n",
    "",
    '"{json}"\\',
    "x" * 5000,
]


def test_text_table_round_trips_unicode_empty_and_line_separators():
    from genreg.retrieval.texttable import TextTable, encode_texts

    blob = encode_texts(TEXTS)
    t = TextTable(blob)
    assert len(t) == len(TEXTS) and list(t) == TEXTS and t[-1] == TEXTS[-1] and t[1:4] == TEXTS[1:4]
    assert t[3] == "a\u2028b\u2029c\nd\r\n"  # U+2028 kept inside its text, not a row break
    assert list(TextTable(encode_texts([]))) == []
    with pytest.raises(IndexError):
        t[len(TEXTS)]
    for bad in (blob[:-1], blob + b"\0", b"GRROWIDS" + blob[8:], blob[:10]):
        with pytest.raises(IntegrityError):
            TextTable(bad)


def _text_corpus(registry, tmp_path: Path, n: int) -> list[str]:
    src = tmp_path / "tsrc"
    src.mkdir(exist_ok=True)
    texts = []
    for i in range(n):
        t = f"doc {i} {TEXTS[i % len(TEXTS)][:40]} \u2028 end {i}"
        (src / f"d{i:04d}.txt").write_text(t, encoding="utf-8", newline="")
        texts.append(t)
    registry.snapshot("kb", src)
    return texts


def test_ondisk_index_reads_chunk_texts_per_hit_from_a_table(
    registry, tmp_path, genreg_home, monkeypatch
):
    """New on-disk indexes store their chunk texts as one table object (no JSON list):
    nothing is read until a text is asked for, then only the hits' rows are decoded; a store
    without local files gets a verified copy once."""
    from genreg.retrieval import texttable
    from genreg.retrieval.index import decode_envelope

    _text_corpus(registry, tmp_path, 300)
    spec = {**SPEC, "nlist": 8}
    kw = {"model": HashEmbedder(500), "chunking": "none", "index": spec}
    info = registry.build_index("kb", **kw)
    meta, _ = decode_envelope(registry.objects.get_bytes(info.object_digest))
    assert (
        "texts" not in meta
        and registry.derived.get(info.key).meta["text_table"] == (meta["text_table"])
    )
    decoded: list[int] = []
    real_one = texttable.TextTable._one
    monkeypatch.setattr(
        texttable.TextTable, "_one", lambda self, row: decoded.append(row) or real_one(self, row)
    )
    r = registry.open_retriever("kb", **kw)
    assert r._texts is None  # opening reads no text at all
    q = clustered(6, DIM, seed=5)
    hits = r.search_vectors(q, 3, with_text=True)
    table = r._texts
    assert isinstance(table, texttable.TextTable) and not isinstance(table, list)
    assert table.src.path == registry.objects.local_path(meta["text_table"])
    assert not _mapped(table.src.path)  # texts read by pread: nothing memory-mapped
    assert len(decoded) == sum(len(h) for h in hits) <= 18  # the hits' rows, nothing else
    docs = {d.doc_id: d.embed_text() for d in registry.iter_documents("corpus:kb@v1")}
    assert all(h.text == docs[h.doc_id] for qh in hits for h in qh)
    remote = texttable.open_texts(
        _RemoteLike(registry.objects), meta["text_table"], tmp_path / "sp"
    )
    assert list(remote) == [docs[d] for d in r.doc_ids]  # verified copy, same texts
    assert (tmp_path / "sp" / meta["text_table"].removeprefix("sha256:")).exists()
    # gc keeps the table alive (named by the index row's meta) and snippets still read; of
    # the local copies of remote tables it reclaims only those of unreferenced objects
    spill = genreg_home / "cache" / "ann" / "texts"
    spill.mkdir(parents=True)
    (spill / meta["text_table"].removeprefix("sha256:")).write_bytes(b"live")
    (spill / ("cc" * 32)).write_bytes(b"stale")
    out = registry.gc(dry_run=False, grace_seconds=0)
    assert registry.objects.has(meta["text_table"])
    assert [c["path"] for c in out.caches] == [str(spill / ("cc" * 32))]
    assert (spill / meta["text_table"].removeprefix("sha256:")).exists()
    assert not (spill / ("cc" * 32)).exists()
    again = registry.open_retriever("kb", **kw).search_vectors(q, 3, with_text=True)
    assert [[h.text for h in qh] for qh in again] == [[h.text for h in qh] for qh in hits]


def test_old_index_with_json_texts_gives_identical_snippets_and_contexts(
    registry, tmp_path, monkeypatch
):
    """An on-disk index stored before the table (``meta["texts"]``: a JSON list) opens through
    the JSON path; hits, snippets and the generation stage's rendered context are identical."""
    from types import SimpleNamespace

    from genreg import Registry
    from genreg.core.hashing import canonical_json
    from genreg.generation.stage import context_of
    from genreg.retrieval import index as index_mod
    from genreg.retrieval.texttable import TextTable

    spec = {**SPEC, "nlist": 8}
    q = clustered(20, DIM, seed=9)
    found, contexts = [], []
    for old in (False, True):
        reg = Registry.init(tmp_path / f"h-{old}")
        _text_corpus(reg, tmp_path, 300)
        if old:  # the meta exactly as genreg wrote it before: a JSON list under "texts"
            real = index_mod.encode_envelope

            def old_envelope(faiss_bytes, meta, reg=reg, real=real):
                meta = dict(meta)
                t = TextTable(reg.objects.get_bytes(meta.pop("text_table")))
                meta["texts"] = reg.objects.put_bytes(canonical_json(list(t)))
                return real(faiss_bytes, meta)

            monkeypatch.setattr(index_mod, "encode_envelope", old_envelope)
        kw = {"model": HashEmbedder(500), "chunking": "none", "index": spec}
        info = reg.build_index("kb", **kw)
        meta, _ = index_mod.decode_envelope(reg.objects.get_bytes(info.object_digest))
        assert ("texts" in meta) == old and ("text_table" in meta) != old
        r = reg.open_retriever("kb", **kw)
        hits = r.search_vectors(q, 3, with_text=True)
        assert isinstance(r._texts, list) == old
        found.append([[(h.doc_id, h.chunk_index, h.score, h.text) for h in qh] for qh in hits])
        s = {"context_k": 3, "context_chars": 2000}
        contexts.append([context_of(SimpleNamespace(hits=qh), s) for qh in hits])
        reg.close()
        monkeypatch.undo()
    assert found[0] == found[1] and contexts[0] == contexts[1]
    assert all("\u2028" in c for c in contexts[0])  # the separator survives into the prompt
