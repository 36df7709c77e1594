"""``genreg eval score --answers FILE.jsonl``: bring-your-own generator.

Rows ``{"id": query id, "answer": text, "contexts"?: [text, ...], "usage"?: {...}}``, one
JSON object per line. The ``read-answers`` stage sets each record's ``answer`` (and ``usage``
/ ``contexts`` when given) and its answer metrics, exactly as the generate stage does; eval-set
queries missing from the file score 0 (counted as ``missing``), rows naming an unknown query
id are a config error naming ``file:line``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genreg.core.answers import ANSWER_METRICS, gold_answers, score_answer
from genreg.core.hashing import digest_bytes
from genreg.core.validation import split_lines
from genreg.errors import ConfigError
from genreg.pipeline.records import Progress, RunState


def read_answers(path: Path) -> dict[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read answers file ({exc.strerror})") from None
    out: dict[str, dict[str, Any]] = {}
    # "\n" only: str.splitlines() would also cut inside an answer at U+2028/U+2029/U+0085
    for n, line in enumerate(split_lines(text.removeprefix("\ufeff")), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{n}: invalid JSON ({exc})") from None
        if not isinstance(row, dict) or "id" not in row:
            raise ConfigError(f"{path}:{n}: expected an object with 'id' and 'answer'")
        if not isinstance(row.get("answer"), str):
            raise ConfigError(f"{path}:{n}: answer: must be a string")
        ctx = row.get("contexts")
        if ctx is not None and not (isinstance(ctx, list) and all(isinstance(c, str) for c in ctx)):
            raise ConfigError(f"{path}:{n}: contexts: must be a list of strings")
        if row.get("usage") is not None and not isinstance(row["usage"], dict):
            raise ConfigError(f"{path}:{n}: usage: must be an object")
        qid = str(row["id"])
        if qid in out:
            raise ConfigError(f"{path}:{n}: duplicate id {qid!r}")
        out[qid] = {**row, "_line": n}
    return out


class ReadAnswers:
    name = "read-answers"

    def __init__(self, path: Path, metrics: list[str] | None = None) -> None:
        self.path = Path(path)
        self.metrics = list(metrics or ANSWER_METRICS)
        self._rows: dict[str, dict[str, Any]] = {}

    def prepare(self, state: RunState) -> None:
        self._rows = read_answers(self.path)
        known = {r.id for r in state.records}
        for qid, row in self._rows.items():
            if qid not in known:
                raise ConfigError(
                    f"{self.path}:{row['_line']}: id {qid!r} is not a query of {state.request.evalset}"
                )
        for m in self.metrics:
            if m not in state.metric_names:
                state.metric_names.append(m)
            state.stage_metrics.add(m)
        state.lineage["extra"] = {
            **state.lineage.get("extra", {}),
            "answers_file": digest_bytes(self.path.read_bytes()),
            "answers_file_path": str(self.path),
        }

    def run(self, state: RunState, progress: Progress | None) -> None:
        missing, no_gold = 0, 0
        for rec in state.records:
            row = self._rows.get(rec.id)
            if row is None:
                missing += 1
            else:
                rec.answer = row["answer"]
                if row.get("usage") is not None:
                    rec.usage = row["usage"]
                if row.get("contexts") is not None:
                    rec.extra["contexts"] = row["contexts"]
            golds = gold_answers(rec.row)
            if not golds:
                no_gold += 1
                continue
            for m in self.metrics:
                rec.metrics[m] = score_answer(m, rec.answer, golds)
        state.report["answers"] = {
            "file": str(self.path),
            "rows": len(self._rows),
            "missing": missing,
            "no_gold": no_gold,
        }
