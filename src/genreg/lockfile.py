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

Trust model. The digest only proves the content was not *accidentally* changed: anyone who
can edit the file can also recompute a digest (or change ``version``/``kind``). To detect
deliberate edits, sign the lock: ``genreg lock --sign`` adds
``"signature": {"alg": "hmac-sha256", "value": HEX}``, an HMAC-SHA256 under the secret in
``$GENREG_LOCK_KEY`` over the canonical JSON of ``{"format", "entries"}`` (every entry's
key, kind, name, version, digest and content). A client given the key (``lock_key=`` or
``$GENREG_LOCK_KEY``) refuses an unsigned lock or one whose signature does not match, before
serving anything from it. The key is never written to the lock, logs or error messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from genreg.core.hashing import canonical_json, digest_bytes
from genreg.core.inputs import load_json
from genreg.core.kinds import BY_NAME
from genreg.core.refs import Ref, parse_ref
from genreg.errors import ConfigError, GenregError, IntegrityError, InvalidArtifact

LOCK_FORMAT = "genreg-lock/1"
DEFAULT_LOCK = "genreg.lock"
LOCKABLE = tuple(k.name for k in BY_NAME.values() if k.lockable)  # prompt, routing
KEY_ENV = "GENREG_LOCK_KEY"
SIGNATURE_ALG = "hmac-sha256"


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


def lock_key(explicit: str | bytes | None = None, *, required: bool = False) -> bytes | None:
    """The signing key: ``explicit`` or ``$GENREG_LOCK_KEY`` (None when neither is set)."""
    key = explicit if explicit is not None else os.environ.get(KEY_ENV)
    if not key:
        if required:
            raise ConfigError(f"--sign needs a key: set ${KEY_ENV} to a secret")
        return None
    return key.encode("utf-8") if isinstance(key, str) else key


def _mac(lock: dict[str, Any], key: bytes) -> str:
    signed = canonical_json({"format": lock.get("format"), "entries": lock.get("entries")})
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def sign_lock(lock: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``lock`` with an HMAC-SHA256 signature over its format and entries."""
    return {**lock, "signature": {"alg": SIGNATURE_ALG, "value": _mac(lock, key)}}


def verify_signature(lock: dict[str, Any], key: bytes, where: str = "lock file") -> None:
    """IntegrityError unless ``lock`` carries a valid signature under ``key``."""
    sig = lock.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("value"), str):
        raise IntegrityError(f"{where}: not signed, but a lock key is configured (${KEY_ENV})")
    if sig.get("alg") != SIGNATURE_ALG:
        raise IntegrityError(f"{where}: unsupported signature algorithm {sig.get('alg')!r}")
    if not hmac.compare_digest(sig["value"], _mac(lock, key)):
        raise IntegrityError(
            f"{where}: signature does not match (edited, or signed with another key)"
        )


def write_lock(path: str | Path, lock: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a lock."""
    p = Path(path)
    text = json.dumps(lock, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=p.parent if str(p.parent) else ".", prefix=".genreg-lock-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, p)
    return p


def read_lock(path: str | Path, key: bytes | None = None) -> dict[str, Any]:
    """Parse (strictly: :mod:`genreg.core.inputs`) and, given ``key``, verify the signature."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: lock file not found (create it with 'genreg lock REF...')"
        ) from None
    except OSError as exc:
        raise InvalidArtifact(f"{p}: cannot read lock file ({exc.strerror or exc})") from None
    try:
        data = load_json(raw, str(p))
    except GenregError as exc:
        raise InvalidArtifact(f"invalid lock file: {exc.message}") from None
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
        raise InvalidArtifact(f"{p}: not a genreg lock file (expected format {LOCK_FORMAT})")
    if not isinstance(data.get("entries"), dict):
        raise InvalidArtifact(f"{p}: lock file has no 'entries' mapping")
    if key is not None:
        verify_signature(data, key, str(p))
    return data


def verified(key: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry if its content hashes to its digest and it is the artifact its key names,
    else IntegrityError."""
    try:
        actual = digest_bytes(canonical_json(entry["content"]))
        expected = entry["digest"]
        ref = parse_ref(key)
        kind, name, version = entry["kind"], entry["name"], entry["version"]
    except (KeyError, TypeError, ValueError, RecursionError, GenregError) as exc:
        raise IntegrityError(f"lock entry {key}: malformed ({exc})") from None
    if (
        (kind, name) != (ref.kind, ref.name)
        or isinstance(version, bool)
        or not (isinstance(version, int) and version >= 1 and (ref.version in (None, version)))
    ):
        raise IntegrityError(
            f"lock entry {key}: kind/name/version do not match the ref it is filed under"
        )
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
