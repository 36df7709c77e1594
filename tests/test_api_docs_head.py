"""HEAD on every GET route, and /docs that works offline (assets served by the API)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from _apihelp import seed, start_server, stop_server

FILL = {"{kind}": "prompts", "{name}": "qa", "{number}": "1", "{alias}": "production"}


def _get_routes(app: Any) -> list[str]:
    """Every GET path of the OpenAPI schema, with path parameters filled in."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        if "get" in ops:
            for k, v in FILL.items():
                path = path.replace(k, v)
            out.append(path)
    return out + ["/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"]


def test_head_works_on_every_get_route_with_the_get_headers(registry: Any) -> None:
    from genreg.api.app import create_app

    seed(registry)
    app = create_app(registry=registry)
    paths = _get_routes(app) + [
        "/v1/prompts/qa",  # the hot path (raw ASGI middleware)
        "/v1/prompts/qa?alias=production",
        "/v1/prompts/qa/versions/1",
        "/v1/prompts/qa/versions",
        "/v1/prompts/qa/aliases",
        "/api-static/swagger-ui/swagger-ui.css",
    ]
    assert {"/healthz", "/readyz", "/docs", "/redoc", "/v1/prompts/qa/versions/1"} <= set(paths)
    proc, url = start_server(registry.home)
    try:
        with httpx.Client(base_url=url) as c:
            for path in paths:
                g, h = c.get(path), c.head(path)
                assert h.status_code == g.status_code != 405, (path, h.status_code)
                assert h.content == b""
                assert h.headers.get("content-type") == g.headers.get("content-type"), path
                assert h.headers.get("content-length") == str(len(g.content)), path
            assert c.head("/v1/prompts/nope").status_code == 404
    finally:
        stop_server(proc)


def test_docs_page_loads_every_asset_from_the_api_itself(registry: Any) -> None:
    seed(registry)
    proc, url = start_server(registry.home)
    try:
        with httpx.Client(base_url=url) as c:
            for page in ("/docs", "/redoc"):
                html = c.get(page).text
                refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
                refs += re.findall(r"""url: ?['"]([^'"]+)['"]""", html)
                assert refs, html
                for ref in refs:
                    assert ref.startswith("/"), f"{page} loads {ref} from elsewhere"
                    r = c.get(ref)
                    assert r.status_code == 200 and r.content, (page, ref)
                assert "cdn" not in html.lower() and "googleapis" not in html
            js = c.get("/api-static/swagger-ui/swagger-ui-bundle.js")
            assert js.headers["content-type"].startswith("text/javascript")
            assert len(js.content) > 500_000 and b"SwaggerUIBundle" in js.content
            assert c.get("/api-static/swagger-ui/../../app.py").status_code == 404
            assert c.get("/api-static/redoc/LICENSE").status_code == 404  # only listed assets
    finally:
        stop_server(proc)
