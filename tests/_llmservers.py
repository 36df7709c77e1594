"""Local OpenAI-compatible servers on free loopback ports for the generation tests.

``baseline()`` is genreg's own extractive baseline server (``genreg llm serve``'s server);
``FaultServer`` is the same server with fault injection chosen by a directive in the last
message's content (``FAULT:<what>``), so one server can serve good and bad calls at once:

- ``FAULT:429xN`` -- the first N calls with this content get 429 + ``Retry-After: 1``
- ``FAULT:500xN`` -- the first N calls get 500 (N=inf: always)
- ``FAULT:sleep=S`` -- sleep S seconds before answering (timeouts)
- ``FAULT:badjson`` -- 200 with a body that is not JSON
- ``FAULT:nochoices`` -- 200 with a JSON object that has no ``choices``
- ``FAULT:echoauth`` -- 400 whose error message repeats the Authorization header
- ``FAULT:judge=TEXT`` -- 200 with ``TEXT`` as the answer (scripted judge output)

Every call is recorded (content, time, Authorization header) in ``calls``; ``max_inflight``
is the largest number of calls handled at once.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

from genreg.generation.server import ChatServer, Handler

_DIRECTIVE = re.compile(r"FAULT:(\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FaultServer(ChatServer):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}
        self.inflight = 0
        self.max_inflight = 0

    def respond(self, h: Handler, body: dict[str, Any]) -> None:
        content = str(body["messages"][-1].get("content", ""))
        with self.lock:
            n = self.seen.get(content, 0)
            self.seen[content] = n + 1
            self.calls.append(
                {"content": content, "t": time.monotonic(), "auth": h.headers.get("Authorization")}
            )
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            self._respond(h, body, content, n)
        finally:
            with self.lock:
                self.inflight -= 1

    def _respond(self, h: Handler, body: dict[str, Any], content: str, n: int) -> None:
        m = _DIRECTIVE.search(content)
        what = m.group(1) if m else ""
        if what.startswith(("429x", "500x")):
            code, times = int(what[:3]), what[4:]
            if times == "inf" or n < int(times):
                headers = {"Retry-After": "1"} if code == 429 else {}
                h.send_error_json(code, f"injected {code}", "server_error", headers)
                return
        elif what.startswith("sleep="):
            time.sleep(float(what.split("=", 1)[1]))
        elif what == "badjson":
            h.send_raw(200, b"<html>bad gateway</html>", "text/html")
            return
        elif what == "nochoices":
            h.send_json(200, {"object": "chat.completion", "id": "x"})
            return
        elif what == "echoauth":
            h.send_error_json(400, f"bad request from {h.headers.get('Authorization')}")
            return
        elif what.startswith("judge="):
            text = content.split("FAULT:judge=", 1)[1]
            h.send_json(
                200,
                {
                    "id": "chatcmpl-judge",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                },
            )
            return
        super().respond(h, body)


class ScriptedServer(ChatServer):
    """Answers with ``script(body) -> str`` (e.g. judge verdicts as JSON), usage counted."""

    def __init__(self, script: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.script = script
        self.bodies: list[dict[str, Any]] = []

    def complete(self, body: dict[str, Any]) -> tuple[str, str]:
        with self.lock:
            self.bodies.append(json.loads(json.dumps(body)))
        return self.script(body), "stop"
