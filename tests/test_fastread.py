"""The stdlib-sqlite3 read path agrees with the SQLModel path on every reference form."""

from __future__ import annotations

from typing import Any

import pytest

from genreg.core.refs import parse_ref
from genreg.errors import GenregError


def test_fast_reader_and_orm_resolve_identically(registry: Any, write: Any) -> None:
    for i in range(3):
        registry.register(
            "prompt", "qa", write(f"p{i}.txt", f"v{i} {{{{ q }}}}"), tags={"i": str(i)}
        )
    registry.set_alias("prompt:qa@v2", "production")
    registry.set_alias("prompt:qa@v2", "staging")
    assert type(registry.metadata).__name__ == "SqliteMetadata"
    d = registry.resolve("prompt:qa@v1").digest[7:17]
    refs = [
        "prompt:qa",
        "prompt:qa@v1",
        "prompt:qa@v3",
        "prompt:qa@production",
        f"prompt:qa@sha256:{d}",
    ]
    for text in refs:
        ref = parse_ref(text)
        assert registry.metadata.resolve(ref) == registry.repo.resolve(ref), text
    for text in ["prompt:qa@v9", "prompt:nope", "prompt:qa@canary", "prompt:qa@sha256:ffffff"]:
        ref = parse_ref(text)
        with pytest.raises(GenregError) as a:
            registry.metadata.resolve(ref)
        with pytest.raises(GenregError) as b:
            registry.repo.resolve(ref)
        assert (type(a.value), str(a.value)) == (type(b.value), str(b.value))


def test_resolve_does_not_import_sqlalchemy(registry: Any, write: Any) -> None:
    import subprocess
    import sys

    registry.register("prompt", "qa", write("p.txt", "{{ q }}"))
    code = (
        "import sys; from genreg import Registry; r = Registry(); r.resolve('prompt:qa');"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
