"""Integrity and housekeeping: ``verify`` (re-hash every object, check every reference),
``gc`` (objects nothing references) and schema migrations (``db_upgrade`` / ``db_current``).

What references an object:

- explicit rows: a version's content object, a derived row's object, a run's results object;
- providers registered with :func:`register_reference_provider` (e.g. the corpus code naming
  the document objects a snapshot manifest lists) -- checked by ``verify`` and kept by ``gc``;
- for ``gc`` only, conservatively: any sha256 hex string inside a corpus manifest or a
  derived row's metadata. Keeping an object that only *looks* referenced is harmless; deleting
  a referenced one is not.

``gc`` lists the stored objects *before* reading the references, so an object written after
the listing is never a candidate; a grace period (default one hour) also keeps objects whose
version may still be committing in another process (a writer that reuses a stored object
refreshes its mtime).

**The gc guarantee** -- gc never deletes an object that a version (or derived row, or run)
committed before, during or after its scan references -- rests on a two-phase delete:

1. gc *hides* each candidate (moves it to the store's ``trash/``), then
2. reads every reference again, restores hidden objects that are now referenced and only
   then purges the rest.

Every writer, after committing the row that names an object, checks the object is there
and stores it again if not (:func:`genreg.store.objects.ensure_stored`). A writer that
committed before step 2 is seen by step 2; one that committed after it checks after step 1,
so it finds its object hidden and rewrites it. Readers fall back to ``trash/``, so a
version committed while gc runs stays readable. A gc killed between the two steps leaves
hidden objects behind; the next gc restores the referenced ones (``verify`` names them).

**Leases** (:mod:`genreg.service.leases`) keep what a *running* job stored before any row
names it: an on-disk index build with ``engine=ray`` stores the chunk-text table before the
job (the actors read it) and the index row commits hours later. The build records each object
it stores in its lease -- a derived row of kind ``lease`` naming them, with an expiry that a
thread of the build renews -- right after storing it (then checks it is still there, as above)
and deletes the lease once the index row is committed or the build failed. gc keeps a live
lease's objects like any row's, ignores an expired one (a killed build's: it keeps nothing)
and deletes it (``GcReport.leases``).

gc also reclaims **staging files** (``objects/tmp``, ``<home>/tmp``: the temp files of writes
and snapshots killed half-way) untouched for longer than the grace period, the **work
directories of builds that are not running** (``<home>/cache/tmp/ann-*/``: an on-disk index
build's chunk-text side file and units, left by a build killed with ``kill -9``;
``<home>/cache/tmp/export-*/``: a killed ONNX export's or NNCF quantization's files; its
:class:`~genreg.store.objects.StagingDir` lock tells a running build from a dead one at any
age, the grace period applies only to a directory without a lock file), and **derived
local caches** of ``<home>/cache/ann/`` (:meth:`Admin._ann_caches`): the materialised copy of
an on-disk index (``<index object digest>/``, whose ``lists.ivfdata`` is a hard link to the
stored lists object, so it keeps the bytes on disk even once that object is deleted) and the
local copies of embedding-cache shards a refined search read from a remote store
(``shards/<digest>``) and of a remote index's row-id / chunk-text tables (``rowids/``,
``texts/``), once the object they copy is no longer referenced, and the temp
directories of killed materialisations. All of it is a cache: deleting it is always safe (the
next search re-creates it from the objects).
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.core.hashing import digest_bytes
from genreg.core.urls import redact_url
from genreg.errors import IntegrityError, NotFound

if TYPE_CHECKING:
    from genreg.service.store import Store
    from genreg.settings import Settings
    from genreg.store.inventory import ObjectRef
    from genreg.store.metadata import Metadata
    from genreg.store.objects import ObjectStore

Progress = Callable[[str, int, int | None], None]
ReferenceProvider = Callable[[Any], Iterable[tuple[str, str]]]
_PROVIDERS: list[ReferenceProvider] = []
_HEX64 = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
# <home>/cache/ann subdirectories of copied objects (from a store without local files)
_ANN_SPILLS = ("shards", "rowids", "texts")
_SCAN_LIMIT = 512 << 20  # don't scan manifests larger than this for embedded digests


def register_reference_provider(fn: ReferenceProvider) -> ReferenceProvider:
    """Register ``fn(registry) -> iterable of (bare sha256, owner name)`` naming objects that
    rows reference indirectly (e.g. documents listed in a corpus manifest). Usable as a
    decorator; ``verify`` checks these objects exist and ``gc`` keeps them."""
    if fn not in _PROVIDERS:
        _PROVIDERS.append(fn)
    return fn


@dataclass(frozen=True)
class Problem:
    owner: str  # "prompt:qa@v3", "derived faiss-index 9f2c...", "(unreferenced)"
    object: str  # bare sha256
    problem: str  # missing | corrupt | digest-mismatch

    def __str__(self) -> str:
        return f"{self.owner} -> object {self.object[:12]}... {self.problem}"


@dataclass
class VerifyReport:
    objects_checked: int
    references_checked: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "objects_checked": self.objects_checked,
            "references_checked": self.references_checked,
            "problems": [{**asdict(p), "message": str(p)} for p in self.problems],
        }


@dataclass
class GcReport:
    dry_run: bool
    objects_total: int
    unreferenced: list[dict[str, Any]]  # {digest, size, recent}
    deleted: list[str]
    staging: list[dict[str, Any]] = field(default_factory=list)  # {path, size, recent, deleted}
    restored: list[str] = field(default_factory=list)  # hidden by a killed gc, referenced
    # <home>/cache/ann entries of objects no longer referenced: {path, size, linked, recent,
    # deleted}; ``linked``: bytes hard-linked to a stored object (freed with it, counted there)
    caches: list[dict[str, Any]] = field(default_factory=list)
    # leases of running (or killed) jobs: {key, what, host, pid, objects, expires, expired,
    # deleted}; a live one keeps its objects, an expired one is removed
    leases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bytes_reclaimable(self) -> int:
        return sum(o["size"] for o in self.unreferenced if not o["recent"])

    @property
    def staging_bytes_reclaimable(self) -> int:
        return sum(o["size"] for o in self.staging if not o["recent"])

    @property
    def cache_bytes_reclaimable(self) -> int:
        return sum(o["size"] for o in self.caches if not o["recent"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "objects_total": self.objects_total,
            "unreferenced": self.unreferenced,
            "bytes_reclaimable": self.bytes_reclaimable,
            "deleted": self.deleted,
            "staging": self.staging,
            "staging_bytes_reclaimable": self.staging_bytes_reclaimable,
            "restored": self.restored,
            "caches": self.caches,
            "cache_bytes_reclaimable": self.cache_bytes_reclaimable,
            "leases": self.leases,
        }


def _work_dir_entry(path: Path, state: str, now: float, grace: float) -> dict[str, Any] | None:
    """The gc report entry of a build's work directory, or None when its build is running.
    A dead one's (lock file, nobody holding it) is stale whatever its age; one whose lock
    state cannot be told is kept for the grace period after its last write."""
    if state == "live":
        return None
    try:
        files = [f for f in path.rglob("*") if f.is_file()]
        st = [f.lstat() for f in files]
        mtime = max([path.lstat().st_mtime, *(x.st_mtime for x in st)])
    except FileNotFoundError:  # removed meanwhile (its build finished)
        return None
    size = sum(x.st_size for x in st if x.st_nlink <= 1)
    recent = state == "unknown" and grace > 0 and now - mtime < grace
    return {"path": str(path), "size": size, "recent": recent, "deleted": False, "dir": True}


def _hash_object(store: ObjectStore, digest: str) -> str:
    path = store.local_path(digest)
    if path is None:
        return hashlib.sha256(store.get_bytes(digest, verify=False)).hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class Admin:
    """verify, gc and schema migrations over the :class:`~genreg.service.store.Store`.
    Reference providers receive the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def objects(self) -> ObjectStore:
        return self._store.objects

    @property
    def metadata(self) -> Metadata:
        return self._store.metadata

    @property
    def settings(self) -> Settings:
        return self._store.settings

    # ---- references -------------------------------------------------------------------
    def _row_references(self) -> list[ObjectRef]:
        """What every row names -- except an expired lease (:mod:`genreg.service.leases`):
        its job is gone, what it named is kept only if another row names it."""
        from genreg.service.leases import LEASE_KIND, expired

        now = time.time()
        return [
            r
            for r in self.metadata.object_references()
            if not (r.kind == "derived" and r.derived_kind == LEASE_KIND and expired(r.meta, now))
        ]

    def _provider_references(self) -> list[tuple[str, str]]:
        return [(d, owner) for fn in _PROVIDERS for d, owner in fn(self._store)]

    def _embedded_digests(self, refs: list[ObjectRef], stored: set[str]) -> set[str]:
        found: set[str] = set()
        for r in refs:
            blob = b""
            if r.kind == "version" and r.artifact_kind == "corpus" and r.digest in stored:
                try:
                    small = self.objects.size(r.digest) <= _SCAN_LIMIT
                except NotFound:  # hidden by a gc in progress: still readable
                    small = True
                try:
                    blob = self.objects.get_bytes(r.digest, verify=False) if small else b""
                except (NotFound, IntegrityError):
                    continue
            elif r.kind == "derived" and r.meta:
                blob = json.dumps(r.meta).encode()
            found.update(m.decode() for m in _HEX64.findall(blob))
        return found

    # ---- verify -----------------------------------------------------------------------
    def verify(self, *, progress: Progress | None = None) -> VerifyReport:
        """Re-hash every stored object and check every reference; problems name their owner."""
        stored = list(self.objects.iter_digests())
        refs = self._row_references()
        owners: dict[str, list[str]] = {}
        for r in refs:
            owners.setdefault(r.digest, []).append(r.owner)
        for d, owner in self._provider_references():
            owners.setdefault(d, []).append(owner)
        content_checks: dict[str, list[ObjectRef]] = {}
        for r in refs:  # versions whose digest is of the stored bytes themselves
            if r.kind == "version" and r.artifact_kind != "corpus":
                content_checks.setdefault(r.digest, []).append(r)

        problems: list[Problem] = []
        stored_set = set(stored)
        for i, d in enumerate(stored, 1):
            try:
                ok = _hash_object(self.objects, d) == d
            except (NotFound, FileNotFoundError):  # deleted while we were listing
                stored_set.discard(d)
                continue
            except (OSError, IntegrityError):  # e.g. a directory where the object should be
                ok = False
            if not ok:
                problems += [Problem(o, d, "corrupt") for o in owners.get(d, ["(unreferenced)"])]
            elif d in content_checks:
                actual = digest_bytes(self.objects.get_bytes(d))
                problems += [
                    Problem(r.owner, d, "digest-mismatch")
                    for r in content_checks[d]
                    if r.content_digest != actual
                ]
            if progress:
                progress("verify objects", i, len(stored))
        problems += self._verify_packs(refs, stored_set, {p.object for p in problems})
        hidden = {d for d, _, _ in self.objects.iter_hidden()}
        for d in sorted(set(owners) - stored_set):
            what = "missing (in gc trash: 'genreg gc' restores it)" if d in hidden else "missing"
            problems += [Problem(o, d, what) for o in owners[d]]
        problems.sort(key=lambda p: (p.owner, p.object))
        return VerifyReport(len(stored), sum(len(v) for v in owners.values()), problems)

    def _verify_packs(
        self, refs: list[ObjectRef], stored: set[str], bad: set[str]
    ) -> list[Problem]:
        """Each pack against its index object (every record's bytes hash to its sha), and
        the local pack-index cache (``packs.sqlite``, what reads use) against both."""
        from genreg.store.packs import check_pack

        out: list[Problem] = []
        cache_path = self.settings.home / "packs.sqlite"
        cache = self._store.packs if cache_path.exists() else None
        for r in refs:
            meta = r.meta if isinstance(r.meta, dict) else {}
            index = meta.get("index")
            if r.kind != "derived" or r.derived_kind != "pack" or not index:
                continue
            if r.digest not in stored or index not in stored or {r.digest, index} & bad:
                continue  # already reported as missing or corrupt
            why = check_pack(self.objects, r.digest, index)
            if why is not None:
                out.append(Problem(f"{r.owner} index {index[:12]}", r.digest, f"bad-index: {why}"))
                continue
            cached = cache.records_of(r.digest) if cache is not None else None
            if cached:
                from genreg.store.packs import parse_index

                _, recs = parse_index(self.objects.get_bytes(index))
                if not set(cached) <= set(recs):
                    out.append(
                        Problem(
                            f"local pack index {cache_path}",
                            r.digest,
                            "disagrees with the pack's index object (delete the file:"
                            " it is rebuilt from the index objects)",
                        )
                    )
        return out

    # ---- gc ---------------------------------------------------------------------------
    def _keep(self, stored: set[str]) -> set[str]:
        """Every object referenced right now (rows, providers, embedded digests)."""
        refs = self._row_references()
        keep = {r.digest for r in refs} | {d for d, _ in self._provider_references()}
        return keep | self._embedded_digests(refs, stored)

    def _staging_dirs(self) -> list[Path]:
        dirs = [
            self.settings.home / "tmp",
            self.settings.home / "cache" / "packs",
            self._work_root(),
        ]
        staging = self.objects.staging_dir()
        if staging is not None:
            dirs.insert(0, staging)
        return dirs

    def _work_root(self) -> Path:
        """``<home>/cache/tmp``: the work directories of builds (:class:`StagingDir`)."""
        return self.settings.home / "cache" / "tmp"

    def _staging(self, now: float, grace: float) -> list[dict[str, Any]]:
        """Temp files of writes that never finished (a killed snapshot's ``pack-*``...) and
        the work directories of builds that are not running (a killed on-disk index build's
        ``cache/tmp/ann-*/``, with the corpus's whole chunk text in it; a killed export's
        ``cache/tmp/export-*/``)."""
        from genreg.store.objects import staging_dir_state, staging_in_use

        out = []
        work_root = self._work_root()
        for d in self._staging_dirs():
            if not d.is_dir():
                continue
            packs_cache = d.name == "packs"
            for f in sorted(d.iterdir()):
                if packs_cache and f.suffix != ".tmp":
                    continue  # the pack cache itself is not staging
                try:
                    st = f.lstat()
                except FileNotFoundError:
                    continue
                if d == work_root and stat.S_ISDIR(st.st_mode):
                    entry = _work_dir_entry(f, staging_dir_state(f), now, grace)
                    if entry is not None:
                        out.append(entry)
                    continue
                if not stat.S_ISREG(st.st_mode) or staging_in_use(f):
                    continue  # a live writer holds it (whatever its age)
                recent = grace > 0 and now - st.st_mtime < grace
                # a staged pack hard-linked into the store frees nothing when removed
                size = st.st_size if st.st_nlink <= 1 else 0
                out.append({"path": str(f), "size": size, "recent": recent, "deleted": False})
        return out

    def gc(
        self,
        *,
        dry_run: bool = True,
        grace_seconds: float = 3600.0,
        progress: Progress | None = None,
    ) -> GcReport:
        """Objects no version, derived row, run or provider references, and stale staging
        files. Deletes them only when ``dry_run`` is False, and only those older than
        ``grace_seconds``; the two-phase delete of the module docstring keeps every object
        a concurrently committed row names."""
        from genreg.store.objects import reclaim_staging, reclaim_staging_dir

        leases = self._leases(dry_run)  # an expired one is removed: it keeps nothing
        stored = list(self.objects.iter_digests())  # list first: later writes aren't candidates
        hidden = list(self.objects.iter_hidden())  # left by a gc that was killed
        stored_set = set(stored) | {d for d, _, _ in hidden}
        keep = self._keep(stored_set)
        now = time.time()
        unreferenced: list[dict[str, Any]] = []
        deleted: list[str] = []
        restored: list[str] = []
        candidates = [d for d in stored if d not in keep]
        doomed: list[str] = []
        for i, d in enumerate(candidates, 1):
            try:
                size = self.objects.size(d)
                mtime = self.objects.mtime(d)
            except (NotFound, FileNotFoundError):
                continue
            recent = grace_seconds > 0 and (mtime is None or now - mtime < grace_seconds)
            unreferenced.append({"digest": d, "size": size, "recent": recent})
            if not recent:
                doomed.append(d)
            if progress:
                progress("gc", i, len(candidates))
        for d, size, mtime in hidden:
            if d in keep or d in stored:  # referenced again, or already stored again
                if not dry_run:
                    self.objects.unhide(d)
                if d not in stored:
                    restored.append(d)
            else:
                recent = grace_seconds > 0 and now - mtime < grace_seconds
                unreferenced.append({"digest": d, "size": size, "recent": recent})
                if not recent:
                    doomed.append(d)
        # listed before the purge, in a dry run and a real one alike: a copy's file hard-linked
        # to a stored object (``lists.ivfdata``) is freed with that object and counted there
        # once (as ``linked`` bytes of the entry), never a second time as the entry's own
        caches = self._ann_caches(lambda: self._keep(stored_set), now, grace_seconds)
        if not dry_run and doomed:
            # phase 1: hide; phase 2: re-read every reference, restore or purge
            for d in doomed:
                self.objects.hide(d)
            keep = self._keep(stored_set)
            for d in doomed:
                if d in keep:
                    self.objects.unhide(d)
                    restored.append(d)
                else:
                    self.objects.purge_hidden(d)
                    deleted.append(d)
        staging = self._staging(now, grace_seconds)
        if not dry_run:
            for f in staging:
                if not f["recent"]:
                    p = Path(f["path"])
                    reclaim = reclaim_staging_dir if f.get("dir") else reclaim_staging
                    f["deleted"] = reclaim(p)
        if not dry_run:
            for c in caches:
                if not c["recent"]:
                    c["deleted"] = _remove_path(Path(c["path"]))
        return GcReport(
            dry_run, len(stored), unreferenced, deleted, staging, restored, caches, leases
        )

    def _leases(self, dry_run: bool) -> list[dict[str, Any]]:
        """Every lease row (a running job's stored-but-not-yet-named objects), live or
        expired; expired ones are deleted unless ``dry_run``."""
        from genreg.service.leases import LEASE_KIND, expired

        out = []
        now = time.time()
        derived = self._store.derived
        for row in derived.list(LEASE_KIND):
            meta = row.meta
            dead = expired(meta, now)
            if dead and not dry_run:
                derived.delete(row.key)
            out.append(
                {
                    "key": row.key,
                    "what": meta.get("what"),
                    "host": meta.get("host"),
                    "pid": meta.get("pid"),
                    "objects": list(meta.get("objects") or []),
                    "expires": meta.get("expires"),
                    "expired": dead,
                    "deleted": dead and not dry_run,
                }
            )
        return out

    def _ann_caches(
        self, keep_now: Callable[[], set[str]], now: float, grace: float
    ) -> list[dict[str, Any]]:
        """``<home>/cache/ann`` entries nothing needs any more: ``<digest>/`` (a materialised
        on-disk index), ``shards/<digest>`` (a local copy of a remote embedding shard) and
        ``rowids/<digest>`` / ``texts/<digest>`` (local copies of a remote index's row-id and
        chunk-text tables) whose object is not referenced, and ``*.tmp-<pid>`` leftovers of a process that is
        gone. Entries younger than ``grace`` are reported as recent (kept). The references
        are read (``keep_now``) only when there is such an entry, after listing them: a copy
        made for an index committed later is younger than the listing."""
        root = self.settings.home / "cache" / "ann"
        out: list[dict[str, Any]] = []
        entries: list[Path] = []
        for d in (root, *(root / sub for sub in _ANN_SPILLS)):
            if d.is_dir():
                entries += [p for p in sorted(d.iterdir()) if p.name not in _ANN_SPILLS]
        if not entries:
            return out
        keep = keep_now()
        for p in entries:
            name, _, pid = p.name.partition(".tmp-")
            if pid:
                if not pid.isdigit() or _alive(int(pid)):
                    continue  # being written by a live process
            elif not _HEX64.fullmatch(name.encode()) or name in keep:
                continue  # a live index (or shard) copy, or not ours
            try:
                files = [p] if not p.is_dir() else [f for f in p.rglob("*") if f.is_file()]
                st = [f.lstat() for f in files]
                mtime = max([p.lstat().st_mtime, *(x.st_mtime for x in st)])
            except FileNotFoundError:
                continue
            size = sum(x.st_size for x in st if x.st_nlink <= 1)  # links free nothing
            linked = sum(x.st_size for x in st if x.st_nlink > 1)  # counted with the object
            recent = grace > 0 and now - mtime < grace
            out.append(
                {"path": str(p), "size": size, "linked": linked, "recent": recent, "deleted": False}
            )
        return out

    # ---- schema -----------------------------------------------------------------------
    def db_current(self) -> dict[str, Any]:
        """The database's schema revision and the code's head, without migrating."""
        from genreg.store.db import current_revision, make_engine
        from genreg.store.migrations import HEAD

        engine = make_engine(self.settings.database_url)
        try:
            rev = current_revision(engine)
        finally:
            engine.dispose()
        return {"database": redact_url(self.settings.database_url), "current": rev, "head": HEAD}

    def db_upgrade(self) -> dict[str, Any]:
        """Migrate the database to the head revision (idempotent)."""
        from genreg.store.db import current_revision, make_engine, upgrade
        from genreg.store.migrations import HEAD

        engine = make_engine(self.settings.database_url)
        try:
            before = current_revision(engine)
            upgrade(engine)
            after = current_revision(engine)
        finally:
            engine.dispose()
        if after != HEAD:
            raise IntegrityError(f"database at revision {after!r} after upgrade, expected {HEAD}")
        return {
            "database": redact_url(self.settings.database_url),
            "before": before,
            "after": after,
            "changed": before != after,
        }


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_path(path: Path) -> bool:
    import shutil

    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True
