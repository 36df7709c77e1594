"""An OpenAI-compatible Chat Completions client (aiohttp): the code path real providers use.

``POST {base_url}/chat/completions`` with ``Authorization: Bearer <key>`` (the key read from
the environment variable the route names, never stored) and a JSON body ``{model, messages,
**params}``. Works with OpenAI, vLLM, Ollama, llama.cpp's server, a LiteLLM proxy and
``genreg llm serve``.

- **Concurrency**: at most ``concurrency`` calls in flight (one asyncio semaphore, an aiohttp
  connection pool of the same size, keep-alive); calls are issued lazily, so a stop (cost
  cap, fatal endpoint error) issues nothing further. aiohttp rather than httpx: about a
  tenth of the CPU per call (BENCHMARKS.md, "Generation"), which is what bounds throughput
  at high concurrency.
- **Retries**: on 408, 409, 429 and 5xx responses, on timeouts and on dropped connections, up to
  ``max_retries`` times. The delay honours ``retry-after-ms`` / ``Retry-After`` (seconds or an
  HTTP date, capped at :data:`MAX_RETRY_AFTER_S`), else exponential backoff
  ``backoff_s x 2^attempt`` (capped at ``backoff_max_s``) with equal jitter.
- **Timeout**: ``timeout_s`` bounds each attempt as a whole (connect + send + the full
  response, streamed or not).
- **Failures**: a call that still fails (other 4xx, malformed JSON, no choices, retries
  exhausted) is a per-query :class:`ChatResult` with ``error`` set. An endpoint that cannot be
  reached (connection refused / DNS, after retries) or that answers 401/403 raises
  :class:`~genreg.errors.EndpointError` naming the route and the base URL, and no further call
  is issued.
- **Streaming** (``stream=True``): server-sent events with ``stream_options.include_usage``;
  ``ttft_ms`` is the time to the first non-empty content delta.
- **Secrets**: the key only ever travels in the Authorization header; every error text is
  scrubbed of it (:func:`scrub`), and nothing here logs.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from genreg.errors import ConfigError, EndpointError

RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
FATAL_STATUS = frozenset({401, 403})
MAX_RETRY_AFTER_S = 60.0
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Endpoint:
    """Where a route's calls go: a base URL and the *name* of the env var holding its key."""

    route: str
    base_url: str
    api_key_env: str | None = None

    @cached_property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @cached_property
    def identity(self) -> str:
        """The base URL without credentials, query or fragment: part of the response-cache
        key, so a different server (another port too) never serves another's answers."""
        return endpoint_identity(self.base_url)

    @cached_property
    def host(self) -> str:
        """The endpoint's host name, without port, path or credentials: what lineage records
        (``generation.routes.<route>.endpoint``, ``generation.judge.<metric>.endpoint``), so
        two runs against the same server started on another port compare as the same input;
        the model name and parameters beside it say what answered."""
        return urlsplit(self.identity).hostname or ""

    def api_key(self) -> str | None:
        """The key from the environment; a named but unset/empty variable is a ConfigError."""
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigError(
                f"route {self.route}: environment variable {self.api_key_env} (its API key) "
                "is not set"
            )
        return value


def endpoint_identity(base_url: str) -> str:
    """``scheme://host[:port]/path`` with user info, query and fragment removed."""
    u = urlsplit(base_url.strip())
    host = (u.hostname or "").lower()
    netloc = f"{host}:{u.port}" if u.port else host
    return urlunsplit((u.scheme.lower(), netloc, u.path.rstrip("/"), "", ""))


def check_endpoint(route: str, base_url: Any, api_key_env: Any, where: str) -> Endpoint:
    """Validate a route's endpoint settings (ConfigError names ``where``)."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigError(
            f"{where}: route {route} has no base_url (set target.base_url in the routing "
            "config or generate.endpoint.base_url in the eval config)"
        )
    u = urlsplit(base_url.strip())
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"{where}: route {route}: base_url must be an http(s) URL")
    if u.username or u.password:
        raise ConfigError(
            f"{where}: route {route}: base_url must not carry credentials; "
            "name the key's environment variable in api_key_env"
        )
    if api_key_env is not None and (
        not isinstance(api_key_env, str) or not _ENV_RE.match(api_key_env)
    ):
        raise ConfigError(
            f"{where}: route {route}: api_key_env must be an environment variable name"
        )
    return Endpoint(route, base_url.strip(), api_key_env)


@dataclass
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @classmethod
    def from_openai(cls, u: Any) -> Usage:
        if not isinstance(u, dict):
            return cls()

        def num(v: Any) -> int | None:
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        pd = u.get("prompt_tokens_details") or {}
        cd = u.get("completion_tokens_details") or {}
        return cls(
            num(u.get("prompt_tokens")),
            num(u.get("completion_tokens")),
            num(pd.get("cached_tokens")) if isinstance(pd, dict) else None,
            num(cd.get("reasoning_tokens")) if isinstance(cd, dict) else None,
        )

    def to_dict(self) -> dict[str, int | None]:
        return asdict(self)


@dataclass
class ChatRequest:
    """One call: ``body`` is the JSON sent (model, messages, params), never the key."""

    qid: str
    repeat: int
    endpoint: Endpoint
    body: dict[str, Any]
    key: str = ""  # the response-cache key (see genreg.generation.cache)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatResult:
    text: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    response_id: str | None = None
    system_fingerprint: str | None = None
    model: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    attempts: int = 0
    error: str | None = None
    cache_hit: bool = False
    response: dict[str, Any] | None = None  # the full (assembled) response JSON

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_response(cls, data: Any, **kw: Any) -> ChatResult:
        """Parse a Chat Completions response body; a wrong shape is a per-query error."""
        if not isinstance(data, dict):
            return cls(error="malformed response: not a JSON object", **kw)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            err = data.get("error")
            msg = err.get("message") if isinstance(err, dict) else None
            return cls(error=f"malformed response: no choices{f' ({msg})' if msg else ''}", **kw)
        ch = choices[0]
        msg = ch.get("message")
        content = msg.get("content") if isinstance(msg, dict) else None
        if content is not None and not isinstance(content, str):
            return cls(error="malformed response: message.content is not a string", **kw)
        return cls(
            text=content or "",
            finish_reason=ch.get("finish_reason"),
            usage=Usage.from_openai(data.get("usage")),
            response_id=data.get("id") if isinstance(data.get("id"), str) else None,
            system_fingerprint=data.get("system_fingerprint")
            if isinstance(data.get("system_fingerprint"), str)
            else None,
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            response=data,
            **kw,
        )


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced (secrets never reach errors)."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return min(max(float(ms) / 1000, 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return min(max(float(ra), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)


class _Retry(Exception):
    def __init__(self, why: str, wait: float | None = None, connect: bool = False) -> None:
        super().__init__(why)
        self.why, self.wait, self.connect = why, wait, connect


@dataclass
class ClientOptions:
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 20.0
    stream: bool = False


class ChatClient:
    """Runs many :class:`ChatRequest` s with bounded concurrency (see the module docstring)."""

    def __init__(self, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        self.calls = 0  # HTTP attempts made (retries included)
        self._proxies: dict[str, tuple[Any, Any]] = {}

    def _post(self, http: Any, req: ChatRequest, data: bytes, headers: dict[str, str]) -> Any:
        """``POST`` through the proxy the environment names for this endpoint
        (``HTTP(S)_PROXY`` / ``NO_PROXY``, as httpx honoured them), looked up once per
        endpoint: aiohttp's ``trust_env`` would look it up -- and ``~/.netrc`` -- in a
        worker thread on every request (two thread hand-offs per call), and a netrc entry
        for the host would clash with the Authorization header."""
        url = req.endpoint.url
        got = self._proxies.get(url)
        if got is None:
            from aiohttp.helpers import get_env_proxy_for_url
            from yarl import URL

            try:
                got = get_env_proxy_for_url(URL(url))
            except LookupError:
                got = (None, None)
            self._proxies[url] = got
        return http.post(url, data=data, headers=headers, proxy=got[0], proxy_auth=got[1])

    # ---- one call -----------------------------------------------------------------------
    async def _attempt(self, http: Any, req: ChatRequest, key: str | None) -> ChatResult:
        import aiohttp

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = dict(req.body)
        if self.options.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        data = json.dumps(body).encode()
        t0 = time.perf_counter()
        self.calls += 1
        try:
            if self.options.stream:
                return await self._stream(http, req, data, headers, t0, key)
            async with self._post(http, req, data, headers) as resp:
                raw = await resp.read()
                self._check_status(req, resp.status, resp.headers, raw, key)
        except aiohttp.ClientConnectorError as exc:
            raise _Retry(f"cannot connect ({_reason(exc)})", connect=True) from None
        except asyncio.TimeoutError:
            raise _Retry(f"timed out after {self.options.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:  # disconnected, payload error, reset, ...
            raise _Retry(f"connection dropped ({_reason(exc)})") from None
        except ValueError as exc:  # e.g. a stream line over read_bufsize
            return ChatResult(error=f"malformed response: {_reason(exc)}")
        latency = (time.perf_counter() - t0) * 1000
        try:
            parsed = json.loads(raw)
        except ValueError:
            snippet = scrub(raw[:80].decode("utf-8", "replace"), key)
            return ChatResult(
                error=f"malformed response: not JSON ({snippet!r})", latency_ms=latency
            )
        return ChatResult.from_response(parsed, latency_ms=latency)

    def _check_status(
        self, req: ChatRequest, code: int, headers: Any, raw: bytes, key: str | None
    ) -> None:
        if code < 400:
            return
        if code in FATAL_STATUS:
            raise EndpointError(
                f"route {req.endpoint.route}: {req.endpoint.identity} rejected the request "
                f"({code} {'unauthorized: check the API key' if code == 401 else 'forbidden'}"
                f"{f' in ${req.endpoint.api_key_env}' if req.endpoint.api_key_env else ''})"
            )
        text = scrub(_error_text(raw), key)
        if code in RETRY_STATUS:
            raise _Retry(f"HTTP {code}{f': {text}' if text else ''}", retry_after(headers))
        raise _Fail(f"HTTP {code}{f': {text}' if text else ''}")

    async def _stream(
        self,
        http: Any,
        req: ChatRequest,
        data: bytes,
        headers: dict[str, str],
        t0: float,
        key: str | None,
    ) -> ChatResult:
        ttft: float | None = None
        parts: list[str] = []
        finish = rid = fp = model = None
        usage: Any = None
        async with self._post(http, req, data, headers) as resp:
            if resp.status >= 400:
                raw = await resp.read()
                self._check_status(req, resp.status, resp.headers, raw, key)
            async for chunk in resp.content:
                line = chunk.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    ev = json.loads(payload)
                except ValueError:
                    return ChatResult(error="malformed response: bad stream event")
                if not isinstance(ev, dict):
                    return ChatResult(error="malformed response: bad stream event")
                rid = rid or ev.get("id")
                fp = fp or ev.get("system_fingerprint")
                model = model or ev.get("model")
                if ev.get("usage"):
                    usage = ev["usage"]
                for ch in ev.get("choices") or []:
                    delta = (ch or {}).get("delta") or {}
                    piece = delta.get("content")
                    if isinstance(piece, str) and piece:
                        if ttft is None:
                            ttft = (time.perf_counter() - t0) * 1000
                        parts.append(piece)
                    if ch.get("finish_reason"):
                        finish = ch["finish_reason"]
        latency = (time.perf_counter() - t0) * 1000
        assembled = {
            "id": rid,
            "object": "chat.completion",
            "model": model,
            "system_fingerprint": fp,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(parts)},
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }
        return ChatResult.from_response(assembled, latency_ms=latency, ttft_ms=ttft)

    async def _call(self, http: Any, req: ChatRequest, key: str | None) -> ChatResult:
        o = self.options
        last = "no attempt made"
        for attempt in range(o.max_retries + 1):
            try:
                res = await asyncio.wait_for(self._attempt(http, req, key), o.timeout_s)
                res.attempts = attempt + 1
                return res
            except asyncio.TimeoutError:
                last, wait, connect = f"timed out after {o.timeout_s:g} s", None, False
            except _Retry as r:
                last, wait, connect = r.why, r.wait, r.connect
            except _Fail as f:
                return ChatResult(error=str(f), attempts=attempt + 1)
            if attempt == o.max_retries:
                if connect:
                    raise EndpointError(
                        f"route {req.endpoint.route}: cannot reach {req.endpoint.identity} "
                        f"({last.removeprefix('cannot connect (').rstrip(')')})"
                    )
                break
            if wait is None:
                b = min(o.backoff_s * 2**attempt, o.backoff_max_s)
                wait = b / 2 + random.uniform(0, b / 2)
            await asyncio.sleep(wait)
        return ChatResult(
            error=f"{last} (after {o.max_retries + 1} attempts)", attempts=o.max_retries + 1
        )

    # ---- many calls ---------------------------------------------------------------------
    def run(
        self,
        requests: Iterable[ChatRequest],
        on_result: Callable[[ChatRequest, ChatResult], bool] | None = None,
    ) -> dict[int, ChatResult]:
        """Run ``requests``; ``on_result`` is called as each finishes and returns False to
        stop issuing further calls. Returns ``{index in requests: result}`` for the calls
        made. Raises EndpointError (after in-flight calls end) on a fatal endpoint error.

        ``requests`` may be a lazy iterable (the generate stage looks its requests up in
        the response cache that way, while the first calls are in flight): the next request is taken while the calls
        in flight are awaited, at most one is taken after a stop (and not issued), and an
        exception raised by
        the iterable stops issuing calls and is raised once the in-flight calls end. A
        sequence has every key variable resolved before the first call; a lazy iterable,
        each route's when its first request is taken."""
        return asyncio.run(self._run(requests, on_result))

    async def _run(
        self,
        requests: Iterable[ChatRequest],
        on_result: Callable[[ChatRequest, ChatResult], bool] | None,
    ) -> dict[int, ChatResult]:
        import aiohttp

        o = self.options
        keys: dict[str, str | None] = {}
        if isinstance(requests, Sequence):  # a missing variable fails before any call
            for r in requests:
                if r.endpoint.route not in keys:
                    keys[r.endpoint.route] = r.endpoint.api_key()
        out: dict[int, ChatResult] = {}
        stop = False
        fatal: list[EndpointError] = []
        sem = asyncio.Semaphore(max(1, o.concurrency))
        tasks: set[asyncio.Task[None]] = set()

        async def one(i: int, req: ChatRequest, http: Any) -> None:
            nonlocal stop
            try:
                res = await self._call(http, req, keys[req.endpoint.route])
            except EndpointError as exc:
                fatal.append(exc)
                stop = True
                return
            finally:
                sem.release()
            out[i] = res
            if on_result is not None and on_result(req, res) is False:
                stop = True

        # the per-attempt timeout is asyncio.wait_for in _call; SSE lines up to 1 MiB
        connector = aiohttp.TCPConnector(limit=max(1, o.concurrency), ttl_dns_cache=300)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            read_bufsize=2**20,
            trust_env=False,  # the env's proxy is looked up once per endpoint (_post)
        ) as http:
            failed: BaseException | None = None
            try:
                # the next request is taken (a lazy one rendered) while the calls in flight
                # are awaited, then issued once a slot is free
                for i, req in enumerate(requests):
                    await sem.acquire()
                    if stop:
                        sem.release()
                        break
                    if req.endpoint.route not in keys:
                        keys[req.endpoint.route] = req.endpoint.api_key()
                    t = asyncio.create_task(one(i, req, http))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
            except Exception as exc:  # from the iterable: let in-flight calls end, then raise
                failed = exc
            if tasks:
                await asyncio.gather(*list(tasks))
        if failed is not None:
            raise failed
        if fatal:
            raise fatal[0]
        return out


class _Fail(Exception):
    """A non-retryable per-query failure (e.g. HTTP 400)."""


def _reason(exc: Exception) -> str:
    s = str(exc) or type(exc).__name__
    return s.splitlines()[0][:120]


def _error_text(raw: bytes) -> str:
    try:
        data = json.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:200]
        if isinstance(err, str):
            return err[:200]
    except ValueError:
        pass
    return raw[:200].decode("utf-8", "replace").strip()
