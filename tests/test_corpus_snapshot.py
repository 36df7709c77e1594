"""Corpus snapshots: no-op re-snapshots, diffs, the stat cache, dedup, export, bad sources."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from genreg.errors import InvalidArtifact, NotFound


def make_tree(root: Path, n: int = 20, size: int = 300) -> Path:
    for i in range(n):
        p = root / f"sec{i % 3}" / f"doc{i:03}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# Doc {i}\n" + (f"body {i} " * size)[:size] + "\n", encoding="utf-8")
    (root / "page.html").write_text(
        "<html><title>Page</title><body><p>Hello <b>web</b></p></body></html>"
    )
    (root / "note.txt").write_text("plain text\n")
    (root / "rec.json").write_text('{"title": "JT", "text": "json text", "lang": "en"}')
    (root / ".hidden").write_bytes(b"\x00ignored")
    age(root)
    return root


def age(root: Path, seconds: float = 60) -> None:
    """Backdate mtimes so the stat cache may trust them (fresh files are 'racy')."""
    t = time.time() - seconds
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (t, t))


def object_files(reg: Any) -> set[str]:
    return set(reg.objects.iter_digests())


def test_identical_resnapshot_is_a_noop(registry: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    first = registry.snapshot("docs", src)
    before = object_files(registry)
    again = registry.snapshot("docs", src)
    assert first.created and not again.created
    assert again.version.version == 1 and again.version.digest == first.version.digest
    assert again.stats.hashed_files == 0 and again.stats.new_bytes == 0
    assert object_files(registry) == before
    assert [v.version for v in registry.history("corpus:docs")] == [1]


def test_one_changed_document_changes_digest_and_diff_names_it(
    registry: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src")
    v1 = registry.snapshot("docs", src).version
    (src / "sec1" / "doc004.md").write_text("# Doc 4\nrewritten\n")
    (src / "added.txt").write_text("new\n")
    (src / "note.txt").unlink()
    v2 = registry.snapshot("docs", src).version
    assert v2.version == 2 and v2.digest != v1.digest
    d = registry.corpus_diff("corpus:docs@v1", "corpus:docs@v2")
    assert (d.changed, d.added, d.removed) == (["sec1/doc004.md"], ["added.txt"], ["note.txt"])
    assert d.counts()["unchanged"] == v1.summary["docs"] - 2


def test_stat_cache_hashes_only_changed_files_and_verify_rehashes_all(
    registry: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src")
    n = registry.snapshot("docs", src).stats.files
    changed = src / "sec0" / "doc000.md"
    changed.write_text("changed!\n")
    t = time.time() - 30
    os.utime(changed, (t, t))
    res = registry.snapshot("docs", src)
    assert res.created and res.stats.hashed_files == 1
    (src / "sec0" / "doc003.md").write_text("changed again\n")
    res = registry.snapshot("docs", src)
    assert res.stats.hashed_files == 1 and res.created
    full = registry.snapshot("docs", src, verify=True)
    assert full.stats.hashed_files == n and not full.created


def test_same_size_edit_with_new_mtime_is_detected(registry: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    registry.snapshot("docs", src)
    p = src / "note.txt"
    p.write_text("PLAIN text\n")  # same size
    res = registry.snapshot("docs", src)
    assert res.created
    d = registry.corpus_diff("corpus:docs@v1", "corpus:docs@v2")
    assert d.changed == ["note.txt"]


def test_second_snapshot_with_one_changed_doc_stores_one_doc_of_new_bytes(
    registry: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", n=50)
    first = registry.snapshot("docs", src)
    (src / "sec2" / "doc005.md").write_text("tiny\n")
    res = registry.snapshot("docs", src)
    assert first.stats.new_docs == first.stats.docs
    assert (res.stats.new_docs, res.stats.new_bytes) == (1, 5)
    other = registry.snapshot("copy", src)  # same content, another corpus: nothing new stored
    assert other.created and other.stats.new_bytes == 0


def test_documents_are_sorted_and_text_is_derived(registry: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", n=4)
    registry.snapshot("docs", src)
    docs = list(registry.iter_documents("corpus:docs"))
    ids = [d.doc_id for d in docs]
    assert ids == sorted(ids) and ".hidden" not in ids
    by = {d.doc_id: d for d in docs}
    assert (by["page.html"].title, by["page.html"].text) == ("Page", "Hello web")
    assert by["rec.json"].embed_text() == "JT json text" and by["rec.json"].metadata["lang"] == "en"
    assert by["note.txt"].text == "plain text\n"


def _same_tree(a: Path, b: Path) -> None:
    fa = sorted(
        p.relative_to(a) for p in a.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert fa == fb
    for rel in fa:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_export_restores_byte_identical_tree(registry: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    (src / "sub" / "recs.jsonl").parent.mkdir()
    (src / "sub" / "recs.jsonl").write_bytes(b'{"id":"1","text":"a"}\n\n{"id":"2","text":"b"}')
    registry.snapshot("docs", src)
    st = registry.corpus_export("corpus:docs", tmp_path / "out")
    _same_tree(src, tmp_path / "out")
    assert st.docs == 25
    ids = [d.doc_id for d in registry.iter_documents("corpus:docs")]
    assert "sub/recs.jsonl#1" in ids and "sub/recs.jsonl#2" in ids


def test_export_restores_byte_identical_jsonl_in_original_order(
    registry: Any, tmp_path: Path
) -> None:
    raw = b'{"id":"z","text":"last first"}\r\n   \n{"id":"a","text":"\\u00e9","title":"t"}\n{"id":7,"text":"no newline"}'
    src = tmp_path / "c.jsonl"
    src.write_bytes(raw)
    res = registry.snapshot("j", src)
    assert res.stats.docs == 3
    registry.corpus_export("corpus:j", tmp_path / "out")
    assert (tmp_path / "out" / "c.jsonl").read_bytes() == raw
    assert [d.doc_id for d in registry.iter_documents("corpus:j")] == ["7", "a", "z"]


def test_export_restores_beir_corpus(registry: Any, tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    corpus = (
        b'{"_id": "d1", "title": "T1", "text": "one"}\n{"_id": "d2", "title": "", "text": "two"}\n'
    )
    (beir / "corpus.jsonl").write_bytes(corpus)
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "q"}\n')
    res = registry.snapshot("beir", beir)
    assert res.version.summary["source"] == "beir" and res.stats.docs == 2
    assert [d.embed_text() for d in registry.iter_documents("corpus:beir")] == ["T1 one", "two"]
    registry.corpus_export("corpus:beir", tmp_path / "out")
    assert (tmp_path / "out" / "corpus.jsonl").read_bytes() == corpus


def test_one_percent_edit_of_jsonl_stores_about_one_percent_new_bytes(
    registry: Any, tmp_path: Path
) -> None:
    lines = [f'{{"id":"{i}","text":"{"w" * 200} {i}"}}\n' for i in range(400)]
    src = tmp_path / "big.jsonl"
    src.write_text("".join(lines))
    total = registry.snapshot("big", src).stats.new_bytes
    for i in range(0, 400, 100):
        lines[i] = lines[i].replace("www", "WWW", 1)
    src.write_text("".join(lines))
    res = registry.snapshot("big", src)
    assert res.created and res.stats.new_docs == 4
    assert res.stats.new_bytes <= 0.02 * total
    assert registry.corpus_diff("corpus:big@v1", "corpus:big@v2").changed == [
        "0",
        "100",
        "200",
        "300",
    ]


def test_status_reports_clean_and_drift(registry: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    registry.snapshot("docs", src)
    assert not registry.corpus_status("corpus:docs", src).drifted
    (src / "note.txt").write_text("drift\n")
    d = registry.corpus_status("corpus:docs@v1", src)
    assert d.drifted and d.changed == ["note.txt"]
    assert [v.version for v in registry.history("corpus:docs")] == [1]


def assert_nothing_written(registry: Any) -> None:
    with pytest.raises(NotFound):
        registry.resolve("corpus:bad")
    assert object_files(registry) == set()
    tmp = Path(registry.objects.root) / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("img.png", b"\x89PNG\r\n\x1a\n\x00\x00", "img.png: binary file (NUL byte at offset 8)"),
        ("latin1.txt", "caf\xe9".encode("latin-1"), "latin1.txt: not valid UTF-8 (byte 3)"),
        ("bad.json", b'{"title": "no text"}', "bad.json: field 'text' missing"),
        (
            "x.jsonl",
            b'{"id":"1","text":"a"}\n{"id":"1","text":"b"}\n',
            "x.jsonl:2: duplicate doc id 'x.jsonl#1' (first at x.jsonl:1)",
        ),
        ("y.jsonl", b'{"id":"1","text":"a"}\n{oops\n', "y.jsonl:2: invalid JSON"),
    ],
)
def test_bad_file_is_a_clear_error_and_writes_nothing(
    registry: Any, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    src = make_tree(tmp_path / "src", n=3)
    (src / name).write_bytes(content)
    with pytest.raises(InvalidArtifact) as exc:
        registry.snapshot("bad", src)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)
    assert_nothing_written(registry)


def test_duplicate_ids_in_jsonl_source_name_the_line(registry: Any, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text('{"id":"a","text":"1"}\n{"id":"b","text":"2"}\n{"id":"a","text":"3"}\n')
    with pytest.raises(
        InvalidArtifact, match=r"c.jsonl:3: duplicate doc id 'a' \(first at c.jsonl:1\)"
    ):
        registry.snapshot("bad", src)
    assert_nothing_written(registry)


def test_unreadable_file_is_a_clear_error(registry: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", n=3)
    secret = src / "secret.md"
    secret.write_text("x")
    secret.chmod(0)
    try:
        if os.access(secret, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reads")
        with pytest.raises(InvalidArtifact, match=r"^secret.md: cannot read \(Permission denied\)"):
            registry.snapshot("bad", src)
        assert_nothing_written(registry)
    finally:
        secret.chmod(0o644)


def test_dangling_symlink_is_a_clear_error(registry: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", n=3)
    (src / "gone.md").symlink_to(tmp_path / "missing.md")
    with pytest.raises(InvalidArtifact, match=r"^gone.md: cannot stat \(No such file"):
        registry.snapshot("bad", src)
    assert_nothing_written(registry)


def test_empty_source_is_an_error(registry: Any, tmp_path: Path) -> None:
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    with pytest.raises(InvalidArtifact, match="no documents found"):
        registry.snapshot("bad", tmp_path / "empty")
    assert_nothing_written(registry)


def test_skip_invalid_lists_skipped_files_and_snapshots_the_rest(
    registry: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", n=3)
    (src / "img.png").write_bytes(b"\x00\x01")
    (src / "r.jsonl").write_text('{"id":"1","text":"a"}\n{"id":"1","text":"b"}\n')
    res = registry.snapshot("docs", src, skip_invalid=True)
    assert [(s.path, s.line) for s in res.stats.skipped] == [("img.png", None), ("r.jsonl", 2)]
    ids = {d.doc_id for d in registry.iter_documents("corpus:docs")}
    assert "img.png" not in ids and "r.jsonl#1" in ids


def test_local_pack_index_is_rebuilt_from_recorded_packs(registry: Any, tmp_path: Path) -> None:
    from genreg import Registry

    src = make_tree(tmp_path / "src", n=10)
    registry.snapshot("docs", src)
    registry._packidx.close()
    (registry.home / "packs.sqlite").unlink()
    for extra in ("-wal", "-shm"):
        (registry.home / f"packs.sqlite{extra}").unlink(missing_ok=True)
    fresh = Registry(registry.home)
    assert len(list(fresh.iter_documents("corpus:docs"))) == 13
    (src / "note.txt").write_text("one more change\n")
    res = fresh.snapshot("docs", src)
    assert res.created and res.stats.new_docs == 1  # still deduplicated against old packs


def test_corrupt_pack_is_detected_on_read(registry: Any, tmp_path: Path) -> None:
    from genreg.errors import IntegrityError

    src = make_tree(tmp_path / "src", n=3)
    registry.snapshot("docs", src)
    (pack,) = registry._packidx.packs()
    p = registry.objects.local_path(pack)
    p.chmod(0o644)
    data = bytearray(p.read_bytes())
    data[-2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="corrupt"):
        list(registry.iter_documents("corpus:docs"))


def test_deleting_a_file_after_a_noop_resnapshot_is_seen(registry: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    registry.snapshot("docs", src)
    assert not registry.snapshot("docs", src).created  # memoises the manifest digest
    (src / "sec0" / "doc000.md").unlink()
    assert registry.corpus_status("corpus:docs", src).removed == ["sec0/doc000.md"]
    res = registry.snapshot("docs", src)
    assert res.created and res.stats.hashed_files == 0
    assert registry.corpus_diff("corpus:docs@v1", "corpus:docs@v2").removed == ["sec0/doc000.md"]
