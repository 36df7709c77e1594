"""Issue 14 items 2, 3, 8, 15 and 19: the API under hostile input.

Render and routing-regex attacks run against a real ``genreg serve`` on a loopback port
(``/healthz`` must answer while they run); envelope checks use the in-process app."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from _apihelp import seed, start_server, stop_server
from genreg.api.app import create_app
from genreg.errors import InvalidArtifact
from test_api_errors import check_envelope

SLOW = "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(depth) }}"
REDOS = {
    "routes": [
        {
            "name": "evil",
            "match": {"query_regex": "^(a+)+$"},
            "target": {"model": "x", "price": {"input_per_1m": 1, "output_per_1m": 1}},
        }
    ],
    "default": {"target": {"model": "small", "price": {"input_per_1m": 1, "output_per_1m": 1}}},
}


def _token(reg: Any) -> str:
    import uuid

    return str(reg.create_token(f"w{uuid.uuid4().hex[:8]}", ["write"])[0])


def _post(url: str, path: str, body: Any, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    out = r.status, json.loads(r.read())
    c.close()
    return out


def _healthz_ms(url: str) -> float:
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    t = time.perf_counter()
    c.request("GET", "/healthz")
    assert c.getresponse().status == 200
    c.close()
    return (time.perf_counter() - t) * 1000


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Any:
    from genreg import Registry

    home = tmp_path_factory.mktemp("hostile") / ".genreg"
    reg = Registry.init(home)
    seed(reg)
    reg.register_content(
        "prompt",
        "slow",
        {"template": SLOW, "variables": {"properties": {"depth": {"type": "integer"}}}},
    )
    reg.register_content("routing", "redos", REDOS)
    reg.close()
    proc, url = start_server(home)
    yield url
    stop_server(proc)


def test_healthz_answers_while_a_slow_render_runs_and_the_render_hits_the_time_cap(
    served,
) -> None:
    result: dict[str, Any] = {}

    def slow() -> None:
        t = time.perf_counter()
        result["r"] = _post(served, "/v1/prompts/slow/render", {"variables": {"depth": 40}})
        result["s"] = time.perf_counter() - t

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)  # the render is now running in the server
    worst = max(_healthz_ms(served) for _ in range(10))
    th.join(30)
    status, body = result["r"]
    assert status == 422 and "render time cap" in body["error"]["message"], body
    assert result["s"] < 10
    assert worst < 500, f"/healthz took {worst:.0f} ms during a slow render"


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ 'a' * 10**9 }}", "output cap"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "iterations",
        ),
        ("{% for i in range(10**9) %}{% endfor %}", "iterations"),
        ("{{ 'x'|truncate(-1) }}", "truncate"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion"),
        (
            "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}{{ ns.s }}",
            "output cap",
        ),
        ("{{ 'a'|center(10**9) }}", "output cap"),
        ("{{ '{:>1000000000}'.format(1) }}", "output cap"),
        ("{{ '%1000000000d' % 1 }}", "output cap"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
def test_render_caps_are_a_422_in_the_envelope(registry, template, fragment) -> None:
    registry.register_content("prompt", "t", {"template": template})
    api = TestClient(create_app(registry=registry))
    t = time.monotonic()
    err = check_envelope(api.post("/v1/prompts/t/render", json={"variables": {}}), 422)
    assert time.monotonic() - t < 8
    assert fragment in err["message"], err


@pytest.mark.parametrize(
    "template",
    [
        "{% include 'x.txt' %}",
        "{% import 'm.j2' as m %}",
        "{% extends 'base' %}",
        "{% from 'm' import f %}",
    ],
)
def test_loader_tags_are_refused_at_registration(registry, template) -> None:
    with pytest.raises(InvalidArtifact, match="not supported"):
        registry.register_content("prompt", "t", {"template": template})
    api = TestClient(create_app(registry=registry))
    seed(registry)
    tok = _token(registry)
    r = api.post(
        "/v1/prompts/t/versions",
        json={"content": {"template": template}},
        headers={"Authorization": f"Bearer {tok}"},
    )
    assert "not supported" in check_envelope(r, 422)["message"]


def test_render_of_a_legacy_prompt_with_include_is_a_422(registry) -> None:
    """A prompt stored before the registration check (content written directly)."""
    from genreg.core import artifacts as kinds
    from genreg.core.hashing import canonical_json
    from genreg.core.prompt import Prompt

    p = Prompt("text", "{% include 'x' %}", None, {"type": "object"})
    data = canonical_json(p.to_content())
    registry.register_parsed("legacy", kinds.Parsed("prompt", data, {"type": "text"}))
    api = TestClient(create_app(registry=registry))
    check_envelope(api.post("/v1/prompts/legacy/render", json={"variables": {}}), 422)


def test_redos_pattern_explains_in_linear_time_and_healthz_stays_fast(served) -> None:
    t = time.perf_counter()
    status, body = _post(served, "/v1/routing/redos/explain", {"query": "a" * 30 + "!"})
    assert status == 200 and body["route"] == "default"
    assert time.perf_counter() - t < 2
    status, body = _post(served, "/v1/routing/redos/explain", {"query": "a" * 5000})
    assert status == 200 and body["route"] == "evil"
    status, body = _post(served, "/v1/routing/redos/explain", {"query": "a" * 10_001})
    assert status == 422 and body["error"]["code"] == "invalid"
    assert _healthz_ms(served) < 500


@pytest.mark.parametrize("rx", [r"(a)\1", r"(?=a)b", r"(?<!x)y"])
def test_patterns_re2_cannot_bound_are_refused_at_registration(registry, rx) -> None:
    cfg = json.loads(json.dumps(REDOS))
    cfg["routes"][0]["match"]["query_regex"] = rx
    with pytest.raises(InvalidArtifact, match="not supported by the linear-time RE2 engine"):
        registry.register_content("routing", "r", cfg)


def test_routing_matches_are_re2_searches(registry) -> None:
    registry.register_content("routing", "ok", REDOS)
    d = registry.explain_route("routing:ok", "aaaa")
    assert d.route == "evil" and "'aaaa'" in d.reasons[0]


# ---- item 8: input errors are 4xx, never 500 ------------------------------------------------
BIG = str(2**63)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/prompts/qa/versions/{BIG}", None),
        ("GET", f"/v1/prompts/qa/versions/{'9' * 40}", None),
        ("GET", f"/v1/prompts/qa?version={BIG}", None),
        ("GET", f"/v1/prompts/qa/versions/{BIG}/runs", None),
        ("GET", "/v1/prompts/qa/versions/%C2%B2", None),  # '²'.isdigit() but not int()
        ("POST", f"/v1/prompts/qa/render?version={BIG}", {"variables": {}}),
        ("GET", f"/v1/runs?used=prompt:qa@v{BIG}", None),
        ("PUT", "/v1/prompts/qa/aliases/prod", {"version": 2**63}),
        ("POST", "/v1/prompts/qa/render", '{"variables": {"question": "\\ud800", "context": "c"}}'),
        ("POST", "/v1/prompts/qa/render", '{"variables": {"question": NaN, "context": "c"}}'),
        ("POST", "/v1/prompts/qa/versions", '{"content": {"template": "x"}, "tags": {"t": NaN}}'),
        ("POST", "/v1/prompts/qa/versions", '{"content": {"template": "x \\udfff"}}'),
        (
            "POST",
            "/v1/prompts/qa/versions",
            '{"content": {"template": "x", "metadata": {"n": ' + "9" * 5000 + "}}}",
        ),
        ("POST", "/v1/prompts/qa/versions", '{"content": ' + "[" * 5000 + "]" * 5000 + "}"),
        ("POST", "/v1/routing/r/explain", '{"query": "\\ud800"}'),
    ],
)
def test_input_errors_are_4xx_in_the_envelope(registry, method, path, body) -> None:
    seed(registry)
    tok = _token(registry)
    api = TestClient(create_app(registry=registry), raise_server_exceptions=False)
    kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {tok}"}}
    if isinstance(body, str):
        kw["content"] = body.encode()
        kw["headers"]["Content-Type"] = "application/json"
    elif body is not None:
        kw["json"] = body
    r = api.request(method, path, **kw)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    check_envelope(r, r.status_code)
    assert registry.history("prompt:qa")[-1].version == 2  # nothing registered


def test_render_error_names_each_problem_once(registry) -> None:
    seed(registry)
    api = TestClient(create_app(registry=registry))
    err = check_envelope(api.post("/v1/prompts/qa/render", json={"variables": {}}), 422)
    assert err["message"] == "invalid variables: question: missing; context: missing"
    assert err["details"]["errors"] == ["question: missing", "context: missing"]


# ---- item 19: OpenAPI conformance -----------------------------------------------------------
def test_openapi_documents_the_errors_routes_return(registry) -> None:
    spec = TestClient(create_app(registry=registry)).get("/openapi.json").json()
    paths = spec["paths"]
    for path, ops in paths.items():
        if not path.startswith("/v1"):
            continue
        for method, op in ops.items():
            got = set(op["responses"])
            assert {"404", "422"} <= got, (method, path, got)
    get_v = paths["/v1/{kind}/{name}/versions/{number}"]["get"]
    number = next(p for p in get_v["parameters"] if p["name"] == "number")
    assert number["schema"]["minimum"] == 1 and number["schema"]["maximum"] == 2**63 - 1
    post_v = paths["/v1/{kind}/{name}/versions"]["post"]
    assert {"400", "401", "403", "409", "413"} <= set(post_v["responses"])
    used = next(p for p in paths["/v1/runs"]["get"]["parameters"] if p["name"] == "used")
    assert "422" in used["description"]


def test_405_allow_lists_every_allowed_method(registry) -> None:
    api = TestClient(create_app(registry=registry))
    r = api.request("PATCH", "/v1/prompts/qa/versions")
    check_envelope(r, 405)
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed, allowed
    r = api.request("PATCH", "/v1/prompts/qa/aliases/prod")
    assert {"PUT", "DELETE"} <= {m.strip() for m in r.headers["allow"].split(",")}
