"""The web UI: server-rendered pages under ``/ui`` on the API's FastAPI app.

Jinja2 templates (``templates/``), one small script and a stylesheet (``static/``, served
from the package: no CDN, no build step), charts as server-rendered SVG, and a strict
Content-Security-Policy. All data comes through the service layer, like the CLI and API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from genreg.api.auth import ApiConfig, Authenticator
    from genreg.service import Registry


def mount(app: FastAPI, reg: Registry, auth: Authenticator, cfg: ApiConfig) -> Callable[[], None]:
    """Add the ``/ui`` routes; returns their warm-up (templates compiled, the runs page's
    statements run once), which the app runs in the background after start-up -- nothing
    is loaded here."""
    from genreg.ui.routes import build_ui_router

    router, warm = build_ui_router(reg, auth, cfg)
    app.include_router(router)
    return warm
