"""Canonical forms and digests.

Canonical form (documented in README "Digests"): a JSON value serialised with
``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` and encoded
as UTF-8. A digest is ``"sha256:" + hex(sha256(bytes))``. Changing this changes every digest,
so it lives here only and ``tests/test_hashing.py`` pins it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

ALGO = "sha256"
PREFIX = "sha256:"


def canonical_json(value: Any) -> bytes:
    """The canonical byte form of a JSON-compatible value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of raw bytes."""
    return PREFIX + sha256_hex(data)


def digest_json(value: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON form of ``value``."""
    return digest_bytes(canonical_json(value))


def strip_prefix(digest: str) -> str:
    return digest[len(PREFIX) :] if digest.startswith(PREFIX) else digest
