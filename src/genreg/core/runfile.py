"""Run files from any retriever: TREC run format or JSONL, read into ``{qid: {docid: score}}``.

TREC run format: one result per line, ``qid Q0 docid rank score tag`` separated by
whitespace. JSONL: one object per line, either one result per row
``{"qid": ..., "docid": ..., "score": ...}`` or one query per row
``{"qid": ..., "results": [{"docid": ..., "score": ...}, ...]}`` (the two may be mixed).
The format is JSONL when the file name ends in ``.jsonl``/``.json`` or its first non-blank
line starts with ``{``; otherwise TREC.

**Ranks are never loaded as truth**: like trec_eval, genreg re-sorts each query's results by
score (ties by doc id descending, see :func:`genreg.core.metrics.rank`), so the rank column
(and any ``rank`` key in JSONL) is ignored. A file whose ranks disagree with its scores is
scored by its scores.

Errors are :class:`~genreg.errors.InvalidArtifact` naming ``file:line``: a malformed line, a
non-numeric, NaN or infinite score, a doc id listed twice for one query, an empty file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genreg.core.inputs import load_json
from genreg.errors import ConfigError, InvalidArtifact

Run = dict[str, dict[str, float]]
_SPACE = re.compile(r"\s")
_INF = (math.inf, -math.inf)


def read_run(path: Path | str) -> Run:
    """Read a TREC or JSONL run file into ``{qid: {docid: score}}``."""
    return read_run_bytes(path)[0]


def read_run_bytes(path: Path | str) -> tuple[Run, bytes]:
    """The parsed run and the file's bytes (read once: the digest is of what was parsed).

    A UTF-8 byte order mark is stripped (as the eval-set reader does: otherwise it becomes
    part of the first query id, which then silently scores 0). Lines are split on ``\\n``
    only. Devices and FIFOs are refused."""
    from genreg.core.validation import read_bytes, split_lines

    path = Path(path)
    try:
        data = read_bytes(path, "runfile")
    except InvalidArtifact as exc:
        if "file not found" in exc.message:
            raise InvalidArtifact(f"{path}: run file not found") from None
        raise
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidArtifact(f"{path}: run file is not UTF-8 ({e.reason})") from None
    lines = split_lines(text.removeprefix("\ufeff"))
    first = next((ln.strip() for ln in lines if ln.strip()), None)
    if first is None:
        raise InvalidArtifact(f"{path}:1: run file is empty (no results)")
    jsonl = path.suffix.lower() in (".jsonl", ".json") or first.startswith("{")
    run = _read_jsonl(path, lines) if jsonl else _read_trec(path, lines)
    if not run:
        raise InvalidArtifact(f"{path}:1: run file is empty (no results)")
    return run, data


def _duplicate(path: Path, lineno: int, qid: str, docid: str, first: int) -> InvalidArtifact:
    return InvalidArtifact(
        f"{path}:{lineno}: duplicate doc {docid!r} for query {qid!r} (first at line {first})"
    )


def _score(path: Path, lineno: int, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidArtifact(f"{path}:{lineno}: score {value!r} is not a number")
    try:
        score = float(value)
    except ValueError:
        raise InvalidArtifact(f"{path}:{lineno}: score {value!r} is not a number") from None
    if math.isnan(score):
        raise InvalidArtifact(f"{path}:{lineno}: score is NaN")
    if math.isinf(score):
        raise InvalidArtifact(f"{path}:{lineno}: score is infinite (scores must be finite)")
    return score


def _read_trec(path: Path, lines: list[str]) -> Run:
    run: Run = {}
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) < 6:  # like trec_eval, text after the six standard fields is ignored
            if not fields:
                continue
            raise InvalidArtifact(
                f"{path}:{lineno}: expected 6 fields 'qid Q0 docid rank score tag',"
                f" got {len(fields)}"
            )
        qid, _, docid, _, raw, _ = fields[:6]
        try:
            score = float(raw)
        except ValueError:
            raise InvalidArtifact(f"{path}:{lineno}: score {raw!r} is not a number") from None
        if score != score:
            raise InvalidArtifact(f"{path}:{lineno}: score is NaN")
        if score in _INF:
            raise InvalidArtifact(f"{path}:{lineno}: score is infinite (scores must be finite)")
        docs = run.get(qid)
        if docs is None:
            docs = run[qid] = {}
        elif docid in docs:
            first = next(
                i
                for i, ln in enumerate(lines, 1)
                if (f := ln.split()) and len(f) >= 6 and f[0] == qid and f[2] == docid
            )
            raise _duplicate(path, lineno, qid, docid, first)
        docs[docid] = score
    return run


def _id(path: Path, lineno: int, obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise InvalidArtifact(f"{path}:{lineno}: {key!r} must be a non-empty string")
    return str(value)


def _read_jsonl(path: Path, lines: list[str]) -> Run:
    run: Run = {}
    where: dict[tuple[str, str], int] = {}  # JSONL is the slower format anyway
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        obj = load_json(line, str(path), line=lineno)
        if not isinstance(obj, dict):
            raise InvalidArtifact(f"{path}:{lineno}: expected a JSON object")
        qid = _id(path, lineno, obj, "qid")
        if "results" in obj:
            results = obj["results"]
            if not isinstance(results, list):
                raise InvalidArtifact(f"{path}:{lineno}: 'results' must be a list")
        elif "score" in obj:
            results = [obj]
        else:
            raise InvalidArtifact(f"{path}:{lineno}: no 'score' (or 'results')")
        docs = run.setdefault(qid, {})
        for r in results:
            if not isinstance(r, dict) or "score" not in r:
                raise InvalidArtifact(f"{path}:{lineno}: each result needs 'docid' and 'score'")
            docid = _id(path, lineno, r, "docid")
            if docid in docs:
                raise _duplicate(path, lineno, qid, docid, where[(qid, docid)])
            docs[docid] = _score(path, lineno, r["score"])
            where[(qid, docid)] = lineno
    return run


def write_trec_run(
    run: Mapping[str, Mapping[str, float]], path: Path | str, tag: str = "genreg"
) -> None:
    """Write ``run`` in TREC format: queries sorted by id, results in trec_eval order with
    ranks 1..n, scores in their shortest round-tripping form. Written atomically."""
    path = Path(path)
    if not tag or any(c.isspace() for c in tag):
        raise ConfigError(f"run tag {tag!r} must be a non-empty word without whitespace")
    out: list[str] = []
    for qid in sorted(run):
        _check_id("query id", qid)
        scores = run[qid]
        ordered = sorted(zip(scores.values(), scores.keys()), reverse=True)  # trec_eval order
        for i, (score, docid) in enumerate(ordered, 1):
            _check_id("doc id", docid)
            out.append(f"{qid} Q0 {docid} {i} {float(score)!r} {tag}\n")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(out), encoding="utf-8")
    os.replace(tmp, path)


def _check_id(what: str, value: str) -> None:
    if not value or _SPACE.search(value):
        raise InvalidArtifact(f"{what} {value!r} cannot be written to a TREC run file")


__all__ = ["read_run", "read_run_bytes", "write_trec_run"]
