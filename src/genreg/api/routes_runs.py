"""``/v1/runs...``: eval runs, their lineage, and the runs that used a version.

Mounted only when the registry offers the eval-runner service (``list_runs`` & co.).
Run reads follow the same rule as prompt reads (open unless ``require_token``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from genreg.api.errors import responses
from genreg.api.reads import make_ref, url_kind
from genreg.api.routes_artifacts import json_response, version_path

if TYPE_CHECKING:
    from genreg.api.auth import Authenticator
    from genreg.service import Registry


def build_runs_router(reg: Registry, auth: Authenticator) -> APIRouter:
    r = APIRouter(prefix="/v1", responses=responses(401, 403, 404, 405, 422))

    def check(request: Request) -> None:
        auth.check_read(request.headers.get("authorization"), "run")

    @r.get("/runs", summary="Eval runs, newest first")
    def list_runs(
        request: Request,
        name: str | None = Query(None, description="Only runs of this eval"),
        used: str | None = Query(
            None,
            description="Only runs that used the exact version this reference names "
            "(KIND:NAME[@ALIAS|@vN|@sha256:HEX]); a malformed reference is a 422, an "
            "unknown one a 404",
        ),
        limit: int = Query(100, ge=1, le=1000),
    ) -> Response:
        check(request)
        runs = reg.list_runs(used=used, name=name, limit=limit)
        return json_response({"runs": [x.to_dict() for x in runs]})

    @r.get("/runs/{run_id}", summary="One run: config, inputs, metrics, gate report")
    def get_run(request: Request, run_id: str) -> Response:
        check(request)
        return json_response(reg.get_run(run_id).to_dict())

    @r.get("/runs/{run_id}/lineage", summary="The exact inputs and environment of a run")
    def lineage(request: Request, run_id: str) -> Response:
        check(request)
        return json_response(reg.lineage(run_id))

    @r.get("/{kind}/{name}/versions/{number}/runs", summary="Runs that used this exact version")
    def used_by(request: Request, kind: str, name: str, number: int = version_path()) -> Response:
        check(request)
        ref = make_ref(url_kind(kind), name, version=number)
        return json_response(
            {"ref": str(ref), "runs": [x.to_dict() for x in reg.used_by(str(ref))]}
        )

    return r
