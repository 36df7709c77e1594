"""Retrieval: chunking, embedders, the embedding cache and FAISS indexes.

Everything heavy (numpy, faiss, torch, sentence-transformers) is imported lazily, inside the
functions that need it, so importing this package costs nothing.

- :mod:`genreg.retrieval.chunking` -- :class:`ChunkingSpec`, :class:`Chunk`, :func:`iter_chunks`
- :mod:`genreg.retrieval.embedders` -- :func:`load_embedder`, :class:`Embedder`
- :mod:`genreg.retrieval.cache` -- :class:`EmbeddingCache` (float32 shards in the object store)
- :mod:`genreg.retrieval.index` -- :class:`IndexSpec`, FAISS build and (de)serialisation
- :mod:`genreg.retrieval.retriever` -- :class:`Retriever`, :class:`IndexInfo`, :class:`Hit`,
  :class:`SearchResult`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genreg.retrieval.chunking import Chunk, ChunkingSpec
from genreg.retrieval.index import IndexSpec
from genreg.retrieval.retriever import Hit, IndexInfo, Retriever, SearchResult

if TYPE_CHECKING:
    from genreg.retrieval.embedders import Embedder


def load_embedder(name: str | None = None, **kw: Any) -> Embedder:
    """See :func:`genreg.retrieval.embedders.load_embedder`."""
    from genreg.retrieval.embedders import load_embedder as _load

    return _load(name, **kw)


__all__ = [
    "Chunk",
    "ChunkingSpec",
    "Hit",
    "IndexInfo",
    "IndexSpec",
    "Retriever",
    "SearchResult",
    "load_embedder",
]
