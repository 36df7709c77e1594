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

import io
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.errors import IntegrityError
from genreg.retrieval.rowids import LazyRows, ReadAt

if TYPE_CHECKING:
    from genreg.store.objects import ObjectStore

MAGIC = b"GRTEXTS1"
_HEAD = struct.Struct("<8sQQ")  # magic, rows, text bytes


def encode_texts(texts: Sequence[str]) -> bytes:
    """The table of ``texts`` (one per row, in row order), in memory (:class:`TextTableWriter`
    writes the same bytes row by row)."""
    w = TextTableWriter()
    for t in texts:
        w.add(t)
    return b"".join(w.chunks())


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


# ---- writing a table row by row (the on-disk index build's one pass over the chunks) ----------
class TextTableWriter:
    """A table written one text at a time, never holding the texts: each text's utf-8 goes to
    ``path`` (the table's text part, a side file; ``None``: in memory, for
    :func:`encode_texts`) and only its end offset is kept (8 bytes a row). :meth:`chunks`
    yields the whole table (header | offsets | text: exactly :func:`encode_texts`' bytes for
    the same texts), reading the side file back in blocks, for ``ObjectStore.put_stream``
    (as often as needed); :meth:`texts` reads rows back."""

    def __init__(self, path: Path | None = None) -> None:
        import array

        self._path = path
        self._fh: Any = open(path, "wb") if path is not None else io.BytesIO()  # noqa: SIM115
        self._ends = array.array("Q")
        self._reader: ReadAt | None = None
        self.size = 0

    def __len__(self) -> int:
        return len(self._ends)

    def add(self, text: str) -> None:
        if self._reader is not None:  # written to again after a read
            self._reader.close()
            self._reader = None
        blob = text.encode("utf-8")
        self._fh.write(blob)
        self.size += len(blob)
        self._ends.append(self.size)

    def _read(self, lo: int, hi: int) -> bytes:
        if self._path is None:
            with self._fh.getbuffer() as view:
                return bytes(view[lo:hi])
        if self._reader is None:
            self._fh.flush()
            self._reader = ReadAt(self._path)
        out = self._reader.read(lo, hi - lo)
        if len(out) != hi - lo:
            raise IntegrityError(f"chunk texts: side file {self._path} ends at {lo + len(out)}")
        return out

    def text(self, row: int) -> str:
        """Row ``row``'s text, read back from the side file."""
        lo = self._ends[row - 1] if row else 0
        return self._read(lo, self._ends[row]).decode("utf-8")

    def texts(self, rows: Iterable[int]) -> list[str]:
        return [self.text(int(r)) for r in rows]

    def chunks(self, block: int = 1 << 20) -> Iterator[bytes]:
        import numpy as np

        yield _HEAD.pack(MAGIC, len(self._ends), self.size)
        yield bytes(8)  # offsets[0]
        ends = np.frombuffer(self._ends, dtype=np.uint64) if len(self._ends) else None
        step = block // 8
        for lo in range(0, len(self._ends), step):
            assert ends is not None
            yield ends[lo : lo + step].astype("<u8").tobytes()
        for lo in range(0, self.size, block):
            yield self._read(lo, min(lo + block, self.size))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._fh.close()
