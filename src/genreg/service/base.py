"""Opening a registry: settings, engine (migrated on open) and object store."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from genreg.settings import Settings, default_author, resolve_settings
from genreg.store.objects import ObjectStore, open_object_store

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from genreg.store.derived import DerivedRepo
    from genreg.store.fastread import FastReader
    from genreg.store.repo import Repo

_T = TypeVar("_T")


class ServiceBase:
    def __init__(
        self,
        home: str | Path | None = None,
        *,
        settings: Settings | None = None,
        create: bool = False,
    ) -> None:
        self.settings = settings or resolve_settings(Path(home) if home else None, create=create)
        self._author: str | None = None

    @classmethod
    def init(cls, path: str | Path | None = None) -> ServiceBase:
        """Create (or reopen) a registry home and migrate its database."""
        home = Path(path) if path else None
        if home is None:
            from genreg.settings import find_home

            home = find_home() or Path.cwd() / ".genreg"
        home.mkdir(parents=True, exist_ok=True)
        reg = cls(home)
        _ = reg.engine
        return reg

    @property
    def home(self) -> Path:
        return self.settings.home

    @cached_property
    def engine(self) -> Engine:
        """SQLAlchemy engine, migrated on first use. Imported lazily: SQLAlchemy costs
        ~0.3 s of start-up that read-only hot paths avoid through :attr:`fast`."""
        from genreg.store.db import ensure_schema, make_engine

        engine = make_engine(self.settings.database_url)
        ensure_schema(engine)
        return engine

    @cached_property
    def fast(self) -> FastReader | None:
        """Stdlib-sqlite3 reader for the default backend (None on other databases)."""
        from genreg.store.fastread import FastReader

        return FastReader.open(self.settings.database_url)

    @cached_property
    def objects(self) -> ObjectStore:
        return open_object_store(self.settings.objects_url)

    @cached_property
    def repo(self) -> Repo:
        from genreg.store.repo import Repo

        return Repo(self.engine)

    @cached_property
    def derived(self) -> DerivedRepo:
        from genreg.store.derived import DerivedRepo

        return DerivedRepo(self.engine)

    def author(self, explicit: str | None = None) -> str:
        if explicit:
            return explicit
        if self._author is None:
            self._author = default_author()
        return self._author

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
