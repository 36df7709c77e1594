"""Storage backends for the storage tests: SQLite or PostgreSQL metadata x local or S3 objects.

The PostgreSQL and S3 parameters need servers: ``GENREG_TEST_POSTGRES_URL`` (an admin URL such
as ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and ``GENREG_TEST_S3_ENDPOINT``
(an S3-compatible endpoint, e.g. moto's). ``.ci/run`` starts both via
``scripts/ci_services.sh``. Without them the parameters are skipped with the reason, except
under ``CI`` where a missing server is a failure, so CI can never go green by skipping.

Each test gets its own PostgreSQL schema (``CREATE SCHEMA t_<uuid>``, pinned through the
URL's ``search_path``) and its own bucket.
Backends are selected through ``GENREG_DATABASE_URL`` / ``GENREG_OBJECTS_URL``, so the CLI,
subprocesses and spawned workers all see the same backend.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ENV = "GENREG_TEST_POSTGRES_URL"
S3_ENV = "GENREG_TEST_S3_ENDPOINT"


def need(var: str, what: str) -> str:
    value = os.environ.get(var)
    if value:
        return value
    msg = f"{var} is not set: no {what} to test against (.ci/run starts one)"
    if os.environ.get("CI"):
        pytest.fail(msg + " -- refusing to skip under CI")
    pytest.skip(msg)


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test (``CREATE SCHEMA`` is ~100x cheaper than
    ``CREATE DATABASE``): the URL pins ``search_path`` to it. Dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=None)
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{name}"'))
        url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.connect() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@contextlib.contextmanager
def s3_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the S3 endpoint; yields ``s3://bucket/objects``."""
    import s3fs

    for k, v in s3_env(endpoint).items():
        monkeypatch.setenv(k, v)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    bucket = "t-" + uuid.uuid4().hex[:20]
    fs.mkdir(bucket)
    try:
        yield f"s3://{bucket}/objects"
    finally:
        with contextlib.suppress(Exception):
            fs.rm(bucket, recursive=True)


@dataclass(frozen=True)
class Backend:
    db: str  # sqlite | postgres
    objects: str  # local | s3
    home: Path

    @property
    def id(self) -> str:
        return f"{self.db}-{self.objects}"


def _param(db: str, objects: str) -> object:
    marks = [getattr(pytest.mark, m) for m in (db, objects) if m in ("postgres", "s3")]
    return pytest.param((db, objects), id=f"{db}-{objects}", marks=marks)


ALL = [_param(d, o) for d in ("sqlite", "postgres") for o in ("local", "s3")]
DATABASES = [_param(d, "local") for d in ("sqlite", "postgres")]


@contextlib.contextmanager
def use_backend(
    db: str, objects: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    with contextlib.ExitStack() as stack:
        if db == "postgres":
            url = stack.enter_context(postgres_database(need(POSTGRES_ENV, "PostgreSQL server")))
            monkeypatch.setenv("GENREG_DATABASE_URL", url)
        else:
            monkeypatch.delenv("GENREG_DATABASE_URL", raising=False)
        if objects == "s3":
            endpoint = need(S3_ENV, "S3-compatible server")
            monkeypatch.setenv(
                "GENREG_OBJECTS_URL", stack.enter_context(s3_bucket(endpoint, monkeypatch))
            )
        else:
            monkeypatch.delenv("GENREG_OBJECTS_URL", raising=False)
        yield Backend(db, objects, home)


@contextlib.contextmanager
def env_backend(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The backend ``GENREG_TEST_BACKEND`` names (``DB-OBJECTS``, default ``sqlite-local``).
    The default also clears ``GENREG_DATABASE_URL``/``GENREG_OBJECTS_URL`` so tests never
    touch a developer's real database or bucket."""
    spec = os.environ.get("GENREG_TEST_BACKEND") or "sqlite-local"
    db, _, objects = spec.partition("-")
    if db not in ("sqlite", "postgres") or objects not in ("local", "s3"):
        raise ValueError(f"GENREG_TEST_BACKEND={spec!r}: expected sqlite|postgres-local|s3")
    with use_backend(db, objects, home, monkeypatch) as b:
        yield b


@pytest.fixture(params=ALL)
def backend(
    request: pytest.FixtureRequest, genreg_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """Every combination of metadata database and object store."""
    with use_backend(*request.param, genreg_home, monkeypatch) as b:
        yield b


@pytest.fixture(params=DATABASES)
def db_backend(
    request: pytest.FixtureRequest, genreg_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """SQLite or PostgreSQL metadata (local objects)."""
    with use_backend(*request.param, genreg_home, monkeypatch) as b:
        yield b


@pytest.fixture
def backend_registry(backend: Backend) -> Iterator[object]:
    """A registry opened on ``backend``."""
    from genreg import Registry

    r = Registry.init(backend.home)
    yield r
    r.close()
