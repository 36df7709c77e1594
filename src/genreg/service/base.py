"""Opening a registry: settings, metadata (migrated on open) and object store.

The persistence handles here (``metadata``, ``objects`` and, for tests and benchmarks,
``engine``/``repo``) are the service layer's: the shells (cli/, api/, ui/) never touch them
(``tests/test_layering.py``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from genreg.settings import Settings, default_author, resolve_settings
from genreg.store.objects import ObjectStore, open_object_store

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from genreg.store.metadata import DerivedStore, Metadata
    from genreg.store.repo import Repo
    from genreg.store.runs import RunRepo

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
        reg.metadata.ensure_schema()
        return reg

    @property
    def home(self) -> Path:
        return self.settings.home

    @cached_property
    def metadata(self) -> Metadata:
        """The metadata store, chosen once for the database URL (stdlib ``sqlite3`` for the
        hot operations on the default SQLite file, SQLModel otherwise); migrated on first use."""
        from genreg.store.metadata import open_metadata

        return open_metadata(self.settings.database_url)

    @cached_property
    def objects(self) -> ObjectStore:
        return open_object_store(self.settings.objects_url)

    @property
    def derived(self) -> DerivedStore:
        return self.metadata.derived

    @property
    def runs_repo(self) -> RunRepo:
        return self.metadata.runs

    @property
    def engine(self) -> Engine:
        """SQLAlchemy engine on the metadata database (tests, benchmarks); imports SQLAlchemy."""
        return self.metadata.engine

    @cached_property
    def repo(self) -> Repo:
        """The SQLModel repository on the metadata database (tests compare it with
        :attr:`metadata`); services go through :attr:`metadata`."""
        from genreg.store.repo import Repo

        return Repo(self.engine)

    def ensure_schema(self) -> None:
        """Create or migrate the database to the code's schema (cheap when current)."""
        self.metadata.ensure_schema()

    def data_version(self) -> int | None:
        """Changes whenever any connection commits (None: the backend has no cheap counter,
        do not cache resolutions)."""
        return self.metadata.data_version()

    def ping(self) -> str | None:
        """The database's schema revision; raises when it does not answer."""
        return self.metadata.ping()

    def author(self, explicit: str | None = None) -> str:
        if explicit:
            return explicit
        if self._author is None:
            self._author = default_author()
        return self._author

    def close(self) -> None:
        if "metadata" in self.__dict__:
            self.metadata.close()

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
