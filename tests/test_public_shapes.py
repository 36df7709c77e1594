"""One public serialisation per object: the CLI's ``--json`` and the HTTP API agree."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from _apihelp import seed
from genreg.api.app import create_app
from genreg.api.auth import ApiConfig

PRICE = {"input_per_1m": 1, "output_per_1m": 2}
ROUTING = {
    "routes": [
        {
            "name": "err",
            "match": {"query_regex": "error"},
            "target": {"model": "big", "price": PRICE},
        }
    ],
    "default": {"target": {"model": "small", "price": PRICE}},
}


def test_route_decision_is_the_same_from_cli_and_api(registry: Any, cli: Any) -> None:
    registry.register_content("routing", "r", ROUTING)
    api = TestClient(create_app(registry=registry, config=ApiConfig())).post(
        "/v1/routing/r/explain", json={"query": "an error here"}
    )
    assert api.status_code == 200, api.text
    out = cli("route", "explain", "routing:r", "an error here", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == api.json()
    assert api.json()["route"] == "err" and api.json()["query_tokens"] >= 3
    assert api.json()["token_counter"]


def test_version_info_public_form_is_the_cli_form_without_internals(
    registry: Any, cli: Any
) -> None:
    seed(registry, versions=2, alias_to=2)
    c = TestClient(create_app(registry=registry, config=ApiConfig()))
    cli_v = json.loads(cli("history", "prompt:qa", "--json").stdout)
    api_v = c.get("/v1/prompts/qa/versions").json()["versions"]
    assert [{k: v for k, v in d.items() if k != "object_digest"} for d in cli_v] == api_v
    assert all("object_digest" in d for d in cli_v)
    pinned = c.get("/v1/prompts/qa/versions/2").json()
    content = pinned.pop("content")
    assert content["messages"]
    expect = dict(api_v[1])
    del expect["aliases"]  # an immutable body carries nothing mutable
    assert pinned == expect
    alias = c.get("/v1/prompts/qa?alias=production").json()
    assert alias.pop("alias") == "production" and alias.pop("content") == content
    assert alias == api_v[1]
