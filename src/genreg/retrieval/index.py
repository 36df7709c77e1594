"""FAISS indexes over normalised vectors (inner product = cosine similarity).

:class:`IndexSpec` describes one: ``flat`` (exact, the default), ``hnsw`` (``m``,
``ef_construction``, ``ef_search``) or ``ivf`` (``nlist``, ``nprobe``). ``to_dict()`` is the
canonical form recorded in lineage; ``build_dict()`` leaves out the search-time knobs
(``ef_search``, ``nprobe``, ``refine``) so changing them reuses the built index.

``ivfpq`` and ``ivf_hnsw`` are the compressed on-disk indexes for large corpora (IVF with
product-quantised codes; ``ivf_hnsw`` finds the nearest lists with an HNSW graph over the
centroids instead of a flat scan). They are trained on a deterministic sample and built,
stored and searched by :mod:`genreg.retrieval.ann`; :data:`ANN_TYPES` names them.

A stored index is one object::

    b"GRIDX001" | uint64 meta length | canonical JSON meta | faiss.serialize_index bytes

where the meta holds the chunk -> document mapping (``doc_ids`` and ``chunk_index``, one per
FAISS row) and the digest of the chunk-texts object used for snippets. An on-disk (ANN) index
stores that mapping instead as its own compact object, read per lookup (``rowids``:
:mod:`genreg.retrieval.rowids`) and its chunk texts as a table instead of a JSON list
(``text_table``: :mod:`genreg.retrieval.texttable`, decoded per hit); ANN indexes stored
before them keep the JSON lists (``doc_ids`` / ``chunk_index`` / ``texts``).
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

TYPES = ("flat", "hnsw", "ivf", "ivfpq", "ivf_hnsw")
ANN_TYPES = ("ivfpq", "ivf_hnsw")  # trained, on-disk: genreg.retrieval.ann
MAGIC = b"GRIDX001"
_HEAD = struct.Struct("<8sQ")
_DEFAULTS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"m": 32, "ef_construction": 200, "ef_search": 128},
    "ivf": {"nlist": 256, "nprobe": 16},
    # nlist inverted lists; m sub-quantizers of nbits each (m must divide the dimension);
    # nprobe lists searched; refine: re-rank refine x k candidates by their exact (cached)
    # vectors, 0 = off; the training sample: train_size vectors drawn with seed
    "ivfpq": {
        "nlist": 1024,
        "m": 48,
        "nbits": 8,
        "nprobe": 32,
        "refine": 16,
        "train_size": 65536,
        "seed": 0,
    },
    # the same, with an HNSW graph (hnsw_m links, ef_construction) over the centroids
    # searched with ef_search
    "ivf_hnsw": {
        "nlist": 4096,
        "m": 48,
        "nbits": 8,
        "nprobe": 32,
        "refine": 16,
        "hnsw_m": 32,
        "ef_construction": 40,
        "ef_search": 128,
        "train_size": 65536,
        "seed": 0,
    },
}
_SEARCH_TIME = {"ef_search", "nprobe", "refine"}
_MINIMUM = {"seed": 0, "refine": 0}  # every other parameter is a positive integer
_MAXIMUM = {"nbits": 16, "refine": 64}


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
            low, high = _MINIMUM.get(k, 1), _MAXIMUM.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                what = "a positive integer" if low else "an integer >= 0"
                raise ConfigError(f"index.{k} {v!r}: expected {what}")
            if high is not None and v > high:
                raise ConfigError(f"index.{k} {v!r}: at most {high}")
            params[k] = v
        return cls(kind, tuple(sorted(params.items())))

    @property
    def ann(self) -> bool:
        """A trained, on-disk index (:mod:`genreg.retrieval.ann`)."""
        return self.type in ANN_TYPES

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

    if spec.ann:
        raise ValueError(f"{spec.type} indexes are built by genreg.retrieval.ann")
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
    """Set the search-time knobs on the FAISS index itself: ``nprobe`` on the IVF index found
    by ``faiss.extract_index_ivf`` (setting it on a wrapper such as ``IndexRefine`` or
    ``IndexPreTransform`` would only add a Python attribute and change nothing), ``ef_search``
    on the HNSW graph (``ivf_hnsw``: the coarse quantizer's)."""
    import faiss

    if spec.type == "hnsw":
        hnsw: Any = faiss.downcast_index(index)
        hnsw.hnsw.efSearch = spec.get("ef_search")
        return
    if spec.type not in ("ivf", "ivfpq", "ivf_hnsw"):
        return
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = spec.get("nprobe")
    if spec.type == "ivf_hnsw":
        quantizer: Any = faiss.downcast_index(ivf.quantizer)
        quantizer.hnsw.efSearch = spec.get("ef_search")


def encode_index(index: Any, meta: dict[str, Any]) -> bytes:
    import faiss

    return encode_envelope(faiss.serialize_index(index).tobytes(), meta)


def decode_envelope(data: bytes, where: str = "index") -> tuple[dict[str, Any], memoryview]:
    """The meta and the FAISS bytes of a stored index object (not deserialised)."""
    if len(data) < _HEAD.size:
        raise IntegrityError(f"{where}: truncated header")
    magic, n = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError(f"{where}: not a genreg index object")
    meta = json.loads(data[_HEAD.size : _HEAD.size + n])
    return meta, memoryview(data)[_HEAD.size + n :]


def encode_envelope(faiss_bytes: bytes, meta: dict[str, Any]) -> bytes:
    head = canonical_json(meta)
    return _HEAD.pack(MAGIC, len(head)) + head + faiss_bytes


def decode_index(data: bytes, where: str = "index") -> tuple[Any, dict[str, Any]]:
    import faiss
    import numpy as np

    meta, blob = decode_envelope(data, where)
    return faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8)), meta
