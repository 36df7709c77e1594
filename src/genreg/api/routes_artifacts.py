"""``/v1/{kind}/{name}...``: read, render, register, alias moves.

``{kind}`` is ``prompts``, ``evalsets``, ``routing`` or ``corpus`` (singular forms work too).
Reads are ``async`` and answer from :class:`~genreg.api.reads.Reader` without a thread hop;
writes are plain functions (run in the thread pool) behind a ``write``-scope dependency that
runs before the body is validated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from genreg.api.reads import make_ref, url_kind
from genreg.errors import InvalidRef, RenderError

if TYPE_CHECKING:
    from genreg.api.auth import ApiConfig, Authenticator
    from genreg.api.reads import Reader
    from genreg.service import Registry


class RegisterBody(BaseModel):
    content: Any = Field(..., description="Prompt/routing mapping, or a list of eval-set rows.")
    message: str = ""
    tags: dict[str, Any] = Field(default_factory=dict)


class AliasBody(BaseModel):
    version: int | None = Field(None, description="Version number to point at.")
    digest: str | None = Field(None, description="Or a digest (prefix) to point at.")
    reason: str = ""


class PromoteBody(AliasBody):
    run_id: str = Field(..., description="The eval run that justifies the promotion.")


class RenderBody(BaseModel):
    variables: dict[str, Any] = Field(default_factory=dict)


class ExplainBody(BaseModel):
    query: str
    tags: list[str] = Field(default_factory=list)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import json

    body = json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))
    return Response(body.encode("utf-8"), status, headers, "application/json")


def _public(info: Any) -> dict[str, Any]:
    d = info.to_dict()
    d.pop("object_digest", None)
    return d


def _target(kind: str, name: str, body: AliasBody) -> Any:
    if (body.version is None) == (body.digest is None):
        raise InvalidRef("give exactly one of 'version' or 'digest'")
    return make_ref(kind, name, version=body.version, digest=body.digest)


def build_router(
    reg: Registry, reader: Reader, auth: Authenticator, config: ApiConfig
) -> APIRouter:
    r = APIRouter(prefix="/v1")

    def writer(request: Request) -> Any:  # -> Principal
        return auth.require(request.headers.get("authorization"), "write")

    def fetch(
        request: Request,
        kind_seg: str,
        name: str,
        version: int | None,
        alias: str | None,
        digest: str | None,
    ) -> Response:
        kind = url_kind(kind_seg)
        authz = request.headers.get("authorization")
        auth.check_read(authz, kind)
        ref = make_ref(kind, name, version, alias, digest)
        private = kind == "evalset" or config.require_token
        status, headers, body = reader.answer(
            ref, request.headers.get("if-none-match"), private=private, max_age=config.alias_max_age
        )
        if status == 304:
            return Response(status_code=304, headers=headers)
        return Response(body, 200, headers, "application/json")

    @r.get("/{kind}", summary="List artifacts of a kind")
    def list_artifacts(request: Request, kind: str) -> Response:
        k = url_kind(kind)
        auth.check_read(request.headers.get("authorization"), k)
        return json_response({"artifacts": [a.to_dict() for a in reg.list(k)]})

    @r.get("/{kind}/{name}", summary="Fetch a version by alias, digest or (default) latest")
    async def get_artifact(
        request: Request,
        kind: str,
        name: str,
        alias: str | None = Query(None, description="e.g. production"),
        digest: str | None = Query(None, description="sha256:HEX (prefix of >= 6 digits)"),
        version: int | None = Query(None, description="version number"),
    ) -> Response:
        return fetch(request, kind, name, version, alias, digest)

    @r.get("/{kind}/{name}/versions/{number}", summary="Fetch one version (immutable)")
    async def get_version(request: Request, kind: str, name: str, number: int) -> Response:
        return fetch(request, kind, name, number, None, None)

    @r.get("/{kind}/{name}/versions", summary="All versions of an artifact")
    def list_versions(request: Request, kind: str, name: str) -> Response:
        k = url_kind(kind)
        auth.check_read(request.headers.get("authorization"), k)
        ref = make_ref(k, name)
        return json_response({"versions": [_public(v) for v in reg.history(ref)]})

    @r.get("/{kind}/{name}/aliases", summary="The alias journal (every set, move, delete)")
    def alias_journal(request: Request, kind: str, name: str, alias: str | None = None) -> Response:
        k = url_kind(kind)
        auth.check_read(request.headers.get("authorization"), k)
        events = reg.alias_history(make_ref(k, name), alias)
        return json_response({"events": [e.to_dict() for e in events]})

    @r.post("/prompts/{name}/render", summary="Render a prompt (variables checked by its schema)")
    async def render(
        request: Request,
        name: str,
        body: RenderBody,
        alias: str | None = None,
        digest: str | None = None,
        version: int | None = None,
    ) -> Response:
        auth.check_read(request.headers.get("authorization"), "prompt")
        info = reader.resolve(make_ref("prompt", name, version, alias, digest))
        prompt = reader.prompt(info)
        try:
            out = prompt.render(body.variables)
        except RenderError as exc:
            errs = exc.details.get("errors", [])
            bad = sorted({e.split(":", 1)[0].split(".", 1)[0] for e in errs})
            raise RenderError(exc.message, details={"errors": errs, "variables": bad}) from None
        res: dict[str, Any] = {"ref": info.ref, "digest": info.digest, "type": prompt.type}
        res["messages" if prompt.type == "chat" else "text"] = out
        from genreg.core.prompt import request_body

        res["request"] = request_body(prompt, out)  # the ready OpenAI request body
        return json_response(res)

    @r.post("/routing/{name}/explain", summary="Which route a query takes, and why")
    def explain(
        request: Request,
        name: str,
        body: ExplainBody,
        alias: str | None = None,
        version: int | None = None,
    ) -> Response:
        auth.check_read(request.headers.get("authorization"), "routing")
        info = reader.resolve(make_ref("routing", name, version, alias))
        d = reg.explain_route(info.ref, body.query, body.tags)
        return json_response(
            {
                "routing": info.ref,
                "digest": info.digest,
                "route": d.route,
                "target": d.target,
                "reasons": d.reasons,
                "rejected": [{"route": a, "why": w} for a, w in d.rejected],
            }
        )

    # ---- writes ---------------------------------------------------------------------
    @r.post("/{kind}/{name}/versions", status_code=201, summary="Register a version (write)")
    def register(kind: str, name: str, body: RegisterBody, who: Any = Depends(writer)) -> Response:
        res = reg.register_content(
            url_kind(kind),
            name,
            body.content,
            message=body.message,
            tags=body.tags,
            author=who.name,
        )
        d = res.to_dict()
        d.pop("object_digest", None)
        return json_response(d, 201 if res.created else 200)

    @r.put("/{kind}/{name}/aliases/{alias}", summary="Point an alias at a version (write)")
    def set_alias(
        kind: str, name: str, alias: str, body: AliasBody, who: Any = Depends(writer)
    ) -> Response:
        ref = _target(url_kind(kind), name, body)
        return json_response(
            reg.set_alias(ref, alias, reason=body.reason, actor=who.name).to_dict()
        )

    @r.delete("/{kind}/{name}/aliases/{alias}", summary="Remove an alias (write)")
    def delete_alias(
        kind: str, name: str, alias: str, reason: str = "", who: Any = Depends(writer)
    ) -> Response:
        ref = make_ref(url_kind(kind), name)
        return json_response(reg.remove_alias(ref, alias, reason=reason, actor=who.name).to_dict())

    if hasattr(reg, "promote"):

        @r.post(
            "/{kind}/{name}/aliases/{alias}/promote",
            summary="Move an alias to a version, justified by an eval run (write)",
        )
        def promote(
            kind: str, name: str, alias: str, body: PromoteBody, who: Any = Depends(writer)
        ) -> Response:
            ref = _target(url_kind(kind), name, body)
            ev = reg.promote(str(ref), alias, body.run_id, reason=body.reason, actor=who.name)
            return json_response(ev.to_dict() if hasattr(ev, "to_dict") else ev)

    return r
