"""Routing validation reports every error of a file at once, each with its path."""

from __future__ import annotations

from typing import Any

BAD = """routes:
  - name: a
    match: {min_tokens: -1}
    target: {model: 7, price: {input_per_1m: 1, output_per_1m: 1}}
  - name: b
    match: {}
    target: {price: {input_per_1m: 1, output_per_1m: 1}}
default:
  target: {model: gpt-4o-mini, price: {input_per_1m: 1, output_per_1m: 1}}
"""

SEMANTIC = """routes:
  - name: a
    match: {query_regex: "([unclosed", min_tokens: 9, max_tokens: 3}
    target: {model: x, price: {input_per_1m: 1, output_per_1m: 1}}
  - name: a
    match: {}
    target: {model: y, price: {input_per_1m: 1, output_per_1m: 1}}
default:
  target: {model: gpt-4o-mini, price: {input_per_1m: 1, output_per_1m: 1}}
"""


def test_push_reports_every_schema_error_of_a_routing_file(
    cli: Any, registry: Any, write: Any
) -> None:
    p = write("registry/routing/r.yaml", BAD)
    r = cli("push", p)
    assert r.exit_code == 1
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "r.yaml: 3 errors: " in err, err
    for path in ("routes.0.match.min_tokens", "routes.0.target.model", "routes.1.target"):
        assert path + ":" in err, err
    assert registry.list() == []


def test_every_semantic_error_is_reported_with_its_path(
    cli: Any, registry: Any, write: Any
) -> None:
    r = cli("register", "routing", "r", write("r.yaml", SEMANTIC))
    assert r.exit_code == 1
    err = r.stderr
    assert "3 errors" in err
    assert "routes.0.match.query_regex: invalid regex" in err
    assert "routes.0.match: min_tokens > max_tokens" in err
    assert "routes.1.name: duplicate or reserved route name 'a'" in err
