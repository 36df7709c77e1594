"""API docs that work offline, and ``HEAD`` on every ``GET`` route.

``/docs`` (Swagger UI) and ``/redoc`` load their JavaScript and CSS from the package itself
(``genreg/api/static/``, vendored from the npm registry, see its README), served under
``/api-static/``, never from a CDN. :class:`HeadAsGet` answers ``HEAD`` like ``GET`` without
the body (RFC 9110 §9.3.2), for every route, including the middleware fast paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/api-static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
ASSETS = {
    "swagger-ui/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css",
    "swagger-ui/favicon-32x32.png",
    "redoc/redoc.standalone.js",
}


class HeadAsGet:
    """Pure ASGI middleware: run ``HEAD`` as ``GET`` and drop the response body (headers,
    including ``Content-Length``, are the ``GET``'s)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(msg: Any) -> None:
            if msg["type"] == "http.response.body":
                if not msg.get("more_body"):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(msg)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


def install_docs(app: Any) -> None:
    """Serve ``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and the vendored assets.
    The app must be built with ``docs_url=None, redoc_url=None``."""
    from fastapi.openapi.docs import (
        get_redoc_html,
        get_swagger_ui_html,
        get_swagger_ui_oauth2_redirect_html,
    )
    from starlette.responses import FileResponse, Response

    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=title,
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/swagger-ui/favicon-32x32.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=title,
            redoc_js_url=f"{STATIC_PREFIX}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PREFIX}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )

    @app.get(STATIC_PREFIX + "/{folder}/{name}", include_in_schema=False)
    async def asset(folder: str, name: str) -> Response:
        from genreg.errors import NotFound

        rel = f"{folder}/{name}"
        if rel not in ASSETS:  # a fixed list: no path is ever built from the request
            raise NotFound(f"no static asset {rel}")
        path = STATIC_DIR / rel
        return FileResponse(
            path,
            media_type=_TYPES[path.suffix],
            headers={"Cache-Control": "public, max-age=86400"},
        )
