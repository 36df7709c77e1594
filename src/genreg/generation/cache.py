"""The response cache: re-runs of an identical config make no call; ``replay`` needs no network.

Key (:func:`request_key`) = ``sha256:`` of the canonical JSON of::

    {"endpoint": <base URL without credentials/query>, "model": ..., "messages": [...],
     "params": {every other body field except stream/stream_options}, "repeat": i}

plus, for judge calls, ``"judge": {"metric": ..., "prompt": <judge prompt digest>}`` -- so a
change of endpoint, model, rendered messages, any parameter, the repeat index or the judge
prompt version is a different entry, and the API key never takes part. An entry is one object in the registry's
object store (canonical JSON, :data:`ENTRY_FORMAT`): the request above, the full response
JSON and the parsed result (text, finish reason, usage, ids, latency). It is indexed as a
``derived`` row (kind :data:`KIND`, scope = digest of endpoint + model, key = the request key),
so a lookup of N queries is one query per (endpoint, model) plus one object read per hit.
Rows are written in batches (:meth:`ResponseCache.flush`: every :data:`FLUSH_EVERY` entries
and at the end of a stage), not one transaction per response.
Only successful responses are stored.

Modes: ``rw`` (look up, call on a miss, store), ``replay`` (look up only; a miss raises
:class:`~genreg.errors.ReplayMiss` naming the query id, before any call is made), ``off``.

Bundles (:meth:`ResponseCache.export_bundle` / :meth:`import_bundle`): gzipped JSON lines, a
header ``{"format": "genreg-llm-bundle/1", "count": N, ...}`` then one entry per line. Import
recomputes every entry's key from its request, so a bundle cannot plant an answer under a
key it does not belong to.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from genreg.core.hashing import canonical_json, digest_json
from genreg.core.validation import split_lines
from genreg.errors import ConfigError, IntegrityError, ReplayMiss

KIND = "llmresp"
ENTRY_FORMAT = "genreg-llm-response/1"
BUNDLE_FORMAT = "genreg-llm-bundle/1"
MODES = ("rw", "replay", "off")
FLUSH_EVERY = 256  # index rows written per transaction
_NOT_PARAMS = {"model", "messages", "stream", "stream_options"}


class _Index(Protocol):
    def put_many(self, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> int: ...
    def put(
        self,
        kind: str,
        scope: str,
        key: str,
        object_digest: str,
        meta: dict[str, Any] | None = None,
    ) -> Any: ...
    def list(self, kind: str, scope: str | None = None) -> list[Any]: ...


class _Objects(Protocol):
    def put_bytes(self, data: bytes, *, fsync: bool = True) -> str: ...
    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes: ...


def cache_request(
    endpoint_identity: str,
    body: dict[str, Any],
    repeat: int,
    judge: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The part of a call that determines its response (what the key hashes)."""
    req = {
        "endpoint": endpoint_identity,
        "model": body.get("model"),
        "messages": body.get("messages"),
        "params": {k: v for k, v in body.items() if k not in _NOT_PARAMS},
        "repeat": repeat,
    }
    if judge is not None:
        req["judge"] = judge
    return req


def request_key(
    endpoint_identity: str,
    body: dict[str, Any],
    repeat: int,
    judge: dict[str, Any] | None = None,
) -> str:
    return digest_json(cache_request(endpoint_identity, body, repeat, judge))


def scope_of(endpoint_identity: str, model: Any) -> str:
    return digest_json({"endpoint": endpoint_identity, "model": model})


class ResponseCache:
    def __init__(self, objects: _Objects, index: _Index, mode: str = "rw") -> None:
        if mode not in MODES:
            raise ConfigError(f"generate.cache: must be one of {', '.join(MODES)}, got {mode!r}")
        self.objects, self.index, self.mode = objects, index, mode
        self.hits = 0
        self.stored = 0
        self._loaded: dict[str, dict[str, str]] = {}
        self._pending: list[tuple[str, str, str, str, dict[str, Any]]] = []

    def _scope_map(self, scope: str) -> dict[str, str]:
        m = self._loaded.get(scope)
        if m is None:
            m = self._loaded[scope] = {d.key: d.object_digest for d in self.index.list(KIND, scope)}
        return m

    def lookup(
        self, endpoint_identity: str, body: dict[str, Any], key: str
    ) -> dict[str, Any] | None:
        """The stored entry for ``key`` (None on a miss or when the mode is ``off``)."""
        if self.mode == "off":
            return None
        obj = self._scope_map(scope_of(endpoint_identity, body.get("model"))).get(key)
        if obj is None:
            return None
        entry = json.loads(self.objects.get_bytes(obj))
        self.hits += 1
        return entry

    def miss(self, qid: str, repeat: int, route: str) -> None:
        """Called for a query that has no entry: fails in ``replay`` mode."""
        if self.mode == "replay":
            raise ReplayMiss(
                f"cache replay: no recorded response for query {qid} (repeat {repeat}, route "
                f"{route}); run once with cache: rw, or import a bundle of that run's responses"
            )

    def store(
        self,
        endpoint_identity: str,
        body: dict[str, Any],
        repeat: int,
        response: dict[str, Any] | None,
        result: dict[str, Any],
        judge: dict[str, Any] | None = None,
    ) -> str | None:
        """Store a successful response; returns its key (None when the mode stores nothing)."""
        if self.mode != "rw":
            return None
        req = cache_request(endpoint_identity, body, repeat, judge)
        return self._put(req, response, result)

    def _put(
        self, req: dict[str, Any], response: dict[str, Any] | None, result: dict[str, Any]
    ) -> str:
        key = digest_json(req)
        entry = {
            "format": ENTRY_FORMAT,
            "key": key,
            "request": req,
            "response": response,
            "result": result,
        }
        digest = self.objects.put_bytes(canonical_json(entry), fsync=False)
        scope = scope_of(req["endpoint"], req["model"])
        self._scope_map(scope)[key] = digest
        self._pending.append((KIND, scope, key, digest, {"repeat": req["repeat"]}))
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()
        self.stored += 1
        return key

    def flush(self) -> None:
        """Index the stored entries not indexed yet (one transaction; the stages call it at
        the end of their run, and every :data:`FLUSH_EVERY` entries)."""
        rows, self._pending = self._pending, []
        self.index.put_many(rows)

    # ---- bundles ------------------------------------------------------------------------
    def entries(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """The stored entries of ``keys`` (IntegrityError names a key that is not stored)."""
        self.flush()
        by_key = {d.key: d.object_digest for d in self.index.list(KIND)}
        out = []
        for k in keys:
            if k not in by_key:
                raise IntegrityError(f"response cache: no entry for key {k}")
            out.append(json.loads(self.objects.get_bytes(by_key[k])))
        return out

    def export_bundle(self, keys: Iterable[str], path: str | Path, **header: Any) -> int:
        uniq = sorted(set(keys))
        entries = self.entries(uniq)
        lines = [json.dumps({"format": BUNDLE_FORMAT, "count": len(entries), **header})]
        lines += [canonical_json(e).decode() for e in entries]
        data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(p)
        return len(entries)

    def import_bundle(self, path: str | Path) -> int:
        """Import every entry of a bundle (all checked first: a bad bundle imports nothing)."""
        p = Path(path)
        try:
            text = gzip.decompress(p.read_bytes()).decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: not a genreg response bundle ({exc})") from None
        lines = split_lines(text)  # "\n" only: answers may hold U+2028/U+0085
        try:
            head = json.loads(lines[0]) if lines else {}
        except ValueError:
            head = {}
        if not isinstance(head, dict) or head.get("format") != BUNDLE_FORMAT:
            raise ConfigError(f"{p}:1: not a genreg response bundle (format {BUNDLE_FORMAT})")
        entries = []
        for n, line in enumerate(lines[1:], start=2):
            try:
                e = json.loads(line)
            except ValueError:
                raise ConfigError(f"{p}:{n}: invalid JSON") from None
            if not isinstance(e, dict) or e.get("format") != ENTRY_FORMAT or "request" not in e:
                raise ConfigError(f"{p}:{n}: not a response entry")
            if digest_json(e["request"]) != e.get("key"):
                raise IntegrityError(f"{p}:{n}: entry key does not match its request")
            entries.append(e)
        for e in entries:
            self._put(e["request"], e.get("response"), e.get("result") or {})
        self.flush()
        return len(entries)


def open_cache(registry: Any, mode: str = "rw") -> ResponseCache:
    """The response cache of a registry (its object store and derived-object index)."""
    return ResponseCache(registry.objects, registry.derived, mode)


def _keys_in(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "cache_key" and isinstance(v, str):
                yield v
            else:
                yield from _keys_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys_in(v)


def export_run(registry: Any, run_id: str, path: str | Path) -> int:
    """Bundle every response (answers and judge verdicts) a run recorded."""
    run = registry.get_run(run_id)
    queries = registry.run_results(run.id).get("queries", [])
    keys = sorted(set(_keys_in(queries)))
    if not keys:
        raise ConfigError(f"run {run.id} recorded no LLM responses (it had no generate stage)")
    return open_cache(registry).export_bundle(keys, path, run=run.id)


def import_bundle(registry: Any, path: str | Path) -> int:
    return open_cache(registry).import_bundle(path)
