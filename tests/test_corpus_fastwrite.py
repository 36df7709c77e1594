"""The snapshot path writes through stdlib sqlite3; the SQLModel side must read it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _tree(root: Path, n: int = 3) -> Path:
    for i in range(n):
        (root / f"d{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"d{i}.txt").write_text(f"doc {i}\n")
    return root


def test_snapshot_on_sqlite_never_opens_the_sqlalchemy_engine(
    genreg_home: Path, tmp_path: Path
) -> None:
    from genreg import Registry

    Registry.init(genreg_home).close()
    reg = Registry(genreg_home)
    src = _tree(tmp_path / "src")
    assert reg.snapshot("docs", src, message="m", tags={"k": "v"}).created
    (src / "d0.txt").write_text("changed\n")
    assert reg.snapshot("docs", src).created
    assert reg.corpus_status("corpus:docs", src).identical
    assert not reg.metadata.sql_opened


def test_fast_written_rows_read_back_through_sqlmodel(registry: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    first = registry.snapshot("docs", src, message="first", tags={"team": "ml"})
    (src / "d1.txt").write_text("edited\n")
    second = registry.snapshot("docs", src)
    via_orm = registry.repo.history("corpus", "docs")
    assert [v.version for v in via_orm] == [1, 2]
    assert via_orm[0] == first.version and via_orm[1] == second.version
    assert via_orm[1].parent == 1 and via_orm[0].tags == {"team": "ml"}
    assert via_orm[1].summary["docs"] == 3
    packs = registry.derived.list("pack")
    assert len(packs) == 2 and all(p.meta["index"] for p in packs)
    registry.set_alias("corpus:docs@v1", "production")  # the ORM keeps working on these rows
    assert registry.resolve("corpus:docs@production").digest == first.version.digest


def test_fast_writer_continues_numbering_after_an_orm_write(registry: Any, tmp_path: Path) -> None:
    from genreg.core.corpus import Fields, build_manifest, manifest_digest

    src = _tree(tmp_path / "src")
    registry.snapshot("docs", src)
    man = build_manifest([("x", "0" * 64, 1, "text")], source="tree", fields=Fields(), layout=None)
    data = man.to_bytes()
    obj = registry.objects.put_bytes(data)
    registry.repo.add_version("corpus", "docs", digest=manifest_digest(data), object_digest=obj,
                              author="a", message="", tags={}, summary={})  # fmt: skip
    (src / "d2.txt").write_text("x\n")
    assert registry.snapshot("docs", src).version.version == 3
    assert [v.parent for v in registry.history("corpus:docs")] == [None, 1, 2]
