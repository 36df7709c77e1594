"""Deterministic chunking of documents into the texts that get embedded.

Three modes, described by :class:`ChunkingSpec` (whose canonical ``to_dict()`` goes into
index keys and run lineage):

- ``none``: one chunk per document, the whole ``title + " " + text`` (how BEIR scores are
  published; the model truncates to its own maximum sequence length);
- ``chars``: windows of ``size`` characters, each starting ``size - overlap`` after the last;
- ``tokens``: windows of ``size`` tokens of the embedding model's tokenizer (offsets map the
  windows back to the original text, so a chunk is a verbatim slice of the document).

A :class:`Chunk` carries the sha256 of its text, which keys the embedding cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from genreg.errors import ConfigError
from genreg.retrieval.specs import json_object_or_text

MODES = ("none", "chars", "tokens")


class DocumentLike(Protocol):
    """What chunking needs from a document (``genreg.core.corpus.Document`` fits)."""

    @property
    def doc_id(self) -> str: ...

    def embed_text(self) -> str: ...


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    chunk_index: int
    text: str
    digest: str  # bare sha256 hex of the UTF-8 text

    @classmethod
    def of(cls, doc_id: str, chunk_index: int, text: str) -> Chunk:
        return cls(doc_id, chunk_index, text, text_digest(text))


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChunkingSpec:
    by: str = "none"
    size: int = 0
    overlap: int = 0

    @classmethod
    def parse(cls, value: str | dict[str, Any] | ChunkingSpec | None) -> ChunkingSpec:
        """``None``/``"none"``, ``"chars:512:64"``, ``"tokens:256:32"`` (overlap optional),
        a JSON object string, or a dict ``{"by": ..., "size": ..., "overlap": ...}``."""
        if value is None or isinstance(value, ChunkingSpec):
            return value or cls()
        if isinstance(value, str):
            value = json_object_or_text(value, "--chunking")
            if isinstance(value, str):
                text = value
                parts = text.split(":")
                if parts[0] == "none" and len(parts) == 1:
                    return cls()
                if parts[0] not in ("chars", "tokens") or len(parts) not in (2, 3):
                    raise ConfigError(
                        f"--chunking {text!r}: expected none, chars:SIZE[:OVERLAP] "
                        "or tokens:SIZE[:OVERLAP]"
                    )
                try:
                    nums = [int(p) for p in parts[1:]]
                except ValueError:
                    raise ConfigError(
                        f"--chunking {text!r}: SIZE and OVERLAP are integers"
                    ) from None
                value = {
                    "by": parts[0],
                    "size": nums[0],
                    "overlap": nums[1] if len(nums) > 1 else 0,
                }
        if not isinstance(value, dict):
            raise ConfigError(f"chunking {value!r}: expected a string or an object")
        unknown = set(value) - {"by", "size", "overlap"}
        if unknown:
            raise ConfigError(f"chunking: unknown field {sorted(unknown)[0]!r}")
        by = value.get("by", "none")
        if by not in MODES:
            raise ConfigError(f"chunking.by {by!r}: expected one of {', '.join(MODES)}")
        if by == "none":
            return cls()
        size, overlap = value.get("size"), value.get("overlap", 0)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ConfigError(f"chunking.size {size!r}: expected a positive integer")
        if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap < size:
            raise ConfigError(f"chunking.overlap {overlap!r}: expected 0 <= overlap < size")
        return cls(by, size, overlap)

    def to_dict(self) -> dict[str, Any]:
        if self.by == "none":
            return {"by": "none"}
        return {"by": self.by, "size": self.size, "overlap": self.overlap}

    def __str__(self) -> str:
        return "none" if self.by == "none" else f"{self.by}:{self.size}:{self.overlap}"

    @property
    def needs_tokenizer(self) -> bool:
        return self.by == "tokens"


def _windows(n: int, size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` windows covering ``range(n)``; the last one ends at ``n``."""
    step = size - overlap
    start = 0
    while True:
        end = min(start + size, n)
        yield start, end
        if end >= n:
            return
        start += step


def chunk_text_chars(text: str, size: int, overlap: int) -> list[str]:
    if not text:
        return [""]
    return [text[a:b] for a, b in _windows(len(text), size, overlap)]


def chunk_text_tokens(
    text: str, offsets: list[tuple[int, int]], size: int, overlap: int
) -> list[str]:
    """Slice ``text`` into windows of ``size`` tokens given each token's character offsets."""
    if not offsets:
        return [text]
    return [
        text[offsets[a][0] : offsets[b - 1][1]] for a, b in _windows(len(offsets), size, overlap)
    ]


def _token_offsets(tokenizer: Any, texts: list[str]) -> list[list[tuple[int, int]]]:
    enc = tokenizer(
        texts,
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
        truncation=False,
        verbose=False,
    )
    return [[(int(a), int(b)) for a, b in offs] for offs in enc["offset_mapping"]]


def iter_chunks(
    docs: Iterable[DocumentLike],
    spec: ChunkingSpec,
    *,
    tokenizer: Any = None,
    batch: int = 256,
) -> Iterator[Chunk]:
    """Chunks of ``docs`` in document order, then chunk order. Deterministic: the same
    documents, spec and tokenizer always give the same chunks. ``tokenizer`` (a Hugging Face
    fast tokenizer) is required for ``by: tokens``."""
    if spec.by == "none":
        for d in docs:
            yield Chunk.of(d.doc_id, 0, d.embed_text())
        return
    if spec.by == "chars":
        for d in docs:
            for i, t in enumerate(chunk_text_chars(d.embed_text(), spec.size, spec.overlap)):
                yield Chunk.of(d.doc_id, i, t)
        return
    if tokenizer is None:
        raise ConfigError("chunking by tokens needs the embedding model's tokenizer")
    pending: list[tuple[str, str]] = []

    def flush() -> Iterator[Chunk]:
        offsets = _token_offsets(tokenizer, [t for _, t in pending])
        for (doc_id, text), offs in zip(pending, offsets, strict=True):
            for i, t in enumerate(chunk_text_tokens(text, offs, spec.size, spec.overlap)):
                yield Chunk.of(doc_id, i, t)
        pending.clear()

    for d in docs:
        pending.append((d.doc_id, d.embed_text()))
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()
