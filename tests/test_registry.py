"""Versions, digests, aliases and the journal through the Python API (real SQLite file)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from genreg.core.hashing import canonical_json, sha256_hex
from genreg.core.prompt import Prompt
from genreg.errors import AmbiguousRef, InvalidArtifact, InvalidName, NotFound

PROMPT = """
template: "Answer {{ question }}"
variables:
  type: object
  properties: {question: {type: string}}
  required: [question]
"""


def prompt_file(write: Any, text: str = "Answer {{ question }}", rel: str = "p.yaml") -> Path:
    return write(rel, PROMPT.replace("Answer {{ question }}", text))


def test_same_content_registers_no_new_version(registry: Any, write: Any) -> None:
    p = prompt_file(write)
    first = registry.register("prompt", "qa", p)
    again = registry.register("prompt", "qa", p, message="again")
    assert first.created and not again.created
    assert again.version.version == 1 and again.version.digest == first.version.digest
    assert len(registry.history("prompt:qa")) == 1


def test_versions_are_numbered_contiguously_with_parent(registry: Any, write: Any) -> None:
    for i in range(4):
        registry.register("prompt", "qa", prompt_file(write, f"Answer {{{{ question }}}} v{i}"))
    hist = registry.history("prompt:qa")
    assert [v.version for v in hist] == [1, 2, 3, 4]
    assert [v.parent for v in hist] == [None, 1, 2, 3]


def test_identical_content_under_another_name_is_its_own_artifact(
    registry: Any, write: Any
) -> None:
    p = prompt_file(write)
    a = registry.register("prompt", "qa", p)
    b = registry.register("prompt", "qa2", p)
    assert b.created and a.version.digest == b.version.digest


def test_version_records_author_message_tags_and_digest_of_canonical_content(
    registry: Any, write: Any
) -> None:
    res = registry.register(
        "prompt",
        "qa",
        prompt_file(write),
        message="first cut",
        tags={"team": "search"},
        author="alice",
    )
    v = registry.resolve("prompt:qa@v1")
    assert (v.author, v.message, v.tags) == ("alice", "first cut", {"team": "search"})
    assert v.digest == res.version.digest == "sha256:" + sha256_hex(registry.content(v))
    assert v.created_at.endswith("Z")


def test_author_defaults_to_environment(
    registry: Any, write: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENREG_AUTHOR", "bob")
    registry._author = None
    assert registry.register("prompt", "qa", prompt_file(write)).version.author == "bob"


def test_all_reference_forms_resolve_to_the_same_version(registry: Any, write: Any) -> None:
    registry.register("prompt", "qa", prompt_file(write, "A {{ question }}"))
    v2 = registry.register("prompt", "qa", prompt_file(write, "B {{ question }}")).version
    registry.set_alias("prompt:qa@v2", "production")
    hexd = v2.digest.removeprefix("sha256:")
    for ref in [
        "prompt:qa",
        "prompt:qa@latest",
        "prompt:qa@v2",
        "prompt:qa@production",
        f"prompt:qa@sha256:{hexd[:6]}",
    ]:
        assert registry.resolve(ref).digest == v2.digest, ref


def _colliding_templates() -> tuple[str, str]:
    """Two text templates whose canonical digests share their first 6 hex digits."""
    seen: dict[str, str] = {}
    variables = {"type": "object", "properties": {}, "required": []}
    for i in itertools.count():
        text = f"template number {i}"
        d = sha256_hex(canonical_json(Prompt("text", text, None, variables).to_content()))[:6]
        if d in seen:
            return seen[d], text
        seen[d] = text
    raise AssertionError("unreachable")


def test_digest_prefix_matching_two_versions_is_ambiguous_never_a_guess(
    registry: Any, write: Any
) -> None:
    t1, t2 = _colliding_templates()
    v1 = registry.register("prompt", "c", write("a.txt", t1)).version
    v2 = registry.register("prompt", "c", write("b.txt", t2)).version
    prefix = v1.digest.removeprefix("sha256:")[:6]
    assert v2.digest.startswith("sha256:" + prefix)
    with pytest.raises(AmbiguousRef, match="ambiguous"):
        registry.resolve(f"prompt:c@sha256:{prefix}")
    assert registry.resolve(f"prompt:c@sha256:{v2.digest[7:14]}").version == 2


def test_unknown_refs_raise_not_found(registry: Any, write: Any) -> None:
    registry.register("prompt", "qa", prompt_file(write))
    for ref in ["prompt:nope", "prompt:qa@v9", "prompt:qa@staging", "prompt:qa@sha256:000000"]:
        with pytest.raises(NotFound):
            registry.resolve(ref)


def test_alias_moves_are_journaled_and_the_journal_is_append_only(
    registry: Any, write: Any
) -> None:
    registry.register("prompt", "qa", prompt_file(write, "A {{ question }}"))
    registry.register("prompt", "qa", prompt_file(write, "B {{ question }}"))
    registry.set_alias("prompt:qa@v1", "production", reason="launch", actor="alice")
    first = registry.alias_history("prompt:qa")
    registry.set_alias("prompt:qa@v2", "production", reason="better recall", actor="bob")
    registry.remove_alias("prompt:qa", "production", reason="rollback plan", actor="carol")
    journal = registry.alias_history("prompt:qa")
    assert journal[: len(first)] == first  # earlier entries never rewritten
    assert [(e.action, e.from_version, e.to_version, e.actor, e.reason) for e in journal] == [
        ("set", None, 1, "alice", "launch"),
        ("move", 1, 2, "bob", "better recall"),
        ("delete", 2, None, "carol", "rollback plan"),
    ]
    with pytest.raises(NotFound):
        registry.resolve("prompt:qa@production")


def test_aliases_appear_on_their_version(registry: Any, write: Any) -> None:
    registry.register("prompt", "qa", prompt_file(write))
    registry.set_alias("prompt:qa", "staging")
    registry.set_alias("prompt:qa", "production")
    assert registry.resolve("prompt:qa@v1").aliases == ("production", "staging")
    assert registry.list("prompt")[0].aliases == {"production": 1, "staging": 1}


@pytest.mark.parametrize("alias", ["latest", "v2", "Prod", "a b", "../x"])
def test_reserved_or_invalid_alias_names_are_refused(registry: Any, write: Any, alias: str) -> None:
    registry.register("prompt", "qa", prompt_file(write))
    with pytest.raises(InvalidName):
        registry.set_alias("prompt:qa@v1", alias)
    assert registry.alias_history("prompt:qa") == []


def test_alias_to_missing_version_changes_nothing(registry: Any, write: Any) -> None:
    registry.register("prompt", "qa", prompt_file(write))
    with pytest.raises(NotFound):
        registry.set_alias("prompt:qa@v7", "production")
    assert registry.alias_history("prompt:qa") == []


@pytest.mark.parametrize(
    ("filename", "content", "match"),
    [
        ("bad.yaml", "template: [unclosed", "invalid YAML"),
        ("bad.json", '{"template": "x",', "invalid JSON"),
        ("bad.yaml", "templat: hi", "templat.* unexpected"),
        ("bad.yaml", "", "empty"),
        ("bad.yaml", b"template: caf\xe9", "not valid UTF-8"),
        ("bad.yaml", "template: '{{ x'", "template syntax error"),
        (
            "bad.yaml",
            "template: '{{ who }}'\nvariables: {type: object, properties: {}}",
            "undeclared variable",
        ),
    ],
)
def test_bad_input_writes_nothing(
    registry: Any, write: Any, filename: str, content: Any, match: str
) -> None:
    p = write(filename, content)
    with pytest.raises(InvalidArtifact, match=match) as exc:
        registry.register("prompt", "qa", p)
    assert str(p) in str(exc.value)
    assert registry.list() == []
    assert list(registry.objects.iter_digests()) == []


def test_invalid_artifact_name_is_refused_before_anything_is_written(
    registry: Any, write: Any
) -> None:
    with pytest.raises(InvalidName):
        registry.register("prompt", "Bad Name", prompt_file(write))
    assert registry.list() == [] and list(registry.objects.iter_digests()) == []


def test_stored_objects_are_content_addressed_and_read_only(registry: Any, write: Any) -> None:
    v = registry.register("prompt", "qa", prompt_file(write)).version
    path = registry.home / "objects" / v.object_digest[:2] / v.object_digest[2:]
    assert path.exists() and not path.stat().st_mode & 0o222


def test_registry_migrates_on_open_idempotently(registry: Any, write: Any) -> None:
    from genreg import Registry

    registry.register("prompt", "qa", prompt_file(write))
    for _ in range(2):
        again = Registry(registry.home)
        assert again.resolve("prompt:qa").version == 1
        again.close()
