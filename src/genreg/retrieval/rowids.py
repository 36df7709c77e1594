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
    """The table of ``doc_ids`` / ``chunk_index`` (one each per row), in memory
    (:class:`RowIdsWriter` writes the same bytes row by row)."""
    if len(chunk_index) != len(doc_ids):
        raise ValueError("rowids: doc_ids and chunk_index differ in length")
    w = RowIdsWriter()
    for d, c in zip(doc_ids, chunk_index, strict=True):
        w.add(d, c)
    return b"".join(w.chunks())


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
        import hashlib

        if not 0 <= chunk_index < 2**31:
            raise ValueError("rowids: a chunk index does not fit in int32")
        if doc_id != self._last:
            blob = doc_id.encode("utf-8")
            self._names += blob
            self._name_ends.append(len(self._names))
            key = hashlib.blake2b(blob, digest_size=8).digest()
            self._keys.append(int.from_bytes(key, "little"))
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
        self._keys = array.array("Q", range(len(number)))  # distinct: checked
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
