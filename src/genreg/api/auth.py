"""API configuration and bearer-token checks.

Writes always need a ``write`` token; eval-set reads need ``evalsets:read`` (or ``admin``);
other reads are open unless ``require_token`` is set (``GENREG_API_REQUIRE_TOKEN=1``).
Successful authentications are cached in-process for :data:`AUTH_CACHE_TTL` seconds, so a
revoked token stops working within that bound. Tokens are never logged or echoed.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genreg.core.kinds import BY_NAME
from genreg.errors import AuthError, ConfigError, Forbidden

if TYPE_CHECKING:
    from genreg.service import Registry
    from genreg.service.tokens import Principal

AUTH_CACHE_TTL = 5.0
MiB = 1 << 20


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ApiConfig:
    require_token: bool = False  # reads of prompts/routing/corpus/runs need a read token
    max_body: int = MiB  # larger request bodies get 413
    alias_max_age: int = 5  # Cache-Control max-age (s) of alias/latest lookups

    @classmethod
    def from_env(cls) -> ApiConfig:
        try:
            max_body = int(os.environ.get("GENREG_API_MAX_BODY", MiB))
            max_age = int(os.environ.get("GENREG_API_ALIAS_MAX_AGE", 5))
        except ValueError as exc:
            raise ConfigError(f"GENREG_API_MAX_BODY / GENREG_API_ALIAS_MAX_AGE: {exc}") from None
        return cls(_env_flag("GENREG_API_REQUIRE_TOKEN"), max_body, max_age)


class Authenticator:
    def __init__(self, registry: Registry, config: ApiConfig) -> None:
        self.registry = registry
        self.config = config
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def principal(self, authorization: str | None) -> Principal | None:
        """The caller, or None without an ``Authorization`` header; AuthError if invalid."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("expected 'Authorization: Bearer <token>'")
        token = token.strip()
        hit = self._cache.get(token)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        p = self.registry.authenticate(token)
        with self._lock:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[token] = (p, now + AUTH_CACHE_TTL)
        return p

    def require(self, authorization: str | None, scope: str) -> Principal:
        p = self.principal(authorization)
        if p is None:
            raise AuthError(f"this route needs a token with the {scope!r} scope")
        if not p.allows(scope):
            raise Forbidden(f"token {p.name!r} lacks the {scope!r} scope")
        return p

    def check_read(self, authorization: str | None, kind: str) -> Principal | None:
        """Eval sets need ``evalsets:read``; other kinds need ``read`` only if configured."""
        k = BY_NAME.get(kind)  # also asked for non-artifact reads ("run")
        if k is not None and k.secret:
            return self.require(authorization, "evalsets:read")
        if self.config.require_token:
            return self.require(authorization, "read")
        return self.principal(authorization) if authorization else None
