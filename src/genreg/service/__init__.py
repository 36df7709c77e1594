"""The service layer: the one entry point the CLI, the API and the runner go through.

:class:`Registry` is composed of one mixin per concern, each in its own module:

- :mod:`genreg.service.artifacts` -- register, resolve, history, diff, aliases, push, export
- :mod:`genreg.service.tokens` -- API tokens: create, list, revoke, authenticate
- :mod:`genreg.service.corpus` -- corpus snapshots: snapshot, documents, diff, status, export
- :mod:`genreg.service.indexing` -- chunk, embed (cached), build/reuse FAISS indexes, search
- :mod:`genreg.service.runs` -- eval runs, scoring run files, lineage, compare, gates, promote
- :mod:`genreg.service.admin` -- verify objects, gc, schema migrations
"""

from __future__ import annotations

import builtins

from genreg.core.types import ArtifactInfo
from genreg.service.admin import AdminService
from genreg.service.artifacts import ArtifactService
from genreg.service.base import ServiceBase
from genreg.service.corpus import CorpusService
from genreg.service.indexing import IndexingService
from genreg.service.runs import EvalService
from genreg.service.tokens import TokenService


class Registry(
    ArtifactService,
    AdminService,
    CorpusService,
    IndexingService,
    TokenService,
    EvalService,
    ServiceBase,
):
    """A genreg registry: metadata database + object store, opened (and migrated) once."""

    def list(self, kind: str | None = None) -> builtins.list[ArtifactInfo]:
        """Every artifact (of ``kind``), with its latest version and aliases."""
        return self.list_artifacts(kind)


__all__ = ["Registry"]
