"""The openvino embedding backend: genreg's ONNX export (the same cached one backend onnx
uses) run by OpenVINO -- its own digest, cache entries and lineage, vectors matching the torch
model, and one-line errors (missing extra, unsupported combinations)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.retrieval.embedders import EmbeddingSpec
from genreg.retrieval.onnx_backend import KIND
from test_onnx_backend import push_examples

TEXTS = [
    "Aspirin lowers the risk of heart attack in adults over fifty.",
    "  leading and trailing spaces  ",
    "short",
    "Ünïcödé straße café naïve ﬁ ligature",
    "protein folding " * 200,  # longer than max_seq_length: truncated like sentence-transformers
]

REPO = Path(__file__).resolve().parent.parent


def _corpus(tmp_path: Path, n: int = 24) -> Path:
    words = ["cell", "gene", "virus", "cancer", "drug", "trial", "dose", "blood", "brain"]
    p = tmp_path / "c.jsonl"
    with p.open("w", encoding="utf-8") as fh:
        for i in range(n):
            text = f"note {i}: " + " ".join(
                words[(i * 5 + j) % len(words)] for j in range(2 + i % 7)
            )
            fh.write(json.dumps({"_id": f"d{i}", "text": text}) + "\n")
    return p


def test_spec_and_eval_config_refuse_unsupported_combinations_in_one_line() -> None:
    s = EmbeddingSpec.parse({"backend": "OpenVINO", "device": "cpu"})
    assert (s.backend, s.quantize, s.device) == ("openvino", "none", "cpu")
    for bad, msg in (
        (
            {"backend": "openvino", "quantize": "int8"},
            "embedding.quantize: int8 needs backend: onnx",
        ),
        (
            {"backend": "openvino", "device": "cuda"},
            "embedding.device: cuda is not available with backend: openvino",
        ),
        (
            {"backend": "tensorrt"},
            "embedding.backend: 'tensorrt' is not one of torch, onnx, openvino",
        ),
    ):
        with pytest.raises(ConfigError) as e:
            EmbeddingSpec.parse(bad)
        assert str(e.value.message) == msg
    from genreg.core.evalconfig import load_config

    for override, tail in (
        (
            "embedding={backend: openvino, device: cuda}",
            "cuda is not available with backend: openvino",
        ),
        ("embedding={backend: openvino, quantize: int8}", "int8 needs backend: onnx"),
    ):
        with pytest.raises(ConfigError) as e:
            load_config(REPO / "evals" / "baseline.yaml", [override])
        assert "\n" not in str(e.value.message) and str(e.value.message).endswith(tail)


def test_openvino_is_its_own_model_digest_without_exporting(registry: Any) -> None:
    torch_emb = registry.load_embedder(None)
    onnx = registry.load_embedder({"backend": "onnx"})
    ov = registry.load_embedder({"backend": "openvino"})
    assert len({torch_emb.digest, onnx.digest, ov.digest}) == 3
    assert ov.source_digest == torch_emb.digest
    assert ov.export_digest == onnx.digest  # it runs the very same ONNX export
    assert ov.name.endswith("[openvino]") and ov.backend == "openvino"
    assert registry.load_embedder({"backend": "openvino", "device": "cpu"}).digest == ov.digest
    # the runtime and its version are part of the identity
    assert ov.settings["runtime"]["openvino"]
    from genreg.core.hashing import digest_json

    other = {**ov.settings, "runtime": {**ov.settings["runtime"], "openvino": "0.0.1"}}
    assert (
        digest_json({"source": ov.source_digest, "backend": "openvino", **ov.settings}) == ov.digest
    )
    assert digest_json({"source": ov.source_digest, "backend": "openvino", **other}) != ov.digest
    assert registry.derived.list(KIND) == []  # naming a model exported nothing
    # a Ray actor rebuilds the same model from the spec the driver sends
    from genreg.retrieval.ray_engine import embedder_spec

    spec = embedder_spec(ov)
    assert spec is not None and spec["backend"] == "openvino"
    assert registry.load_embedder(spec).digest == ov.digest


def test_openvino_vectors_match_sentence_transformers(registry: Any) -> None:
    ref = registry.load_embedder(None).encode(TEXTS, batch_size=2)
    ov = registry.load_embedder({"backend": "openvino"})
    got = ov.encode(TEXTS, batch_size=2)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float((got * ref).sum(1).min()) > 0.9999
    assert ov.device_used == "cpu"
    assert np.array_equal(ov.encode(TEXTS[::-1])[::-1], ov.encode(TEXTS))  # order-independent


def test_openvino_index_has_its_own_cache_and_reuses_the_onnx_export(
    cli: Any, registry: Any, tmp_path: Path
) -> None:
    src = _corpus(tmp_path)
    assert cli("corpus", "snapshot", "small", src, "-q").exit_code == 0
    r = cli("corpus", "index", "small", "--backend", "onnx", "--json")
    assert r.exit_code == 0, r.output
    onnx = json.loads(r.output)
    assert onnx["embedded"] == 24
    r = cli("corpus", "index", "small", "--backend", "openvino", "--json")
    assert r.exit_code == 0, r.output
    ov = json.loads(r.output)
    assert (ov["backend"], ov["quantize"], ov["device"]) == ("openvino", "none", "cpu")
    assert ov["model"].endswith("[openvino]") and ov["model_digest"] != onnx["model_digest"]
    assert ov["embedded"] == 24  # onnx vectors are cached, but they are another model's
    assert ov["key"] != onnx["key"]
    # one export, made by the onnx run, reused by openvino
    assert [e.key for e in registry.derived.list(KIND)] == [onnx["model_digest"]]
    shards = registry.derived.list("embshard", scope=ov["model_digest"])
    assert sum(s.meta["count"] for s in shards) == 24
    r = cli("corpus", "index", "small", "--backend", "openvino", "--json")
    assert json.loads(r.output)["embedded"] == 0  # its own cache, reused


@pytest.mark.skipif(
    not (REPO / "examples" / "corpus").is_dir(), reason="example corpus not present"
)
def test_eval_run_on_openvino_records_backend_in_lineage(
    registry: Any, cli: Any, tmp_path: Path
) -> None:
    push_examples(registry, tmp_path)
    base = [
        "eval",
        "run",
        REPO / "evals" / "baseline.yaml",
        "--set",
        "chunking=none",
        "--json",
        "--quiet",
        "--set",
    ]
    r = cli(*base, "embedding={backend: openvino}")
    assert r.exit_code == 0, r.output
    run = json.loads(r.output)
    emb = run["lineage"]["embedding"]
    assert (emb["backend"], emb["quantize"], emb["device"]) == ("openvino", "none", "cpu")
    assert emb["digest"] == registry.load_embedder({"backend": "openvino"}).digest
    other = json.loads(cli(*base, "embedding={backend: onnx}").output)
    assert other["lineage"]["embedding"]["digest"] != emb["digest"]
    assert other.get("identical_to") != run["run_id"]


def test_missing_extra_is_one_line_and_writes_nothing(tmp_path: Path, registry: Any) -> None:
    src = _corpus(tmp_path, 5)
    code = "import sys; sys.modules['openvino'] = None\nfrom genreg.cli import main; main()\n"
    run = [sys.executable, "-c", code]
    subprocess.run([*run, "corpus", "snapshot", "small", str(src), "-q"], check=True)
    p = subprocess.run(
        [*run, "corpus", "index", "small", "--backend", "openvino"], capture_output=True, text=True
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: embedding backend openvino needs the openvino extra: pip install 'genreg[openvino]'"
    ]
    assert registry.derived.list("index") == [] and registry.derived.list(KIND) == []
    assert registry.derived.list("embshard") == []
