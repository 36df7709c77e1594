"""Small factories for the eval/runs tests: an eval set and run files, no embedding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROWS = [
    {"id": "q1", "query": "how do refunds work", "relevant": {"d1": 2, "d2": 1}, "split": "test"},
    {"id": "q2", "query": "reset my password", "relevant": ["d3"], "split": "test"},
    {"id": "q3", "query": "error 503 on upload", "relevant": {"d4": 1, "d9": 0}, "split": "test"},
    {"id": "q4", "query": "vpc peering limits", "relevant": ["d5"], "split": "dev"},
]
# A good run (relevant docs first) and a worse one (relevant docs pushed down).
GOOD = {"q1": ["d1", "d2", "d7"], "q2": ["d3", "d8"], "q3": ["d4", "d9"], "q4": ["d5"]}
BAD = {"q1": ["d7", "d2", "d1"], "q2": ["d8", "d6", "d3"], "q3": ["d9", "d6"], "q4": ["d6"]}


def add_evalset(registry: Any, name: str = "gold", rows: list[dict[str, Any]] | None = None) -> Any:
    return registry.register_content("evalset", name, rows or ROWS).version


def trec(path: Path, ranked: dict[str, list[str]], tag: str = "sys") -> Path:
    lines = []
    for q, docs in ranked.items():
        for i, d in enumerate(docs, start=1):
            lines.append(f"{q} Q0 {d} {i} {10.0 - i:.3f} {tag}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def jsonl(path: Path, ranked: dict[str, list[str]]) -> Path:
    rows = [
        {"qid": q, "docid": d, "score": 10.0 - i}
        for q, docs in ranked.items()
        for i, d in enumerate(docs, start=1)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
