"""``genreg.Client``: the registry over HTTP, with the local :class:`~genreg.Registry`'s read
interface (``resolve``, ``show``, ``load_prompt``, ``render``, ``load_routing``,
``explain_route``), so app code does not care which one it holds.

Caching (in-process):

- pinned refs (``@vN``, ``@sha256:...``) are immutable: cached forever;
- alias / latest refs are cached for ``alias_ttl`` seconds (default 60); after that the stale
  value is still served while ONE background request refreshes it (``If-None-Match`` with the
  digest, so an unchanged alias costs a 304); a failed refresh keeps the last good value;
- an uncached fetch is exactly one HTTP request; a cache hit is a dict lookup.

Offline fallback: when the server cannot be reached (or answers 5xx) and a ref is not cached,
the client serves it from ``lock_file`` (``genreg lock`` writes it), re-verifying the digest
of the locked content on every load (tampering raises :class:`~genreg.errors.IntegrityError`).
With ``lock_key`` (or ``$GENREG_LOCK_KEY``) the lock must also carry a valid HMAC signature
(``genreg lock --sign``); see :mod:`genreg.lockfile` for the trust model. A server (or proxy)
answering something that is not the registry's JSON counts as unreachable: the lock serves.

Only the standard library is imported here (``http.client``, ``json``): no FastAPI,
SQLAlchemy or httpx, so ``import genreg`` plus a client stays well under 0.3 s.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from genreg import errors as E
from genreg.core.hashing import canonical_json, digest_bytes
from genreg.core.kinds import BY_NAME
from genreg.core.refs import Ref, parse_ref
from genreg.core.types import VersionInfo

_URL_KIND = {k.name: k.url for k in BY_NAME.values()}  # /v1/{url}/{name}
_CODES: dict[str, type[E.GenregError]] = E.error_classes()  # envelope code -> class


class RegistryUnavailable(E.GenregError):
    """The server could not be reached (or failed) and no cached or locked copy exists."""

    code = "unavailable"
    http_status = 503


@dataclass
class _Entry:
    doc: dict[str, Any]
    info: VersionInfo
    expires: float  # monotonic; inf for pinned refs
    source: str = "server"  # server | lock
    refreshing: bool = False
    objs: dict[str, Any] = field(default_factory=dict)  # decoded Prompt / Routing


def _info(doc: dict[str, Any]) -> VersionInfo:
    digest = doc["digest"]
    return VersionInfo(
        doc["kind"],
        doc["name"],
        int(doc["version"]),
        digest,
        digest.removeprefix("sha256:"),
        doc.get("created_at", ""),
        doc.get("author", ""),
        doc.get("message", ""),
        doc.get("tags") or {},
        doc.get("parent"),
        doc.get("summary") or {},
        tuple(doc.get("aliases") or ()),
    )


class Client:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        alias_ttl: float = 60.0,
        lock_file: str | Path | None = None,
        timeout: float = 5.0,
        lock_key: str | bytes | None = None,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise E.ConfigError(f"invalid registry URL {url!r}: expected http(s)://host:port")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self._headers = {"Accept": "application/json"}
        token = token or os.environ.get("GENREG_TOKEN")
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.alias_ttl = float(alias_ttl)
        self.timeout = timeout
        env_lock = os.environ.get("GENREG_LOCK_FILE")
        self.lock_file = Path(lock_file) if lock_file else (Path(env_lock) if env_lock else None)
        from genreg.lockfile import lock_key as _key

        self._lock_key = _key(lock_key)
        self._cache: dict[str, _Entry] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.requests = 0  # HTTP requests made (for tests and benchmarks)

    def _json(self, data: bytes, what: str) -> Any:
        """The server's JSON, or RegistryUnavailable (a proxy's HTML page, a truncated or
        absurdly nested body): such a server is as good as unreachable."""
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            head = data[:40].decode("utf-8", "replace").strip()
            raise RegistryUnavailable(
                f"registry {self.url} answered {what} with something that is not JSON "
                f"({head!r}...; a proxy or captive portal?)"
            ) from None

    def __repr__(self) -> str:  # never shows the token
        return f"Client({self.url!r}, alias_ttl={self.alias_ttl})"

    # ---- HTTP -----------------------------------------------------------------------
    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            c = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = c
        return c

    def _request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on this thread's keep-alive connection (one retry on a dead socket)."""
        hdrs = {**self._headers, **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        for attempt in (0, 1):
            conn = self._conn()
            try:
                self.requests += 1
                conn.request(method, self._base + path, payload, hdrs)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                if attempt or isinstance(exc, (ConnectionRefusedError, TimeoutError)):
                    raise RegistryUnavailable(f"registry {self.url} unreachable: {exc}") from None
        raise AssertionError("unreachable")

    def _raise_for(self, status: int, data: bytes) -> None:
        try:
            err = json.loads(data)["error"]
            code, msg, details = err["code"], err["message"], err.get("details") or {}
        except (ValueError, KeyError, TypeError, RecursionError):
            code, msg, details = "error", f"HTTP {status}", {}
        if status >= 500:
            raise RegistryUnavailable(f"registry {self.url} failed: {msg}")
        raise _CODES.get(code, E.GenregError)(msg, details=details)

    # ---- fetching -------------------------------------------------------------------
    @staticmethod
    def _path(r: Ref) -> str:
        base = f"/v1/{_URL_KIND[r.kind]}/{quote(r.name)}"
        if r.version is not None:
            return f"{base}/versions/{r.version}"
        if r.digest_prefix is not None:
            return f"{base}?digest=sha256:{r.digest_prefix}"
        if r.alias is not None:
            return f"{base}?alias={quote(r.alias)}"
        return base

    def _fetch(self, r: Ref, etag: str | None = None) -> dict[str, Any] | None:
        """The document for ``r`` (None on 304), digest-checked."""
        status, _, data = self._request(
            "GET", self._path(r), headers={"If-None-Match": etag} if etag else None
        )
        if status == 304:
            return None
        if status != 200:
            self._raise_for(status, data)
        doc = self._json(data, f"GET {r}")
        if not isinstance(doc, dict) or not isinstance(doc.get("digest"), str):
            raise RegistryUnavailable(f"registry {self.url} answered GET {r} with a non-document")
        if doc.get("kind") in ("prompt", "routing") and digest_bytes(
            canonical_json(doc.get("content"))
        ) != doc.get("digest"):
            raise E.IntegrityError(f"{r}: server content does not match digest {doc.get('digest')}")
        return doc

    def _ttl(self, r: Ref) -> float:
        return float("inf") if r.is_pinned else time.monotonic() + self.alias_ttl

    def _entry(self, ref: str | Ref, kind: str | None = None) -> _Entry:
        key = ref if isinstance(ref, str) else str(ref)
        e = self._cache.get(key)
        if e is not None:
            if e.expires < time.monotonic() and not e.refreshing:
                self._refresh_later(key, e, kind)
            if kind is not None and e.info.kind != kind:
                raise E.InvalidRef(f"reference {ref} is a {e.info.kind}, expected a {kind}")
            return e
        r = ref if isinstance(ref, Ref) else parse_ref(ref, kind=kind)
        if kind is not None and r.kind != kind:
            raise E.InvalidRef(f"reference {ref} is a {r.kind}, expected a {kind}")
        try:
            doc = self._fetch(r)
            assert doc is not None
            try:
                info = _info(doc)
            except (KeyError, TypeError, ValueError):
                raise RegistryUnavailable(
                    f"registry {self.url} answered GET {r} with an incomplete document"
                ) from None
            e = _Entry(doc, info, self._ttl(r))
        except RegistryUnavailable as exc:
            e = self._from_lock(r, exc.message)
        self._cache[key] = e
        return e

    def _refresh_later(self, key: str, e: _Entry, kind: str | None) -> None:
        with self._lock:
            if e.refreshing:
                return
            e.refreshing = True

        def run() -> None:
            try:
                r = parse_ref(key, kind=kind)
                doc = self._fetch(r, f'"{e.info.digest}"' if e.source == "server" else None)
                if doc is None:
                    e.expires = self._ttl(r)
                else:
                    self._cache[key] = _Entry(doc, _info(doc), self._ttl(r))
            except Exception:  # noqa: BLE001 - keep serving the last good value
                e.expires = time.monotonic() + min(self.alias_ttl, 5.0)
            finally:
                e.refreshing = False

        t = threading.Thread(target=run, name=f"genreg-refresh {key}", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _from_lock(self, r: Ref, why: str = "") -> _Entry:
        from genreg import lockfile

        if self.lock_file is None or not self.lock_file.exists():
            if why and "unreachable" not in why:
                raise RegistryUnavailable(f"{why}; and no lock file for {r}")
            raise RegistryUnavailable(f"registry {self.url} unreachable and no lock file for {r}")
        hit = lockfile.find(lockfile.read_lock(self.lock_file, self._lock_key), r)
        if hit is None:
            raise RegistryUnavailable(
                f"registry {self.url} unreachable and {r} is not in {self.lock_file}"
            )
        key, entry = hit
        lockfile.verified(key, entry)
        doc = {
            **entry,
            "ref": f"{entry['kind']}:{entry['name']}@v{entry['version']}",
            "alias": r.alias,
            "aliases": [],
            "source": "lock",
        }
        # Served from the lock: retry the server after the TTL (pinned refs stay put).
        return _Entry(doc, _info(doc), self._ttl(r), source="lock")

    def wait_refreshes(self, timeout: float = 10.0) -> None:
        """Block until background refreshes finish (for tests and orderly shutdown)."""
        for t in list(self._threads):
            t.join(timeout)

    def clear_cache(self) -> None:
        self._cache.clear()

    # ---- the Registry read interface ------------------------------------------------
    def get(self, ref: str | Ref) -> dict[str, Any]:
        """The raw document: version metadata plus ``content``."""
        return self._entry(ref).doc

    def resolve(self, ref: str | Ref, kind: str | None = None) -> VersionInfo:
        return self._entry(ref, kind).info

    def show(self, ref: str | Ref) -> tuple[VersionInfo, Any]:
        e = self._entry(ref)
        return e.info, e.doc.get("content")

    def content(self, ref: str | Ref) -> bytes:
        return canonical_json(self._entry(ref).doc.get("content"))

    def load_prompt(self, ref: str | Ref) -> Any:
        """A :class:`genreg.core.prompt.Prompt` (cached with the version)."""
        e = self._entry(ref, "prompt")
        p = e.objs.get("prompt")
        if p is None:
            from genreg.core.prompt import Prompt

            p = e.objs["prompt"] = Prompt.from_content(e.doc["content"])
        return p

    get_prompt = load_prompt

    def render(
        self, ref: str | Ref, variables: dict[str, Any] | None = None, **kw: Any
    ) -> str | list[dict[str, str]]:
        """Render locally; chat prompts give OpenAI-style ``[{role, content}]`` messages."""
        return self.load_prompt(ref).render({**(variables or {}), **kw})

    def render_request(
        self, ref: str | Ref, variables: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """Render locally into the ready OpenAI request body ``{model, temperature,
        max_tokens, ..., messages}``: pass it to ``client.chat.completions.create(**body)``."""
        from genreg.core.prompt import request_body

        prompt = self.load_prompt(ref)
        return request_body(prompt, prompt.render({**(variables or {}), **kw}))

    def load_routing(self, ref: str | Ref) -> Any:
        e = self._entry(ref, "routing")
        rt = e.objs.get("routing")
        if rt is None:
            from genreg.core.routing import Routing

            rt = e.objs["routing"] = Routing(e.doc["content"])
        return rt

    def explain_route(self, ref: str | Ref, query: str, tags: list[str] | None = None) -> Any:
        return self.load_routing(ref).choose(query, tags)

    def history(self, ref: str | Ref) -> list[VersionInfo]:
        r = ref if isinstance(ref, Ref) else parse_ref(ref)
        status, _, data = self._request("GET", f"/v1/{_URL_KIND[r.kind]}/{quote(r.name)}/versions")
        if status != 200:
            self._raise_for(status, data)
        try:
            return [_info(d) for d in self._json(data, "GET versions")["versions"]]
        except (KeyError, TypeError, ValueError):
            raise RegistryUnavailable(
                f"registry {self.url} answered a malformed version list"
            ) from None

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
