"""The service layer: the one entry point the CLI, the API and the runner go through.

:class:`Registry` is a flat facade over one class per concern, each taking its dependencies
in its constructor (all over one :class:`~genreg.service.store.Store`: settings, metadata,
objects):

- :class:`~genreg.service.artifacts.Artifacts` (store) -- register, resolve, history, diff,
  aliases, push, export
- :class:`~genreg.service.tokens.Tokens` (store) -- API tokens: create, list, revoke,
  authenticate
- :class:`~genreg.service.corpus.Corpora` (store, artifacts) -- corpus snapshots: snapshot,
  documents, diff, status, export
- :class:`~genreg.service.indexing.Indexes` (store, artifacts, corpora) -- chunk, embed
  (cached), build/reuse FAISS indexes, search
- :class:`~genreg.service.runs.Evals` (store, artifacts, corpora, indexes) -- eval runs,
  scoring run files, lineage, compare, gates, promote
- :class:`~genreg.service.admin.Admin` (store) -- verify objects, gc, schema migrations

Every public method of a component has a one-line delegate here with the same signature
(``tests/test_public_api.py`` checks it). The persistence handles (``metadata``, ``objects``,
``engine``, ``repo``) are for tests and benchmarks; the shells never touch them
(``tests/test_layering.py``).
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from genreg.service.artifacts import Artifacts
from genreg.service.corpus import Corpora
from genreg.service.store import Store
from genreg.settings import Settings, resolve_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from genreg.core import artifacts as kinds
    from genreg.core.corpus import CorpusDiff, Document, ExportStats, Manifest, SnapshotResult
    from genreg.core.evalconfig import EvalConfig
    from genreg.core.evalset import EvalSet
    from genreg.core.prompt import Prompt
    from genreg.core.refs import Ref
    from genreg.core.routing import Decision, Routing
    from genreg.core.runinfo import RunInfo, RunOutcome
    from genreg.core.types import AliasEvent, ArtifactInfo, RegisterResult, VersionInfo
    from genreg.pipeline.records import Progress
    from genreg.pipeline.runner import Pipeline
    from genreg.retrieval.chunking import ChunkingSpec
    from genreg.retrieval.index import IndexSpec
    from genreg.retrieval.retriever import Hit, IndexInfo, Retriever
    from genreg.service.admin import Admin, GcReport, VerifyReport
    from genreg.service.artifacts import PushResult
    from genreg.service.indexing import EmbedderLike, Indexes, ModelArg
    from genreg.service.runs import Evals
    from genreg.service.tokens import Principal, TokenInfo, Tokens
    from genreg.store.metadata import DerivedStore, Metadata
    from genreg.store.objects import ObjectStore
    from genreg.store.packs import PackIndex
    from genreg.store.repo import Repo
    from genreg.store.runs import RunRepo

_T = TypeVar("_T")


def __getattr__(name: str) -> Any:
    """``COMPONENTS``: each component attribute of :class:`Registry` and its class (imports
    every component; the registry itself imports the heavier ones on first use)."""
    if name == "COMPONENTS":
        from genreg.service.admin import Admin
        from genreg.service.indexing import Indexes
        from genreg.service.runs import Evals
        from genreg.service.tokens import Tokens

        return {
            "_artifacts": Artifacts,
            "_tokens": Tokens,
            "_corpora": Corpora,
            "_indexes": Indexes,
            "_evals": Evals,
            "_admin": Admin,
        }
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_C = TypeVar("_C")
_BUILD = threading.RLock()


class _Lazy(Generic[_C]):
    """A component built on first access, exactly once per registry (then a plain instance
    attribute: this is a non-data descriptor). Not ``functools.cached_property``: since
    Python 3.12 that takes no lock, and the API builds components from several threads."""

    def __init__(self, build: Callable[[Registry], _C]) -> None:
        self.build = build
        self.name = build.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Lazy[_C]: ...
    @overload
    def __get__(self, obj: Registry, owner: type | None = None) -> _C: ...
    def __get__(self, obj: Registry | None, owner: type | None = None) -> _Lazy[_C] | _C:
        if obj is None:
            return self
        with _BUILD:
            d = obj.__dict__
            if self.name not in d:
                d[self.name] = self.build(obj)
            return d[self.name]  # the value build() returned


class Registry:
    """A genreg registry: metadata database + object store, opened (and migrated) once."""

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        settings: Settings | None = None,
        create: bool = False,
    ) -> None:
        self.settings = settings or resolve_settings(Path(home) if home else None, create=create)
        self._store = Store(self.settings)
        self._artifacts = Artifacts(self._store)
        self._corpora = Corpora(self._store, self._artifacts)

    # The other components are built on first use (once, under a lock: the API serves from
    # threads), so the hot commands (``corpus snapshot``, ``resolve``) do not import the eval
    # pipeline, retrieval or gc modules.
    def _tokens_component(self) -> Tokens:
        from genreg.service.tokens import Tokens

        return Tokens(self._store)

    def _indexes_component(self) -> Indexes:
        from genreg.service.indexing import Indexes

        return Indexes(self._store, self._artifacts, self._corpora)

    def _evals_component(self) -> Evals:
        from genreg.service.runs import Evals

        return Evals(self._store, self._artifacts, self._corpora, self._indexes)

    def _admin_component(self) -> Admin:
        from genreg.service.admin import Admin

        return Admin(self._store)

    _tokens = _Lazy(_tokens_component)
    _indexes = _Lazy(_indexes_component)
    _evals = _Lazy(_evals_component)
    _admin = _Lazy(_admin_component)

    def build_components(self) -> None:
        """Build now every component otherwise built on first use (Tokens, Indexes, Evals,
        Admin -- importing their modules: ~20-40 ms, none of torch, faiss or SQLAlchemy), so a
        long-lived server (``genreg serve``) pays that once at start-up instead of in the first
        request that needs one. The hot CLI commands never call it."""
        for name, attr in vars(Registry).items():
            if isinstance(attr, _Lazy):
                getattr(self, name)

    @classmethod
    def init(cls, path: str | Path | None = None) -> Registry:
        """Create (or reopen) a registry home and migrate its database."""
        home = Path(path) if path else None
        if home is None:
            from genreg.settings import find_home

            home = find_home() or Path.cwd() / ".genreg"
        home.mkdir(parents=True, exist_ok=True)
        reg = cls(home)
        reg.ensure_schema()
        return reg

    @property
    def home(self) -> Path:
        return self.settings.home

    def list(self, kind: str | None = None) -> builtins.list[ArtifactInfo]:
        """Every artifact (of ``kind``), with its latest version and aliases."""
        return self._artifacts.list_artifacts(kind)

    def author(self, explicit: str | None = None) -> str:
        """``explicit``, else the default author (``$GENREG_AUTHOR``, git, the OS user)."""
        return self._store.author(explicit)

    def ensure_schema(self) -> None:
        """Create or migrate the database to the code's schema (cheap when current)."""
        self._store.metadata.ensure_schema()

    def data_version(self) -> int | None:
        """Changes whenever any connection commits (None: the backend has no cheap counter,
        do not cache resolutions)."""
        return self._store.metadata.data_version()

    def ping(self) -> str | None:
        """The database's schema revision; raises when it does not answer."""
        return self._store.metadata.ping()

    def close(self) -> None:
        self._store.close()

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- persistence handles: tests and benchmarks only (never the shells) -------------
    @property
    def metadata(self) -> Metadata:
        return self._store.metadata

    @property
    def objects(self) -> ObjectStore:
        return self._store.objects

    @property
    def derived(self) -> DerivedStore:
        return self._store.derived

    @property
    def runs_repo(self) -> RunRepo:
        return self._store.metadata.runs

    @property
    def engine(self) -> Engine:
        """SQLAlchemy engine on the metadata database; imports SQLAlchemy."""
        return self._store.metadata.engine

    @cached_property
    def repo(self) -> Repo:
        """The SQLModel repository on the metadata database (tests compare it with
        :attr:`metadata`)."""
        from genreg.store.repo import Repo

        return Repo(self.engine)

    @property
    def _packidx(self) -> PackIndex:
        return self._store.packs

    def _tmp_dir(self) -> Path:
        return self._corpora._tmp_dir()

    @property
    def _author(self) -> str | None:
        return self._store.default_author

    @_author.setter
    def _author(self, value: str | None) -> None:
        self._store.default_author = value

    # ---- Artifacts -----------------------------------------------------------
    def alias_history(
        self, artifact: str | Ref, alias: str | None = None
    ) -> builtins.list[AliasEvent]:
        return self._artifacts.alias_history(artifact, alias)

    def content(self, ref: str | Ref | VersionInfo) -> bytes:
        return self._artifacts.content(ref)

    def diff(self, a: str | Ref, b: str | Ref) -> dict[str, Any]:
        return self._artifacts.diff(a, b)

    def explain_route(
        self, ref: str | Ref, query: str, tags: builtins.list[str] | None = None
    ) -> Decision:
        return self._artifacts.explain_route(ref, query, tags)

    def export(self, ref: str | Ref) -> dict[str, Any]:
        """A self-contained, digest-checked bundle of one version."""
        return self._artifacts.export(ref)

    def history(self, ref: str | Ref) -> builtins.list[VersionInfo]:
        return self._artifacts.history(ref)

    def import_bundle(
        self, bundle: dict[str, Any] | str | Path, *, name: str | None = None
    ) -> RegisterResult:
        return self._artifacts.import_bundle(bundle, name=name)

    def list_artifacts(self, kind: str | None = None) -> builtins.list[ArtifactInfo]:
        return self._artifacts.list_artifacts(kind)

    def load_evalset(self, ref: str | Ref) -> EvalSet:
        """The eval set's rows; a ``#split`` in the ref selects that split."""
        return self._artifacts.load_evalset(ref)

    def load_prompt(self, ref: str | Ref) -> Prompt:
        return self._artifacts.load_prompt(ref)

    def load_routing(self, ref: str | Ref) -> Routing:
        return self._artifacts.load_routing(ref)

    def push(
        self,
        paths: builtins.list[str | Path] | None = None,
        *,
        message: str = "",
        author: str | None = None,
        root: Path | None = None,
    ) -> builtins.list[PushResult]:
        """Register every prompt/routing/eval-set file under ``paths`` whose content changed."""
        return self._artifacts.push(paths, message=message, author=author, root=root)

    def register(
        self,
        kind: str,
        name: str,
        path: str | Path,
        *,
        message: str = "",
        tags: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> RegisterResult:
        """Register the file (or BEIR directory, for eval sets) at ``path`` as ``kind:name``."""
        return self._artifacts.register(kind, name, path, message=message, tags=tags, author=author)

    def register_content(
        self,
        kind: str,
        name: str,
        content: Any,
        *,
        message: str = "",
        tags: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> RegisterResult:
        """Register content given as data (a prompt/routing mapping, or eval-set rows)."""
        return self._artifacts.register_content(
            kind, name, content, message=message, tags=tags, author=author
        )

    def register_parsed(
        self,
        name: str,
        parsed: kinds.Parsed,
        *,
        message: str = "",
        tags: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> RegisterResult:
        """Store the canonical bytes (durably) first, then insert the version row. A failure at any point leaves no visible version."""
        return self._artifacts.register_parsed(
            name, parsed, message=message, tags=tags, author=author
        )

    def remove_alias(
        self, artifact: str | Ref, alias: str, *, reason: str = "", actor: str | None = None
    ) -> AliasEvent:
        return self._artifacts.remove_alias(artifact, alias, reason=reason, actor=actor)

    def render(
        self, ref: str | Ref, variables: dict[str, Any] | None = None, **kw: Any
    ) -> str | builtins.list[dict[str, str]]:
        """Render a prompt; chat prompts give OpenAI-style ``[{role, content}]`` messages."""
        return self._artifacts.render(ref, variables, **kw)

    def render_request(
        self, ref: str | Ref, variables: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """Render a prompt into the ready OpenAI request body ``{model, temperature, max_tokens, ..., messages}`` (the prompt's model config plus the messages)."""
        return self._artifacts.render_request(ref, variables, **kw)

    def resolve(
        self, ref: str | Ref, kind: str | None = None, *, suggest: bool = True
    ) -> VersionInfo:
        """The exact version a reference names (raises NotFound / AmbiguousRef). An unknown artifact's NotFound names the closest existing one unless ``suggest`` is False (the HTTP API's hot reads: no listing on a 404)."""
        return self._artifacts.resolve(ref, kind, suggest=suggest)

    def set_alias(
        self,
        ref: str | Ref,
        alias: str,
        *,
        reason: str = "",
        actor: str | None = None,
        run_id: str | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at the version ``ref`` resolves to; journaled."""
        return self._artifacts.set_alias(ref, alias, reason=reason, actor=actor, run_id=run_id)

    def show(self, ref: str | Ref) -> tuple[VersionInfo, Any]:
        return self._artifacts.show(ref)

    # ---- Tokens --------------------------------------------------------------
    def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for; AuthError if unknown, revoked or wrong."""
        return self._tokens.authenticate(token)

    def create_token(
        self, name: str, scopes: builtins.list[str] | tuple[str, ...]
    ) -> tuple[str, TokenInfo]:
        """Create a token; returns ``(token, info)``. The token is never stored or shown again."""
        return self._tokens.create_token(name, scopes)

    def list_tokens(self) -> builtins.list[TokenInfo]:
        return self._tokens.list_tokens()

    def revoke_token(self, name_or_id: str) -> TokenInfo:
        return self._tokens.revoke_token(name_or_id)

    # ---- Corpora -------------------------------------------------------------
    def corpus_diff(self, a: str | Ref, b: str | Ref) -> CorpusDiff:
        return self._corpora.corpus_diff(a, b)

    def corpus_export(self, ref: str | Ref, out_dir: str | Path) -> ExportStats:
        """Write the snapshot's files to ``out_dir`` exactly as they were snapshotted."""
        return self._corpora.corpus_export(ref, out_dir)

    def corpus_manifest(self, ref: str | Ref | VersionInfo) -> Manifest:
        return self._corpora.corpus_manifest(ref)

    def corpus_status(
        self,
        ref: str | Ref,
        source: str | Path,
        *,
        fmt: str | None = None,
        id_field: str | None = None,
        text_field: str | None = None,
        title_field: str | None = None,
        verify: bool = False,
        skip_invalid: bool = False,
        progress: Progress | None = None,
    ) -> CorpusDiff:
        """How the working source differs from snapshot ``ref`` (parsing options default to the snapshot's). Reads nothing but changed files; writes only the stat cache."""
        return self._corpora.corpus_status(
            ref,
            source,
            fmt=fmt,
            id_field=id_field,
            text_field=text_field,
            title_field=title_field,
            verify=verify,
            skip_invalid=skip_invalid,
            progress=progress,
        )

    def iter_documents(self, ref: str | Ref | VersionInfo) -> Iterator[Document]:
        """Every document of a snapshot, sorted by doc id, streamed and digest-verified."""
        return self._corpora.iter_documents(ref)

    def corpus_documents(
        self, ref: str | Ref | VersionInfo, doc_ids: Iterable[str]
    ) -> dict[str, Document]:
        """The named documents of a snapshot, read by doc id (no scan); absent ids left out."""
        return self._corpora.corpus_documents(ref, doc_ids)

    def snapshot(
        self,
        name: str,
        source: str | Path,
        *,
        fmt: str | None = None,
        id_field: str = "id",
        text_field: str = "text",
        title_field: str = "title",
        verify: bool = False,
        skip_invalid: bool = False,
        message: str = "",
        tags: dict[str, Any] | None = None,
        author: str | None = None,
        progress: Progress | None = None,
    ) -> SnapshotResult:
        """Snapshot ``source`` as ``corpus:name`` (a no-op when the content is unchanged)."""
        return self._corpora.snapshot(
            name,
            source,
            fmt=fmt,
            id_field=id_field,
            text_field=text_field,
            title_field=title_field,
            verify=verify,
            skip_invalid=skip_invalid,
            message=message,
            tags=tags,
            author=author,
            progress=progress,
        )

    # ---- Indexes -------------------------------------------------------------
    def build_index(
        self,
        corpus_ref: str | Ref,
        *,
        model: ModelArg = None,
        chunking: str | dict[str, Any] | ChunkingSpec | None = None,
        index: str | dict[str, Any] | IndexSpec | None = None,
        progress: Progress | None = None,
        batch_size: int = 32,
        engine: str = "local",
        ray: Mapping[str, Any] | None = None,
    ) -> IndexInfo:
        """Build (or find) the index of a corpus version for a model, chunking and index spec. ``engine``: ``local`` (in-process) or ``ray`` (``ray``: :class:`RayOptions` fields)."""
        return self._indexes.build_index(
            corpus_ref,
            model=model,
            chunking=chunking,
            index=index,
            progress=progress,
            batch_size=batch_size,
            engine=engine,
            ray=ray,
        )

    def list_indexes(self, corpus_ref: str | Ref | None = None) -> builtins.list[dict[str, Any]]:
        """Built indexes (all, or those of one corpus version), as recorded."""
        return self._indexes.list_indexes(corpus_ref)

    def load_embedder(self, model: ModelArg = None) -> EmbedderLike:
        """The embedder for a model name/path or embedding-spec mapping (``None``: the default model); an embedder object passes through. The weights digest is cached under the registry home; ONNX exports are kept in the registry."""
        return self._indexes.load_embedder(model)

    def open_retriever(
        self,
        corpus_ref: str | Ref,
        *,
        model: ModelArg = None,
        chunking: str | dict[str, Any] | ChunkingSpec | None = None,
        index: str | dict[str, Any] | IndexSpec | None = None,
        progress: Progress | None = None,
        engine: str = "local",
        ray: Mapping[str, Any] | None = None,
    ) -> Retriever:
        """A :class:`Retriever` over the index (built first when it does not exist yet)."""
        return self._indexes.open_retriever(
            corpus_ref,
            model=model,
            chunking=chunking,
            index=index,
            progress=progress,
            engine=engine,
            ray=ray,
        )

    def query_cache(self, emb: EmbedderLike) -> Any:
        """``emb`` answering from (and filling) the model's query-embedding cache."""
        return self._indexes.query_cache(emb)

    def search(
        self,
        corpus_ref: str | Ref,
        query: str,
        k: int = 5,
        *,
        model: ModelArg = None,
        chunking: str | dict[str, Any] | ChunkingSpec | None = None,
        index: str | dict[str, Any] | IndexSpec | None = None,
        progress: Progress | None = None,
    ) -> builtins.list[Hit]:
        """Top-``k`` documents (best chunk each, with its text) for one query."""
        return self._indexes.search(
            corpus_ref, query, k, model=model, chunking=chunking, index=index, progress=progress
        )

    # ---- Evals ---------------------------------------------------------------
    def compare_runs(self, a: str, b: str, *, n_resamples: int = 10000) -> dict[str, Any]:
        """Metric deltas (B - A) with paired tests, per-query wins/losses, the inputs that differ (loud warnings when the delta is not attributable) and, apart, the environment that differs (commit, genreg and package versions: shown, never blocking attribution)."""
        return self._evals.compare_runs(a, b, n_resamples=n_resamples)

    def eval_dry_run(
        self,
        config: str | Path | EvalConfig | dict[str, Any],
        *,
        overrides: builtins.list[str] | None = None,
        gates: builtins.list[str] | None = None,
        baseline: str | None = None,
    ) -> dict[str, Any]:
        """``eval run --dry-run``: every stage's cheap ``prepare`` (refs, config, templates rendered for the first query, gate metrics, endpoints and API-key variables), then the token-cost estimate (:mod:`genreg.generation.dryrun`). Calls no model, builds no index, searches nothing, records nothing."""
        return self._evals.eval_dry_run(config, overrides=overrides, gates=gates, baseline=baseline)

    def eval_pipeline(self) -> Pipeline:
        return self._evals.eval_pipeline()

    def eval_run(
        self,
        config: str | Path | EvalConfig | dict[str, Any],
        *,
        overrides: builtins.list[str] | None = None,
        gates: builtins.list[str] | None = None,
        baseline: str | None = None,
        progress: Progress | None = None,
        run_name: str | None = None,
        tags: builtins.list[str] | dict[str, str] | None = None,
    ) -> RunOutcome:
        """Run an eval config end to end and record the run (see the module docstring). ``overrides`` (``key=value``) are recorded as the run's parameters."""
        return self._evals.eval_run(
            config,
            overrides=overrides,
            gates=gates,
            baseline=baseline,
            progress=progress,
            run_name=run_name,
            tags=tags,
        )

    def eval_score(
        self,
        evalset: str,
        run_file: str | Path | None = None,
        *,
        answers: str | Path | None = None,
        metrics: builtins.list[str] | None = None,
        name: str | None = None,
        gates: builtins.list[str] | None = None,
        baseline: str | None = None,
        run_name: str | None = None,
        tags: builtins.list[str] | dict[str, str] | None = None,
    ) -> RunOutcome:
        """Score an external run file (TREC or JSONL) against an eval set and record it."""
        return self._evals.eval_score(
            evalset,
            run_file,
            answers=answers,
            metrics=metrics,
            name=name,
            gates=gates,
            baseline=baseline,
            run_name=run_name,
            tags=tags,
        )

    def get_run(self, run_id: str) -> RunInfo:
        """A run by id or unique prefix."""
        return self._evals.get_run(run_id)

    def lineage(self, run_id: str) -> dict[str, Any]:
        """The tree of exact inputs and environment of a run."""
        return self._evals.lineage(run_id)

    def list_runs(
        self,
        *,
        used: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        tags: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> builtins.list[RunInfo]:
        """Runs newest first; ``used`` is a ref resolved to the exact version it names; ``tags``/``params`` keep runs carrying every given ``key=value``."""
        return self._evals.list_runs(used=used, name=name, limit=limit, tags=tags, params=params)

    def promote(
        self, ref: str, alias: str, run_id: str, *, reason: str = "", actor: str | None = None
    ) -> AliasEvent:
        """Move ``alias`` to the version ``ref`` names, only if run ``run_id`` passed its gates (a run without gates does not count as passed) and used exactly that version. The journal entry records the run id."""
        return self._evals.promote(ref, alias, run_id, reason=reason, actor=actor)

    def resolve_baseline(self, spec: str) -> RunInfo:
        """A run id (or prefix), or a ref: for an alias, the run recorded by the latest journal entry of that alias that names a run (e.g. the promotion); otherwise the latest run that used the exact version the ref names."""
        return self._evals.resolve_baseline(spec)

    def run_results(self, run_id: str) -> dict[str, Any]:
        """The per-query results object of a run (ranked docs, metrics, latency, tokens)."""
        return self._evals.run_results(run_id)

    def score_pipeline(self) -> Pipeline:
        return self._evals.score_pipeline()

    def used_by(self, ref: str) -> builtins.list[RunInfo]:
        """Reverse lineage: every run that used the exact version ``ref`` names."""
        return self._evals.used_by(ref)

    def verify_run_inputs(self, run_id: str) -> builtins.list[dict[str, Any]]:
        """Re-resolve every recorded input by version and check its digest is unchanged."""
        return self._evals.verify_run_inputs(run_id)

    # ---- Admin ---------------------------------------------------------------
    def db_current(self) -> dict[str, Any]:
        """The database's schema revision and the code's head, without migrating."""
        return self._admin.db_current()

    def db_upgrade(self) -> dict[str, Any]:
        """Migrate the database to the head revision (idempotent)."""
        return self._admin.db_upgrade()

    def gc(
        self,
        *,
        dry_run: bool = True,
        grace_seconds: float = 3600.0,
        progress: Progress | None = None,
    ) -> GcReport:
        """Objects no version, derived row, run or provider references, and stale staging files. Deletes them only when ``dry_run`` is False, and only those older than ``grace_seconds``; the two-phase delete of the module docstring keeps every object a concurrently committed row names."""
        return self._admin.gc(dry_run=dry_run, grace_seconds=grace_seconds, progress=progress)

    def verify(self, *, progress: Progress | None = None) -> VerifyReport:
        """Re-hash every stored object and check every reference; problems name their owner."""
        return self._admin.verify(progress=progress)


__all__ = ["Registry"]
