"""``/v1/{kind}/{name}...``: read, render, register, alias moves.

``{kind}`` is ``prompts``, ``evalsets``, ``routing`` or ``corpus`` (singular forms work too).
Reads are ``async`` and answer from :class:`~genreg.api.reads.Reader` without a thread hop;
writes are plain functions (run in the thread pool) behind a ``write``-scope dependency that
runs before the body is validated. Render and explain run user-controlled work (templates,
regexes), so they run in worker threads (at most :data:`WORKERS` at once) under the sandbox's
caps, never on the event loop: ``/healthz`` and hot reads stay responsive meanwhile.

Every JSON body is checked as plain, bounded JSON (:mod:`genreg.core.inputs`): NaN,
Infinity, lone surrogates, non-string keys or nesting over 100 levels are a 422.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, model_validator
from starlette.responses import Response

from genreg.api.errors import responses
from genreg.api.reads import make_ref, url_kind
from genreg.core.inputs import check_value
from genreg.core.kinds import BY_NAME
from genreg.core.refs import MAX_VERSION
from genreg.core.routing import MAX_QUERY_CHARS
from genreg.errors import GenregError, InvalidRef, RenderError

# Concurrent renders/explains per process; more wait for a free worker.
WORKERS = 4
_LIMITER: Any = None

READ_ERRORS = responses(401, 403, 404, 422)
WRITE_ERRORS = responses(400, 401, 403, 404, 409, 413, 422)
VERSION_DOC: dict[str, Any] = {"minimum": 1, "maximum": MAX_VERSION}


def version_path() -> Any:
    return Path(..., description="Version number (1 .. 2^63-1)", json_schema_extra=VERSION_DOC)


def version_query() -> Any:
    return Query(
        None,
        description="Version number (1 .. 2^63-1); give at most one of alias, digest, version",
        json_schema_extra=VERSION_DOC,
    )


async def off_loop(fn: Any) -> Any:
    """Run ``fn`` in a worker thread (bounded pool), keeping the event loop free."""
    import anyio.to_thread

    global _LIMITER
    if _LIMITER is None:
        _LIMITER = anyio.CapacityLimiter(WORKERS)
    return await anyio.to_thread.run_sync(fn, limiter=_LIMITER)


class StrictBody(BaseModel):
    """A request body that must be plain, bounded JSON."""

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        try:
            return check_value(data, "body")
        except GenregError as exc:
            raise ValueError(exc.message.removeprefix("body: ")) from None


if TYPE_CHECKING:
    from genreg.api.auth import ApiConfig, Authenticator
    from genreg.api.reads import Reader
    from genreg.service import Registry


class RegisterBody(StrictBody):
    content: Any = Field(..., description="Prompt/routing mapping, or a list of eval-set rows.")
    message: str = ""
    tags: dict[str, Any] = Field(default_factory=dict)


class AliasBody(StrictBody):
    version: int | None = Field(
        None, description="Version number to point at.", json_schema_extra=VERSION_DOC
    )
    digest: str | None = Field(None, description="Or a digest (prefix) to point at.")
    reason: str = ""


class PromoteBody(AliasBody):
    run_id: str = Field(..., description="The eval run that justifies the promotion.")


class RenderBody(StrictBody):
    variables: dict[str, Any] = Field(default_factory=dict)


class ExplainBody(StrictBody):
    query: str = Field(..., max_length=MAX_QUERY_CHARS)
    tags: list[str] = Field(default_factory=list, max_length=100)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import json

    body = json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))
    return Response(body.encode("utf-8"), status, headers, "application/json")


def _target(kind: str, name: str, body: AliasBody) -> Any:
    if (body.version is None) == (body.digest is None):
        raise InvalidRef("give exactly one of 'version' or 'digest'")
    return make_ref(kind, name, version=body.version, digest=body.digest)


def build_router(
    reg: Registry, reader: Reader, auth: Authenticator, config: ApiConfig
) -> APIRouter:
    r = APIRouter(prefix="/v1", responses=responses(405))

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
        private = BY_NAME[kind].secret or config.require_token
        status, headers, body = reader.answer(
            ref, request.headers.get("if-none-match"), private=private, max_age=config.alias_max_age
        )
        if status == 304:
            return Response(status_code=304, headers=headers)
        return Response(body, 200, headers, "application/json")

    @r.get("/{kind}", summary="List artifacts of a kind", responses=READ_ERRORS)
    def list_artifacts(request: Request, kind: str) -> Response:
        k = url_kind(kind)
        auth.check_read(request.headers.get("authorization"), k)
        return json_response({"artifacts": [a.to_dict() for a in reg.list(k)]})

    @r.get(
        "/{kind}/{name}",
        summary="Fetch a version by alias, digest or (default) latest",
        responses={**READ_ERRORS, **responses(409)},
    )
    async def get_artifact(
        request: Request,
        kind: str,
        name: str,
        alias: str | None = Query(None, description="e.g. production"),
        digest: str | None = Query(None, description="sha256:HEX (prefix of >= 6 digits)"),
        version: int | None = version_query(),
    ) -> Response:
        return fetch(request, kind, name, version, alias, digest)

    @r.get(
        "/{kind}/{name}/versions/{number}",
        summary="Fetch one version (immutable)",
        responses=READ_ERRORS,
    )
    async def get_version(
        request: Request, kind: str, name: str, number: int = version_path()
    ) -> Response:
        return fetch(request, kind, name, number, None, None)

    @r.get("/{kind}/{name}/versions", summary="All versions of an artifact", responses=READ_ERRORS)
    def list_versions(request: Request, kind: str, name: str) -> Response:
        k = url_kind(kind)
        auth.check_read(request.headers.get("authorization"), k)
        ref = make_ref(k, name)
        return json_response({"versions": [v.public_dict() for v in reg.history(ref)]})

    @r.get(
        "/{kind}/{name}/aliases",
        summary="The alias journal (every set, move, delete)",
        responses=READ_ERRORS,
    )
    def alias_journal(request: Request, kind: str, name: str, alias: str | None = None) -> Response:
        k = url_kind(kind)
        auth.check_read(request.headers.get("authorization"), k)
        events = reg.alias_history(make_ref(k, name), alias)
        return json_response({"events": [e.to_dict() for e in events]})

    @r.post(
        "/prompts/{name}/render",
        summary="Render a prompt (variables checked by its schema; output, loop and time caps)",
        responses={**READ_ERRORS, **responses(400, 409, 413)},
    )
    async def render(
        request: Request,
        name: str,
        body: RenderBody,
        alias: str | None = None,
        digest: str | None = None,
        version: int | None = version_query(),
    ) -> Response:
        auth.check_read(request.headers.get("authorization"), "prompt")
        ref = make_ref("prompt", name, version, alias, digest)

        def work() -> Response:
            info = reader.resolve(ref)
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

        return await off_loop(work)

    @r.post(
        "/routing/{name}/explain",
        summary=f"Which route a query (at most {MAX_QUERY_CHARS} characters) takes, and why",
        responses={**READ_ERRORS, **responses(400, 413)},
    )
    async def explain(
        request: Request,
        name: str,
        body: ExplainBody,
        alias: str | None = None,
        version: int | None = version_query(),
    ) -> Response:
        auth.check_read(request.headers.get("authorization"), "routing")
        ref = make_ref("routing", name, version, alias)

        def work() -> Response:
            info = reader.resolve(ref)
            d = reg.explain_route(info.ref, body.query, body.tags)
            return json_response({"routing": info.ref, "digest": info.digest, **d.to_dict()})

        return await off_loop(work)

    # ---- writes ---------------------------------------------------------------------
    @r.post(
        "/{kind}/{name}/versions",
        status_code=201,
        summary="Register a version (write)",
        responses=WRITE_ERRORS,
    )
    def register(kind: str, name: str, body: RegisterBody, who: Any = Depends(writer)) -> Response:
        res = reg.register_content(
            url_kind(kind),
            name,
            body.content,
            message=body.message,
            tags=body.tags,
            author=who.name,
        )
        return json_response(res.public_dict(), 201 if res.created else 200)

    @r.put(
        "/{kind}/{name}/aliases/{alias}",
        summary="Point an alias at a version (write)",
        responses=WRITE_ERRORS,
    )
    def set_alias(
        kind: str, name: str, alias: str, body: AliasBody, who: Any = Depends(writer)
    ) -> Response:
        ref = _target(url_kind(kind), name, body)
        return json_response(
            reg.set_alias(ref, alias, reason=body.reason, actor=who.name).to_dict()
        )

    @r.delete(
        "/{kind}/{name}/aliases/{alias}", summary="Remove an alias (write)", responses=WRITE_ERRORS
    )
    def delete_alias(
        kind: str, name: str, alias: str, reason: str = "", who: Any = Depends(writer)
    ) -> Response:
        ref = make_ref(url_kind(kind), name)
        return json_response(reg.remove_alias(ref, alias, reason=reason, actor=who.name).to_dict())

    @r.post(
        "/{kind}/{name}/aliases/{alias}/promote",
        summary="Move an alias to a version, justified by an eval run (write)",
        responses=WRITE_ERRORS,
    )
    def promote(
        kind: str, name: str, alias: str, body: PromoteBody, who: Any = Depends(writer)
    ) -> Response:
        ref = _target(url_kind(kind), name, body)
        ev = reg.promote(str(ref), alias, body.run_id, reason=body.reason, actor=who.name)
        return json_response(ev.to_dict())

    return r
