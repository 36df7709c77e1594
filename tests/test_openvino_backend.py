"""The openvino embedding backend: genreg's ONNX export (the same cached one backend onnx
uses) run by OpenVINO -- its own digest, cache entries and lineage, vectors matching the torch
model, and one-line errors (missing extra, unsupported combinations)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.retrieval.embedders import EmbeddingSpec
from genreg.retrieval.onnx_backend import KIND
from test_onnx_backend import cli_without, push_examples

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
    assert (s.backend, s.quantize, s.precision, s.device) == ("openvino", "none", "f32", "cpu")
    s = EmbeddingSpec.parse({"backend": "openvino", "quantize": "int8", "precision": "BF16"})
    assert (s.quantize, s.precision) == ("int8", "bf16")
    for bad, msg in (
        (
            {"backend": "torch", "quantize": "int8"},
            "embedding.quantize: int8 needs backend: onnx or openvino",
        ),
        ({"precision": "bf16"}, "embedding.precision: bf16 needs backend: openvino"),
        (
            {"backend": "openvino", "precision": "fp16"},
            "embedding.precision: 'fp16' is not one of f32, bf16",
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
        ("embedding={backend: onnx, precision: bf16}", "bf16 needs backend: openvino"),
        ("embedding={quantize: int8}", "int8 needs backend: onnx or openvino"),
    ):
        with pytest.raises(ConfigError) as e:
            load_config(REPO / "evals" / "baseline.yaml", [override])
        assert "\n" not in str(e.value.message) and str(e.value.message).endswith(tail)
    cfg = load_config(
        REPO / "evals" / "baseline.yaml",
        ["embedding={backend: openvino, quantize: int8, precision: bf16}"],
    )
    assert EmbeddingSpec.parse(cfg.embedding) == EmbeddingSpec(
        backend="openvino", quantize="int8", precision="bf16"
    )


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
    assert np.array_equal(ov.encode(TEXTS, batch_size=2), got)  # deterministic


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
    assert ov["key"] != onnx["key"] and ov["precision"] == "f32"
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
    assert "precision" not in emb  # f32: not stored (earlier runs' fingerprints unchanged)
    precision = "bf16" if _has_bf16() else "f32"
    r = cli(*base, f"embedding={{backend: openvino, quantize: int8, precision: {precision}}}")
    assert r.exit_code == 0, r.output
    q = json.loads(r.output)["lineage"]["embedding"]
    assert (q["backend"], q["quantize"], q.get("precision", "f32")) == (
        "openvino",
        "int8",
        precision,
    )
    spec = {"backend": "openvino", "quantize": "int8", "precision": precision}
    assert q["digest"] == registry.load_embedder(spec).digest


def test_missing_extra_is_one_line_and_writes_nothing(tmp_path: Path, registry: Any) -> None:
    run = cli_without("openvino", _corpus(tmp_path, 5))
    p = subprocess.run(
        [*run, "corpus", "index", "small", "--backend", "openvino"], capture_output=True, text=True
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: embedding backend openvino needs the openvino extra: pip install 'genreg[openvino]'"
    ]
    assert registry.derived.list("index") == [] and registry.derived.list(KIND) == []
    assert registry.derived.list("embshard") == []


# ---- quantize: int8 (NNCF) and precision: bf16 ---------------------------------------------


@functools.cache
def _has_bf16() -> bool:
    import openvino as ov

    from genreg.retrieval.openvino_backend import cpu_has_bf16

    return cpu_has_bf16(ov.Core())


needs_bf16 = pytest.mark.skipif(
    not _has_bf16(), reason="this CPU has no bfloat16 (AMX/AVX512_BF16)"
)


def test_int8_and_bf16_are_their_own_models_named_without_quantizing(registry: Any) -> None:
    from genreg.core.hashing import digest_json
    from genreg.retrieval.openvino_backend import KIND as IR_KIND
    from genreg.retrieval.openvino_backend import calibration_digest, calibration_texts
    from genreg.retrieval.ray_engine import embedder_spec

    f32 = registry.load_embedder({"backend": "openvino"})
    bf16 = registry.load_embedder({"backend": "openvino", "precision": "bf16"})
    int8 = registry.load_embedder({"backend": "openvino", "quantize": "int8"})
    both = registry.load_embedder({"backend": "openvino", "quantize": "int8", "precision": "bf16"})
    assert len({e.digest for e in (f32, bf16, int8, both)}) == 4
    # all four run the one float32 ONNX export (int8 is NNCF's, made from it)
    assert len({e.export_digest for e in (f32, bf16, int8, both)}) == 1
    assert [e.name.rsplit("[", 1)[1] for e in (f32, bf16, int8, both)] == [
        "openvino]",
        "openvino-bf16]",
        "openvino-int8]",
        "openvino-int8-bf16]",
    ]
    assert (f32.settings["runtime"]["precision"], bf16.settings["runtime"]["precision"]) == (
        "f32",
        "bf16",
    )
    assert "int8" not in f32.settings and f32.settings["quantize"] == "none"
    cal = int8.settings["int8"]["calibration"]
    assert cal["digest"] == calibration_digest() and cal["texts"] == len(calibration_texts())
    assert cal["texts"] >= 100 and int8.settings["int8"]["nncf"]
    # the calibration set is part of the identity
    other = {
        **int8.settings,
        "int8": {**int8.settings["int8"], "calibration": {**cal, "digest": "x"}},
    }
    src = {"source": int8.source_digest, "backend": "openvino"}
    assert digest_json({**src, **int8.settings}) == int8.digest
    assert digest_json({**src, **other}) != int8.digest
    assert int8.ir_digest != int8.export_digest and int8.ir_digest == both.ir_digest
    assert registry.derived.list(KIND) == [] and registry.derived.list(IR_KIND) == []
    spec = embedder_spec(both)  # a Ray actor rebuilds the same model
    assert spec is not None and (spec["quantize"], spec["precision"]) == ("int8", "bf16")
    assert registry.load_embedder(spec).digest == both.digest


def test_openvino_int8_is_quantized_once_per_registry_and_close_to_torch(
    registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genreg import Registry
    from genreg.retrieval import onnx_backend
    from genreg.retrieval.openvino_backend import KIND as IR_KIND
    from genreg.retrieval.openvino_backend import OpenVinoEmbedder

    ref = registry.load_embedder(None).encode(TEXTS, batch_size=2)
    f32 = registry.load_embedder({"backend": "openvino"}).encode(TEXTS, batch_size=2)
    spec = {"backend": "openvino", "quantize": "int8"}
    emb = registry.load_embedder(spec)
    got = emb.encode(TEXTS, batch_size=2)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(1)
    assert float(cos.min()) > 0.9 and float(np.median(cos)) > 0.99  # quantized: close...
    assert float(np.abs(got - f32).max()) > 1e-3  # ...not the float32 model's vectors
    rows = registry.derived.list(IR_KIND)
    assert [(r.key, r.scope) for r in rows] == [(emb.ir_digest, emb.source_digest)]
    assert registry.objects.has(rows[0].object_digest)
    assert not any((registry.settings.home / "cache" / "tmp").iterdir())  # work dirs removed

    # another registry in this process (the compiled model is process-wide) records it too
    other = Registry.init(tmp_path / "other" / ".genreg")
    try:
        other.load_embedder(spec).encode(["the same model, another registry"])
        assert [r.object_digest for r in other.derived.list(IR_KIND)] == [rows[0].object_digest]
    finally:
        other.close()

    # a process that finds it in the registry fetches it and never quantizes
    monkeypatch.setattr(onnx_backend, "_sessions", {})
    for f in (registry.settings.home / "cache" / "onnx").iterdir():
        f.unlink()

    def no_quantizing(self: Any, out: Path) -> None:
        raise AssertionError("quantized again")

    monkeypatch.setattr(OpenVinoEmbedder, "_quantize", no_quantizing)
    again = registry.load_embedder(spec)
    assert np.array_equal(again.encode(TEXTS, batch_size=2), got)


def test_a_failing_quantization_is_one_line_and_records_nothing(
    registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nncf

    from genreg.retrieval import onnx_backend
    from genreg.retrieval.openvino_backend import KIND as IR_KIND

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("calibration exploded\n  at frame 3")

    monkeypatch.setattr(nncf, "quantize", boom)
    monkeypatch.setattr(onnx_backend, "_sessions", {})
    emb = registry.load_embedder({"backend": "openvino", "quantize": "int8"})
    with pytest.raises(ConfigError) as e:
        emb.encode(["x"])
    assert e.value.message == (
        f"model {emb.path}: OpenVINO int8 quantization failed (RuntimeError: calibration exploded)"
    )
    assert registry.derived.list(IR_KIND) == []
    cache = registry.settings.home / "cache"
    assert not list((cache / "onnx").glob("*.ovir.tar"))
    assert not any((cache / "tmp").iterdir())  # the work dir is gone too


def test_bf16_on_a_cpu_without_it_is_one_line_and_exports_nothing(
    registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genreg.retrieval import onnx_backend, openvino_backend

    monkeypatch.setattr(openvino_backend, "cpu_has_bf16", lambda core: False)
    monkeypatch.setattr(onnx_backend, "_sessions", {})
    emb = registry.load_embedder({"backend": "openvino", "precision": "bf16"})
    with pytest.raises(ConfigError) as e:
        emb.encode(["x"])
    assert e.value.message == (
        "embedding.precision: bf16 needs a CPU with bfloat16 support (AVX512_BF16 or AMX), "
        "which OpenVINO does not find on this one; use precision: f32"
    )
    assert registry.derived.list(KIND) == []


@needs_bf16
def test_bf16_vectors_are_close_to_torch_and_not_float32s(registry: Any) -> None:
    ref = registry.load_embedder(None).encode(TEXTS, batch_size=2)
    f32 = registry.load_embedder({"backend": "openvino"}).encode(TEXTS, batch_size=2)
    emb = registry.load_embedder({"backend": "openvino", "precision": "bf16"})
    got = emb.encode(TEXTS, batch_size=2)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert float((got * ref).sum(1).min()) > 0.999
    assert not np.array_equal(got, f32)
    assert np.array_equal(emb.encode(TEXTS, batch_size=2), got)  # deterministic


def test_missing_nncf_is_one_line_for_int8_only(tmp_path: Path, registry: Any) -> None:
    run = cli_without("nncf", _corpus(tmp_path, 5))
    p = subprocess.run(
        [*run, "corpus", "index", "small", "--backend", "openvino", "--quantize", "int8"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: embedding backend openvino needs the openvino extra: pip install 'genreg[openvino]'"
    ]
    assert registry.derived.list("index") == [] and registry.derived.list(KIND) == []
    p = subprocess.run(
        [*run, "corpus", "index", "small", "--backend", "openvino", "-q", "--json"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr  # float32 needs no nncf


def test_a_set_thread_count_is_not_pinned_to_the_first_cores(registry: Any) -> None:
    """A Ray actor runs with ``threads = num_cpus``: OpenVINO's default pinning would put
    every 1-thread actor on a machine onto the same first core."""
    emb = registry.load_embedder({"backend": "openvino"})
    emb.threads = 1
    sess = emb.session
    assert sess.get_property("INFERENCE_NUM_THREADS") == 1
    assert sess.get_property("ENABLE_CPU_PINNING") is False
