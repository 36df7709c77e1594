"""The web UI's routes under ``/ui``: server-rendered pages over the service layer.

Pages: runs, run, query drill-down, compare (+ per-query drill-down), trend, artifacts,
version, diff, sign-in/out; one write action (promote). Every table downloads with
``?table=NAME&format=csv|json``. Access follows the API: with ``require_token`` nothing is
shown anonymously; eval-set content (queries, gold answers, judgments) needs
``evalsets:read`` and is replaced by a notice saying so without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from genreg.errors import GenregError, NotFound
from genreg.ui import present
from genreg.ui.session import clear_cookie, csrf_ok, set_cookie, viewer
from genreg.ui.tables import Table, fmt, to_csv, to_json

if TYPE_CHECKING:
    from genreg.api.auth import ApiConfig, Authenticator
    from genreg.service import Registry
    from genreg.service.run_queries import RunQueries
    from genreg.ui.session import Viewer

log = logging.getLogger("genreg.ui")
HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
PER_PAGE = 50
EVALSET_HIDDEN = (
    "Query text, gold answers and relevance judgments come from the eval set, which needs a "
    "token with the evalsets:read scope (the API's rule)."
)


class _Templates:
    def __init__(self) -> None:
        self._env: Any = None

    @property
    def env(self) -> Any:
        if self._env is None:
            from jinja2 import Environment, FileSystemLoader, select_autoescape

            env = Environment(
                loader=FileSystemLoader(str(HERE / "templates")),
                autoescape=select_autoescape(["html"]),
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.filters["fmt"] = fmt
            env.filters["ago"] = present.when
            env.globals["qs"] = present.qs
            self._env = env
        return self._env


def _warm(rq: RunQueries, tpl: _Templates) -> None:
    """Pay the first page's one-time costs, so the first visitor does not: SQLAlchemy's
    import, engine and the compiled form of the runs page's statements (its default query,
    run once: count, ids, rows, inputs, metrics), and Jinja2 with every template compiled --
    including the ``base.html`` they extend and the ``macros.html`` they import, which loading
    a page's own template does not compile (that was ~50 ms of the first runs page). Called by
    the app's warm-up thread (:func:`genreg.api.app.warm_up`) just after start-up."""
    rq.page(per_page=PER_PAGE)
    rq.eval_names()
    env = tpl.env
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)


def build_ui_router(
    reg: Registry, auth: Authenticator, cfg: ApiConfig
) -> tuple[APIRouter, Callable[[], None]]:
    """The ``/ui`` router and its warm-up (:func:`_warm` over this router's caches)."""
    from genreg.service.run_queries import RunQueries

    r = APIRouter(prefix="/ui", include_in_schema=False)
    tpl = _Templates()
    rq = RunQueries(reg)

    # ---- plumbing --------------------------------------------------------------------
    def page(request: Request, v: Viewer, _tpl: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        body = tpl.env.get_template(_tpl).render(
            request=request, viewer=v, path=request.url.path, **ctx
        )
        return HTMLResponse(body, status, headers={**SECURITY_HEADERS, "cache-control": "no-store"})

    def gate(request: Request) -> Viewer | Response:
        """The viewer, or the response that stops them (sign-in first / no read scope)."""
        v = viewer(request, auth)
        if cfg.require_token and not v.allows("read"):
            if v.principal is None:
                nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(
                    "/ui/login?" + urlencode({"next": nxt, "why": v.error or "required"}), 303
                )
            return page(
                request,
                v,
                "error.html",
                403,
                title="Not allowed",
                message=f"Token {v.name!r} lacks the 'read' scope this server requires.",
            )
        return v

    def error(request: Request, v: Viewer, exc: GenregError) -> HTMLResponse:
        status = {"not_found": 404, "forbidden": 403, "auth_required": 401}.get(exc.code, 400)
        if isinstance(exc, NotFound):
            status = 404
        return page(
            request,
            v,
            "error.html",
            status,
            title="Not found" if status == 404 else "Cannot show this",
            message=exc.message,
        )

    def export(request: Request, tables: list[Table]) -> Response | None:
        fmt_ = request.query_params.get("format")
        if fmt_ not in ("csv", "json"):
            return None
        want = request.query_params.get("table") or tables[0].name
        t = next((t for t in tables if t.name == want), None)
        if t is None:
            return Response(f"no table {want!r} on this page\n", 404, media_type="text/plain")
        stem = want.replace("/", "_")
        if fmt_ == "csv":
            return Response(
                to_csv(t),
                media_type="text/csv; charset=utf-8",
                headers={"content-disposition": f'attachment; filename="{stem}.csv"'},
            )
        return Response(
            to_json(t),
            media_type="application/json",
            headers={"content-disposition": f'attachment; filename="{stem}.json"'},
        )

    def intq(request: Request, key: str, default: int = 1) -> int:
        try:
            return max(1, int(request.query_params.get(key, default)))
        except ValueError:
            return default

    # ---- static, sign-in -------------------------------------------------------------
    @r.get("/static/{name}")
    def static(name: str) -> Response:
        types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
        p = HERE / "static" / name
        if "/" in name or p.suffix not in types or not p.is_file():
            return Response("not found\n", 404, media_type="text/plain")
        return Response(
            p.read_bytes(),
            media_type=types[p.suffix],
            headers={**SECURITY_HEADERS, "cache-control": "public, max-age=3600"},
        )

    @r.get("")
    @r.get("/")
    def home() -> Response:
        return RedirectResponse("/ui/runs", 303)

    @r.get("/login")
    def login_form(request: Request) -> Response:
        v = viewer(request, auth)
        why = request.query_params.get("why", "")
        return page(
            request,
            v,
            "login.html",
            title="Sign in",
            next=present.safe_next(request.query_params.get("next")),
            why=why,
            require_token=cfg.require_token,
        )

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return {k: vs[-1] for k, vs in parse_qs(body, keep_blank_values=True).items()}

    @r.post("/login")
    async def login(request: Request) -> Response:
        f = await form(request)
        token = f.get("token", "").strip()
        nxt = present.safe_next(f.get("next"))
        try:
            p = auth.principal(f"Bearer {token}") if token else None
        except GenregError as exc:
            p, msg = None, exc.message
        else:
            msg = "" if p else "paste a token (genreg token create --name NAME --scope read)"
        if p is None:
            return page(
                request,
                viewer(request, auth),
                "login.html",
                401,
                title="Sign in",
                next=nxt,
                why="",
                failed=msg,
                require_token=cfg.require_token,
            )
        resp = RedirectResponse(nxt, 303)
        set_cookie(request, resp, token)
        return resp

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        v = viewer(request, auth)
        f = await form(request)
        if v.token and not csrf_ok(v, f.get("csrf")):
            return page(
                request,
                v,
                "error.html",
                403,
                title="Refused",
                message="sign-out needs the page's CSRF token; reload and try again",
            )
        resp = RedirectResponse("/ui/login?why=signed-out", 303)
        clear_cookie(resp)
        return resp

    # ---- runs ------------------------------------------------------------------------
    @r.get("/runs")
    def runs_page(request: Request) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        qp = request.query_params
        name, used, status, label = (
            qp.get("name") or None,
            qp.get("used") or None,
            qp.get("status") or None,
            qp.get("label") or None,
        )
        sort = qp.get("sort", "started_at")
        desc = qp.get("order", "desc") != "asc"
        want_all = qp.get("format") in ("csv", "json")
        try:
            pg = rq.page(
                name=name,
                used=used,
                status=status,
                label=label,
                sort=sort,
                desc=desc,
                page=1 if want_all else intq(request, "page"),
                per_page=100_000 if want_all else PER_PAGE,
            )
        except GenregError as exc:
            return page(
                request,
                v,
                "runs.html",
                400,
                title="Runs",
                error=exc.message,
                table=None,
                pg=None,
                names=rq.eval_names(),
                f=dict(qp),
            )
        t = present.runs_table(pg)
        out = export(request, [t])
        if out is not None:
            return out
        return page(
            request,
            v,
            "runs.html",
            title="Runs",
            table=t,
            pg=pg,
            names=rq.eval_names(),
            f=dict(qp),
            sort=sort,
            desc=desc,
        )

    @r.get("/runs/{run_id}")
    def run_page(request: Request, run_id: str) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        try:
            run = reg.get_run(run_id)
            res = rq.summary(run)
        except GenregError as exc:
            return error(request, v, exc)
        return _run_page(request, v, run, res)

    def _run_page(
        request: Request,
        v: Viewer,
        run: Any,
        res: dict[str, Any],
        status: int = 200,
        flash: str = "",
        flash_ok: bool = False,
    ) -> Response:
        qp = request.query_params
        can_es = v.allows("evalsets:read")
        cis = res.get("cis") or {}
        metrics_t = present.metrics_table(run, cis)
        gates = present.gates(run)
        lat = present.latency(run, res)
        cost_t = present.cost_table(run)
        qt, qinfo = present.queries_table(run, res, qp, can_es, PER_PAGE)
        tables = [metrics_t, qt] + ([cost_t] if cost_t else []) + [present.gates_table(gates)]
        out = export(request, tables)
        if out is not None:
            return out
        return page(
            request,
            v,
            "run.html",
            status,
            title=f"Run {run.id}",
            run=run,
            metrics_t=metrics_t,
            ci_method=next((c.get("method") for c in cis.values()), None),
            gates=gates,
            gates_t=tables[-1],
            lat=lat,
            cost_t=cost_t,
            qt=qt,
            qinfo=qinfo,
            can_es=can_es,
            hidden=EVALSET_HIDDEN,
            lineage=present.lineage_tree(run),
            promote=present.promote_state(run, v),
            flash=flash,
            flash_ok=flash_ok,
        )

    @r.get("/runs/{run_id}/queries/{qid}")
    def query_page(request: Request, run_id: str, qid: str) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        can_es = v.allows("evalsets:read")
        try:
            run = reg.get_run(run_id)
            q = rq.query(run, qid)
            row = rq.evalset_row(run, qid) if can_es else None
            docs = present.ranked_docs(
                q, row, rq.snippets(run, [d for d, _ in q["ranked"][:20]]), can_es
            )
        except GenregError as exc:
            return error(request, v, exc)
        docs_t = present.docs_table(docs, can_es)
        out = export(request, [docs_t])
        if out is not None:
            return out
        return page(
            request,
            v,
            "query.html",
            title=f"Query {qid}",
            run=run,
            q=q,
            row=row,
            docs_t=docs_t,
            can_es=can_es,
            hidden=EVALSET_HIDDEN,
            gen=present.generation(q, row),
            snippets_from=next((i.ref for i in run.inputs if i.role == "corpus"), None),
            k=present.top_k(run),
            missing=present.missing_relevant(row, q["ranked"]),
        )

    @r.post("/runs/{run_id}/promote")
    async def promote(request: Request, run_id: str) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        f = await form(request)
        try:
            run = reg.get_run(run_id)
            res = rq.summary(run)
        except GenregError as exc:
            return error(request, v, exc)
        if not csrf_ok(v, f.get("csrf")):
            return _run_page(
                request,
                v,
                run,
                res,
                403,
                "Refused: the form's CSRF token is missing or wrong (reload the "
                "page and submit again).",
            )
        if not v.allows("write"):
            return _run_page(
                request,
                v,
                run,
                res,
                403,
                f"Refused: promoting needs a token with the 'write' scope; "
                f"{v.name or 'you'} {'has' if v.name else 'are'} "
                f"{'only ' + ', '.join(v.principal.scopes) if v.principal else 'not signed in'}.",
            )
        ref, alias = f.get("ref", ""), f.get("alias", "").strip()
        try:
            ev = reg.promote(ref, alias, run.id, reason=f.get("reason", ""), actor=v.name)
        except GenregError as exc:
            return _run_page(request, v, run, res, 409, f"Not promoted: {exc.message}")
        return _run_page(
            request,
            v,
            run,
            res,
            200,
            f"Promoted {ev.kind}:{ev.name}@v{ev.to_version} to {ev.alias!r} "
            f"(was {'v' + str(ev.from_version) if ev.from_version else 'unset'}).",
            True,
        )

    # ---- compare ---------------------------------------------------------------------
    @r.get("/compare")
    def compare_page(request: Request) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        qp = request.query_params
        picked = qp.getlist("run")
        base, head = qp.get("base"), qp.get("head")
        if not (base and head) and len(picked) == 2:
            try:
                a, b = sorted((reg.get_run(x) for x in picked), key=lambda x: x.started_at)
            except GenregError as exc:
                return error(request, v, exc)
            return RedirectResponse("/ui/compare?" + urlencode({"base": a.id, "head": b.id}), 303)
        if not (base and head):
            recent = rq.page(per_page=100).runs
            return page(
                request,
                v,
                "compare_pick.html",
                400 if picked else 200,
                title="Compare runs",
                recent=recent,
                picked=picked,
            )
        can_es = v.allows("evalsets:read")
        try:
            ra, rb = reg.get_run(base), reg.get_run(head)
            cmp = rq.compare(ra, rb)
            res_a, res_b = rq.summary(ra), rq.summary(rb)
        except GenregError as exc:
            return error(request, v, exc)
        metric = qp.get("metric") or next(iter(cmp["metrics"]), None)
        deltas_t = present.deltas_table(cmp)
        diff_t = present.inputs_diff_table(cmp)
        qt, qinfo = present.compare_queries(ra, rb, res_a, res_b, metric, qp, can_es, PER_PAGE)
        out = export(request, [deltas_t, qt, diff_t])
        if out is not None:
            return out
        return page(
            request,
            v,
            "compare.html",
            title="Compare runs",
            a=ra,
            b=rb,
            cmp=cmp,
            deltas_t=deltas_t,
            diff_t=diff_t,
            qt=qt,
            qinfo=qinfo,
            metric=metric,
            scatter=present.scatter(res_a, res_b, metric, ra.id, rb.id),
            can_es=can_es,
            hidden=EVALSET_HIDDEN,
        )

    @r.get("/compare/status")
    def compare_status(request: Request) -> Response:
        """``{"ready": bool}``: whether the pair's CI and p-values are stored (the compare
        page's script polls it while they are computed, then reloads)."""
        v = gate(request)
        if isinstance(v, Response):
            return v
        qp = request.query_params
        try:
            ra, rb = reg.get_run(qp.get("base", "")), reg.get_run(qp.get("head", ""))
        except GenregError as exc:
            from genreg.api.errors import genreg_error_response

            return genreg_error_response(exc)
        ready = "true" if rq.compare_ready(ra, rb) else "false"
        return Response(
            f'{{"ready": {ready}}}',
            media_type="application/json",
            headers={**SECURITY_HEADERS, "cache-control": "no-store"},
        )

    @r.get("/compare/queries/{qid}")
    def compare_query(request: Request, qid: str) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        qp = request.query_params
        can_es = v.allows("evalsets:read")
        try:
            ra, rb = reg.get_run(qp.get("base", "")), reg.get_run(qp.get("head", ""))
            qa, qb = rq.query(ra, qid), rq.query(rb, qid)
            row = rq.evalset_row(rb, qid) if can_es else None
            k = present.top_k(rb)
            ids = [d for d, _ in qa["ranked"][:k]] + [d for d, _ in qb["ranked"][:k]]
            snips = rq.snippets(rb, ids) or rq.snippets(ra, ids)
        except GenregError as exc:
            return error(request, v, exc)
        moved_t = present.moved_docs(qa, qb, row, snips, k, can_es)
        out = export(request, [moved_t])
        if out is not None:
            return out
        return page(
            request,
            v,
            "compare_query.html",
            title=f"Compare query {qid}",
            a=ra,
            b=rb,
            qa=qa,
            qb=qb,
            row=row,
            moved_t=moved_t,
            k=k,
            can_es=can_es,
            hidden=EVALSET_HIDDEN,
            gen_a=present.generation(qa, row),
            gen_b=present.generation(qb, row),
            metrics=sorted(set(qa.get("metrics", {})) | set(qb.get("metrics", {}))),
        )

    # ---- trend -----------------------------------------------------------------------
    @r.get("/trend")
    def trend_page(request: Request) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        qp = request.query_params
        names = rq.eval_names()
        name = qp.get("name") or (names[0] if names else None)
        series: list[dict[str, Any]] = []
        metrics: list[str] = []
        if name:
            latest = reg.list_runs(name=name, limit=1)
            metrics = list(latest[0].metrics) if latest else []
        metric = qp.get("metric") or (metrics[0] if metrics else None)
        if name and metric:
            series = rq.trend(name, metric)
        t = present.trend_table(series, metric or "")
        out = export(request, [t])
        if out is not None:
            return out
        return page(
            request,
            v,
            "trend.html",
            title="Trend",
            names=names,
            name=name,
            metric=metric,
            metrics=metrics,
            table=t,
            chart=present.trend_chart(series, metric or ""),
            changes=present.input_changes(series),
        )

    # ---- artifacts -------------------------------------------------------------------
    @r.get("/artifacts")
    def artifacts_page(request: Request) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        kind = request.query_params.get("kind") or None
        try:
            arts = reg.list(kind)
        except GenregError as exc:
            return error(request, v, exc)
        t = present.artifacts_table(arts)
        out = export(request, [t])
        if out is not None:
            return out
        return page(request, v, "artifacts.html", title="Artifacts", table=t, kind=kind)

    @r.get("/artifacts/{kind}/{name}")
    def artifact_page(request: Request, kind: str, name: str) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        try:
            hist = reg.history(f"{kind}:{name}")
            journal = reg.alias_history(f"{kind}:{name}")
        except GenregError as exc:
            return error(request, v, exc)
        vt, jt = present.versions_table(hist), present.journal_table(journal)
        out = export(request, [vt, jt])
        if out is not None:
            return out
        return page(
            request,
            v,
            "artifact.html",
            title=f"{kind}:{name}",
            kind=kind,
            name=name,
            vt=vt,
            jt=jt,
            hist=hist,
        )

    @r.get("/artifacts/{kind}/{name}/v/{version}")
    def version_page(request: Request, kind: str, name: str, version: int) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        ref = f"{kind}:{name}@v{version}"
        hidden = kind == "evalset" and not v.allows("evalsets:read")
        try:
            info = reg.resolve(ref)
            content = None if hidden else present.version_content(reg, info)
            used = reg.used_by(ref)
            journal = reg.alias_history(f"{kind}:{name}")
        except GenregError as exc:
            return error(request, v, exc)
        rt = present.used_by_table(used)
        jt = present.journal_table(
            [e for e in journal if version in (e.to_version, e.from_version)]
        )
        tables = [rt, jt] + ([content["table"]] if content and content.get("table") else [])
        out = export(request, tables)
        if out is not None:
            return out
        prev = version - 1 if version > 1 else None
        return page(
            request,
            v,
            "version.html",
            title=ref,
            info=info,
            content=content,
            hidden=hidden,
            rt=rt,
            jt=jt,
            prev=prev,
        )

    @r.get("/artifacts/{kind}/{name}/diff")
    def diff_page(request: Request, kind: str, name: str) -> Response:
        v = gate(request)
        if isinstance(v, Response):
            return v
        qp = request.query_params
        if kind == "evalset" and not v.allows("evalsets:read"):
            return page(request, v, "error.html", 403, title="Hidden", message=EVALSET_HIDDEN)
        try:
            hist = reg.history(f"{kind}:{name}")
            a = int(qp.get("a") or max(1, hist[-1].version - 1))
            b = int(qp.get("b") or hist[-1].version)
            d = present.diff_view(reg, kind, name, a, b)
        except (GenregError, ValueError, IndexError) as exc:
            msg = exc.message if isinstance(exc, GenregError) else f"bad version: {exc}"
            return page(request, v, "error.html", 400, title="Diff", message=msg)
        tables = [d["table"]] if d.get("table") else []
        out = export(request, tables) if tables else None
        if out is not None:
            return out
        return page(
            request,
            v,
            "diff.html",
            title=f"{kind}:{name} v{a} → v{b}",
            kind=kind,
            name=name,
            a=a,
            b=b,
            d=d,
            hist=hist,
        )

    return r, lambda: _warm(rq, tpl)
