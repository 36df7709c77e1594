"""The canonical manifest form is pinned: changing it changes every corpus digest."""

from __future__ import annotations

import hashlib

from genreg.core.corpus import (
    Document,
    Fields,
    build_manifest,
    diff_entries,
    entry_line,
    html_to_text,
    manifest_digest,
    parse_manifest,
    to_document,
)
from genreg.core.hashing import canonical_json

A = "a" * 64
B = "b" * 64


def test_canonical_manifest_form_is_pinned() -> None:
    man = build_manifest(
        [("z/é.md", B, 5, "md"), ("a.txt", A, 3, "text")],
        source="tree",
        fields=Fields(),
        layout=None,
    )
    expected = (
        "genreg-corpus/1\n"
        '{"bytes":8,"docs":2,"fields":{"id":"id","text":"text","title":"title"},'
        '"layout":null,"source":"tree"}\n'
        f'["a.txt","{A}",3,{{"format":"text"}}]\n'
        f'["z/é.md","{B}",5,{{"format":"md"}}]\n'
    ).encode()
    assert man.to_bytes() == expected
    assert manifest_digest(expected) == "sha256:" + hashlib.sha256(expected).hexdigest()
    assert manifest_digest(expected) == (
        "sha256:f4cbb683ef487eeeef9d1c89d81ec81051865bdd3cef987351553c14eedd6357"
    )
    assert parse_manifest(expected).entries == man.entries


def test_manifest_digest_value_is_stable() -> None:
    man = build_manifest([("d1", A, 1, "record")], source="jsonl", fields=Fields(), layout=None)
    assert manifest_digest(man.to_bytes()) == PINNED


PINNED = (
    "sha256:"
    + hashlib.sha256(
        b'genreg-corpus/1\n{"bytes":1,"docs":1,"fields":{"id":"id","text":"text","title":"title"},'
        b'"layout":null,"source":"jsonl"}\n["d1","' + A.encode() + b'",1,{"format":"record"}]\n'
    ).hexdigest()
)


def test_entry_line_equals_canonical_json_of_the_row() -> None:
    for doc_id in ('we"ird\\id\u2028', "tab\there", "plain/é.md", "ctl\x01\x7f"):
        e = (doc_id, A, 42, "html")
        assert entry_line(e) == canonical_json([doc_id, A, 42, {"format": "html"}]).decode() + "\n"


def test_documents_are_sorted_by_code_point_whatever_the_input_order() -> None:
    es = [("b", A, 1, "text"), ("B", A, 1, "text"), ("a", A, 1, "text")]
    man = build_manifest(es, source="tree", fields=Fields(), layout=None)
    assert [e[0] for e in man.entries] == ["B", "a", "b"]


def test_diff_entries_names_added_removed_changed() -> None:
    a = [("x", A, 1, "text"), ("y", A, 1, "text")]
    b = [("x", B, 1, "text"), ("z", A, 1, "text")]
    assert diff_entries(a, b) == (["z"], ["y"], ["x"], 0)


def test_html_is_stripped_and_title_extracted() -> None:
    html = "<html><head><title>T  1</title><style>p{}</style></head><body><p>Hi &amp; <b>bye</b></p><script>x()</script></body></html>"
    assert html_to_text(html) == ("T 1", "Hi & bye")


def test_embed_text_is_title_space_text_stripped() -> None:
    assert Document("d", "body", "Title").embed_text() == "Title body"
    assert Document("d", " body ").embed_text() == "body"
    doc = to_document("7", "record", b'{"_id":"7","title":"T","text":"x","year":1}\n', Fields())
    assert (doc.title, doc.text, doc.metadata["year"]) == ("T", "x", 1)
