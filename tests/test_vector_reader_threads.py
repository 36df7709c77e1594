"""``VectorReader`` (the refine stage's vector reads) shared by threads, as a retriever from
``Registry.open_retriever`` is in the API server: with more cache shards than open files
allowed, concurrent searches return exactly the sequential results (an evicted file is never
closed under a thread still reading it, so no read lands on a reused fd of another shard)."""

from __future__ import annotations

import threading

import numpy as np

from genreg.retrieval import ann
from genreg.retrieval.cache import EmbeddingCache

DIM = 16
N, PER_SHARD = 1200, 20  # 60 shards


def _rows(registry) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    digests = [f"{i:064x}" for i in range(N)]
    model = "sha256:" + "ef" * 32
    cache = EmbeddingCache(registry.objects, registry.derived, model, DIM)
    for lo in range(0, N, PER_SHARD):
        cache.add(digests[lo : lo + PER_SHARD], x[lo : lo + PER_SHARD])
    return x, ann.digests_array(digests), model


def test_concurrent_refined_searches_equal_sequential(registry, monkeypatch):
    import faiss

    monkeypatch.setattr(ann.VectorReader, "MAX_OPEN", 3)
    x, rows, model = _rows(registry)
    exact = ann.ExactSearch(registry.objects, registry.derived, model, DIM, rows)
    reader = ann.VectorReader(exact)
    assert len(exact.plan().shards) == N // PER_SHARD > reader.capacity() == 3
    flat = faiss.IndexFlatIP(DIM)
    flat.add(x)
    index = ann.Refined(flat, reader, k_factor=8)
    queries = np.random.default_rng(8).standard_normal((48, DIM)).astype(np.float32)
    want = [index.search(q[None], 5) for q in queries]
    assert all(np.allclose(s, x[i] @ q) for (s, i), q in zip(want, queries, strict=True))

    errors: list[str] = []
    start = threading.Barrier(6)

    def run(t: int) -> None:
        start.wait()
        for rep in range(3):
            for j in range(t + rep, len(queries) + t + rep):
                j %= len(queries)
                try:
                    s, i = index.search(queries[j][None], 5)
                except Exception as exc:  # EBADF from a closed fd, ...
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                if not (np.array_equal(i, want[j][1]) and np.array_equal(s, want[j][0])):
                    errors.append(f"thread {t} query {j}: {i} != {want[j][1]}")

    threads = [threading.Thread(target=run, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    reader.close()
    assert not errors, errors[:3]


def test_open_file_cache_adapts_to_the_shard_count(registry, monkeypatch):
    _, rows, model = _rows(registry)
    reader = ann.VectorReader(ann.ExactSearch(registry.objects, registry.derived, model, DIM, rows))
    assert reader.capacity() == N // PER_SHARD  # all 60 shards fit the fd budget: no eviction
    reader.get(np.arange(N, dtype=np.int64))
    assert reader.open_files() == N // PER_SHARD
    monkeypatch.setattr(ann, "_fd_budget", lambda: 8)  # a low ulimit -n: bounded by it
    assert reader.capacity() == 8
    reader.close()
    assert reader.open_files() == 0
