"""``genreg.lock``: the exact versions (digest AND content) an app uses, for offline fallback.

::

    {"format": "genreg-lock/1", "created_at": "...", "source": "...",
     "entries": {"prompt:rag-answer@production":
                    {"kind": "prompt", "name": "rag-answer", "version": 3,
                     "digest": "sha256:...", "content": {...}}}}

``content`` is the artifact's canonical JSON value, so ``digest`` is re-derivable:
``sha256(canonical_json(content))``. :func:`verified` re-checks it every time an entry is
served; a hand-edited (tampered) entry raises :class:`~genreg.errors.IntegrityError`.
Only prompts and routing configs are locked (eval sets and corpora are not app-path data).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from genreg.core.hashing import canonical_json, digest_bytes
from genreg.core.refs import Ref, parse_ref
from genreg.errors import ConfigError, IntegrityError, InvalidArtifact

LOCK_FORMAT = "genreg-lock/1"
DEFAULT_LOCK = "genreg.lock"
LOCKABLE = ("prompt", "routing")


class _Source(Protocol):
    def show(self, ref: str) -> tuple[Any, Any]: ...


def build_lock(source: _Source, refs: list[str], *, origin: str = "") -> dict[str, Any]:
    """Resolve each ref through ``source`` (a Registry or a Client) and pin it."""
    entries: dict[str, Any] = {}
    for text in refs:
        r = parse_ref(text)
        if r.kind not in LOCKABLE:
            raise ConfigError(f"{text}: only {' and '.join(LOCKABLE)} refs can be locked")
        info, content = source.show(str(r))
        entry = {
            "kind": info.kind,
            "name": info.name,
            "version": info.version,
            "digest": info.digest,
            "content": content,
        }
        verified(str(r), entry)
        entries[str(r)] = entry
    return {
        "format": LOCK_FORMAT,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": origin,
        "entries": dict(sorted(entries.items())),
    }


def write_lock(path: str | Path, lock: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a lock."""
    p = Path(path)
    text = json.dumps(lock, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=p.parent if str(p.parent) else ".", prefix=".genreg-lock-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, p)
    return p


def read_lock(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: lock file not found (create it with 'genreg lock REF...')"
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidArtifact(f"{p}:{exc.lineno}: invalid lock file: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
        raise InvalidArtifact(f"{p}: not a genreg lock file (expected format {LOCK_FORMAT})")
    if not isinstance(data.get("entries"), dict):
        raise InvalidArtifact(f"{p}: lock file has no 'entries' mapping")
    return data


def verified(key: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry if its content hashes to its digest, else IntegrityError."""
    try:
        actual = digest_bytes(canonical_json(entry["content"]))
        expected = entry["digest"]
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"lock entry {key}: malformed ({exc})") from None
    if actual != expected:
        raise IntegrityError(
            f"lock entry {key}: content does not match its digest {expected} (tampered?)"
        )
    return entry


def find(lock: dict[str, Any], ref: Ref) -> tuple[str, dict[str, Any]] | None:
    """The entry for ``ref``: the same ref text, or (for pinned refs) the same version/digest."""
    entries: dict[str, Any] = lock["entries"]
    key = str(ref.with_split(None))
    if key in entries:
        return key, entries[key]
    if ref.is_pinned:
        for k, e in entries.items():
            if not isinstance(e, dict) or e.get("kind") != ref.kind or e.get("name") != ref.name:
                continue
            if ref.version is not None and e.get("version") == ref.version:
                return k, e
            if ref.digest_prefix and str(e.get("digest", "")).startswith(
                "sha256:" + ref.digest_prefix
            ):
                return k, e
    return None
