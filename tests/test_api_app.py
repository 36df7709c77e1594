"""The HTTP API through FastAPI's TestClient: fetches, caching headers, auth, render, writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from _apihelp import ROWS, chat, seed
from genreg.api.app import create_app
from genreg.api.auth import ApiConfig


def _client(registry, **cfg) -> TestClient:
    return TestClient(create_app(registry=registry, config=ApiConfig(**cfg)))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_pinned_fetch_returns_content_and_is_immutable(registry) -> None:
    seed(registry)
    v1 = registry.resolve("prompt:qa@v1")
    r = _client(registry).get("/v1/prompts/qa/versions/1")
    assert r.status_code == 200
    body = r.json()
    assert (body["version"], body["digest"]) == (1, v1.digest)
    assert body["content"]["messages"][1]["content"] == "{{ question }}"
    assert body["content"]["variables"]["required"] == ["question", "context"]
    assert body["content"]["model"]["model"] == "gpt-4o-mini"
    assert r.headers["etag"] == f'"{v1.digest}"'
    assert "immutable" in r.headers["cache-control"]


def test_alias_latest_and_digest_lookups_name_the_right_version(registry) -> None:
    seed(registry, versions=3, alias_to=2)
    c = _client(registry)
    r = c.get("/v1/prompts/qa?alias=production")
    assert r.json()["version"] == 2 and r.json()["alias"] == "production"
    assert r.json()["aliases"] == ["production"]
    assert r.headers["cache-control"] == "public, max-age=5"
    assert c.get("/v1/prompts/qa").json()["version"] == 3
    d = registry.resolve("prompt:qa@v1").digest
    assert c.get(f"/v1/prompts/qa?digest={d[:15]}").json()["version"] == 1
    full = c.get(f"/v1/prompts/qa?digest={d}")
    assert "immutable" in full.headers["cache-control"] and "aliases" not in full.json()


def test_if_none_match_gives_304_and_a_changed_alias_gives_200(registry) -> None:
    seed(registry)
    c = _client(registry)
    etag = c.get("/v1/prompts/qa?alias=production").headers["etag"]
    r = c.get("/v1/prompts/qa?alias=production", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert c.get("/v1/prompts/qa/versions/1", headers={"If-None-Match": etag}).status_code == 304
    registry.set_alias("prompt:qa@v2", "production")
    r = c.get("/v1/prompts/qa?alias=production", headers={"If-None-Match": etag})
    assert r.status_code == 200 and r.json()["version"] == 2


def test_alias_move_by_another_process_is_visible_to_the_next_request(
    registry, genreg_home
) -> None:
    seed(registry)
    c = _client(registry)
    assert c.get("/v1/prompts/qa?alias=production").json()["version"] == 1
    code = (
        "from genreg import Registry; "
        f"Registry({str(genreg_home)!r}).set_alias('prompt:qa@v2', 'production')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert c.get("/v1/prompts/qa?alias=production").json()["version"] == 2


def test_versions_list_and_alias_journal(registry) -> None:
    seed(registry)
    registry.set_alias("prompt:qa@v2", "production", reason="better")
    c = _client(registry)
    vs = c.get("/v1/prompts/qa/versions").json()["versions"]
    assert [v["version"] for v in vs] == [1, 2] and "object_digest" not in vs[0]
    ev = c.get("/v1/prompts/qa/aliases").json()["events"]
    assert [(e["action"], e["to_version"]) for e in ev] == [("set", 1), ("move", 2)]
    assert c.get("/v1/prompts").json()["artifacts"][0]["aliases"] == {"production": 2}


def test_render_returns_openai_style_messages(registry) -> None:
    seed(registry)
    r = _client(registry).post(
        "/v1/prompts/qa/render?alias=production",
        json={"variables": {"question": "why?", "context": "because"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["messages"] == [
        {"role": "system", "content": "Answer from the context: because"},
        {"role": "user", "content": "why?"},
    ]


def test_render_422_names_each_bad_variable(registry) -> None:
    seed(registry)
    r = _client(registry).post("/v1/prompts/qa/render", json={"variables": {"question": 3}})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "render"
    assert err["details"]["variables"] == ["context", "question"]
    assert "context" in err["message"] and "question" in err["message"]


def test_routing_configs_and_corpus_metadata_are_readable(registry) -> None:
    price = {"input_per_1m": 1, "output_per_1m": 2}
    routing = {
        "default": {"target": {"model": "small", "price": price}},
        "routes": [
            {
                "name": "err",
                "match": {"query_regex": "error"},
                "target": {"model": "big", "price": price},
            }
        ],
    }
    registry.register_content("routing", "r", routing)
    c = _client(registry)
    assert (
        c.get("/v1/routing/r/versions/1").json()["content"]["default"]["target"]["model"] == "small"
    )
    r = c.post("/v1/routing/r/explain", json={"query": "an error"})
    assert r.status_code == 200 and r.json()["route"] == "err"


WRITES = [
    ("post", "/v1/prompts/qa/versions", {"content": chat(9)}),
    ("put", "/v1/prompts/qa/aliases/production", {"version": 2}),
    ("delete", "/v1/prompts/qa/aliases/production", None),
    ("post", "/v1/prompts/qa/aliases/production/promote", {"version": 2, "run_id": "r1"}),
    ("post", "/v1/evalsets/gold/versions", {"content": ROWS}),
]


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_every_write_route_refuses_anonymous_and_read_only_callers(
    registry, method, url, body
) -> None:
    seed(registry)
    ro, _ = registry.create_token("reader", ["read", "evalsets:read"])
    c = _client(registry)
    kw = {"json": body} if body is not None else {}
    r = c.request(method.upper(), url, **kw)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = c.request(method.upper(), url, headers=_bearer(ro), **kw)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert len(registry.history("prompt:qa")) == 2
    assert registry.resolve("prompt:qa@production").version == 1


def test_writes_with_a_write_token_are_journaled_with_the_tokens_name(registry) -> None:
    seed(registry)
    tok, _ = registry.create_token("deploy-bot", ["write"])
    c = _client(registry)
    r = c.post(
        "/v1/prompts/qa/versions", json={"content": chat(5), "message": "m"}, headers=_bearer(tok)
    )
    assert r.status_code == 201 and r.json()["version"] == 3 and r.json()["author"] == "deploy-bot"
    r = c.post("/v1/prompts/qa/versions", json={"content": chat(5)}, headers=_bearer(tok))
    assert r.status_code == 200 and r.json()["created"] is False
    r = c.put(
        "/v1/prompts/qa/aliases/production",
        json={"version": 3, "reason": "ship"},
        headers=_bearer(tok),
    )
    assert r.status_code == 200, r.text
    ev = registry.alias_history("prompt:qa", "production")[-1]
    assert (ev.actor, ev.to_version, ev.reason) == ("deploy-bot", 3, "ship")
    r = c.delete("/v1/prompts/qa/aliases/production", headers=_bearer(tok))
    assert r.status_code == 200 and registry.alias_history("prompt:qa")[-1].action == "delete"


def test_promote_needs_a_passing_run(registry) -> None:
    seed(registry)
    tok, _ = registry.create_token("ci", ["write"])
    r = _client(registry).post(
        "/v1/prompts/qa/aliases/production/promote",
        json={"version": 2, "run_id": "nope"},
        headers=_bearer(tok),
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert registry.resolve("prompt:qa@production").version == 1


def test_eval_sets_need_the_evalsets_read_scope(registry) -> None:
    registry.register_content("evalset", "gold", ROWS)
    read, _ = registry.create_token("r", ["read"])
    write, _ = registry.create_token("w", ["write"])
    es, _ = registry.create_token("e", ["evalsets:read"])
    admin, _ = registry.create_token("a", ["admin"])
    c = _client(registry)
    for url in ("/v1/evalsets/gold/versions/1", "/v1/evalsets/gold", "/v1/evalsets/gold/versions"):
        assert c.get(url).status_code == 401
        assert c.get(url, headers=_bearer(read)).status_code == 403
        assert c.get(url, headers=_bearer(write)).status_code == 403
        assert c.get(url, headers=_bearer(es)).status_code == 200
        assert c.get(url, headers=_bearer(admin)).status_code == 200
    r = c.get("/v1/evalsets/gold/versions/1", headers=_bearer(es))
    assert r.json()["content"][0]["query"] == "what is gold?"
    assert r.headers["cache-control"].startswith("private")


def test_require_token_closes_prompt_reads(registry) -> None:
    seed(registry)
    tok, _ = registry.create_token("app", ["read"])
    c = _client(registry, require_token=True)
    for url in ("/v1/prompts/qa/versions/1", "/v1/prompts/qa?alias=production", "/v1/prompts"):
        assert c.get(url).status_code == 401
        r = c.get(url, headers=_bearer(tok))
        assert r.status_code == 200
    assert (
        c.get("/v1/prompts/qa/versions/1", headers=_bearer(tok))
        .headers["cache-control"]
        .startswith("private")
    )
    assert c.get("/healthz").status_code == 200


def test_revoked_token_stops_working_for_a_new_app(registry) -> None:
    seed(registry)
    tok, _ = registry.create_token("ci", ["write"])
    registry.revoke_token("ci")
    r = _client(registry).put(
        "/v1/prompts/qa/aliases/production", json={"version": 2}, headers=_bearer(tok)
    )
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert tok not in r.text


def test_runs_endpoints_list_and_look_up_runs(registry) -> None:
    seed(registry)
    c = _client(registry)
    assert c.get("/v1/runs").json() == {"runs": []}
    assert c.get("/v1/prompts/qa/versions/1/runs").json()["runs"] == []
    assert c.get("/v1/runs/deadbeef").status_code == 404
    assert c.get("/v1/runs/deadbeef/lineage").status_code == 404


def test_health_ready_and_openapi(registry) -> None:
    c = _client(registry)
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["status"] == "ready"
    paths = c.get("/openapi.json").json()["paths"]
    assert "/v1/{kind}/{name}/versions/{number}" in paths and "/v1/prompts/{name}/render" in paths
    assert c.get("/docs").status_code == 200


def test_importing_the_app_pulls_no_heavy_modules() -> None:
    code = (
        "import sys, genreg.api.app, genreg.api.routes_artifacts, genreg.api.hot\n"
        "heavy = [m for m in ('torch', 'faiss', 'sentence_transformers', 'numpy', 'sqlalchemy') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serving_hot_reads_pulls_no_heavy_modules(genreg_home) -> None:
    code = (
        "import sys\n"
        "from genreg import Registry\n"
        "from genreg.api.app import create_app\n"
        "from fastapi.testclient import TestClient\n"
        f"reg = Registry.init({str(genreg_home)!r})\n"
        "reg.register_content('prompt', 'qa', {'template': 'hi {{ x }}', 'variables': "
        "{'type': 'object', 'properties': {'x': {'type': 'string'}}}})\n"
        "reg.close()\n"
        "for m in [m for m in sys.modules if m.startswith(('sqlalchemy', 'sqlmodel', 'alembic'))]:\n"
        "    pass\n"
        "c = TestClient(create_app())\n"
        "assert c.get('/v1/prompts/qa/versions/1').status_code == 200\n"
        "assert c.get('/v1/prompts/qa').status_code == 200\n"
        "heavy = [m for m in ('torch', 'faiss', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_corpus_snapshot_metadata_without_the_manifest(registry, write) -> None:
    write("docs/a.md", "# A\nalpha")
    write("docs/b.md", "# B\nbeta")
    snap = registry.snapshot("docs", "docs")
    info = registry.resolve("corpus:docs")
    c = _client(registry)
    body = c.get("/v1/corpus/docs/versions/1").json()
    assert body["digest"] == info.digest and body["summary"] == info.summary
    assert "content" not in body
    assert c.get("/v1/corpus/docs").json()["version"] == 1
    assert snap is not None


def test_hot_path_and_full_route_answer_identically(registry) -> None:
    seed(registry)
    tok, _ = registry.create_token("app", ["read"])
    c = _client(registry)
    for url in ("/v1/prompts/qa/versions/1", "/v1/prompts/qa?alias=production", "/v1/prompts/qa"):
        hot = c.get(url)  # anonymous: answered by genreg.api.hot
        full = c.get(url, headers=_bearer(tok))  # a token: through the FastAPI route
        assert hot.content == full.content
        for h in ("etag", "cache-control", "content-type"):
            assert hot.headers[h] == full.headers[h]


def test_serve_pays_the_run_routes_one_time_costs_before_their_first_request(
    registry, tmp_path: Path
) -> None:
    """``genreg serve``'s app builds every component a route uses (no SQLAlchemy, torch or
    faiss for that), and its warm-up thread compiles the run routes' statements: after it,
    the first ``/v1/runs`` and ``/v1/runs/ID`` requests import no module and compile no SQL
    statement (what the first ``/v1/runs`` of a fresh server paid: ~15 ms of CPU, ~40 ms when
    the modules compile from source)."""
    from _evalhelp import GOOD, add_evalset, trec

    add_evalset(registry)
    run = registry.eval_score("evalset:gold#test", trec(tmp_path / "g.trec", GOOD)).run
    home = str(registry.home)
    registry.close()
    code = f"""
import os, sys, threading
os.environ['GENREG_HOME'] = {home!r}
from genreg import Registry
reg = Registry({home!r})
reg.build_components()
assert 'sqlalchemy' not in sys.modules, 'building the components imported SQLAlchemy'
assert {{m.split('.')[0] for m in sys.modules}}.isdisjoint({{'torch', 'faiss', 'sentence_transformers'}})
reg.close()
from fastapi.testclient import TestClient
from genreg.api.app import create_app
app = create_app()
reg = app.state.registry
built = {{'_tokens', '_indexes', '_evals', '_admin'}} - set(vars(reg))
assert not built, f'components left to the first request: {{built}}'
assert 'genreg.service.runs' in sys.modules and 'genreg.service.run_views' in sys.modules
for t in threading.enumerate():
    if t.name == 'serve-warm':
        t.join(60)
c = TestClient(app)
assert c.get('/healthz').status_code == 200  # the test client's own first-request imports
modules, cache = set(sys.modules), reg.runs_repo.engine._compiled_cache
compiled = len(cache)
assert compiled, 'the warm-up compiled no statement'
r = c.get('/v1/runs?limit=50')
assert r.status_code == 200 and [x['id'] for x in r.json()['runs']] == [{run.id!r}]
assert c.get('/v1/runs/{run.id}').json()['id'] == {run.id!r}
new = sorted(set(sys.modules) - modules)
assert not new, f'the first run requests imported {{new}}'
assert len(cache) == compiled, f'the first run requests compiled {{len(cache) - compiled}} statements'
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
