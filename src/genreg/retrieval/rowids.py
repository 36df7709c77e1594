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
    """The table of ``doc_ids`` / ``chunk_index`` (one each per row)."""
    import numpy as np

    n = len(doc_ids)
    if len(chunk_index) != n:
        raise ValueError("rowids: doc_ids and chunk_index differ in length")
    number: dict[str, int] = {}
    doc_of = np.fromiter((number.setdefault(d, len(number)) for d in doc_ids), dtype="<i4", count=n)
    chunks = np.asarray(chunk_index, dtype=np.int64)
    if n and (int(chunks.min()) < 0 or int(chunks.max()) >= 2**31):
        raise ValueError("rowids: a chunk index does not fit in int32")
    names = [d.encode("utf-8") for d in number]
    offsets = np.zeros(len(names) + 1, dtype="<u8")
    np.cumsum([len(b) for b in names], out=offsets[1:])
    blob = b"".join(names)
    head = _HEAD.pack(MAGIC, n, len(names), len(blob))
    return head + doc_of.tobytes() + chunks.astype("<i4").tobytes() + offsets.tobytes() + blob


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
        self.doc_ids = DocIds(self)
        self.chunk_index = ChunkIndex(self)

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
    path = objects.local_path(digest)
    if path is None or not path.exists():
        path = spill_dir / digest.removeprefix("sha256:")
        if not path.exists():
            spill_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(objects.get_bytes(digest))  # get_bytes verifies the digest
            os.replace(tmp, path)
    src = ReadAt(path)
    if len(src) == 0:
        src.close()
        raise IntegrityError(f"{where}: empty")
    return src
