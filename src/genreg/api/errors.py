"""One JSON error envelope for every error the API returns::

    {"error": {"status": 404, "code": "not_found", "message": "...", "details": {...}}}

``GenregError`` subclasses carry their own ``http_status`` and ``code`` (see
:mod:`genreg.errors`); framework errors (unknown route, wrong method, request validation,
anything unexpected) are mapped in :data:`HTTP_CODES` so they share the same shape.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from genreg.errors import GenregError

log = logging.getLogger("genreg.api")

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid",
    500: "internal",
}


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "code", "message", "details"],
                "properties": {
                    "status": {"type": "integer"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    }


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries (the error envelope) for the statuses a route returns."""
    what = {
        400: "Malformed request (e.g. a body that is not JSON)",
        401: "Missing or invalid token",
        403: "The token lacks the scope",
        404: "Unknown kind, artifact, version, alias or run",
        405: "Method not allowed (the Allow header lists the allowed ones)",
        409: "Ambiguous digest prefix, or a conflicting write",
        413: "Request body over the limit",
        422: "Invalid reference, version number (>= 1), content, variables or body; or a render cap hit",
    }
    return {
        s: {
            "description": what.get(s, HTTP_CODES.get(s, "error")),
            "content": {"application/json": {"schema": _error_schema()}},
        }
        for s in statuses
    }


def envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    body = {"error": {"status": status, "code": code, "message": message, "details": details or {}}}
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    from starlette.responses import Response

    hdrs = dict(headers or {})
    if status == 401:
        hdrs.setdefault("WWW-Authenticate", 'Bearer realm="genreg"')
    return Response(envelope(status, code, message, details), status, hdrs, "application/json")


def genreg_error_response(exc: GenregError) -> Any:
    return error_response(exc.http_status, exc.code, exc.message, exc.details)


def _allowed_methods(req: Any) -> list[str]:
    """Every method some documented route accepts at this path (Starlette's own ``Allow``
    lists only the first matching route's)."""
    import re

    app = req.app
    table = getattr(app.state, "_allow_table", None)
    if table is None:
        table = []
        for path, ops in (app.openapi().get("paths") or {}).items():
            rx = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
            methods = {m.upper() for m in ops}
            if "GET" in methods:
                methods.add("HEAD")
            table.append((rx, methods))
        app.state._allow_table = table
    allowed: set[str] = set()
    for rx, methods in table:
        if rx.match(req.url.path):
            allowed |= methods
    return sorted(allowed)


def install(app: Any) -> None:
    """Register the exception handlers that produce the envelope."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    async def on_genreg(_req: Request, exc: GenregError) -> Any:
        if exc.http_status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        return genreg_error_response(exc)

    async def on_http(_req: Request, exc: HTTPException) -> Any:
        code = HTTP_CODES.get(exc.status_code, "error")
        msg = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no route for {_req.method} {_req.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            msg = f"method {_req.method} not allowed on {_req.url.path}"
            allowed = _allowed_methods(_req)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return error_response(exc.status_code, code, msg, None, headers)

    async def on_validation(_req: Request, exc: RequestValidationError) -> Any:
        errors = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "(request)"
            errors.append({"field": loc, "message": e.get("msg", "invalid")})
        msg = "invalid request: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return error_response(422, "invalid", msg, {"errors": errors})

    async def on_unexpected(_req: Request, exc: Exception) -> Any:
        log.exception("unexpected error on %s %s", _req.method, _req.url.path)
        return error_response(500, "internal", f"internal error ({type(exc).__name__})")

    app.add_exception_handler(GenregError, on_genreg)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
