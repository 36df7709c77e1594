"""``genreg.Client`` against a real server: one request per uncached fetch, TTL'd aliases
served stale while refreshing, last good value on failure, offline lock fallback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from _apihelp import ROWS, seed, start_server, stop_server
from genreg import Client
from genreg.client import RegistryUnavailable
from genreg.errors import AuthError, IntegrityError, NotFound, RenderError


@pytest.fixture
def server(registry) -> Any:
    seed(registry)
    proc, url = start_server(registry.home)
    yield registry, url, proc
    if proc.poll() is None:
        stop_server(proc)


def test_one_request_per_uncached_fetch_and_none_on_a_hit(server) -> None:
    reg, url, _ = server
    c = Client(url)
    p = c.load_prompt("prompt:qa@production")
    assert c.requests == 1 and p.type == "chat"
    assert c.resolve("prompt:qa@production").digest == reg.resolve("prompt:qa@v1").digest
    c.load_prompt("prompt:qa@production")
    c.get("prompt:qa@production")
    assert c.requests == 1
    c.get("prompt:qa@v2")
    c.get("prompt:qa@v2")
    assert c.requests == 2


def test_render_returns_openai_style_messages(server) -> None:
    _, url, _ = server
    c = Client(url)
    msgs = c.render("prompt:qa@production", question="why?", context="because")
    assert msgs == [
        {"role": "system", "content": "Answer from the context: because"},
        {"role": "user", "content": "why?"},
    ]
    with pytest.raises(RenderError, match="context: missing"):
        c.render("prompt:qa@production", question="why?")


def test_client_and_registry_give_the_same_answers(server) -> None:
    reg, url, _ = server
    c = Client(url)
    for ref in ("prompt:qa", "prompt:qa@v1", "prompt:qa@production"):
        a, b = c.resolve(ref), reg.resolve(ref)
        assert (a.kind, a.name, a.version, a.digest) == (b.kind, b.name, b.version, b.digest)
        assert c.show(ref)[1] == reg.show(ref)[1]
        assert c.content(ref) == reg.content(ref)
    assert [v.version for v in c.history("prompt:qa")] == [1, 2]


def test_server_errors_map_to_the_same_exceptions(server) -> None:
    reg, url, _ = server
    c = Client(url)
    with pytest.raises(NotFound):
        c.get("prompt:nope@production")
    reg.register_content("evalset", "gold", ROWS)
    with pytest.raises(AuthError):
        c.get("evalset:gold@v1")
    tok, _ = reg.create_token("grader", ["evalsets:read"])
    assert Client(url, tok).get("evalset:gold@v1")["content"][0]["id"] == "q1"
    assert tok not in repr(Client(url, tok))


def test_alias_is_served_stale_then_refreshed_in_the_background(server) -> None:
    reg, url, _ = server
    c = Client(url, alias_ttl=0.3)
    assert c.resolve("prompt:qa@production").version == 1
    reg.set_alias("prompt:qa@v2", "production")
    assert c.resolve("prompt:qa@production").version == 1  # within the TTL: cached
    time.sleep(0.4)
    before = c.requests
    assert c.resolve("prompt:qa@production").version == 1  # expired: stale, refresh started
    c.wait_refreshes()
    assert c.requests == before + 1
    assert c.resolve("prompt:qa@production").version == 2


def test_unchanged_alias_refresh_is_a_304(server) -> None:
    _, url, _ = server
    c = Client(url, alias_ttl=0.1)
    doc = c.get("prompt:qa@production")
    time.sleep(0.2)
    c.get("prompt:qa@production")
    c.wait_refreshes()
    assert c.get("prompt:qa@production") is doc  # 304: same cached document kept


def test_failed_refresh_keeps_serving_the_last_good_value(server) -> None:
    _, url, proc = server
    c = Client(url, alias_ttl=0.2, timeout=2)
    assert c.resolve("prompt:qa@production").version == 1
    c.get("prompt:qa@v2")
    stop_server(proc)  # the registry goes away mid-test
    time.sleep(0.3)
    assert c.resolve("prompt:qa@production").version == 1
    c.wait_refreshes()
    assert c.resolve("prompt:qa@production").version == 1
    assert c.get("prompt:qa@v2")["version"] == 2  # pinned: cached forever
    with pytest.raises(RegistryUnavailable):
        c.get("prompt:qa@v1")  # never fetched, no lock file


def test_offline_fallback_serves_the_lock_and_verifies_it(server, cli, tmp_path) -> None:
    reg, url, proc = server
    lock = tmp_path / "genreg.lock"
    r = cli("lock", "prompt:qa@production", "prompt:qa@v2", "-o", str(lock))
    assert r.exit_code == 0, r.output
    data = json.loads(lock.read_text())
    assert data["entries"]["prompt:qa@production"]["digest"] == reg.resolve("prompt:qa@v1").digest
    stop_server(proc)
    c = Client(url, lock_file=lock, timeout=2)
    assert c.resolve("prompt:qa@production").version == 1
    msgs = c.render("prompt:qa@production", question="q", context="c")
    assert msgs[1] == {"role": "user", "content": "q"}
    assert c.resolve("prompt:qa@v2").digest == reg.resolve("prompt:qa@v2").digest
    assert c.get("prompt:qa@v1")["digest"] == reg.resolve("prompt:qa@v1").digest  # same version
    with pytest.raises(RegistryUnavailable, match="not in"):
        c.get("prompt:qa@staging")
    # Tamper with the locked content: every load re-verifies the digest.
    data["entries"]["prompt:qa@production"]["content"]["messages"][1]["content"] = (
        "leak {{ question }}"
    )
    lock.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="tampered"):
        Client(url, lock_file=lock, timeout=2).get("prompt:qa@production")


def test_lock_through_a_server_url(server, cli, tmp_path) -> None:
    reg, url, _ = server
    out = tmp_path / "app.lock"
    r = cli("lock", "prompt:qa@production", "--url", url, "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["prompt:qa@production"]["version"] == 1
    r = cli("lock", "evalset:gold", "-o", str(out))
    assert r.exit_code != 0 and "only prompt and routing" in r.output


def test_importing_genreg_and_the_client_stays_light() -> None:
    code = (
        "import sys, genreg\n"
        "c = genreg.Client('http://127.0.0.1:9')\n"
        "heavy = [m for m in ('fastapi', 'sqlalchemy', 'sqlmodel', 'httpx', 'torch', 'numpy', "
        "'jinja2', 'jsonschema') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
