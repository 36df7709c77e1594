"""Schema migrations: from an empty database, from the previous schema with data in it,
idempotent, and ``HEAD`` in step with the Alembic scripts -- on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _backends import Backend
from genreg.settings import Settings
from genreg.store.migrations import HEAD

NEW_INDEXES = {
    ("run_metric", "ix_run_metric_name_value"),
    ("run", "ix_run_started_at"),
    ("alias_event", "ix_alias_event_run"),
    ("run_input", "ix_run_input_digest"),
}
TABLES = {"artifact", "version", "alias", "alias_event", "run", "run_input", "run_metric"}


def _engine(backend: Backend) -> Any:
    from genreg.store.db import make_engine

    backend.home.mkdir(parents=True, exist_ok=True)
    return make_engine(Settings.for_home(backend.home).database_url)


def _schema(engine: Any) -> dict[str, Any]:
    from sqlalchemy import inspect

    insp = inspect(engine)
    return {
        t: {
            "columns": sorted(c["name"] for c in insp.get_columns(t)),
            "indexes": sorted(i["name"] for i in insp.get_indexes(t)),
            "unique": sorted(str(u["name"]) for u in insp.get_unique_constraints(t)),
        }
        for t in sorted(insp.get_table_names())
    }


def _indexes(engine: Any) -> set[tuple[str, str]]:
    return {(t, i) for t, spec in _schema(engine).items() for i in spec["indexes"]}


def test_head_constant_is_the_alembic_script_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import genreg.store.migrations as m

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(m.__file__).parent))
    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert heads == [HEAD]


def test_empty_database_upgrades_to_head_with_every_table(db_backend: Backend) -> None:
    from genreg.store.db import current_revision, upgrade

    engine = _engine(db_backend)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == HEAD
        assert set(_schema(engine)) >= TABLES
        assert _indexes(engine) >= NEW_INDEXES
    finally:
        engine.dispose()


def test_upgrade_from_previous_schema_keeps_the_data(db_backend: Backend) -> None:
    from genreg.store.db import current_revision, upgrade
    from genreg.store.repo import Repo

    engine = _engine(db_backend)
    try:
        upgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        assert not NEW_INDEXES & _indexes(engine)
        repo = Repo(engine)  # write with the code of today into the old schema
        for i in (1, 2):
            repo.add_version(
                "prompt",
                "qa",
                digest=f"sha256:{i:064x}",
                object_digest=f"{i:064x}",
                author="old",
                message=f"m{i}",
                tags={"i": i},
                summary={},
            )
        repo.set_alias("prompt", "qa", "production", 1, actor="old", reason="r", run_id=None)
    finally:
        engine.dispose()

    from genreg import Registry

    with Registry(db_backend.home) as reg:  # first use of the database migrates it
        hist = reg.history("prompt:qa")
        assert reg.db_current()["current"] == HEAD
        assert [(v.version, v.message, v.tags, v.aliases) for v in hist] == [
            (1, "m1", {"i": 1}, ("production",)),
            (2, "m2", {"i": 2}, ()),
        ]
        assert [e.action for e in reg.alias_history("prompt:qa")] == ["set"]
        assert _indexes(reg.engine) >= NEW_INDEXES


def test_migrating_twice_is_a_no_op(db_backend: Backend) -> None:
    from sqlalchemy import text

    from genreg.store.db import upgrade

    engine = _engine(db_backend)
    try:
        upgrade(engine)
        before = _schema(engine)
        upgrade(engine)
        assert _schema(engine) == before
        with engine.connect() as c:
            assert c.execute(text("SELECT version_num FROM alembic_version")).all() == [(HEAD,)]
    finally:
        engine.dispose()


def test_downgrade_to_previous_schema_and_back(db_backend: Backend) -> None:
    from genreg.store.db import current_revision, downgrade, upgrade

    engine = _engine(db_backend)
    try:
        upgrade(engine)
        downgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        assert not NEW_INDEXES & _indexes(engine)
        upgrade(engine)
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_db_upgrade_and_current_commands(cli: Any, db_backend: Backend) -> None:
    db_backend.home.mkdir(parents=True, exist_ok=True)
    r = cli("db", "current", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["current"] is None
    r = cli("db", "upgrade", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["before"], out["after"], out["changed"]) == (None, HEAD, True)
    r = cli("db", "upgrade")
    assert r.exit_code == 0, r.output
    assert f"already at {HEAD}" in r.output
    r = cli("db", "current")
    assert r.exit_code == 0, r.output
    assert "up to date" in r.output


def _described(insp: Any, table: str) -> dict[str, Any]:
    cols = {
        c["name"]: (bool(c["nullable"]), type(c["type"]).__name__.lower())
        for c in insp.get_columns(table)
    }
    idx = {
        i["name"]: (tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)
    }
    uq = {str(u["name"]): tuple(u["column_names"]) for u in insp.get_unique_constraints(table)}
    pk = tuple(insp.get_pk_constraint(table)["constrained_columns"])
    fks = sorted(
        (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
        for f in insp.get_foreign_keys(table)
    )
    return {"columns": cols, "indexes": idx, "unique": uq, "pk": pk, "fks": fks}


def test_sqlmodel_models_equal_the_migrated_schema(db_backend: Backend) -> None:
    """The models (what the code queries) and the migrations (what databases have) describe
    one schema: tables, columns and nullability, primary and foreign keys, unique
    constraints and every index -- compared through the database's own reflection."""
    from sqlalchemy import create_engine, inspect
    from sqlmodel import SQLModel

    import genreg.store.models  # noqa: F401 - registers the tables
    from genreg.store.db import ensure_schema

    migrated = _engine(db_backend)
    ensure_schema(migrated)
    other = db_backend.home / "from_models.db"
    url = f"sqlite:///{other}"
    drop = None
    if db_backend.db == "postgres":
        import uuid

        from sqlalchemy import text

        schema = "m_" + uuid.uuid4().hex[:12]
        url = migrated.url.render_as_string(hide_password=False)
        admin = create_engine(url)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        drop = (admin, schema)
        url = url.replace("search_path%3D", f"search_path%3D{schema}%2C").replace(
            "search_path=", f"search_path={schema},"
        )
        assert schema in url, url  # else both sides would be the migrated schema
    created = create_engine(url)
    SQLModel.metadata.create_all(created)
    a, b = inspect(migrated), inspect(created)
    tables = set(SQLModel.metadata.tables)
    assert tables == set(a.get_table_names()) - {"alembic_version"}
    try:
        for t in sorted(tables):
            assert _described(b, t) == _described(a, t), t
    finally:
        created.dispose()
        migrated.dispose()
        if drop is not None:
            with drop[0].begin() as c:
                c.execute(text(f'DROP SCHEMA "{drop[1]}" CASCADE'))
            drop[0].dispose()
