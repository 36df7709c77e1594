"""End to end with the REAL packaged model on the example corpus shipped in the repo."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES

CORPUS = EXAMPLES / "corpus"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="examples/corpus missing")


def test_real_model_index_search_and_reuse(registry):
    registry.snapshot("acme", CORPUS)
    info = registry.build_index("corpus:acme")
    assert info.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert info.model_digest.startswith("sha256:") and not info.reused
    assert info.n_docs == info.n_chunks >= 30 and info.chunking == {"by": "none"}
    assert info.embedded <= info.n_chunks
    r = registry.open_retriever("corpus:acme")
    assert r.info.reused and r.info.key == info.key
    res = r.search(["How do I get my money back for a charge?", "rotate an API key"], k=5)
    assert "refund" in res.hits[0][0].doc_id
    assert "api-key" in " ".join(h.doc_id for h in res.hits[1][:3])
    assert all(len({h.doc_id for h in hits}) == 5 for hits in res.hits)


def test_corpus_index_and_search_through_the_cli(cli, registry):
    registry.snapshot("acme", CORPUS)
    opts = ["--index", "hnsw", "--chunking", "tokens:256:0"]
    r = cli("corpus", "index", "acme", *opts, "--json")
    assert r.exit_code == 0, r.output
    built = json.loads(r.output)
    assert built["reused"] is False and built["index"]["type"] == "hnsw"
    assert built["n_chunks"] > built["n_docs"]
    r = cli("corpus", "index", "corpus:acme@v1", *opts)
    assert r.exit_code == 0, r.output
    assert "reused" in r.output
    query = "two-factor authentication setup"
    r = cli("corpus", "search", "acme", query, "-k", "3", *opts, "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert len(hits) == 3 and len({h["doc_id"] for h in hits}) == 3
    assert "two-factor" in hits[0]["doc_id"] and hits[0]["text"]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    r = cli("corpus", "search", "acme", query, "-k", "2", *opts)
    assert r.exit_code == 0, r.output
    assert "two-factor" in r.output.splitlines()[0]
    assert len(registry.derived.list("index")) == 1


def test_bad_chunking_option_is_a_usage_error(cli, registry):
    registry.snapshot("acme", CORPUS)
    r = cli("corpus", "index", "acme", "--chunking", "words:3")
    assert r.exit_code == 2
    assert "chunking" in r.output
