"""The response cache: re-runs of an identical config make no call; ``replay`` needs no network.

Key (:func:`request_key`) = ``sha256:`` of the canonical JSON of::

    {"endpoint": <base URL without credentials/query>, "model": ..., "messages": [...],
     "params": {every other body field except stream/stream_options}, "repeat": i}

plus, for judge calls, ``"judge": {"metric": ..., "prompt": <judge prompt digest>}`` -- so a
change of endpoint, model, rendered messages, any parameter, the repeat index or the judge
prompt version is a different entry, and the API key never takes part.

Storage: an entry (:data:`ENTRY_FORMAT`: the request above, the full response JSON and the
parsed result -- text, finish reason, usage, ids, latency) is indexed as a ``derived`` row
(kind :data:`KIND`, scope = digest of endpoint + model, key = the request key) whose meta
carries the parsed result, so a lookup of N queries is one index query per (endpoint, model)
and no object read (:meth:`ResponseCache.result`; :meth:`ResponseCache.entries` reads whole
entries, for bundles). Entries are written in batches (:meth:`ResponseCache.flush`: every
:data:`FLUSH_EVERY` entries and at the end of a stage): one object per batch (canonical JSON
``{"format": BATCH_FORMAT, "entries": [...]}``) and its rows in one transaction, then the
object checked again (:func:`~genreg.store.objects.ensure_stored`: a concurrent ``gc`` may
have hidden it between the put and the commit, as for every writer) -- not a file and a
transaction per response: per-response files were most of the cold stage's CPU. A crash
loses at most the batch not flushed yet (it is a cache: those calls are made again). Rows
written by earlier versions point at one object per entry and read the same way. Only
successful responses are stored.

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
from genreg.generation.client import ChatResult, Usage
from genreg.store.objects import ObjectStore, ensure_stored

KIND = "llmresp"
ENTRY_FORMAT = "genreg-llm-response/1"
BATCH_FORMAT = "genreg-llm-responses/1"
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


def result_dict(r: ChatResult) -> dict[str, Any]:
    """The parsed result of a call as the cache stores it (an entry's ``result``, and the
    meta of its index row)."""
    return {
        "text": r.text,
        "finish_reason": r.finish_reason,
        "usage": r.usage.to_dict(),
        "response_id": r.response_id,
        "system_fingerprint": r.system_fingerprint,
        "model": r.model,
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
    }


def from_result(r: dict[str, Any]) -> ChatResult:
    """A stored result (:func:`result_dict`'s form) as a cache-hit ChatResult."""
    return ChatResult(
        text=r.get("text"),
        finish_reason=r.get("finish_reason"),
        usage=Usage(**(r.get("usage") or {})),
        response_id=r.get("response_id"),
        system_fingerprint=r.get("system_fingerprint"),
        model=r.get("model"),
        latency_ms=r.get("latency_ms"),
        ttft_ms=r.get("ttft_ms"),
        attempts=0,
        cache_hit=True,
    )


def scope_of(endpoint_identity: str, model: Any) -> str:
    return digest_json({"endpoint": endpoint_identity, "model": model})


class ResponseCache:
    def __init__(self, objects: ObjectStore, index: _Index, mode: str = "rw") -> None:
        if mode not in MODES:
            raise ConfigError(f"generate.cache: must be one of {', '.join(MODES)}, got {mode!r}")
        self.objects, self.index, self.mode = objects, index, mode
        self.hits = 0
        self.stored = 0
        # per scope: key -> (object digest, row meta); "" while the entry is not flushed yet
        self._loaded: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        self._scopes: dict[tuple[str, str], str] = {}
        self._pending: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}

    def _scope(self, endpoint_identity: str, model: Any) -> str:
        k = (endpoint_identity, model if isinstance(model, str) else repr(model))
        s = self._scopes.get(k)
        if s is None:
            s = self._scopes[k] = scope_of(endpoint_identity, model)
        return s

    def _scope_map(self, scope: str) -> dict[str, tuple[str, dict[str, Any]]]:
        m = self._loaded.get(scope)
        if m is None:
            rows = self.index.list(KIND, scope)
            m = self._loaded[scope] = {d.key: (d.object_digest, d.meta) for d in rows}
        return m

    def _read(self, key: str, digest: str, objs: dict[str, Any] | None = None) -> dict[str, Any]:
        """The entry of ``key`` from object ``digest`` (a batch, or one entry written by an
        earlier version); ``objs`` caches parsed objects across calls."""
        if key in self._pending:
            return self._pending[key][1]
        obj = objs.get(digest) if objs is not None else None
        if obj is None:
            obj = json.loads(self.objects.get_bytes(digest))
            if isinstance(obj, dict) and obj.get("format") == BATCH_FORMAT:
                obj = {e.get("key"): e for e in obj.get("entries") or []}
            elif isinstance(obj, dict):
                obj = {obj.get("key", key): obj}
            if objs is not None:
                objs[digest] = obj
        entry = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(entry, dict):
            raise IntegrityError(f"response cache: object {digest} holds no entry for key {key}")
        return entry

    def result(self, endpoint_identity: str, model: Any, key: str) -> dict[str, Any] | None:
        """The parsed result (text, finish reason, usage, ids, latency) stored for ``key``
        -- from the index alone -- or None on a miss or when the mode is ``off``; a hit is
        counted."""
        if self.mode == "off":
            return None
        got = self._scope_map(self._scope(endpoint_identity, model)).get(key)
        if got is None:
            return None
        res = got[1].get("result") if isinstance(got[1], dict) else None
        if not isinstance(res, dict):  # indexed before the meta carried the result
            res = self._read(key, got[0]).get("result") or {}
        self.hits += 1
        return res

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
        key: str | None = None,
    ) -> str | None:
        """Store a successful response; returns its key (None when the mode stores nothing).
        ``key``: the request key when the caller has computed it (not hashed again). Written
        and indexed by the next :meth:`flush`."""
        if self.mode != "rw":
            return None
        req = cache_request(endpoint_identity, body, repeat, judge)
        return self._put(req, response, result, key)

    def _put(
        self,
        req: dict[str, Any],
        response: dict[str, Any] | None,
        result: dict[str, Any],
        key: str | None = None,
    ) -> str:
        key = key or digest_json(req)
        entry = {
            "format": ENTRY_FORMAT,
            "key": key,
            "request": req,
            "response": response,
            "result": result,
        }
        scope = self._scope(req["endpoint"], req["model"])
        meta = {"repeat": req["repeat"], "result": result}
        self._scope_map(scope)[key] = ("", meta)
        self._pending[key] = (scope, entry, meta)
        self.stored += 1
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()
        return key

    def flush(self) -> None:
        """Write the stored entries not written yet: one batch object, then its rows in one
        transaction (the stages call it at the end of their run, and every
        :data:`FLUSH_EVERY` entries)."""
        if not self._pending:
            return
        pending = self._pending
        batch = {"format": BATCH_FORMAT, "entries": [e for _, e, _ in pending.values()]}
        blob = canonical_json(batch)
        digest = self.objects.put_bytes(blob, fsync=False)
        rows = [(KIND, scope, key, digest, meta) for key, (scope, _, meta) in pending.items()]
        self.index.put_many(rows)
        ensure_stored(self.objects, digest, blob)  # a concurrent gc may have hidden it
        for key, (scope, _, meta) in pending.items():
            self._scope_map(scope)[key] = (digest, meta)
        self._pending = {}

    # ---- bundles ------------------------------------------------------------------------
    def entries(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """The stored entries of ``keys`` (IntegrityError names a key that is not stored)."""
        self.flush()
        by_key = {d.key: d.object_digest for d in self.index.list(KIND)}
        objs: dict[str, Any] = {}
        out = []
        for k in keys:
            if k not in by_key:
                raise IntegrityError(f"response cache: no entry for key {k}")
            out.append(self._read(k, by_key[k], objs))
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
