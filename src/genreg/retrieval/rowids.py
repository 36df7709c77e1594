"""The chunk -> document table of an on-disk (``ivfpq`` / ``ivf_hnsw``) index, compact and
memory-mapped: what each FAISS row is (document id, chunk number) without a Python object per
row.

A flat index keeps its ``doc_ids`` / ``chunk_index`` lists in the index meta (JSON, loaded as
Python lists: ~70 bytes a row, ~700 MB at 10M chunks). An on-disk index stores them as one
object (``meta["rowids"]``)::

    b"GRROWIDS" | uint64 rows | uint64 docs | uint64 name bytes
    | int32 document number per row | int32 chunk index per row
    | uint64 name offsets (docs + 1) | the document ids, utf-8, concatenated

(little-endian; documents numbered in order of first appearance, each id stored once: 8 bytes a
row plus the names). :func:`open_rowids` memory-maps the object's file read-only, so opening
reads only the 32-byte header, and a lookup (:class:`RowIds`, ``doc_ids[r]``) touches the pages
of the rows asked for -- the hits of a query. Indexes stored before this table keep their JSON
lists (and open as before).
"""

from __future__ import annotations

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


class RowIds:
    """A decoded table over a buffer (a read-only memory map, or bytes): ``doc_ids`` and
    ``chunk_index`` are sequences read on access, nothing is decoded up front."""

    def __init__(self, buf: Any, where: str = "rowids") -> None:
        import numpy as np

        raw = buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, dtype=np.uint8)
        self.buf = raw  # every column below is a view of it (no copy)
        if len(raw) < _HEAD.size:
            raise IntegrityError(f"{where}: truncated header")
        magic, n, docs, name_bytes = _HEAD.unpack_from(bytes(raw[: _HEAD.size]))
        if magic != MAGIC:
            raise IntegrityError(f"{where}: not a genreg row-id table")
        at = _HEAD.size
        if len(raw) != at + 8 * n + 8 * (docs + 1) + name_bytes:
            raise IntegrityError(f"{where}: truncated or padded (size does not match header)")
        self.n_rows, self.n_docs = int(n), int(docs)
        self.doc_of = raw[at : at + 4 * n].view("<i4")
        self.chunks = raw[at + 4 * n : at + 8 * n].view("<i4")
        at += 8 * n
        self.offsets = raw[at : at + 8 * (docs + 1)].view("<u8")
        self.names = raw[at + 8 * (docs + 1) :]
        self.doc_ids = DocIds(self)
        self.chunk_index = ChunkIndex(self)

    @property
    def chunked(self) -> bool:
        """Some document has more than one row."""
        return self.n_docs < self.n_rows

    def doc_name(self, doc: int) -> str:
        lo, hi = int(self.offsets[doc]), int(self.offsets[doc + 1])
        return self.names[lo:hi].tobytes().decode("utf-8")


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
        return self.table.doc_name(int(self.table.doc_of[row]))


class ChunkIndex(_Column):
    """The chunk number of each row within its document (``int``)."""

    def _one(self, row: int) -> int:
        return int(self.table.chunks[row])


def open_rowids(objects: ObjectStore, digest: str, spill_dir: Path) -> RowIds:
    """The stored table ``digest``, memory-mapped read-only from the object's file (a store
    without local files, such as S3: copied, verified, into ``spill_dir`` once)."""
    where = f"rowids {digest}"
    return RowIds(map_object(objects, digest, spill_dir, where), where)


def map_object(objects: ObjectStore, digest: str, spill_dir: Path, where: str) -> Any:
    """The object ``digest`` as a read-only ``uint8`` memory map of its file (a store without
    local files, such as S3: copied, verified, into ``spill_dir`` once). Shared by the row-id
    and chunk-text tables (:mod:`genreg.retrieval.texttable`)."""
    import numpy as np

    path = objects.local_path(digest)
    if path is None or not path.exists():
        path = spill_dir / digest.removeprefix("sha256:")
        if not path.exists():
            spill_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(objects.get_bytes(digest))  # get_bytes verifies the digest
            os.replace(tmp, path)
    if path.stat().st_size == 0:
        raise IntegrityError(f"{where}: empty")
    return np.memmap(path, dtype=np.uint8, mode="r")
