"""Content-addressed object store.

Objects are named by the sha256 of their bytes and sharded by the first two hex digits:
``objects/ab/cdef...``. Writes go to a temp file, are fsynced, then renamed into place, so a
reader never sees a partial object; stored files are made read-only. Reads verify the digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from genreg.core.hashing import strip_prefix
from genreg.errors import IntegrityError, NotFound

CHUNK = 1 << 20


class ObjectStore(Protocol):
    """What every backend offers. Digests are bare sha256 hex (no ``sha256:`` prefix)."""

    url: str

    def put_bytes(self, data: bytes, *, fsync: bool = True) -> str: ...
    def put_stream(self, chunks: Iterable[bytes]) -> str: ...
    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes: ...
    def has(self, digest: str) -> bool: ...
    def size(self, digest: str) -> int: ...
    def iter_digests(self) -> Iterator[str]: ...
    def delete(self, digest: str) -> None: ...
    def local_path(self, digest: str) -> Path | None: ...


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalObjectStore:
    """Objects in a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        self._tmp = self.root / "tmp"
        self._made: set[str] = set()

    def _path(self, digest: str) -> Path:
        d = strip_prefix(digest)
        if len(d) != 64:
            raise NotFound(f"object {digest!r}: not a full sha256 digest")
        return self.root / d[:2] / d[2:]

    def local_path(self, digest: str) -> Path | None:
        return self._path(digest)

    def has(self, digest: str) -> bool:
        return self._path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"object sha256:{strip_prefix(digest)} is missing") from None

    def _tempfile(self) -> tuple[BinaryIO, str]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="obj-")
        return os.fdopen(fd, "wb"), name

    def _commit(self, tmp_name: str, digest: str) -> None:
        dest = self._path(digest)
        shard = dest.parent
        if shard.name not in self._made:
            shard.mkdir(parents=True, exist_ok=True)
            self._made.add(shard.name)
        if dest.exists():
            os.unlink(tmp_name)
            return
        os.chmod(tmp_name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp_name, dest)

    def put_bytes(self, data: bytes, *, fsync: bool = True) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest
        fh, name = self._tempfile()
        try:
            with fh:
                fh.write(data)
                fh.flush()
                if fsync:
                    os.fsync(fh.fileno())
            self._commit(name, digest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        return digest

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        h = hashlib.sha256()
        fh, name = self._tempfile()
        try:
            with fh:
                for c in chunks:
                    h.update(c)
                    fh.write(c)
                fh.flush()
                os.fsync(fh.fileno())
            self._commit(name, h.hexdigest())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        return h.hexdigest()

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        d = strip_prefix(digest)
        try:
            data = self._path(d).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"object sha256:{d} is missing from {self.url}") from None
        if verify and hashlib.sha256(data).hexdigest() != d:
            raise IntegrityError(f"object sha256:{d} is corrupt (content does not match digest)")
        return data

    def iter_digests(self) -> Iterator[str]:
        if not self.root.exists():
            return
        for shard in sorted(self.root.iterdir()):
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for f in sorted(shard.iterdir()):
                yield shard.name + f.name

    def delete(self, digest: str) -> None:
        p = self._path(digest)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(p, stat.S_IWUSR | stat.S_IRUSR)
            p.unlink()


def open_object_store(url: str) -> ObjectStore:
    """A local path or ``file://`` URL gives a :class:`LocalObjectStore`; other fsspec URLs
    (``s3://bucket/prefix``, ``memory://``) give an fsspec-backed store."""
    if "://" not in url or url.startswith("file://"):
        return LocalObjectStore(Path(url.removeprefix("file://")))
    from genreg.store.fsspec_objects import FsspecObjectStore

    return FsspecObjectStore(url)
