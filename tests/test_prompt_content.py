"""Prompt content as a user writes it: optional variables, description, show/diff as
registered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from genreg.errors import InvalidArtifact, RenderError

CHAT = """messages:
  - role: system
    content: |
      You answer from the context.
      Be brief.
  - role: user
    content: "{% if audience %}For {{ audience }}: {% endif %}{{ question }}"
variables:
  type: object
  properties:
    question: {type: string}
    audience: {type: string}
  required: [question]
model: {model: gpt-4o-mini, temperature: 0.2, max_tokens: 64}
metadata: {owner: search}
"""
# The digest this file had before prompts could carry a description: must never change.
CHAT_DIGEST = "sha256:35638d9b009ab90b7461fc19fb6f1e077bbafca212fc8154c0b0750de7c97ae9"


def test_declared_optional_variable_renders_when_not_passed(registry: Any, write: Any) -> None:
    registry.register("prompt", "qa", write("qa.yaml", CHAT))
    out = registry.render("prompt:qa", question="Why?")
    assert out[1] == {"role": "user", "content": "Why?"}
    out = registry.render("prompt:qa", question="Why?", audience="devs")
    assert out[1]["content"] == "For devs: Why?"


def test_optional_variable_takes_its_schema_default(registry: Any, write: Any) -> None:
    src = CHAT.replace("audience: {type: string}", "audience: {type: string, default: ops}")
    registry.register("prompt", "qa", write("qa.yaml", src))
    assert registry.render("prompt:qa", question="Why?")[1]["content"] == "For ops: Why?"


def test_undeclared_variable_stays_an_error(registry: Any, write: Any) -> None:
    src = CHAT.replace("{{ question }}", "{{ question }}{{ nope }}")
    with pytest.raises(InvalidArtifact, match="undeclared variable"):
        registry.register("prompt", "qa", write("qa.yaml", src))
    # and a required one that is missing is still refused at render
    registry.register("prompt", "qa", write("qa.yaml", CHAT))
    with pytest.raises(RenderError, match="question: missing"):
        registry.render("prompt:qa", audience="devs")


def test_cli_render_with_optional_variable_absent(cli: Any, registry: Any, write: Any) -> None:
    cli("register", "prompt", "qa", write("qa.yaml", CHAT))
    r = cli("render", "prompt:qa", "--var", "question=Why?")
    assert r.exit_code == 0, r.output
    assert "[user]\nWhy?" in r.stdout


def test_digest_of_a_prompt_without_description_is_unchanged(registry: Any, write: Any) -> None:
    res = registry.register("prompt", "qa", write("qa.yaml", CHAT))
    assert res.version.digest == CHAT_DIGEST


def test_description_is_content_shown_served_and_versioned(
    cli: Any, registry: Any, write: Any
) -> None:
    registry.register("prompt", "qa", write("qa.yaml", CHAT))
    described = "description: Answers support questions.\n" + CHAT
    res = registry.register("prompt", "qa", write("qa.yaml", described))
    assert res.created and res.version.version == 2 and res.version.digest != CHAT_DIGEST
    edited = described.replace("support questions", "billing questions")
    assert registry.register("prompt", "qa", write("qa.yaml", edited)).created
    shown = json.loads(cli("show", "prompt:qa@v2", "--json").stdout)
    assert shown["content"]["description"] == "Answers support questions."
    assert "description: Answers support questions." in cli("show", "prompt:qa@v2").stdout
    assert (
        "-description: Answers support questions."
        in cli("diff", "prompt:qa@v2", "prompt:qa@v3").stdout
    )


def test_unknown_top_level_key_is_refused_with_its_name(registry: Any, write: Any) -> None:
    with pytest.raises(InvalidArtifact, match=r"qa\.yaml: .*'owner' was unexpected"):
        registry.register("prompt", "qa", write("qa.yaml", "owner: me\n" + CHAT))


def test_show_prints_block_yaml_that_parses_back_to_the_same_digest(
    cli: Any, registry: Any, write: Any
) -> None:
    res = registry.register("prompt", "qa", write("qa.yaml", CHAT))
    out = cli("show", "prompt:qa").stdout
    body = out.split("\n\n", 1)[1]
    assert "- content: |\n    You answer from the context.\n    Be brief.\n" in body
    assert "\n\n" not in body.strip()  # no blank line between every line
    assert body.index("messages:") < body.index("variables:") < body.index("model:")
    again = registry.register("prompt", "qa", write("again.yaml", body))
    assert not again.created and again.version.digest == res.version.digest


def test_diff_diffs_the_registered_form_line_by_line(cli: Any, registry: Any, write: Any) -> None:
    registry.register("prompt", "qa", write("a.yaml", CHAT))
    registry.register("prompt", "qa", write("b.yaml", CHAT.replace("Be brief.", "Be thorough.")))
    out = cli("diff", "prompt:qa@v1", "prompt:qa@v2").stdout
    assert "-    Be brief.\n+    Be thorough.\n" in out
    assert "You answer from the context." in out  # context line, not a folded scalar
