"""FAISS indexes over normalised vectors (inner product = cosine similarity).

:class:`IndexSpec` describes one: ``flat`` (exact, the default), ``hnsw`` (``m``,
``ef_construction``, ``ef_search``) or ``ivf`` (``nlist``, ``nprobe``). ``to_dict()`` is the
canonical form recorded in lineage; ``build_dict()`` leaves out the search-time knobs
(``ef_search``, ``nprobe``) so changing them reuses the built index.

A stored index is one object::

    b"GRIDX001" | uint64 meta length | canonical JSON meta | faiss.serialize_index bytes

where the meta holds the chunk -> document mapping (``doc_ids`` and ``chunk_index``, one per
FAISS row) and the digest of the chunk-texts object used for snippets.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genreg.core.hashing import canonical_json
from genreg.errors import ConfigError, IntegrityError
from genreg.retrieval.specs import json_object_or_text

if TYPE_CHECKING:
    import numpy as np

TYPES = ("flat", "hnsw", "ivf")
MAGIC = b"GRIDX001"
_HEAD = struct.Struct("<8sQ")
_DEFAULTS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"m": 32, "ef_construction": 200, "ef_search": 128},
    "ivf": {"nlist": 256, "nprobe": 16},
}
_SEARCH_TIME = {"ef_search", "nprobe"}


@dataclass(frozen=True)
class IndexSpec:
    type: str = "flat"
    params: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, value: str | dict[str, Any] | IndexSpec | None) -> IndexSpec:
        """``None``/``"flat"``, ``"hnsw"``, ``"ivf"``, a JSON object string, or a dict such as
        ``{"type": "hnsw", "m": 16, "ef_search": 64}`` (missing parameters take defaults)."""
        if value is None or isinstance(value, IndexSpec):
            return value or cls()
        if isinstance(value, str):
            value = json_object_or_text(value, "--index")
            if isinstance(value, str):
                value = {"type": value}
        if not isinstance(value, dict):
            raise ConfigError(f"index {value!r}: expected a string or an object")
        kind = value.get("type", "flat")
        if kind not in TYPES:
            raise ConfigError(f"index.type {kind!r}: expected one of {', '.join(TYPES)}")
        params = dict(_DEFAULTS[kind])
        for k, v in value.items():
            if k == "type":
                continue
            if k not in params:
                raise ConfigError(f"index.{k}: not a parameter of a {kind} index")
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"index.{k} {v!r}: expected a positive integer")
            params[k] = v
        return cls(kind, tuple(sorted(params.items())))

    def get(self, name: str) -> int:
        return dict(self.params)[name]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dict(self.params)}

    def build_dict(self) -> dict[str, Any]:
        return {"type": self.type, **{k: v for k, v in self.params if k not in _SEARCH_TIME}}

    def __str__(self) -> str:
        return self.type if not self.params else json.dumps(self.to_dict(), sort_keys=True)


def build_faiss(vectors: np.ndarray, spec: IndexSpec, *, progress: Any = None) -> Any:
    """A FAISS inner-product index over ``vectors`` (rows already L2-normalised)."""
    import faiss
    import numpy as np

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    index: faiss.Index
    if spec.type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif spec.type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, spec.get("m"), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.get("ef_construction")
    else:
        nlist = max(1, min(spec.get("nlist"), n))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # small corpora: no "too few points" warning
        if n:
            index.train(x)
    step = 8192
    for start in range(0, n, step):
        index.add(x[start : start + step])
        if progress is not None:
            progress("indexing", min(start + step, n), n)
    apply_search_params(index, spec)
    return index


def apply_search_params(index: Any, spec: IndexSpec) -> None:
    if spec.type == "hnsw":
        index.hnsw.efSearch = spec.get("ef_search")
    elif spec.type == "ivf":
        index.nprobe = spec.get("nprobe")


def encode_index(index: Any, meta: dict[str, Any]) -> bytes:
    import faiss

    head = canonical_json(meta)
    return _HEAD.pack(MAGIC, len(head)) + head + faiss.serialize_index(index).tobytes()


def decode_index(data: bytes, where: str = "index") -> tuple[Any, dict[str, Any]]:
    import faiss
    import numpy as np

    if len(data) < _HEAD.size:
        raise IntegrityError(f"{where}: truncated header")
    magic, n = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError(f"{where}: not a genreg index object")
    meta = json.loads(data[_HEAD.size : _HEAD.size + n])
    blob = np.frombuffer(data, dtype=np.uint8, offset=_HEAD.size + n)
    return faiss.deserialize_index(blob), meta
