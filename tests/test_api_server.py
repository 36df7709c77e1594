"""Against a real ``genreg serve`` process on a free loopback port."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from _apihelp import ROWS, chat, seed, start_server, stop_server
from genreg import Registry


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("served") / ".genreg"
    reg = Registry.init(home)
    seed(reg, versions=3, alias_to=1)
    reg.register_content("evalset", "gold", ROWS)
    tokens = {
        "write": reg.create_token("writer", ["write"])[0],
        "read": reg.create_token("reader", ["read"])[0],
        "evalsets": reg.create_token("grader", ["evalsets:read"])[0],
    }
    reg.close()
    proc, url = start_server(home)
    yield home, url, tokens, proc
    stop_server(proc)


def _get(
    url: str,
    path: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json", **(headers or {})}
    c.request(method, path, data, h)
    r = c.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    c.close()
    return out


def test_pinned_and_alias_fetch_over_a_real_socket(served) -> None:
    home, url, _, _ = served
    reg = Registry(home)
    st, h, b = _get(url, "/v1/prompts/qa/versions/2")
    assert st == 200 and json.loads(b)["digest"] == reg.resolve("prompt:qa@v2").digest
    assert h["cache-control"] == "public, max-age=31536000, immutable"
    assert h["etag"] == f'"{reg.resolve("prompt:qa@v2").digest}"'
    st, h, b = _get(url, "/v1/prompts/qa?alias=production")
    assert st == 200 and json.loads(b)["version"] == 1 and h["cache-control"] == "public, max-age=5"


def test_304_when_the_etag_matches(served) -> None:
    _, url, _, _ = served
    _, h, _ = _get(url, "/v1/prompts/qa/versions/1")
    st, h2, b = _get(url, "/v1/prompts/qa/versions/1", headers={"If-None-Match": h["etag"]})
    assert st == 304 and b == b"" and h2["etag"] == h["etag"]
    st, _, _ = _get(url, "/v1/prompts/qa/versions/2", headers={"If-None-Match": h["etag"]})
    assert st == 200


WRITES = [
    ("POST", "/v1/prompts/qa/versions", {"content": chat(42)}),
    ("PUT", "/v1/prompts/qa/aliases/production", {"version": 3}),
    ("DELETE", "/v1/prompts/qa/aliases/production", None),
    ("POST", "/v1/prompts/qa/aliases/production/promote", {"version": 3, "run_id": "x"}),
]


def test_every_write_route_is_refused_without_a_write_token(served) -> None:
    home, url, tokens, _ = served
    for method, path, body in WRITES:
        st, _, b = _get(url, path, method, body)
        assert st == 401, (method, path, b)
        st, _, b = _get(url, path, method, body, {"Authorization": f"Bearer {tokens['read']}"})
        assert st == 403, (method, path, b)
    reg = Registry(home)
    assert len(reg.history("prompt:qa")) == 3 and reg.resolve("prompt:qa@production").version == 1


def test_eval_sets_need_their_scope_over_the_wire(served) -> None:
    _, url, tokens, _ = served
    assert _get(url, "/v1/evalsets/gold/versions/1")[0] == 401
    assert (
        _get(
            url,
            "/v1/evalsets/gold/versions/1",
            headers={"Authorization": f"Bearer {tokens['write']}"},
        )[0]
        == 403
    )
    st, _, b = _get(
        url,
        "/v1/evalsets/gold/versions/1",
        headers={"Authorization": f"Bearer {tokens['evalsets']}"},
    )
    assert st == 200 and json.loads(b)["content"][0]["id"] == "q1"


def test_alias_move_through_the_api_is_journaled_and_served_at_once(served) -> None:
    home, url, tokens, _ = served
    auth = {"Authorization": f"Bearer {tokens['write']}"}
    st, _, b = _get(
        url, "/v1/prompts/qa/aliases/staging", "PUT", {"version": 2, "reason": "try"}, auth
    )
    assert st == 200, b
    assert json.loads(_get(url, "/v1/prompts/qa?alias=staging")[2])["version"] == 2
    ev = Registry(home).alias_history("prompt:qa", "staging")[-1]
    assert (ev.actor, ev.reason) == ("writer", "try")


def test_served_process_loads_no_torch_faiss_or_sentence_transformers(served) -> None:
    _, url, _, proc = served
    _get(url, "/v1/prompts/qa?alias=production")
    _get(url, "/v1/prompts/qa/versions")
    maps = Path(f"/proc/{proc.pid}/maps")
    if not maps.exists():
        pytest.skip("no /proc")
    text = maps.read_text()
    for lib in ("libtorch", "faiss", "sentence_transformers"):
        assert lib not in text
