"""Prompt templates: sandboxed strict rendering with validated variables."""

from __future__ import annotations

from typing import Any

import pytest

from genreg.errors import InvalidArtifact, RenderError

CHAT = """
messages:
  - role: system
    content: Be brief.
  - role: user
    content: "Context: {{ context }}\\nQ: {{ question }}{% if n %} ({{ n }}){% endif %}"
variables:
  type: object
  properties:
    question: {type: string, minLength: 1}
    context: {type: string}
    n: {type: integer, minimum: 1}
  required: [question, context]
model: {model: gpt-4o-mini, temperature: 0.2, max_tokens: 100}
metadata: {owner: search}
"""


def test_chat_prompt_renders_openai_style_messages(registry: Any, write: Any) -> None:
    registry.register("prompt", "qa", write("qa.yaml", CHAT))
    out = registry.render("prompt:qa", question="Why?", context="Because.", n=2)
    assert out == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Context: Because.\nQ: Why? (2)"},
    ]


def test_render_names_every_missing_or_wrong_variable(registry: Any, write: Any) -> None:
    registry.register("prompt", "qa", write("qa.yaml", CHAT))
    with pytest.raises(RenderError) as exc:
        registry.render("prompt:qa", question="", n="three")
    msg = str(exc.value)
    assert "context: missing" in msg and "question:" in msg and "n:" in msg
    assert len(exc.value.details["errors"]) == 3


def test_text_file_variables_are_required_strings(registry: Any, write: Any) -> None:
    registry.register(
        "prompt", "rewrite", write("rewrite.txt", "Rewrite: {{ question }} for {{ audience }}\n")
    )
    prompt = registry.load_prompt("prompt:rewrite")
    assert prompt.variables["required"] == ["audience", "question"]
    assert (
        registry.render("prompt:rewrite", question="q", audience="devs") == "Rewrite: q for devs\n"
    )
    with pytest.raises(RenderError, match="audience: missing"):
        registry.render("prompt:rewrite", question="q")


def test_undeclared_template_variable_is_refused_at_registration(registry: Any, write: Any) -> None:
    bad = CHAT.replace("Be brief.", "Be brief, {{ persona }}.")
    with pytest.raises(InvalidArtifact, match="undeclared variable.*persona"):
        registry.register("prompt", "qa", write("qa.yaml", bad))
    assert registry.list() == []


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_template_injection_does_not_execute(registry: Any, write: Any, payload: str) -> None:
    try:
        registry.register("prompt", "evil", write("evil.txt", payload))
    except InvalidArtifact:
        return  # refused at registration: fine
    with pytest.raises(RenderError):
        out = registry.render(
            "prompt:evil", **{v: "x" for v in registry.load_prompt("prompt:evil").declared()}
        )
        assert "<class" not in str(out)  # never reached if the sandbox refuses
        raise RenderError("rendered without leaking")


def test_prompt_needs_exactly_one_of_template_or_messages(registry: Any, write: Any) -> None:
    both = "template: hi\nmessages: [{role: user, content: hi}]\n"
    with pytest.raises(InvalidArtifact, match="exactly one of 'template' or 'messages'"):
        registry.register("prompt", "qa", write("both.yaml", both))


def test_model_config_and_metadata_are_part_of_the_version(registry: Any, write: Any) -> None:
    a = registry.register("prompt", "qa", write("qa.yaml", CHAT)).version
    b = registry.register(
        "prompt", "qa", write("qa.yaml", CHAT.replace("temperature: 0.2", "temperature: 0.3"))
    ).version
    assert a.digest != b.digest and b.version == 2
    assert registry.load_prompt("prompt:qa@v2").model["temperature"] == 0.3
    assert registry.load_prompt("prompt:qa@v1").metadata == {"owner": "search"}
