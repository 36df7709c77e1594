"""``/healthz`` (the process answers) and ``/readyz`` (the database answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from starlette.responses import Response

import genreg
from genreg.api.routes_artifacts import json_response

if TYPE_CHECKING:
    from genreg.service import Registry


def build_health_router(reg: Registry) -> APIRouter:
    r = APIRouter()

    @r.get("/healthz", summary="Liveness")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @r.get("/readyz", summary="Readiness: the database answers")
    def readyz() -> Response:
        reg.ping()
        return json_response({"status": "ready", "version": genreg.__version__})

    return r
