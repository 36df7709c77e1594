"""Corpus snapshots: snapshot, read, diff, status and export (see :mod:`genreg.core.corpus`).

Write order of a snapshot: scan the source (new documents are staged into temp pack files;
any error aborts with nothing written) -> if a version with this manifest digest exists,
stop (nothing new) -> commit packs (one fsync each) and their index objects -> record the
packs as derived rows -> store layout and manifest objects -> insert the version row. The
version is visible only after every object it names is durable.

Hot path: an unchanged re-snapshot and ``corpus status`` use only the stat cache, the
metadata store (stdlib ``sqlite3`` on the default SQLite file, so no SQLAlchemy import, new
versions included) and hashlib.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.core.corpus import (
    CorpusDiff,
    Document,
    Entry,
    ExportStats,
    Fields,
    Manifest,
    SnapshotResult,
    SnapshotStats,
    build_manifest,
    diff_entries,
    manifest_digest,
    parse_layout,
    parse_manifest,
    to_document,
    unsafe_rel,
)
from genreg.core.corpus_sources import Progress, ScanResult, detect, scan
from genreg.core.hashing import sha256_hex
from genreg.core.refs import Ref, validate_name
from genreg.core.types import VersionInfo
from genreg.errors import ConfigError, IntegrityError, InvalidArtifact

if TYPE_CHECKING:
    from genreg.service.artifacts import Artifacts
    from genreg.service.store import Store
    from genreg.store.metadata import Metadata
    from genreg.store.objects import ObjectStore
    from genreg.store.packs import PackIndex
    from genreg.store.statcache import StatCache


def _digest(man: Manifest, res: ScanResult, cache: Any) -> tuple[str, bytes | None]:
    """The manifest digest; taken from the stat cache's memo when every file was a cache hit
    and no file came or went (then the manifest is the one the memo was computed from)."""
    if (
        cache.digest
        and res.hashed_files == 0
        and not res.cache_dirty
        and res.layout is None
        and not res.skipped
    ):
        return cache.digest, None
    data = man.to_bytes()
    return manifest_digest(data), data


def _safe_rel(rel: str) -> str:
    reason = unsafe_rel(rel)  # the rule a tree snapshot applies to its file names
    if reason is not None:
        raise IntegrityError(f"unsafe path {rel!r} in corpus manifest ({reason})")
    return rel


class _ExportDir:
    """Writes files under ``root`` without following a symbolic link that already exists
    there: every directory on the way is checked (``lstat``) once, and files are opened
    with ``O_NOFOLLOW`` (a link planted at ``out/a.txt`` or ``out/sub`` -> ``/etc`` is an
    error, never written through)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ok: set[Path] = {root}

    def _dir(self, d: Path) -> None:
        if d in self.ok:
            return
        self._dir(d.parent)
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(d)
            st = os.lstat(d)
        if stat.S_ISLNK(st.st_mode):
            raise ConfigError(f"{d}: is a symbolic link; corpus export does not follow links")
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{d}: exists and is not a directory")
        self.ok.add(d)

    def open(self, rel: str) -> Any:
        p = self.root / _safe_rel(rel)
        self._dir(p.parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        try:
            fd = os.open(p, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(
                    f"{p}: is a symbolic link; corpus export does not follow links"
                ) from None
            raise ConfigError(f"{p}: cannot write ({exc.strerror})") from None
        return os.fdopen(fd, "wb")


class Corpora:
    """Corpus snapshots: snapshot, documents, diff, status, export. Versions are resolved
    through :class:`~genreg.service.artifacts.Artifacts`; the local pack index lives under
    the registry home."""

    def __init__(self, store: Store, artifacts: Artifacts) -> None:
        self._store = store
        self._artifacts = artifacts

    @property
    def objects(self) -> ObjectStore:
        return self._store.objects

    @property
    def metadata(self) -> Metadata:
        return self._store.metadata

    @property
    def home(self) -> Path:
        return self._store.home

    def author(self, explicit: str | None = None) -> str:
        return self._store.author(explicit)

    def resolve(self, ref: str | Ref, kind: str | None = None) -> VersionInfo:
        return self._artifacts.resolve(ref, kind)

    # ---- plumbing -----------------------------------------------------------------------
    @property
    def _packidx(self) -> PackIndex:
        return self._store.packs

    def _sync_packs(self) -> None:
        """Add packs recorded in the database (e.g. by another machine) to the local index."""
        from genreg.store.packs import parse_index

        have = self._packidx.packs()
        for d in self.metadata.derived.list("pack"):
            if d.object_digest not in have:
                _, recs = parse_index(self.objects.get_bytes(d.meta["index"]))
                self._packidx.add(d.object_digest, d.meta["index"], recs)

    def _tmp_dir(self) -> Path:
        return self.objects.staging_dir() or self.home / "tmp"

    def _corpus(self, ref: str | Ref | VersionInfo) -> VersionInfo:
        info = ref if isinstance(ref, VersionInfo) else self.resolve(ref, "corpus")
        if info.kind != "corpus":
            raise ConfigError(f"{info.ref} is a {info.kind}, not a corpus snapshot")
        return info

    def _by_digest(self, name: str, digest: str) -> VersionInfo | None:
        return self.metadata.version_by_digest("corpus", name, digest)

    @staticmethod
    def _cache(home: Path, source: Path, fmt: str | None, fields: Fields) -> tuple[str, StatCache]:
        from genreg.store.statcache import StatCache

        kind, path = detect(source, fmt)
        return kind, StatCache(home, path, f"{kind}\0{fields}")

    # ---- snapshot -----------------------------------------------------------------------
    def snapshot(
        self,
        name: str,
        source: str | Path,
        *,
        fmt: str | None = None,
        id_field: str = "id",
        text_field: str = "text",
        title_field: str = "title",
        verify: bool = False,
        skip_invalid: bool = False,
        message: str = "",
        tags: dict[str, Any] | None = None,
        author: str | None = None,
        progress: Progress | None = None,
    ) -> SnapshotResult:
        """Snapshot ``source`` as ``corpus:name`` (a no-op when the content is unchanged)."""
        from genreg.store.objects import ensure_stored
        from genreg.store.packs import PackWriter

        validate_name(name)
        fields = Fields(id_field, text_field, title_field)
        src = Path(source)
        kind, cache = self._cache(self.home, src, fmt, fields)
        rows = cache.load() if kind == "tree" and not verify else {}
        known: set[bytes] | None = None

        def is_known(sha: bytes) -> bool:
            nonlocal known
            if known is None:
                self._sync_packs()
                known = self._packidx.all_shas()
            return sha in known

        writer = PackWriter(self.objects, self._tmp_dir(), is_known)
        try:
            res = scan(
                src,
                fmt=fmt,
                fields=fields,
                cache=rows,
                verify=verify,
                skip_invalid=skip_invalid,
                sink=writer.add,
                progress=progress,
            )
            layout = sha256_hex(res.layout) if res.layout else None
            man = build_manifest(res.entries, source=res.source, fields=fields, layout=layout)
            digest, data = _digest(man, res, cache)
            existing = self._by_digest(name, digest)
            if existing is not None:
                writer.abort()
                if kind == "tree" and (res.cache_dirty or cache.digest != digest):
                    cache.save(res.cache, digest)
                return SnapshotResult(existing, False, self._stats(man, res, 0, 0, 0))
            data = data or man.to_bytes()
            self._store_missing(man, res, writer)
            packs = writer.commit()
        except BaseException:
            writer.abort()
            raise
        for p in packs:
            meta = {"index": p.index, "count": p.count, "bytes": p.size}
            self.metadata.derived.put("pack", "corpus", f"pack:{p.pack}", p.pack, meta)
            self._packidx.add(p.pack, p.index, p.records)
        if res.layout is not None:
            self.objects.put_bytes(res.layout)
        obj = self.objects.put_bytes(data)
        summary = {
            "docs": man.docs,
            "bytes": man.bytes,
            "source": res.source,
            "formats": man.formats(),
            "fields": fields.to_dict(),
            "layout": layout,
            "new_docs": writer.new_docs,
            "new_bytes": writer.new_bytes,
            "skipped": len(res.skipped),
        }
        info, created = self.metadata.add_version(
            "corpus",
            name,
            digest=digest,
            object_digest=obj,
            author=self.author(author),
            message=message,
            tags=dict(tags or {}),
            summary=summary,
        )
        # The rows are committed: re-store anything a concurrent gc hid since it was written.
        writer.finish()
        if res.layout is not None and layout is not None:
            ensure_stored(self.objects, layout, res.layout)
        ensure_stored(self.objects, obj, data)
        if kind == "tree":
            cache.save(res.cache, digest)
        stats = self._stats(man, res, writer.new_docs, writer.new_bytes, len(packs))
        return SnapshotResult(info, created, stats)

    @staticmethod
    def _stats(man: Manifest, res: ScanResult, nd: int, nb: int, np: int) -> SnapshotStats:
        return SnapshotStats(
            man.docs, man.bytes, res.files, res.hashed_files, res.hashed_bytes, nd, nb, np,
            list(res.skipped),
        )  # fmt: skip

    @staticmethod
    def _store_missing(man: Manifest, res: ScanResult, writer: Any) -> None:
        """Documents taken from the stat cache whose bytes are not stored: read them now."""
        import hashlib

        for doc_id, sha, _size, _fmt in man.entries:
            if writer.has(bytes.fromhex(sha)):
                continue
            path = res.paths.get(doc_id)
            data = Path(path).read_bytes() if path is not None else b""
            if hashlib.sha256(data).hexdigest() != sha:
                raise InvalidArtifact(f"{doc_id}: changed while being snapshotted; run it again")
            writer.add(sha, data)

    # ---- reading ------------------------------------------------------------------------
    def corpus_manifest(self, ref: str | Ref | VersionInfo) -> Manifest:
        info = self._corpus(ref)
        data = self.objects.get_bytes(info.object_digest)
        if manifest_digest(data) != info.digest:
            raise IntegrityError(f"{info.ref}: manifest does not match its digest {info.digest}")
        return parse_manifest(data, info.ref)

    def _locate(self, entries: list[Entry], where: str) -> dict[bytes, tuple[str, int, int]]:
        shas = [bytes.fromhex(e[1]) for e in entries]
        locs = self._packidx.locate(shas)
        if len(locs) < len(set(shas)):
            self._sync_packs()
            locs = self._packidx.locate(shas)
            for e, s in zip(entries, shas):
                if s not in locs:
                    raise IntegrityError(
                        f"{where}: document {e[0]!r} (sha256:{e[1][:12]}) is missing from the store"
                    )
        return locs

    def _iter_raw(self, entries: list[Entry], where: str) -> Iterator[tuple[Entry, bytes]]:
        from genreg.store.packs import PackReader

        reader = PackReader(self.objects, self.home / "cache" / "packs")
        try:
            for i in range(0, len(entries), 1000):
                part = entries[i : i + 1000]
                locs = self._locate(part, where)
                for e in part:
                    yield e, reader.read(locs[bytes.fromhex(e[1])], expect=e[1])
        finally:
            reader.close()

    def iter_documents(self, ref: str | Ref | VersionInfo) -> Iterator[Document]:
        """Every document of a snapshot, sorted by doc id, streamed and digest-verified."""
        info = self._corpus(ref)
        man = self.corpus_manifest(info)
        fields = man.fields
        for e, raw in self._iter_raw(man.entries, info.ref):
            yield to_document(e[0], e[3], raw, fields)

    def corpus_documents(
        self, ref: str | Ref | VersionInfo, doc_ids: Iterable[str]
    ) -> dict[str, Document]:
        """The named documents of a snapshot, read by doc id through its manifest (no scan of
        the other documents); ids the snapshot does not hold are left out."""
        info = self._corpus(ref)
        man = self.corpus_manifest(info)
        wanted = set(doc_ids)
        entries = [e for e in man.entries if e[0] in wanted]
        return {
            e[0]: to_document(e[0], e[3], raw, man.fields)
            for e, raw in self._iter_raw(entries, info.ref)
        }

    # ---- diff / status ------------------------------------------------------------------
    def corpus_diff(self, a: str | Ref, b: str | Ref) -> CorpusDiff:
        va, vb = self._corpus(a), self._corpus(b)
        if va.digest == vb.digest:  # still read (and check) what "unchanged" vouches for
            n = self.corpus_manifest(va).docs
            return CorpusDiff(va.ref, vb.ref, va.digest, vb.digest, [], [], [], n)
        ma, mb = self.corpus_manifest(va), self.corpus_manifest(vb)
        added, removed, changed, same = diff_entries(ma.entries, mb.entries)
        return CorpusDiff(va.ref, vb.ref, va.digest, vb.digest, added, removed, changed, same)

    def corpus_status(
        self,
        ref: str | Ref,
        source: str | Path,
        *,
        fmt: str | None = None,
        id_field: str | None = None,
        text_field: str | None = None,
        title_field: str | None = None,
        verify: bool = False,
        skip_invalid: bool = False,
        progress: Progress | None = None,
    ) -> CorpusDiff:
        """How the working source differs from snapshot ``ref`` (parsing options default to
        the snapshot's). Reads nothing but changed files; writes only the stat cache."""
        info = self._corpus(ref)
        old: Manifest | None = None
        recorded = info.summary.get("fields")
        if not isinstance(recorded, dict):
            old = self.corpus_manifest(info)
            recorded = old.header.get("fields", {})
        f = Fields(**recorded)
        fields = Fields(id_field or f.id, text_field or f.text, title_field or f.title)
        src = Path(source)
        kind, cache = self._cache(self.home, src, fmt, fields)
        rows = cache.load() if kind == "tree" and not verify else {}
        res = scan(src, fmt=fmt, fields=fields, cache=rows, verify=verify,
                   skip_invalid=skip_invalid, progress=progress)  # fmt: skip
        layout = sha256_hex(res.layout) if res.layout else None
        man = build_manifest(res.entries, source=res.source, fields=fields, layout=layout)
        digest, _ = _digest(man, res, cache)
        if kind == "tree" and (res.cache_dirty or cache.digest != digest):
            cache.save(res.cache, digest)
        if digest == info.digest:
            # "clean" vouches for the stored snapshot too: its manifest must be intact
            # (a few ms for a 10,000-document manifest; issue 14 item 18).
            old = old or self.corpus_manifest(info)
            return CorpusDiff(info.ref, str(source), info.digest, digest, [], [], [], man.docs)
        old = old or self.corpus_manifest(info)
        added, removed, changed, same = diff_entries(old.entries, man.entries)
        return CorpusDiff(info.ref, str(source), info.digest, digest, added, removed, changed, same)

    # ---- export -------------------------------------------------------------------------
    def corpus_export(self, ref: str | Ref, out_dir: str | Path) -> ExportStats:
        """Write the snapshot's files to ``out_dir`` exactly as they were snapshotted."""
        info = self._corpus(ref)
        man = self.corpus_manifest(info)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = nbytes = 0
        whole = [e for e in man.entries if e[3] != "record"]
        for e in whole:  # every path checked before anything is written
            _safe_rel(e[0])
        target = _ExportDir(out)
        for e, raw in self._iter_raw(whole, info.ref):
            with target.open(e[0]) as fh:
                fh.write(raw)
            files += 1
            nbytes += len(raw)
        if man.layout:
            by_id = {e[0]: e for e in man.entries if e[3] == "record"}
            for f in parse_layout(self.objects.get_bytes(man.layout)):
                recs = f["records"]
                ents = [by_id[r] for r in recs if isinstance(r, str)]
                raws = self._iter_raw(ents, info.ref)
                with target.open(f["path"]) as fh:
                    for r in recs:
                        b = (
                            r["raw"].encode("utf-8", "surrogateescape")
                            if isinstance(r, dict)
                            else next(raws)[1]
                        )
                        fh.write(b)
                        nbytes += len(b)
                files += 1
        return ExportStats(info.ref, str(out), files, man.docs, nbytes)
