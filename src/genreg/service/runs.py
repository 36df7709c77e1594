"""Eval runs: run an eval config (or score an external run file), record its lineage, gate it.

Flow of :meth:`EvalService.eval_run`: parse the config (ConfigError, exit 2) -> resolve every
ref to an exact version -> resolve the baseline run -> open the retriever (index built or
reused) -> fingerprint the lineage -> search, score, latency, cost -> check gates -> store the
per-query results as one gzipped JSON object and the run row with its lineage edges.

A run whose fingerprint equals an earlier run's is still recorded (each execution is a fact:
its times and host differ) and its report says ``identical_to`` = the earlier run's id.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.core.evalconfig import EvalConfig, load_config, parse_config
from genreg.core.gates import Gate, GateResult, Side, check, parse_gates
from genreg.core.hashing import digest_bytes
from genreg.core.lineage import capture_environment, fingerprint
from genreg.core.report import latency_summary
from genreg.core.runinfo import RunInfo, RunInput
from genreg.errors import AmbiguousRef, ConfigError, GenregError, NotFound
from genreg.service.run_views import RunViews
from genreg.store.objects import ensure_stored

if TYPE_CHECKING:
    from genreg.core.refs import Ref
    from genreg.core.types import VersionInfo
    from genreg.retrieval.chunking import ChunkingSpec
    from genreg.retrieval.index import IndexSpec
    from genreg.retrieval.retriever import Retriever
    from genreg.service.indexing import EmbedderLike, Progress
    from genreg.store.objects import ObjectStore
    from genreg.store.runs import RunRepo

RESULTS_FORMAT = "genreg-run-results/1"


def now() -> str:
    """ISO-8601 UTC, the store's timestamp format (sortable as text)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RunOutcome:
    run: RunInfo
    gates: list[GateResult] = field(default_factory=list)
    identical_to: str | None = None
    baseline: str | None = None

    @property
    def passed(self) -> bool | None:
        return self.run.passed

    def to_dict(self) -> dict[str, Any]:
        r = self.run
        return {
            "run_id": r.id,
            "name": r.name,
            "source": r.source,
            "fingerprint": r.fingerprint,
            "identical_to": self.identical_to,
            "metrics": r.metrics,
            "passed": r.passed,
            "gates": [g.to_dict() for g in self.gates],
            "baseline": self.baseline,
            "lineage": r.lineage,
            "report": r.report,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
        }


def _input(role: str, v: VersionInfo, split: str | None = None) -> RunInput:
    return RunInput(role, v.kind, v.name, v.version, v.digest, split)


class EvalService(RunViews):
    objects: ObjectStore
    engine: Any

    if TYPE_CHECKING:

        def author(self, explicit: str | None = None) -> str: ...
        def resolve(self, ref: Any, kind: str | None = None) -> VersionInfo: ...
        def open_retriever(
            self,
            corpus_ref: str | Ref,
            *,
            model: str | EmbedderLike | None = None,
            chunking: str | dict[str, Any] | ChunkingSpec | None = None,
            index: str | dict[str, Any] | IndexSpec | None = None,
            progress: Progress | None = None,
        ) -> Retriever: ...

    @cached_property
    def runs_repo(self) -> RunRepo:
        from genreg.store.runs import RunRepo

        return RunRepo(self.engine)

    # ---- running ------------------------------------------------------------------------
    def eval_run(
        self,
        config: str | Path | EvalConfig | dict[str, Any],
        *,
        overrides: list[str] | None = None,
        gates: list[str] | None = None,
        baseline: str | None = None,
        progress: Any = None,
    ) -> RunOutcome:
        """Run an eval config end to end and record the run (see the module docstring)."""
        if isinstance(config, EvalConfig):
            cfg = config
        elif isinstance(config, dict):
            cfg = parse_config(config, overrides)
        else:
            cfg = load_config(config, overrides)
        all_gates = cfg.gates + parse_gates(gates, "--gate")
        started = now()
        es_v = self._resolve_input(cfg.evalset, "evalset")
        inputs = [
            _input("evalset", es_v, cfg.evalset.split),
            _input("corpus", self._resolve_input(cfg.corpus, "corpus")),
        ]
        for role in ("prompt", "routing"):
            ref = getattr(cfg, role)
            if ref is not None:
                inputs.append(_input(role, self._resolve_input(ref, role)))
        base = self._baseline_for(all_gates, baseline or cfg.baseline)
        rows = self._evalset_rows(es_v, cfg.evalset.split)
        corpus = next(i for i in inputs if i.role == "corpus")
        try:
            from genreg.retrieval.chunking import ChunkingSpec
            from genreg.retrieval.index import IndexSpec

            chunking, index = ChunkingSpec.parse(cfg.chunking), IndexSpec.parse(cfg.index)
        except GenregError as exc:
            raise ConfigError(f"{cfg.source}: {exc.message}") from None
        try:
            retriever = self.open_retriever(
                corpus.ref, model=cfg.model, chunking=chunking, index=index, progress=progress
            )
        except NotFound as exc:  # e.g. an embedding model that is not available offline
            raise ConfigError(f"{cfg.source}: {exc.message}") from None
        info = retriever.info
        lineage = self._lineage(
            "eval",
            inputs,
            embedding={"model": info.model, "digest": info.model_digest},
            chunking=info.chunking,
            index=info.index,
            k=cfg.k,
            metrics=cfg.metrics,
            cost=cfg.cost if cfg.prompt and cfg.routing else None,
        )
        lineage["index_key"] = info.key
        want_text = cfg.prompt is not None and cfg.routing is not None
        queries = [r["query"] for r in rows]
        t0 = time.perf_counter()
        found = retriever.search(
            queries, cfg.depth, batch_size=cfg.batch_size, with_text=want_text, progress=progress
        )
        wall = time.perf_counter() - t0
        run_scores = {
            r["id"]: {h.doc_id: h.score for h in hits} for r, hits in zip(rows, found.hits)
        }
        per_q: dict[str, dict[str, Any]] = {
            r["id"]: {
                "query": r["query"],
                "ranked": [[h.doc_id, h.score] for h in hits],
                "latency": lat,
            }
            for r, hits, lat in zip(rows, found.hits, found.latencies)
        }
        report: dict[str, Any] = {
            "latency": latency_summary(found.latencies, wall, found.batch_size),
            "index": {"n_docs": info.n_docs, "n_chunks": info.n_chunks, "reused": info.reused},
        }
        if want_text:
            report["cost"] = self._cost(cfg, inputs, rows, found.hits, per_q)
        return self._finish(
            cfg.name,
            "eval",
            cfg.to_dict(),
            rows,
            run_scores,
            per_q,
            cfg.metrics,
            lineage,
            inputs,
            report,
            all_gates,
            base,
            started,
        )

    def eval_score(
        self,
        evalset: str,
        run_file: str | Path,
        *,
        metrics: list[str] | None = None,
        name: str | None = None,
        gates: list[str] | None = None,
        baseline: str | None = None,
    ) -> RunOutcome:
        """Score an external run file (TREC or JSONL) against an eval set and record it."""
        from genreg.core.refs import parse_ref
        from genreg.core.runfile import read_run

        ms = metrics or ["ndcg@10", "recall@100", "mrr@10"]
        cfg = parse_config(
            {
                "name": name or "score",
                "evalset": evalset,
                "corpus": "corpus:external",
                "metrics": ms,
                "k": [10000],
            }
        )
        all_gates = parse_gates(gates, "--gate")
        started = now()
        ref = parse_ref(evalset, kind="evalset")
        es_v = self._resolve_input(ref, "evalset")
        inputs = [_input("evalset", es_v, ref.split)]
        base = self._baseline_for(all_gates, baseline)
        p = Path(run_file)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read run file ({exc.strerror})") from None
        run_scores = read_run(p)
        rows = self._evalset_rows(es_v, ref.split)
        lineage = self._lineage("score", inputs, metrics=cfg.metrics, run_file=digest_bytes(data))
        lineage["run_file_path"] = str(p)
        from genreg.core.metrics import rank

        per_q = {
            r["id"]: {
                "query": r["query"],
                "ranked": [[d, run_scores[r["id"]][d]] for d in rank(run_scores.get(r["id"], {}))],
            }
            for r in rows
        }
        config = {"name": cfg.name, "evalset": evalset, "run_file": str(p), "metrics": cfg.metrics}
        return self._finish(
            cfg.name,
            "score",
            config,
            rows,
            run_scores,
            per_q,
            cfg.metrics,
            lineage,
            inputs,
            {},
            all_gates,
            base,
            started,
        )

    # ---- internals ----------------------------------------------------------------------
    def _resolve_input(self, ref: Any, role: str) -> VersionInfo:
        """Resolve a config ref; a ref that names nothing is a config error (exit 2), so exit
        code 1 keeps meaning "a gate failed" in CI."""
        try:
            return self.resolve(ref)
        except (NotFound, AmbiguousRef) as exc:
            raise ConfigError(f"{role}: {exc.message}") from None

    def _evalset_rows(self, v: VersionInfo, split: str | None) -> list[dict[str, Any]]:
        from genreg.core import artifacts as kinds

        es = kinds.decode("evalset", self.content(v)).select(split)  # type: ignore[attr-defined]  # mixin: Registry provides it
        return list(es.rows)

    def _lineage(self, source: str, inputs: list[RunInput], **fields: Any) -> dict[str, Any]:
        env = capture_environment()
        lin: dict[str, Any] = {
            "source": source,
            "inputs": {
                i.role: {
                    "kind": i.kind,
                    "name": i.name,
                    "version": i.version,
                    "digest": i.digest,
                    "split": i.split,
                }
                for i in inputs
            },
            "embedding": None,
            "chunking": None,
            "index": None,
            "k": None,
            "metrics": None,
            "cost": None,
            "run_file": None,
            **fields,
            **env,
        }
        lin["fingerprint"] = fingerprint(lin)
        return lin

    def _baseline_for(self, gates: list[Gate], spec: str | None) -> RunInfo | None:
        if spec:
            return self.resolve_baseline(spec)
        need = [g.expr for g in gates if g.needs_baseline]
        if need:
            raise ConfigError(
                f"gate {need[0]!r} compares with a baseline: pass --baseline RUN|REF "
                "or set 'baseline:' in the eval config"
            )
        return None

    def _cost(
        self,
        cfg: EvalConfig,
        inputs: list[RunInput],
        rows: list[dict[str, Any]],
        hits: list[list[Any]],
        per_q: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        from genreg.core import cost as costmod

        prompt = self.load_prompt(next(i for i in inputs if i.role == "prompt").ref)  # type: ignore[attr-defined]  # mixin: Registry provides it
        routing = self.load_routing(next(i for i in inputs if i.role == "routing").ref)  # type: ignore[attr-defined]  # mixin: Registry provides it
        k = int(cfg.cost.get("context_k", costmod.DEFAULT_CONTEXT_K))
        chars = int(cfg.cost.get("context_chars", costmod.DEFAULT_CONTEXT_CHARS))
        costs = []
        for r, hs in zip(rows, hits):
            docs = [(h.doc_id, h.text or "") for h in hs[:k]]
            c = costmod.query_cost(
                prompt, routing, r["query"], docs, tags=r.get("tags"), context_chars=chars
            )
            per_q[r["id"]].update(
                route=c.route,
                model=c.model,
                cost=c.cost,
                tokens={
                    "input": c.input_tokens,
                    "output": c.output_tokens,
                    "counter": c.tokenizer,
                    "estimate": c.estimate,
                },
            )
            costs.append(c)
        return costmod.summarize(costs, routing, context_k=k, context_chars=chars)

    def _finish(
        self,
        name: str,
        source: str,
        config: dict[str, Any],
        rows: list[dict[str, Any]],
        run_scores: dict[str, dict[str, float]],
        per_q: dict[str, dict[str, Any]],
        metrics: list[str],
        lineage: dict[str, Any],
        inputs: list[RunInput],
        report: dict[str, Any],
        gates: list[Gate],
        base: RunInfo | None,
        started: str,
    ) -> RunOutcome:
        from genreg.core.metrics import evaluate

        qrels = {
            r["id"]: (
                {d: 1 for d in r["relevant"]}
                if isinstance(r["relevant"], list)
                else dict(r["relevant"])
            )
            for r in rows
        }
        res = evaluate(qrels, run_scores, metrics)
        for qid, q in per_q.items():
            q["metrics"] = {m: res.per_query[m][qid] for m in metrics if qid in res.per_query[m]}
        report.update(
            n_queries=res.n_queries,
            empty_queries=len(res.empty_queries),
            empty_query_ids=res.empty_queries[:50],
        )
        results = {
            "format": RESULTS_FORMAT,
            "metrics": metrics,
            "per_query_metrics": res.per_query,
            "queries": [{"id": q, **per_q[q]} for q in sorted(per_q)],
        }
        blob = gzip.compress(json.dumps(results, sort_keys=True).encode(), mtime=0)
        obj = self.objects.put_bytes(blob)
        fp = lineage["fingerprint"]
        earlier = self.runs_repo.list(fingerprint=fp, limit=1)
        identical_to = earlier[0].id if earlier else None
        gate_results: list[GateResult] = []
        if gates:
            side = Side(res.mean, res.per_query, None)
            bside = self._side(base) if base else None
            gate_results = check(gates, side, bside)
        if gate_results:
            report["gates"] = [g.to_dict() for g in gate_results]
        if base:
            report["baseline"] = base.id
        if identical_to:
            report["identical_to"] = identical_to
        lineage["started_at"], lineage["ended_at"] = started, now()
        run = RunInfo(
            id=uuid.uuid4().hex[:16],
            name=name,
            source=source,
            status="done",
            passed=all(g.passed for g in gate_results) if gate_results else None,
            fingerprint=fp,
            started_at=started,
            ended_at=lineage["ended_at"],
            author=self.author(),
            config=config,
            lineage=lineage,
            metrics=dict(res.mean),
            report=report,
            results_object=obj,
            inputs=inputs,
        )
        self.runs_repo.create(run)
        ensure_stored(self.objects, obj, blob)  # a concurrent gc may have hidden it
        return RunOutcome(run, gate_results, identical_to, base.id if base else None)

    def _side(self, run: RunInfo) -> Side:
        res = self.run_results(run.id)
        return Side(dict(run.metrics), res.get("per_query_metrics", {}), run.id)
