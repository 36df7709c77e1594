"""The shipped RAG example as a registry, indexed once per test session.

Building it (push, corpus snapshot, the flat index of the example corpus with the real
embedding model, the eval set's query embeddings) is most of an end-to-end generation
test's time; the tests only need it to exist. :func:`indexed_home` builds one such home
under the session's basetemp (no run recorded, no response cached: every test still makes
its own calls) and :func:`copy_project` gives each test a private copy, so the tests stay
independent. A non-default ``GENREG_TEST_BACKEND`` (PostgreSQL / S3: nothing to copy) builds
each test's project from scratch instead.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SPEC = {  # what evals/rag.yaml retrieves with, under the tests' --set chunking=none
    "model": {"model": "sentence-transformers/all-MiniLM-L6-v2"},
    "chunking": "none",
    "index": "flat",
}


def _push_example(registry: Any, tmp: Path) -> None:
    for sub in ("registry", "evals/sets"):
        shutil.copytree(REPO / sub, tmp / sub, dirs_exist_ok=True)
    registry.push([tmp / "registry", tmp / "evals"])
    registry.snapshot("docs", REPO / "examples" / "corpus")


def indexed_home(factory: pytest.TempPathFactory) -> Path | None:
    """The session's indexed example home (built on first use), None on a non-default
    storage backend."""
    if (os.environ.get("GENREG_TEST_BACKEND") or "sqlite-local") != "sqlite-local":
        return None
    root = factory.getbasetemp() / "rag-indexed"
    home = root / ".genreg"
    if (root / "ready").exists():
        return home
    from genreg import Registry

    with pytest.MonkeyPatch.context() as mp:
        for var in ("GENREG_DATABASE_URL", "GENREG_OBJECTS_URL"):
            mp.delenv(var, raising=False)
        mp.setenv("GENREG_AUTHOR", "tester")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        reg = Registry.init(home)
        try:
            _push_example(reg, root)
            retriever = reg.open_retriever("corpus:docs", **SPEC)
            lines = (REPO / "evals/sets/gold.jsonl").read_text().splitlines()
            rows = [json.loads(x) for x in lines if x.strip()]
            retriever.search([r["query"] for r in rows], 10)  # fills the query-embedding cache
        finally:
            reg.close()
    (root / "ready").write_text("ok\n")
    return home


def copy_project(factory: pytest.TempPathFactory, genreg_home: Path, tmp_path: Path) -> Any:
    """A registry at ``genreg_home`` holding the indexed example (a copy of the session's),
    with ``registry/`` and ``evals/sets/`` copied under ``tmp_path`` for tests that edit and
    re-push them."""
    from genreg import Registry

    template = indexed_home(factory)
    if template is None:
        reg = Registry.init(genreg_home)
        _push_example(reg, tmp_path)
        return reg
    shutil.copytree(template, genreg_home, dirs_exist_ok=True)
    for sub in ("registry", "evals/sets"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    return Registry.init(genreg_home)
