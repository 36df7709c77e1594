"""``verify`` names every broken reference; ``gc`` finds (and only with --delete removes) the
objects nothing references -- on every storage backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _backends import Backend
from genreg.service import admin


def _prompt(i: int) -> dict[str, Any]:
    return {"template": f"prompt number {i}"}


def _overwrite(store: Any, digest: str, data: bytes) -> None:
    path = store.local_path(digest)
    if path is None:
        store.fs.pipe_file(store._key(digest), data)
    else:
        path.chmod(0o644)
        path.write_bytes(data)


@pytest.fixture
def filled(backend_registry: Any) -> Any:
    for i in range(1, 4):
        backend_registry.register_content("prompt", "qa", _prompt(i))
    return backend_registry


def test_verify_passes_on_a_healthy_registry(filled: Any) -> None:
    report = filled.verify()
    assert report.ok, [str(p) for p in report.problems]
    assert report.objects_checked == 3 and report.references_checked == 3


def test_verify_names_the_version_whose_object_is_missing(filled: Any, cli: Any) -> None:
    v3 = filled.resolve("prompt:qa@v3")
    filled.objects.delete(v3.object_digest)
    report = filled.verify()
    assert [str(p) for p in report.problems] == [
        f"prompt:qa@v3 -> object {v3.object_digest[:12]}... missing"
    ]
    r = cli("verify")
    assert r.exit_code == 1, r.output
    assert f"prompt:qa@v3 -> object {v3.object_digest[:12]}... missing" in r.output
    r = cli("verify", "--json")
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert out["ok"] is False
    assert [(p["owner"], p["problem"]) for p in out["problems"]] == [("prompt:qa@v3", "missing")]


def test_verify_names_the_version_whose_object_is_corrupt(filled: Any) -> None:
    v2 = filled.resolve("prompt:qa@v2")
    _overwrite(filled.objects, v2.object_digest, b"bit rot")
    problems = filled.verify().problems
    assert [(p.owner, p.object, p.problem) for p in problems] == [
        ("prompt:qa@v2", v2.object_digest, "corrupt")
    ]


def test_verify_names_derived_rows_and_unreferenced_corrupt_objects(filled: Any) -> None:
    missing = "ab" * 32
    filled.derived.put("faiss-index", "m", "key-of-some-index", missing, {})
    orphan = filled.objects.put_bytes(b"orphan")
    _overwrite(filled.objects, orphan, b"orphan, rotted")
    problems = {(p.owner, p.object, p.problem) for p in filled.verify().problems}
    assert problems == {
        ("derived faiss-index key-of-some-index", missing, "missing"),
        ("(unreferenced)", orphan, "corrupt"),
    }


def test_gc_dry_run_lists_only_unreferenced_objects_and_deletes_nothing(
    filled: Any, cli: Any
) -> None:
    orphan = filled.objects.put_bytes(b"nobody points here")
    report = filled.gc(dry_run=True, grace_seconds=0)
    assert [o["digest"] for o in report.unreferenced] == [orphan]
    assert report.deleted == [] and filled.objects.has(orphan)
    r = cli("gc", "--dry-run", "--grace", "0", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["dry_run"] is True and [o["digest"] for o in out["unreferenced"]] == [orphan]
    assert filled.objects.has(orphan)


def test_gc_delete_removes_only_unreferenced_objects(filled: Any, cli: Any) -> None:
    orphan = filled.objects.put_bytes(b"nobody points here")
    r = cli("gc", "--delete", "--grace", "0")
    assert r.exit_code == 0, r.output
    assert not filled.objects.has(orphan)
    assert filled.verify().ok
    assert [filled.content(v) for v in filled.history("prompt:qa")]  # all still readable


def test_gc_keeps_unreferenced_objects_younger_than_the_grace_period(filled: Any) -> None:
    orphan = filled.objects.put_bytes(b"maybe a version is committing right now")
    report = filled.gc(dry_run=False)  # default grace: one hour
    assert report.deleted == [] and filled.objects.has(orphan)
    assert report.unreferenced == [{"digest": orphan, "size": 39, "recent": True}]


def test_gc_keeps_objects_named_in_derived_metadata_and_run_results(filled: Any) -> None:
    import hashlib

    from genreg.store.packs import PACK_MAGIC, index_bytes

    doc = b"a document"
    pack = filled.objects.put_bytes(PACK_MAGIC + doc)
    rec = (hashlib.sha256(doc).digest(), len(PACK_MAGIC), len(doc))
    index = filled.objects.put_bytes(index_bytes(pack, [rec]))  # verify checks it
    filled.derived.put("pack", "corpus", f"pack:{pack}", pack, {"index": index, "count": 1})
    report = filled.gc(dry_run=False, grace_seconds=0)
    assert report.unreferenced == [] and filled.objects.has(index)
    assert filled.verify().ok


@pytest.fixture
def provider() -> Iterator[list[tuple[str, str]]]:
    named: list[tuple[str, str]] = []

    def fn(_reg: Any) -> list[tuple[str, str]]:
        return list(named)

    admin.register_reference_provider(fn)
    yield named
    admin._PROVIDERS.remove(fn)


def test_gc_keeps_and_verify_checks_objects_from_reference_providers(
    filled: Any, provider: list[tuple[str, str]]
) -> None:
    kept = filled.objects.put_bytes(b"listed by a provider")
    provider.append((kept, "corpus:docs@v1 doc readme.md"))
    assert filled.gc(dry_run=False, grace_seconds=0).unreferenced == []
    filled.objects.delete(kept)
    assert [str(p) for p in filled.verify().problems] == [
        f"corpus:docs@v1 doc readme.md -> object {kept[:12]}... missing"
    ]


def test_gc_and_verify_understand_corpus_snapshots(
    backend: Backend, backend_registry: Any, write: Any
) -> None:
    reg = backend_registry
    write("docs/a.md", "# Alpha\nfirst document\n")
    write("docs/b.md", "# Beta\nsecond document\n")
    snap = reg.snapshot("docs", backend.home.parent / "docs")
    assert snap.created
    assert reg.verify().ok
    assert reg.gc(dry_run=False, grace_seconds=0).unreferenced == []
    docs = sorted(d.doc_id for d in reg.iter_documents("corpus:docs"))
    assert docs == ["a.md", "b.md"]


_KILLED_SNAPSHOT = """
import os, signal, sys
from genreg import Registry
from genreg.store.packs import PackWriter
reg = Registry(sys.argv[1])
w = PackWriter(reg.objects, reg._tmp_dir(), lambda sha: False)
import hashlib
for i in range(200):
    data = (f"document {i} " * 50).encode()
    w.add(hashlib.sha256(data).hexdigest(), data)
w.staged[-1].fh.flush()
os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of a snapshot
"""


def test_gc_reclaims_staging_files_of_a_killed_snapshot_and_reports_them(
    registry: Any, cli: Any
) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _KILLED_SNAPSHOT, str(registry.home)])
    assert proc.returncode == -9
    staged = sorted(registry._tmp_dir().glob("pack-*"))
    assert len(staged) == 1 and staged[0].stat().st_size > 50_000
    r = cli("gc", "--dry-run", "--grace", "0", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert [f["path"] for f in out["staging"]] == [str(staged[0])]
    assert out["staging_bytes_reclaimable"] == staged[0].stat().st_size
    assert staged[0].exists()
    r = cli("gc", "--dry-run")  # default grace: a fresh file is reported, kept
    assert "staging" in r.output and "recent, kept" in r.output
    r = cli("gc", "--delete", "--grace", "0")
    assert r.exit_code == 0, r.output
    assert "deleted" in r.output and not staged[0].exists()


def test_gc_never_reclaims_the_staging_file_of_a_live_snapshot(registry: Any) -> None:
    import hashlib

    from genreg.store.packs import PackWriter

    w = PackWriter(registry.objects, registry._tmp_dir(), lambda sha: False)
    data = b"a document being snapshotted right now"
    w.add(hashlib.sha256(data).hexdigest(), data)
    report = registry.gc(dry_run=False, grace_seconds=0)
    assert report.staging == [] and Path(w.staged[0].name).exists()
    w.commit()
    w.finish()
    assert registry.objects.has(hashlib.sha256(b"GRPACK1\n" + data).hexdigest())


def test_an_object_replaced_by_a_directory_is_one_line_in_show_and_verify(
    filled: Any, cli: Any
) -> None:
    v2 = filled.resolve("prompt:qa@v2")
    path = filled.objects.local_path(v2.object_digest)
    if path is None:
        pytest.skip("local object store only")
    path.chmod(0o644)
    path.unlink()
    path.mkdir()
    r = cli("show", "prompt:qa@v2")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"object sha256:{v2.object_digest} is corrupt" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = cli("verify")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"prompt:qa@v2 -> object {v2.object_digest[:12]}... corrupt" in r.output
