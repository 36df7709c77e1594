"""`render` can give the ready OpenAI request body: CLI, API and client."""

from __future__ import annotations

import json
from typing import Any

from _apihelp import seed, start_server, stop_server

CHAT = """messages:
  - {role: system, content: "Answer briefly."}
  - {role: user, content: "{{ question }}"}
variables: {type: object, properties: {question: {type: string}}, required: [question]}
model: {model: gpt-4o-mini, temperature: 0.2, max_tokens: 64, top_p: 0.9}
"""
BODY = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "max_tokens": 64,
    "top_p": 0.9,
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "why?"},
    ],
}


def test_cli_render_request_prints_the_openai_request_body(
    cli: Any, registry: Any, write: Any
) -> None:
    cli("register", "prompt", "qa", write("qa.yaml", CHAT))
    r = cli("render", "prompt:qa", "--var", "question=why?", "--request")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == BODY
    assert registry.render_request("prompt:qa", question="why?") == BODY


def test_text_prompt_request_is_one_user_message(cli: Any, registry: Any, write: Any) -> None:
    cli("register", "prompt", "t", write("t.txt", "Summarise {{ doc }}"))
    body = json.loads(cli("render", "prompt:t", "--var", "doc=x", "--request").stdout)
    assert body == {"messages": [{"role": "user", "content": "Summarise x"}]}


def test_api_render_returns_the_request_body(registry: Any, write: Any) -> None:
    from fastapi.testclient import TestClient

    from genreg.api.app import create_app

    registry.register("prompt", "qa", write("qa.yaml", CHAT))
    r = TestClient(create_app(registry=registry)).post(
        "/v1/prompts/qa/render", json={"variables": {"question": "why?"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["request"] == BODY and r.json()["messages"] == BODY["messages"]


def test_client_render_request_against_a_running_server(registry: Any) -> None:
    from genreg import Client

    seed(registry)
    proc, url = start_server(registry.home)
    try:
        body = Client(url).render_request("prompt:qa@production", question="q", context="c")
    finally:
        stop_server(proc)
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0
    assert body["messages"][-1] == {"role": "user", "content": "q"}
    assert body == registry.render_request("prompt:qa@production", question="q", context="c")
