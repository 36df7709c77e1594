"""Model identity digests and the sharded embedding cache (what gets re-embedded, and what not)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from genreg.errors import IntegrityError, NotFound
from genreg.retrieval import embedders
from genreg.retrieval.cache import EmbeddingCache, decode_shard, encode_shard
from genreg.retrieval.chunking import text_digest
from genreg.retrieval.embedders import DEFAULT_MODEL, load_embedder, model_digest
from retrieval_helpers import HashEmbedder


def _fake_model(root: Path, weights: bytes = b"\x00\x01weights") -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 4}')
    (root / "model.safetensors").write_bytes(weights)
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 4}')
    (root / "README.md").write_text("docs")
    return root


def test_model_digest_is_content_based_and_ignores_docs(tmp_path):
    a = _fake_model(tmp_path / "a")
    d = model_digest(a)
    assert d.startswith("sha256:") and len(d) == 71
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert model_digest(b) == d
    (b / "README.md").write_text("other docs")
    assert model_digest(b) == d
    c = _fake_model(tmp_path / "c", weights=b"\x00\x02weights")
    assert model_digest(c) != d


def test_model_digest_is_cached_per_path_and_mtime(tmp_path, monkeypatch):
    model = _fake_model(tmp_path / "m")
    cache = tmp_path / "cache"
    hashed: list[Path] = []
    real = embedders._file_sha256
    monkeypatch.setattr(embedders, "_file_sha256", lambda p: hashed.append(p) or real(p))
    first = model_digest(model, cache)
    assert len(hashed) == 3
    assert model_digest(model, cache) == first
    assert len(hashed) == 3  # not re-hashed
    (model / "model.safetensors").write_bytes(b"new weights")
    assert model_digest(model, cache) != first
    assert len(hashed) == 6


def test_default_model_resolves_offline_with_a_stable_identity():
    e1, e2 = load_embedder(None), load_embedder(DEFAULT_MODEL)
    assert e1.name == e2.name == DEFAULT_MODEL
    assert e1.digest == e2.digest
    assert e1.dim == 384


def test_unknown_model_is_not_found_without_downloading():
    with pytest.raises(NotFound):
        load_embedder("no-such-org/no-such-model-xyz")
    with pytest.raises(NotFound):
        load_embedder("./missing-model-dir")


def test_shard_round_trip_and_corruption_detected():
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    ds = [text_digest(t) for t in ("a", "b", "c")]
    data = encode_shard(ds, vecs)
    got_d, got_v = decode_shard(data)
    assert [d.hex() for d in got_d] == ds
    assert np.array_equal(got_v, vecs)
    with pytest.raises(IntegrityError):
        decode_shard(data[:-4])


def test_cache_persists_as_one_row_per_shard(registry):
    emb = HashEmbedder(16)
    texts = [f"text number {i}" for i in range(10)]
    ds = [text_digest(t) for t in texts]
    cache = EmbeddingCache(registry.objects, registry.derived, emb.digest, emb.dim)
    assert cache.missing(ds + ds[:3]) == ds
    cache.add(ds[:6], emb.encode(texts[:6]))
    reopened = EmbeddingCache(registry.objects, registry.derived, emb.digest, emb.dim)
    assert reopened.missing(ds) == ds[6:]
    reopened.add(ds[6:], emb.encode(texts[6:]))
    rows = registry.derived.list("embshard", scope=emb.digest)
    assert [r.meta for r in rows] == [{"count": 6, "dim": 16}, {"count": 4, "dim": 16}]
    assert np.allclose(reopened.matrix(ds[::-1]), emb.encode(texts[::-1]))
    other = EmbeddingCache(registry.objects, registry.derived, HashEmbedder(16, "v2").digest, 16)
    assert other.missing(ds) == ds  # keyed by model digest too


# ---- through the service: only changed chunks are embedded ----------------------------------
def _corpus_dir(root: Path, n: int, changed: set[int] = frozenset(), words: int = 30) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = f"doc {i} " + " ".join(f"w{(i * 7 + j) % 101}" for j in range(words))
        if i in changed:
            body = body[: len(body) // 2] + " edited tail " + str(i)
        (root / f"doc{i:04d}.txt").write_text(body, encoding="utf-8")
    return root


def test_one_percent_change_embeds_exactly_the_changed_documents(registry, tmp_path):
    emb = HashEmbedder(32)
    registry.snapshot("docs", _corpus_dir(tmp_path / "v1", 200))
    first = registry.build_index("corpus:docs", model=emb)
    assert (first.embedded, emb.encoded, first.n_docs) == (200, 200, 200)
    registry.snapshot("docs", _corpus_dir(tmp_path / "v2", 200, changed={3, 150}))
    second = registry.build_index("corpus:docs", model=emb)
    assert second.corpus_version == 2 and not second.reused
    assert second.embedded == 2 and emb.encoded == 202


def test_one_percent_change_embeds_exactly_the_changed_chunks(registry, tmp_path):
    from genreg.retrieval.chunking import ChunkingSpec, iter_chunks

    emb = HashEmbedder(32)
    spec = "chars:60:20"
    registry.snapshot("docs", _corpus_dir(tmp_path / "v1", 100, words=40))
    first = registry.build_index("docs", model=emb, chunking=spec)
    assert first.n_chunks > first.n_docs == 100
    registry.snapshot("docs", _corpus_dir(tmp_path / "v2", 100, changed={42}, words=40))
    before = {
        c.digest
        for c in iter_chunks(registry.iter_documents("corpus:docs@v1"), ChunkingSpec.parse(spec))
    }
    after = {
        c.digest
        for c in iter_chunks(registry.iter_documents("corpus:docs@v2"), ChunkingSpec.parse(spec))
    }
    new = len(after - before)
    assert 0 < new < first.n_chunks // 10
    calls = emb.encoded
    second = registry.build_index("docs", model=emb, chunking=spec)
    assert second.embedded == new == emb.encoded - calls
