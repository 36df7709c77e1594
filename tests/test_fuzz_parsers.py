"""Property-based fuzzing (hypothesis) of every parser: any input either registers and reads
back identically, or fails with a ``GenregError`` -- never another exception.

Covers prompt and routing files (YAML and JSON) and payloads, eval sets (JSONL and BEIR),
run files (TREC and JSONL), corpus sources (JSONL and trees), export bundles and lock files.
Inputs mix well-formed documents, hostile values (NaN, huge integers, lone surrogates, line
separators, deep nesting, duplicate keys, YAML tags and aliases) and raw noise. Example counts
are bounded so the whole file runs in well under a minute.
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from genreg.core import artifacts as kinds
from genreg.errors import GenregError

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: CI failures reproduce locally
)
_names = itertools.count()

# ---- strategies -----------------------------------------------------------------------------
NASTY_CHARS = [
    "\u2028",
    "\u2029",
    "\x85",
    "\x00",
    "\ufeff",
    "\ud800",
    "\r",
    "\n",
    "\t",
    "{{",
    "}}",
    "{%",
    "%}",
    "\\",
    '"',
    "'",
    ":",
    "- ",
    "&a",
    "*a",
    "!!binary",
    "#",
]
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30) | st.lists(
    st.sampled_from(NASTY_CHARS) | st.text(max_size=5), max_size=8
).map("".join)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(text, c, max_size=4),
    max_leaves=12,
)
# Mostly-valid values (so that many examples register and are read back), with nasty but
# legal strings: line/paragraph separators, NEL, BOM, braces, quotes.
safe_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20
) | st.lists(
    st.sampled_from([c for c in NASTY_CHARS if c != "\ud800"]) | st.text(max_size=4), max_size=6
).map("".join)
# Text that is always legal content (no separators or controls): most examples register.
good_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=("Cs", "Cc")),
    min_size=1,
    max_size=20,
)
ident = st.text("abcdefghij0123456789-_.", min_size=1, max_size=8)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | safe_text,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(safe_text, c, max_size=3),
    max_leaves=10,
)


def _deep(n: int) -> Any:
    v: Any = 1
    for _ in range(n):
        v = {"a": v}
    return v


maybe_deep = values | st.integers(90, 130).map(_deep)
# One hostile value inside an otherwise valid document (the case a parser most easily misses).
hostile_leaf = (
    st.sampled_from([float("nan"), float("inf"), -float("inf"), "\ud800", "a\udfffb"])
    | st.just(5000).map(lambda n: 10**n)  # built lazily: its repr would exceed 4300 digits
    | st.integers(95, 1200).map(_deep)
    | st.dictionaries(st.integers(0, 3) | st.booleans(), st.just(1), min_size=1, max_size=1)
)
leaf = st.one_of(plain, plain, hostile_leaf)


def dump(obj: Any, fmt: str) -> str:
    """``obj`` serialised as JSON or YAML (NaN/Infinity in their JS/YAML spellings, integers of
    any length); an object too deep for the *serialiser* is skipped, not a finding."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        if fmt == "json":
            return json.dumps(obj, ensure_ascii=False)
        return yaml.safe_dump(obj, allow_unicode=True)
    except RecursionError:
        assume(False)
        raise
    finally:
        sys.set_int_max_str_digits(old)


def _outcome(fn: Any) -> Any:
    """``fn()``'s result, or None if it raised a GenregError; any other exception fails."""
    from hypothesis import event

    try:
        return fn()
    except GenregError as exc:
        assert "\n" not in exc.message, exc.message
        event(f"refused: {type(exc).__name__}: {exc.message.split(': ', 1)[-1][:45]}")
        return None
    except RecursionError:  # pragma: no cover - an explicit failure message
        pytest.fail("RecursionError escaped a parser")


def _reads_back(reg: Any, kind: str, name: str, parsed: kinds.Parsed) -> str:
    """Register ``parsed`` and check every reader gives the same content back."""
    from hypothesis import event

    event(f"{kind} registered")
    res = reg.register_parsed(name, parsed)
    ref = f"{kind}:{name}@v{res.version.version}"
    assert reg.content(ref) == parsed.data
    info, content = reg.show(ref)
    assert info.digest == parsed.digest
    json.dumps(content, allow_nan=False)  # what the API sends must be valid JSON
    kinds.pretty(kind, parsed.data)  # `genreg show`
    again = kinds.parse_payload(kind, kinds.to_payload(kind, parsed.data), where="readback")
    assert again.digest == parsed.digest, "re-parsing the stored content changed it"
    bundle = reg.export(ref)
    back = reg.import_bundle(bundle, name=f"{name}-imp")
    assert back.version.digest == parsed.digest
    return ref


def _name() -> str:
    return f"f{next(_names)}"


# ---- prompts and routing configs ------------------------------------------------------------
def _prompt_doc(template: str, metadata: Any, variables: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"template": template, "metadata": metadata}
    if variables is not None:
        d["variables"] = variables
    return d


HOSTILE_TEMPLATES = ["{{ 'a' * 10**9 }}", "{% include 'x' %}", "{{", "", "{{ undeclared }}"]
GOOD_TEMPLATES = [
    "Hi {{ name }}",
    "{{ 1 }}",
    "{% for x in range(3) %}{{ x }}{% endfor %}",
    "plain text",
    "{{ name|upper }} \u2028 done",
]
prompt_docs = st.builds(
    _prompt_doc,
    st.sampled_from(GOOD_TEMPLATES + HOSTILE_TEMPLATES) | text,
    maybe_deep,
    st.none() | st.just({"properties": {"name": {"type": "string"}}}) | values,
)
routing_docs = st.fixed_dictionaries(
    {
        "routes": st.lists(
            st.fixed_dictionaries(
                {
                    "name": ident | st.just("default") | text,
                    "match": st.fixed_dictionaries(
                        {},
                        optional={
                            "query_regex": st.sampled_from([r"(a)\1", "(", "(?=a)", "x"]) | text,
                            "tags": st.lists(text, max_size=2),
                            "min_tokens": st.integers(-1, 5),
                        },
                    ),
                    "target": st.fixed_dictionaries(
                        {
                            "model": text | values,
                            "price": st.fixed_dictionaries(
                                {"input_per_1m": scalars, "output_per_1m": scalars}
                            ),
                        }
                    ),
                }
            ),
            max_size=3,
        ),
        "default": st.fixed_dictionaries(
            {"target": st.fixed_dictionaries({"model": st.just("m") | text, "price": values})}
        ),
    }
)


PRICE = st.fixed_dictionaries(
    {"input_per_1m": st.floats(0, 100) | st.integers(0, 9), "output_per_1m": st.integers(0, 9)}
)
good_prompts = st.builds(
    _prompt_doc,
    st.sampled_from(GOOD_TEMPLATES),
    st.dictionaries(good_text | safe_text, leaf, max_size=4),
    st.just({"properties": {"name": {"type": "string"}}}),
)
good_routing = st.fixed_dictionaries(
    {
        "routes": st.lists(
            st.fixed_dictionaries(
                {
                    "name": ident,
                    "match": st.fixed_dictionaries(
                        {},
                        optional={
                            "query_regex": st.sampled_from(["^(a+)+$", "(?i)err|time", r"\pL+"]),
                            "any_tags": st.lists(good_text, min_size=1, max_size=2),
                            "max_tokens": st.integers(5, 50),
                        },
                    ),
                    "target": st.fixed_dictionaries({"model": good_text, "price": PRICE}),
                }
            ),
            max_size=3,
            unique_by=lambda r: r["name"],
        ),
        "default": st.fixed_dictionaries(
            {"target": st.fixed_dictionaries({"model": good_text, "price": PRICE})}
        ),
    }
)
DOCS = {
    "prompt": st.one_of(
        good_prompts, good_prompts, good_prompts, prompt_docs, routing_docs, values
    ),
    "routing": st.one_of(
        good_routing, good_routing, good_routing, routing_docs, prompt_docs, values
    ),
}


@pytest.mark.parametrize("kind", ["prompt", "routing"])
@pytest.mark.parametrize("fmt", ["yaml", "json"])
@FUZZ
@given(data=st.data())
def test_prompt_and_routing_files(registry, tmp_path, kind, fmt, data) -> None:
    doc = data.draw(DOCS[kind])
    noise = data.draw(st.none() | st.none() | st.none() | text)
    body = noise if noise is not None else dump(doc, fmt)
    f = tmp_path / f"{_name()}.{fmt}"
    f.write_bytes(body.encode("utf-8", "surrogatepass"))
    parsed = _outcome(lambda: kinds.parse_file(kind, f))
    if parsed is not None:
        _reads_back(registry, kind, _name(), parsed)


@pytest.mark.parametrize("kind", ["prompt", "routing"])
@FUZZ
@given(data=st.data())
def test_prompt_and_routing_payloads(registry, kind, data) -> None:
    """What the API and imports hand the parser (already-decoded JSON values)."""
    doc = data.draw(DOCS[kind])
    parsed = _outcome(lambda: kinds.parse_payload(kind, doc))
    if parsed is not None:
        _reads_back(registry, kind, _name(), parsed)


# ---- eval sets ------------------------------------------------------------------------------
good_rows = st.fixed_dictionaries(
    {
        "id": ident | st.integers(0, 10**6),
        "query": good_text | safe_text,
        "relevant": st.lists(ident, min_size=1, max_size=3)
        | st.dictionaries(ident, st.integers(0, 3), min_size=1, max_size=3),
    },
    optional={
        "tags": st.lists(ident, max_size=2),
        "split": st.sampled_from(["train", "test"]),
        "answer": good_text,
        "metadata": st.dictionaries(good_text, leaf, max_size=3),
    },
)
hostile_rows = st.fixed_dictionaries(
    {
        "id": text | st.integers() | values,
        "query": text,
        "relevant": st.lists(text, max_size=3)
        | st.dictionaries(text, st.integers(-1, 3) | scalars, max_size=3),
    },
    optional={"tags": values, "split": text, "answer": text, "metadata": maybe_deep},
)
rows = st.one_of(good_rows, good_rows, good_rows, hostile_rows)


def _jsonl(items: list[Any]) -> str:
    return "".join((x if isinstance(x, str) else dump(x, "json")) + "\n" for x in items)


@FUZZ
@given(
    items=st.lists(good_rows, min_size=1, max_size=5)
    | st.lists(st.one_of(rows, text, values), max_size=5)
)
def test_evalset_jsonl(registry, tmp_path, items) -> None:
    f = tmp_path / f"{_name()}.jsonl"
    f.write_bytes(_jsonl(items).encode("utf-8", "surrogatepass"))
    parsed = _outcome(lambda: kinds.parse_file("evalset", f))
    if parsed is not None:
        ref = _reads_back(registry, "evalset", _name(), parsed)
        es = registry.load_evalset(ref)
        assert len(es.qrels()) == parsed.summary["rows"]


GOOD_QUERIES = [
    {"_id": "q1", "text": "first"},
    {"_id": "q2", "text": "sécond {{ q }}"},
    {"_id": 3, "text": "third"},
]


@FUZZ
@given(
    pair=st.tuples(
        st.just(GOOD_QUERIES),
        st.lists(
            st.tuples(st.sampled_from(["q1", "q2", "3"]), ident, st.integers(0, 3).map(str)),
            min_size=1,
            max_size=4,
        ),
    )
    | st.tuples(
        st.lists(
            st.fixed_dictionaries({"_id": text | st.integers(), "text": text}) | values | text,
            max_size=4,
        ),
        st.lists(st.tuples(text, text, text | st.integers(-1, 3).map(str)), max_size=4),
    )
)
def test_evalset_beir(registry, tmp_path, pair) -> None:
    queries, qrels = pair
    root = tmp_path / _name()
    (root / "qrels").mkdir(parents=True)
    (root / "queries.jsonl").write_bytes(_jsonl(queries).encode("utf-8", "surrogatepass"))
    tsv = "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in qrels)
    (root / "qrels" / "test.tsv").write_bytes(tsv.encode("utf-8", "surrogatepass"))
    parsed = _outcome(lambda: kinds.parse_file("evalset", root))
    if parsed is not None:
        _reads_back(registry, "evalset", _name(), parsed)


# ---- run files ------------------------------------------------------------------------------
good_trec = st.tuples(
    ident, st.just("Q0"), ident, st.integers(0, 3).map(str), st.floats(-1e6, 1e6).map(repr), ident
).map(" ".join)
trec_lines = st.tuples(
    ident | text,
    st.sampled_from(["Q0", "x"]),
    ident | text,
    st.integers(0, 3).map(str),
    st.sampled_from(["1.5", "nan", "inf", "-inf", "1e309", "x"]) | st.floats().map(repr),
    ident | text,
).map(" ".join)
good_jsonl_run = st.fixed_dictionaries(
    {"qid": ident, "docid": ident, "score": st.floats(-1e6, 1e6) | st.integers(-9, 9) | leaf}
)


@pytest.mark.parametrize("suffix", [".trec", ".jsonl"])
@FUZZ
@given(
    items=st.lists(good_trec, min_size=1, max_size=5)
    | st.lists(good_jsonl_run, min_size=1, max_size=5)
    | st.lists(
        st.one_of(
            trec_lines,
            values,
            text,
            st.fixed_dictionaries({"qid": text, "docid": text, "score": scalars}),
        ),
        max_size=5,
    )
)
def test_run_files(tmp_path, suffix, items) -> None:
    from genreg.core.runfile import read_run, write_trec_run

    f = tmp_path / f"{_name()}{suffix}"
    f.write_bytes(_jsonl(items).encode("utf-8", "surrogatepass"))
    run = _outcome(lambda: read_run(f))
    if run is not None:
        from hypothesis import event

        event("run read")
        for docs in run.values():
            assert all(
                isinstance(s, float) and s == s and abs(s) != float("inf") for s in docs.values()
            )
        out = tmp_path / f"{_name()}.trec"
        try:
            write_trec_run(run, out)
        except GenregError:
            return  # ids with whitespace cannot be written as TREC: refused, one line
        assert read_run(out) == run


# ---- corpus sources -------------------------------------------------------------------------
good_docs = st.fixed_dictionaries(
    {"id": ident, "text": good_text | safe_text}, optional={"title": good_text, "meta": leaf}
)
docs = st.one_of(
    good_docs,
    good_docs,
    st.fixed_dictionaries(
        {"id": text | st.integers() | values, "text": text | values},
        optional={"title": text | values, "meta": maybe_deep},
    ),
)


@FUZZ
@given(
    items=st.lists(good_docs, min_size=1, max_size=5, unique_by=lambda d: d["id"])
    | st.lists(docs | text | values, max_size=5)
)
def test_corpus_jsonl_source(tmp_path, items) -> None:
    from genreg.core.corpus_sources import scan

    f = tmp_path / f"{_name()}.jsonl"
    f.write_bytes(_jsonl(items).encode("utf-8", "surrogatepass"))
    if _outcome(lambda: scan(f, skip_invalid=False)) is not None:
        from hypothesis import event

        event("corpus scanned")
    _outcome(lambda: scan(f, skip_invalid=True))


@FUZZ
@given(
    files=st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=12),
        st.binary(max_size=40) | text.map(lambda s: s.encode("utf-8", "surrogatepass")),
        min_size=1,
        max_size=4,
    )
)
def test_corpus_tree_source(tmp_path, files) -> None:
    from genreg.core.corpus_sources import scan

    root = tmp_path / _name()
    root.mkdir()
    for name, data in files.items():
        if name in (".", ".."):
            continue
        try:
            (root / name).write_bytes(data)
        except OSError:  # a name the file system refuses (too long, ...)
            continue
    _outcome(lambda: scan(root, fmt="tree", skip_invalid=True))


# ---- bundles and lock files -----------------------------------------------------------------
@FUZZ
@given(
    patch=st.just({})
    | st.fixed_dictionaries(
        {}, optional={"tags": st.dictionaries(good_text, leaf, max_size=2), "message": good_text}
    )
    | st.dictionaries(
        st.sampled_from(
            [
                "format",
                "kind",
                "name",
                "digest",
                "content_b64",
                "tags",
                "author",
                "message",
                "version",
            ]
        ),
        values | st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
        max_size=3,
    ),
    drop=st.lists(st.sampled_from(["kind", "name", "digest", "content_b64"]), max_size=1),
)
def test_bundles(registry, patch, drop) -> None:
    name = _name()
    registry.register_content("prompt", name, {"template": "hello"})
    bundle = {**registry.export(f"prompt:{name}"), **patch}
    for k in drop:
        bundle.pop(k, None)
    res = _outcome(lambda: registry.import_bundle(bundle, name=f"{name}-in"))
    if res is not None:
        assert registry.content(f"prompt:{name}-in@v{res.version.version}")


@FUZZ
@given(
    entry_patch=st.dictionaries(
        st.sampled_from(["kind", "name", "version", "digest", "content"]), values, max_size=2
    ),
    noise=st.none() | text,
    extra=values,
)
def test_lock_files(registry, tmp_path, entry_patch, noise, extra) -> None:
    from genreg import lockfile
    from genreg.core.refs import parse_ref

    name = _name()
    registry.register_content("prompt", name, {"template": "hi"})
    lock = lockfile.build_lock(registry, [f"prompt:{name}"])
    key = f"prompt:{name}"
    lock["entries"][key] = {**lock["entries"][key], **entry_patch}
    lock["extra"] = extra
    f = tmp_path / f"{name}.lock"
    if noise is not None:
        f.write_bytes(noise.encode("utf-8", "surrogatepass"))
    else:
        f.write_text(json.dumps(lock, ensure_ascii=False), encoding="utf-8", errors="surrogatepass")

    def load() -> Any:
        data = lockfile.read_lock(f)
        hit = lockfile.find(data, parse_ref(key))
        return lockfile.verified(*hit) if hit else None

    entry = _outcome(load)
    if entry is not None and not entry_patch:
        assert entry["content"] == registry.show(key)[1]


def test_fuzzers_cover_every_parser() -> None:
    """Guard: a new parser module should get a fuzzer here."""
    names = {n for n in globals() if n.startswith("test_")}
    assert {
        "test_prompt_and_routing_files",
        "test_evalset_jsonl",
        "test_evalset_beir",
        "test_run_files",
        "test_corpus_jsonl_source",
        "test_corpus_tree_source",
        "test_bundles",
        "test_lock_files",
    } <= names
    assert Path(__file__).name == "test_fuzz_parsers.py"
