"""Embedding cache: vectors keyed by (model digest, chunk text digest), stored as shards.

A shard is one content-addressed object::

    b"GREMB001" | uint32 dim | uint32 count | count x 32-byte sha256 | count x dim float32 (LE)

and is recorded as ``derived(kind="embshard", scope=<model digest>, key=<shard object
digest>, meta={"count", "dim"})`` -- one SQL row per shard, never one per vector. Looking up a
model's cache reads every shard's digest table once; vectors are copied out on demand.

Query embeddings are cached the same way under their own kind (``qembshard``, see
:class:`QueryCache`), so a warm eval run neither reads the chunk cache nor loads the model.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from genreg.errors import IntegrityError
from genreg.store.objects import ensure_stored

if TYPE_CHECKING:
    import numpy as np

    from genreg.store.metadata import DerivedStore
    from genreg.store.objects import ObjectStore

MAGIC = b"GREMB001"
_HEAD = struct.Struct("<8sII")
KIND = "embshard"
QUERY_KIND = "qembshard"
SHARD_MAX = 50_000  # vectors per shard written in one go


def encode_shard(digests: list[str], vectors: np.ndarray) -> bytes:
    import numpy as np

    n, dim = vectors.shape
    if n != len(digests):
        raise ValueError("one digest per vector")
    raw = b"".join(bytes.fromhex(d) for d in digests)
    body = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    return _HEAD.pack(MAGIC, dim, n) + raw + body


def decode_shard(data: bytes, where: str = "shard") -> tuple[list[bytes], np.ndarray]:
    import numpy as np

    if len(data) < _HEAD.size:
        raise IntegrityError(f"embedding {where}: truncated header")
    magic, dim, n = _HEAD.unpack_from(data)
    if magic != MAGIC or len(data) != _HEAD.size + n * 32 + n * dim * 4:
        raise IntegrityError(f"embedding {where}: bad magic or size")
    off = _HEAD.size
    digests = [data[off + 32 * i : off + 32 * (i + 1)] for i in range(n)]
    vecs = np.frombuffer(data, dtype="<f4", count=n * dim, offset=off + 32 * n).reshape(n, dim)
    return digests, vecs


class EmbeddingCache:
    """The cached vectors of one model. ``lookup`` says which chunk digests are cached;
    ``add`` stores newly embedded vectors as new shards."""

    def __init__(
        self,
        objects: ObjectStore,
        derived: DerivedStore,
        model_digest: str,
        dim: int,
        *,
        kind: str = KIND,
    ) -> None:
        self.objects = objects
        self.kind = kind
        self.derived = derived
        self.model_digest = model_digest
        self.dim = dim
        self._index: dict[bytes, tuple[int, int]] | None = None
        self._shards: list[Any] = []  # decoded vector arrays, one per shard

    def _load(self) -> dict[bytes, tuple[int, int]]:
        if self._index is None:
            index: dict[bytes, tuple[int, int]] = {}
            for row in self.derived.list(self.kind, scope=self.model_digest):
                if int(row.meta.get("dim", -1)) != self.dim:
                    continue
                data = self.objects.get_bytes(row.object_digest)
                digests, vecs = decode_shard(data, f"shard sha256:{row.object_digest}")
                s = len(self._shards)
                self._shards.append(vecs)
                for i, d in enumerate(digests):
                    index.setdefault(d, (s, i))
            self._index = index
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Distinct digests (first-seen order) that have no cached vector."""
        index = self._load()
        seen: set[str] = set()
        out = []
        for d in digests:
            if d not in seen:
                seen.add(d)
                if bytes.fromhex(d) not in index:
                    out.append(d)
        return out

    def add(self, digests: list[str], vectors: np.ndarray) -> list[str]:
        """Store vectors for ``digests`` (one shard per ``SHARD_MAX``); returns shard digests.
        A cache not looked up yet stays unloaded (a later lookup reads the new shards too)."""
        index = self._index
        written = []
        for start in range(0, len(digests), SHARD_MAX):
            ds = digests[start : start + SHARD_MAX]
            vs = vectors[start : start + SHARD_MAX]
            blob = encode_shard(ds, vs)
            obj = self.objects.put_bytes(blob)
            self.derived.put(
                kind=self.kind,
                scope=self.model_digest,
                key=obj,
                object_digest=obj,
                meta={"count": len(ds), "dim": self.dim},
            )
            ensure_stored(self.objects, obj, blob)  # a concurrent gc may have hidden it
            written.append(obj)
            if index is None:
                continue
            s = len(self._shards)
            self._shards.append(vs)
            for i, d in enumerate(ds):
                index.setdefault(bytes.fromhex(d), (s, i))
        return written

    def vector(self, digest: str) -> np.ndarray | None:
        """The cached vector of one text digest, or ``None``."""
        loc = self._load().get(bytes.fromhex(digest))
        return None if loc is None else self._shards[loc[0]][loc[1]]

    def matrix(self, digests: list[str]) -> np.ndarray:
        """An ``len(digests) x dim`` float32 matrix of cached vectors (all must be cached)."""
        import numpy as np

        index = self._load()
        out = np.empty((len(digests), self.dim), dtype=np.float32)
        for row, d in enumerate(digests):
            loc = index.get(bytes.fromhex(d))
            if loc is None:
                raise IntegrityError(f"embedding cache: no vector for chunk sha256:{d}")
            out[row] = self._shards[loc[0]][loc[1]]
        return out


class QueryCache:
    """An embedder wrapper that answers ``encode`` from cached query vectors (keyed by model
    digest + text digest, like chunks) and asks the wrapped embedder -- which loads its model
    only then -- for the texts it has not seen. New vectors are kept until :meth:`flush`
    writes them as one shard (an eval run embeds its queries one at a time)."""

    def __init__(self, embedder: Any, cache: EmbeddingCache) -> None:
        self.embedder = embedder
        self.cache = cache
        self.name = embedder.name
        self.digest = embedder.digest
        self._pending: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str) -> Any:  # dim, tokenizer, device, ... of the embedder
        return getattr(self.embedder, name)

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
        import numpy as np

        from genreg.retrieval.chunking import text_digest

        digests = [text_digest(t) for t in texts]
        out = np.empty((len(texts), self.cache.dim), dtype=np.float32)
        todo: list[int] = []
        for i, d in enumerate(digests):
            v = self.cache.vector(d)
            if v is not None:
                out[i] = v
            elif d in self._pending:
                out[i] = self._pending[d]
            else:
                todo.append(i)
        self.hits += len(texts) - len(todo)
        self.misses += len(todo)
        if todo:
            vecs = self.embedder.encode(
                [texts[i] for i in todo], batch_size=batch_size, progress=progress
            )
            for j, i in enumerate(todo):
                out[i] = vecs[j]
                self._pending[digests[i]] = np.array(vecs[j], dtype=np.float32)
        return out

    def flush(self) -> int:
        """Write the vectors embedded since the last flush; returns how many."""
        if not self._pending:
            return 0
        import numpy as np

        ds = list(self._pending)
        self.cache.add(ds, np.stack([self._pending[d] for d in ds]))
        self._pending.clear()
        return len(ds)
