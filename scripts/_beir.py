"""A BEIR-format collection (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) read
the same way by every script that needs one (``check_scifact.py``, ``bench_embedding.py``).
Imported as ``_beir`` (a script's own directory is first on ``sys.path``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def load_beir(
    data: Path, split: str = "test"
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, dict[str, int]]]:
    """(documents in corpus order, query id -> text, query id -> {doc id: relevance})."""
    docs = _jsonl(data / "corpus.jsonl")
    queries = {str(q["_id"]): q["text"] for q in _jsonl(data / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    lines = (data / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        q, d, s = line.split("\t")[:3]
        if i == 0 and q == "query-id":
            continue
        qrels.setdefault(q, {})[d] = int(s)
    return docs, queries, qrels
