"""Searching a built index: queries -> top-k documents, with per-query latencies.

Chunks collapse to documents: a document ranks (and scores) as its best chunk, and a document
appears once. For chunked indexes more than ``k`` chunks are fetched (and the fetch widened
when needed) so that ``k`` distinct documents come back whenever the corpus has them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from genreg.service.indexing import EmbedderLike as Embedder

OVERFETCH = 4


@dataclass(frozen=True)
class IndexInfo:
    key: str
    corpus: str  # the pinned ref, e.g. corpus:docs@v3
    corpus_version: int
    corpus_digest: str
    model: str
    model_digest: str
    chunking: dict[str, Any]
    index: dict[str, Any]
    n_docs: int
    n_chunks: int
    embedded: int  # chunks embedded by this call (0 when everything came from the cache)
    reused: bool  # the index already existed: nothing was embedded or built
    seconds: float
    object_digest: str = ""
    backend: str = (
        "torch"  # embedding backend (torch | onnx | openvino) and quantization (none | int8)
    )
    quantize: str = "none"
    precision: str = "f32"  # inference precision (f32 | bf16: openvino)
    device: str | None = None  # where this call embedded chunks (None: nothing embedded)
    engine: str = "local"  # local | ray: what embedded the missing chunks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    doc_id: str
    chunk_index: int
    score: float
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    hits: list[list[Hit]]
    latencies: list[float]  # seconds per query (see Retriever.search: per-query or per-batch)
    batch_size: int = 32
    extra: dict[str, Any] = field(default_factory=dict)


class Retriever:
    """A loaded index plus the embedder that made it."""

    def __init__(
        self,
        info: IndexInfo,
        index: Any,
        doc_ids: Sequence[str],
        chunk_index: Sequence[int],
        embedder: Embedder,
        texts: Callable[[], Sequence[str]] | None = None,
        exact: Callable[[np.ndarray, int], tuple[Any, Any]] | None = None,
        chunked: bool | None = None,
    ) -> None:
        self.info = info
        # for a non-exact (ANN) index: exhaustive search over the same rows' cached vectors,
        # called like faiss.Index.search (what ann_recall@k is measured against)
        self.exact = exact
        self.index = index
        self.doc_ids = doc_ids
        self.chunk_index = chunk_index
        self.embedder = embedder
        self._texts_loader = texts
        # loaded on the first text asked for: a JSON list (flat), or a lazy sequence
        # decoding one row at a time (genreg.retrieval.texttable.TextTable: on-disk indexes)
        self._texts: Sequence[str] | None = None
        # some document has several rows (None: computed from doc_ids, which a lazy
        # sequence such as genreg.retrieval.rowids.DocIds passes in to avoid)
        self.chunked = len(set(doc_ids)) < len(doc_ids) if chunked is None else chunked

    def __len__(self) -> int:
        return len(self.doc_ids)

    def text(self, row: int) -> str | None:
        if self._texts is None and self._texts_loader is not None:
            self._texts = self._texts_loader()
        return None if self._texts is None else self._texts[row]

    def search(
        self,
        queries: list[str],
        k: int,
        *,
        batch_size: int = 32,
        with_text: bool = False,
        latency: str = "per-batch",
        progress: Any = None,
    ) -> SearchResult:
        """Top-``k`` documents per query, best first, with a latency per query.

        ``latency="per-query"`` (what ``eval run`` uses by default): each query is embedded and
        searched on its own and timed alone (embedding + search + collapsing chunks), the
        latency one request sees; building the hits is left out of the timing.
        ``"per-batch"`` (the default here): queries are embedded and searched ``batch_size``
        at a time (faster in total) and each query gets its batch's time divided by the batch
        size, so percentiles within a batch are equal.
        ``progress(stage, done, total)``: a "search" stage (and the model-loading line of the
        first batch when the weights are not loaded yet)."""
        hits: list[list[Hit]] = []
        latencies: list[float] = []
        n = len(queries)
        bs = 1 if latency == "per-query" else max(1, batch_size)
        if progress is not None:
            progress("search", 0, n)
        for start in range(0, n, bs):
            batch = list(queries[start : start + bs])
            t0 = time.perf_counter()
            q = self.embedder.encode(batch, batch_size=bs, progress=_loading_only(progress))
            found = self._search_rows(q, k)
            dt = time.perf_counter() - t0
            latencies.extend([dt / len(batch)] * len(batch))
            hits.extend(self._to_hits(rows, with_text) for rows in found)
            if progress is not None:
                progress("search", len(hits), n)
        flush = getattr(self.embedder, "flush", None)
        if flush is not None:  # new query vectors go to the query-embedding cache
            flush()
        return SearchResult(hits=hits, latencies=latencies, batch_size=bs)

    def search_vectors(
        self, vectors: np.ndarray, k: int, *, with_text: bool = False
    ) -> list[list[Hit]]:
        """Like :meth:`search` for already-embedded (normalised) query vectors."""
        return [self._to_hits(rows, with_text) for rows in self._search_rows(vectors, k)]

    def exact_search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """Like :meth:`search_vectors` by exhaustive search (``exact`` must be set)."""
        assert self.exact is not None, "no exact search for this index"
        return [self._to_hits(rows, False) for rows in self._search_rows(vectors, k, self.exact)]

    def _to_hits(self, rows: list[tuple[int, float]], with_text: bool) -> list[Hit]:
        return [
            Hit(self.doc_ids[r], self.chunk_index[r], s, self.text(r) if with_text else None)
            for r, s in rows
        ]

    def _search_rows(
        self, q: np.ndarray, k: int, search: Callable[..., Any] | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` (row, score) pairs of distinct documents, best first."""
        import numpy as np

        search = search or self.index.search

        n = int(self.index.ntotal)
        out: list[list[tuple[int, float]]] = [[] for _ in range(len(q))]
        if k <= 0 or n == 0 or len(q) == 0:
            return out
        fetch = min(n, k * OVERFETCH if self.chunked else k)
        todo = list(range(len(q)))
        x = np.ascontiguousarray(q, dtype=np.float32)
        while todo:
            scores, rows = search(x[todo], fetch)
            retry = []
            for j, qi in enumerate(todo):
                picked: list[tuple[int, float]] = []
                seen: set[str] = set()
                for r, s in zip(rows[j], scores[j], strict=True):
                    if r < 0:
                        continue
                    doc = self.doc_ids[r]
                    if doc in seen:
                        continue
                    seen.add(doc)
                    picked.append((int(r), float(s)))
                    if len(picked) == k:
                        break
                out[qi] = picked
                if len(picked) < k and fetch < n:
                    retry.append(qi)
            todo = retry
            fetch = min(n, fetch * OVERFETCH)
        return out


def _loading_only(progress: Any) -> Any:
    """Pass the embedder's model-loading line through, not its per-batch "embedding" stage
    (query embedding is part of the "search" stage)."""
    if progress is None:
        return None

    def relay(stage: str, done: int, total: int | None) -> None:
        if stage.startswith("loading "):
            progress(stage, done, total)

    return relay
