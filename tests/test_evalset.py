"""Gold eval sets: validation naming file and line, splits, BEIR import, row diffs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from genreg.errors import InvalidArtifact, InvalidRef

ROWS = [
    {
        "id": "q1",
        "query": "how do refunds work",
        "relevant": ["billing/refunds.md"],
        "split": "test",
    },
    {
        "id": "q2",
        "query": "reset 2fa",
        "relevant": {"security/2fa.md": 2, "account/login.md": 1},
        "split": "dev",
    },
    {
        "id": "q3",
        "query": "quota error",
        "relevant": ["troubleshooting/quota.md"],
        "split": "test",
        "tags": ["t"],
    },
]


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_split_is_first_class_in_refs(registry: Any, write: Any) -> None:
    registry.register("evalset", "gold", write("gold.jsonl", jsonl(ROWS)))
    assert [r["id"] for r in registry.load_evalset("evalset:gold@v1#test").rows] == ["q1", "q3"]
    assert [r["id"] for r in registry.load_evalset("evalset:gold#dev").rows] == ["q2"]
    assert len(registry.load_evalset("evalset:gold").rows) == 3
    with pytest.raises(InvalidArtifact, match="no split 'train'"):
        registry.load_evalset("evalset:gold#train")


def test_binary_and_graded_relevance_become_trec_qrels(registry: Any, write: Any) -> None:
    registry.register("evalset", "gold", write("gold.jsonl", jsonl(ROWS)))
    qrels = registry.load_evalset("evalset:gold").qrels()
    assert qrels["q1"] == {"billing/refunds.md": 1}
    assert qrels["q2"] == {"security/2fa.md": 2, "account/login.md": 1}


def test_row_order_does_not_change_the_digest(registry: Any, write: Any) -> None:
    a = registry.register("evalset", "gold", write("a.jsonl", jsonl(ROWS))).version
    b = registry.register("evalset", "gold", write("b.jsonl", jsonl(list(reversed(ROWS)))))
    assert not b.created and b.version.digest == a.digest


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        ([ROWS[0], ROWS[0]], r"gold.jsonl:2: duplicate id 'q1' \(first at .*gold.jsonl:1\)"),
        ([ROWS[0], {**ROWS[1], "query": "   "}], r"gold.jsonl:2: query"),
        ([ROWS[0], {**ROWS[1], "query": ""}], r"gold.jsonl:2: query"),
        ([{**ROWS[0], "relevant": {"d": -1}}], r"gold.jsonl:1: relevant"),
        ([{"id": "x", "query": "q"}], r"gold.jsonl:1: .*'relevant' is a required property"),
        ([{**ROWS[0], "colour": "red"}], r"gold.jsonl:1: .*colour"),
    ],
)
def test_bad_rows_name_file_and_line_and_write_nothing(
    registry: Any, write: Any, lines: list[Any], match: str
) -> None:
    with pytest.raises(InvalidArtifact, match=match):
        registry.register("evalset", "gold", write("gold.jsonl", jsonl(lines)))
    assert registry.list() == []


def test_malformed_json_line_names_its_line(registry: Any, write: Any) -> None:
    with pytest.raises(InvalidArtifact, match=r"gold.jsonl:2: invalid JSON"):
        registry.register("evalset", "gold", write("gold.jsonl", jsonl(ROWS[:1]) + "{oops\n"))


def test_beir_layout_imports_queries_and_qrels_per_split(registry: Any, write: Any) -> None:
    write(
        "beir/queries.jsonl",
        '{"_id": "1", "text": "first"}\n{"_id": "2", "text": "second"}\n{"_id": "3", "text": "x"}\n',
    )
    write("beir/qrels/test.tsv", "query-id\tcorpus-id\tscore\n1\tdA\t1\n1\tdB\t2\n")
    write("beir/qrels/dev.tsv", "query-id\tcorpus-id\tscore\n2\tdC\t0\n")
    beir = write("beir/corpus.jsonl", "").parent
    registry.register("evalset", "beir", beir)
    es = registry.load_evalset("evalset:beir")
    assert es.qrels() == {"1": {"dA": 1, "dB": 2}, "2": {"dC": 0}}
    assert es.splits() == {"dev": 1, "test": 1}
    assert registry.load_evalset("evalset:beir#test").rows[0]["query"] == "first"


def test_beir_qrels_naming_an_unknown_query_is_refused(registry: Any, write: Any) -> None:
    write("beir/queries.jsonl", '{"_id": "1", "text": "first"}\n')
    write("beir/qrels/test.tsv", "query-id\tcorpus-id\tscore\n9\tdA\t1\n")
    with pytest.raises(InvalidArtifact, match=r"test.tsv:2: query '9' is not in queries.jsonl"):
        registry.register("evalset", "beir", write("beir/x", "").parent)


def test_diff_lists_added_removed_and_changed_rows(registry: Any, write: Any) -> None:
    registry.register("evalset", "gold", write("a.jsonl", jsonl(ROWS)))
    changed = [
        {**ROWS[0], "relevant": ["billing/other.md"]},
        ROWS[1],
        {"id": "q4", "query": "new", "relevant": ["x"]},
    ]
    registry.register("evalset", "gold", write("b.jsonl", jsonl(changed)))
    d = registry.diff("evalset:gold@v1", "evalset:gold@v2")
    assert d["rows"] == {"added": ["q4"], "removed": ["q3"], "changed": ["q1"]}


def test_split_suffix_is_only_for_evalsets() -> None:
    from genreg.core.refs import parse_ref

    with pytest.raises(InvalidRef):
        parse_ref("corpus:docs#test")
