"""Reading corpus sources into manifest entries, streaming one document at a time.

Sources:

- a directory tree: every non-hidden file is a document whose id is its relative POSIX path
  (``billing/refunds.md``). ``.md``, ``.txt`` and other text files are UTF-8 text; ``.html``
  / ``.htm`` have their tags stripped at read time; a ``.json`` file is one record (text and
  title from the configured fields); a ``.jsonl`` file holds one document per record with id
  ``REL#ID``. Files and folders whose name starts with ``.`` are ignored.
- a JSONL file (``--format jsonl``, or any ``*.jsonl``): one document per record, id from the
  id field (``id``, falling back to ``_id``).
- a BEIR folder (``corpus.jsonl`` + ``queries.jsonl``/``qrels/``) or a BEIR ``corpus.jsonl``:
  records with ``_id``, ``title``, ``text``.

Stored bytes: the raw file bytes of a tree file, the raw line of a record. Files whose
``(size, mtime_ns, inode)`` match the stat cache are not read at all (unless ``verify``).
Every problem (binary or undecodable content, unreadable file, bad JSON, missing fields,
duplicate ids, no documents) raises :class:`InvalidArtifact` naming the file (and line), or,
with ``skip_invalid``, is collected in the skip list.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genreg.core.corpus import Entry, Fields, Skipped, layout_bytes, record_fields
from genreg.errors import InvalidArtifact, NotFound

Sink = Callable[[str, bytes], None]  # (sha256 hex, stored bytes)
Progress = Callable[[str, int, "int | None"], None]
CacheRow = tuple[int, int, int, str, str]  # size, mtime_ns, inode, sha hex, format
_EXT = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".json": "json"}
RACY_NS = 100_000_000  # entries modified this close to the scan start are not cached


@dataclass
class ScanResult:
    source: str  # tree | jsonl | beir
    entries: list[Entry] = field(default_factory=list)
    layout: bytes | None = None  # layout object bytes (None: no JSONL files)
    skipped: list[Skipped] = field(default_factory=list)
    files: int = 0
    hashed_files: int = 0
    hashed_bytes: int = 0
    cache: dict[str, CacheRow] = field(default_factory=dict)
    cache_dirty: bool = False
    paths: dict[str, str] = field(default_factory=dict)  # doc id -> file (whole-file docs)


def detect(source: Path, fmt: str | None) -> tuple[str, Path]:
    """(source kind, path to read) for a source path and an optional explicit format."""
    if not source.exists():
        raise NotFound(f"{source}: no such file or directory")
    if fmt not in (None, "tree", "jsonl", "beir"):
        raise InvalidArtifact(f"unknown corpus format {fmt!r}: expected tree, jsonl or beir")
    if source.is_dir():
        beir = (source / "corpus.jsonl").is_file() and (
            (source / "qrels").is_dir() or (source / "queries.jsonl").is_file()
        )
        if fmt == "beir" or (fmt is None and beir):
            if not (source / "corpus.jsonl").is_file():
                raise InvalidArtifact(f"{source}: not a BEIR folder (no corpus.jsonl)")
            return "beir", source / "corpus.jsonl"
        if fmt == "jsonl":
            raise InvalidArtifact(f"{source}: --format jsonl needs a .jsonl file")
        return "tree", source
    if fmt == "tree":
        return "tree", source
    if fmt in ("jsonl", "beir") or source.suffix == ".jsonl":
        return ("beir" if fmt == "beir" or source.name == "corpus.jsonl" else "jsonl"), source
    return "tree", source


def _display(name: str) -> str:
    """A file name for messages: undecodable bytes as ``\\xNN`` (never a lone surrogate)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _walk(root: Path) -> tuple[list[tuple[str, str, Any]], list[tuple[str, str]]]:
    """(documents as (rel, path, DirEntry | None), problems as (rel, reason)).

    Rules (one per tree, the same ``corpus export`` applies, see
    :func:`genreg.core.corpus.unsafe_rel`): file names must be valid UTF-8 and portable (no
    backslash); symbolic links are followed only to a regular file inside the tree (a link
    out of the tree -- ``/etc/passwd`` -- or to a directory is never followed); FIFOs,
    devices and sockets are never opened."""
    from genreg.core.corpus import unsafe_rel

    out: list[tuple[str, str, Any]] = []
    problems: list[tuple[str, str]] = []
    top = os.path.realpath(root)
    stack = [("", str(root))]
    while stack:
        prefix, d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                rel = prefix + e.name
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:
                    problems.append((_display(rel), "file name is not valid UTF-8"))
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", e.path))
                    continue
                reason = unsafe_rel(rel)
                if reason is not None:
                    problems.append((rel, reason))
                    continue
                if e.is_symlink():
                    target = os.path.realpath(e.path)
                    if not os.path.exists(target):  # dangling: reported when it is read
                        out.append((rel, e.path, e))
                    elif os.path.commonpath([top, target]) != top:
                        problems.append(
                            (rel, "symbolic link out of the corpus tree (not followed)")
                        )
                    elif os.path.isdir(target):
                        problems.append((rel, "symbolic link to a directory (not followed)"))
                    elif not os.path.isfile(target):
                        problems.append((rel, "not a regular file (FIFO, device or socket)"))
                    else:
                        out.append((rel, target, None))
                elif e.is_file(follow_symlinks=False):
                    out.append((rel, e.path, e))
                else:
                    problems.append((rel, "not a regular file (FIFO, device or socket)"))
    out.sort(key=lambda t: t[0])
    problems.sort()
    return out, problems


class _Scan:
    def __init__(
        self,
        fields: Fields,
        sink: Sink | None,
        skip_invalid: bool,
        progress: Progress | None,
    ) -> None:
        self.fields = fields
        self.sink = sink
        self.skip_invalid = skip_invalid
        self.progress = progress
        self.seen: dict[str, str] = {}
        self.tree_ids: set[str] = set()
        self.layout: list[dict[str, Any]] = []

    def bad(self, res: ScanResult, path: str, line: int | None, reason: str) -> None:
        s = Skipped(path, line, reason)
        if not self.skip_invalid:
            raise InvalidArtifact(str(s))
        res.skipped.append(s)

    def claim(self, res: ScanResult, doc_id: str, where: str, path: str, line: int | None) -> bool:
        first = self.seen.get(doc_id) or (doc_id if doc_id in self.tree_ids else None)
        if first is not None:
            self.bad(res, path, line, f"duplicate doc id {doc_id!r} (first at {first})")
            return False
        self.seen[doc_id] = where
        return True

    def text_ok(self, res: ScanResult, data: bytes, path: str) -> bool:
        nul = data.find(b"\x00")
        if nul >= 0:
            self.bad(
                res, path, None, f"binary file (NUL byte at offset {nul}), not a text document"
            )
            return False
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad(res, path, None, f"not valid UTF-8 (byte {exc.start}); not a text document")
            return False
        return True

    def json_ok(self, res: ScanResult, data: bytes, path: str, line: int | None) -> Any:
        try:
            obj = json.loads(data)
        except UnicodeDecodeError as exc:
            self.bad(res, path, line, f"not valid UTF-8 ({exc.reason})")
            return None
        except json.JSONDecodeError as exc:
            self.bad(res, path, line, f"invalid JSON: {exc.msg}")
            return None
        except RecursionError:
            self.bad(res, path, line, "invalid JSON: nested too deeply")
            return None
        except ValueError:  # the only other one: an integer over Python's 4,300-digit limit
            self.bad(res, path, line, "invalid JSON: integer has more than 4300 digits")
            return None
        if not isinstance(obj, dict):
            self.bad(res, path, line, "expected a JSON object")
            return None
        rid, text, title = record_fields(obj, self.fields)
        if not isinstance(text, str):
            self.bad(res, path, line, f"field {self.fields.text!r} missing or not a string")
            return None
        if title is not None and not isinstance(title, str):
            self.bad(res, path, line, f"field {self.fields.title!r} is not a string")
            return None
        return obj

    # ---- JSONL --------------------------------------------------------------------------
    def records(self, res: ScanResult, path: Path, rel: str, prefix: str) -> None:
        entries: list[Any] = []
        try:
            fh = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            self.bad(res, rel, None, f"cannot read ({exc.strerror})")
            return
        with fh:
            res.files += 1
            res.hashed_files += 1
            for n, raw in enumerate(fh, start=1):
                res.hashed_bytes += len(raw)
                if not raw.strip():
                    entries.append({"raw": raw.decode("utf-8", "surrogateescape")})
                    continue
                obj = self.json_ok(res, raw, rel, n)
                if obj is None:
                    continue
                rid, _, _ = record_fields(obj, self.fields)
                if not isinstance(rid, (str, int)) or isinstance(rid, bool) or rid == "":
                    self.bad(res, rel, n, f"field {self.fields.id!r} missing or not a string")
                    continue
                doc_id = prefix + str(rid)
                if not self.claim(res, doc_id, f"{rel}:{n}", rel, n):
                    continue
                sha = hashlib.sha256(raw).hexdigest()
                if self.sink is not None:
                    self.sink(sha, raw)
                res.entries.append((doc_id, sha, len(raw), "record"))
                entries.append(doc_id)
                if self.progress and n % 1000 == 0:
                    self.progress("hashing", res.hashed_bytes, None)
        self.layout.append({"path": rel, "records": entries})

    # ---- trees --------------------------------------------------------------------------
    def tree(self, res: ScanResult, root: Path, cache: dict[str, CacheRow], verify: bool) -> None:
        from genreg.core.limits import human, max_bytes

        problems: list[tuple[str, str]] = []
        if root.is_file():
            found: list[tuple[str, str, Any]] = [(root.name, str(root), None)]
        elif root.is_dir():
            found, problems = _walk(root)
        else:
            raise InvalidArtifact(f"{root}: not a regular file or directory")
        for rel, reason in problems:
            self.bad(res, rel, None, reason)
        cap = max_bytes("document")
        self.tree_ids = {rel for rel, _, _ in found if not rel.endswith(".jsonl")}
        start = time.time_ns() - RACY_NS
        total = len(found)
        entries, new_cache, paths = res.entries, res.cache, res.paths
        get = (lambda _k: None) if verify else cache.get
        for i, (rel, path, de) in enumerate(found):
            if self.progress and i % 512 == 0:
                self.progress("hashing", i, total)
            if rel.endswith(".jsonl"):
                self.records(res, Path(path), rel, rel + "#")
                continue
            try:
                st = de.stat() if de is not None else os.stat(path)
            except OSError as exc:
                self.bad(res, rel, None, f"cannot stat ({exc.strerror})")
                continue
            res.files += 1
            if st.st_size > cap:
                self.bad(res, rel, None, f"larger than the document size cap ({human(cap)};"
                         " GENREG_MAX_DOCUMENT_BYTES)")  # fmt: skip
                continue
            hit = get(rel)
            if (
                hit is not None
                and hit[1] == st.st_mtime_ns
                and hit[0] == st.st_size
                and hit[2] == st.st_ino
            ):
                new_cache[rel] = hit
                entries.append((rel, hit[3], hit[0], hit[4]))
                paths[rel] = path
                continue
            fmt = _EXT.get(os.path.splitext(rel)[1].lower(), "text")
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError as exc:
                self.bad(res, rel, None, f"cannot read ({exc.strerror})")
                continue
            res.hashed_files += 1
            res.hashed_bytes += len(data)
            if not self.text_ok(res, data, rel):
                continue
            if fmt == "json" and self.json_ok(res, data, rel, None) is None:
                continue
            sha = hashlib.sha256(data).hexdigest()
            if self.sink is not None:
                self.sink(sha, data)
            if st.st_mtime_ns < start and len(data) == st.st_size:
                new_cache[rel] = (st.st_size, st.st_mtime_ns, st.st_ino, sha, fmt)
            res.cache_dirty = True
            entries.append((rel, sha, len(data), fmt))
            paths[rel] = path
        if self.progress:
            self.progress("hashing", total, total)
        if len(res.cache) != len(cache):
            res.cache_dirty = True


def scan(
    source: Path,
    *,
    fmt: str | None = None,
    fields: Fields = Fields(),
    cache: dict[str, CacheRow] | None = None,
    verify: bool = False,
    skip_invalid: bool = False,
    sink: Sink | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Scan ``source``; ``sink`` receives the stored bytes of every document that was read."""
    kind, path = detect(Path(source), fmt)
    s = _Scan(fields, sink, skip_invalid, progress)
    res = ScanResult(kind)
    if kind == "tree":
        s.tree(res, path, cache or {}, verify)
    else:
        s.records(res, path, path.name, "")
    if s.layout:
        res.layout = layout_bytes(s.layout)
    if not res.entries:
        raise InvalidArtifact(
            f"{source}: no documents found" + (" (all skipped)" if res.skipped else "")
        )
    return res
