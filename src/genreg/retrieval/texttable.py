"""The chunk texts of an on-disk (``ivfpq`` / ``ivf_hnsw``) index, as a compact table read per
row: the snippet of a hit (and the context the generation stage renders) is decoded for
the rows returned, without loading every chunk's text.

A flat index keeps its chunk texts as one JSON list object (``meta["texts"]``), loaded whole
the first time a search asks for text (~1 KB a chunk in RAM: ~10 GB at 10M chunks). An
on-disk index stores them as one object (``meta["text_table"]``)::

    b"GRTEXTS1" | uint64 rows | uint64 text bytes
    | uint64 offsets (rows + 1) | the texts, utf-8, concatenated

(little-endian). :func:`open_texts` opens the object's file
(:func:`genreg.retrieval.rowids.object_file`: a store without local files is copied, verified,
once), so opening reads the 24-byte header and the first and last offsets, and ``texts[r]``
reads row ``r``'s offsets and text with ``pread`` -- nothing memory-mapped, so the process's
resident set does not grow with the texts it has returned. Any text round-trips: empty, any code point (U+2028 included: no
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


_OFF2 = struct.Struct("<QQ")


class TextTable(LazyRows[str]):
    """The texts over a :class:`genreg.retrieval.rowids.ReadAt` (a file, read per row, or
    bytes), each decoded on access; nothing is decoded (or copied) up front."""

    def __init__(self, buf: Any, where: str = "texts") -> None:
        from genreg.retrieval.rowids import as_source

        src = as_source(buf)
        self.src, self.where = src, where
        if len(src) < _HEAD.size:
            raise IntegrityError(f"{where}: truncated header")
        magic, n, size = _HEAD.unpack(src.read(0, _HEAD.size))
        if magic != MAGIC:
            raise IntegrityError(f"{where}: not a genreg chunk-text table")
        self._text_at = _HEAD.size + 8 * (n + 1)
        if len(src) != self._text_at + size:
            raise IntegrityError(f"{where}: truncated or padded (size does not match header)")
        self.n_rows, self.size = int(n), int(size)
        first = struct.unpack("<Q", src.read(_HEAD.size, 8))[0]
        last = struct.unpack("<Q", src.read(_HEAD.size + 8 * self.n_rows, 8))[0]
        if first != 0 or last != size:
            raise IntegrityError(f"{where}: offsets do not span the text")

    def __len__(self) -> int:
        return self.n_rows

    def _one(self, row: int) -> str:
        lo, hi = _OFF2.unpack(self.src.read(_HEAD.size + 8 * row, 16))
        if not lo <= hi <= self.size:
            raise IntegrityError(f"{self.where}: row {row} has bad offsets")
        raw = self.src.read(self._text_at + lo, hi - lo) if hi > lo else b""
        if len(raw) != hi - lo:
            raise IntegrityError(f"{self.where}: row {row} is truncated")
        return raw.decode("utf-8")


def open_texts(objects: ObjectStore, digest: str, spill_dir: Path) -> TextTable:
    """The stored table ``digest``, read per row from the object's file (a store without
    local files, such as S3: copied, verified, into ``spill_dir`` once)."""
    from genreg.retrieval.rowids import object_file

    where = f"chunk texts {digest}"
    return TextTable(object_file(objects, digest, spill_dir, where), where)
