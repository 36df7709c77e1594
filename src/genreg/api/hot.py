"""A raw-ASGI shortcut for the two hot reads apps make on every request::

    GET /v1/{kind}/{name}/versions/{n}
    GET /v1/{kind}/{name}[?alias=A | ?digest=D | ?version=N]

It answers the anonymous, successful case straight from :class:`~genreg.api.reads.Reader`
(the same code the FastAPI routes call), skipping routing, parameter validation and
dependency injection -- roughly halving the per-request CPU. Anything else -- a token in the
request, eval sets, ``require_token`` mode, an unusual query, an error of any kind -- falls
through to the FastAPI app, so auth and the error envelope live in exactly one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from genreg.api.reads import make_ref
from genreg.core.kinds import BY_URL
from genreg.errors import GenregError

if TYPE_CHECKING:
    from genreg.api.auth import ApiConfig
    from genreg.api.reads import Reader

_SELECTORS = {b"alias", b"digest", b"version"}


class HotPath:
    def __init__(self, app: Any, reader: Reader, config: ApiConfig) -> None:
        self.app = app
        self.reader = reader
        self.max_age = config.alias_max_age
        self.enabled = not config.require_token

    def _ref(self, scope: dict[str, Any]) -> Any:
        parts = scope["path"].split("/")  # "", "v1", kind, name[, "versions", n]
        n = len(parts)
        if n < 4 or parts[1] != "v1":
            return None
        k = BY_URL.get(parts[2])
        if k is None or k.secret:  # secret kinds need a token: the full app checks it
            return None
        kind = k.name
        version = alias = digest = None
        if (
            n == 6
            and parts[4] == "versions"
            and parts[5].isascii()
            and parts[5].isdigit()
            and not scope["query_string"]
        ):
            version = int(parts[5])
        elif n == 4:
            qs: bytes = scope["query_string"]
            if qs:
                key, eq, val = qs.partition(b"=")
                if not eq or key not in _SELECTORS or b"&" in val:
                    return None
                v = unquote(val.decode("latin-1"))
                if key == b"alias":
                    alias = v
                elif key == b"digest":
                    digest = v
                elif v.isascii() and v.isdigit():
                    version = int(v)
                else:
                    return None
        else:
            return None
        return make_ref(kind, parts[3], version, alias, digest)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.enabled and scope["type"] == "http" and scope["method"] == "GET":
            inm = None
            for k, v in scope["headers"]:
                if k == b"authorization":
                    break
                if k == b"if-none-match":
                    inm = v.decode("latin-1")
            else:
                try:
                    ref = self._ref(scope)
                    if ref is not None:
                        status, headers, body = self.reader.answer(
                            ref, inm, private=False, max_age=self.max_age
                        )
                        await self._send(send, status, headers, body)
                        return
                except GenregError:
                    pass  # the full app produces the error envelope
        await self.app(scope, receive, send)

    @staticmethod
    async def _send(send: Any, status: int, headers: dict[str, str], body: bytes) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if status == 200:
            raw.append((b"content-type", b"application/json"))
            raw.append((b"content-length", str(len(body)).encode("latin-1")))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
