"""Compressed on-disk FAISS indexes for large corpora: ``ivfpq`` and ``ivf_hnsw``.

Both are an IVF index with product-quantised codes (``m`` sub-quantizers of ``nbits`` bits per
vector, plus an 8-byte id); ``ivf_hnsw`` finds the ``nprobe`` nearest lists with an HNSW graph
over the ``nlist`` centroids instead of a flat scan (what FAISS recommends past ~1M vectors,
where nlist grows to 2^16 and more).

**Training sample.** ``train_size`` rows (all rows when there are fewer) drawn without
replacement by ``numpy.random.default_rng(seed)`` from the index's rows, in row order. The
sample is recorded as one object -- the 32-byte sha256 of each sampled chunk text, in order --
and its digest (:func:`sample_digest`) is part of the index key and of the run's lineage
(``index.train_sample``): the model digest plus those text digests determine the training
vectors exactly.

**Build, streaming.** Nothing holds all vectors at once. A digest-only pass over the model's
embedding-cache shards (:func:`plan_rows`) finds which shard holds each row's vector; rows are
then grouped by shard into *units* of about :data:`UNIT_ROWS` rows (the grouping depends only
on the shards, never on the number of workers), each unit is added (``add_with_ids``, row
number as id, :data:`BLOCK_ROWS` vectors at a time read straight from the shard file) to a
copy of the trained empty index and written as a shard index file -- in this process, in
``workers`` local processes, or as Ray tasks (``engine=ray``:
:func:`genreg.retrieval.ray_engine.build_units`, each task reading its cache shards from the
object store and returning its unit file to the driver) -- and the shards are merged, in unit
order, into FAISS on-disk inverted lists
(``faiss.contrib.ondisk.merge_ondisk``). The result is two files: ``index.faiss`` (centroids,
PQ codebooks, list offsets: small; it names its lists file by bare name, so it depends on
the content alone) and ``lists.ivfdata`` (codes + ids: n x (m + 8) bytes): byte-identical
whichever built the units.

**Search without loading the index.** :func:`open_ondisk` reads ``index.faiss`` with
``IO_FLAG_ONDISK_SAME_DIR | IO_FLAG_READ_ONLY``: the inverted lists stay in ``lists.ivfdata``,
memory-mapped read-only, and only the lists a query probes are paged in.

**Refine** (:class:`Refined`, the ``refine`` search-time parameter, default 16): the PQ codes
only approximate each vector, so on large corpora recall@10 against exact search levels off
whatever ``nprobe``. With ``refine: R`` the index returns ``R x k``
candidates and they are re-ranked by the exact inner product with their float vectors, read
from the embedding-cache shard files by positional reads of just those rows
(:class:`VectorReader`; no memory map, and at most :data:`REFINE_ROWS` candidate vectors are
held at a time, queries taken in blocks). The scores returned are then exact
cosine similarities. ``refine: 0`` searches the codes alone.

**Exact search from the cache** (:class:`ExactSearch`): the same rows searched exhaustively,
streaming the cached vectors shard by shard in blocks of at most :data:`BLOCK_ROWS` rows (fewer
when there are many queries: the block's score matrix stays under :data:`SCORE_BUDGET` bytes),
so its memory is bounded whatever the corpus size -- what an eval compares the index against
(``ann_recall@k``). Its answers are kept per query in the registry (:class:`ExactCache`:
derived ``annexact`` objects scoped by the model and the index's rows, found by each query
vector's digest), so an unchanged eval re-run reads them instead of streaming every vector.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    import numpy as np

    from genreg.retrieval.index import IndexSpec
    from genreg.store.metadata import DerivedStore
    from genreg.store.objects import ObjectStore

TRUNK = "index.faiss"
LISTS = "lists.ivfdata"
UNIT_ROWS = 262_144  # rows per shard index built (and merged) as one unit
BLOCK_ROWS = 8192  # vectors read from a cache shard at a time
SCORE_BUDGET = 64 << 20  # bytes of the queries x block score matrix of an exact search
REFINE_ROWS = 16384  # candidate vectors held at a time by a refined search (~25 MB at 384-d)
_SHARD_HEAD = struct.Struct("<8sII")  # genreg.retrieval.cache shard header


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """Silence FAISS's C++ prints (``resizing ...``, clustering warnings) on fds 1 and 2, so
    ``--json`` output stays one JSON document."""
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no such fds (embedded use): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


# ---- parameters and the training sample ---------------------------------------------------
def check_trainable(spec: IndexSpec, dim: int, n_rows: int) -> None:
    """A :class:`ConfigError` naming the parameter when ``spec`` cannot be trained on
    ``n_rows`` vectors of dimension ``dim`` (raised before anything is embedded or written)."""
    m, nlist, nbits = spec.get("m"), spec.get("nlist"), spec.get("nbits")
    if dim % m:
        divisors = [d for d in range(1, dim + 1) if dim % d == 0 and d <= 128][-6:]
        raise ConfigError(
            f"index.m {m}: must divide the embedding dimension {dim} "
            f"(e.g. {', '.join(map(str, divisors))})"
        )
    n_train = min(spec.get("train_size"), n_rows)
    what = "rows" if n_train == n_rows else "train_size"
    if n_train < nlist:
        raise ConfigError(
            f"index.nlist {nlist}: cannot train a {spec.type} index on {n_train} vectors "
            f"({what}); nlist must be at most the training sample size"
        )
    if n_train < 2**nbits:
        raise ConfigError(
            f"index.nbits {nbits}: cannot train {2**nbits} PQ centroids on {n_train} vectors "
            f"({what}); lower nbits or index more chunks"
        )


def sample_positions(spec: IndexSpec, n_rows: int) -> np.ndarray:
    """The rows of the training sample, ascending (deterministic in seed, size and n)."""
    import numpy as np

    size = min(spec.get("train_size"), n_rows)
    rng = np.random.default_rng(spec.get("seed"))
    return np.sort(rng.choice(n_rows, size=size, replace=False)).astype(np.int64)


def sample_digest(sample_blob: bytes) -> str:
    """``sha256:`` of the sample object (the sampled rows' text digests, 32 bytes each)."""
    return "sha256:" + hashlib.sha256(sample_blob).hexdigest()


def digests_array(hex_digests: list[str]) -> np.ndarray:
    """Hex sha256 digests as a numpy ``S32`` array (32 bytes a row, no Python objects)."""
    import numpy as np

    return np.frombuffer(bytes.fromhex("".join(hex_digests)), dtype="S32").copy()


def new_index(spec: IndexSpec, dim: int) -> Any:
    """The untrained FAISS index of a spec (inner product over normalised vectors)."""
    import faiss

    nlist, m, nbits = spec.get("nlist"), spec.get("m"), spec.get("nbits")
    quantizer: Any
    if spec.type == "ivf_hnsw":
        quantizer = faiss.IndexHNSWFlat(dim, spec.get("hnsw_m"), faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efConstruction = spec.get("ef_construction")
    else:
        quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    quantizer.this.disown()
    if spec.type == "ivf_hnsw":  # k-means on a flat index; the centroids then go in the graph
        index.clustering_index = faiss.IndexFlatIP(dim)
    index.cp.seed = index.pq.cp.seed = spec.get("seed")
    return index


def train(spec: IndexSpec, sample: np.ndarray) -> bytes:
    """The trained, empty index (serialised) for ``sample`` (rows L2-normalised).

    Up to the PQ's own training size (``pq.ksub x 256`` = 65,536 vectors at ``nbits: 8``,
    the default ``train_size``) the residuals the PQ is trained on are computed *in place*
    in ``sample`` (which is overwritten), block by block: the same steps as
    ``IndexIVFPQ.train`` -- coarse k-means (``train_q1``), residual to the nearest centroid,
    ``pq.train``, precomputed tables -- with a byte-identical result (tested), without FAISS's
    second n x dim residual copy: the sample is the only large buffer. Larger samples go
    through ``IndexIVFPQ.train`` (which subsamples them itself)."""
    import faiss
    import numpy as np

    x = np.ascontiguousarray(sample, dtype=np.float32)
    index = new_index(spec, x.shape[1])
    with quiet_native():
        if len(x) > index.train_encoder_num_vectors():
            index.train(x)
            return faiss.serialize_index(index).tobytes()
        index.train_q1(len(x), faiss.swig_ptr(x), False, index.metric_type)
        centroids = index.quantizer.reconstruct_n(0, index.nlist)
        for lo in range(0, len(x), BLOCK_ROWS):
            _, nearest = index.quantizer.search(x[lo : lo + BLOCK_ROWS], 1)
            x[lo : lo + BLOCK_ROWS] -= centroids[nearest[:, 0]]
        index.pq.train(x)
        index.precompute_table()
        index.is_trained = True
    return faiss.serialize_index(index).tobytes()


# ---- where each row's vector is: a digest-only pass over the cache shards -----------------
@dataclass
class CachePlan:
    """For each row, the cache shard (index into ``shards``, -1 when not cached) and the
    position in it that holds its vector."""

    shards: list[str]  # shard object digests, in the cache's order
    shard_of: np.ndarray  # int32 per row
    pos_of: np.ndarray  # int64 per row (int32, read-only, when decoded from a stored row map)

    def missing(self) -> np.ndarray:
        import numpy as np

        return np.nonzero(self.shard_of < 0)[0]

    def by_shard(self, rows: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
        """``(shard, rows)`` for every shard holding some of ``rows`` (default all), rows
        sorted by their position in the shard (sequential reads)."""
        import numpy as np

        rows = np.arange(len(self.shard_of)) if rows is None else rows
        s = self.shard_of[rows]
        order = np.lexsort((self.pos_of[rows], s))
        rows, s = rows[order], s[order]
        out = []
        bounds = np.flatnonzero(np.diff(s)) + 1
        for part in np.split(rows, bounds):
            if len(part) and self.shard_of[part[0]] >= 0:
                out.append((int(self.shard_of[part[0]]), part))
        return out


ROWMAP_MAGIC = b"GRROWMAP"
_ROWMAP_HEAD = struct.Struct("<8sIQ")  # magic, shards, rows


def encode_rowmap(plan: CachePlan) -> bytes:
    """The plan as stored beside an index (``meta["rowmap"]``): ``GRROWMAP`` | uint32 shards |
    uint64 rows | the shards' 32-byte digests | int32 shard per row | int32 position per row
    -- 8 bytes a row, so a search opens the plan without re-reading every row's digest and
    every shard's digest table (a refined search needs it on the first query)."""

    if len(plan.shard_of) and int(plan.pos_of.max()) >= 2**31:
        raise ValueError("rowmap: a shard position does not fit in int32")
    head = _ROWMAP_HEAD.pack(ROWMAP_MAGIC, len(plan.shards), len(plan.shard_of))
    digests = bytes.fromhex("".join(d.removeprefix("sha256:") for d in plan.shards))
    return (
        head + digests + plan.shard_of.astype("<i4").tobytes() + plan.pos_of.astype("<i4").tobytes()
    )


def decode_rowmap(data: bytes, where: str = "rowmap") -> CachePlan:
    import numpy as np

    if len(data) < _ROWMAP_HEAD.size:
        raise IntegrityError(f"{where}: truncated header")
    magic, n_shards, n = _ROWMAP_HEAD.unpack_from(data)
    if magic != ROWMAP_MAGIC or len(data) != _ROWMAP_HEAD.size + 32 * n_shards + 8 * n:
        raise IntegrityError(f"{where}: not a genreg row map")
    at = _ROWMAP_HEAD.size
    raw = data[at : at + 32 * n_shards]
    shards = [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]
    at += 32 * n_shards
    # read-only int32 views of ``data`` (no copies: 8 bytes a row in RAM, 80 MB at 10M rows;
    # widening pos_of to int64 held 12 bytes more a row); positions are < 2**31 (encode)
    shard_of = np.frombuffer(data, dtype="<i4", count=n, offset=at)
    pos_of = np.frombuffer(data, dtype="<i4", count=n, offset=at + 4 * n)
    return CachePlan(shards, shard_of, pos_of)


def _shard_rows(
    objects: ObjectStore, derived: DerivedStore, kind: str, model: str, dim: int
) -> Any:
    return [r for r in derived.list(kind, scope=model) if int(r.meta.get("dim", -1)) == dim]


def read_digest_table(objects: ObjectStore, digest: str) -> np.ndarray:
    """The chunk digests of one cache shard (``S32``), reading only its digest table when the
    object is a local file."""
    import numpy as np

    path = objects.local_path(digest)
    if path is not None and path.exists():
        with open(path, "rb") as fh:
            head = fh.read(_SHARD_HEAD.size)
            _, _, n = _check_head(head, digest)
            return np.frombuffer(fh.read(32 * n), dtype="S32")
    data = objects.get_bytes(digest)
    _, _, n = _check_head(data[: _SHARD_HEAD.size], digest)
    return np.frombuffer(data, dtype="S32", count=n, offset=_SHARD_HEAD.size).copy()


def _check_head(head: bytes, digest: str) -> tuple[bytes, int, int]:
    from genreg.retrieval.cache import MAGIC

    if len(head) < _SHARD_HEAD.size:
        raise IntegrityError(f"embedding shard sha256:{digest}: truncated header")
    magic, dim, n = _SHARD_HEAD.unpack(head)
    if magic != MAGIC:
        raise IntegrityError(f"embedding shard sha256:{digest}: bad magic")
    return magic, dim, n


def _prefix_keys(digests: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each ``S32`` digest as a uint64 sort key (8 bytes a row)."""
    import numpy as np

    raw = np.frombuffer(digests.data, dtype=np.uint8).reshape(-1, 32)
    return np.ascontiguousarray(raw[:, :8]).view("<u8").ravel()


def plan_rows(
    objects: ObjectStore,
    derived: DerivedStore,
    model_digest: str,
    dim: int,
    rows: np.ndarray,
    *,
    kind: str = "embshard",
) -> CachePlan:
    """Which cache shard holds each row's vector (``rows``: ``S32`` text digests). The first
    shard (in the cache's order) holding a digest wins, as in :class:`EmbeddingCache`, and
    within a shard its first position.

    Memory: about 36 bytes a row besides ``rows`` itself (sorted 8-byte digest prefixes and
    their order, then the plan's 12), plus one shard's digest table at a time -- no sorted
    copy of the 32-byte digests. A prefix match is confirmed on the whole digest."""
    import numpy as np

    n = len(rows)
    keys = _prefix_keys(rows)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    shard_of = np.full(n, -1, dtype=np.int32)
    pos_of = np.zeros(n, dtype=np.int64)
    shards: list[str] = []
    for r in _shard_rows(objects, derived, kind, model_digest, dim):
        table = read_digest_table(objects, r.object_digest)
        s = len(shards)
        shards.append(r.object_digest)
        if not n or not len(table):
            continue
        tk = _prefix_keys(table)
        lo = np.searchsorted(keys, tk, side="left")
        hi = np.searchsorted(keys, tk, side="right")
        j = np.nonzero(hi > lo)[0]  # table positions whose prefix some row has
        if not len(j):
            continue
        count = (hi - lo)[j]
        pos = np.repeat(j, count)  # one (table position, sorted row) pair per match
        at = np.repeat(lo[j] - np.cumsum(count) + count, count) + np.arange(len(pos))
        row = order[at]
        same = rows[row] == table[pos]  # the whole digest, not just its prefix
        row, pos = row[same], pos[same]
        free = shard_of[row] < 0  # an earlier shard wins
        row, pos = row[free], pos[free]
        first = np.lexsort((pos, row))  # a digest twice in this shard: its first position
        row, pos = row[first], pos[first]
        keep = np.ones(len(row), dtype=bool)
        keep[1:] = row[1:] != row[:-1]
        shard_of[row[keep]] = s
        pos_of[row[keep]] = pos[keep]
    return CachePlan(shards, shard_of, pos_of)


def iter_vectors(
    objects: ObjectStore, digest: str, positions: np.ndarray, block: int = BLOCK_ROWS
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(indices into positions, vectors)`` blocks for the ascending ``positions`` of one
    cache shard. A local shard is read sequentially, ``block`` rows at a time, and its sha256
    checked at the end (an :class:`IntegrityError` when it does not match); other stores read
    the (verified) object whole -- a shard is at most ``SHARD_MAX`` vectors."""
    import numpy as np

    path = objects.local_path(digest)
    if path is None or not path.exists():
        data = objects.get_bytes(digest)
        _, dim, n = _check_head(data[: _SHARD_HEAD.size], digest)
        vecs = np.frombuffer(data, dtype="<f4", count=n * dim, offset=_SHARD_HEAD.size + 32 * n)
        vecs = vecs.reshape(n, dim)
        for lo in range(0, len(positions), block):
            sel = np.arange(lo, min(lo + block, len(positions)))
            yield sel, np.ascontiguousarray(vecs[positions[sel]], dtype=np.float32)
        return
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        head = fh.read(_SHARD_HEAD.size)
        h.update(head)
        _, dim, n = _check_head(head, digest)
        h.update(fh.read(32 * n))
        row_bytes = 4 * dim
        j = 0
        for start in range(0, n, block):
            count = min(block, n - start)
            raw = fh.read(count * row_bytes)
            if len(raw) != count * row_bytes:
                raise IntegrityError(f"embedding shard sha256:{digest}: truncated")
            h.update(raw)
            k = int(np.searchsorted(positions, start + count, side="left"))
            if k > j:
                vecs = np.frombuffer(raw, dtype="<f4").reshape(count, dim)
                sel = np.arange(j, k)
                yield sel, np.ascontiguousarray(vecs[positions[sel] - start], dtype=np.float32)
                j = k
        h.update(fh.read())
    if h.hexdigest() != digest.removeprefix("sha256:"):
        raise IntegrityError(f"embedding shard sha256:{digest} is corrupt")


def gather(objects: ObjectStore, plan: CachePlan, rows: np.ndarray, dim: int) -> np.ndarray:
    """The vectors of ``rows`` (a small set: the training sample), in the order given."""
    import numpy as np

    out = np.empty((len(rows), dim), dtype=np.float32)
    where = {int(r): i for i, r in enumerate(rows)}
    for s, part in plan.by_shard(rows):
        for sel, vecs in iter_vectors(objects, plan.shards[s], plan.pos_of[part]):
            out[[where[int(r)] for r in part[sel]]] = vecs
    return out


# ---- build ----------------------------------------------------------------------------------
Unit = list[tuple[str, "np.ndarray", "np.ndarray"]]  # (shard digest, positions, row ids)


def units(plan: CachePlan, rows_per_unit: int = UNIT_ROWS) -> list[Unit]:
    """Rows grouped by cache shard into build units of about ``rows_per_unit`` rows."""
    out: list[Unit] = []
    cur: Unit = []
    size = 0
    for s, part in plan.by_shard():
        cur.append((plan.shards[s], plan.pos_of[part], part.astype("int64")))
        size += len(part)
        if size >= rows_per_unit:
            out.append(cur)
            cur, size = [], 0
    if cur:
        out.append(cur)
    return out


def build_unit(objects: ObjectStore, trained: bytes, unit: Unit, out_path: str) -> int:
    """Add one unit's vectors to a copy of the trained index and write it to ``out_path``."""
    import faiss
    import numpy as np

    index = faiss.deserialize_index(np.frombuffer(trained, dtype=np.uint8))
    for digest, positions, ids in unit:
        for sel, vecs in iter_vectors(objects, digest, positions):
            index.add_with_ids(vecs, ids[sel])
    faiss.write_index(index, out_path)
    return int(index.ntotal)


def _unit_worker(args: tuple[str, bytes, Unit, str]) -> int:
    from genreg.store.objects import open_object_store

    url, trained, unit, out_path = args
    return build_unit(open_object_store(url), trained, unit, out_path)


def build_ondisk(
    objects: ObjectStore,
    plan: CachePlan,
    trained: bytes,
    workdir: Path,
    *,
    workers: int = 1,
    rows_per_unit: int | None = None,
    progress: Any = None,
    ray: Any = None,
) -> int:
    """Build ``workdir/index.faiss`` + ``workdir/lists.ivfdata`` from the cached vectors of
    every row of ``plan`` (all must be cached); returns the number of vectors. The units are
    built here, in ``workers`` local processes, or -- ``ray``: a
    :class:`~genreg.retrieval.ray_engine.RayOptions` -- as Ray tasks; the merge is the same
    (in unit order) and every list is then sorted by row id (:func:`canonical_order`), so the
    files are byte-identical whichever built the units and whichever cache shards hold the
    vectors."""
    import faiss
    import numpy as np
    from faiss.contrib.ondisk import merge_ondisk

    if len(plan.missing()):
        raise IntegrityError(f"embedding cache: {len(plan.missing())} rows have no vector")
    work = units(plan, rows_per_unit or UNIT_ROWS)
    paths = [str(workdir / f"unit-{i:05d}.faiss") for i in range(len(work))]
    total, done = len(plan.shard_of), 0
    if progress is not None:
        progress("indexing", 0, total)
    if ray is not None:
        from genreg.retrieval.ray_engine import build_units

        for added in build_units(objects.url, trained, work, paths, ray):
            done += added
            if progress is not None:
                progress("indexing", done, total)
    elif workers > 1 and len(work) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")  # never fork a process holding OpenMP
        jobs = [(objects.url, trained, u, p) for u, p in zip(work, paths, strict=True)]
        with ProcessPoolExecutor(min(workers, len(work)), mp_context=ctx) as pool:
            for added in pool.map(_unit_worker, jobs):
                done += added
                if progress is not None:
                    progress("indexing", done, total)
    else:
        for u, p in zip(work, paths, strict=True):
            done += build_unit(objects, trained, u, p)
            if progress is not None:
                progress("indexing", done, total)
    index = faiss.deserialize_index(np.frombuffer(trained, dtype=np.uint8))
    with quiet_native():
        merge_ondisk(index, paths, str(workdir / LISTS))
        # the trunk names its lists file; store the bare name, not this build's temp dir (read
        # back with IO_FLAG_ONDISK_SAME_DIR), so the trunk -- and the index object's digest --
        # depends on the content alone
        invlists: Any = faiss.extract_index_ivf(index).invlists
        lists: Any = faiss.downcast_InvertedLists(invlists)
        canonical_order(lists)
        lists.filename = LISTS  # an OnDiskInvertedLists (merge_ondisk made it)
        faiss.write_index(index, str(workdir / TRUNK))
    n = int(index.ntotal)
    del index
    for p in paths:
        os.unlink(p)
    return n


def canonical_order(lists: Any) -> None:
    """Sort every inverted list's entries by row id, in place. A list holds its vectors in the
    order they were added, which follows the cache shards (a Ray job writes one shard a block,
    the in-process path one per 50,000 chunks; a partly cached corpus mixes them): sorted, the
    lists -- and so the index's trunk and lists file -- depend only on the rows and their
    vectors, byte for byte, whichever shards hold them."""
    import faiss
    import numpy as np

    cs = int(lists.code_size)
    for lst in range(int(lists.nlist)):
        n = int(lists.list_size(lst))
        if n < 2:
            continue
        ids = faiss.rev_swig_ptr(lists.get_ids(lst), n).view(np.int64)
        if bool(np.all(ids[1:] > ids[:-1])):
            continue
        order = np.argsort(ids, kind="stable")
        codes = faiss.rev_swig_ptr(lists.get_codes(lst), n * cs).reshape(n, cs)
        new_ids = np.ascontiguousarray(ids[order])
        new_codes = np.ascontiguousarray(codes[order])
        lists.update_entries(lst, 0, n, faiss.swig_ptr(new_ids), faiss.swig_ptr(new_codes))


# ---- open -----------------------------------------------------------------------------------
def materialize(objects: ObjectStore, trunk: bytes, lists_digest: str, dest: Path) -> Path:
    """``dest`` holding ``index.faiss`` and ``lists.ivfdata`` (a hard link to the stored
    object when the store is local, else a copy), made once and reused."""
    if (dest / TRUNK).exists() and (dest / LISTS).exists():
        return dest
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / TRUNK).write_bytes(trunk)
    src = objects.local_path(lists_digest)
    linked = False
    if src is not None and src.exists():
        with contextlib.suppress(OSError):
            os.link(src, tmp / LISTS)
            linked = True
    if not linked:
        (tmp / LISTS).write_bytes(objects.get_bytes(lists_digest))
    try:
        os.rename(tmp, dest)
    except OSError:  # another process made it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def open_ondisk(directory: Path) -> Any:
    """The index in ``directory``, its inverted lists memory-mapped read-only."""
    import faiss

    flags = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
    with quiet_native():
        return faiss.read_index(str(directory / TRUNK), flags)


def is_ondisk(index: Any) -> bool:
    """True when ``index``'s inverted lists are FAISS on-disk (memory-mapped) lists."""
    import faiss

    if isinstance(index, Refined):
        index = index.index
    lists = faiss.extract_index_ivf(index).invlists
    return lists is not None and isinstance(
        faiss.downcast_InvertedLists(lists), faiss.OnDiskInvertedLists
    )


# ---- exact search from the cache ------------------------------------------------------------
class ExactSearch:
    """Exhaustive inner-product search over the cached vectors of an index's rows, streamed
    shard by shard; called like ``faiss.Index.search`` (``(scores, rows)``, best first)."""

    def __init__(
        self,
        objects: ObjectStore,
        derived: DerivedStore,
        model_digest: str,
        dim: int,
        rows: Any,  # S32 digests, or a callable returning them (loaded on first search)
        *,
        rowmap: Any = None,  # a callable returning the stored CachePlan (None: from rows)
    ) -> None:
        self.objects, self.derived = objects, derived
        self.model_digest, self.dim = model_digest, dim
        self._rows = rows
        self._rowmap = rowmap
        self._plan: CachePlan | None = None

    def plan(self) -> CachePlan:
        if self._plan is None:
            if self._rowmap is not None:
                self._plan = self._rowmap()
            else:
                rows = self._rows() if callable(self._rows) else self._rows
                self._plan = plan_rows(
                    self.objects, self.derived, self.model_digest, self.dim, rows
                )
            assert self._plan is not None
            if len(self._plan.missing()):
                raise IntegrityError(
                    f"embedding cache: {len(self._plan.missing())} indexed rows have no "
                    "cached vector (exact search for ann recall)"
                )
        return self._plan

    def __call__(self, q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        plan = self.plan()
        x = np.ascontiguousarray(q, dtype=np.float32)
        nq = len(x)
        block = max(256, min(BLOCK_ROWS, SCORE_BUDGET // (4 * max(1, nq))))
        best_s = np.full((nq, fetch), -np.inf, dtype=np.float32)
        best_i = np.full((nq, fetch), -1, dtype=np.int64)
        for s, part in plan.by_shard():
            shard = plan.shards[s]
            for sel, vecs in iter_vectors(self.objects, shard, plan.pos_of[part], block):
                scores = x @ vecs.T
                all_s = np.hstack([best_s, scores])
                all_i = np.hstack([best_i, np.broadcast_to(part[sel], scores.shape)])
                top = np.argpartition(-all_s, fetch - 1, axis=1)[:, :fetch]
                best_s = np.take_along_axis(all_s, top, axis=1)
                best_i = np.take_along_axis(all_i, top, axis=1)
        order = np.lexsort((best_i, -best_s)) if nq else np.zeros((0, fetch), dtype=np.int64)
        return (
            np.take_along_axis(best_s, order, axis=1),
            np.take_along_axis(best_i, order, axis=1),
        )


def np_digests(blob: bytes) -> np.ndarray:
    """An index's stored row digests (32 bytes each) as ``S32``."""
    import numpy as np

    return np.frombuffer(blob, dtype="S32")


# ---- the exact results, cached ----------------------------------------------------------------
EXACT_KIND = "annexact"
EXACT_FORMAT = "genreg-ann-exact/1"
EXACT_MAGIC = b"GREXA001"
_EXACT_HEAD = struct.Struct("<8s32sII")  # magic, scope digest, fetch, queries


def exact_scope(model_digest: str, dim: int, rows_digest: str) -> str:
    """The derived-row scope of an index's cached exact results: ``sha256:`` of what they
    depend on besides the query -- the model (its digest and dimension: the vector of every
    row's text) and the index's rows (the digest of its row-digests object: which texts, in
    which order, so which row ids), and this format (the search and its tie order)."""
    from genreg.core.hashing import digest_json

    return digest_json(
        {"format": EXACT_FORMAT, "model": model_digest, "dim": dim, "rows": rows_digest}
    )


def query_digests(x: np.ndarray) -> list[bytes]:
    """The sha256 of each query vector's float32 little-endian bytes (what the exact top-k of
    a query depends on, with the scope)."""
    import numpy as np

    raw = np.ascontiguousarray(x, dtype="<f4")
    return [hashlib.sha256(row.tobytes()).digest() for row in raw]


def encode_exact(
    scope: str, fetch: int, qdigests: list[bytes], s: np.ndarray, i: np.ndarray
) -> bytes:
    """``GREXA001`` | 32-byte scope | uint32 fetch | uint32 queries | 32-byte query vector
    digest per query | float32 scores (queries x fetch) | int64 rows (queries x fetch)."""
    import numpy as np

    scope_raw = bytes.fromhex(scope.removeprefix("sha256:"))
    head = _EXACT_HEAD.pack(EXACT_MAGIC, scope_raw, fetch, len(qdigests))
    return (
        head
        + b"".join(qdigests)
        + np.ascontiguousarray(s, dtype="<f4").tobytes()
        + np.ascontiguousarray(i, dtype="<i8").tobytes()
    )


def decode_exact(
    data: bytes, scope: str, fetch: int, where: str
) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """The entries of one cached-exact object; an :class:`IntegrityError` when it is not one,
    or was made for another scope (index rows, model) or fetch than its row says."""
    import numpy as np

    if len(data) < _EXACT_HEAD.size:
        raise IntegrityError(f"{where}: truncated header")
    magic, got_scope, got_fetch, n = _EXACT_HEAD.unpack_from(data)
    if magic != EXACT_MAGIC or len(data) != _EXACT_HEAD.size + n * (32 + 12 * got_fetch):
        raise IntegrityError(f"{where}: not a genreg exact-results object")
    if got_scope.hex() != scope.removeprefix("sha256:") or got_fetch != fetch:
        raise IntegrityError(f"{where}: made for another index, model or fetch than its row says")
    at = _EXACT_HEAD.size
    qd = [data[at + 32 * j : at + 32 * (j + 1)] for j in range(n)]
    at += 32 * n
    scores = np.frombuffer(data, dtype="<f4", count=n * fetch, offset=at).reshape(n, fetch)
    rows = np.frombuffer(data, dtype="<i8", count=n * fetch, offset=at + 4 * n * fetch)
    return qd, scores, rows.reshape(n, fetch)


class ExactCache:
    """:class:`ExactSearch` (or any callable like it) with its answers kept per query in the
    registry, so an eval re-run on the same index, model and queries reads them instead of
    streaming every cached vector again.

    Each call's queries not answered yet are searched (all together) and stored as one object
    (:func:`encode_exact`) recorded as ``derived(kind="annexact", scope=exact_scope(...),
    key=<object digest>, meta={"count", "fetch"})``; a query is found by the digest of its
    vector's bytes and the ``fetch`` asked for. The scope covers the model and the index's
    rows exactly (:func:`exact_scope`), and every object names its scope and fetch in its
    header, checked on read with its digest (a mismatch is an :class:`IntegrityError`), so
    another index or model can never answer. A changed query set searches only its new
    queries. ``searched`` / ``cached``: distinct queries searched / answered from the cache so
    far. A stored answer equals a fresh search's to float32 rounding: BLAS may round a query's
    dot products differently in a batch of another shape, so a near-tie at the ``fetch``-th
    place can come out in the other order than a search of the whole query set at once."""

    def __init__(
        self,
        search: Any,
        objects: ObjectStore,
        derived: DerivedStore,
        *,
        model_digest: str,
        dim: int,
        rows_digest: str,
    ) -> None:
        self.search, self.objects, self.derived = search, objects, derived
        self.scope = exact_scope(model_digest, dim, rows_digest)
        self._known: dict[int, dict[bytes, tuple[np.ndarray, np.ndarray]]] = {}
        self._searched: set[bytes] = set()  # distinct query vectors searched exactly
        self._answered: set[bytes] = set()  # distinct query vectors answered from the cache

    @property
    def searched(self) -> int:
        """Distinct queries this object has searched exactly (at any fetch)."""
        return len(self._searched)

    @property
    def cached(self) -> int:
        """Distinct queries answered from the cache and never searched here (a chunked
        retriever's retry with a larger fetch asks again: counted once)."""
        return len(self._answered - self._searched)

    def _load(self, fetch: int) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
        known = self._known.get(fetch)
        if known is None:
            known = {}
            for r in self.derived.list(EXACT_KIND, scope=self.scope):
                if int(r.meta.get("fetch", -1)) != fetch:
                    continue
                where = f"exact results sha256:{r.object_digest}"
                data = self.objects.get_bytes(r.object_digest)  # digest-verified
                qd, scores, rows = decode_exact(data, self.scope, fetch, where)
                for j, d in enumerate(qd):
                    known.setdefault(d, (scores[j], rows[j]))
            self._known[fetch] = known
        return known

    def __call__(self, q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        from genreg.store.objects import ensure_stored

        x = np.ascontiguousarray(q, dtype=np.float32)
        qd = query_digests(x)
        known = self._load(fetch)
        todo: dict[bytes, int] = {}  # distinct new query -> its first position
        for j, d in enumerate(qd):
            if d not in known:
                todo.setdefault(d, j)
        self._answered.update(d for d in qd if d in known)
        self._searched.update(todo)
        if todo:
            pick = list(todo.values())
            s, i = self.search(x[pick], fetch)
            new = list(todo)
            blob = encode_exact(self.scope, fetch, new, s, i)
            obj = self.objects.put_bytes(blob)
            self.derived.put(
                kind=EXACT_KIND,
                scope=self.scope,
                key=obj,
                object_digest=obj,
                meta={"count": len(new), "fetch": fetch},
            )
            ensure_stored(self.objects, obj, blob)  # a concurrent gc may have hidden it
            for j, d in enumerate(new):
                known[d] = (np.array(s[j]), np.array(i[j]))
        out_s = np.empty((len(qd), fetch), dtype=np.float32)
        out_i = np.empty((len(qd), fetch), dtype=np.int64)
        for j, d in enumerate(qd):
            out_s[j], out_i[j] = known[d]
        return out_s, out_i


# ---- refine: exact re-ranking of the candidates ---------------------------------------------
def _fd_budget() -> int:
    """Shard files a reader may keep open: half the process's soft ``RLIMIT_NOFILE``
    (4,096 where there is no limit or no ``resource`` module)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 4096
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 4096
    return max(16, soft // 2)


class _Shard:
    __slots__ = ("base", "fd", "pins", "retired")

    def __init__(self, fd: int, base: int) -> None:
        self.fd, self.base, self.pins, self.retired = fd, base, 0, False


class VectorReader:
    """The cached float vectors of given rows of an index, read from the cache shard files
    with one positional read (``os.pread``) per row: nothing is memory-mapped or held beyond
    the rows asked for. A shard the object store cannot hand over as a local file (S3) is
    copied (verified) into ``spill_dir`` once. The rows' shard and position come from
    ``exact``'s :class:`CachePlan` (computed once, on first use).

    Safe to share between threads (a retriever from ``Registry.open_retriever`` is, in the
    API server): the open-file cache is guarded by a lock and a file in use is pinned, so
    evicting it only retires it -- it is closed when its last reader lets go, never under a
    read (a closed fd's number is reused at once, and a read from it would come from another
    shard). The cache holds every shard of the index when the fd budget allows (Ray writes
    1,024-row shards: ~9,800 files at 10M rows), else :func:`_fd_budget` files, least
    recently used evicted; ``MAX_OPEN`` fixes the number instead (tests)."""

    MAX_OPEN: int | None = None  # shard files kept open; None: min(shards, fd budget)

    def __init__(self, exact: ExactSearch, spill_dir: Path | None = None) -> None:
        self.exact = exact
        self.spill_dir = spill_dir
        self._files: dict[str, _Shard] = {}  # shard -> open file, most recently used last
        self._lock = threading.Lock()

    def capacity(self) -> int:
        """Shard files kept open at most (plus any retired ones still being read)."""
        if self.MAX_OPEN is not None:
            return max(1, self.MAX_OPEN)
        return max(1, min(len(self.exact.plan().shards), _fd_budget()))

    def open_files(self) -> int:
        with self._lock:
            return len(self._files)

    def _pin(self, digest: str, cap: int) -> _Shard:
        with self._lock:
            got = self._files.pop(digest, None)
            if got is None:
                while len(self._files) >= cap:
                    self._retire(self._files.pop(next(iter(self._files))))
                path = self._local(digest)
                fd = os.open(path, os.O_RDONLY)
                try:
                    _, _, n = _check_head(os.pread(fd, _SHARD_HEAD.size, 0), digest)
                except BaseException:
                    os.close(fd)
                    raise
                got = _Shard(fd, _SHARD_HEAD.size + 32 * n)
            got.pins += 1
            self._files[digest] = got
            return got

    def _unpin(self, shard: _Shard) -> None:
        with self._lock:
            shard.pins -= 1
            if shard.retired and not shard.pins:
                os.close(shard.fd)

    @staticmethod
    def _retire(shard: _Shard) -> None:  # with the lock held
        shard.retired = True
        if not shard.pins:
            os.close(shard.fd)

    def _local(self, digest: str) -> Path:
        objects = self.exact.objects
        path = objects.local_path(digest)
        if path is not None and path.exists():
            return path
        if self.spill_dir is None:
            raise IntegrityError(f"embedding shard sha256:{digest}: no local copy to read")
        from genreg.store.objects import local_file

        return local_file(objects, digest, self.spill_dir)

    def get(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` (int64 row ids), in the order given."""
        import numpy as np

        plan = self.exact.plan()
        dim = self.exact.dim
        out = np.empty((len(rows), dim), dtype=np.float32)
        if not len(rows):
            return out
        row_bytes = 4 * dim
        shard_of, pos_of = plan.shard_of[rows], plan.pos_of[rows]
        order = np.lexsort((pos_of, shard_of))  # sequential within each shard file
        buf = bytearray(row_bytes * len(rows))
        view = memoryview(buf)
        cap = self.capacity()
        cur, held = -1, None  # the shard file being read, pinned while in use
        try:
            for j, i in enumerate(order):
                s = int(shard_of[i])
                if held is None or s != cur:
                    if held is not None:
                        self._unpin(held)
                        held = None
                    held, cur = self._pin(plan.shards[s], cap), s
                chunk = os.pread(held.fd, row_bytes, held.base + int(pos_of[i]) * row_bytes)
                if len(chunk) != row_bytes:
                    raise IntegrityError(f"embedding shard {plan.shards[s]}: truncated")
                view[j * row_bytes : (j + 1) * row_bytes] = chunk
        finally:
            if held is not None:
                self._unpin(held)
        out[order] = np.frombuffer(buf, dtype="<f4").reshape(len(rows), dim)
        return out

    def close(self) -> None:
        with self._lock:
            while self._files:
                self._retire(self._files.pop(next(iter(self._files))))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class Refined:
    """An ANN index whose ``k_factor x k`` candidates are re-ranked by exact inner product
    with their cached vectors (FAISS's ``IndexRefine`` idea, with the float vectors read
    from the embedding cache per query block instead of held in RAM). Searched like a
    ``faiss.Index``; ``index`` is the underlying FAISS index (its ``nprobe`` etc. apply)."""

    def __init__(self, index: Any, reader: VectorReader, k_factor: int) -> None:
        self.index, self.reader, self.k_factor = index, reader, k_factor

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        x = np.ascontiguousarray(q, dtype=np.float32)
        nq = len(x)
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        fetch = max(k, min(self.ntotal, k * self.k_factor))
        step = max(1, REFINE_ROWS // fetch)  # queries per block: bounded candidate vectors
        take = min(k, fetch)
        for lo in range(0, nq, step):
            xb = x[lo : lo + step]
            _, cand = self.index.search(xb, fetch)
            valid = cand >= 0
            uniq = np.unique(cand[valid])
            vecs = self.reader.get(uniq)
            at = np.searchsorted(uniq, cand)
            scores = np.full(cand.shape, -np.inf, dtype=np.float32)
            for j in range(len(xb)):
                ok = valid[j]
                scores[j, ok] = vecs[at[j, ok]] @ xb[j]
            ids = np.where(valid, cand, np.iinfo(np.int64).max)
            order = np.lexsort((ids, -scores))[:, :take]  # best first; ties: lower row first
            s_top = np.take_along_axis(scores, order, axis=1)
            i_top = np.take_along_axis(cand, order, axis=1)
            out_s[lo : lo + len(xb), :take] = s_top
            out_i[lo : lo + len(xb), :take] = np.where(np.isfinite(s_top), i_top, -1)
        return out_s, out_i
