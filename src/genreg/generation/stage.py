"""The ``generate`` stage of the eval pipeline (replaces the cost estimate when the config has
a ``generate:`` section)::

    resolve -> retrieve -> generate -> (judge) -> score -> record

``prepare`` (cheap, before any indexing): needs prompt + routing; resolves each route's
endpoint (``generate.endpoint`` overrides every route's ``target.base_url``/``api_key_env``),
checks each API-key variable is set (ConfigError, exit 2; not in ``replay`` mode, which makes
no call), renders the prompt for the first query, and registers the answer metrics and
``generation_errors`` with the score stage.

``run``, per query and repeat: the top ``context_k`` hits as context (``[doc_id]\\ntext``, cut
to ``context_chars``), the prompt rendered to chat messages (a text prompt becomes one user
message), the route chosen by the routing config, the body ``{model: route model, messages,
**prompt.model params (minus model), **route params}``; the response cache is looked up, the
misses are called (:class:`~genreg.generation.client.ChatClient`), successes stored.

Per-query results fields (stable names; the UI reads them):

- ``answer``: the answer text (repeat 0), ``null`` when the call failed;
- ``usage``: ``{input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost}`` summed
  over repeats (cost = usage x the route's prices, USD per 1M tokens);
- ``generation``: ``{route, model, served_by, messages_digest, finish_reason, latency_ms,
  ttft_ms, response_id, system_fingerprint, cache_hit, cache_key, attempts, error}`` of repeat
  0, plus ``samples`` (the same with ``answer``, one per repeat) when ``repeats > 1``;
- ``route``, ``model``, ``cost``, ``tokens`` as the cost estimate writes them, with
  ``tokens.counter = "usage"`` (reported by the server, not estimated).

Metrics: each answer metric per query = mean over repeats (rows without gold excluded);
``generation_errors`` = the number of failed calls (a count; gate it with
``generation_errors <= 0``). ``max_cost_usd``: once the spend of calls made passes it, no
further call is issued, the remaining queries are ``not generated``, and the run is recorded
with ``status: aborted`` (``report.aborted``), so it passes no gate and cannot promote.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from genreg.core.hashing import digest_json
from genreg.errors import ConfigError, GenregError
from genreg.generation.cache import ResponseCache, from_result, request_key, result_dict
from genreg.generation.client import (
    ChatClient,
    ChatRequest,
    ChatResult,
    ClientOptions,
    Endpoint,
    Usage,
    check_endpoint,
)
from genreg.pipeline.records import Progress, RunState
from genreg.pipeline.stages import check_render

DEFAULTS: dict[str, Any] = {
    "context_k": 5,
    "context_chars": 2000,
    "concurrency": 8,
    "cache": "rw",
    "repeats": 1,
    "max_cost_usd": None,
    "timeout_s": 60.0,
    "max_retries": 4,
    "stream": False,
}


def settings_of(gen: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **{k: v for k, v in gen.items() if k != "endpoint"}}


def render_messages(prompt: Any, question: str, context: str) -> list[dict[str, str]]:
    """The prompt as chat messages (a text prompt becomes one user message)."""
    declared = prompt.declared()
    values = {"question": question, "query": question, "context": context}
    if declared:
        values = {k: v for k, v in values.items() if k in declared}
    out = prompt.render(values)
    if isinstance(out, str):
        return [{"role": "user", "content": out}]
    return [{"role": m["role"], "content": m["content"]} for m in out]


def route_params(prompt: Any, target: dict[str, Any]) -> dict[str, Any]:
    """The prompt's model parameters (minus ``model``) merged with the route's."""
    params = {k: v for k, v in (prompt.model or {}).items() if k != "model"}
    params.update(target.get("params") or {})
    return params


def context_of(rec: Any, s: dict[str, Any]) -> str:
    """The context a query's prompt is rendered with (its top ``context_k`` hits)."""
    from genreg.core import cost as costmod

    docs = [(h.doc_id, h.text or "") for h in rec.hits[: s["context_k"]]]
    return costmod.format_context(docs, s["context_chars"])


def call_cost(usage: Usage, target: dict[str, Any]) -> float:
    price = target.get("price") or {}
    return (usage.input_tokens or 0) * float(price.get("input_per_1m", 0)) / 1e6 + (
        usage.output_tokens or 0
    ) * float(price.get("output_per_1m", 0)) / 1e6


class Generate:
    name = "generate"

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self.endpoints: dict[str, Endpoint] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.s: dict[str, Any] = {}
        self.client: ChatClient | None = None

    # ---- prepare ------------------------------------------------------------------------
    def prepare(self, state: RunState) -> None:
        cfg = state.config
        assert cfg is not None and cfg.generate is not None
        if state.prompt is None or state.routing is None:
            raise ConfigError(f"{cfg.source}: generate: needs prompt and routing")
        self.s = s = settings_of(cfg.generate)
        if s["cache"] != self.cache.mode:
            self.cache.mode = s["cache"]
        state.need_text = True
        override = cfg.generate.get("endpoint") or {}
        rc = state.routing.config
        routes = [(r["name"], r["target"]) for r in rc.get("routes") or []]
        routes.append(("default", rc["default"]["target"]))
        for name, target in routes:
            base = override.get("base_url") if override else target.get("base_url")
            env = override.get("api_key_env") if override else target.get("api_key_env")
            self.endpoints[name] = check_endpoint(name, base, env, f"{cfg.source}: generate")
            self.targets[name] = target
        if s["cache"] != "replay":
            for ep in self.endpoints.values():
                ep.api_key()  # a missing variable: ConfigError (exit 2) before any work
        prompt, sample = state.prompt, state.sample()
        check_render(
            prompt,
            state.input_ref("prompt"),
            sample,
            lambda: render_messages(prompt, sample.query, "[sample-doc]\nsample context"),
        )
        for m in [*cfg.answer_metrics, "generation_errors"]:
            if m not in state.metric_names:
                state.metric_names.append(m)
            state.stage_metrics.add(m)
        state.lineage["generation"] = {
            "context_k": s["context_k"],
            "context_chars": s["context_chars"],
            "repeats": s["repeats"],
            "cache": s["cache"],
            "stream": bool(s["stream"]),
            "max_cost_usd": s["max_cost_usd"],
            "answer_metrics": list(cfg.answer_metrics),
            "routes": {
                name: {
                    "model": t["model"],
                    "params": route_params(prompt, t),
                    "endpoint": self.endpoints[name].host,
                    "price": t.get("price"),
                }
                for name, t in self.targets.items()
            },
        }
        self.client = ChatClient(
            ClientOptions(
                concurrency=int(s["concurrency"]),
                timeout_s=float(s["timeout_s"]),
                max_retries=int(s["max_retries"]),
                stream=bool(s["stream"]),
            )
        )

    # ---- run ----------------------------------------------------------------------------
    def _requests(self, state: RunState) -> list[ChatRequest]:
        """Each query's calls (one per repeat), every prompt rendered and routed up front
        (pure CPU, before any call): a template that fails on any query is a ConfigError
        naming the prompt ref and the query id, with nothing spent."""
        from genreg.core import cost as costmod

        assert state.routing is not None and state.prompt is not None
        s = self.s
        prompt, routing = state.prompt, state.routing
        length = costmod.token_counter(routing.config.get("length_tokenizer"))
        repeats = range(int(s["repeats"]))
        params: dict[str, dict[str, Any]] = {}  # per route: prompt params merged with its own
        out: list[ChatRequest] = []
        for rec in state.records:
            context = context_of(rec, s)
            try:
                messages = render_messages(prompt, rec.query, context)
            except GenregError as exc:
                raise ConfigError(
                    f"prompt {state.input_ref('prompt')}: cannot render for query "
                    f"{rec.id!r}: {exc.message}"
                ) from None
            d = routing.choose(rec.query, rec.tags, length.count)
            ep = self.endpoints[d.route]
            rp = params.get(d.route)
            if rp is None:
                rp = params[d.route] = route_params(prompt, d.target)
            body = {"model": d.target["model"], "messages": messages, **rp}
            meta = {"route": d.route, "messages": digest_json(messages)}
            for r in repeats:
                out.append(
                    ChatRequest(rec.id, r, ep, body, request_key(ep.identity, body, r), meta)
                )
        return out

    def run(self, state: RunState, progress: Progress | None) -> None:
        """Every request is rendered and routed first (a template that fails on one query
        spends nothing), and the checks later stages registered
        (``state.prechecks``: the judge prompts rendered for every query) run; then cache
        hits are answered as the requests are taken: the first miss starts the client, which
        takes the rest lazily, so the cache is still being read while the first calls are in
        flight. A fully cached run starts no event loop."""
        assert self.client is not None
        t0 = time.perf_counter()
        reqs = self._requests(state)
        for check in state.prechecks:
            check(state)
        results: dict[int, ChatResult] = {}
        todo: list[int] = []  # indexes in reqs of the misses, in the order they are called
        total = len(reqs)
        cache = self.cache

        def misses() -> Iterator[ChatRequest]:
            for i, rq in enumerate(reqs):
                hit = cache.result(rq.endpoint.identity, rq.body["model"], rq.key)
                if hit is None:
                    cache.miss(rq.qid, rq.repeat, rq.meta["route"])
                    todo.append(i)
                    yield rq
                else:
                    results[i] = from_result(hit)

        cap = self.s["max_cost_usd"]
        spent = 0.0
        done = 0

        def on_result(rq: ChatRequest, res: ChatResult) -> bool:
            nonlocal spent, done
            spent += call_cost(res.usage, self.targets[rq.meta["route"]])
            done += 1
            if progress:
                progress("generate", len(results) + done, total)
            if res.ok:
                cache.store(
                    rq.endpoint.identity,
                    rq.body,
                    rq.repeat,
                    res.response,
                    result_dict(res),
                    key=rq.key,
                )
            return cap is None or spent <= cap

        pending = misses()
        first = next(pending, None)  # the cached prefix, up to the first miss
        if progress:
            progress("generate", len(results), total)
        called: dict[int, ChatResult] = {}
        try:
            if first is not None:
                called = self.client.run(itertools.chain([first], pending), on_result)
            for _ in pending:  # stopped by the cost cap: the rest are hits or not generated
                pass
        finally:
            cache.flush()  # index what was stored, even when an endpoint error stops us
        for j, res in called.items():
            results[todo[j]] = res
        skipped = [i for i in todo if i not in results]
        aborted = cap is not None and spent > cap
        self._finish(state, reqs, results, skipped, spent, aborted, time.perf_counter() - t0)

    def _finish(
        self,
        state: RunState,
        reqs: list[ChatRequest],
        results: dict[int, ChatResult],
        skipped: list[int],
        spent: float,
        aborted: bool,
        wall: float,
    ) -> None:
        from genreg.core import answers

        cfg = state.config
        assert cfg is not None and state.routing is not None
        by_q: dict[str, list[tuple[ChatRequest, ChatResult | None]]] = {}
        for i, rq in enumerate(reqs):
            by_q.setdefault(rq.qid, []).append((rq, results.get(i)))
        errors: list[str] = []
        lat: list[float] = []
        ttft: list[float] = []
        finish: dict[str, int] = {}
        served: set[str] = set()
        routes: dict[str, dict[str, Any]] = {}
        totals = {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0}
        for rec in state.records:
            samples = []
            usage: dict[str, Any] = {**dict.fromkeys(totals, 0), "cost": 0.0}
            preds: list[str | None] = []
            n_err = 0
            for rq, res in by_q.get(rec.id, []):
                target = self.targets[rq.meta["route"]]
                if res is None:
                    res = ChatResult(
                        error="not generated: max_cost_usd reached" if aborted else "not generated"
                    )
                elif not res.ok:
                    n_err += 1
                    errors.append(rec.id)
                u = res.usage.to_dict()
                for k in totals:
                    usage[k] += u[k] or 0
                c = call_cost(res.usage, target)  # what this answer cost, cached or not
                usage["cost"] += c
                if res.latency_ms is not None and not res.cache_hit:
                    lat.append(res.latency_ms)
                if res.ttft_ms is not None and not res.cache_hit:
                    ttft.append(res.ttft_ms)
                if res.finish_reason:
                    finish[res.finish_reason] = finish.get(res.finish_reason, 0) + 1
                if res.model:
                    served.add(res.model)
                preds.append(res.text if res.ok else None)
                samples.append(
                    {
                        "route": rq.meta["route"],
                        "model": rq.body["model"],
                        "served_by": res.model,
                        "messages_digest": rq.meta["messages"],
                        "finish_reason": res.finish_reason,
                        "latency_ms": res.latency_ms,
                        "ttft_ms": res.ttft_ms,
                        "response_id": res.response_id,
                        "system_fingerprint": res.system_fingerprint,
                        "cache_hit": res.cache_hit,
                        "cache_key": rq.key if res.ok else None,
                        "attempts": res.attempts,
                        "error": res.error,
                        "answer": res.text if res.ok else None,
                    }
                )
                r = routes.setdefault(
                    rq.meta["route"],
                    {
                        "model": rq.body["model"],
                        "queries": 0,
                        "cost": 0.0,
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "tokenizer": "usage",
                    },
                )
                r["queries"] += 1 if rq.repeat == 0 else 0
                r["cost"] += c
                r["input_tokens"] += res.usage.input_tokens or 0
                r["output_tokens"] += res.usage.output_tokens or 0
            for k in totals:
                totals[k] += int(usage[k])
            first = samples[0] if samples else {}
            rec.answer = first.get("answer")
            rec.usage = usage
            gen = {k: v for k, v in first.items() if k != "answer"}
            if len(samples) > 1:
                gen["samples"] = samples
            rec.extra["generation"] = gen
            rec.extra.update(
                route=first.get("route"),
                model=first.get("model"),
                cost=usage["cost"],
                tokens={
                    "input": usage["input_tokens"],
                    "output": usage["output_tokens"],
                    "counter": "usage",
                    "estimate": False,
                },
            )
            golds = answers.gold_answers(rec.row)
            if golds:
                for m in cfg.answer_metrics:
                    vals = [answers.score_answer(m, p, golds) for p in preds or [None]]
                    rec.metrics[m] = sum(vals) / len(vals)
            rec.metrics["generation_errors"] = float(n_err)
            rec.extra["_preds"] = preds  # removed below, after the spread is computed
        n = len(state.records)
        total_cost = sum(r.usage["cost"] for r in state.records if r.usage)
        for r in routes.values():
            r["share"] = r["queries"] / n if n else 0.0
            r["cost_share"] = r["cost"] / total_cost if total_cost else 0.0
        currency = (state.routing.config["default"]["target"]["price"]).get("currency", "USD")
        state.report["cost"] = {
            "queries": n,
            "currency": currency,
            "total_cost": total_cost,
            "mean_cost_per_query": total_cost / n if n else 0.0,
            "input_tokens": totals["input_tokens"],
            "output_tokens": totals["output_tokens"],
            "cached_tokens": totals["cached_tokens"],
            "reasoning_tokens": totals["reasoning_tokens"],
            "mean_input_tokens": totals["input_tokens"] / n if n else 0.0,
            "token_counts": "usage",
            "output_tokens_are": "usage",
            "spent": spent,
            "routes": dict(sorted(routes.items())),
            "context_k": self.s["context_k"],
            "context_chars": self.s["context_chars"],
        }
        preds_by = {rec.id: rec.extra.pop("_preds") for rec in state.records}
        rows = [rec.row for rec in state.records]
        scored = answers.score_answers([], rows, preds_by)
        gen_report: dict[str, Any] = {
            "calls": len(results) - self.cache.hits,
            "http_attempts": self.client.calls if self.client else 0,
            "cache": {
                "mode": self.cache.mode,
                "hits": self.cache.hits,
                "stored": self.cache.stored,
            },
            "errors": len(errors),
            "error_ids": sorted(set(errors))[:50],
            "not_generated": len(skipped),
            "repeats": self.s["repeats"],
            "answers_scored": scored.scored,
            "no_gold": scored.no_gold,
            "no_gold_ids": scored.no_gold_ids[:50],
            "finish_reasons": dict(sorted(finish.items())),
            "served_by": sorted(served),
            "latency_ms": _pcts(lat),
            "ttft_ms": _pcts(ttft),
            "wall_s": wall,
        }
        if int(self.s["repeats"]) > 1:
            gen_report["spread"] = answers.repeat_spread(
                cfg.answer_metrics, rows, preds_by, int(self.s["repeats"])
            )
        state.report["generation"] = gen_report
        state.lineage.setdefault("extra", {})
        state.lineage["extra"] = {
            **state.lineage["extra"],
            "generation_stats": {
                "cache_mode": self.cache.mode,
                "cache_hits": self.cache.hits,
                "calls": gen_report["calls"],
                "errors": len(errors),
            },
        }
        if aborted:
            state.report["aborted"] = {
                "reason": "max_cost_usd",
                "spent": spent,
                "max_cost_usd": self.s["max_cost_usd"],
                "not_generated": len(skipped),
            }


def _pcts(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    ys = sorted(xs)

    def q(p: float) -> float:
        return ys[min(len(ys) - 1, int(round(p * (len(ys) - 1))))]

    return {"p50": q(0.5), "p95": q(0.95), "mean": sum(ys) / len(ys), "n": float(len(ys))}
