"""Content-addressed object store.

Objects are named by the sha256 of their bytes and sharded by the first two hex digits:
``objects/ab/cdef...``. Writes go to a temp file, are fsynced, then renamed into place, so a
reader never sees a partial object; stored files are made read-only. Reads verify the digest.

Garbage collection never deletes an object in place: it first *hides* it (moves it to
``trash/``), re-reads every reference, then restores or purges it (see
:mod:`genreg.service.admin`). ``has`` does not see hidden objects -- so a writer that checks
after committing its version (:func:`ensure_stored`) rewrites any object gc hid meanwhile --
while ``get_bytes`` still reads them, so a version committed during a gc stays readable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
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
    def mtime(self, digest: str) -> float | None:
        """When the object was last written or reused (None: the backend does not say);
        FileNotFoundError when it is not stored."""
        ...

    def staging_dir(self) -> Path | None:
        """The local directory where this store stages writes (None: not local); a finished
        file there can be committed without a copy, and gc reclaims abandoned ones."""
        ...

    def adopt_file(self, path: Path, digest: str) -> None:
        """Store the finished, fsynced file at ``path`` (whose sha256 is ``digest``) under its
        digest, keeping ``path``: hard-linked into place when it lies in
        :meth:`staging_dir`, else copied (IntegrityError when the bytes differ)."""
        ...

    def hide(self, digest: str) -> bool: ...
    def unhide(self, digest: str) -> None: ...
    def purge_hidden(self, digest: str) -> None: ...
    def iter_hidden(self) -> Iterator[tuple[str, int, float]]: ...


def ensure_stored(store: ObjectStore, digest: str, data: bytes) -> None:
    """Call after committing the row that references ``digest``: rewrites the object when a
    concurrent ``gc`` hid or deleted it between the writer's put and its commit."""
    if not store.has(digest):
        got = store.put_bytes(data)
        if got != strip_prefix(digest):
            raise IntegrityError(f"object sha256:{strip_prefix(digest)}: rewritten bytes differ")


def ensure_stored_stream(
    store: ObjectStore, digest: str, chunks: Callable[[], Iterable[bytes]]
) -> None:
    """:func:`ensure_stored` for an object written with ``put_stream`` (from a file, never
    whole in memory): ``chunks()`` yields its bytes again when a concurrent ``gc`` hid it."""
    if not store.has(digest):
        got = store.put_stream(chunks())
        if got != strip_prefix(digest):
            raise IntegrityError(f"object sha256:{strip_prefix(digest)}: rewritten bytes differ")


def local_file(store: ObjectStore, digest: str, spill_dir: Path) -> Path:
    """A local file holding object ``digest``: the store's own file, or (a store without local
    files, such as S3) a copy in ``spill_dir`` made once -- verified (``get_bytes`` checks the
    digest), written under a name unique to this process and thread, then renamed into place,
    so concurrent readers never see a partial copy. Read by the on-disk index's row-id and
    chunk-text tables and the refine reader's cache shards."""
    import threading

    path = store.local_path(digest)
    if path is not None and path.exists():
        return path
    dest = spill_dir / strip_prefix(digest)
    if not dest.exists():
        spill_dir.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            tmp.write_bytes(store.get_bytes(digest))
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return dest


def adopt_by_copy(store: ObjectStore, path: Path, digest: str) -> None:
    """:meth:`ObjectStore.adopt_file` for stores that cannot link: stream the file in."""

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                yield block

    got = store.put_stream(chunks())
    if got != strip_prefix(digest):
        raise IntegrityError(f"object {strip_prefix(digest)} changed while being stored")


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
        self._trash = self.root / "trash"
        self._made: set[str] = set()

    def _path(self, digest: str) -> Path:
        d = strip_prefix(digest)
        if len(d) != 64:
            raise NotFound(f"object {digest!r}: not a full sha256 digest")
        return self.root / d[:2] / d[2:]

    def local_path(self, digest: str) -> Path | None:
        return self._path(digest)

    def mtime(self, digest: str) -> float | None:
        return self._path(digest).stat().st_mtime

    def staging_dir(self) -> Path | None:
        return self._tmp

    def adopt_file(self, path: Path, digest: str) -> None:
        if Path(path).parent != self._tmp:
            adopt_by_copy(self, path, digest)
            return
        dest = self._path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o444)
        try:
            os.link(path, dest)
        except FileExistsError:
            with contextlib.suppress(OSError):
                os.utime(dest)

    def has(self, digest: str) -> bool:
        return self._path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"object sha256:{strip_prefix(digest)} is missing") from None

    def _tempfile(self) -> tuple[BinaryIO, str]:
        fd, name = staging_file(self._tmp, prefix="obj-")
        return os.fdopen(fd, "wb"), name

    def _commit(self, tmp_name: str, digest: str) -> None:
        dest = self._path(digest)
        shard = dest.parent
        if shard.name not in self._made:
            shard.mkdir(parents=True, exist_ok=True)
            self._made.add(shard.name)
        if dest.exists():
            os.unlink(tmp_name)
            _touch(dest)
            return
        os.chmod(tmp_name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp_name, dest)

    def put_bytes(self, data: bytes, *, fsync: bool = True) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.has(digest):
            _touch(self._path(digest))  # reused: a fresh mtime restarts gc's grace period
            return digest
        fh, name = self._tempfile()
        try:
            with fh:  # committed while open: the staging lock is held until it is in place
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
            data = _read_file(self._path(d), d)
        except FileNotFoundError:
            try:  # hidden by a gc in progress (or by one that was killed): still readable
                data = _read_file(self._trash / d, d)
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

    # ---- gc's two-phase delete ----------------------------------------------------------
    def hide(self, digest: str) -> bool:
        """Move the object to ``trash/`` (False when it is not there)."""
        self._trash.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(self._path(digest), self._trash / strip_prefix(digest))
        except FileNotFoundError:
            return False
        return True

    def unhide(self, digest: str) -> None:
        """Put a hidden object back (a no-op when a writer already stored it again)."""
        d = strip_prefix(digest)
        src, dest = self._trash / d, self._path(d)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if dest.exists():
                src.unlink()
            else:
                os.replace(src, dest)

    def purge_hidden(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._trash / strip_prefix(digest)).unlink()

    def iter_hidden(self) -> Iterator[tuple[str, int, float]]:
        """(digest, size, mtime) of every hidden object."""
        if not self._trash.is_dir():
            return
        for f in sorted(self._trash.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                st = f.stat()
                if len(f.name) == 64:
                    yield f.name, st.st_size, st.st_mtime


def staging_file(directory: Path, prefix: str = "", suffix: str = "") -> tuple[int, str]:
    """A new temp file in ``directory`` (fd, path), locked as in use: gc never reclaims a
    staging file whose lock is held, whatever its age. The lock dies with the process (kill
    -9 included), which is how gc tells a dead writer's leftovers from a live one's."""
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: gc relies on the grace period
            return fd, name
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits while a gc holds it...
        if os.fstat(fd).st_nlink > 0:
            return fd, name
        os.close(fd)  # ...which reclaimed it in the instant before we locked it: again


def _lock_now(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting: False when a live process holds it
    (no ``fcntl``, as on Windows: True -- nothing to check)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def reclaim_staging(path: Path) -> bool:
    """Delete a staging file unless a live writer holds its lock (True when deleted)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        if not _lock_now(fd):
            return False  # in use
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def staging_in_use(path: Path) -> bool:
    """True when a live writer holds ``path``'s staging lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


WORKDIR_LOCK = ".lock"


class StagingDir:
    """A new work directory in ``directory`` for one process (a build's temp files), locked
    as in use for its lifetime the way :func:`staging_file` locks a file: the process holds
    an exclusive ``flock`` on ``<dir>/.lock``, so gc reclaims the directory of a killed
    process (the lock dies with it, kill -9 included) and never a live one's, whatever its
    age (:func:`staging_dir_state`, :func:`reclaim_staging_dir`). :meth:`close` removes it."""

    def __init__(self, directory: Path, prefix: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            path = Path(tempfile.mkdtemp(dir=directory, prefix=prefix))
            try:
                fd = os.open(path / WORKDIR_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
            except FileNotFoundError:
                continue  # a gc reclaimed it (no lock yet, past a zero grace): again
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX: gc relies on the grace period
                break
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits while a gc holds it...
            if os.fstat(fd).st_nlink > 0:
                break
            os.close(fd)  # ...which reclaimed the directory before we locked it: again
        self.path = path
        self._fd: int | None = fd

    def close(self) -> None:
        """Remove the directory, then release its lock."""
        import shutil

        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.close()


def staging_dir_state(path: Path) -> str:
    """``"live"`` when a live process holds the work directory's lock (:class:`StagingDir`),
    ``"dead"`` when its lock file is there but nobody holds it (a killed process's), else
    ``"unknown"`` (no lock file: being created, or made by other code; not POSIX): then only
    its age can tell."""
    lock = path / WORKDIR_LOCK
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover
        return "unknown"
    if not lock.is_file():
        return "unknown"
    return "live" if staging_in_use(lock) else "dead"


def reclaim_staging_dir(path: Path) -> bool:
    """Remove a work directory unless a live process holds its lock (True when removed).
    gc takes the lock itself (creating the lock file if there is none) while it removes the
    directory, so a process creating it meanwhile sees its lock file gone and starts over."""
    import shutil

    try:
        fd = os.open(path / WORKDIR_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:
        return False  # already gone
    try:
        if not _lock_now(fd):
            return False  # in use
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()
    finally:
        os.close(fd)


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _read_file(path: Path, digest: str) -> bytes:
    """The bytes of a stored object; a directory (or unreadable file) where the object should
    be is reported as a corrupt object in one line, not a traceback."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IntegrityError(
            f"object sha256:{digest} is corrupt (unreadable: {exc.strerror})"
        ) from None


def open_object_store(url: str) -> ObjectStore:
    """A local path or ``file://`` URL gives a :class:`LocalObjectStore`; other fsspec URLs
    (``s3://bucket/prefix``, ``memory://``) give an fsspec-backed store."""
    if "://" not in url or url.startswith("file://"):
        return LocalObjectStore(Path(url.removeprefix("file://")))
    from genreg.store.fsspec_objects import FsspecObjectStore

    return FsspecObjectStore(url)
