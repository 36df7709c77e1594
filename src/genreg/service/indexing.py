"""Indexing a corpus snapshot: chunk, embed (through the cache), build and reuse FAISS indexes.

An index is keyed by ``sha256:`` of the canonical JSON of ``{"format", "snapshot", "model",
"chunking", "index"}`` (snapshot digest, model digest, canonical chunking params and the
build-time index params). It is built once and recorded as ``derived(kind="index",
scope=<snapshot digest>)``; later calls load it. Only chunks whose text digest is not in the
model's embedding cache are embedded, so re-indexing a slightly changed snapshot embeds only
the changed chunks (``IndexInfo.embedded`` counts them).

``model`` is a name/path, an embedding-spec mapping ``{model, backend, quantize, precision, device}``
(:class:`genreg.retrieval.embedders.EmbeddingSpec`; an ONNX export's files are kept in the
registry, :mod:`genreg.retrieval.onnx_backend`) or an embedder object. ``engine="ray"``
embeds the missing chunks on Ray (:mod:`genreg.retrieval.ray_engine`) instead of in-process;
both embed the same blocks with the same calls (:mod:`genreg.retrieval.blocks`), so the
vectors are the same either way (only how they are grouped into cache shards differs).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from genreg.core.hashing import canonical_json, digest_json
from genreg.errors import ConfigError, IntegrityError
from genreg.retrieval.chunking import ChunkingSpec, iter_chunks
from genreg.retrieval.embedders import EmbeddingSpec
from genreg.retrieval.index import IndexSpec
from genreg.retrieval.retriever import Hit, IndexInfo, Retriever
from genreg.service.leases import Lease
from genreg.store.objects import StagingDir, ensure_stored, ensure_stored_stream

if TYPE_CHECKING:
    import numpy as np

    from genreg.core.refs import Ref
    from genreg.core.types import VersionInfo
    from genreg.retrieval.rowids import RowIdsWriter
    from genreg.retrieval.texttable import TextTableWriter
    from genreg.service.artifacts import Artifacts
    from genreg.service.corpus import Corpora
    from genreg.service.store import Store
    from genreg.settings import Settings
    from genreg.store.metadata import Derived, DerivedStore
    from genreg.store.objects import ObjectStore

Progress = Callable[[str, int, int | None], None]
INDEX_FORMAT = 1
ANN_SAMPLE_KIND = "annsample"
ENGINES = ("local", "ray")


class EmbedderLike(Protocol):
    name: str
    digest: str

    @property
    def dim(self) -> int: ...

    @property
    def tokenizer(self) -> Any: ...

    def encode(
        self, texts: list[str], batch_size: int = 32, *, progress: Progress | None = None
    ) -> np.ndarray: ...


ModelArg = str | Mapping[str, Any] | EmbeddingSpec | EmbedderLike | None


def index_key(
    snapshot: str,
    model: str,
    chunking: ChunkingSpec,
    index: IndexSpec,
    train_sample: str | None = None,
) -> str:
    """The derived key of an index; a trained (ANN) index adds its training sample's digest."""
    params = index.build_dict()
    if train_sample is not None:
        params["train_sample"] = train_sample
    return digest_json(
        {
            "format": INDEX_FORMAT,
            "snapshot": snapshot,
            "model": model,
            "chunking": chunking.to_dict(),
            "index": params,
        }
    )


def sample_key(snapshot: str, model: str, chunking: ChunkingSpec, index: IndexSpec) -> str:
    """The derived key of an ANN index's training sample: which rows it draws depends only on
    the snapshot's chunks (chunking, and the model's tokenizer) and on train_size and seed."""
    return digest_json(
        {
            "format": INDEX_FORMAT,
            "kind": ANN_SAMPLE_KIND,
            "snapshot": snapshot,
            "model": model,
            "chunking": chunking.to_dict(),
            "train_size": index.get("train_size"),
            "seed": index.get("seed"),
        }
    )


class Indexes:
    """Embedders, chunked FAISS indexes (built once per key, reused), retrievers and search
    over corpus snapshots read through :class:`~genreg.service.corpus.Corpora`."""

    def __init__(self, store: Store, artifacts: Artifacts, corpora: Corpora) -> None:
        self._store = store
        self._artifacts = artifacts
        self._corpora = corpora

    @property
    def objects(self) -> ObjectStore:
        return self._store.objects

    @property
    def derived(self) -> DerivedStore:
        return self._store.derived

    @property
    def settings(self) -> Settings:
        return self._store.settings

    def resolve(self, ref: str | Ref, kind: str | None = None) -> VersionInfo:
        return self._artifacts.resolve(ref, kind)

    def iter_documents(self, ref: str | Ref) -> Iterator[Any]:
        return self._corpora.iter_documents(ref)

    def load_embedder(self, model: ModelArg = None) -> EmbedderLike:
        """The embedder for a model name/path or embedding-spec mapping (``None``: the
        default model); an embedder object passes through. The weights digest is cached
        under the registry home; ONNX exports are kept in the registry."""
        if model is not None and not isinstance(model, (str, Mapping, EmbeddingSpec)):
            return model
        from genreg.retrieval.embedders import load_embedder
        from genreg.retrieval.onnx_backend import ExportStore

        cache = self.settings.home / "cache"
        spec = EmbeddingSpec.parse(model)
        exports = ExportStore(self.objects, self.derived, cache / "onnx", cache / "tmp")
        # load_embedder checks the model directory first: one line, before anything loads
        return load_embedder(spec, cache_dir=cache, exports=exports)

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
        """Build (or find) the index of a corpus version for a model, chunking and index spec.
        ``engine``: ``local`` (in-process) or ``ray`` (``ray``: :class:`RayOptions` fields)."""
        info, _ = self._build(corpus_ref, model, chunking, index, progress, batch_size, engine, ray)
        return info

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
        from genreg.retrieval.index import apply_search_params, decode_envelope, decode_index

        info, emb = self._build(corpus_ref, model, chunking, index, progress, 32, engine, ray)
        ispec = IndexSpec.parse(index)
        data = self.objects.get_bytes(info.object_digest)
        exact = None
        if ispec.ann:
            from genreg.retrieval import ann

            meta, trunk = decode_envelope(data, f"index {info.key}")
            where = self.settings.home / "cache" / "ann" / info.object_digest
            faiss_index = ann.open_ondisk(
                ann.materialize(self.objects, bytes(trunk), meta["lists"], where)
            )
            digests_obj, rowmap_obj = meta["digests"], meta.get("rowmap")
            exact_search = ann.ExactSearch(
                self.objects,
                self.derived,
                emb.digest,
                int(meta["dim"]),
                lambda: ann.np_digests(self.objects.get_bytes(digests_obj)),
                # indexes built before the stored row map: planned from the digests
                rowmap=(
                    (lambda: ann.decode_rowmap(self.objects.get_bytes(rowmap_obj)))
                    if rowmap_obj
                    else None
                ),
            )
            # ann_recall@k's reference, its answers kept per query (a re-run reads them)
            exact = ann.ExactCache(
                exact_search,
                self.objects,
                self.derived,
                model_digest=emb.digest,
                dim=int(meta["dim"]),
                rows_digest=digests_obj,
            )
        else:
            faiss_index, meta = decode_index(data, f"index {info.key}")
        apply_search_params(faiss_index, ispec)
        if exact is not None and ispec.get("refine"):  # re-rank candidates by exact vectors
            spill = self.settings.home / "cache" / "ann" / "shards"
            reader = ann.VectorReader(exact.search, spill)
            faiss_index = ann.Refined(faiss_index, reader, ispec.get("refine"))
        texts: Callable[[], Sequence[str]]
        if "text_table" in meta:  # on-disk index: the compact table, opened on first use
            table_digest = meta["text_table"]

            def texts() -> Sequence[str]:
                from genreg.retrieval.texttable import open_texts

                spill = self.settings.home / "cache" / "ann" / "texts"
                return open_texts(self.objects, table_digest, spill)

        else:  # a flat index, or an ANN index stored before the table: one JSON list
            texts_digest = meta["texts"]

            def texts() -> Sequence[str]:
                return json.loads(self.objects.get_bytes(texts_digest))

        doc_ids: Sequence[str] = meta.get("doc_ids", ())
        chunk_index: Sequence[int] = meta.get("chunk_index", ())
        chunked = None
        if "rowids" in meta:  # on-disk index: the compact table, read per lookup
            from genreg.retrieval.rowids import open_rowids

            spill = self.settings.home / "cache" / "ann" / "rowids"
            table = open_rowids(self.objects, meta["rowids"], spill)
            doc_ids, chunk_index, chunked = table.doc_ids, table.chunk_index, table.chunked
        return Retriever(
            info,
            faiss_index,
            doc_ids,
            chunk_index,
            self.query_cache(emb),
            texts,
            exact=exact,
            chunked=chunked,
        )

    def query_cache(self, emb: EmbedderLike) -> Any:
        """``emb`` answering from (and filling) the model's query-embedding cache."""
        from genreg.retrieval.cache import QUERY_KIND, EmbeddingCache, QueryCache

        cache = EmbeddingCache(self.objects, self.derived, emb.digest, emb.dim, kind=QUERY_KIND)
        return QueryCache(emb, cache)

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
    ) -> list[Hit]:
        """Top-``k`` documents (best chunk each, with its text) for one query."""
        r = self.open_retriever(
            corpus_ref, model=model, chunking=chunking, index=index, progress=progress
        )
        return r.search([query], k, with_text=True).hits[0]

    # ---- internals ---------------------------------------------------------------------
    def _build(
        self,
        corpus_ref: str | Ref,
        model: ModelArg,
        chunking: Any,
        index: Any,
        progress: Progress | None,
        batch_size: int,
        engine: str = "local",
        ray: Mapping[str, Any] | None = None,
    ) -> tuple[IndexInfo, EmbedderLike]:
        t0 = time.perf_counter()
        if engine not in ENGINES:
            raise ConfigError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
        ray_opts = None
        if engine == "ray":
            from genreg.retrieval.ray_engine import RayOptions

            ray_opts = RayOptions.parse({"batch_size": batch_size, **(ray or {})})
        version = self.resolve(corpus_ref, kind="corpus")
        emb = self.load_embedder(model)
        cspec, ispec = ChunkingSpec.parse(chunking), IndexSpec.parse(index)
        n = version.summary.get("docs")  # the snapshot's document count: the bar's total
        index_dict = ispec.to_dict()
        if ispec.ann:  # keyed by its training sample too (known once the sample is drawn)
            sample = self.derived.get(sample_key(version.digest, emb.digest, cspec, ispec))
            train_sample = sample.meta["digest"] if sample is not None else None
            key = index_key(version.digest, emb.digest, cspec, ispec, train_sample)
            row = self.derived.get(key) if train_sample else None
            if row is None:
                docs = self.iter_documents(version.ref)
                with contextlib.ExitStack() as ray_stack:  # the build's Ray session, if any
                    key, row, embedded = self._build_ann(
                        version.digest,
                        docs,
                        emb,
                        cspec,
                        ispec,
                        progress,
                        batch_size,
                        n,
                        ray_opts,
                        ray_stack,
                    )
            else:
                embedded = -1
            index_dict["train_sample"] = row.meta["train_sample"]
        else:
            key = index_key(version.digest, emb.digest, cspec, ispec)
            row = self.derived.get(key)
            if row is None:
                docs = self.iter_documents(version.ref)
                row, embedded = self._build_new(
                    key, version.digest, docs, emb, cspec, ispec, progress, batch_size, n, ray_opts
                )
            else:
                embedded = -1
        info = IndexInfo(
            key=key,
            corpus=version.ref,
            corpus_version=version.version,
            corpus_digest=version.digest,
            model=emb.name,
            model_digest=emb.digest,
            chunking=cspec.to_dict(),
            index=index_dict,
            n_docs=int(row.meta.get("n_docs", 0)),
            n_chunks=int(row.meta.get("n_chunks", 0)),
            embedded=max(embedded, 0),
            reused=embedded < 0,
            seconds=round(time.perf_counter() - t0, 4),
            object_digest=row.object_digest,
            backend=str(getattr(emb, "backend", "torch")),
            quantize=str(getattr(emb, "quantize", "none")),
            precision=str(getattr(emb, "precision", "f32")),
            device=getattr(emb, "device_used", None) if embedded > 0 and ray_opts is None else None,
            engine=engine,
        )
        return info, emb

    def _build_new(
        self,
        key: str,
        snapshot: str,
        docs: Iterable[Any],
        emb: EmbedderLike,
        cspec: ChunkingSpec,
        ispec: IndexSpec,
        progress: Progress | None,
        batch_size: int,
        total: int | None = None,
        ray_opts: Any = None,
    ) -> tuple[Derived, int]:
        from genreg.retrieval.cache import EmbeddingCache
        from genreg.retrieval.index import build_faiss, encode_index

        if ray_opts is not None:  # an unreachable cluster or no extra: before any work
            from genreg.retrieval.ray_engine import preflight

            preflight(ray_opts)
        doc_ids, chunk_index, digests, texts, n_docs = _chunk_rows(
            docs, cspec, emb, progress, total
        )

        cache = EmbeddingCache(self.objects, self.derived, emb.digest, emb.dim)
        missing = cache.missing(digests)
        if missing and ray_opts is not None:
            from genreg.retrieval.ray_engine import embed_missing

            embed_missing(self.settings, emb, digests, texts, missing, ray_opts, progress)
            cache = EmbeddingCache(self.objects, self.derived, emb.digest, emb.dim)
        elif missing:  # the blocks Ray would embed, one encode call each (retrieval.blocks)
            from genreg.retrieval.blocks import block_size, embed_blocks, plan_blocks

            blocks = plan_blocks(digests, texts, set(missing), block_size(batch_size))
            embed_blocks(
                emb,
                ((b["digests"], b["texts"]) for b in blocks),
                len(missing),
                cache,
                batch_size,
                progress,
            )
        matrix = cache.matrix(digests)
        faiss_index = build_faiss(matrix, ispec, progress=progress)

        texts_blob = canonical_json(texts)
        texts_obj = self.objects.put_bytes(texts_blob)
        meta = {
            "key": key,
            "snapshot": snapshot,
            "model_digest": emb.digest,
            "chunking": cspec.to_dict(),
            "index": ispec.build_dict(),
            "dim": emb.dim,
            "texts": texts_obj,
            "doc_ids": doc_ids,
            "chunk_index": chunk_index,
        }
        index_blob = encode_index(faiss_index, meta)
        obj = self.objects.put_bytes(index_blob)
        summary = {
            "model": emb.name,
            "model_digest": emb.digest,
            "chunking": cspec.to_dict(),
            "index": ispec.build_dict(),
            "n_docs": n_docs,
            "n_chunks": len(doc_ids),
            "embedded": len(missing),
            "texts": texts_obj,
        }
        row = self.derived.put(
            kind="index", scope=snapshot, key=key, object_digest=obj, meta=summary
        )
        if row.object_digest == obj:  # a concurrent gc may have hidden what we wrote
            ensure_stored(self.objects, texts_obj, texts_blob)
            ensure_stored(self.objects, obj, index_blob)
        return row, len(missing)

    def _build_ann(
        self,
        snapshot: str,
        docs: Iterable[Any],
        emb: EmbedderLike,
        cspec: ChunkingSpec,
        ispec: IndexSpec,
        progress: Progress | None,
        batch_size: int,
        total: int | None,
        ray_opts: Any,
        ray_stack: contextlib.ExitStack,
    ) -> tuple[str, Derived, int]:
        """Chunk, check the parameters can train (before anything is embedded or written),
        embed what the cache lacks, draw the training sample, train, build the on-disk index
        from the cache shards (streaming) and store it. Returns (key, row, embedded).
        ``ray_opts``: the missing chunks are embedded by Ray actors and the index's build
        units run as Ray tasks, in one Ray session (started when first needed, closed by
        ``ray_stack``, which the caller holds for the build)."""

        connected: list[bool] = []

        def ray_up() -> None:  # one cluster connection for embedding and index units
            if ray_opts is not None and not connected:
                from genreg.retrieval.ray_engine import ray_session

                ray_stack.enter_context(ray_session(ray_opts))
                connected.append(True)

        import numpy as np

        from genreg.retrieval import ann
        from genreg.retrieval.cache import EmbeddingCache
        from genreg.retrieval.index import encode_envelope

        if ray_opts is not None:  # an unreachable cluster or no extra: before any work
            from genreg.retrieval.ray_engine import preflight

            preflight(ray_opts)
        # locked for the build's lifetime: gc reclaims it once this process is gone (kill -9)
        work = StagingDir(self.settings.home / "cache" / "tmp", prefix="ann-")
        workdir = work.path
        # what the build stores before the index row names it, kept by gc while it runs
        lease = Lease(self.derived, snapshot, "index build")
        tables: _RowTables | None = None
        try:
            # one pass over the chunks: the texts to a side file, nothing kept per chunk
            # but its digest and a few numbers (no Python object per chunk)
            tables = _write_rows(docs, cspec, emb, progress, total, workdir)
            rows, texts, rowids = tables.rows, tables.texts, tables.rowids
            dim = emb.dim
            ann.check_trainable(ispec, dim, len(rows))  # before anything is embedded or stored
            plan = ann.plan_rows(self.objects, self.derived, emb.digest, dim, rows)
            missing_rows = plan.missing()
            embedded = 0
            texts_obj: str | None = None
            if len(missing_rows):
                # the distinct digests, in first-seen (row) order; todo: the missing ones
                _, first = np.unique(rows, return_index=True)
                distinct = np.sort(first)
                missing = plan.shard_of[distinct] < 0
                todo = distinct[missing]
                if ray_opts is not None:  # the same blocks and vectors, written by Ray actors
                    from genreg.retrieval.ray_engine import embed_rows

                    # the actors read their blocks' texts from the stored table
                    texts_obj = self.objects.put_stream(texts.chunks())
                    lease.add(texts_obj)  # the job may outlast gc's grace period
                    ensure_stored_stream(self.objects, texts_obj, texts.chunks)
                    ray_up()
                    embed_rows(
                        self.settings,
                        emb,
                        texts_obj,
                        distinct,
                        tables.lengths[distinct],
                        missing,
                        ray_opts,
                        progress,
                        digests=rows,
                    )
                    lease.check()  # the job outlived a lost lease: its table may be gone
                else:  # the blocks Ray would embed, each block's texts read back from the
                    # side file as it is embedded (one block's texts in memory)
                    from genreg.retrieval.blocks import block_size, embed_blocks, row_blocks

                    order, ranges = row_blocks(
                        distinct, tables.lengths[distinct], missing, block_size(batch_size)
                    )
                    cache = EmbeddingCache(self.objects, self.derived, emb.digest, dim)
                    embed_blocks(
                        emb,
                        (
                            (_hex_digests(rows[part]), texts.texts(part))
                            for part in (order[r["lo"] : r["hi"]] for r in ranges)
                        ),
                        len(order),
                        cache,
                        batch_size,
                        progress,
                    )
                embedded = len(todo)
                plan = ann.plan_rows(self.objects, self.derived, emb.digest, dim, rows)
                left = len(plan.missing())
                if left:
                    raise IntegrityError(f"index build: {left} chunks still have no cached vector")

            positions = ann.sample_positions(ispec, len(rows))
            sample_blob = rows[positions].tobytes()
            train_sample = ann.sample_digest(sample_blob)
            key = index_key(snapshot, emb.digest, cspec, ispec, train_sample)
            existing = self.derived.get(key)
            if existing is not None:  # a concurrent build finished first
                return key, existing, embedded
            if progress is not None:
                progress("training", 0, None)
            trained = ann.train(ispec, ann.gather(self.objects, plan, positions, dim))

            workers = int(os.environ.get("GENREG_INDEX_WORKERS") or 1)
            ray_up()
            ann.build_ondisk(  # engine ray: the build units run as Ray tasks too
                self.objects,
                plan,
                trained,
                workdir,
                workers=workers,
                progress=progress,
                ray=ray_opts,
            )

            def lists_chunks() -> Iterator[bytes]:
                return _file_chunks(workdir / ann.LISTS)

            def digests_chunks() -> Iterator[bytes]:
                return _array_chunks(rows)

            lists_obj = self.objects.put_stream(lists_chunks())
            lease.add(lists_obj)
            digests_obj = self.objects.put_stream(digests_chunks())
            rowmap_blob = ann.encode_rowmap(plan)
            rowmap_obj = self.objects.put_bytes(rowmap_blob)
            rowids_obj = self.objects.put_stream(rowids.chunks())
            sample_obj = self.objects.put_bytes(sample_blob)
            # not JSON: read per hit (pread)
            texts_obj = texts_obj or self.objects.put_stream(texts.chunks())
            lease.add(digests_obj, rowmap_obj, rowids_obj, sample_obj, texts_obj)
            build = {**ispec.build_dict(), "train_sample": train_sample}
            meta = {
                "key": key,
                "snapshot": snapshot,
                "model_digest": emb.digest,
                "chunking": cspec.to_dict(),
                "index": build,
                "dim": dim,
                "text_table": texts_obj,
                "lists": lists_obj,
                "digests": digests_obj,
                "rowmap": rowmap_obj,
                "rowids": rowids_obj,
            }
            envelope = encode_envelope((workdir / ann.TRUNK).read_bytes(), meta)
            obj = self.objects.put_bytes(envelope)
            lease.add(obj)
            summary = {
                "model": emb.name,
                "model_digest": emb.digest,
                "chunking": cspec.to_dict(),
                "index": build,
                "train_sample": train_sample,
                "n_docs": tables.n_docs,
                "n_chunks": len(rows),
                "embedded": embedded,
                "text_table": texts_obj,
                "lists": lists_obj,
                "digests": digests_obj,
                "rowmap": rowmap_obj,
                "rowids": rowids_obj,
                "bytes": self.objects.size(lists_obj) + len(envelope),
            }
            self.derived.put(
                kind=ANN_SAMPLE_KIND,
                scope=snapshot,
                key=sample_key(snapshot, emb.digest, cspec, ispec),
                object_digest=sample_obj,
                meta={"digest": train_sample, "size": len(positions), "seed": ispec.get("seed")},
            )
            row = self.derived.put(
                kind="index", scope=snapshot, key=key, object_digest=obj, meta=summary
            )
            if row.object_digest == obj:  # a concurrent gc may have hidden what we wrote
                ensure_stored(self.objects, sample_obj, sample_blob)
                ensure_stored_stream(self.objects, texts_obj, texts.chunks)
                ensure_stored_stream(self.objects, digests_obj, digests_chunks)
                ensure_stored(self.objects, rowmap_obj, rowmap_blob)
                ensure_stored_stream(self.objects, rowids_obj, rowids.chunks)
                ensure_stored(self.objects, obj, envelope)
                ensure_stored_stream(self.objects, lists_obj, lists_chunks)
        finally:
            # each step runs even when one before it fails (the work dir holds the corpus text)
            with contextlib.ExitStack() as cleanup:
                cleanup.callback(work.close)
                if tables is not None:
                    cleanup.callback(tables.texts.close)
                cleanup.callback(lease.close)  # the index row (committed, or never) names it
        return key, row, embedded

    def list_indexes(self, corpus_ref: str | Ref | None = None) -> list[dict[str, Any]]:
        """Built indexes (all, or those of one corpus version), as recorded."""
        scope = self.resolve(corpus_ref, kind="corpus").digest if corpus_ref else None
        rows = self.derived.list("index", scope=scope)
        return [
            {"key": r.key, "snapshot": r.scope, "created_at": r.created_at, **r.meta} for r in rows
        ]


class _Chunks:
    """One pass over every chunk of ``docs`` (with the chunking bar); ``n_docs`` counts the
    documents seen. Shared by the flat build (lists) and the on-disk one (tables)."""

    def __init__(
        self,
        docs: Iterable[Any],
        cspec: ChunkingSpec,
        emb: EmbedderLike,
        progress: Progress | None,
        total: int | None,
    ) -> None:
        self.docs, self.cspec, self.emb = docs, cspec, emb
        self.progress, self.total = progress, total
        self.n_docs = 0

    def __iter__(self) -> Iterator[Any]:
        progress = self.progress
        tokenizer = self.emb.tokenizer if self.cspec.needs_tokenizer else None
        if progress is not None:
            progress("chunking", 0, self.total)
        for ch in iter_chunks(self.docs, self.cspec, tokenizer=tokenizer):
            if ch.chunk_index == 0:
                self.n_docs += 1
                if progress is not None and self.n_docs % 1000 == 0:
                    progress("chunking", self.n_docs, self.total)
            yield ch
        if progress is not None:
            progress("chunking", self.n_docs, self.n_docs)  # done: the bar completes


def _chunk_rows(
    docs: Iterable[Any],
    cspec: ChunkingSpec,
    emb: EmbedderLike,
    progress: Progress | None,
    total: int | None,
) -> tuple[list[str], list[int], list[str], list[str], int]:
    """Every chunk of ``docs``: (doc ids, chunk indexes, text digests, texts, documents) --
    the flat build's lists (the on-disk build streams: :func:`_write_rows`)."""
    doc_ids: list[str] = []
    chunk_index: list[int] = []
    digests: list[str] = []
    texts: list[str] = []
    chunks = _Chunks(docs, cspec, emb, progress, total)
    for ch in chunks:
        doc_ids.append(ch.doc_id)
        chunk_index.append(ch.chunk_index)
        digests.append(ch.digest)
        texts.append(ch.text)
    return doc_ids, chunk_index, digests, texts, chunks.n_docs


@dataclass
class _RowTables:
    """An on-disk build's rows after its one pass over the chunks: the chunk-text table (its
    text in a side file), the row-id table, each row's text digest (``S32``) and text length
    in characters (the Ray engine's block order)."""

    texts: TextTableWriter
    rowids: RowIdsWriter
    rows: np.ndarray
    lengths: np.ndarray
    n_docs: int


def _write_rows(
    docs: Iterable[Any],
    cspec: ChunkingSpec,
    emb: EmbedderLike,
    progress: Progress | None,
    total: int | None,
    workdir: Path,
) -> _RowTables:
    """Every chunk of ``docs``, written as it comes: its text to the table's side file in
    ``workdir``, its ids to the row-id table, its digest (32 bytes) and length (4) to arrays
    -- no Python object per chunk, about 50 bytes a row in memory."""
    import array

    import numpy as np

    from genreg.retrieval.rowids import RowIdsWriter
    from genreg.retrieval.texttable import TextTableWriter

    texts = TextTableWriter(workdir / "texts.part")
    rowids = RowIdsWriter()
    digests = bytearray()
    lengths = array.array("i")
    chunks = _Chunks(docs, cspec, emb, progress, total)
    try:
        for ch in chunks:
            texts.add(ch.text)
            rowids.add(ch.doc_id, ch.chunk_index)
            digests += bytes.fromhex(ch.digest)
            lengths.append(len(ch.text))
    except BaseException:
        texts.close()
        raise
    rows = np.frombuffer(digests, dtype="S32") if digests else np.zeros(0, dtype="S32")
    n = np.frombuffer(lengths, dtype=np.int32) if lengths else np.zeros(0, dtype=np.int32)
    return _RowTables(texts, rowids, rows, n, chunks.n_docs)


def _hex_digests(rows: np.ndarray) -> list[str]:
    """``S32`` digests as hex strings (bytes, not ``np.bytes_``: those drop trailing NULs)."""
    raw = rows.tobytes()
    return [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]


def _array_chunks(arr: np.ndarray, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of a contiguous array, in blocks (no whole copy)."""
    view = arr.data.cast("B")
    for lo in range(0, len(view), size):
        yield bytes(view[lo : lo + size])


def _file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            yield chunk
