"""The chunk texts of an on-disk (``ivfpq`` / ``ivf_hnsw``) index, as a compact memory-mapped
table: the snippet of a hit (and the context the generation stage renders) is decoded for
the rows returned, without loading every chunk's text.

A flat index keeps its chunk texts as one JSON list object (``meta["texts"]``), loaded whole
the first time a search asks for text (~1 KB a chunk in RAM: ~10 GB at 10M chunks). An
on-disk index stores them as one object (``meta["text_table"]``)::

    b"GRTEXTS1" | uint64 rows | uint64 text bytes
    | uint64 offsets (rows + 1) | the texts, utf-8, concatenated

(little-endian). :func:`open_texts` memory-maps the object's file read-only
(:func:`genreg.retrieval.rowids.map_object`: a store without local files is copied, verified,
once), so opening reads the 24-byte header and the last offset, and ``texts[r]`` touches only
the pages of row ``r``. Any text round-trips: empty, any code point (U+2028 included: no
JSON, no line splitting). ANN indexes stored before this table keep their JSON list.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.errors import IntegrityError
from genreg.retrieval.rowids import LazyRows

if TYPE_CHECKING:
    from genreg.store.objects import ObjectStore

MAGIC = b"GRTEXTS1"
_HEAD = struct.Struct("<8sQQ")  # magic, rows, text bytes


def encode_texts(texts: Sequence[str]) -> bytes:
    """The table of ``texts`` (one per row, in row order)."""
    import numpy as np

    blobs = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(blobs) + 1, dtype="<u8")
    if blobs:
        np.cumsum([len(b) for b in blobs], out=offsets[1:])
    body = b"".join(blobs)
    return _HEAD.pack(MAGIC, len(blobs), len(body)) + offsets.tobytes() + body


class TextTable(LazyRows[str]):
    """The texts over a buffer (a read-only memory map, or bytes), each decoded on access;
    nothing is decoded (or copied) up front."""

    def __init__(self, buf: Any, where: str = "texts") -> None:
        import numpy as np

        raw = buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, dtype=np.uint8)
        self.buf = raw  # offsets and text below are views of it (no copy)
        self.where = where
        if len(raw) < _HEAD.size:
            raise IntegrityError(f"{where}: truncated header")
        magic, n, size = _HEAD.unpack_from(bytes(raw[: _HEAD.size]))
        if magic != MAGIC:
            raise IntegrityError(f"{where}: not a genreg chunk-text table")
        at = _HEAD.size + 8 * (n + 1)
        if len(raw) != at + size:
            raise IntegrityError(f"{where}: truncated or padded (size does not match header)")
        self.n_rows = int(n)
        self.offsets = raw[_HEAD.size : at].view("<u8")
        self.text = raw[at:]
        if int(self.offsets[0]) != 0 or int(self.offsets[-1]) != size:
            raise IntegrityError(f"{where}: offsets do not span the text")

    def __len__(self) -> int:
        return self.n_rows

    def _one(self, row: int) -> str:
        lo, hi = int(self.offsets[row]), int(self.offsets[row + 1])
        if not lo <= hi <= len(self.text):
            raise IntegrityError(f"{self.where}: row {row} has bad offsets")
        return self.text[lo:hi].tobytes().decode("utf-8")


def open_texts(objects: ObjectStore, digest: str, spill_dir: Path) -> TextTable:
    """The stored table ``digest``, memory-mapped read-only from the object's file (a store
    without local files, such as S3: copied, verified, into ``spill_dir`` once)."""
    from genreg.retrieval.rowids import map_object

    where = f"chunk texts {digest}"
    return TextTable(map_object(objects, digest, spill_dir, where), where)
