"""Embedding cache: vectors keyed by (model digest, chunk text digest), stored as shards.

A shard is one content-addressed object::

    b"GREMB001" | uint32 dim | uint32 count | count x 32-byte sha256 | count x dim float32 (LE)

and is recorded as ``derived(kind="embshard", scope=<model digest>, key=<shard object
digest>, meta={"count", "dim"})`` -- one SQL row per shard, never one per vector. Looking up a
model's cache reads every shard's digest table once; vectors are copied out on demand.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from genreg.errors import IntegrityError
from genreg.store.objects import ensure_stored

if TYPE_CHECKING:
    import numpy as np

    from genreg.store.derived import DerivedRepo
    from genreg.store.objects import ObjectStore

MAGIC = b"GREMB001"
_HEAD = struct.Struct("<8sII")
KIND = "embshard"
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
        self, objects: ObjectStore, derived: DerivedRepo, model_digest: str, dim: int
    ) -> None:
        self.objects = objects
        self.derived = derived
        self.model_digest = model_digest
        self.dim = dim
        self._index: dict[bytes, tuple[int, int]] | None = None
        self._shards: list[Any] = []  # decoded vector arrays, one per shard

    def _load(self) -> dict[bytes, tuple[int, int]]:
        if self._index is None:
            index: dict[bytes, tuple[int, int]] = {}
            for row in self.derived.list(KIND, scope=self.model_digest):
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
        """Store vectors for ``digests`` (one shard per ``SHARD_MAX``); returns shard digests."""
        index = self._load()
        written = []
        for start in range(0, len(digests), SHARD_MAX):
            ds = digests[start : start + SHARD_MAX]
            vs = vectors[start : start + SHARD_MAX]
            blob = encode_shard(ds, vs)
            obj = self.objects.put_bytes(blob)
            self.derived.put(
                kind=KIND,
                scope=self.model_digest,
                key=obj,
                object_digest=obj,
                meta={"count": len(ds), "dim": self.dim},
            )
            ensure_stored(self.objects, obj, blob)  # a concurrent gc may have hidden it
            s = len(self._shards)
            self._shards.append(vs)
            for i, d in enumerate(ds):
                index.setdefault(bytes.fromhex(d), (s, i))
            written.append(obj)
        return written

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
