"""Chunking: deterministic, overlapping windows that cover the text; spec parsing."""

from __future__ import annotations

import pytest

from genreg.errors import ConfigError
from genreg.retrieval.chunking import (
    ChunkingSpec,
    chunk_text_chars,
    chunk_text_tokens,
    iter_chunks,
    text_digest,
)
from retrieval_helpers import Doc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"by": "none"}),
        ("none", {"by": "none"}),
        ("chars:512:64", {"by": "chars", "size": 512, "overlap": 64}),
        ("tokens:256", {"by": "tokens", "size": 256, "overlap": 0}),
        (
            '{"by": "tokens", "size": 128, "overlap": 16}',
            {"by": "tokens", "size": 128, "overlap": 16},
        ),
        ({"by": "chars", "size": 10}, {"by": "chars", "size": 10, "overlap": 0}),
        ({"by": "none"}, {"by": "none"}),
    ],
)
def test_chunking_spec_parses_to_canonical_dict(value, expected):
    spec = ChunkingSpec.parse(value)
    assert spec.to_dict() == expected
    assert ChunkingSpec.parse(spec.to_dict()) == spec
    assert ChunkingSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    "value",
    [
        "chars",
        "chars:0",
        "chars:10:10",
        "chars:10:-1",
        "words:5",
        "chars:x",
        "{bad",
        {"by": "chars"},
        {"by": "chars", "size": 5, "stride": 2},
        42,
    ],
)
def test_bad_chunking_spec_is_a_config_error(value):
    with pytest.raises(ConfigError):
        ChunkingSpec.parse(value)


def test_char_windows_overlap_and_cover_the_text():
    text = "abcdefghijklmnopqrstuvwxyz"
    chunks = chunk_text_chars(text, 10, 3)
    assert chunks == ["abcdefghij", "hijklmnopq", "opqrstuvwx", "vwxyz"]
    for a, b in zip(chunks, chunks[1:]):
        assert a[-3:] == b[:3]
    assert chunks[-1].endswith("z")


@pytest.mark.parametrize(
    ("text", "size", "n"), [("", 10, 1), ("abc", 10, 1), ("a" * 10, 10, 1), ("a" * 11, 10, 2)]
)
def test_char_window_edge_cases(text, size, n):
    chunks = chunk_text_chars(text, size, 0)
    assert len(chunks) == n
    assert "".join(chunks) == text


def test_token_windows_are_verbatim_slices_of_the_text():
    text = "alpha beta  gamma delta epsilon"
    offsets = [(0, 5), (6, 10), (12, 17), (18, 23), (24, 31)]
    assert chunk_text_tokens(text, offsets, 2, 1) == [
        "alpha beta",
        "beta  gamma",
        "gamma delta",
        "delta epsilon",
    ]
    assert chunk_text_tokens(text, offsets, 10, 0) == [text]
    assert chunk_text_tokens("", [], 4, 0) == [""]


def test_none_keeps_whole_documents_with_title():
    docs = [Doc("d1", "body one", "Title"), Doc("d2", "body two")]
    chunks = list(iter_chunks(docs, ChunkingSpec.parse(None)))
    assert [(c.doc_id, c.chunk_index, c.text) for c in chunks] == [
        ("d1", 0, "Title body one"),
        ("d2", 0, "body two"),
    ]
    assert chunks[0].digest == text_digest("Title body one")


def test_chunking_is_deterministic_and_ordered():
    docs = [Doc(f"d{i}", "lorem ipsum dolor sit amet " * (i + 3)) for i in range(5)]
    spec = ChunkingSpec.parse("chars:40:10")
    first = list(iter_chunks(docs, spec))
    assert first == list(iter_chunks(docs, spec))
    assert [c.doc_id for c in first] == sorted(c.doc_id for c in first)
    for d in docs:
        idx = [c.chunk_index for c in first if c.doc_id == d.doc_id]
        assert idx == list(range(len(idx)))


def test_tokens_chunking_requires_a_tokenizer():
    with pytest.raises(ConfigError):
        list(iter_chunks([Doc("a", "x y z")], ChunkingSpec.parse("tokens:2")))


def test_tokens_chunking_with_real_tokenizer_respects_size_and_overlap():
    from genreg.retrieval.embedders import load_embedder

    tok = load_embedder(None).tokenizer
    text = " ".join(f"word{i}" for i in range(60))
    chunks = list(iter_chunks([Doc("a", text)], ChunkingSpec.parse("tokens:16:4"), tokenizer=tok))
    assert len(chunks) > 1
    for c in chunks:
        assert c.text in text
        n = len(tok(c.text, add_special_tokens=False)["input_ids"])
        assert n <= 16
    assert chunks[0].text.startswith("word0") and chunks[-1].text.endswith("word59")
