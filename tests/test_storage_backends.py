"""Registry behaviour is identical on every storage backend: SQLite or PostgreSQL metadata,
local or S3 objects (see tests/_backends.py for how the servers are found)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from _backends import Backend
from genreg.errors import AmbiguousRef, IntegrityError, NotFound


def _prompt(i: int) -> dict[str, Any]:
    return {
        "template": f"variant {i}: {{{{ question }}}}",
        "variables": {"type": "object", "properties": {"question": {"type": "string"}}},
    }


def test_backend_is_the_one_requested(backend: Backend, backend_registry: Any) -> None:
    reg = backend_registry
    assert reg.engine.dialect.name == {"postgres": "postgresql"}.get(backend.db, backend.db)
    assert (reg.objects.local_path("0" * 64) is None) == (backend.objects == "s3")


def test_same_content_registers_no_new_version(backend_registry: Any) -> None:
    reg = backend_registry
    first = reg.register_content("prompt", "qa", _prompt(1), message="m")
    again = reg.register_content("prompt", "qa", _prompt(1), message="other message")
    assert first.created and not again.created
    assert again.version.version == 1 and again.version.digest == first.version.digest
    assert [v.version for v in reg.history("prompt:qa")] == [1]


def test_versions_are_contiguous_with_parent_links(backend_registry: Any) -> None:
    reg = backend_registry
    for i in range(5):
        reg.register_content("prompt", "qa", _prompt(i), tags={"i": str(i)})
    hist = reg.history("prompt:qa")
    assert [v.version for v in hist] == [1, 2, 3, 4, 5]
    assert [v.parent for v in hist] == [None, 1, 2, 3, 4]
    assert hist[2].tags == {"i": "2"}


def test_content_round_trips_and_is_digest_checked(backend_registry: Any) -> None:
    reg = backend_registry
    res = reg.register_content("prompt", "qa", _prompt(7))
    info, content = reg.show("prompt:qa@v1")
    assert info.digest == res.version.digest
    assert "variant 7" in json.dumps(content)
    assert reg.objects.has(info.object_digest)
    assert reg.objects.size(info.object_digest) == len(reg.content(info))


def test_every_reference_form_resolves_the_same_version(backend_registry: Any) -> None:
    reg = backend_registry
    reg.register_content("prompt", "qa", _prompt(1))
    v2 = reg.register_content("prompt", "qa", _prompt(2)).version
    reg.set_alias("prompt:qa@v2", "production", reason="ship")
    reg.register_content("prompt", "qa", _prompt(3))
    hexd = v2.digest.removeprefix("sha256:")
    for ref in ("prompt:qa@v2", "prompt:qa@production", f"prompt:qa@sha256:{hexd[:10]}"):
        got = reg.resolve(ref)
        assert (got.version, got.digest, got.aliases) == (2, v2.digest, ("production",)), ref
    assert reg.resolve("prompt:qa").version == 3
    with pytest.raises(NotFound):
        reg.resolve("prompt:qa@v9")
    with pytest.raises(NotFound):
        reg.resolve("prompt:nope")


def test_digest_prefix_matching_two_versions_is_ambiguous(backend_registry: Any) -> None:
    reg = backend_registry
    from genreg.core.refs import Ref

    seen: dict[str, int] = {}
    i = 0
    while True:  # register until two digests share their first hex digit
        v = reg.register_content("prompt", "qa", _prompt(i)).version
        head = v.digest[len("sha256:")]
        if head in seen:
            break
        seen[head] = v.version
        i += 1
    with pytest.raises(AmbiguousRef, match=f"v{seen[head]} and v{v.version}"):
        reg.repo.resolve(Ref(kind="prompt", name="qa", digest_prefix=head))


def test_alias_moves_and_removal_are_journaled_in_order(backend_registry: Any) -> None:
    reg = backend_registry
    for i in range(3):
        reg.register_content("prompt", "qa", _prompt(i))
    reg.set_alias("prompt:qa@v1", "production", reason="first")
    reg.set_alias("prompt:qa@v3", "production", reason="second")
    reg.remove_alias("prompt:qa", "production", reason="pull")
    events = reg.alias_history("prompt:qa")
    assert [(e.action, e.from_version, e.to_version, e.reason) for e in events] == [
        ("set", None, 1, "first"),
        ("move", 1, 3, "second"),
        ("delete", 3, None, "pull"),
    ]
    with pytest.raises(NotFound):
        reg.resolve("prompt:qa@production")


def test_list_reports_latest_version_count_and_aliases(backend_registry: Any) -> None:
    reg = backend_registry
    reg.register_content("prompt", "qa", _prompt(1))
    reg.register_content("prompt", "qa", _prompt(2))
    reg.register_content("routing", "router", _routing())
    reg.set_alias("prompt:qa@v1", "staging")
    arts = {(a.kind, a.name): a for a in reg.list()}
    assert set(arts) == {("prompt", "qa"), ("routing", "router")}
    qa = arts[("prompt", "qa")]
    assert (qa.latest, qa.versions, qa.aliases) == (2, 2, {"staging": 1})


def _routing() -> dict[str, Any]:
    price = {"input_per_1m": 0.15, "output_per_1m": 0.6}
    return {"routes": [], "default": {"target": {"model": "small", "price": price}}}


def test_cli_push_then_resolve_works_on_this_backend(
    cli: Any, backend: Backend, write: Any
) -> None:
    write("registry/prompts/qa.txt", "Question: {{ question }}\n")
    r = cli("init", str(backend.home))
    assert r.exit_code == 0, r.output
    r = cli("register", "prompt", "qa", "registry/prompts/qa.txt")
    assert r.exit_code == 0, r.output
    r = cli("resolve", "prompt:qa", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["version"] == 1
    from genreg import Registry

    with Registry(backend.home) as again:
        assert again.resolve("prompt:qa").version == 1


# ---- the object store protocol ----------------------------------------------------------


def test_object_store_put_get_has_size_list_delete(backend_registry: Any) -> None:
    reg = backend_registry
    store = reg.objects
    a = store.put_bytes(b"alpha")
    b = store.put_stream(iter([b"be", b"ta"]))
    assert store.put_bytes(b"alpha") == a
    assert store.get_bytes(a) == b"alpha" and store.get_bytes(b) == b"beta"
    assert store.has(a) and store.size(b) == 4
    assert set(store.iter_digests()) >= {a, b}
    store.delete(a)
    assert not store.has(a)
    with pytest.raises(NotFound):
        store.get_bytes(a)
    with pytest.raises(NotFound):
        store.size(a)
    store.delete(a)  # deleting twice is fine


def test_corrupt_object_is_detected_on_read(backend_registry: Any) -> None:
    reg = backend_registry
    store = reg.objects
    d = store.put_bytes(b"precious")
    _overwrite(store, d, b"tampered")
    with pytest.raises(IntegrityError, match=d[:12]):
        store.get_bytes(d)


def test_failed_stream_write_leaves_no_object(backend_registry: Any) -> None:
    reg = backend_registry
    store = reg.objects
    before = set(store.iter_digests())

    def chunks() -> Any:
        yield b"partial"
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        store.put_stream(chunks())
    assert set(store.iter_digests()) == before


def _overwrite(store: Any, digest: str, data: bytes) -> None:
    """Simulate bit rot behind the store's back."""
    path = store.local_path(digest)
    if path is None:
        store.fs.pipe_file(store._key(digest), data)
    else:
        path.chmod(0o644)
        path.write_bytes(data)


def test_memory_fsspec_store_speaks_the_same_protocol() -> None:
    from genreg.store.objects import open_object_store

    store = open_object_store("memory://genreg-test/objects")
    d = store.put_bytes(b"x" * 10)
    assert store.local_path(d) is None
    assert store.get_bytes(d) == b"x" * 10
    assert list(store.iter_digests()) == [d]
    store.delete(d)
    assert list(store.iter_digests()) == []
