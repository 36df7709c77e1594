"""One contract for every :class:`genreg.store.metadata.Metadata` implementation: the same
values, error types and messages from the stdlib-sqlite3 one and the SQLModel one (on SQLite,
and on PostgreSQL when a server is configured). Replaces the old pairwise fast-vs-ORM checks."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _backends import POSTGRES_ENV, need, postgres_database
from genreg.core.refs import Ref, parse_ref
from genreg.errors import AmbiguousRef, GenregError, NotFound
from genreg.store.migrations import HEAD

IMPLS = [
    pytest.param("sqlite3", id="sqlite-stdlib"),
    pytest.param("sqlmodel", id="sqlite-sqlmodel"),
    pytest.param("postgres", id="postgres-sqlmodel", marks=pytest.mark.postgres),
]


@contextlib.contextmanager
def _open(impl: str, tmp: Path) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:
        if impl == "postgres":
            from genreg.store.sql_metadata import SqlMetadata

            url = stack.enter_context(postgres_database(need(POSTGRES_ENV, "PostgreSQL server")))
            md: Any = SqlMetadata(url)
        elif impl == "sqlmodel":
            from genreg.store.sql_metadata import SqlMetadata

            md = SqlMetadata(f"sqlite:///{tmp / 'registry.db'}")
        else:
            from genreg.store.sqlite_metadata import SqliteMetadata

            md = SqliteMetadata(f"sqlite:///{tmp / 'registry.db'}")
        md.ensure_schema()
        try:
            yield md
        finally:
            md.close()


@pytest.fixture(params=IMPLS)
def md(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with _open(request.param, tmp_path) as m:
        yield m


def _digest(prefix: str, i: int) -> str:
    return "sha256:" + (prefix + f"{i:x}").ljust(64, "0")


def _add(md: Any, name: str, i: int, prefix: str = "ab", kind: str = "prompt") -> Any:
    return md.add_version(
        kind,
        name,
        digest=_digest(prefix, i),
        object_digest=f"{i:064x}",
        author="ana",
        message=f"m{i}",
        tags={"i": i, "ü": "ß"},
        summary={"n": i},
    )


def _err(fn: Any) -> tuple[type, str]:
    with pytest.raises(GenregError) as e:
        fn()
    return type(e.value), str(e.value)


def test_add_version_numbers_links_and_deduplicates(md: Any) -> None:
    v1, c1 = _add(md, "qa", 1)
    v2, c2 = _add(md, "qa", 2)
    again, c3 = _add(md, "qa", 1)
    assert (c1, c2, c3) == (True, True, False)
    assert (v1.version, v1.parent, v2.version, v2.parent) == (1, None, 2, 1)
    assert again == v1
    assert (v2.kind, v2.name, v2.digest, v2.object_digest) == (
        "prompt",
        "qa",
        _digest("ab", 2),
        f"{2:064x}",
    )
    assert (v2.author, v2.message, v2.tags, v2.summary) == (
        "ana",
        "m2",
        {"i": 2, "ü": "ß"},
        {"n": 2},
    )
    assert v2.created_at.endswith("Z") and v1.created_at <= v2.created_at
    assert md.resolve(Ref("prompt", "qa", version=2)) == v2


def test_every_reference_form_resolves(md: Any) -> None:
    for i in (1, 2, 3):
        _add(md, "qa", i, prefix=f"c{i}")
    md.set_alias("prompt", "qa", "production", 2, actor="a", reason="r", run_id=None)
    md.set_alias("prompt", "qa", "canary", 2, actor="a", reason="", run_id=None)
    latest = md.resolve(parse_ref("prompt:qa"))
    assert (latest.version, latest.aliases) == (3, ())
    pinned = md.resolve(parse_ref("prompt:qa@v2"))
    assert pinned.aliases == ("canary", "production")
    assert md.resolve(parse_ref("prompt:qa@production")) == pinned
    assert md.resolve(parse_ref(f"prompt:qa@sha256:{_digest('c2', 2)[7:19]}")) == pinned
    assert md.resolve(parse_ref(f"prompt:qa@{_digest('c2', 2)}")) == pinned
    assert md.version_by_digest("prompt", "qa", _digest("c2", 2)) == pinned
    assert md.version_by_digest("prompt", "qa", _digest("ff", 9)) is None
    assert md.version_by_digest("prompt", "nope", _digest("c2", 2)) is None


def test_errors_have_one_type_and_message(md: Any) -> None:
    _add(md, "qa", 1, prefix="dddddd")
    _add(md, "qa", 2, prefix="dddddd")
    cases = {
        "prompt:nope": (NotFound, "prompt:nope not found"),
        "prompt:qa@v9": (NotFound, "prompt:qa@v9 not found"),
        "prompt:qa@canary": (NotFound, "prompt:qa has no alias 'canary'"),
        "prompt:qa@sha256:ffffff": (NotFound, "prompt:qa@sha256:ffffff matches no version"),
        "prompt:qa@sha256:dddddd": (
            AmbiguousRef,
            "prompt:qa@sha256:dddddd is ambiguous: matches v1 and v2; give more digits",
        ),
    }
    for text, want in cases.items():
        assert _err(lambda t=text: md.resolve(parse_ref(t))) == want, text
    assert _err(lambda: md.history("prompt", "nope")) == (NotFound, "prompt:nope not found")
    assert _err(
        lambda: md.set_alias("prompt", "qa", "prod", 7, actor="a", reason="", run_id=None)
    ) == (NotFound, "prompt:qa@v7 not found")
    assert _err(lambda: md.remove_alias("prompt", "qa", "prod", actor="a", reason="")) == (
        NotFound,
        "prompt:qa has no alias 'prod'",
    )
    assert _err(lambda: md.alias_history("prompt", "nope")) == (NotFound, "prompt:nope not found")


def test_history_and_listing(md: Any) -> None:
    _add(md, "b", 1)
    _add(md, "b", 2)
    _add(md, "a", 3, kind="routing")
    md.set_alias("prompt", "b", "production", 1, actor="a", reason="", run_id=None)
    hist = md.history("prompt", "b")
    assert [(v.version, v.parent, v.aliases) for v in hist] == [
        (1, None, ("production",)),
        (2, 1, ()),
    ]
    assert hist[1] == md.resolve(parse_ref("prompt:b"))
    listed = [(a.kind, a.name, a.latest, a.versions, a.aliases) for a in md.list_artifacts()]
    assert listed == [("prompt", "b", 2, 2, {"production": 1}), ("routing", "a", 1, 1, {})]
    assert [a.name for a in md.list_artifacts("routing")] == ["a"]
    assert md.list_artifacts("evalset") == []


def test_alias_journal(md: Any) -> None:
    _add(md, "qa", 1)
    _add(md, "qa", 2)
    e1 = md.set_alias("prompt", "qa", "prod", 1, actor="ana", reason="first", run_id="r1")
    same = md.set_alias("prompt", "qa", "prod", 1, actor="bob", reason="again", run_id=None)
    e2 = md.set_alias("prompt", "qa", "prod", 2, actor="bob", reason="move", run_id=None)
    e3 = md.remove_alias("prompt", "qa", "prod", actor="cy", reason="gone")
    assert (e1.action, e1.from_version, e1.to_version, e1.run_id) == ("set", None, 1, "r1")
    assert (same.action, same.actor) == ("unchanged", "ana")
    assert (e2.action, e2.from_version, e2.to_version) == ("move", 1, 2)
    assert (e3.action, e3.from_version, e3.to_version) == ("delete", 2, None)
    assert md.alias_history("prompt", "qa") == [e1, e2, e3]
    assert md.alias_history("prompt", "qa", "other") == []


def test_derived_rows(md: Any) -> None:
    d = md.derived
    first = d.put("pack", "corpus", "pack:1", "a" * 64, {"index": "b" * 64})
    again = d.put("pack", "corpus", "pack:1", "c" * 64, {"index": "x"})
    d.put("pack", "other", "pack:2", "d" * 64)
    d.put("index", "corpus", "idx:1", "e" * 64, {"k": [1, 2]})
    assert again == first and first.meta == {"index": "b" * 64} and first.created_at
    assert d.get("pack:1") == first and d.get("nope") is None
    assert [r.key for r in d.list("pack")] == ["pack:1", "pack:2"]
    assert [r.key for r in d.list("pack", scope="other")] == ["pack:2"]
    assert d.get("pack:2").meta == {}
    assert d.list("index")[0].meta == {"k": [1, 2]}


def test_derived_rows_delete(md: Any) -> None:
    """Only for rows with a lifetime (a build's lease); deleting an absent key is a no-op."""
    d = md.derived
    d.put("lease", "s", "lease:a:1", "a" * 64, {"expires": 1.0})
    d.put("lease", "s", "lease:b:1", "b" * 64)
    d.delete("lease:a:1")
    d.delete("never-there")
    assert d.get("lease:a:1") is None and [r.key for r in d.list("lease")] == ["lease:b:1"]


def test_derived_rows_in_one_batch(md: Any) -> None:
    d = md.derived
    d.put("llmresp", "s", "k0", "0" * 64, {"repeat": 0})
    rows = [("llmresp", "s", f"k{i}", f"{i:064x}", {"repeat": i}) for i in range(3)]
    assert d.put_many(rows) == 2  # k0 exists: skipped
    assert d.put_many([]) == 0
    got = d.list("llmresp", scope="s")
    assert [(r.key, r.object_digest, r.meta) for r in got] == [
        ("k0", "0" * 64, {"repeat": 0}),
        ("k1", f"{1:064x}", {"repeat": 1}),
        ("k2", f"{2:064x}", {"repeat": 2}),
    ]


def test_liveness_and_inventory(md: Any) -> None:
    assert md.ping() == HEAD
    _add(md, "qa", 1)
    md.derived.put("pack", "corpus", "pack:1", "a" * 64, {"index": "b" * 64})
    refs = {(r.digest, r.owner, r.kind) for r in md.object_references()}
    assert (f"{1:064x}", "prompt:qa@v1", "version") in refs
    assert ("b" * 64, "derived pack pack:1 index", "derived-index") in refs
    kinds = {(r.digest, r.kind, r.derived_kind) for r in md.object_references()}
    assert {("a" * 64, "derived", "pack"), ("b" * 64, "derived-index", "pack")} <= kinds
    assert (f"{1:064x}", "version", "") in kinds  # gc tells a lease row by this, not its name
    dv = md.data_version()
    if dv is None:
        return  # no cheap change counter: callers resolve every time
    other = sqlite3.connect(md.url.removeprefix("sqlite:///"))
    with other:
        other.execute("UPDATE version SET message='x' WHERE number=1")
    other.close()
    assert md.data_version() != dv


def test_rows_written_by_one_implementation_read_the_same_through_the_other(
    tmp_path: Path,
) -> None:
    with _open("sqlite3", tmp_path) as fast, _open("sqlmodel", tmp_path) as orm:
        v1, _ = _add(fast, "qa", 1)
        v2, _ = _add(orm, "qa", 2)
        v3, _ = _add(fast, "qa", 3)
        assert (v2.parent, v3.version, v3.parent) == (1, 3, 2)
        orm.set_alias("prompt", "qa", "prod", 2, actor="a", reason="", run_id=None)
        for text in ["prompt:qa", "prompt:qa@v1", "prompt:qa@prod", f"prompt:qa@{v2.digest}"]:
            assert fast.resolve(parse_ref(text)) == orm.resolve(parse_ref(text)), text
        assert fast.history("prompt", "qa") == orm.history("prompt", "qa")
        assert fast.list_artifacts() == orm.list_artifacts()
        fast.derived.put("pack", "corpus", "k1", "a" * 64, {"index": "b" * 64})
        orm.derived.put("pack", "corpus", "k2", "c" * 64, {})
        assert fast.derived.list("pack") == orm.derived.list("pack")
        assert fast.derived.get("k1") == orm.derived.get("k1")


def test_open_metadata_chooses_once_by_url(tmp_path: Path) -> None:
    from genreg.store.metadata import open_metadata
    from genreg.store.sql_metadata import SqlMetadata
    from genreg.store.sqlite_metadata import SqliteMetadata, open_current

    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert isinstance(open_metadata(url), SqliteMetadata)
    assert isinstance(open_metadata("postgresql+psycopg://u@h/db"), SqlMetadata)
    assert open_current(url) is None  # no file yet: nothing to read without migrating
    md = open_metadata(url)
    md.ensure_schema()
    md.close()
    current = open_current(url)
    assert current is not None and current.resolve is not None
    assert not current.sql_opened
