"""The chunk -> document table of an on-disk (``ivfpq`` / ``ivf_hnsw``) index, compact and
read per lookup: what each FAISS row is (document id, chunk number) without a Python object per
row.

A flat index keeps its ``doc_ids`` / ``chunk_index`` lists in the index meta (JSON, loaded as
Python lists: ~70 bytes a row, ~700 MB at 10M chunks). An on-disk index stores them as one
object (``meta["rowids"]``)::

    b"GRROWIDS" | uint64 rows | uint64 docs | uint64 name bytes
    | int32 document number per row | int32 chunk index per row
    | uint64 name offsets (docs + 1) | the document ids, utf-8, concatenated

(little-endian; documents numbered in order of first appearance, each id stored once: 8 bytes a
row plus the names). :func:`open_rowids` opens the object's file and reads only the 32-byte
header; a lookup (:class:`RowIds`, ``doc_ids[r]``) reads the bytes of the rows asked for -- the
hits of a query -- with ``pread`` (:class:`ReadAt`). Nothing is memory-mapped: a long-running
search process does not accumulate the pages of every row it ever returned in its resident set
(at 1M rows a memory map grew by the whole 12 MB table over 9,000 queries; at 10M, 120 MB), and
the kernel's page cache keeps the hot rows fast. Indexes stored before this table keep their
JSON lists (and open as before).
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from genreg.errors import IntegrityError

T = TypeVar("T")

if TYPE_CHECKING:
    from genreg.store.objects import ObjectStore

MAGIC = b"GRROWIDS"
_HEAD = struct.Struct("<8sQQQ")  # magic, rows, docs, name bytes


def encode_rowids(doc_ids: Sequence[str], chunk_index: Sequence[int]) -> bytes:
    """The table of ``doc_ids`` / ``chunk_index`` (one each per row), in memory
    (:class:`RowIdsWriter` writes the same bytes row by row)."""
    if len(chunk_index) != len(doc_ids):
        raise ValueError("rowids: doc_ids and chunk_index differ in length")
    w = RowIdsWriter()
    for d, c in zip(doc_ids, chunk_index, strict=True):
        w.add(d, c)
    return b"".join(w.chunks())


class ReadAt:
    """The bytes of a table, read by offset: a file through ``os.pread`` (nothing mapped, so a
    lookup adds no pages to the process's resident set; thread-safe) or an in-memory buffer
    (``bytes``: a table just encoded, tests)."""

    def __init__(self, source: bytes | bytearray | memoryview | Path) -> None:
        self.path: Path | None = None
        self._fd: int | None = None
        self._buf: memoryview | None = None
        if isinstance(source, Path):
            self.path = source
            self._fd = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            self.size = os.fstat(self._fd).st_size
        else:
            self._buf = memoryview(source).cast("B")
            self.size = len(self._buf)

    def __len__(self) -> int:
        return self.size

    def read(self, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` (fewer only past the end)."""
        if self._buf is not None:
            return bytes(self._buf[offset : offset + n])
        assert self._fd is not None, "closed"
        out = os.pread(self._fd, n, offset)
        while len(out) < n and offset + len(out) < self.size:  # a short read: go on
            more = os.pread(self._fd, n - len(out), offset + len(out))
            if not more:
                break
            out += more
        return out

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def as_source(buf: Any) -> ReadAt:
    """``buf`` (a :class:`ReadAt`, a file path or bytes) as a :class:`ReadAt`."""
    return buf if isinstance(buf, ReadAt) else ReadAt(buf)


_I4 = struct.Struct("<i")
_U8X2 = struct.Struct("<QQ")


class RowIds:
    """A table over a :class:`ReadAt` (a file, read per lookup, or bytes): ``doc_ids`` and
    ``chunk_index`` are sequences read on access, nothing is decoded up front."""

    def __init__(self, buf: Any, where: str = "rowids") -> None:
        src = as_source(buf)
        self.src, self.where = src, where
        if len(src) < _HEAD.size:
            raise IntegrityError(f"{where}: truncated header")
        magic, n, docs, name_bytes = _HEAD.unpack(src.read(0, _HEAD.size))
        if magic != MAGIC:
            raise IntegrityError(f"{where}: not a genreg row-id table")
        if len(src) != _HEAD.size + 8 * n + 8 * (docs + 1) + name_bytes:
            raise IntegrityError(f"{where}: truncated or padded (size does not match header)")
        self.n_rows, self.n_docs = int(n), int(docs)
        self._doc_at = _HEAD.size  # int32 document number per row
        self._chunk_at = self._doc_at + 4 * self.n_rows  # int32 chunk index per row
        self._off_at = self._chunk_at + 4 * self.n_rows  # uint64 name offsets
        self._names_at = self._off_at + 8 * (self.n_docs + 1)

    # the columns are made on access and point at the table, never the other way round: no
    # reference cycle, so the table's file is closed as soon as the last user drops it
    @property
    def doc_ids(self) -> DocIds:
        return DocIds(self)

    @property
    def chunk_index(self) -> ChunkIndex:
        return ChunkIndex(self)

    @property
    def chunked(self) -> bool:
        """Some document has more than one row."""
        return self.n_docs < self.n_rows

    def _int(self, at: int) -> int:
        raw = self.src.read(at, 4)
        if len(raw) != 4:
            raise IntegrityError(f"{self.where}: truncated")
        return int(_I4.unpack(raw)[0])

    def doc_number(self, row: int) -> int:
        doc = self._int(self._doc_at + 4 * row)
        if not 0 <= doc < self.n_docs:
            raise IntegrityError(f"{self.where}: row {row} names document {doc}")
        return doc

    def chunk(self, row: int) -> int:
        return self._int(self._chunk_at + 4 * row)

    def doc_name(self, doc: int) -> str:
        lo, hi = _U8X2.unpack(self.src.read(self._off_at + 8 * doc, 16))
        raw = self.src.read(self._names_at + lo, hi - lo) if hi > lo else b""
        if len(raw) != hi - lo or self._names_at + hi > len(self.src):
            raise IntegrityError(f"{self.where}: document {doc} has bad offsets")
        return raw.decode("utf-8")


class LazyRows(Sequence[T]):
    """A read-only sequence of table rows decoded on access (``_one``): the row-id columns
    here and :class:`genreg.retrieval.texttable.TextTable`."""

    def _one(self, row: int) -> T:  # pragma: no cover - overridden
        raise NotImplementedError

    @overload
    def __getitem__(self, row: int) -> T: ...
    @overload
    def __getitem__(self, row: slice) -> list[T]: ...
    def __getitem__(self, row: Any) -> Any:
        if isinstance(row, slice):
            return [self._one(r) for r in range(*row.indices(len(self)))]
        r = int(row)
        if r < 0:
            r += len(self)
        if not 0 <= r < len(self):
            raise IndexError(f"row {int(row)} out of range ({len(self)} rows)")
        return self._one(r)

    def __iter__(self) -> Iterator[T]:
        for r in range(len(self)):
            yield self._one(r)


class _Column(LazyRows[Any]):
    def __init__(self, table: RowIds) -> None:
        self.table = table

    def __len__(self) -> int:
        return self.table.n_rows


class DocIds(_Column):
    """The document id of each row (``str``), decoded on access."""

    def _one(self, row: int) -> str:
        return self.table.doc_name(self.table.doc_number(row))


class ChunkIndex(_Column):
    """The chunk number of each row within its document (``int``)."""

    def _one(self, row: int) -> int:
        return self.table.chunk(row)


def open_rowids(objects: ObjectStore, digest: str, spill_dir: Path) -> RowIds:
    """The stored table ``digest``, read per lookup from the object's file (a store without
    local files, such as S3: copied, verified, into ``spill_dir`` once)."""
    where = f"rowids {digest}"
    return RowIds(object_file(objects, digest, spill_dir, where), where)


def object_file(objects: ObjectStore, digest: str, spill_dir: Path, where: str) -> ReadAt:
    """The object ``digest``'s local file opened for reads by offset (a store without local
    files, such as S3: copied, verified, into ``spill_dir`` once). Shared by the row-id and
    chunk-text tables (:mod:`genreg.retrieval.texttable`)."""
    from genreg.store.objects import local_file

    src = ReadAt(local_file(objects, digest, spill_dir))
    if len(src) == 0:
        src.close()
        raise IntegrityError(f"{where}: empty")
    return src


def _name_key(blob: bytes) -> int:
    """An 8-byte hash of a document id (:class:`RowIdsWriter`'s uniqueness check)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little")


# ---- writing a table row by row (the on-disk index build's one pass over the chunks) ----------
class RowIdsWriter:
    """A table written one row at a time in compact arrays (8 bytes a row, each document id
    once, plus an 8-byte hash a document), no Python object per row. :meth:`chunks` yields
    exactly :func:`encode_rowids`' bytes for the same rows (for ``ObjectStore.put_stream``).

    Documents are numbered in order of first appearance. A snapshot's chunks come document by
    document, each id once, so a row whose id differs from the previous row's starts a new
    document; that is checked when the table is finished (the ids' hashes, sorted): should an
    id come back after another document, the rows are renumbered exactly as
    :func:`encode_rowids` would (a dict over the document ids: only then Python objects per
    document)."""

    _FIRST = object()

    def __init__(self) -> None:
        import array

        self._doc_of = array.array("i")
        self._chunks = array.array("i")
        self._names = bytearray()
        self._name_ends = array.array("Q")
        self._keys = array.array("Q")  # a hash of each document id, to check they are unique
        self._last: object = self._FIRST
        self._checked = False

    def __len__(self) -> int:
        return len(self._doc_of)

    def add(self, doc_id: str, chunk_index: int) -> None:
        if not 0 <= chunk_index < 2**31:
            raise ValueError("rowids: a chunk index does not fit in int32")
        if doc_id != self._last:
            blob = doc_id.encode("utf-8")
            self._names += blob
            self._name_ends.append(len(self._names))
            self._keys.append(_name_key(blob))
            self._last = doc_id
            self._checked = False
        self._doc_of.append(len(self._name_ends) - 1)
        self._chunks.append(chunk_index)

    def _check_unique(self) -> None:
        """Renumber (as :func:`encode_rowids`) when a document id came back later."""
        import array

        import numpy as np

        if self._checked:
            return
        self._checked = True
        keys = np.sort(np.frombuffer(self._keys, dtype=np.uint64))
        if not len(keys) or not (keys[1:] == keys[:-1]).any():
            return  # every document id once: the numbering is first appearance already
        ends = [0, *self._name_ends]
        number: dict[bytes, int] = {}
        remap = [
            number.setdefault(bytes(self._names[ends[i] : ends[i + 1]]), len(number))
            for i in range(len(ends) - 1)
        ]
        if len(number) == len(remap):
            return  # a hash collision, not a repeated id
        doc_of = np.asarray(remap, dtype=np.int32)[np.frombuffer(self._doc_of, dtype=np.int32)]
        self._doc_of = array.array("i", doc_of.tobytes())
        self._names = bytearray(b"".join(number))
        self._name_ends = array.array("Q", np.cumsum([len(b) for b in number], dtype=np.uint64))
        # the ids' own hashes again (distinct now), so a later add of a repeated id is caught
        self._keys = array.array("Q", (_name_key(b) for b in number))
        self._last = self._FIRST

    def chunks(self) -> Iterator[bytes]:
        import numpy as np

        self._check_unique()
        n, docs = len(self._doc_of), len(self._name_ends)
        yield _HEAD.pack(MAGIC, n, docs, len(self._names))
        for col in (self._doc_of, self._chunks):
            if n:
                yield np.frombuffer(col, dtype=np.int32).astype("<i4").tobytes()
        yield bytes(8)  # name offsets[0]
        if docs:
            yield np.frombuffer(self._name_ends, dtype=np.uint64).astype("<u8").tobytes()
        yield bytes(self._names)
