"""The response cache over a real registry (SQLite + object store) and a real local server."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from genreg.errors import ConfigError, IntegrityError, ReplayMiss
from genreg.generation.cache import open_cache, request_key
from genreg.generation.client import ChatClient, ChatRequest, ClientOptions, Endpoint
from genreg.generation.server import ChatServer

BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "user", "content": "Context:\nRefunds take 14 days.\n\nQuestion: refund?"}
    ],
    "temperature": 0.1,
}


def test_key_covers_endpoint_model_messages_params_repeat_but_not_credentials() -> None:
    k = request_key("http://h:1/v1", BODY, 0)
    assert request_key("http://h:1/v1", {**BODY, "stream": True}, 0) == k  # transport only
    assert request_key("http://h:2/v1", BODY, 0) != k
    assert request_key("http://h:1/v1", {**BODY, "model": "gpt-4o"}, 0) != k
    assert request_key("http://h:1/v1", {**BODY, "temperature": 0.2}, 0) != k
    assert request_key("http://h:1/v1", {**BODY, "messages": []}, 0) != k
    assert request_key("http://h:1/v1", BODY, 1) != k
    from genreg.generation.client import endpoint_identity

    assert endpoint_identity("HTTPS://user:sk-secret@API.example.com/v1/?key=sk-x") == (
        "https://api.example.com/v1"
    )


def _call_with_cache(registry, server: ChatServer, mode: str) -> tuple[dict, int]:
    cache = open_cache(registry, mode)
    ep = Endpoint("default", server.base_url)
    key = request_key(ep.identity, BODY, 0)
    hit = cache.result(ep.identity, BODY["model"], key)
    if hit is not None:
        return hit, cache.hits
    cache.miss("q7", 0, "default")
    r = ChatClient(ClientOptions()).run([ChatRequest("q7", 0, ep, BODY, key)])[0]
    cache.store(ep.identity, BODY, 0, r.response, {"text": r.text})
    cache.flush()  # indexed for other instances (the stages flush at the end of a run)
    return {"text": r.text}, cache.hits


def test_identical_call_is_served_from_the_store_with_zero_calls(registry) -> None:
    s = ChatServer().start()
    try:
        first, hits = _call_with_cache(registry, s, "rw")
        assert hits == 0 and s.requests == 1
        again, hits = _call_with_cache(registry, s, "rw")
        assert again == first and hits == 1 and s.requests == 1
        _, hits = _call_with_cache(registry, s, "replay")
        assert hits == 1 and s.requests == 1
        _, hits = _call_with_cache(registry, s, "off")
        assert hits == 0 and s.requests == 2
    finally:
        s.stop()


def test_replay_miss_names_the_query(registry) -> None:
    cache = open_cache(registry, "replay")
    with pytest.raises(ReplayMiss, match=r"no recorded response for query q42 \(repeat 0"):
        cache.miss("q42", 0, "default")
    with pytest.raises(ConfigError, match="must be one of rw, replay, off"):
        open_cache(registry, "sometimes")


def test_bundle_round_trip_into_another_registry(registry, tmp_path: Path) -> None:
    from genreg import Registry

    cache = open_cache(registry, "rw")
    key = cache.store("http://h:1/v1", BODY, 0, {"id": "r1"}, {"text": "14 days"})
    n = cache.export_bundle([key], tmp_path / "b.jsonl.gz", run="r")
    assert n == 1
    other = Registry.init(tmp_path / "other")
    try:
        oc = open_cache(other, "replay")
        assert oc.import_bundle(tmp_path / "b.jsonl.gz") == 1
        assert oc.result("http://h:1/v1", BODY["model"], key) == {"text": "14 days"}
        assert oc.entries([key])[0]["response"] == {"id": "r1"}  # the object, read back
    finally:
        other.close()


def test_bundle_with_line_separators_in_answers_round_trips(registry, tmp_path: Path) -> None:
    """Bundles are canonical JSON (not ASCII-escaped): an answer holding U+2028, U+2029 or
    U+0085 is written raw, and import splits on "\n" only (issue 14)."""
    from genreg import Registry

    odd = "fourteen\u2028days\u0085 (see\u2029policy)"
    cache = open_cache(registry, "rw")
    key = cache.store("http://h:1/v1", BODY, 0, {"id": "r1"}, {"text": odd})
    cache.export_bundle([key], tmp_path / "b.jsonl.gz")
    raw = gzip.decompress((tmp_path / "b.jsonl.gz").read_bytes()).decode()
    assert "\u2028" in raw  # really written unescaped: the test exercises the reader
    other = Registry.init(tmp_path / "other")
    try:
        oc = open_cache(other, "replay")
        assert oc.import_bundle(tmp_path / "b.jsonl.gz") == 1
        assert oc.result("http://h:1/v1", BODY["model"], key) == {"text": odd}
        assert oc.entries([key])[0]["result"] == {"text": odd}
    finally:
        other.close()


def test_a_tampered_bundle_imports_nothing(registry, tmp_path: Path) -> None:
    cache = open_cache(registry, "rw")
    key = cache.store("http://h:1/v1", BODY, 0, {"id": "r1"}, {"text": "14 days"})
    cache.export_bundle([key], tmp_path / "b.jsonl.gz")
    lines = gzip.decompress((tmp_path / "b.jsonl.gz").read_bytes()).decode().splitlines()
    entry = json.loads(lines[1])
    entry["request"]["messages"][0]["content"] = "planted"
    bad = "\n".join([lines[0], json.dumps(entry)]) + "\n"
    (tmp_path / "bad.jsonl.gz").write_bytes(gzip.compress(bad.encode()))
    before = open_cache(registry, "rw").index.list("llmresp")
    with pytest.raises(IntegrityError, match=r"bad.jsonl.gz:2: entry key does not match"):
        open_cache(registry, "rw").import_bundle(tmp_path / "bad.jsonl.gz")
    assert open_cache(registry, "rw").index.list("llmresp") == before


def test_a_run_s_entries_are_one_batch_object_and_lookups_read_no_object(registry) -> None:
    from genreg.core.hashing import canonical_json
    from genreg.generation import cache as cachemod

    cache = open_cache(registry, "rw")
    bodies = [{**BODY, "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(5)]
    keys = [
        cache.store("http://h:1/v1", b, 0, {"id": f"r{i}"}, {"text": f"a{i}"})
        for i, b in enumerate(bodies)
    ]
    # before the flush: served from memory, nothing indexed yet
    assert cache.result("http://h:1/v1", BODY["model"], keys[2]) == {"text": "a2"}
    assert registry.derived.list("llmresp") == []
    cache.flush()
    rows = registry.derived.list("llmresp")
    assert {r.key for r in rows} == set(keys) and len({r.object_digest for r in rows}) == 1
    batch = json.loads(registry.objects.get_bytes(rows[0].object_digest))
    assert batch["format"] == cachemod.BATCH_FORMAT and len(batch["entries"]) == 5
    # another instance: the results come from the index rows alone (no object read) ...
    other = open_cache(registry, "replay")
    registry.objects.delete(rows[0].object_digest)
    assert other.result("http://h:1/v1", BODY["model"], keys[4]) == {"text": "a4"}
    assert other.hits == 1
    # ... and a row written by an earlier version (one object per entry, no result in its
    # meta) still reads
    req = cachemod.cache_request("http://h:1/v1", BODY, 0)
    key = request_key("http://h:1/v1", BODY, 0)
    old = {"format": cachemod.ENTRY_FORMAT, "key": key, "request": req, "response": None}
    old["result"] = {"text": "old"}
    digest = registry.objects.put_bytes(canonical_json(old))
    scope = cachemod.scope_of("http://h:1/v1", BODY["model"])
    registry.derived.put("llmresp", scope, key, digest, {"repeat": 0})
    fresh = open_cache(registry, "replay")
    assert fresh.result("http://h:1/v1", BODY["model"], key) == {"text": "old"}
    assert fresh.entries([key])[0]["result"] == {"text": "old"}


class _GcBeforeCommit:
    """The registry's derived-object index, with a real ``gc --delete`` run just before each
    batch of rows commits: the window between a writer's object put and its row commit."""

    def __init__(self, registry: Any) -> None:
        self.registry, self.inner = registry, registry.derived
        self.deleted: list[str] = []

    def put_many(self, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> int:
        self.deleted += self.registry.gc(dry_run=False, grace_seconds=0).deleted
        return self.inner.put_many(rows)

    def put(self, *a: Any, **kw: Any) -> Any:
        return self.inner.put(*a, **kw)

    def list(self, kind: str, scope: str | None = None) -> list[Any]:
        return self.inner.list(kind, scope)


def test_a_batch_hidden_by_gc_before_its_rows_commit_is_stored_again(registry) -> None:
    """Issue 14's gc race for the response cache: the batch object exists (an identical
    batch left unreferenced earlier, so the put skips the write), gc removes it before the
    rows naming it commit; the flush must store it again after the commit."""
    from genreg.core.hashing import canonical_json
    from genreg.generation import cache as cachemod

    index = _GcBeforeCommit(registry)
    cache = cachemod.ResponseCache(registry.objects, index, "rw")
    key = cache.store("http://h:1/v1", BODY, 0, {"id": "r1"}, {"text": "14 days"})
    req = cachemod.cache_request("http://h:1/v1", BODY, 0)
    entry = {"format": cachemod.ENTRY_FORMAT, "key": key, "request": req}
    entry |= {"response": {"id": "r1"}, "result": {"text": "14 days"}}
    blob = canonical_json({"format": cachemod.BATCH_FORMAT, "entries": [entry]})
    orphan = registry.objects.put_bytes(blob)  # unreferenced: what gc deletes
    cache.flush()
    assert [d.removeprefix("sha256:") for d in index.deleted] == [orphan]  # the race happened
    (row,) = registry.derived.list("llmresp")
    assert row.object_digest.removeprefix("sha256:") == orphan
    assert registry.objects.has(row.object_digest)
    got = open_cache(registry, "replay").entries([key])[0]
    assert got["result"] == {"text": "14 days"} and got["response"] == {"id": "r1"}
