"""Content-addressed objects on any fsspec URL (``s3://bucket/prefix``, ``gs://...``,
``memory://...``), with the same protocol and layout as the local store: ``<root>/ab/cdef...``.

Atomicity (a reader never sees a partial object):

- On object stores (S3 and S3-compatible servers, GCS, Azure blobs, ``memory://``) a whole-object
  PUT is atomic: the key appears only once the upload (single PUT, or the *completion* of a
  multipart upload) succeeds. Bytes are therefore written straight to their final key. The
  digest is known before the upload starts (``put_stream`` spools to a local temp file first),
  so the final key never holds anything but the right bytes.
- On other filesystems (sftp, ftp, ...) bytes go to ``<root>/tmp/<uuid>`` and are then moved
  onto the final key.

Reads verify the digest. Listing caches are disabled on S3 so objects written by other
processes are seen at once. Extra fsspec options (endpoint, credentials...) come from
``GENREG_OBJECTS_OPTIONS`` (a JSON object); S3 endpoints can also be set the AWS way
(``AWS_ENDPOINT_URL``).

Transport failures (the server unreachable, a connection cut mid-upload, a timeout, access
denied) leave this module as one :class:`~genreg.errors.StorageError` line naming the store and
its endpoint (scheme, host and port only: never credentials, keys or query strings). A write
cut this way has not committed its version row, so nothing is half-visible; a re-run converges.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from genreg.core.hashing import strip_prefix
from genreg.core.urls import endpoint_of, redact_url
from genreg.errors import ConfigError, IntegrityError, NotFound, StorageError

_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory", "oss", "r2"}


def storage_options_from_env() -> dict[str, Any]:
    raw = os.environ.get("GENREG_OBJECTS_OPTIONS")
    if not raw:
        return {}
    try:
        opts = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"GENREG_OBJECTS_OPTIONS: invalid JSON: {exc.msg}") from None
    if not isinstance(opts, dict):
        raise ConfigError("GENREG_OBJECTS_OPTIONS: expected a JSON object")
    return opts


class FsspecObjectStore:
    """Objects under an fsspec URL. ``local_path`` is always None (no local file exists)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        opts = dict(storage_options_from_env() if storage_options is None else storage_options)
        protocol = self.url.split("://", 1)[0]
        if protocol in {"s3", "s3a"}:
            opts.setdefault("use_listings_cache", False)
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **opts)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"GENREG_OBJECTS_URL {redact_url(url)!r}: {exc}") from None
        self.fs = fs
        self.root = root.rstrip("/")
        self.protocol = protocol
        self.atomic_put = protocol in _ATOMIC_PUT
        self.shown = redact_url(self.url)

    # ---- transport errors ---------------------------------------------------------------
    @contextlib.contextmanager
    def _io(self, what: str, *, write: bool = False) -> Iterator[None]:
        """Translate a transport failure inside the block into one StorageError line.
        ``FileNotFoundError`` passes through (callers give it its meaning)."""
        try:
            yield
        except FileNotFoundError:
            raise
        except Exception as exc:
            if not _is_transport_error(exc):
                raise
            msg = (
                f"object store {self.shown} (endpoint {self._endpoint(exc)}): {what} failed: "
                f"{_reason(exc)}"
            )
            if write:
                msg += "; nothing was committed -- re-run once the store is reachable"
            raise StorageError(msg, details={"store": self.shown}) from None

    def _endpoint(self, exc: BaseException) -> str:
        candidates: list[Any] = []
        kwargs = getattr(exc, "kwargs", None)  # botocore errors carry the URL they called
        if isinstance(kwargs, dict):
            candidates.append(kwargs.get("endpoint_url"))
        client_kwargs = getattr(self.fs, "client_kwargs", None)
        if isinstance(client_kwargs, dict):
            candidates.append(client_kwargs.get("endpoint_url"))
        candidates.append(getattr(self.fs, "endpoint_url", None))
        if self.protocol in {"s3", "s3a"}:
            candidates += [
                os.environ.get("AWS_ENDPOINT_URL_S3"),
                os.environ.get("AWS_ENDPOINT_URL"),
            ]
        for c in candidates:
            if isinstance(c, str) and "://" in c:
                return endpoint_of(c)
        return "default" if self.protocol in {"s3", "s3a", "gs", "gcs"} else endpoint_of(self.url)

    # ---- paths ------------------------------------------------------------------------
    def _key(self, digest: str) -> str:
        d = strip_prefix(digest)
        if len(d) != 64 or any(c not in "0123456789abcdef" for c in d):
            raise NotFound(f"object {digest!r}: not a full sha256 digest")
        return f"{self.root}/{d[:2]}/{d[2:]}"

    def local_path(self, digest: str) -> Path | None:
        return None

    def mtime(self, digest: str) -> float | None:
        key = self._key(digest)
        with self._io(f"stat of sha256:{strip_prefix(digest)}"):
            info = self.fs.info(key)
        return _info_mtime(info) if any(info.get(k) is not None for k in _MTIME_KEYS) else None

    def staging_dir(self) -> Path | None:
        return None

    def adopt_file(self, path: Path, digest: str) -> None:
        from genreg.store.objects import adopt_by_copy

        adopt_by_copy(self, path, digest)

    # ---- queries ----------------------------------------------------------------------
    def has(self, digest: str) -> bool:
        key = self._key(digest)
        try:
            with self._io(f"lookup of sha256:{strip_prefix(digest)}"):
                return bool(self.fs.exists(key))
        except FileNotFoundError:
            return False

    def size(self, digest: str) -> int:
        key = self._key(digest)
        try:
            with self._io(f"stat of sha256:{strip_prefix(digest)}"):
                return int(self.fs.size(key))
        except FileNotFoundError:
            raise NotFound(f"object sha256:{strip_prefix(digest)} is missing") from None

    def iter_digests(self) -> Iterator[str]:
        try:
            with self._io("listing"):
                paths = self.fs.find(self.root)
        except FileNotFoundError:
            return
        prefix = self.root + "/" if self.root else ""
        out = []
        for p in paths:
            rel = p.removeprefix(prefix).lstrip("/")
            shard, _, rest = rel.partition("/")
            if len(shard) == 2 and len(rest) == 62 and "/" not in rest:
                out.append(shard + rest)
        yield from sorted(out)

    # ---- writes -----------------------------------------------------------------------
    def put_bytes(self, data: bytes, *, fsync: bool = True) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest
        self._upload(digest, lambda dest: self.fs.pipe_file(dest, data))
        return digest

    def _upload(self, digest: str, send: Callable[[str], object]) -> None:
        """``send(dest)`` the object's bytes under its key: straight there on a store whose
        writes are atomic, else to ``tmp/`` first and moved into place (never half-visible)."""
        key = self._key(digest)
        with self._io(f"upload of sha256:{digest}", write=True):
            if self.atomic_put:
                send(key)
            else:
                tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
                send(tmp)
                self._move(tmp, key)

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        """Spool to a local temp file while hashing, then upload the whole file at once."""
        h = hashlib.sha256()
        fd, name = tempfile.mkstemp(prefix="genreg-obj-")
        try:
            with os.fdopen(fd, "wb") as fh:
                for c in chunks:
                    h.update(c)
                    fh.write(c)
            digest = h.hexdigest()
            if self.has(digest):
                return digest
            self._upload(digest, lambda dest: self.fs.put_file(name, dest))
            return digest
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def _move(self, tmp: str, key: str) -> None:
        try:
            self.fs.mv(tmp, key)
        finally:
            with contextlib.suppress(FileNotFoundError):
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)

    # ---- reads ------------------------------------------------------------------------
    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        d = strip_prefix(digest)
        key, trash = self._key(d), self._trash_key(d)
        try:
            with self._io(f"download of sha256:{d}"):
                data = bytes(self.fs.cat_file(key))
        except FileNotFoundError:
            try:  # hidden by a gc in progress (or by one that was killed): still readable
                with self._io(f"download of sha256:{d}"):
                    data = bytes(self.fs.cat_file(trash))
            except FileNotFoundError:
                raise NotFound(f"object sha256:{d} is missing from {self.shown}") from None
        if verify and hashlib.sha256(data).hexdigest() != d:
            raise IntegrityError(f"object sha256:{d} is corrupt (content does not match digest)")
        return data

    def delete(self, digest: str) -> None:
        key = self._key(digest)
        with contextlib.suppress(FileNotFoundError), self._io(f"delete of sha256:{digest}"):
            self.fs.rm_file(key)

    # ---- gc's two-phase delete (see genreg.store.objects) -------------------------------
    def _trash_key(self, digest: str) -> str:
        self._key(digest)  # validates
        return f"{self.root}/trash/{strip_prefix(digest)}"

    def hide(self, digest: str) -> bool:
        key, trash = self._key(digest), self._trash_key(digest)
        with self._io(f"hiding sha256:{digest}"):
            try:
                self.fs.copy(key, trash)  # server-side copy, then delete: a move on S3
            except FileNotFoundError:
                return False
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(key)
        return True

    def unhide(self, digest: str) -> None:
        key, trash = self._key(digest), self._trash_key(digest)
        with contextlib.suppress(FileNotFoundError), self._io(f"unhiding sha256:{digest}"):
            if not self.fs.exists(key):
                self.fs.copy(trash, key)
            self.fs.rm_file(trash)

    def purge_hidden(self, digest: str) -> None:
        trash = self._trash_key(digest)
        with contextlib.suppress(FileNotFoundError), self._io(f"purge of sha256:{digest}"):
            self.fs.rm_file(trash)

    def iter_hidden(self) -> Iterator[tuple[str, int, float]]:
        try:
            with self._io("listing"):
                infos = self.fs.ls(f"{self.root}/trash", detail=True)
        except FileNotFoundError:
            return
        for info in sorted(infos, key=lambda i: str(i["name"])):
            name = str(info["name"]).rsplit("/", 1)[-1]
            if len(name) == 64 and info.get("type") != "directory":
                yield name, int(info.get("size") or 0), _info_mtime(info)


_MTIME_KEYS = ("LastModified", "mtime", "created", "last_modified")


def _info_mtime(info: dict[str, Any]) -> float:
    for k in _MTIME_KEYS:
        v = info.get(k)
        if v is not None:
            return float(v.timestamp()) if hasattr(v, "timestamp") else float(v)
    return 0.0


# Libraries whose exceptions are transport failures (the storage backends fsspec drives).
_TRANSPORT_MODULES = {
    "aiobotocore",
    "aiohttp",
    "adlfs",
    "azure",
    "botocore",
    "fsspec",
    "gcsfs",
    "google",
    "paramiko",
    "requests",
    "s3fs",
    "urllib3",
}

_REASONS = {
    "ConnectionClosedError": "the connection was closed mid-request",
    "EndpointConnectionError": "could not connect (connection refused or reset)",
    "ConnectTimeoutError": "timed out connecting",
    "ReadTimeoutError": "timed out waiting for the server",
    "NoCredentialsError": "no credentials configured",
    "PermissionError": "access denied",
}


# what a store's *content* can raise (a directory where an object should be): not transport
_LAYOUT_ERRORS = (IsADirectoryError, NotADirectoryError, FileExistsError)


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, _LAYOUT_ERRORS):
        return False
    if isinstance(exc, OSError):  # ConnectionError, TimeoutError, PermissionError, ...
        return True
    return any(
        c.__module__.split(".", 1)[0] in _TRANSPORT_MODULES
        for c in type(exc).__mro__
        if c is not BaseException and c is not Exception
    )


def _reason(exc: BaseException) -> str:
    for c in type(exc).__mro__:
        if c.__name__ in _REASONS:
            return f"{_REASONS[c.__name__]} ({type(exc).__name__})"
    if isinstance(exc, TimeoutError):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, ConnectionError):
        return f"connection lost ({type(exc).__name__})"
    return type(exc).__name__
