"""Corpus snapshots: the document model, the canonical manifest and the layout.

A snapshot is a **manifest** whose sha256 is the snapshot (version) digest.

Canonical manifest form (``genreg-corpus/1``; ``tests/test_corpus_manifest.py`` pins it).
UTF-8 bytes, one line per item, each line terminated by ``\\n``::

    genreg-corpus/1
    <canonical JSON header>
    <canonical JSON [doc_id, sha256_hex, size, metadata]>     one line per document

- Canonical JSON is :func:`genreg.core.hashing.canonical_json` (sorted keys, no spaces,
  ``ensure_ascii=False``).
- The header is ``{"docs": N, "bytes": TOTAL, "fields": {"id":..,"text":..,"title":..},
  "layout": LAYOUT_HEX | null, "source": "tree" | "jsonl" | "beir"}``: the settings that
  decide how text is derived from stored bytes, plus the digest of the layout object (so a
  snapshot names exactly what ``corpus export`` restores). It never holds absolute paths,
  times or authors: the same content snapshotted anywhere gives the same digest.
- Document lines are sorted by ``doc_id`` in Unicode code-point order (Python ``sorted``).
  ``sha256_hex`` and ``size`` are of the **stored bytes** of the document: the raw file bytes
  for a file of a tree, the raw line (terminator included) for a JSONL record.
  ``metadata`` is ``{"format": FMT}`` with FMT one of ``text md html json record``.
- The snapshot digest is ``"sha256:" + sha256(manifest bytes)``; the manifest is stored as an
  object under that same hex, so ``object_digest`` equals the digest's hex.

Layout (``genreg-corpus-layout/1``, canonical JSON, stored as an object, null when every
document is a whole file): ``{"format": ..., "files": [{"path": REL, "records": [ENTRY...]}]}``
for each JSONL file in original order, ENTRY being a doc id or ``{"raw": LINE}`` for a blank
line, so ``export`` rebuilds each JSONL byte for byte. Whole files are written to their doc id.
"""

from __future__ import annotations

import builtins
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from genreg.core.hashing import canonical_json, sha256_hex
from genreg.core.types import VersionInfo
from genreg.errors import IntegrityError

MANIFEST_FORMAT = "genreg-corpus/1"
LAYOUT_FORMAT = "genreg-corpus-layout/1"
FORMATS = ("text", "md", "html", "json", "record")
Entry = tuple[str, str, int, str]  # (doc_id, sha256 hex, size, format)


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def embed_text(self) -> str:
        """The text to embed: ``(title + " " + text).strip()`` (the BEIR/MTEB convention)."""
        return (self.title + " " + self.text).strip()


@dataclass(frozen=True)
class Fields:
    id: str = "id"
    text: str = "text"
    title: str = "title"

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "text": self.text, "title": self.title}


@dataclass(frozen=True)
class Skipped:
    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "reason": self.reason}


@dataclass(frozen=True)
class SnapshotStats:
    docs: int
    bytes: int
    files: int
    hashed_files: int
    hashed_bytes: int
    new_docs: int
    new_bytes: int
    packs: int
    skipped: list[Skipped] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "skipped"}
        d["skipped"] = [s.to_dict() for s in self.skipped]
        return d


@dataclass(frozen=True)
class SnapshotResult:
    version: VersionInfo
    created: bool
    stats: SnapshotStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "status": "created" if self.created else "unchanged",
            **self.version.to_dict(),
            "stats": self.stats.to_dict(),
        }


@dataclass(frozen=True)
class ExportStats:
    ref: str
    out_dir: str
    files: int
    docs: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---- manifest ---------------------------------------------------------------------------
_META = {f: canonical_json({"format": f}).decode() for f in FORMATS}


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


def entry_line(e: Entry) -> str:
    """One canonical document line (equal to ``canonical_json([id, sha, size, meta])``)."""
    i = e[0]
    q = json.dumps(i, ensure_ascii=False) if _NEEDS_ESCAPE.search(i) else f'"{i}"'
    return f'[{q},"{e[1]}",{e[2]},{_META[e[3]]}]\n'


@dataclass
class Manifest:
    header: dict[str, Any]
    entries: list[Entry]  # sorted by doc_id

    @property
    def fields(self) -> Fields:
        return Fields(**self.header.get("fields", {}))

    @property
    def layout(self) -> str | None:
        layout = self.header.get("layout")
        return layout if isinstance(layout, str) else None

    @property
    def docs(self) -> int:
        return len(self.entries)

    @property
    def bytes(self) -> int:
        return sum(e[2] for e in self.entries)

    def to_bytes(self) -> builtins.bytes:  # `bytes` is the property above
        parts = [MANIFEST_FORMAT, "\n", canonical_json(self.header).decode(), "\n"]
        parts.extend(map(entry_line, self.entries))
        return "".join(parts).encode("utf-8")

    def formats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e[3]] = out.get(e[3], 0) + 1
        return dict(sorted(out.items()))


def build_manifest(
    entries: Iterable[Entry], *, source: str, fields: Fields, layout: str | None
) -> Manifest:
    es = sorted(entries)
    header = {
        "docs": len(es),
        "bytes": sum(e[2] for e in es),
        "fields": fields.to_dict(),
        "layout": layout,
        "source": source,
    }
    return Manifest(header, es)


def parse_manifest(data: bytes, where: str = "manifest") -> Manifest:
    try:
        text = data.decode("utf-8")
        first, _, rest = text.partition("\n")
        if first != MANIFEST_FORMAT:
            raise IntegrityError(f"{where}: not a {MANIFEST_FORMAT} manifest")
        head, _, body = rest.partition("\n")
        header = json.loads(head)
        rows = json.loads("[" + body.rstrip("\n").replace("\n", ",") + "]") if body else []
        return Manifest(header, [(r[0], r[1], r[2], r[3]["format"]) for r in rows])
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        raise IntegrityError(f"{where}: corrupt {MANIFEST_FORMAT} manifest") from None


def unsafe_rel(rel: str) -> str | None:
    """Why ``rel`` cannot be a document path of a tree, or None. One rule, applied when a
    tree is snapshotted and again when it is exported: a relative POSIX path, no ``..`` or
    ``.`` component, no empty component, no backslash (a path separator on Windows, so
    ``a\\b`` would land elsewhere there), no NUL or other control character."""
    if not rel:
        return "empty path"
    if rel.startswith("/"):
        return "absolute path"
    if "\\" in rel:
        return "backslash in the file name (not portable; rename the file)"
    if _CONTROL.search(rel):
        return "control character in the file name"
    parts = rel.split("/")
    if "" in parts or "." in parts or ".." in parts:
        return "'.', '..' or empty path component"
    return None


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def manifest_digest(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


# ---- layout -----------------------------------------------------------------------------
def layout_bytes(files: list[dict[str, Any]]) -> bytes:
    return canonical_json({"format": LAYOUT_FORMAT, "files": files})


def parse_layout(data: bytes) -> list[dict[str, Any]]:
    obj = json.loads(data)
    if obj.get("format") != LAYOUT_FORMAT:
        raise IntegrityError(f"not a {LAYOUT_FORMAT} layout object")
    files: list[dict[str, Any]] = obj["files"]
    return files


# ---- diff -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusDiff:
    a: str
    b: str
    a_digest: str
    b_digest: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int

    @property
    def identical(self) -> bool:
        return self.a_digest == self.b_digest

    @property
    def drifted(self) -> bool:
        return not self.identical

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "a_digest": self.a_digest,
            "b_digest": self.b_digest,
            "identical": self.identical,
            "counts": self.counts(),
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
        }


def diff_entries(a: list[Entry], b: list[Entry]) -> tuple[list[str], list[str], list[str], int]:
    """(added, removed, changed, unchanged) going from ``a`` to ``b`` (both sorted)."""
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    same = i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and a[i][0] < b[j][0]):
            removed.append(a[i][0])
            i += 1
        elif i >= len(a) or b[j][0] < a[i][0]:
            added.append(b[j][0])
            j += 1
        else:
            if a[i][1:] != b[j][1:]:
                changed.append(a[i][0])
            else:
                same += 1
            i += 1
            j += 1
    return added, removed, changed, same


# ---- text derivation (read time) --------------------------------------------------------
@functools.cache
def _stripper_class() -> Any:
    from html.parser import HTMLParser  # lazy: only HTML documents need it

    class _Stripper(HTMLParser):
        _SKIP = {"script", "style", "head"}

        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.title: list[str] = []
            self._stack: list[str] = []

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self._stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if tag in self._stack:
                while self._stack and self._stack.pop() != tag:
                    pass

        def handle_data(self, data: str) -> None:
            if "title" in self._stack:
                self.title.append(data)
            elif not self._SKIP.intersection(self._stack):
                self.parts.append(data)

    return _Stripper


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML document: tags stripped, scripts/styles dropped, whitespace
    collapsed (stdlib ``html.parser``)."""
    p = _stripper_class()()
    p.feed(html)
    p.close()
    title = " ".join("".join(p.title).split())
    text = " ".join("".join(p.parts).split())
    return title, text


def record_fields(obj: dict[str, Any], fields: Fields) -> tuple[Any, Any, Any]:
    """(id, text, title) of a JSON record; ``_id`` is accepted when the id field is ``id``."""
    rid = obj.get(fields.id)
    if rid is None and fields.id == "id":
        rid = obj.get("_id")
    return rid, obj.get(fields.text), obj.get(fields.title, "")


def to_document(doc_id: str, fmt: str, raw: bytes, fields: Fields) -> Document:
    """Derive a :class:`Document` from the stored bytes of one document."""
    if fmt in ("json", "record"):
        obj = json.loads(raw)
        _, text, title = record_fields(obj, fields)
        skip = {fields.id, fields.text, fields.title, "_id"}
        meta = {k: v for k, v in obj.items() if k not in skip}
        meta["format"] = fmt
        return Document(doc_id, text or "", title or "", meta)
    s = raw.decode("utf-8")
    if s.startswith("\ufeff"):
        s = s[1:]
    if fmt == "html":
        title, text = html_to_text(s)
        return Document(doc_id, text, title, {"format": fmt})
    return Document(doc_id, s, "", {"format": fmt})
