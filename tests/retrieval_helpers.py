"""Test helpers for retrieval: a tiny deterministic embedder (hashing trick over words).

Only for unit tests of logic unrelated to embedding quality (caching, reuse, collapsing);
the end-to-end test uses the real packaged model.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genreg.core.hashing import digest_bytes


@dataclass(frozen=True)
class Doc:
    doc_id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)

    def embed_text(self) -> str:
        return (self.title + " " + self.text).strip()


class HashEmbedder:
    """Bag-of-words hashing embedder; counts the texts it embeds in ``encoded``."""

    tokenizer: Any = None

    def __init__(self, dim: int = 64, salt: str = "v1") -> None:
        self.name = f"hash-{dim}-{salt}"
        self.digest = digest_bytes(self.name.encode())
        self.dim = dim
        self.encoded = 0
        self.calls = 0

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> np.ndarray:
        self.calls += 1
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0
            if not out[i].any():
                out[i, 0] = 1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out
