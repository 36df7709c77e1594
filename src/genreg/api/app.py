"""The application factory. Nothing is built at import time::

    from genreg.api.app import create_app
    app = create_app()                      # registry from GENREG_HOME / .genreg
    uvicorn.run(app)                        # or: genreg serve

Importing this module pulls FastAPI and the core, never SQLAlchemy, torch, faiss or
sentence-transformers: on the default SQLite file the registry's metadata answers hot reads
with the stdlib ``sqlite3``. :func:`create_app` builds every service component a route uses
(their modules import none of those), and a background thread started just after it
(:func:`warm_up`) pays what needs SQLAlchemy -- its import, the engine, the run routes' and the
UI's compiled statements, the templates -- off the request path.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from genreg.api.auth import ApiConfig, Authenticator
from genreg.api.errors import envelope, install

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from genreg.service import Registry
    from genreg.settings import Settings


class BodyLimit:
    """Pure ASGI middleware: 413 when Content-Length, or the streamed body, exceeds ``limit``."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit() and int(v) > self.limit:
                await self._reject(send, int(v))
                return
        # Buffer the (small, bounded) body so a streamed/chunked body over the limit is
        # refused here, with the envelope, before any route reads it.
        buffered: list[Any] = []
        seen = 0
        while True:
            msg = await receive()
            buffered.append(msg)
            if msg["type"] != "http.request":
                break
            seen += len(msg.get("body", b""))
            if seen > self.limit:
                await self._reject(send, seen)
                return
            if not msg.get("more_body"):
                break

        async def replay() -> Any:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Any, size: int) -> None:
        body = envelope(
            413,
            "payload_too_large",
            f"request body of {size}+ bytes exceeds the {self.limit}-byte limit",
            {"limit": self.limit},
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


log = logging.getLogger("genreg.api")


def warm_runs(reg: Registry) -> None:
    """The JSON run routes' one-time costs, paid off the request path: SQLAlchemy's import and
    engine and the compiled form of ``/v1/runs``'s statements (the run list, its inputs, tags
    and parameters: its default query, run once for one row) and of ``/v1/runs/ID``'s."""
    for run in reg.list_runs(limit=1):
        reg.get_run(run.id).to_dict()


def warm_up(steps: list[Callable[[], None]], delay: float = 0.3) -> None:
    """Run each warm-up step in turn, ``delay`` seconds after start-up (the server answers
    ``/readyz`` meanwhile); a step that fails shows on the first real request instead."""
    time.sleep(delay)  # let the server finish starting first
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 -- logged; the first request pays (and reports) it
            log.debug("warm-up step %r failed", step, exc_info=True)


def open_registry(settings: Settings | None = None) -> Registry:
    """The registry (migrating first if the database is new or old)."""
    from genreg.service import Registry

    reg = Registry(settings=settings)
    reg.ensure_schema()
    return reg


def create_app(
    settings: Settings | None = None,
    registry: Registry | None = None,
    *,
    config: ApiConfig | None = None,
) -> FastAPI:
    """Build the API over ``registry`` (default: opened from ``settings`` or the env)."""
    from fastapi import FastAPI

    import genreg
    from genreg.api.reads import Reader
    from genreg.api.routes_artifacts import build_router

    cfg = config or ApiConfig.from_env()
    reg = registry or open_registry(settings)
    # Every component a route uses (tokens, runs), built now: the first request must not pay
    # their import (~20-40 ms; none of torch, faiss or SQLAlchemy).
    reg.build_components()
    auth = Authenticator(reg, cfg)
    reader = Reader(reg)

    app = FastAPI(
        title="genreg",
        version=genreg.__version__,
        description="Versioned prompts, eval sets, corpus snapshots and routing configs.",
        docs_url=None,  # served by install_docs from vendored assets (works offline)
        redoc_url=None,
    )
    app.state.registry, app.state.config, app.state.auth = reg, cfg, auth
    install(app)
    app.add_middleware(BodyLimit, limit=cfg.max_body)

    from genreg.api.routes_health import build_health_router
    from genreg.api.routes_runs import build_runs_router

    app.include_router(build_health_router(reg))

    app.include_router(build_runs_router(reg, auth))
    app.include_router(build_router(reg, reader, auth, cfg))
    from genreg.api.openapi import install as refine_openapi

    refine_openapi(app)
    from genreg.ui import mount as mount_ui

    ui_warm = mount_ui(app, reg, auth, cfg)  # the web UI under /ui (genreg.ui)
    # What needs SQLAlchemy (the run routes' and the runs page's compiled statements, the
    # templates) is paid in one background thread just after start-up, off the request path
    # and after /readyz, so the hot reads still never import SQLAlchemy themselves.
    threading.Thread(
        target=warm_up, args=([lambda: warm_runs(reg), ui_warm],), daemon=True, name="serve-warm"
    ).start()
    from genreg.api.hot import HotPath

    app.add_middleware(HotPath, reader=reader, config=cfg)  # see genreg.api.hot
    from genreg.api.docs import HeadAsGet, install_docs

    install_docs(app)
    app.add_middleware(HeadAsGet)  # outermost: HEAD on every GET route, fast paths included
    return app
