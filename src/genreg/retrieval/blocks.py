"""The block plan every embedding engine follows, so a model whose vectors depend on the
batch a text is embedded in (padding to the batch's longest text) still gives the same
vectors in-process and on Ray.

The distinct chunks of a snapshot -- cached or not -- are ordered longest first (ties in
first-seen order) and cut into *blocks* of ``batch_size x 32`` texts; a block with missing
chunks is embedded by one ``encode(texts, batch_size=batch_size)`` call over exactly its
missing texts, in that order (:func:`plan_blocks` for a flat build's lists, :func:`row_blocks`
for an on-disk build's table rows). The plan depends only on the snapshot's chunks and on
which are cached, so a re-run after a killed job embeds the blocks the first run planned.

In-process (:func:`embed_blocks`) the finished blocks are written as cache shards of at most
``SHARD_MAX`` vectors, each shard whole blocks; the Ray engine
(:mod:`genreg.retrieval.ray_engine`) writes one shard per block. Only the shard layout
differs, never a vector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genreg.retrieval.cache import EmbeddingCache

Progress = Callable[[str, int, int | None], None]
BLOCK_BATCHES = 32  # a block is this many batches


def block_size(batch_size: int) -> int:
    """Texts in a block for this ``batch_size`` (texts per model call): never more than one
    cache shard holds, so a block is always cached whole."""
    from genreg.retrieval.cache import SHARD_MAX

    return min(max(int(batch_size), 1) * BLOCK_BATCHES, SHARD_MAX)


def embed_order(lengths: Any) -> Any:
    """The embedding order of texts of these ``lengths`` (characters): longest first, ties
    in first-seen order (an ``int64`` array of positions)."""
    import numpy as np

    n = np.asarray(lengths, dtype=np.int64)
    return np.argsort(-n, kind="stable")


def plan_blocks(
    digests: list[str], texts: list[str], missing: set[str], block: int
) -> list[dict[str, Any]]:
    """The blocks to embed: distinct chunks in embedding order (longest first, ties
    first-seen), cut every ``block`` texts; of each block only its missing chunks, and only
    blocks that have one (``{"block", "digests", "texts"}``)."""
    seen: dict[str, str] = {}
    for d, t in zip(digests, texts, strict=True):
        seen.setdefault(d, t)
    items = list(seen.items())
    order = embed_order([len(t) for _, t in items])
    out = []
    for b, start in enumerate(range(0, len(order), block)):
        rows = [items[i] for i in order[start : start + block] if items[i][0] in missing]
        if rows:
            out.append({"block": b, "digests": [d for d, _ in rows], "texts": [t for _, t in rows]})
    return out


def row_blocks(
    rows: Any, lengths: Any, missing: Any, block: int
) -> tuple[Any, list[dict[str, int]]]:
    """:func:`plan_blocks` for distinct chunks given as table rows (``rows``, first-seen
    order), their text ``lengths`` and which are ``missing`` (a bool per row): the missing
    rows in embedding order (``int64``, 8 bytes a row) and each block that has one as a
    ``(lo, hi)`` range of them -- the blocks cut over all the distinct chunks."""
    import numpy as np

    perm = embed_order(lengths)
    miss = np.asarray(missing, dtype=bool)[perm]
    order = np.asarray(rows, dtype=np.int64)[perm][miss]
    cum = np.zeros(len(miss) + 1, dtype=np.int64)
    np.cumsum(miss, out=cum[1:])
    ranges = []
    for b, start in enumerate(range(0, len(miss), block)):
        lo, hi = int(cum[start]), int(cum[min(start + block, len(miss))])
        if hi > lo:
            ranges.append({"block": b, "lo": lo, "hi": hi})
    return order, ranges


def embed_blocks(
    emb: Any,
    blocks: Iterable[tuple[list[str], list[str]]],
    total: int,
    cache: EmbeddingCache,
    batch_size: int,
    progress: Progress | None = None,
) -> int:
    """Embed ``blocks`` (each ``(digests, texts)``, as planned above) in-process: one
    ``emb.encode(texts, batch_size=batch_size)`` call per block, exactly as a Ray actor
    calls it; finished blocks are added to ``cache`` as shards of at most ``SHARD_MAX``
    vectors, whole blocks each (a killed job leaves only complete blocks cached). One
    ``embedding`` bar over ``total`` texts. Returns the vectors embedded."""
    import numpy as np

    from genreg.retrieval import cache as cache_mod

    shard_max = cache_mod.SHARD_MAX
    done = 0
    pend_d: list[str] = []
    pend_v: list[Any] = []

    def flush() -> None:
        if pend_d:
            cache.add(list(pend_d), np.concatenate(pend_v) if len(pend_v) > 1 else pend_v[0])
            pend_d.clear()
            pend_v.clear()

    if progress is not None:
        progress("embedding", 0, total)
    for ds, ts in blocks:
        base = done

        def step(stage: str, n: int, of: int | None, base: int = base) -> None:
            # the embedder's own bar for this call becomes part of the one bar
            if progress is not None:
                if stage == "embedding":
                    progress("embedding", base + n, total)
                else:
                    progress(stage, n, of)

        vecs = np.asarray(
            emb.encode(ts, batch_size=batch_size, progress=step if progress else None),
            dtype=np.float32,
        )
        if len(pend_d) + len(ds) > shard_max:
            flush()
        pend_d.extend(ds)
        pend_v.append(vecs)
        done += len(ds)
        if len(pend_d) >= shard_max:
            flush()
        if progress is not None:
            progress("embedding", done, total)
    flush()
    return done
