"""One registry's persistence, opened once: settings, metadata (migrated on first use), the
object store and the default author. Every service class takes it in its constructor; the
shells (cli/, api/, ui/) never see it (``tests/test_layering.py``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from genreg.settings import Settings, default_author
from genreg.store.objects import ObjectStore, open_object_store

if TYPE_CHECKING:
    from genreg.store.metadata import DerivedStore, Metadata
    from genreg.store.packs import PackIndex


class Store:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.default_author: str | None = None

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

    @cached_property
    def packs(self) -> PackIndex:
        """The local pack-index cache (``packs.sqlite`` under the home; rebuilt from the
        metadata's pack rows when missing)."""
        from genreg.store.packs import PackIndex

        return PackIndex(self.home / "packs.sqlite")

    @property
    def derived(self) -> DerivedStore:
        return self.metadata.derived

    def author(self, explicit: str | None = None) -> str:
        if explicit:
            return explicit
        if self.default_author is None:
            self.default_author = default_author()
        return self.default_author

    def close(self) -> None:
        if "metadata" in self.__dict__:
            self.metadata.close()
