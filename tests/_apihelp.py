"""Shared factories for the API and client tests."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHAT: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Answer from the context: {{ context }}"},
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {
        "type": "object",
        "properties": {"question": {"type": "string"}, "context": {"type": "string"}},
        "required": ["question", "context"],
    },
    "model": {"model": "gpt-4o-mini", "temperature": 0},
}
ROWS = [{"id": "q1", "query": "what is gold?", "relevant": ["d1"]}]


def chat(n: int = 0) -> dict[str, Any]:
    """A chat prompt whose content differs by ``n`` (so each n is a new version)."""
    p = {**CHAT, "metadata": {"n": n}}
    return p


def seed(reg: Any, versions: int = 2, alias_to: int = 1) -> None:
    for i in range(versions):
        reg.register_content("prompt", "qa", chat(i))
    reg.set_alias(f"prompt:qa@v{alias_to}", "production")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    home: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """A real ``genreg serve`` on a free loopback port; waits until /readyz answers."""
    port = free_port()
    e = {**os.environ, "GENREG_HOME": str(home), **(env or {})}
    cmd = [
        str(Path(sys.executable).parent / "genreg"),
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"genreg serve exited: {proc.stdout.read().decode() if proc.stdout else ''}"
            )
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                c.close()
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("genreg serve did not become ready in 30 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
