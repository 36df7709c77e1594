"""Contract: EVERY error the API returns has the same JSON envelope::

{"error": {"status": int, "code": str, "message": str, "details": dict}}
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any

import pytest
from fastapi.testclient import TestClient

from _apihelp import chat, seed
from genreg.api.app import create_app
from genreg.api.auth import ApiConfig
from genreg.core.hashing import canonical_json
from genreg.core.prompt import parse_prompt_data


def _colliding_prompts() -> tuple[dict[str, Any], dict[str, Any]]:
    """Two prompt contents whose digests share their first 6 hex digits (birthday search)."""
    base = parse_prompt_data(chat(0), "t").to_content()
    seen: dict[str, int] = {}
    for n in range(200_000):
        d = hashlib.sha256(canonical_json({**base, "metadata": {"n": n}})).hexdigest()[:6]
        if d in seen:
            return chat(seen[d]), chat(n)
        seen[d] = n
    raise AssertionError("no collision found")


def check_envelope(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"status", "code", "message", "details"}
    assert err["status"] == status
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"] and "\n" not in err["message"]
    assert isinstance(err["details"], dict)
    return err


@pytest.fixture
def api(registry) -> TestClient:
    seed(registry)
    a, b = _colliding_prompts()
    registry.register_content("prompt", "twins", a)
    registry.register_content("prompt", "twins", b)
    return TestClient(create_app(registry=registry, config=ApiConfig(max_body=4096)))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_error_path_has_the_same_envelope(api, registry) -> None:
    ro, _ = registry.create_token("ro", ["read"])
    rw, _ = registry.create_token("rw", ["write"])
    prefix = registry.resolve("prompt:twins@v1").digest[7:13]
    assert registry.resolve("prompt:twins@v2").digest[7:13] == prefix
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        # 404: unknown kind, name, version, alias, digest, route, run
        ("GET", "/v1/widgets/qa", {}, 404, "not_found"),
        ("GET", "/v1/prompts/nope", {}, 404, "not_found"),
        ("GET", "/v1/prompts/nope/versions/1", {}, 404, "not_found"),
        ("GET", "/v1/prompts/qa/versions/99", {}, 404, "not_found"),
        ("GET", "/v1/prompts/qa?alias=staging", {}, 404, "not_found"),
        ("GET", "/v1/prompts/qa?digest=sha256:abcdef0123", {}, 404, "not_found"),
        ("GET", "/v1/prompts/qa/versions", {}, 200, ""),  # sanity: a success in the list
        ("GET", "/no/such/route", {}, 404, "not_found"),
        ("GET", "/v1/runs/ffffffff", {}, 404, "not_found"),
        ("POST", "/v1/prompts/nope/render", {"json": {"variables": {}}}, 404, "not_found"),
        # 405: known path, wrong method
        ("DELETE", "/v1/prompts/qa/versions/1", {}, 405, "method_not_allowed"),
        ("PATCH", "/v1/prompts/qa", {}, 405, "method_not_allowed"),
        # 409: an ambiguous digest prefix
        ("GET", f"/v1/prompts/twins?digest=sha256:{prefix}", {}, 409, "ambiguous_ref"),
        # 401: no token / bad token / wrong scheme
        ("POST", "/v1/prompts/qa/versions", {"json": {"content": chat(7)}}, 401, "unauthorized"),
        ("GET", "/v1/prompts/qa", {"headers": _auth("grg_nothing")}, 401, "unauthorized"),
        (
            "GET",
            "/v1/prompts/qa",
            {"headers": {"Authorization": "Basic eDp5"}},
            401,
            "unauthorized",
        ),
        ("GET", "/v1/evalsets/gold", {}, 401, "unauthorized"),
        # 403: a token without the scope
        (
            "PUT",
            "/v1/prompts/qa/aliases/production",
            {"json": {"version": 2}, "headers": _auth(ro)},
            403,
            "forbidden",
        ),
        ("GET", "/v1/evalsets/gold", {"headers": _auth(rw)}, 403, "forbidden"),
        # 413: declared and streamed bodies over the limit
        (
            "POST",
            "/v1/prompts/qa/versions",
            {"content": b"x" * 5000, "headers": _auth(rw)},
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/v1/prompts/qa/versions",
            {"content": iter([b"x" * 3000, b"y" * 3000]), "headers": _auth(rw)},
            413,
            "payload_too_large",
        ),
        # 422: request validation, bad names/refs, invalid content, bad variables, bad JSON
        ("GET", "/v1/prompts/qa/versions/one", {}, 422, "invalid"),
        ("GET", "/v1/prompts/qa/versions/0", {}, 422, "invalid_ref"),
        ("GET", "/v1/prompts/Bad..Name", {}, 422, "invalid_name"),
        ("GET", "/v1/prompts/qa?alias=x&version=1", {}, 422, "invalid_ref"),
        ("GET", "/v1/prompts/qa?digest=sha256:12", {}, 422, "invalid_ref"),
        (
            "POST",
            "/v1/prompts/qa/versions",
            {"json": {"content": {"nope": 1}}, "headers": _auth(rw)},
            422,
            "invalid",
        ),
        (
            "POST",
            "/v1/prompts/qa/versions",
            {"json": {"message": "no content"}, "headers": _auth(rw)},
            422,
            "invalid",
        ),
        (
            "POST",
            "/v1/prompts/qa/versions",
            {"content": b"{not json", "headers": {**_auth(rw), "content-type": "application/json"}},
            422,
            "invalid",
        ),
        (
            "PUT",
            "/v1/prompts/qa/aliases/production",
            {"json": {}, "headers": _auth(rw)},
            422,
            "invalid_ref",
        ),
        (
            "PUT",
            "/v1/prompts/qa/aliases/latest",
            {"json": {"version": 1}, "headers": _auth(rw)},
            422,
            "invalid_name",
        ),
        ("POST", "/v1/prompts/qa/render", {"json": {"variables": {"question": 1}}}, 422, "render"),
        (
            "POST",
            "/v1/corpus/docs/versions",
            {"json": {"content": {}}, "headers": _auth(rw)},
            422,
            "invalid_ref",
        ),
    ]
    for method, url, kw, status, code in cases:
        r = api.request(method, url, **kw)
        if status == 200:
            assert r.status_code == 200
            continue
        err = check_envelope(r, status)
        assert err["code"] == code, (method, url, err)


def test_corrupt_object_gives_a_500_envelope(registry) -> None:
    seed(registry)
    obj = registry.resolve("prompt:qa@v2").object_digest
    path = registry.objects.local_path(obj)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(b'{"tampered": true}')
    c = TestClient(create_app(registry=registry, config=ApiConfig()), raise_server_exceptions=False)
    err = check_envelope(c.get("/v1/prompts/qa/versions/2"), 500)
    assert err["code"] == "integrity"


def test_error_envelopes_never_echo_the_token(registry) -> None:
    seed(registry)
    tok, _ = registry.create_token("ro", ["read"])
    c = TestClient(create_app(registry=registry, config=ApiConfig()))
    bad = tok[:-2] + "zz"
    for r in (
        c.get("/v1/prompts/qa", headers=_auth(bad)),
        c.put("/v1/prompts/qa/aliases/production", json={"version": 2}, headers=_auth(tok)),
    ):
        assert r.status_code in (401, 403)
        assert tok[20:] not in r.text and bad[20:] not in r.text
