"""The ``judge`` stage: LLM-as-judge metrics, opt-in, after ``generate``::

    resolve -> retrieve -> generate -> judge -> score -> record

Metrics (Ragas' published definitions):

- ``faithfulness`` = |statements of the answer supported by the retrieved context| /
  |statements of the answer|. The judge prompt gets ``question``, ``context`` (exactly the
  context the answer was generated from) and ``answer``, and must reply
  ``{"statements": [{"statement", "reason", "verdict": 0|1}]}`` (Ragas' two steps, statement
  extraction and the per-statement verdict, in one call). No statements: the query is not
  scored for faithfulness (counted as ``unscored``), as Ragas gives NaN.
- ``answer_relevance`` = mean over the judge's questions q_i of cos(E(q_i), E(question)),
  times 0 when the judge says the answer is noncommittal. The prompt gets ``answer``,
  ``n_questions`` (and ``question``/``context`` if it declares them) and must reply
  ``{"questions": [...], "noncommittal": 0|1}``. E = the eval's embedding model (or
  ``judge.answer_relevance.embedding``), L2-normalised, so the cosine is a dot product.

Each judge prompt is a genreg prompt version: ``prepare`` resolves the ref, pins it as a run
input with role ``judge:<metric>`` (so ``genreg lineage``, ``runs list --used`` and ``runs
compare`` name it like any input), renders it for the first query, checks the endpoint and
its key variable, and registers :meth:`Judge.check_renders` (every query rendered with its
context and a sample answer), which the generate stage runs before its first call, so a
judge template that fails on one query spends nothing; the judge model, params, endpoint
host, ``n_questions`` and embedding model
go into ``lineage.generation.judge``. Calls go through the same
:class:`~genreg.generation.client.ChatClient` (bounded concurrency, retries, timeout) and
:class:`~genreg.generation.cache.ResponseCache` as generation; the cache key adds
``{"metric", "prompt": <judge prompt digest>}`` to the request (repeat index 0: identical
answers of several repeats share one verdict). Spend counts against ``generate.max_cost_usd``.

Per query and metric, a judge output that is not the JSON asked for (or a failed judge call)
is a **per-query error**: the metric has no value for that query (it is excluded from the
mean, never a silent 0), ``judge_errors`` counts it, and the verdict records the error. A
query whose generation failed has no answer to judge and scores 0 (as the answer metrics do).

Per-query results field ``verdicts`` (stable names; the UI reads them)::

    {metric: {score, error, model, prompt, served_by, cache_hit, cache_key, latency_ms,
              usage: {input_tokens, output_tokens}, cost,
              statements: [{statement, reason, verdict}]        # faithfulness
              questions: [...], noncommittal, similarities: [...]  # answer_relevance
              samples: [...]}}                                  # one per repeat, when > 1
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from genreg.errors import AmbiguousRef, ConfigError, GenregError, NotFound
from genreg.generation.cache import ResponseCache, from_result, request_key, result_dict
from genreg.generation.client import (
    ChatClient,
    ChatRequest,
    ChatResult,
    ClientOptions,
    Endpoint,
    check_endpoint,
)
from genreg.generation.stage import call_cost, context_of, settings_of
from genreg.pipeline.records import Progress, QueryRecord, RunState
from genreg.pipeline.stages import ArtifactSource, check_render, pin

SAMPLE_ANSWER = "A sample answer."


class JudgeOutputError(ValueError):
    """A judge reply that is not the JSON its prompt asks for."""


def parse_object(text: str | None) -> dict[str, Any]:
    """The JSON object of a judge reply (a ```json fence or prose around it is tolerated)."""
    t = (text or "").strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    try:
        obj = json.loads(t)
    except ValueError:
        i, j = t.find("{"), t.rfind("}")
        try:
            obj = json.loads(t[i : j + 1]) if 0 <= i < j else None
        except ValueError:
            obj = None
        if obj is None:
            raise JudgeOutputError(f"not JSON: {(text or '')[:80]!r}") from None
    if not isinstance(obj, dict):
        raise JudgeOutputError(f"not a JSON object: {(text or '')[:80]!r}")
    return obj


def _flag(v: Any, what: str) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)) and v in (0, 1):
        return int(v)
    if isinstance(v, str) and v.strip() in ("0", "1"):
        return int(v.strip())
    raise JudgeOutputError(f"{what} must be 0 or 1, got {v!r}")


def parse_faithfulness(text: str | None) -> tuple[float | None, dict[str, Any]]:
    """``(score, details)``; score None when the answer has no statements."""
    obj = parse_object(text)
    st = obj.get("statements")
    if not isinstance(st, list):
        raise JudgeOutputError('no "statements" list')
    out: list[dict[str, Any]] = []
    for i, s in enumerate(st):
        if not isinstance(s, dict):
            raise JudgeOutputError(f"statements[{i}] is not an object")
        out.append(
            {
                "statement": str(s.get("statement", "")),
                "reason": str(s.get("reason", "")),
                "verdict": _flag(s.get("verdict"), f"statements[{i}].verdict"),
            }
        )
    score = sum(int(s["verdict"]) for s in out) / len(out) if out else None
    return score, {"statements": out}


def parse_relevance(text: str | None) -> dict[str, Any]:
    """``{questions, noncommittal}`` (the score needs the embeddings: :func:`relevance`)."""
    obj = parse_object(text)
    qs = obj.get("questions")
    if not isinstance(qs, list) or not qs:
        raise JudgeOutputError('no "questions" list')
    if not all(isinstance(q, str) and q.strip() for q in qs):
        raise JudgeOutputError("questions must be non-empty strings")
    if "noncommittal" not in obj:
        raise JudgeOutputError('no "noncommittal" flag')
    return {
        "questions": [q.strip() for q in qs],
        "noncommittal": _flag(obj["noncommittal"], "noncommittal"),
    }


def relevance(
    question_vec: Any, question_vecs: Any, noncommittal: int
) -> tuple[float, list[float]]:
    """Ragas answer relevancy from L2-normalised vectors: mean cosine, 0 if noncommittal."""
    sims = [float(v @ question_vec) for v in question_vecs]
    return (0.0 if noncommittal else sum(sims) / len(sims)), sims


def _values(prompt: Any, **vals: Any) -> dict[str, Any]:
    declared = prompt.declared()
    return {k: v for k, v in vals.items() if k in declared} if declared else vals


def render(prompt: Any, **vals: Any) -> list[dict[str, str]]:
    out = prompt.render(_values(prompt, **vals))
    if isinstance(out, str):
        return [{"role": "user", "content": out}]
    return [{"role": m["role"], "content": m["content"]} for m in out]


def _render_for(prompt: Any, ref: str, rec: QueryRecord, **vals: Any) -> list[dict[str, str]]:
    """:func:`render` for ``rec``'s question; a failure is a ConfigError naming the prompt
    ref and the query id."""
    try:
        return render(prompt, question=rec.query, **vals)
    except GenregError as exc:
        raise ConfigError(
            f"prompt {ref}: cannot render for query {rec.id!r}: {exc.message}"
        ) from None


def _takes(prompt: Any, where: str) -> set[str]:
    """The variables a prompt takes: its declared ones, else those its templates read."""
    from genreg.core.prompt import template_variables

    if prompt.declared():
        return set(prompt.declared())
    sources = (
        [prompt.template] if prompt.template else [m["content"] for m in prompt.messages or []]
    )
    return set().union(*(template_variables(t, where) for t in sources))


def _sample_answers(rec: QueryRecord) -> list[str | None]:
    samples = (rec.extra.get("generation") or {}).get("samples")
    if samples:
        return [s.get("answer") for s in samples]
    return [rec.answer]


class Judge:
    name = "judge"

    def __init__(
        self,
        artifacts: ArtifactSource,
        cache: ResponseCache,
        embedder: Callable[[str | None], Any],
    ) -> None:
        self.artifacts = artifacts
        self.cache = cache
        self.embedder = embedder
        self.endpoint: Endpoint | None = None
        self.prompts: dict[str, tuple[Any, str, str]] = {}  # metric: (prompt, ref, digest)
        self.embed: Any = None
        self.client: ChatClient | None = None
        self.s: dict[str, Any] = {}

    # ---- prepare ------------------------------------------------------------------------
    def prepare(self, state: RunState) -> None:
        cfg = state.config
        assert cfg is not None and cfg.generate is not None and cfg.judge is not None
        j = cfg.judge
        self.s = s = settings_of(cfg.generate)
        if s["cache"] != self.cache.mode:
            self.cache.mode = s["cache"]
        where = f"{cfg.source}: judge"
        ep = j.get("endpoint") or cfg.generate.get("endpoint")
        if not ep:
            raise ConfigError(
                f"{where}: no endpoint: set judge.endpoint (base_url, api_key_env) or "
                "generate.endpoint"
            )
        self.endpoint = check_endpoint("judge", ep.get("base_url"), ep.get("api_key_env"), where)
        if s["cache"] != "replay":
            self.endpoint.api_key()  # a missing variable: ConfigError (exit 2) before any work
        sample = state.sample()
        lineage: dict[str, Any] = {}
        for spec in cfg.judges:
            role = f"judge:{spec.metric}"
            try:
                v = self.artifacts.resolve(spec.prompt)
            except (NotFound, AmbiguousRef) as exc:
                raise ConfigError(f"{where}.{spec.metric}.prompt: {exc.message}") from None
            if v.kind != "prompt":
                raise ConfigError(f"{where}.{spec.metric}.prompt: {spec.prompt} is not a prompt")
            p = pin(role, v)
            state.inputs.append(p)
            prompt = self.artifacts.load_prompt(p.ref)
            self.prompts[spec.metric] = (prompt, p.ref, v.digest)
            needs = {"answer", "context"} if spec.metric == "faithfulness" else {"answer"}
            missing = sorted(needs - _takes(prompt, p.ref))
            if missing:
                raise ConfigError(
                    f"{where}.{spec.metric}.prompt: {p.ref} does not take "
                    f"{', '.join(missing)} (a {spec.metric} judge prompt declares the "
                    f"variables {', '.join(sorted(needs))})"
                )
            sample_values = {
                "question": sample.query,
                "context": "[sample-doc]\nsample context",
                "answer": SAMPLE_ANSWER,
                "n_questions": spec.n_questions,
            }
            check_render(prompt, p.ref, sample, partial(render, prompt, **sample_values))
            entry: dict[str, Any] = {
                "model": spec.model,
                "params": dict(spec.params),
                "endpoint": self.endpoint.host,
            }
            if spec.metric == "answer_relevance":
                emb = self.embedder(spec.embedding or cfg.model)
                self.embed = emb
                entry["n_questions"] = spec.n_questions
                entry["embedding"] = {"model": emb.name, "digest": emb.digest}
            lineage[spec.metric] = entry
        if j.get("price"):
            lineage["price"] = dict(j["price"])
        for m in [*(sp.metric for sp in cfg.judges), "judge_errors"]:
            if m not in state.metric_names:
                state.metric_names.append(m)
            state.stage_metrics.add(m)
        gen = state.lineage.get("generation")
        state.lineage["generation"] = {**(gen or {}), "judge": lineage}
        state.prechecks.append(self.check_renders)
        self.client = ChatClient(
            ClientOptions(
                concurrency=int(j.get("concurrency") or s["concurrency"]),
                timeout_s=float(s["timeout_s"]),
                max_retries=int(s["max_retries"]),
            )
        )

    def check_renders(self, state: RunState) -> None:
        """Every judge prompt rendered for every query with its context and a sample answer:
        run by the generate stage before its first call, so a judge template that fails on
        one query's question or context spends nothing (an answer-dependent failure can only
        show once the answer exists)."""
        cfg = state.config
        assert cfg is not None
        for spec in cfg.judges:
            prompt, ref, _ = self.prompts[spec.metric]
            for rec in state.records:
                _render_for(
                    prompt,
                    ref,
                    rec,
                    context=context_of(rec, self.s),
                    answer=SAMPLE_ANSWER,
                    n_questions=spec.n_questions,
                )

    # ---- run ----------------------------------------------------------------------------
    def _requests(
        self, state: RunState
    ) -> tuple[list[ChatRequest], list[tuple[str, QueryRecord, int, int | None]]]:
        """The unique judge calls, and per (metric, record, sample) the index of its call
        (None: no answer to judge)."""
        cfg = state.config
        assert cfg is not None and self.endpoint is not None
        ep = self.endpoint
        calls: list[ChatRequest] = []
        by_key: dict[str, int] = {}
        items: list[tuple[str, QueryRecord, int, int | None]] = []
        for spec in cfg.judges:
            prompt, ref, digest = self.prompts[spec.metric]
            base = {k: v for k, v in (prompt.model or {}).items() if k != "model"}
            tag = {"metric": spec.metric, "prompt": digest}
            for rec in state.records:
                context = context_of(rec, self.s)
                for i, answer in enumerate(_sample_answers(rec)):
                    if answer is None:
                        items.append((spec.metric, rec, i, None))
                        continue
                    messages = _render_for(
                        prompt,
                        ref,
                        rec,
                        context=context,
                        answer=answer,
                        n_questions=spec.n_questions,
                    )
                    body = {"model": spec.model, "messages": messages, **base, **spec.params}
                    key = request_key(ep.identity, body, 0, tag)
                    if key not in by_key:
                        by_key[key] = len(calls)
                        calls.append(
                            ChatRequest(
                                rec.id, 0, ep, body, key, {"metric": spec.metric, "tag": tag}
                            )
                        )
                    items.append((spec.metric, rec, i, by_key[key]))
        return calls, items

    def run(self, state: RunState, progress: Progress | None) -> None:
        assert self.client is not None
        t0 = time.perf_counter()
        calls, items = self._requests(state)
        results: dict[int, ChatResult] = {}
        todo: list[int] = []
        for i, rq in enumerate(calls):
            hit = self.cache.result(rq.endpoint.identity, rq.body["model"], rq.key)
            if hit is None:
                self.cache.miss(rq.qid, 0, f"judge:{rq.meta['metric']}")
                todo.append(i)
            else:
                results[i] = from_result(hit)
        price = (state.config.judge or {}).get("price") or {} if state.config else {}
        cap = self.s["max_cost_usd"]
        spent = float((state.report.get("cost") or {}).get("spent") or 0.0)
        already_aborted = bool(state.report.get("aborted"))
        done, total = len(results), len(calls)
        if progress:
            progress("judge", done, total)

        def on_result(rq: ChatRequest, res: ChatResult) -> bool:
            nonlocal spent, done
            spent += call_cost(res.usage, price)
            done += 1
            if progress:
                progress("judge", done, total)
            if res.ok:
                self.cache.store(
                    rq.endpoint.identity,
                    rq.body,
                    0,
                    res.response,
                    result_dict(res),
                    rq.meta["tag"],
                    key=rq.key,
                )
            return cap is None or spent <= cap

        if todo and not already_aborted and (cap is None or spent <= cap):
            try:
                called = self.client.run([calls[i] for i in todo], on_result)
            finally:
                self.cache.flush()
            for j, res in called.items():
                results[todo[j]] = res
        aborted = cap is not None and spent > cap
        self._finish(state, calls, items, results, price, spent, aborted, time.perf_counter() - t0)

    def _verdict(
        self, metric: str, rq: ChatRequest, res: ChatResult, price: dict[str, Any]
    ) -> dict[str, Any]:
        v: dict[str, Any] = {
            "score": None,
            "error": None,
            "model": rq.body["model"],
            "prompt": self.prompts[metric][1],
            "served_by": res.model,
            "cache_hit": res.cache_hit,
            "cache_key": rq.key if res.ok else None,
            "latency_ms": res.latency_ms,
            "usage": {
                "input_tokens": res.usage.input_tokens,
                "output_tokens": res.usage.output_tokens,
            },
            "cost": call_cost(res.usage, price),
        }
        if not res.ok:
            v["error"] = f"judge call failed: {res.error}"
            return v
        try:
            if metric == "faithfulness":
                v["score"], details = parse_faithfulness(res.text)
            else:
                details = parse_relevance(res.text)
        except JudgeOutputError as exc:
            v["error"] = f"judge output does not parse: {exc}"
            v["output"] = (res.text or "")[:500]
            return v
        v.update(details)
        return v

    def _finish(
        self,
        state: RunState,
        calls: list[ChatRequest],
        items: list[tuple[str, QueryRecord, int, int | None]],
        results: dict[int, ChatResult],
        price: dict[str, Any],
        spent: float,
        aborted: bool,
        wall: float,
    ) -> None:
        verdicts: dict[int, dict[str, Any]] = {}
        for i, rq in enumerate(calls):
            res = results.get(i)
            if res is not None:
                verdicts[i] = self._verdict(rq.meta["metric"], rq, res, price)
        per: dict[tuple[str, str], list[dict[str, Any]]] = {}
        not_judged = 0
        relevance_items: list[tuple[QueryRecord, dict[str, Any]]] = []
        for metric, rec, _i, ci in items:
            if ci is None:
                v = {"score": 0.0, "error": None, "note": "no answer (generation failed)"}
            elif ci not in verdicts:
                not_judged += 1
                v = {"score": None, "error": None, "note": "not judged: max_cost_usd reached"}
            else:
                v = dict(verdicts[ci])  # a call shared by identical requests: one copy each
                if metric == "answer_relevance" and not v.get("error"):
                    relevance_items.append((rec, v))
            per.setdefault((metric, rec.id), []).append(v)
        self._relevance_scores(relevance_items)
        errors: dict[str, list[str]] = {}
        unscored: dict[str, int] = {}
        by_id = {r.id: r for r in state.records}
        for (metric, qid), vs in per.items():
            rec = by_id[qid]
            n_err = sum(1 for v in vs if v.get("error"))
            if n_err:
                errors.setdefault(metric, []).append(qid)
            scores = [v["score"] for v in vs if v.get("score") is not None]
            if not n_err and not scores and not any(v.get("note") for v in vs):
                unscored[metric] = unscored.get(metric, 0) + 1
            first = dict(vs[0])
            if len(vs) > 1:
                first["samples"] = vs
            if scores:
                rec.metrics[metric] = sum(scores) / len(scores)
                first["score"] = rec.metrics[metric]
            rec.verdicts = {**(rec.verdicts or {}), metric: first}
            rec.metrics["judge_errors"] = rec.metrics.get("judge_errors", 0.0) + n_err
        cfg = state.config
        assert cfg is not None
        hits = sum(1 for r in results.values() if r.cache_hit)
        n_in = sum(r.usage.input_tokens or 0 for r in results.values())
        n_out = sum(r.usage.output_tokens or 0 for r in results.values())
        cost = sum(call_cost(r.usage, price) for r in results.values())
        state.report["judge"] = {
            "calls": len(results) - hits,
            "http_attempts": self.client.calls if self.client else 0,
            "cache": {"mode": self.cache.mode, "hits": hits, "stored": self.cache.stored},
            "errors": sum(len(v) for v in errors.values()),
            "error_ids": {m: sorted(ids)[:50] for m, ids in errors.items()},
            "unscored": unscored,
            "not_judged": not_judged,
            "input_tokens": n_in,
            "output_tokens": n_out,
            "cost": cost,
            "wall_s": wall,
            "metrics": {
                sp.metric: {"prompt": self.prompts[sp.metric][1], "model": sp.model}
                for sp in cfg.judges
            },
        }
        if "cost" in state.report:
            state.report["cost"]["judge_cost"] = cost
            state.report["cost"]["spent"] = spent
        stats = dict((state.lineage.get("extra") or {}).get("generation_stats") or {})
        stats.update(judge_cache_hits=hits, judge_calls=len(results) - hits)
        state.lineage["extra"] = {**(state.lineage.get("extra") or {}), "generation_stats": stats}
        if aborted and not state.report.get("aborted"):
            state.report["aborted"] = {
                "reason": "max_cost_usd",
                "spent": spent,
                "max_cost_usd": self.s["max_cost_usd"],
                "not_judged": not_judged,
            }

    def _relevance_scores(self, items: list[tuple[QueryRecord, dict[str, Any]]]) -> None:
        """answer_relevance: embed every generated and original question in one batch."""
        if not items:
            return
        texts: dict[str, int] = {}
        for rec, v in items:
            for t in [rec.query, *v["questions"]]:
                texts.setdefault(t, len(texts))
        vecs = self.embed.encode(list(texts))
        for rec, v in items:
            v["score"], v["similarities"] = relevance(
                vecs[texts[rec.query]], [vecs[texts[t]] for t in v["questions"]], v["noncommittal"]
            )
