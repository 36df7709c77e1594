"""The web UI: server-rendered pages under ``/ui`` on the API's FastAPI app.

Jinja2 templates (``templates/``), one small script and a stylesheet (``static/``, served
from the package: no CDN, no build step), charts as server-rendered SVG, and a strict
Content-Security-Policy. All data comes through the service layer, like the CLI and API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from genreg.api.auth import ApiConfig, Authenticator
    from genreg.service import Registry


def mount(app: FastAPI, reg: Registry, auth: Authenticator, cfg: ApiConfig) -> None:
    """Add the ``/ui`` routes (templates are loaded on the first page, not here)."""
    from genreg.ui.routes import build_ui_router

    app.include_router(build_ui_router(reg, auth, cfg))
