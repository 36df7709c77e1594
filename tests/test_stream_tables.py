"""The on-disk (``ivfpq`` / ``ivf_hnsw``) index build streams its rows: one pass over the
chunks writes the chunk-text table (text to a side file), the row-id table and the digests,
with no Python object per chunk; the missing chunks are embedded one planned block at a time
(:mod:`genreg.retrieval.blocks`, the Ray engine's blocks), read back from the table.

- the streaming writers give byte for byte the tables of the format's reference encoders
  (the whole-list code genreg used before, kept here as the oracle): empty texts, any code
  point (U+2028), a document with many chunks, zero rows, and a document id that comes back
  after another document (renumbered as first appearance);
- an ivfpq index built by the streaming path stores exactly those tables (the index object
  is the same for the same corpus), embeds one encode call per planned block and writes
  cache shards of at most ``SHARD_MAX`` vectors (whole blocks), never going through the
  flat build's per-chunk lists;
- the Ray engine's row blocks for an on-disk build are the blocks :func:`plan_blocks` plans
  (longest first, ties in first-seen order).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genreg.retrieval.blocks import plan_blocks
from genreg.retrieval.chunking import ChunkingSpec, iter_chunks
from genreg.retrieval.rowids import RowIds, RowIdsWriter, encode_rowids
from genreg.retrieval.texttable import TextTable, TextTableWriter, encode_texts
from test_ann_index import TEXTS  # empty, non-ASCII, U+2028, quotes, a long one


# ---- the format's reference encoders (whole lists in memory: genreg's code before) -----------
def oracle_texts(texts: list[str]) -> bytes:
    blobs = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(blobs) + 1, dtype="<u8")
    if blobs:
        np.cumsum([len(b) for b in blobs], out=offsets[1:])
    body = b"".join(blobs)
    return struct.pack("<8sQQ", b"GRTEXTS1", len(blobs), len(body)) + offsets.tobytes() + body


def oracle_rowids(doc_ids: list[str], chunk_index: list[int]) -> bytes:
    n = len(doc_ids)
    number: dict[str, int] = {}
    doc_of = np.fromiter((number.setdefault(d, len(number)) for d in doc_ids), dtype="<i4", count=n)
    chunks = np.asarray(chunk_index, dtype=np.int64)
    names = [d.encode("utf-8") for d in number]
    offsets = np.zeros(len(names) + 1, dtype="<u8")
    np.cumsum([len(b) for b in names], out=offsets[1:])
    blob = b"".join(names)
    head = struct.pack("<8sQQQ", b"GRROWIDS", n, len(names), len(blob))
    return head + doc_of.tobytes() + chunks.astype("<i4").tobytes() + offsets.tobytes() + blob


@pytest.mark.parametrize(
    "texts", [TEXTS, [], [""], ["\u2028"] * 3, [f"t{i} é" * (i % 7) for i in range(3000)]]
)
def test_text_table_writer_is_byte_identical_in_memory_and_from_its_side_file(
    texts: list[str], tmp_path: Path
) -> None:
    want = oracle_texts(texts)
    assert encode_texts(texts) == want
    w = TextTableWriter(tmp_path / "texts.part")
    for t in texts:
        w.add(t)
    # small blocks: the offsets and the side file are read back in several pieces
    assert b"".join(w.chunks(block=64)) == want
    assert b"".join(w.chunks()) == want  # as often as needed (a re-put after a gc)
    assert len(w) == len(texts) and w.size == len(want) - 24 - 8 * (len(texts) + 1)
    rows = list(range(len(texts)))[::-1]
    assert w.texts(rows) == [texts[r] for r in rows]  # rows read back from the side file
    assert list(TextTable(want)) == texts
    w.close()


ROWS = [
    (["a", "a", "bé", "c/d", "", "日本", "日本"], [0, 1, 0, 0, 0, 0, 1]),
    (["one"] * 5000, list(range(5000))),  # a document with many chunks
    ([], []),
    (["x", "y"], [0, 0]),
    # an id that comes back after another document: still numbered on first appearance
    (["a", "a", "bé", "c/d", "a", "", "bé", "日本"], [0, 1, 0, 0, 2, 0, 1, 7]),
    ([f"d{i % 50}" for i in range(400)], [i // 50 for i in range(400)]),
]


@pytest.mark.parametrize(("doc_ids", "chunk_index"), ROWS)
def test_rowids_writer_is_byte_identical_to_the_reference(
    doc_ids: list[str], chunk_index: list[int]
) -> None:
    want = oracle_rowids(doc_ids, chunk_index)
    assert encode_rowids(doc_ids, chunk_index) == want
    w = RowIdsWriter()
    for d, c in zip(doc_ids, chunk_index, strict=True):
        w.add(d, c)
    assert b"".join(w.chunks()) == want
    assert b"".join(w.chunks()) == want
    t = RowIds(want)
    assert list(t.doc_ids) == doc_ids and list(t.chunk_index) == chunk_index


def test_rowids_writer_tells_a_hash_collision_from_a_repeated_id(monkeypatch) -> None:
    """Every document id hashed alike: the check falls back to comparing the ids, which are
    distinct, so the numbering stays (and still matches the reference)."""
    real = hashlib.blake2b
    monkeypatch.setattr(hashlib, "blake2b", lambda data, digest_size: real(b"", digest_size=8))
    doc_ids, chunk_index = ["a", "a", "b", "c", "c"], [0, 1, 0, 0, 1]
    w = RowIdsWriter()
    for d, c in zip(doc_ids, chunk_index, strict=True):
        w.add(d, c)
    assert b"".join(w.chunks()) == oracle_rowids(doc_ids, chunk_index)
    with pytest.raises(ValueError):
        RowIdsWriter().add("a", 2**31)


# ---- the streaming ivfpq build -----------------------------------------------------------------
class ShaEmbedder:
    """Any text -> its sha256 bytes as a normalised 32-d vector; records each call's size."""

    tokenizer = None

    def __init__(self) -> None:
        self.name, self.dim, self.digest = "sha-32", 32, "sha256:" + "cd" * 32
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
        self.calls.append(list(texts))
        out = np.stack(
            [np.frombuffer(hashlib.sha256(t.encode()).digest(), np.uint8) for t in texts]
        ).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


CHUNKS = {"by": "chars", "size": 20, "overlap": 4}
SPEC = {"type": "ivfpq", "nlist": 16, "m": 8, "nprobe": 4, "train_size": 1000}


def _corpus(registry: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(1500):  # repeated texts (doc i % 1200), non-ASCII, U+2028
        t = f"doc {i % 1200} naïve \u2028 東京 " + " ".join(
            f"w{i % 37}x{j}" for j in range(3 + i % 9)
        )
        (src / f"d{i:05d}.txt").write_text(t, encoding="utf-8", newline="")
    registry.snapshot("kb", src)


def test_streaming_ivfpq_build_stores_the_reference_tables_embedding_planned_blocks(
    registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genreg.retrieval import cache as cache_mod
    from genreg.retrieval.cache import EmbeddingCache
    from genreg.retrieval.index import decode_envelope
    from genreg.service import indexing

    _corpus(registry, tmp_path)

    def no_lists(*a: Any, **k: Any) -> Any:
        raise AssertionError("the on-disk build must not collect the chunks as lists")

    monkeypatch.setattr(indexing, "_chunk_rows", no_lists)
    monkeypatch.setattr(cache_mod, "SHARD_MAX", 700)
    emb = ShaEmbedder()
    info = registry.build_index("kb", model=emb, chunking=CHUNKS, index=SPEC, batch_size=8)

    chunks = list(iter_chunks(registry.iter_documents("kb"), ChunkingSpec.parse(CHUNKS)))
    texts = [c.text for c in chunks]
    distinct = list(dict.fromkeys(texts))  # first-seen order
    assert info.n_chunks == len(chunks) and info.embedded == len(distinct) > 1400
    # one encode call per planned block (8 x 32 texts, longest first), each text once
    digests = [c.digest for c in chunks]
    planned = plan_blocks(digests, texts, set(digests), 8 * 32)
    assert emb.calls == [b["texts"] for b in planned] and len(planned) > 2
    assert sorted(t for c in emb.calls for t in c) == sorted(distinct)
    # cache shards of at most SHARD_MAX vectors, each whole blocks (here 2 blocks of 256)
    shards = registry.derived.list("embshard", scope=emb.digest)
    sizes = sorted((int(r.meta["count"]) for r in shards), reverse=True)
    assert sizes[:-1] == [512] * (len(sizes) - 1) and 0 < sizes[-1] <= 512
    # the cache holds each chunk's own vector
    vecs = EmbeddingCache(registry.objects, registry.derived, emb.digest, 32).matrix(
        [c.digest for c in chunks]
    )
    assert np.array_equal(vecs, ShaEmbedder().encode(texts))
    # the stored tables are the reference encoders' bytes for the same rows
    meta, _ = decode_envelope(registry.objects.get_bytes(info.object_digest))
    get = registry.objects.get_bytes
    assert get(meta["text_table"]) == oracle_texts(texts)
    assert get(meta["rowids"]) == oracle_rowids(
        [c.doc_id for c in chunks], [c.chunk_index for c in chunks]
    )
    assert get(meta["digests"]) == bytes.fromhex("".join(c.digest for c in chunks))
    row = registry.derived.get(info.key)
    assert row.meta["n_docs"] == 1500 and row.meta["text_table"] == meta["text_table"]
    assert not list((registry.settings.home / "cache" / "tmp").iterdir())  # workdir removed
    r = registry.open_retriever("kb", model=ShaEmbedder(), chunking=CHUNKS, index=SPEC)
    hit = r.search_vectors(ShaEmbedder().encode([texts[7]]), 1)[0][0]
    assert (hit.doc_id, hit.chunk_index) == (chunks[7].doc_id, chunks[7].chunk_index)


def test_a_gc_hiding_the_streamed_tables_before_the_commit_gets_them_rewritten(
    registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a concurrent gc hid between the put and the index row is put again from the
    build's files (the text table from its side file, before the workdir goes)."""
    _corpus(registry, tmp_path)
    real = registry.derived.put
    hidden: list[str] = []

    def put(**kw: Any) -> Any:
        if kw["kind"] == "index":
            for name in ("text_table", "rowids", "digests", "lists"):
                assert registry.objects.hide(kw["meta"][name])
                hidden.append(kw["meta"][name])
        return real(**kw)

    monkeypatch.setattr(registry.derived, "put", put)
    info = registry.build_index("kb", model=ShaEmbedder(), chunking=CHUNKS, index=SPEC)
    assert len(hidden) == 4 and all(registry.objects.has(d) for d in hidden)
    r = registry.open_retriever("kb", model=ShaEmbedder(), chunking=CHUNKS, index=SPEC)
    assert len(r) == info.n_chunks
    hit = r.search_vectors(ShaEmbedder().encode(["doc 3 naïve"]), 1, with_text=True)[0][0]
    assert hit.text  # read from the re-put text table


@pytest.mark.parametrize("share", [1.0, 0.3])
def test_ray_row_blocks_are_the_planned_blocks(share: float) -> None:
    """All missing, or some cached (a re-run after a killed job): the same blocks as
    plan_blocks, each with only its missing chunks."""
    from genreg.retrieval.blocks import row_blocks

    rng = np.random.default_rng(3)
    texts = [f"t{i} " + "x" * int(rng.integers(0, 9)) for i in range(1000)]
    rows = np.sort(rng.choice(5000, size=1000, replace=False))
    missing = rng.random(1000) < share
    digests = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    want = {d for d, m in zip(digests, missing, strict=True) if m}
    planned = plan_blocks(digests, texts, want, 64)
    order, ranges = row_blocks(rows, [len(t) for t in texts], missing, 64)
    at = {int(r): i for i, r in enumerate(rows)}
    got = [
        {"block": b["block"], "texts": [texts[at[int(r)]] for r in order[b["lo"] : b["hi"]]]}
        for b in ranges
    ]
    assert got == [{"block": p["block"], "texts": p["texts"]} for p in planned]
    assert len(order) == int(missing.sum()) and order.dtype == np.int64


def test_rowids_writer_catches_a_repeated_id_added_after_a_renumbering() -> None:
    """``chunks()`` renumbers a table whose ids came back; rows added afterwards are checked
    again (the ids' real hashes are kept, not placeholders)."""
    from genreg.retrieval.rowids import RowIdsWriter, encode_rowids

    w = RowIdsWriter()
    for d, c in (("a", 0), ("b", 0), ("a", 1)):
        w.add(d, c)
    assert b"".join(w.chunks()) == encode_rowids(["a", "b", "a"], [0, 0, 1])
    w.add("b", 1)
    w.add("a", 2)
    assert b"".join(w.chunks()) == encode_rowids(["a", "b", "a", "b", "a"], [0, 0, 1, 1, 2])
