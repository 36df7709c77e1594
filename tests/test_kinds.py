"""One description per artifact kind, and the places that used to test kind names by hand
now read it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from genreg import lockfile
from genreg.api.app import create_app
from genreg.api.auth import ApiConfig
from genreg.api.reads import URL_KINDS
from genreg.core import artifacts, kinds
from genreg.core.refs import KINDS
from genreg.errors import ConfigError


def test_every_kind_is_described_once() -> None:
    assert tuple(kinds.BY_NAME) == KINDS == ("prompt", "evalset", "corpus", "routing")
    assert all(kinds.kind(n).name == n for n in KINDS)
    assert {k: v.name for k, v in kinds.BY_URL.items()} == URL_KINDS
    assert URL_KINDS["prompts"] == "prompt" and URL_KINDS["corpora"] == "corpus"
    assert set(URL_KINDS) == {
        *("prompts", "evalsets", "corpus", "routing"),
        *("prompt", "evalset", "routing", "corpora"),
    }
    assert lockfile.LOCKABLE == ("prompt", "routing")
    assert artifacts.FILE_KINDS == ("prompt", "evalset", "routing")
    assert [k.name for k in kinds.BY_NAME.values() if k.secret] == ["evalset"]
    assert [k.name for k in kinds.BY_NAME.values() if not k.exportable] == ["corpus"]


def test_lock_refuses_kinds_that_are_not_lockable(registry: Any) -> None:
    registry.register_content("evalset", "gold", [{"id": "q1", "query": "q", "relevant": ["d"]}])
    with pytest.raises(ConfigError, match="only prompt and routing refs can be locked"):
        lockfile.build_lock(registry, ["evalset:gold"])


def test_secret_kinds_need_their_scope_and_are_never_public(registry: Any) -> None:
    registry.register_content("evalset", "gold", [{"id": "q1", "query": "q", "relevant": ["d"]}])
    c = TestClient(create_app(registry=registry, config=ApiConfig()))
    r = c.get("/v1/evalsets/gold/versions/1")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    token, _ = registry.create_token("reader", ["evalsets:read"])
    r = c.get("/v1/evalsets/gold/versions/1", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["cache-control"].startswith("private")
    assert r.json()["content"][0]["id"] == "q1"
