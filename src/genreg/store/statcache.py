"""The stat cache: ``relative path -> (size, mtime_ns, inode, sha256, format)`` per source.

Like git's index, it lets a re-snapshot read and hash only files whose stat changed. One
compact file per (source root, parsing options) under ``<home>/statcache/``, written
atomically (temp file + rename). It is a cache: a missing, stale or unreadable file only
costs re-hashing. Entries modified within ``RACY_NS`` of a scan's start are never cached
(a later same-size edit within the file system's timestamp granularity could go unseen).
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
import tempfile
from pathlib import Path

from genreg.core.corpus_sources import CacheRow

_MAGIC = f"genreg-statcache/2 py{sys.version_info[0]}.{sys.version_info[1]}"


class StatCache:
    def __init__(self, home: Path, root: Path, options: str) -> None:
        key = hashlib.sha256(f"{Path(root).resolve()}\0{options}".encode()).hexdigest()[:32]
        self.dir = home / "statcache"
        self.path = self.dir / key
        self.digest: str | None = None  # manifest digest of exactly these rows, if known

    def load(self) -> dict[str, CacheRow]:
        try:
            with open(self.path, "rb") as fh:
                magic, digest, rows = marshal.load(fh)
        except (OSError, EOFError, ValueError, TypeError):
            return {}
        if magic != _MAGIC or not isinstance(rows, dict):
            return {}
        self.digest = digest
        return rows

    def save(self, rows: dict[str, CacheRow], digest: str | None = None) -> None:
        """Replace the cache; ``digest`` memoises the manifest digest of ``rows``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.dir, prefix="tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                marshal.dump((_MAGIC, digest, rows), fh)
            os.replace(name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
