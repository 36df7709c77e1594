"""Who is looking at a UI page: the token from the sign-in cookie (or a bearer header), the
scopes it grants, and the CSRF token that guards the one write action (promote).

The cookie holds the API token itself, HttpOnly + SameSite=Strict (+ Secure over https), on
path ``/ui``; the CSRF token is an HMAC of that token, so it needs no server-side state, is
the same in every worker, and cannot be computed by a page that cannot read the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genreg.errors import GenregError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from genreg.api.auth import Authenticator
    from genreg.service.tokens import Principal

COOKIE = "genreg_ui_token"
MAX_AGE = 8 * 3600


@dataclass(frozen=True)
class Viewer:
    principal: Principal | None
    token: str | None
    error: str = ""  # why a presented token was not accepted

    @property
    def name(self) -> str | None:
        return self.principal.name if self.principal else None

    def allows(self, scope: str) -> bool:
        return self.principal is not None and self.principal.allows(scope)

    @property
    def csrf(self) -> str:
        return csrf_for(self.token) if self.token else ""


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"genreg-ui-csrf/1", hashlib.sha256).hexdigest()


def viewer(request: Request, auth: Authenticator) -> Viewer:
    header = request.headers.get("authorization")
    token = request.cookies.get(COOKIE)
    if header:
        token = header.partition(" ")[2].strip() or None
    if not token:
        return Viewer(None, None)
    try:
        return Viewer(auth.principal(f"Bearer {token}"), token)
    except GenregError as exc:  # revoked / unknown token: treat as signed out, say why
        return Viewer(None, None, exc.message)


def csrf_ok(v: Viewer, submitted: str | None) -> bool:
    return bool(v.token and submitted) and hmac.compare_digest(v.csrf, submitted or "")


def set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=MAX_AGE,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
