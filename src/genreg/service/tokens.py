"""API tokens: create (shown once), list, revoke, authenticate.

A token reads ``grg_<id>_<secret>``: ``id`` (12 hex) finds the row, ``secret`` (256 random
bits) is checked against ``sha256(salt + secret)`` with :func:`hmac.compare_digest`. Only the
salt and the hash are stored. A fast hash is enough here: the secret is random and long, so
there is nothing to brute-force (password-style key stretching would only slow every request).

Scopes: ``read`` < ``write`` < ``admin``; ``evalsets:read`` is separate and must be granted
explicitly (``admin`` implies it), because gold data leaking into prompts or training
contaminates every future eval.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genreg.core.refs import validate_name
from genreg.errors import AuthError, ConfigError

if TYPE_CHECKING:
    from genreg.service.store import Store
    from genreg.store.tokens import TokenRecord, TokenRepo

SCOPES = ("read", "write", "admin", "evalsets:read")
PREFIX = "grg_"
_ID_LEN = 12
_IMPLIED = {
    "read": {"read", "write", "admin"},
    "write": {"write", "admin"},
    "admin": {"admin"},
    "evalsets:read": {"evalsets:read", "admin"},
}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's name is the actor in alias journals."""

    name: str
    token_id: str
    scopes: tuple[str, ...]

    def allows(self, scope: str) -> bool:
        return bool(_IMPLIED[scope].intersection(self.scopes))


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.token_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.revoked_at is None,
        }


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


def split_token(token: str) -> tuple[str, str]:
    """``(token_id, secret)`` of a well-formed token, else AuthError (never echoing it)."""
    if (
        not token.startswith(PREFIX)
        or len(token) < len(PREFIX) + _ID_LEN + 2
        or token[len(PREFIX) + _ID_LEN] != "_"
    ):
        raise AuthError("malformed API token")
    tid = token[len(PREFIX) : len(PREFIX) + _ID_LEN]
    return tid, token[len(PREFIX) + _ID_LEN + 1 :]


def _info(r: TokenRecord) -> TokenInfo:
    return TokenInfo(r.token_id, r.name, r.scopes, r.created_at, r.revoked_at)


class Tokens:
    """API tokens: create, list, revoke, authenticate (salted hashes in the metadata)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _tokens(self) -> TokenRepo:
        return self._store.metadata.tokens

    def create_token(self, name: str, scopes: list[str] | tuple[str, ...]) -> tuple[str, TokenInfo]:
        """Create a token; returns ``(token, info)``. The token is never stored or shown again."""
        validate_name(name, "token name")
        scopes = tuple(dict.fromkeys(scopes or ["read"]))
        bad = [s for s in scopes if s not in SCOPES]
        if bad:
            raise ConfigError(f"unknown scope {bad[0]!r}: expected one of {', '.join(SCOPES)}")
        tid, secret, salt = (
            secrets.token_hex(_ID_LEN // 2),
            secrets.token_urlsafe(32),
            secrets.token_hex(16),
        )
        rec = self._tokens().add(tid, name, scopes, salt, _hash(salt, secret))
        return f"{PREFIX}{tid}_{secret}", _info(rec)

    def list_tokens(self) -> list[TokenInfo]:
        return [_info(r) for r in self._tokens().list()]

    def revoke_token(self, name_or_id: str) -> TokenInfo:
        return _info(self._tokens().revoke(name_or_id))

    def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for; AuthError if unknown, revoked or wrong."""
        tid, secret = split_token(token)
        rec = self._tokens().get(tid)
        # Hash even when the id is unknown so timing does not reveal which ids exist.
        expected = rec.hash if rec else "0" * 64
        ok = hmac.compare_digest(_hash(rec.salt if rec else "00", secret), expected)
        if rec is None or not ok:
            raise AuthError("invalid API token")
        if rec.revoked_at is not None:
            raise AuthError(f"API token {rec.name!r} was revoked")
        return Principal(rec.name, rec.token_id, rec.scopes)
