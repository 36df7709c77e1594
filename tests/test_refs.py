from __future__ import annotations

import pytest

from genreg.core.refs import Ref, parse_ref, validate_name
from genreg.errors import InvalidName, InvalidRef


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prompt:rag-answer", Ref("prompt", "rag-answer")),
        ("prompt:rag-answer@production", Ref("prompt", "rag-answer", alias="production")),
        ("corpus:docs@v3", Ref("corpus", "docs", version=3)),
        ("evalset:gold@sha256:9F2C1E", Ref("evalset", "gold", digest_prefix="9f2c1e")),
        ("evalset:gold@v3#test", Ref("evalset", "gold", version=3, split="test")),
        ("evalset:gold#dev", Ref("evalset", "gold", split="dev")),
        ("routing:default@latest", Ref("routing", "default")),
    ],
)
def test_every_reference_form_parses(text: str, expected: Ref) -> None:
    assert parse_ref(text) == expected


def test_reference_round_trips_through_str() -> None:
    for text in ["prompt:a@v2", "prompt:a@production", "evalset:g@sha256:abcdef#test", "corpus:c"]:
        assert str(parse_ref(text)) == text


@pytest.mark.parametrize(
    "name", ["", "Has Space", "a/b", "..", "a..b", "UPPER", "-lead", "x" * 101, "é"]
)
def test_invalid_names_are_refused_with_a_reason(name: str) -> None:
    with pytest.raises(InvalidName, match="invalid name"):
        validate_name(name)


@pytest.mark.parametrize(
    "text",
    [
        "rag-answer",  # no kind
        "model:x",  # unknown kind
        "prompt:a@sha256:abc",  # digest prefix shorter than 6
        "prompt:a@",  # empty selector
        "prompt:a#test",  # split on a non-evalset
        "prompt:a/b",
        "prompt:a@v0",  # v0 is not a version; also not a valid alias
    ],
)
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidRef):
        parse_ref(text)


def test_default_kind_applies_only_without_explicit_kind() -> None:
    assert parse_ref("qa@v1", kind="prompt") == Ref("prompt", "qa", version=1)
    with pytest.raises(InvalidRef, match="expected a prompt"):
        parse_ref("routing:qa", kind="prompt")
