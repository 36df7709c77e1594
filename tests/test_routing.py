"""Routing configs: schema validation, first-match routing with reasons."""

from __future__ import annotations

from typing import Any

import pytest

from genreg.errors import InvalidArtifact

ROUTING = """
routes:
  - name: troubleshooting
    match: {query_regex: "(?i)error|timeout"}
    target: {model: big, price: {input_per_1m: 2.5, output_per_1m: 10}}
  - name: billing-long
    match: {tags: [billing], min_tokens: 5}
    target: {model: mid, price: {input_per_1m: 0.8, output_per_1m: 4}, tokenizer: none}
default:
  target: {model: small, price: {input_per_1m: 0.15, output_per_1m: 0.6}}
"""


def test_first_matching_route_wins_with_reasons(registry: Any, write: Any) -> None:
    registry.register("routing", "default", write("r.yaml", ROUTING))
    d = registry.explain_route("routing:default", "I get a timeout on upload")
    assert d.route == "troubleshooting" and d.target["model"] == "big"
    assert "query matches" in d.reasons[0]
    d = registry.explain_route(
        "routing:default", "how are invoices for my account computed", ["billing"]
    )
    assert d.route == "billing-long"
    assert d.rejected == [("troubleshooting", "query does not match /(?i)error|timeout/")]
    d = registry.explain_route("routing:default", "hi", ["billing"])
    assert d.route == "default" and d.target["model"] == "small"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (ROUTING.split("default:")[0], "'default' is a required property"),
        (ROUTING.replace("(?i)error|timeout", "(unclosed"), "query_regex: invalid regex"),
        (ROUTING.replace("input_per_1m: 2.5", "input_per_1m: -1"), "input_per_1m"),
        (ROUTING.replace("name: billing-long", "name: troubleshooting"), "duplicate"),
    ],
)
def test_invalid_routing_configs_are_refused(
    registry: Any, write: Any, text: str, match: str
) -> None:
    with pytest.raises(InvalidArtifact, match=match):
        registry.register("routing", "default", write("r.yaml", text))
    assert registry.list() == []


def test_route_explain_cli_prints_route_and_reason(registry: Any, write: Any, cli: Any) -> None:
    registry.register("routing", "default", write("r.yaml", ROUTING))
    r = cli("route", "explain", "routing:default", "error 502 from the load balancer")
    assert r.exit_code == 0, r.output
    assert "route 'troubleshooting' -> big" in r.output and "because query matches" in r.output
    import json

    r = cli("route", "explain", "routing:default", "hello", "--json")
    assert json.loads(r.stdout)["route"] == "default"
