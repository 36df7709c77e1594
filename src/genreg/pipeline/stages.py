"""The stages of an eval run. Each is a small unit with two steps over the shared
:class:`~genreg.pipeline.records.RunState`:

- ``prepare(state)``: cheap checks and set-up (no model, no index, no network). The pipeline
  runs *every* stage's ``prepare`` before *any* stage's ``run``, so a bad ref, config,
  template or gate fails in well under a second, before indexing starts;
- ``run(state, progress)``: the stage's work, reading what earlier stages set and setting its
  own fields (documented on each class).

Dependencies are explicit constructor arguments typed by the small protocols below, so a
stage can be tested over a real registry or over anything else that answers them.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from genreg.core.lineage import Environment, InputPin, Lineage, ModelPin
from genreg.core.timestamps import now
from genreg.errors import AmbiguousRef, ConfigError, GenregError, NotFound
from genreg.pipeline.records import Hit, Progress, QueryRecord, RunDraft, RunState

if TYPE_CHECKING:
    from genreg.core.prompt import Prompt
    from genreg.core.refs import Ref
    from genreg.core.routing import Routing
    from genreg.core.runinfo import RunInfo
    from genreg.core.types import VersionInfo

RESULTS_FORMAT = "genreg-run-results/1"


# ---- what the stages need from the rest of genreg -------------------------------------------
class ArtifactSource(Protocol):
    def resolve(self, ref: Any, kind: str | None = None) -> VersionInfo: ...
    def content(self, ref: Any) -> bytes: ...
    def load_prompt(self, ref: Any) -> Prompt: ...
    def load_routing(self, ref: Any) -> Routing: ...


class IndexSource(Protocol):
    def open_retriever(
        self,
        corpus_ref: Any,
        *,
        model: Any = None,
        chunking: Any = None,
        index: Any = None,
        progress: Any = None,
        engine: str = "local",
        ray: Any = None,
    ) -> Any: ...


class RunHistory(Protocol):
    def resolve_baseline(self, spec: str) -> RunInfo: ...
    def run_results(self, run_id: str) -> dict[str, Any]: ...


class RunSink(Protocol):
    """Where finished runs go: the results object and the run row."""

    def put_results(self, blob: bytes) -> str: ...
    def first_with_fingerprint(self, fingerprint: str) -> str | None: ...
    def create_run(self, run: RunInfo) -> None: ...
    def ensure_results(self, digest: str, blob: bytes) -> None: ...
    def index_results(self, digest: str, results: dict[str, Any]) -> None: ...
    def author(self) -> str: ...


class Stage(Protocol):
    name: str

    def prepare(self, state: RunState) -> None: ...
    def run(self, state: RunState, progress: Progress | None) -> None: ...


def pin(role: str, v: VersionInfo, split: str | None = None) -> InputPin:
    return InputPin(role, v.kind, v.name, v.version, v.digest, split)


# ---- resolve --------------------------------------------------------------------------------
class Resolve:
    """Every ref to an exact version, the baseline run, the eval set's queries.

    Sets ``inputs``, ``records`` (one per eval-set query), ``prompt``/``routing`` (when the
    config names them), ``baseline``, ``lineage.source``/``metrics``. All in ``prepare``:
    resolving is cheap, and later stages' checks need what it finds."""

    name = "resolve"

    def __init__(self, artifacts: ArtifactSource, history: RunHistory) -> None:
        self.artifacts = artifacts
        self.history = history

    def _version(self, ref: Ref | str, role: str) -> VersionInfo:
        """A ref that names nothing is a config error (exit 2), so exit code 1 keeps meaning
        "a gate failed" in CI."""
        try:
            return self.artifacts.resolve(ref)
        except (NotFound, AmbiguousRef) as exc:
            raise ConfigError(f"{role}: {exc.message}") from None

    def prepare(self, state: RunState) -> None:
        req, cfg = state.request, state.config
        es = self._version(req.evalset, "evalset")
        state.inputs = [pin("evalset", es, req.evalset.split)]
        if cfg is not None:
            state.inputs.append(pin("corpus", self._version(cfg.corpus, "corpus")))
            for role in ("prompt", "routing"):
                ref = getattr(cfg, role)
                if ref is not None:
                    state.inputs.append(pin(role, self._version(ref, role)))
        state.baseline = self._baseline(state)
        from genreg.core import artifacts as kinds

        whole = kinds.decode("evalset", self.artifacts.content(es))
        state.query_ids = frozenset(r["id"] for r in whole.rows)
        evalset = whole.select(req.evalset.split)
        state.records = [QueryRecord.from_row(r) for r in evalset.rows]
        if cfg is not None and cfg.prompt is not None and cfg.routing is not None:
            state.prompt = self.artifacts.load_prompt(state.input_ref("prompt"))
            state.routing = self.artifacts.load_routing(state.input_ref("routing"))
        state.lineage.update(source=req.source, metrics=tuple(req.metrics))

    def _baseline(self, state: RunState) -> RunInfo | None:
        req = state.request
        if req.baseline:
            return self.history.resolve_baseline(req.baseline)
        need = [g.expr for g in req.gates if g.needs_baseline]
        if need:
            raise ConfigError(
                f"gate {need[0]!r} compares with a baseline: pass --baseline RUN|REF "
                "or set 'baseline:' in the eval config"
            )
        return None

    def run(self, state: RunState, progress: Progress | None) -> None:
        pass


# ---- retrieve -------------------------------------------------------------------------------
class Retrieve:
    """Open (build or reuse) the corpus index and search every query.

    Sets each record's ``hits`` (with text when a later stage asked for it through
    ``state.need_text``) and ``latency``; ``lineage`` embedding/chunking/index/index_key/k/
    latency; ``report.latency`` and ``report.index``. For an ANN index (``ivfpq``,
    ``ivf_hnsw``) it also searches the same query vectors exhaustively over the cached chunk
    vectors (``state.exact_hits``; untimed; kept per query in the registry by
    :class:`genreg.retrieval.ann.ExactCache`, so a re-run reads them) so score can report
    ``ann_recall@k``. ``prepare`` parses the chunking and
    index parameters (a bad value is a config error before anything is built)."""

    name = "retrieve"

    def __init__(self, indexes: IndexSource) -> None:
        self.indexes = indexes
        self._specs: tuple[Any, Any] | None = None

    def prepare(self, state: RunState) -> None:
        cfg = state.config
        assert cfg is not None, "retrieve needs an eval config"
        try:
            from genreg.retrieval.chunking import ChunkingSpec
            from genreg.retrieval.index import IndexSpec

            chunking = ChunkingSpec.parse(cfg.chunking)
        except GenregError as exc:
            raise ConfigError(f"{cfg.where('chunking')}: {exc.message}") from None
        try:
            self._specs = chunking, IndexSpec.parse(cfg.index)
        except GenregError as exc:
            raise ConfigError(f"{cfg.where('index')}: {exc.message}") from None

    def run(self, state: RunState, progress: Progress | None) -> None:
        from genreg.core.latency import latency_summary

        cfg = state.config
        assert cfg is not None and self._specs is not None
        chunking, index = self._specs
        try:
            retriever = self.indexes.open_retriever(
                state.input_ref("corpus"),
                model=cfg.embedding,
                chunking=chunking,
                index=index,
                progress=progress,
                engine=cfg.engine,
                ray=cfg.ray,
            )
        except NotFound as exc:  # e.g. an embedding model that is not available offline
            raise ConfigError(f"{cfg.source}: {exc.message}") from None
        except ConfigError as exc:  # index parameters that cannot train on this corpus
            if exc.message.startswith("index."):
                raise ConfigError(f"{cfg.where('index')}: {exc.message}") from None
            raise
        info = retriever.info
        queries = [r.query for r in state.records]
        t0 = time.perf_counter()
        found = retriever.search(
            queries,
            cfg.depth,
            batch_size=cfg.batch_size,
            with_text=state.need_text,
            latency=cfg.latency,
            progress=progress,
        )
        wall = time.perf_counter() - t0
        for rec, hits, lat in zip(state.records, found.hits, found.latencies):
            rec.hits = [Hit(h.doc_id, h.score, h.text) for h in hits]
            rec.latency = lat
        state.lineage.update(
            embedding=ModelPin(
                info.model,
                info.model_digest,
                backend=info.backend,
                quantize=info.quantize,
                precision=info.precision,
                # where this run embedded (chunks or queries); None: all from the cache
                device=getattr(retriever.embedder, "device_used", None) or info.device,
            ),
            chunking=info.chunking,
            index=info.index,
            index_key=info.key,
            k=tuple(cfg.k),
            latency=cfg.latency,
        )
        state.report["latency"] = latency_summary(
            found.latencies, wall, found.batch_size, cfg.latency
        )
        state.report["index"] = {
            "n_docs": info.n_docs,
            "n_chunks": info.n_chunks,
            "reused": info.reused,
        }
        if getattr(retriever, "exact", None) is not None:  # an ANN index: its exact reference
            t1 = time.perf_counter()
            vectors = retriever.embedder.encode(queries, batch_size=cfg.batch_size)
            exact = retriever.exact_search_vectors(vectors, cfg.depth)
            state.exact_hits = {
                rec.id: [h.doc_id for h in hs] for rec, hs in zip(state.records, exact)
            }
            state.report["ann"] = {
                "index": info.index.get("type"),
                "exact_seconds": round(time.perf_counter() - t1, 4),
            }
            cached = getattr(retriever.exact, "cached", None)
            if cached is not None:  # queries whose exact top-k came from the registry
                state.report["ann"]["exact_cached"] = cached
                state.report["ann"]["exact_searched"] = getattr(retriever.exact, "searched", 0)


# ---- read run file (eval score: replaces retrieve) ------------------------------------------
class ReadRunFile:
    """Bring-your-own retrieval: the ranked hits come from a TREC or JSONL run file.

    ``prepare`` reads and parses the file (errors name ``file:line``); ``run`` sets each
    record's ``hits`` (ranked by score, trec_eval's tie order; no latency) and ``lineage``
    run_file (its digest) and run_file_path."""

    name = "read-run-file"

    def __init__(self) -> None:
        self._run: dict[str, dict[str, float]] | None = None

    def prepare(self, state: RunState) -> None:
        from genreg.core.hashing import digest_bytes
        from genreg.core.runfile import read_run_bytes

        p = state.request.run_file
        assert p is not None, "read-run-file needs a run file"
        self._run, data = read_run_bytes(p)
        state.lineage.update(run_file=digest_bytes(data), run_file_path=str(p))
        # Query ids of the run that match no eval-set query (of any split: a run over the
        # whole set scored against one split is fine) score nothing, silently: count them
        # (stored in the run's report, warned about by the CLI).
        known = state.query_ids or {rec.id for rec in state.records}
        unmatched = sorted(q for q in self._run if q not in known)
        if unmatched:
            state.report.update(
                run_file_unmatched=len(unmatched),
                run_file_unmatched_ids=unmatched[:20],
                run_file_queries=len(self._run),
            )

    def run(self, state: RunState, progress: Progress | None) -> None:
        from genreg.core.metrics import rank

        assert self._run is not None
        for rec in state.records:
            scores = self._run.get(rec.id, {})
            rec.hits = [Hit(d, scores[d]) for d in rank(scores)]


# ---- templates: render with a sample record before anything expensive ------------------------
def check_render(
    prompt: Prompt, prompt_ref: str, record: QueryRecord, render: Callable[[], Any]
) -> None:
    """Run ``render`` (a template rendered for ``record``); a failure is a config error naming
    the prompt ref and the query id, raised before any expensive stage."""
    try:
        render()
    except GenregError as exc:
        raise ConfigError(
            f"prompt {prompt_ref}: cannot render for query {record.id!r}: {exc.message}"
        ) from None


# ---- estimate token cost --------------------------------------------------------------------
class EstimateCost:
    """Token cost of answering each query with the prompt and routing config (documented in
    :mod:`genreg.core.cost`). Active when the config names both a prompt and a routing.

    ``prepare`` asks retrieve for hit texts and renders the prompt for the first query with a
    sample context; ``run`` sets each record's ``extra`` route/model/cost/tokens,
    ``report.cost`` and ``lineage.cost``."""

    name = "cost"

    def prepare(self, state: RunState) -> None:
        from genreg.core import cost as costmod

        if state.prompt is None or state.routing is None:
            return
        state.need_text = True
        cfg, prompt, sample = state.config, state.prompt, state.sample()
        assert cfg is not None
        context = costmod.format_context([("sample-doc", "sample context")], self._chars(state))
        check_render(
            prompt,
            state.input_ref("prompt"),
            sample,
            lambda: costmod.render_inputs(prompt, sample.query, context),
        )
        state.lineage["cost"] = dict(cfg.cost)

    @staticmethod
    def _k(state: RunState) -> int:
        from genreg.core import cost as costmod

        assert state.config is not None
        return int(state.config.cost.get("context_k", costmod.DEFAULT_CONTEXT_K))

    @staticmethod
    def _chars(state: RunState) -> int:
        from genreg.core import cost as costmod

        assert state.config is not None
        return int(state.config.cost.get("context_chars", costmod.DEFAULT_CONTEXT_CHARS))

    def run(self, state: RunState, progress: Progress | None) -> None:
        from genreg.core import cost as costmod

        if state.prompt is None or state.routing is None:
            return
        k, chars = self._k(state), self._chars(state)
        costs = []
        for rec in state.records:
            docs = [(h.doc_id, h.text or "") for h in rec.hits[:k]]
            try:
                c = costmod.query_cost(
                    state.prompt, state.routing, rec.query, docs, tags=rec.tags, context_chars=chars
                )
            except GenregError as exc:
                raise ConfigError(
                    f"prompt {state.input_ref('prompt')}: cannot render for query "
                    f"{rec.id!r}: {exc.message}"
                ) from None
            rec.extra.update(
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
        state.report["cost"] = costmod.summarize(
            costs, state.routing, context_k=k, context_chars=chars
        )


# ---- score ----------------------------------------------------------------------------------
class Score:
    """Metrics over the records, gates, and deltas against the baseline run.

    Retrieval metrics (``recall@k`` ...) are computed from each record's hits and judgments.
    A metric listed in ``state.stage_metrics`` was computed per query by an earlier stage (a
    judge, say) into ``record.metrics``; its mean is taken over the records that have it.

    ``prepare`` checks that every gate's metric is one the run computes. ``run`` sets
    ``scores``, each record's ``metrics``, ``gate_results`` and ``report`` n_queries /
    empty_queries / gates / baseline / baseline_deltas (per metric: value, baseline, delta,
    CI, p-value, wins/losses/ties, from :func:`genreg.core.compare.compare_metric`)."""

    name = "score"

    def __init__(self, history: RunHistory, *, n_resamples: int = 10000) -> None:
        self.history = history
        self.n_resamples = n_resamples

    def prepare(self, state: RunState) -> None:
        names = {m.lower() for m in state.metric_names}
        for g in state.request.gates:
            if g.metric.lower() not in names:
                raise ConfigError(
                    f"gate {g.expr!r}: metric {g.metric!r} is not computed by this run "
                    f"(metrics: {', '.join(state.metric_names)})"
                )

    def run(self, state: RunState, progress: Progress | None) -> None:
        from genreg.core.gates import Side, check
        from genreg.core.metrics import EvalResult, evaluate

        staged = [m for m in state.metric_names if m in state.stage_metrics]
        retrieval = [m for m in state.metric_names if m not in state.stage_metrics]
        qrels: dict[str, Any] = {r.id: r.relevant for r in state.records}
        if retrieval:
            res = evaluate(qrels, {r.id: r.scores() for r in state.records}, retrieval)
        else:  # answers only (eval score --answers without --run)
            res = EvalResult({}, {}, len(state.records), [])
        from genreg.core.answers import COUNT_METRICS

        for m in staged:
            vals = {r.id: r.metrics[m] for r in state.records if m in r.metrics}
            res.per_query[m] = vals
            if m in COUNT_METRICS:  # generation_errors: the run's count, not a mean
                res.mean[m] = float(sum(vals.values()))
            else:
                res.mean[m] = sum(vals.values()) / len(vals) if vals else 0.0
        res = EvalResult(
            {m: res.per_query[m] for m in state.metric_names},
            {m: res.mean[m] for m in state.metric_names},
            res.n_queries,
            res.empty_queries,
        )
        for rec in state.records:
            rec.metrics = {
                m: res.per_query[m][rec.id]
                for m in state.metric_names
                if rec.id in res.per_query[m]
            }
        state.scores = res
        if state.exact_hits:
            state.report.setdefault("ann", {}).update(self._ann_recall(state))
        state.report.update(
            n_queries=res.n_queries,
            empty_queries=len(res.empty_queries),
            empty_query_ids=res.empty_queries[:50],
        )
        base = state.baseline
        bside = None
        if base is not None:
            b_pq = self.history.run_results(base.id).get("per_query_metrics", {})
            bside = Side(dict(base.metrics), b_pq, base.id)
            state.report["baseline_deltas"] = self._deltas(res, base, b_pq)
        if state.request.gates:
            state.gate_results = check(state.request.gates, Side(res.mean, res.per_query), bside)
            state.report["gates"] = [g.to_dict() for g in state.gate_results]
        if base is not None:
            state.report["baseline"] = base.id

    @staticmethod
    def _ann_recall(state: RunState) -> dict[str, Any]:
        """``ann_recall@k`` per cutoff: the share of the exhaustive search's top-k documents
        the index returned in its top k, per query (in ``record.extra``) and averaged. It
        measures the index's approximation error, apart from retrieval quality."""
        cutoffs = list(state.config.k) if state.config is not None else []
        sums = dict.fromkeys(cutoffs, 0.0)
        n = 0
        for rec in state.records:
            exact = state.exact_hits.get(rec.id)
            if not exact:
                continue
            n += 1
            got = [h.doc_id for h in rec.hits]
            for k in cutoffs:
                want = set(exact[:k])
                value = len(want & set(got[:k])) / len(want)
                rec.extra[f"ann_recall@{k}"] = value
                sums[k] += value
        return {
            "queries": n,
            "recall": {f"ann_recall@{k}": (sums[k] / n if n else 0.0) for k in cutoffs},
        }

    def _deltas(
        self, res: Any, base: RunInfo, b_pq: dict[str, dict[str, float]]
    ) -> dict[str, dict[str, Any]]:
        from genreg.core.compare import compare_metric

        out: dict[str, dict[str, Any]] = {}
        for m, value in res.mean.items():
            if m not in base.metrics:
                continue
            c = compare_metric(b_pq.get(m, {}), res.per_query[m], n_resamples=self.n_resamples)
            c.pop("mean_a", None)
            c.pop("mean_b", None)
            c["most_regressed"] = c.get("most_regressed", [])[:5]
            out[m] = {"value": value, "baseline": float(base.metrics[m]), **c}
        return out


# ---- record ---------------------------------------------------------------------------------
class Record:
    """Store the run: the per-query results as one gzipped JSON object, then the run row with
    its lineage edges, metrics, name, tags and parameters.

    ``prepare`` captures the environment (git state, packages, host) as the run starts; ``run``
    builds the :class:`RunDraft`, detects a repeat (an earlier run with the same fingerprint:
    ``report.identical_to``) and sets ``state.outcome``."""

    name = "record"

    def __init__(self, sink: RunSink, capture: Callable[[], Environment] | None = None) -> None:
        self.sink = sink
        self.capture = capture
        self._env: Environment | None = None

    def prepare(self, state: RunState) -> None:
        if self.capture is None:
            from genreg.environment import environment

            self._env = environment()
        else:
            self._env = self.capture()

    def run(self, state: RunState, progress: Progress | None) -> None:
        state.outcome = self.store(draft(state, self._env or Environment()))

    def store(self, d: RunDraft) -> Any:
        from genreg.core.runinfo import RunInfo, RunOutcome

        results = {
            "format": RESULTS_FORMAT,
            "metrics": d.metric_names,
            "per_query_metrics": d.per_query_metrics,
            "queries": d.results,
        }
        blob = gzip.compress(json.dumps(results, sort_keys=True).encode(), mtime=0)
        obj = self.sink.put_results(blob)
        fp = d.lineage.fingerprint
        identical_to = self.sink.first_with_fingerprint(fp)
        report = dict(d.report)
        if identical_to:
            report["identical_to"] = identical_to
        lineage = d.lineage.with_times(d.started_at, now())
        run = RunInfo(
            id=uuid.uuid4().hex[:16],
            name=d.name,
            source=d.source,
            # an aborted run (generate: max_cost_usd) can pass no gate and never promote
            status="aborted" if report.get("aborted") else "done",
            passed=False
            if report.get("aborted")
            else (all(g.passed for g in d.gate_results) if d.gate_results else None),
            fingerprint=fp,
            started_at=d.started_at,
            ended_at=lineage.ended_at,
            author=self.sink.author(),
            config=d.config,
            lineage=lineage,
            metrics=dict(d.metrics),
            report=report,
            results_object=obj,
            inputs=list(d.inputs),
            run_name=d.run_name,
            tags=dict(d.tags),
            params=dict(d.params),
        )
        self.sink.create_run(run)
        self.sink.ensure_results(obj, blob)
        self.sink.index_results(obj, results)  # what the web UI reads (a derived cache)
        return RunOutcome(
            run, list(d.gate_results), identical_to, d.baseline.id if d.baseline else None
        )


def draft(state: RunState, env: Environment) -> RunDraft:
    """The finished run of a state whose score stage has run."""
    req, res = state.request, state.scores
    assert res is not None, "record needs the score stage"
    lineage = Lineage(inputs=tuple(state.inputs), **state.lineage).with_environment(env)
    return RunDraft(
        name=req.name,
        source=req.source,
        config=req.config,
        inputs=list(state.inputs),
        lineage=lineage,
        metrics=dict(res.mean),
        per_query_metrics=res.per_query,
        metric_names=list(state.metric_names),
        results=[r.result() for r in sorted(state.records, key=lambda r: r.id)],
        report=state.report,
        gate_results=state.gate_results,
        baseline=state.baseline,
        started_at=state.started_at,
        run_name=req.run_name,
        tags=dict(req.tags),
        params=dict(req.params),
    )


def stage_names(stages: Sequence[Stage]) -> list[str]:
    return [s.name for s in stages]
