"""``genreg eval run --dry-run``: what a run would do and cost, from the cheap checks only.

After every stage's ``prepare`` has passed (refs resolved, config and gates valid, templates
rendered for the first query, endpoints and API-key variables checked), the report gives the
resolved inputs, the stages, the metrics and gates, the calls a run would make, and the
**estimated** token cost of :mod:`genreg.core.cost` (the estimate ``eval run`` without
``generate:`` records). Retrieval does not run in a dry run, so the context of query *i* is
stood in for by real corpus chunks: the chunks (chunked as the config says) of the corpus'
first documents, taken ``context_k`` at a time in turn (query *i* gets chunks
``i*k .. i*k+k-1`` modulo their number) -- typical chunk sizes, not the retrieved ones.
Output tokens are each route's ``expected_output_tokens`` (else the prompt's ``max_tokens``).
With ``repeats`` the estimate is multiplied by the repeats. Judge calls are counted, not priced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genreg.pipeline.records import RunState


def dry_run_report(
    state: RunState, stages: Sequence[Any], chunks: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """The dry-run report of a state whose stages have all been prepared."""
    from genreg.core import cost as costmod

    cfg = state.config
    assert cfg is not None
    n = len(state.records)
    gen = cfg.generate
    repeats = int((gen or {}).get("repeats") or 1)
    out: dict[str, Any] = {
        "dry_run": True,
        "name": cfg.name,
        "config": cfg.source,
        "inputs": [i.to_dict() for i in state.inputs],
        "stages": [st.name for st in stages],
        "queries": n,
        "metrics": list(state.metric_names),
        "gates": [g.expr for g in state.request.gates],
        "baseline": state.baseline.id if state.baseline else None,
        "sample_query": state.sample().id,
        "calls": {},
        "estimate": None,
    }
    if gen is not None:
        from genreg.generation.stage import settings_of

        s = settings_of(gen)
        k, chars = int(s["context_k"]), int(s["context_chars"])
        out["calls"]["generate"] = n * repeats
        out["cache"] = s["cache"]
        eps = [ep for st in stages for ep in (getattr(st, "endpoints", None) or {}).values()]
        eps += [st.endpoint for st in stages if getattr(st, "endpoint", None) is not None]
        keys = sorted({ep.api_key_env for ep in eps if ep.api_key_env})
        out["api_key_env"] = keys  # variable names only (checked set; values never shown)
        if cfg.judges:
            out["calls"]["judge"] = n * repeats * len(cfg.judges)
    else:
        k = int(cfg.cost.get("context_k", costmod.DEFAULT_CONTEXT_K))
        chars = int(cfg.cost.get("context_chars", costmod.DEFAULT_CONTEXT_CHARS))
    if state.prompt is not None and state.routing is not None:
        costs = []
        m = len(chunks)
        for i, rec in enumerate(state.records):
            docs = [chunks[(i * k + j) % m] for j in range(k)] if m else []
            costs.append(
                costmod.query_cost(
                    state.prompt,
                    state.routing,
                    rec.query,
                    docs,
                    tags=rec.tags,
                    context_chars=chars,
                )
            )
        est = costmod.summarize(costs, state.routing, context_k=k, context_chars=chars)
        est["context"] = f"sampled: {m} corpus chunks stand in for the retrieved ones"
        est["repeats"] = repeats
        if repeats > 1:
            for key in ("total_cost", "input_tokens", "output_tokens"):
                est[key] = est[key] * repeats
            for r in est["routes"].values():
                r["cost"] *= repeats
                r["input_tokens"] *= repeats
        out["estimate"] = est
    return out
