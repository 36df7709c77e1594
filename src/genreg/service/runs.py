"""Eval runs: run an eval config (or score an external run file) through the pipeline of
stages in :mod:`genreg.pipeline`, record its lineage, gate it.

    eval run     resolve -> retrieve      -> cost -> score -> record
      generate:  resolve -> retrieve -> generate [-> judge] -> score -> record
    eval score   resolve -> read-run-file          -> score -> record

Every stage's cheap ``prepare`` (refs, config, templates rendered with a sample query, gate
metrics, the run file) runs before any stage's expensive ``run`` (indexing, search).

A run whose fingerprint equals an earlier run's is still recorded (each execution is a fact:
its times and host differ) and its report says ``identical_to`` = the earlier run's id.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.core.evalconfig import EvalConfig, load_config, parse_config
from genreg.core.gates import parse_gates
from genreg.core.runinfo import RunInfo, RunOutcome
from genreg.core.timestamps import now
from genreg.errors import ConfigError, GenregError
from genreg.pipeline.records import Progress, RunRequest, RunState
from genreg.service.run_views import RunViews

log = logging.getLogger("genreg")

if TYPE_CHECKING:
    from collections.abc import Iterator

    from genreg.core.corpus import Document
    from genreg.pipeline.runner import Pipeline
    from genreg.service.artifacts import Artifacts
    from genreg.service.corpus import Corpora
    from genreg.service.indexing import EmbedderLike, Indexes
    from genreg.service.store import Store

__all__ = ["Evals", "RunOutcome", "parse_labels"]

DEFAULT_SCORE_METRICS = ["ndcg@10", "recall@100", "mrr@10"]


def parse_labels(items: list[str] | dict[str, str] | None, what: str) -> dict[str, str]:
    """``["k=v", ...]`` (``--tag``/``--param``) as a dict; a malformed item is a ConfigError."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{what} {item!r}: expected key=value (e.g. team=search)")
        if len(key) > 200 or len(value) > 1000:
            raise ConfigError(f"{what} {key[:40]!r}: key over 200 or value over 1000 characters")
        out[key] = value.strip()
    return out


class _Sink:
    """The record stage's view of the registry: results object, repeats, the run row."""

    def __init__(self, svc: Evals) -> None:
        self.svc = svc

    def put_results(self, blob: bytes) -> str:
        return self.svc.objects.put_bytes(blob)

    def first_with_fingerprint(self, fingerprint: str) -> str | None:
        earlier = self.svc.runs_repo.list(fingerprint=fingerprint, limit=1)
        return earlier[0].id if earlier else None

    def create_run(self, run: RunInfo) -> None:
        self.svc.runs_repo.create(run)

    def ensure_results(self, digest: str, blob: bytes) -> None:
        from genreg.store.objects import ensure_stored

        ensure_stored(self.svc.objects, digest, blob)  # a concurrent gc may have hidden it

    def index_results(self, digest: str, results: dict[str, Any]) -> None:
        """Store the web UI's index of the results (a derived cache: a failure only means the
        first UI view of the run builds it)."""
        from genreg.service.run_queries import index_results

        try:
            index_results(self.svc._store, digest, results)
        except (GenregError, OSError) as exc:
            log.warning("run results %s: UI index not stored: %s", digest[:12], exc)

    def author(self) -> str:
        return self.svc.author()


class Evals(RunViews):
    """Eval runs and scoring through the pipeline (:mod:`genreg.pipeline`), over the store,
    the artifacts (refs, prompts, routing), the corpora and the indexes (retrievers)."""

    def __init__(
        self, store: Store, artifacts: Artifacts, corpora: Corpora, indexes: Indexes
    ) -> None:
        super().__init__(store, artifacts)
        self._corpora = corpora
        self._indexes = indexes

    def author(self, explicit: str | None = None) -> str:
        return self._store.author(explicit)

    def load_embedder(self, model: Any = None) -> EmbedderLike:
        return self._indexes.load_embedder(model)

    def iter_documents(self, ref: Any) -> Iterator[Document]:
        return self._corpora.iter_documents(ref)

    # ---- pipelines (a generation stage is added here, after retrieve) ----------------------
    def eval_pipeline(self) -> Pipeline:
        from genreg.pipeline.runner import eval_pipeline

        return eval_pipeline(self._artifacts, self._indexes, self, _Sink(self))

    def score_pipeline(self) -> Pipeline:
        from genreg.pipeline.runner import score_pipeline

        return score_pipeline(self._artifacts, self, _Sink(self))

    # ---- running ------------------------------------------------------------------------
    def eval_run(
        self,
        config: str | Path | EvalConfig | dict[str, Any],
        *,
        overrides: list[str] | None = None,
        gates: list[str] | None = None,
        baseline: str | None = None,
        progress: Progress | None = None,
        run_name: str | None = None,
        tags: list[str] | dict[str, str] | None = None,
    ) -> RunOutcome:
        """Run an eval config end to end and record the run (see the module docstring).
        ``overrides`` (``key=value``) are recorded as the run's parameters."""
        request, pipeline = self._eval_setup(config, overrides, gates, baseline, run_name, tags)
        return self._execute(pipeline, request, progress)

    def _eval_setup(
        self,
        config: str | Path | EvalConfig | dict[str, Any],
        overrides: list[str] | None,
        gates: list[str] | None,
        baseline: str | None,
        run_name: str | None = None,
        tags: list[str] | dict[str, str] | None = None,
    ) -> tuple[RunRequest, Pipeline]:
        """The request and the pipeline of an eval config (nothing resolved yet)."""
        if isinstance(config, EvalConfig):
            cfg = config
        elif isinstance(config, dict):
            cfg = parse_config(config, overrides)
        else:
            cfg = load_config(config, overrides)
        request = RunRequest(
            source="eval",
            name=cfg.name,
            metrics=cfg.metrics,
            evalset=cfg.evalset,
            config=cfg.to_dict(),
            eval_config=cfg,
            gates=cfg.gates + parse_gates(gates, "--gate"),
            baseline=baseline or cfg.baseline,
            run_name=run_name,
            tags=parse_labels(tags, "--tag"),
            params=parse_labels(overrides, "--set"),
        )
        pipeline = self.eval_pipeline()
        if cfg.generate is not None:  # real answers and usage replace the cost estimate
            from genreg.generation.cache import open_cache
            from genreg.generation.stage import Generate

            cache = open_cache(self._store, cfg.generate.get("cache", "rw"))
            pipeline.replace("cost", Generate(cache))
            if cfg.judges:  # LLM-as-judge metrics, after generate
                from genreg.generation.judge import Judge

                judge_cache = open_cache(self._store, cfg.generate.get("cache", "rw"))
                judge = Judge(self._artifacts, judge_cache, self._indexes.load_embedder)
                pipeline.insert(judge, after="generate")
        return request, pipeline

    def eval_dry_run(
        self,
        config: str | Path | EvalConfig | dict[str, Any],
        *,
        overrides: list[str] | None = None,
        gates: list[str] | None = None,
        baseline: str | None = None,
    ) -> dict[str, Any]:
        """``eval run --dry-run``: every stage's cheap ``prepare`` (refs, config, templates
        rendered for the first query, gate metrics, endpoints and API-key variables), then the
        token-cost estimate (:mod:`genreg.generation.dryrun`). Calls no model, builds no
        index, searches nothing, records nothing."""
        from genreg.generation.dryrun import dry_run_report

        request, pipeline = self._eval_setup(config, overrides, gates, baseline)
        state = RunState(request, now())
        for stage in pipeline.stages:
            stage.prepare(state)
        return dry_run_report(state, pipeline.stages, self._sample_chunks(state))

    def _sample_chunks(self, state: RunState, max_docs: int = 50) -> list[tuple[str, str]]:
        """Real chunks of the first ``max_docs`` documents of the corpus (the dry-run's
        stand-in for retrieved context): chunked as the config says, nothing embedded."""
        from itertools import islice

        from genreg.retrieval.chunking import ChunkingSpec, iter_chunks

        cfg = state.config
        if cfg is None or state.prompt is None or state.routing is None:
            return []
        spec = ChunkingSpec.parse(cfg.chunking)
        tokenizer = self.load_embedder(cfg.model).tokenizer if spec.by == "tokens" else None
        docs = list(islice(self.iter_documents(state.input_ref("corpus")), max_docs))
        return [(c.doc_id, c.text) for c in iter_chunks(docs, spec, tokenizer=tokenizer)]

    def eval_score(
        self,
        evalset: str,
        run_file: str | Path | None = None,
        *,
        answers: str | Path | None = None,
        metrics: list[str] | None = None,
        name: str | None = None,
        gates: list[str] | None = None,
        baseline: str | None = None,
        run_name: str | None = None,
        tags: list[str] | dict[str, str] | None = None,
    ) -> RunOutcome:
        """Score an external run file (TREC or JSONL) against an eval set and record it."""
        from genreg.core.evalconfig import check_metrics, check_name
        from genreg.core.refs import parse_ref
        from genreg.errors import GenregError

        if run_file is None and answers is None:
            raise ConfigError("eval score: give --run FILE, --answers FILE, or both")
        if run_file is None and metrics:
            raise ConfigError("--metrics: retrieval metrics need --run")
        ms = [m.strip() for m in (metrics or (DEFAULT_SCORE_METRICS if run_file else []))]
        label = name or "score"
        check_name(label, "--name")
        if ms:
            check_metrics(ms, "--metrics")
        try:
            ref = parse_ref(evalset, kind="evalset")
        except GenregError as exc:
            raise ConfigError(f"--evalset: {exc.message}") from None
        p = Path(run_file) if run_file is not None else None
        request = RunRequest(
            source="score",
            name=label,
            metrics=ms,
            evalset=ref,
            config={
                "name": label,
                "evalset": evalset,
                "run_file": str(p) if p else None,
                "metrics": ms,
                **({"answers_file": str(answers)} if answers is not None else {}),
            },
            run_file=p,
            gates=parse_gates(gates, "--gate"),
            baseline=baseline,
            run_name=run_name,
            tags=parse_labels(tags, "--tag"),
        )
        pipeline = self.score_pipeline()
        if answers is not None:  # bring-your-own generator: answer metrics on its answers
            from genreg.generation.answers_file import ReadAnswers

            stage = ReadAnswers(Path(answers))
            if p is None:
                pipeline.replace("read-run-file", stage)
            else:
                pipeline.insert(stage, after="read-run-file")
        return self._execute(pipeline, request, None)

    def _execute(
        self, pipeline: Pipeline, request: RunRequest, progress: Progress | None
    ) -> RunOutcome:
        state = pipeline.run(RunState(request, now()), progress)
        assert state.outcome is not None
        return state.outcome
