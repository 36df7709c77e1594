"""Pack objects: many small documents in one content-addressed object, fsynced once.

A **pack** is an ordinary object (named by the sha256 of its bytes): ``GRPACK1\\n`` followed
by the stored bytes of its documents, concatenated. Its **index** is another object:
``GRPIDX1\\n`` + the pack's hex + ``\\n`` + one 48-byte record per document (sha256 (32 bytes),
offset, length as big-endian u64), sorted by sha. Each pack is recorded as a derived row
(``kind="pack"``, ``object_digest`` = pack hex, ``meta.index`` = index hex), so any machine
sharing the object store and database can find it.

:class:`PackIndex` is a local, rebuildable cache (``packs.sqlite`` in the registry home)
mapping document sha -> (pack, offset, length); it keeps per-document rows out of the
metadata database. Writers stage packs in temp files and commit them (fsync + rename) only
when the whole snapshot has been read without error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from genreg.errors import IntegrityError
from genreg.store.objects import ObjectStore, ensure_stored, staging_file

PACK_MAGIC = b"GRPACK1\n"
IDX_MAGIC = b"GRPIDX1\n"
_REC = struct.Struct(">32sQQ")
MAX_PACK = 256 << 20
Loc = tuple[str, int, int]  # pack hex, offset, length


@dataclass
class PackInfo:
    pack: str
    index: str
    count: int
    size: int
    records: list[tuple[bytes, int, int]] = field(default_factory=list, repr=False)


def index_bytes(pack: str, records: list[tuple[bytes, int, int]]) -> bytes:
    return IDX_MAGIC + pack.encode() + b"\n" + b"".join(_REC.pack(*r) for r in sorted(records))


def parse_index(data: bytes) -> tuple[str, list[tuple[bytes, int, int]]]:
    if not data.startswith(IDX_MAGIC):
        raise IntegrityError("not a genreg pack index object")
    pack = data[len(IDX_MAGIC) : len(IDX_MAGIC) + 64].decode()
    body = memoryview(data)[len(IDX_MAGIC) + 65 :]
    return pack, [_REC.unpack_from(body, i) for i in range(0, len(body), _REC.size)]


def check_pack(objects: ObjectStore, pack: str, index: str) -> str | None:
    """Why the index object ``index`` does not describe pack ``pack``, or None: it must name
    the pack, and every record's byte range must lie inside the pack and hash to its sha.
    Reads the pack once (``pread`` on a local store)."""
    try:
        named, records = parse_index(objects.get_bytes(index, verify=False))
    except (IntegrityError, struct.error, UnicodeDecodeError):
        return "index object is not a pack index"
    if named != pack:
        return f"index names pack {named[:12]}..., not this pack"
    path = objects.local_path(pack)
    data: bytes | None = None
    fd = os.open(path, os.O_RDONLY) if path is not None else None
    try:
        size = os.fstat(fd).st_size if fd is not None else len(data := objects.get_bytes(pack))
        for sha, off, n in records:
            if off < len(PACK_MAGIC) or off + n > size:
                return f"record {sha.hex()[:12]}... points outside the pack"
            chunk = os.pread(fd, n, off) if fd is not None else data[off : off + n]  # type: ignore[index]  # data is set when fd is None
            if hashlib.sha256(chunk).digest() != sha:
                return f"record {sha.hex()[:12]}... does not match the pack's bytes"
    finally:
        if fd is not None:
            os.close(fd)
    return None


class _Staged:
    def __init__(self, fh: BinaryIO, name: str) -> None:
        self.fh, self.name = fh, name
        self.h = hashlib.sha256(PACK_MAGIC)
        fh.write(PACK_MAGIC)
        self.size = len(PACK_MAGIC)
        self.records: list[tuple[bytes, int, int]] = []


class PackWriter:
    """Stage new documents into temp pack files; :meth:`commit` makes them durable objects."""

    def __init__(
        self,
        objects: ObjectStore,
        tmp_dir: Path,
        known: Callable[[bytes], bool],
        max_bytes: int = MAX_PACK,
    ) -> None:
        self.objects = objects
        self.tmp_dir = tmp_dir
        self.known = known
        self.max_bytes = max_bytes
        self.pending: set[bytes] = set()
        self.staged: list[_Staged] = []
        self.committed: list[tuple[_Staged, PackInfo]] = []  # staged file, pack: to finish()
        self.new_docs = 0
        self.new_bytes = 0

    def has(self, sha: bytes) -> bool:
        return sha in self.pending or self.known(sha)

    def add(self, hexdigest: str, data: bytes) -> None:
        sha = bytes.fromhex(hexdigest)
        if self.has(sha):
            return
        cur = self.staged[-1] if self.staged else None
        if cur is None or cur.size + len(data) > self.max_bytes and cur.records:
            # locked until finish()/abort(): gc leaves the file alone
            fd, name = staging_file(self.tmp_dir, prefix="pack-")
            cur = _Staged(os.fdopen(fd, "wb", buffering=1 << 20), name)
            self.staged.append(cur)
        cur.records.append((sha, cur.size, len(data)))
        cur.fh.write(data)
        cur.h.update(data)
        cur.size += len(data)
        self.pending.add(sha)
        self.new_docs += 1
        self.new_bytes += len(data)

    def commit(self) -> list[PackInfo]:
        """fsync each staged pack once, move it into the object store, store its index.

        The staged file is kept (hard-linked into place on a local store) until
        :meth:`finish`, called once the rows naming the packs are committed: a pack that a
        concurrent ``gc`` hid meanwhile is then stored again from it."""
        out = []
        for st in self.staged:
            st.fh.flush()
            os.fsync(st.fh.fileno())  # stays open (and locked) until finish()
            hexd = st.h.hexdigest()
            self.objects.adopt_file(Path(st.name), hexd)  # a link when staged in the store
            idx = self.objects.put_bytes(index_bytes(hexd, st.records))
            info = PackInfo(hexd, idx, len(st.records), st.size, st.records)
            out.append(info)
            self.committed.append((st, info))
        self.staged = []
        return out

    def finish(self) -> None:
        """After the rows naming the packs committed: re-store any pack or index object a
        concurrent ``gc`` hid between the write and the commit, then drop the staged files."""
        for st, info in self.committed:
            if not self.objects.has(info.pack):
                self.objects.adopt_file(Path(st.name), info.pack)
            ensure_stored(self.objects, info.index, index_bytes(info.pack, info.records))
            _drop(st)
        self.committed = []

    def abort(self) -> None:
        for st in self.staged + [st for st, _ in self.committed]:
            _drop(st)
        self.staged = []
        self.committed = []


def _drop(st: _Staged) -> None:
    with contextlib.suppress(OSError):
        os.unlink(st.name)
    with contextlib.suppress(OSError):
        st.fh.close()


class PackIndex:
    """Local cache: document sha -> (pack, offset, length). Rebuildable from index objects."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()  # one connection shared by the API's worker threads
        self.conn = sqlite3.connect(
            str(path), timeout=30, isolation_level=None, check_same_thread=False
        )
        c = self.conn
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA busy_timeout=30000")
        c.execute(
            "CREATE TABLE IF NOT EXISTS pack (id INTEGER PRIMARY KEY, hex TEXT UNIQUE NOT NULL,"
            " idx TEXT NOT NULL)"
        )
        c.execute(
            "CREATE TABLE IF NOT EXISTS blob (sha BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
            " off INTEGER NOT NULL, len INTEGER NOT NULL) WITHOUT ROWID"
        )

    def close(self) -> None:
        self.conn.close()

    def packs(self) -> set[str]:
        with self.lock:
            return {r[0] for r in self.conn.execute("SELECT hex FROM pack")}

    def all_shas(self) -> set[bytes]:
        with self.lock:
            return {r[0] for r in self.conn.execute("SELECT sha FROM blob")}

    def add(self, pack: str, idx: str, records: Iterable[tuple[bytes, int, int]]) -> None:
        with self.lock:
            self._add(pack, idx, records)

    def _add(self, pack: str, idx: str, records: Iterable[tuple[bytes, int, int]]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("INSERT OR IGNORE INTO pack (hex, idx) VALUES (?, ?)", (pack, idx))
            pid = c.execute("SELECT id FROM pack WHERE hex=?", (pack,)).fetchone()[0]
            c.executemany(
                "INSERT OR IGNORE INTO blob (sha, pack, off, len) VALUES (?, ?, ?, ?)",
                ((s, pid, o, n) for s, o, n in records),
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def records_of(self, pack: str) -> list[tuple[bytes, int, int]] | None:
        """The cached (sha, offset, length) rows of ``pack`` sorted by sha; None if not
        cached."""
        with self.lock:
            row = self.conn.execute("SELECT id FROM pack WHERE hex=?", (pack,)).fetchone()
            if row is None:
                return None
            return [
                (bytes(s), o, n)
                for s, o, n in self.conn.execute(
                    "SELECT sha, off, len FROM blob WHERE pack=? ORDER BY sha", (row[0],)
                )
            ]

    def drop(self, pack: str) -> None:
        """Forget ``pack`` (its rows are re-read from its index object on the next sync)."""
        with self.lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                row = c.execute("SELECT id FROM pack WHERE hex=?", (pack,)).fetchone()
                if row is not None:
                    c.execute("DELETE FROM blob WHERE pack=?", (row[0],))
                    c.execute("DELETE FROM pack WHERE id=?", (row[0],))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def locate(self, shas: list[bytes]) -> dict[bytes, Loc]:
        out: dict[bytes, Loc] = {}
        for i in range(0, len(shas), 500):
            part = shas[i : i + 500]
            q = (
                "SELECT b.sha, p.hex, b.off, b.len FROM blob b JOIN pack p ON p.id=b.pack "
                f"WHERE b.sha IN ({','.join('?' * len(part))})"
            )
            with self.lock:
                rows = self.conn.execute(q, part).fetchall()
            for sha, pack, off, n in rows:
                out[sha] = (pack, off, n)
        return out


class PackReader:
    """Read document bytes out of packs (``os.pread`` on local objects)."""

    def __init__(self, objects: ObjectStore, cache_dir: Path) -> None:
        self.objects = objects
        self.cache_dir = cache_dir
        self.fds: dict[str, int] = {}

    def _fd(self, pack: str) -> int:
        fd = self.fds.get(pack)
        if fd is None:
            p = self.objects.local_path(pack)
            if p is None or not p.exists():
                p = self.cache_dir / pack
                if not p.exists():
                    self.cache_dir.mkdir(parents=True, exist_ok=True)
                    fd, tmp = staging_file(self.cache_dir, suffix=".tmp")
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(self.objects.get_bytes(pack))
                        os.replace(tmp, p)
            fd = os.open(p, os.O_RDONLY)
            self.fds[pack] = fd
        return fd

    def read(self, loc: Loc, expect: str | None = None) -> bytes:
        pack, off, n = loc
        data = os.pread(self._fd(pack), n, off)
        if expect is not None and hashlib.sha256(data).hexdigest() != expect:
            raise IntegrityError(f"document sha256:{expect} in pack {pack[:12]} is corrupt")
        return data

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}
