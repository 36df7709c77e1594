"""Query embeddings are cached like chunk embeddings (model digest + text digest): a warm
re-run embeds nothing, and a re-run of an unchanged eval config loads no model at all
(neither torch nor sentence-transformers is imported -- checked in a fresh process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from retrieval_helpers import Doc, HashEmbedder

REPO = Path(__file__).resolve().parent.parent
DOCS = [
    Doc("d1", "ocean waves and surfing at dawn"),
    Doc("d2", "rocket launch into low earth orbit"),
    Doc("d3", "roasting coffee beans at home"),
]


def _corpus(registry, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for d in DOCS:
        (src / f"{d.doc_id}.txt").write_text(d.text, encoding="utf-8")
    registry.snapshot("kb", src)


def test_query_vectors_come_from_the_cache_on_a_rerun(registry, tmp_path: Path) -> None:
    _corpus(registry, tmp_path)
    emb = HashEmbedder(64)
    qs = ["ocean surf", "coffee roast", "ocean surf"]
    first = registry.open_retriever("kb", model=emb).search(qs, k=2, batch_size=1)
    assert emb.encoded == 3 + 2  # 3 chunks at build + 2 distinct queries (the repeat is pending)
    emb2 = HashEmbedder(64)  # same digest, fresh counter
    r2 = registry.open_retriever("kb", model=emb2)
    second = r2.search(qs, k=2, batch_size=2)
    assert emb2.encoded == 0  # index reused, every query vector cached
    assert r2.embedder.hits == 3 and r2.embedder.misses == 0
    assert [[h.doc_id for h in hs] for hs in first.hits] == [
        [h.doc_id for h in hs] for hs in second.hits
    ]
    # a new query is embedded (only it), and cached from then on
    r2.search(["rocket orbit", "coffee roast"], k=1)
    assert emb2.encoded == 1
    emb3 = HashEmbedder(64)
    registry.open_retriever("kb", model=emb3).search(["rocket orbit"], k=1)
    assert emb3.encoded == 0


def test_query_cache_is_per_model(registry, tmp_path: Path) -> None:
    _corpus(registry, tmp_path)
    a, b = HashEmbedder(64, salt="a"), HashEmbedder(64, salt="b")
    ra = registry.open_retriever("kb", model=a)
    ra.search(["ocean"], k=1)
    rb = registry.open_retriever("kb", model=b)
    rb.search(["ocean"], k=1)
    assert a.encoded == 4 and b.encoded == 4  # b did not reuse a's query vector
    va = ra.embedder.encode(["ocean"])
    assert np.allclose(va, a.encode(["ocean"]))


_PROBE = r"""
import json, sys
sys.argv = ["genreg", "eval", "run", sys.argv[1], "--quiet", "--json"]
from genreg.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print("PROBE " + json.dumps({"code": code, "heavy": heavy}))
"""


def _probe(cfg: Path, home: Path) -> dict:
    env = {**os.environ, "GENREG_HOME": str(home), "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=home.parent,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")), None)
    assert line, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(line[6:])


def test_warm_rerun_of_an_eval_imports_no_model(registry, genreg_home: Path, tmp_path: Path):
    for sub in ("registry", "evals/sets"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    registry.push([tmp_path / "registry", tmp_path / "evals"])
    registry.snapshot("docs", REPO / "examples" / "corpus")
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        "name: warm\nevalset: evalset:gold#test\ncorpus: corpus:docs\n"
        "chunking: {by: tokens, size: 128, overlap: 16}\nmetrics: [ndcg@10]\n",
        encoding="utf-8",
    )
    cold = _probe(cfg, genreg_home)
    assert cold["code"] == 0 and "torch" in cold["heavy"]  # the probe can see an import
    warm = _probe(cfg, genreg_home)
    assert warm == {"code": 0, "heavy": []}
