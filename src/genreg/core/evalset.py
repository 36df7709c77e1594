"""Gold eval sets: JSONL rows ``{id, query, relevant, answer?, tags?, split?}``.

``relevant`` is a list of doc ids (binary, each relevance 1) or a map doc id -> graded
relevance (int >= 0; 0 means judged non-relevant). Canonical form (what is hashed): each row
as canonical JSON (``id`` as a string, a binary list sorted), rows sorted by ``id``, joined by
``\\n`` with a trailing newline. Also imports the BEIR layout (``queries.jsonl`` +
``qrels/<split>.tsv``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genreg.core.hashing import canonical_json
from genreg.core.inputs import check_value, load_json
from genreg.core.validation import read_bytes, read_text, schema_errors, split_lines
from genreg.errors import InvalidArtifact


@dataclass
class EvalSet:
    rows: list[dict[str, Any]]  # canonical rows, sorted by id

    def to_bytes(self) -> bytes:
        return b"".join(canonical_json(r) + b"\n" for r in self.rows)

    @classmethod
    def from_bytes(cls, data: bytes) -> EvalSet:
        return cls([json.loads(line) for line in split_lines(data.decode("utf-8")) if line])

    def splits(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            s = r.get("split") or ""
            out[s] = out.get(s, 0) + 1
        return dict(sorted(out.items()))

    def select(self, split: str | None) -> EvalSet:
        """Rows of one split. An unknown split is an error, never an empty eval set."""
        if split is None:
            return self
        rows = [r for r in self.rows if r.get("split") == split]
        if not rows:
            known = ", ".join(s for s in self.splits() if s) or "none"
            raise InvalidArtifact(f"eval set has no split {split!r} (splits: {known})")
        return EvalSet(rows)

    def qrels(self) -> dict[str, dict[str, int]]:
        """``{query id: {doc id: relevance}}`` as trec_eval reads judgments."""
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            rel = r["relevant"]
            out[r["id"]] = {d: 1 for d in rel} if isinstance(rel, list) else dict(rel)
        return out

    def summary(self) -> dict[str, Any]:
        judged = sum(len(r["relevant"]) for r in self.rows)
        return {"rows": len(self.rows), "judgments": judged, "splits": self.splits()}


def canonical_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["id"] = str(row["id"])
    rel = row["relevant"]
    out["relevant"] = sorted(rel) if isinstance(rel, list) else dict(sorted(rel.items()))
    return out


def build(rows: Iterable[tuple[str, int, dict[str, Any]]]) -> EvalSet:
    """Validate rows given as (file, line, row); refuse duplicates and empty sets."""
    seen: dict[str, str] = {}
    out = []
    for where, line, row in rows:
        loc = f"{where}:{line}"
        check_value(row, loc)
        errors = schema_errors("evalset-row", row)
        if errors:
            raise InvalidArtifact(f"{loc}: {errors[0]}", details={"errors": errors, "line": line})
        row = canonical_row(row)
        if row["id"] in seen:
            raise InvalidArtifact(
                f"{loc}: duplicate id {row['id']!r} (first at {seen[row['id']]})",
                details={"line": line, "field": "id"},
            )
        seen[row["id"]] = loc
        out.append(row)
    if not out:
        raise InvalidArtifact("eval set has no rows")
    out.sort(key=lambda r: r["id"])
    return EvalSet(out)


def parse_jsonl(path: Path) -> EvalSet:
    text = read_text(path, "evalset")
    rows = []
    for i, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        row = load_json(line, str(path), line=i)
        if not isinstance(row, dict):
            raise InvalidArtifact(f"{path}:{i}: each line must be a JSON object")
        rows.append((str(path), i, row))
    return build(rows)


def parse_beir(root: Path) -> EvalSet:
    """BEIR layout: ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv``."""
    qpath = root / "queries.jsonl"
    qdir = root / "qrels"
    if not qpath.is_file() or not qdir.is_dir():
        raise InvalidArtifact(f"{root}: not a BEIR directory (needs queries.jsonl and qrels/)")
    queries: dict[str, tuple[str, int]] = {}
    for i, line in enumerate(split_lines(read_text(qpath, "evalset")), start=1):
        if not line.strip():
            continue
        q = load_json(line, str(qpath), line=i)
        try:
            queries[str(q["_id"])] = (q["text"], i)
        except (KeyError, TypeError):
            raise InvalidArtifact(
                f"{qpath}:{i}: expected a JSON object with _id and text"
            ) from None
    judgments: dict[str, dict[str, int]] = {}
    split_of: dict[str, str] = {}
    where_of: dict[str, tuple[str, int]] = {}
    tsvs = sorted(qdir.glob("*.tsv"))
    if not tsvs:
        raise InvalidArtifact(f"{qdir}: no <split>.tsv files")
    for tsv in tsvs:
        split = tsv.stem
        raw = read_bytes(tsv, "evalset")
        try:
            tsv_text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[: exc.start].count(b"\n") + 1
            raise InvalidArtifact(f"{tsv}:{bad}: not valid UTF-8 (byte {exc.start})") from None
        if "\x00" in tsv_text:
            bad = tsv_text[: tsv_text.index("\x00")].count("\n") + 1
            raise InvalidArtifact(f"{tsv}:{bad}: NUL byte in a qrels file")
        with io.StringIO(tsv_text.removeprefix("\ufeff"), newline="") as fh:
            for i, rec in enumerate(csv.reader(fh, delimiter="\t"), start=1):
                if not rec or (i == 1 and rec[0] == "query-id"):
                    continue
                if len(rec) < 3:
                    raise InvalidArtifact(f"{tsv}:{i}: expected query-id, corpus-id, score")
                qid, did, score = rec[0], rec[1], rec[2]
                try:
                    rel = int(score)
                except ValueError:
                    raise InvalidArtifact(f"{tsv}:{i}: score {score!r} is not an integer") from None
                if qid not in queries:
                    raise InvalidArtifact(f"{tsv}:{i}: query {qid!r} is not in queries.jsonl")
                if split_of.setdefault(qid, split) != split:
                    raise InvalidArtifact(
                        f"{tsv}:{i}: query {qid!r} is judged in splits {split_of[qid]!r} and {split!r}"
                    )
                if did in judgments.setdefault(qid, {}):
                    raise InvalidArtifact(f"{tsv}:{i}: duplicate judgment {qid} {did}")
                judgments[qid][did] = rel
                where_of.setdefault(qid, (str(tsv), i))
    rows: list[tuple[str, int, dict[str, Any]]] = []
    for qid, rels in judgments.items():
        text, _ = queries[qid]
        f, ln = where_of[qid]
        rows.append((f, ln, {"id": qid, "query": text, "relevant": rels, "split": split_of[qid]}))
    return build(rows)


def parse_evalset(path: Path) -> EvalSet:
    return parse_beir(path) if path.is_dir() else parse_jsonl(path)


def diff_rows(a: EvalSet, b: EvalSet) -> dict[str, list[str]]:
    """Row ids added, removed and changed from ``a`` to ``b``."""
    ia = {r["id"]: r for r in a.rows}
    ib = {r["id"]: r for r in b.rows}
    return {
        "added": sorted(set(ib) - set(ia)),
        "removed": sorted(set(ia) - set(ib)),
        "changed": sorted(k for k in set(ia) & set(ib) if ia[k] != ib[k]),
    }
