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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from genreg.core.hashing import strip_prefix
from genreg.errors import ConfigError, IntegrityError, NotFound

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
            raise ConfigError(f"GENREG_OBJECTS_URL {url!r}: {exc}") from None
        self.fs = fs
        self.root = root.rstrip("/")
        self.protocol = protocol
        self.atomic_put = protocol in _ATOMIC_PUT

    # ---- paths ------------------------------------------------------------------------
    def _key(self, digest: str) -> str:
        d = strip_prefix(digest)
        if len(d) != 64 or any(c not in "0123456789abcdef" for c in d):
            raise NotFound(f"object {digest!r}: not a full sha256 digest")
        return f"{self.root}/{d[:2]}/{d[2:]}"

    def local_path(self, digest: str) -> Path | None:
        return None

    def mtime(self, digest: str) -> float | None:
        info = self.fs.info(self._key(digest))
        return _info_mtime(info) if any(info.get(k) is not None for k in _MTIME_KEYS) else None

    def staging_dir(self) -> Path | None:
        return None

    def adopt_file(self, path: Path, digest: str) -> None:
        from genreg.store.objects import adopt_by_copy

        adopt_by_copy(self, path, digest)

    # ---- queries ----------------------------------------------------------------------
    def has(self, digest: str) -> bool:
        try:
            return bool(self.fs.exists(self._key(digest)))
        except FileNotFoundError:
            return False

    def size(self, digest: str) -> int:
        try:
            return int(self.fs.size(self._key(digest)))
        except FileNotFoundError:
            raise NotFound(f"object sha256:{strip_prefix(digest)} is missing") from None

    def iter_digests(self) -> Iterator[str]:
        try:
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
        key = self._key(digest)
        if self.atomic_put:
            self.fs.pipe_file(key, data)
        else:
            tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
            self.fs.pipe_file(tmp, data)
            self._move(tmp, key)
        return digest

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
            key = self._key(digest)
            if self.atomic_put:
                self.fs.put_file(name, key)
            else:
                tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
                self.fs.put_file(name, tmp)
                self._move(tmp, key)
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
        try:
            data = bytes(self.fs.cat_file(self._key(d)))
        except FileNotFoundError:
            try:  # hidden by a gc in progress (or by one that was killed): still readable
                data = bytes(self.fs.cat_file(self._trash_key(d)))
            except FileNotFoundError:
                raise NotFound(f"object sha256:{d} is missing from {self.url}") from None
        if verify and hashlib.sha256(data).hexdigest() != d:
            raise IntegrityError(f"object sha256:{d} is corrupt (content does not match digest)")
        return data

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._key(digest))

    # ---- gc's two-phase delete (see genreg.store.objects) -------------------------------
    def _trash_key(self, digest: str) -> str:
        self._key(digest)  # validates
        return f"{self.root}/trash/{strip_prefix(digest)}"

    def hide(self, digest: str) -> bool:
        key, trash = self._key(digest), self._trash_key(digest)
        try:
            self.fs.copy(key, trash)  # server-side copy, then delete: a move on S3
        except FileNotFoundError:
            return False
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(key)
        return True

    def unhide(self, digest: str) -> None:
        key, trash = self._key(digest), self._trash_key(digest)
        with contextlib.suppress(FileNotFoundError):
            if not self.fs.exists(key):
                self.fs.copy(trash, key)
            self.fs.rm_file(trash)

    def purge_hidden(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._trash_key(digest))

    def iter_hidden(self) -> Iterator[tuple[str, int, float]]:
        try:
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
