"""Issue 14 items 9, 10, 13, 18 and the tree leftovers of 7: what push and corpus snapshots
read from a working tree, what ``corpus export`` writes, and integrity checks that must look
at what they vouch for. Real registries, real files, the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from genreg.errors import ConfigError, IntegrityError, InvalidArtifact

PROMPT = 'template: "Hi {{ name }}"\nvariables: {properties: {name: {type: string}}}\n'


def _one_line(r: Any) -> str:
    assert r.exit_code != 0, r.output
    assert "Traceback" not in r.output, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


# ---- item 9: two files, one name ---------------------------------------------------------------
def test_push_refuses_two_files_of_the_same_stem_naming_both(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    (tmp_path / "registry/prompts/sub").mkdir(parents=True)
    (tmp_path / "registry/prompts/x.yaml").write_text(PROMPT)
    (tmp_path / "registry/prompts/sub/x.json").write_text('{"template": "yo"}')
    (tmp_path / "registry/prompts/y.yaml").write_text(PROMPT)
    line = _one_line(cli("push"))
    assert "registry/prompts/sub/x.json" in line and "registry/prompts/x.yaml" in line, line
    assert "prompt:x" in line
    assert registry.list("prompt") == []  # nothing registered, not even y


def test_push_of_one_path_given_twice_registers_it_once(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    (tmp_path / "registry/prompts").mkdir(parents=True)
    f = tmp_path / "registry/prompts/x.yaml"
    f.write_text(PROMPT)
    r = cli("push", "registry", str(f), "--json")
    assert r.exit_code == 0, r.output
    assert [x["name"] for x in json.loads(r.output)] == ["x"]


# ---- item 10: symlinks ---------------------------------------------------------------------------
def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "docs"
    (src / "sub").mkdir(parents=True)
    (src / "a.md").write_text("# A\nalpha\n")
    (src / "sub" / "b.md").write_text("# B\nbeta\n")
    return src


def test_symlink_out_of_the_tree_is_not_followed(registry: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("the password is hunter2\n")
    (src / "pw.txt").symlink_to(secret)
    with pytest.raises(InvalidArtifact, match=r"^pw.txt: symbolic link out of the corpus tree"):
        registry.snapshot("kb", src)
    assert registry.list("corpus") == []
    snap = registry.snapshot("kb", src, skip_invalid=True)
    assert [s.path for s in snap.stats.skipped] == ["pw.txt"]
    docs = {d.doc_id: d.text for d in registry.iter_documents("corpus:kb")}
    assert sorted(docs) == ["a.md", "sub/b.md"]
    assert not any("hunter2" in t for t in docs.values())


def test_symlinks_to_directories_and_fifos_are_not_followed(registry: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    (src / "etc").symlink_to("/etc")
    (src / "loop").symlink_to(src / "sub")
    os.mkfifo(src / "pipe.txt")
    snap = registry.snapshot("kb", src, skip_invalid=True)  # returns: a FIFO is never opened
    reasons = {s.path: s.reason for s in snap.stats.skipped}
    assert reasons == {
        "etc": "symbolic link out of the corpus tree (not followed)",
        "loop": "symbolic link to a directory (not followed)",
        "pipe.txt": "not a regular file (FIFO, device or socket)",
    }


def test_symlink_to_a_file_inside_the_tree_is_read(registry: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    (src / "alias.md").symlink_to(src / "sub" / "b.md")
    registry.snapshot("kb", src)
    docs = {d.doc_id: d.text for d in registry.iter_documents("corpus:kb")}
    assert docs["alias.md"] == docs["sub/b.md"]


@pytest.mark.parametrize("planted", ["a.md", "sub"])
def test_corpus_export_does_not_follow_existing_symlinks(
    cli: Any, registry: Any, tmp_path: Path, planted: str
) -> None:
    src = _tree(tmp_path)
    registry.snapshot("kb", src)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "b.md").write_text("precious\n")
    (victim / "a.md").write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / planted).symlink_to(victim / planted if planted == "a.md" else victim)
    line = _one_line(cli("corpus", "export", "corpus:kb", out))
    assert "is a symbolic link; corpus export does not follow links" in line, line
    assert (victim / "b.md").read_text() == "precious\n"
    assert (victim / "a.md").read_text() == "precious\n"


# ---- item 13 and 7: file names ------------------------------------------------------------------
def test_backslash_in_a_file_name_is_one_rule_at_snapshot_and_export(
    registry: Any, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    (src / "a\\b.txt").write_text("x\n")
    with pytest.raises(InvalidArtifact, match=r"^a\\b.txt: backslash in the file name"):
        registry.snapshot("kb", src)
    snap = registry.snapshot("kb", src, skip_invalid=True)
    assert [s.path for s in snap.stats.skipped] == ["a\\b.txt"]
    stats = registry.corpus_export("corpus:kb", tmp_path / "out")  # what was stored exports
    assert stats.docs == 2


def test_non_utf8_file_name_is_a_listed_problem_not_a_traceback(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    with open(os.fsencode(src) + b"/caf\xe9.txt", "wb") as fh:
        fh.write(b"latin-1 name\n")
    line = _one_line(cli("corpus", "snapshot", "kb", src))
    assert "caf\\xe9.txt: file name is not valid UTF-8" in line, line
    r = cli("corpus", "snapshot", "kb", src, "--skip-invalid")
    assert r.exit_code == 0, r.output
    assert [d.doc_id for d in registry.iter_documents("corpus:kb")] == ["a.md", "sub/b.md"]


def test_show_and_diff_of_a_corpus_snapshot(cli: Any, registry: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    registry.snapshot("kb", src)
    (src / "c.md").write_text("gamma\n")
    registry.snapshot("kb", src)
    r = cli("show", "corpus:kb@v1")
    assert r.exit_code == 0 and "documents: 2" in r.output, r.output
    out = json.loads(cli("show", "corpus:kb", "--json").output)
    assert out["content"]["documents"] == 3 and out["content"]["formats"] == {"md": 3}
    r = cli("diff", "corpus:kb@v1", "corpus:kb@v2")
    assert r.exit_code == 0 and "+ c.md" in r.output, r.output


# ---- item 18: checks that read what they vouch for ---------------------------------------------
def _corrupt(registry: Any, digest: str) -> None:
    path = registry.objects.local_path(digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))


def test_corrupt_manifest_is_caught_by_corpus_status_and_diff(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    snap = registry.snapshot("kb", src)
    registry.snapshot("kb2", src)  # same content: same manifest digest
    _corrupt(registry, snap.version.object_digest)
    with pytest.raises(IntegrityError, match="is corrupt"):
        registry.corpus_status("corpus:kb", src)
    with pytest.raises(IntegrityError, match="is corrupt"):
        registry.corpus_diff("corpus:kb", "corpus:kb2")
    line = _one_line(cli("corpus", "status", "corpus:kb", src))
    assert f"object sha256:{snap.version.object_digest} is corrupt" in line


def _pack_rows(registry: Any) -> list[tuple[str, str]]:
    return [(d.object_digest, d.meta["index"]) for d in registry.derived.list("pack")]


def test_verify_checks_the_local_pack_index_against_the_packs(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    registry.snapshot("kb", src)
    assert registry.verify().ok
    db = sqlite3.connect(registry.home / "packs.sqlite")
    db.execute("UPDATE blob SET off = off + 1")
    db.commit()
    db.close()
    with pytest.raises(IntegrityError):  # what export meets
        registry.corpus_export("corpus:kb", tmp_path / "out")
    r = cli("verify")
    assert r.exit_code == 1, r.output
    assert "local pack index" in r.output and "disagrees" in r.output, r.output


def test_verify_checks_pack_index_objects_against_their_packs(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    registry.snapshot("kb", src)
    other = tmp_path / "other"
    other.mkdir()
    (other / "z.md").write_text("zeta\n")
    registry.snapshot("kb2", other)
    (p1, i1), (p2, i2) = sorted(_pack_rows(registry))
    # the pack row now names the other pack's (intact, correctly hashed) index object
    db = sqlite3.connect(registry.home / "registry.db")
    meta = json.dumps({"index": i2})
    db.execute("UPDATE derived SET meta = ? WHERE object_digest = ?", (meta, p1))
    db.commit()
    db.close()
    registry._packidx.close()  # another machine: its local cache is rebuilt from the rows
    del registry._store.__dict__["packs"]
    (registry.home / "packs.sqlite").unlink()
    rep = registry.verify()
    assert not rep.ok
    assert any(
        p.object == p1 and p.problem.startswith("bad-index: index names pack") for p in rep.problems
    )
    with pytest.raises((IntegrityError, ConfigError)):
        registry.corpus_export("corpus:kb", tmp_path / "out")


# ---- item 7: embedding.model pointing at a directory that is not a model -----------------------
@pytest.mark.parametrize(
    ("modules", "expect"),
    [
        (None, "not a model directory: no config.json in"),
        ("garbage", "modules.json is not readable JSON"),
        ("{}", "modules.json must be a non-empty list of modules"),
        ('[{"type": "evil.Module", "path": ""}]', "module type 'evil.Module' is not part of"),
        ('[{"type": "sentence_transformers.models.Transformer", "path": ""}]', "no config.json"),
    ],
)
def test_embedding_model_that_is_not_a_model_dir_is_one_line(
    cli: Any, registry: Any, tmp_path: Path, modules: str | None, expect: str
) -> None:
    (tmp_path / "gold.jsonl").write_text('{"id": "q1", "query": "alpha", "relevant": ["a.md"]}\n')
    assert cli("register", "evalset", "gold", tmp_path / "gold.jsonl").exit_code == 0
    registry.snapshot("kb", _tree(tmp_path))
    model = tmp_path / "notmodel"
    model.mkdir()
    (model / "notes.txt").write_text("not a model\n")
    if modules is not None:
        (model / "modules.json").write_text(modules)
    cfg = tmp_path / "ev.yaml"
    cfg.write_text(
        "name: t\nevalset: evalset:gold\ncorpus: corpus:kb\nmetrics: [mrr@10]\n"
        f"embedding: {{model: {model}}}\n"
    )
    line = _one_line(cli("eval", "run", cfg))
    assert f"embedding model {model}" in line and expect in line, line
    assert registry.list_runs() == []


def test_not_a_model_dir_is_one_line_outside_the_service_too(tmp_path: Path) -> None:
    """The check lives at the retrieval edge: ``genreg.retrieval.load_embedder`` (no
    registry at all) refuses the directory with the same line, before hashing anything."""
    from genreg.errors import ConfigError
    from genreg.retrieval import load_embedder

    model = tmp_path / "notmodel"
    model.mkdir()
    (model / "notes.txt").write_text("not a model\n")
    with pytest.raises(ConfigError, match=r"^embedding model .*notmodel: not a model directory"):
        load_embedder(str(model))
    with pytest.raises(ConfigError, match="is not part of sentence-transformers"):
        (model / "modules.json").write_text('[{"type": "evil.Module", "path": ""}]')
        load_embedder({"model": str(model), "backend": "onnx"})


def test_model_dir_the_loader_refuses_is_one_line_on_every_entry_point(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    """A directory shaped like a model (config.json with a model_type, a weights file) whose
    weights the loader refuses: ``corpus index --model``, ``Registry.build_index`` and
    ``Embedder.encode`` each give one ConfigError line naming the directory, never the
    safetensors/transformers traceback."""
    from genreg.errors import ConfigError
    from genreg.retrieval import load_embedder

    registry.snapshot("kb", _tree(tmp_path))
    model = tmp_path / "broken"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    (model / "model.safetensors").write_bytes(b"junk")
    expect = f"embedding model {model}: cannot load {model}: "
    line = _one_line(cli("corpus", "index", "corpus:kb", "--model", str(model)))
    assert line.startswith("error: " + expect), line
    with pytest.raises(ConfigError) as exc:
        registry.build_index("corpus:kb", model=str(model))
    assert str(exc.value).startswith(expect) and "\n" not in str(exc.value)
    emb = load_embedder(str(model))
    with pytest.raises(ConfigError, match="cannot load"):
        emb.encode(["alpha"])


def test_corpus_document_size_cap_is_a_listed_problem(
    registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tree(tmp_path)
    (src / "big.txt").write_text("x" * 5000)
    monkeypatch.setenv("GENREG_MAX_DOCUMENT_BYTES", "4096")
    with pytest.raises(InvalidArtifact, match=r"^big.txt: larger than the document size cap"):
        registry.snapshot("kb", src)
    snap = registry.snapshot("kb", src, skip_invalid=True)
    assert [s.path for s in snap.stats.skipped] == ["big.txt"]
