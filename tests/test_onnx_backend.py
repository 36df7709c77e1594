"""The onnx embedding backend: its own digest and cache entries, one export kept in the
registry, vectors matching the torch model, and one-line errors (missing extra, bad spec)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genreg.core.lineage import Lineage, ModelPin
from genreg.errors import ConfigError
from genreg.retrieval.embedders import DEFAULT_MODEL, EmbeddingSpec
from genreg.retrieval.onnx_backend import KIND, export_digest

TEXTS = [
    "Aspirin lowers the risk of heart attack in adults over fifty.",
    "  leading and trailing spaces  ",
    "short",
    "Ünïcödé straße café naïve ﬁ ligature",
    "protein folding " * 200,  # longer than max_seq_length: truncated like sentence-transformers
]


def _corpus(tmp_path: Path, n: int = 40) -> Path:
    words = [
        "cell",
        "gene",
        "virus",
        "cancer",
        "drug",
        "trial",
        "dose",
        "blood",
        "brain",
        "heart",
        "lung",
        "risk",
    ]
    p = tmp_path / "c.jsonl"
    with p.open("w", encoding="utf-8") as fh:
        for i in range(n):
            text = f"note {i}: " + " ".join(
                words[(i * 7 + j) % len(words)] for j in range(3 + i % 9)
            )
            fh.write(json.dumps({"_id": f"d{i}", "text": text}) + "\n")
    return p


def test_spec_parsing_and_bad_values_are_one_line() -> None:
    s = EmbeddingSpec.parse({"backend": "ONNX", "quantize": "int8"})
    assert (s.model, s.backend, s.quantize, s.device) == (DEFAULT_MODEL, "onnx", "int8", "auto")
    assert EmbeddingSpec.parse("m").to_dict()["backend"] == "torch"
    for bad, msg in (
        (
            {"backend": "tensorrt"},
            "embedding.backend: 'tensorrt' is not one of torch, onnx, openvino",
        ),
        ({"quantize": "int8"}, "embedding.quantize: int8 needs backend: onnx or openvino"),
        (
            {"backend": "onnx", "precision": "bf16"},
            "embedding.precision: bf16 needs backend: openvino",
        ),
        ({"device": "tpu"}, "embedding.device: 'tpu' is not one of auto, cpu, cuda"),
        ({"modle": "x"}, "embedding: unknown field 'modle'"),
    ):
        with pytest.raises(ConfigError) as e:
            EmbeddingSpec.parse(bad)
        assert str(e.value.message) == msg


def test_each_backend_is_its_own_model_digest_without_exporting(registry: Any) -> None:
    torch_emb = registry.load_embedder(None)
    fp32 = registry.load_embedder({"backend": "onnx"})
    int8 = registry.load_embedder({"backend": "onnx", "quantize": "int8"})
    digests = {torch_emb.digest, fp32.digest, int8.digest}
    assert len(digests) == 3
    assert fp32.source_digest == int8.source_digest == torch_emb.digest
    assert registry.load_embedder({"backend": "onnx", "quantize": "int8"}).digest == int8.digest
    # the device is where it runs, not what it is
    assert registry.load_embedder({"backend": "onnx", "device": "cpu"}).digest == fp32.digest
    # the runtime (and exporter) versions are part of an export's identity
    other = {**fp32.settings, "onnxruntime": "0.0.1"}
    assert export_digest(fp32.source_digest, other) != fp32.digest
    assert registry.derived.list(KIND) == []  # naming a model exported nothing


def test_onnx_index_has_its_own_cache_and_one_export_reused(
    cli: Any, registry: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from genreg.retrieval import onnx_backend

    src = _corpus(tmp_path)
    assert cli("corpus", "snapshot", "small", src, "-q").exit_code == 0
    r = cli("corpus", "index", "small", "--backend", "onnx", "--quantize", "int8", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert (info["backend"], info["quantize"], info["device"]) == ("onnx", "int8", "cpu")
    assert info["embedded"] == 40 and info["model"].endswith("[onnx-int8]")
    exports = registry.derived.list(KIND)
    emb = registry.load_embedder({"backend": "onnx", "quantize": "int8"})
    assert [(e.key, e.scope) for e in exports] == [
        (emb.export_digest, registry.load_embedder(None).digest)
    ]
    # the model is the export run by this CPU class's int8 kernels: its own digest
    assert info["model_digest"] == emb.digest != emb.export_digest
    shards = registry.derived.list("embshard", scope=info["model_digest"])
    assert sum(s.meta["count"] for s in shards) == 40
    # a fresh process without the local copy fetches the registry's export (no re-export)
    local = registry.home / "cache" / "onnx"
    for f in local.iterdir():
        f.unlink()
    monkeypatch.setattr(onnx_backend, "_sessions", {})  # as in a new process
    monkeypatch.setattr(onnx_backend, "export_model", None)  # exporting again would fail
    r = cli(
        "corpus",
        "index",
        "small",
        "--backend",
        "onnx",
        "--quantize",
        "int8",
        "-c",
        "chars:20",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert len(registry.derived.list(KIND)) == 1 and len(list(local.iterdir())) == 1
    # the torch model shares nothing with the export's cache
    emb = registry.load_embedder(None)
    assert registry.derived.list("embshard", scope=emb.digest) == []


def test_onnx_vectors_match_sentence_transformers(registry: Any) -> None:
    torch_emb = registry.load_embedder(None)
    ref = torch_emb.encode(TEXTS, batch_size=2)
    fp32 = registry.load_embedder({"backend": "onnx"}).encode(TEXTS, batch_size=2)
    int8 = registry.load_embedder({"backend": "onnx", "quantize": "int8"}).encode(TEXTS)
    assert fp32.dtype == np.float32 and fp32.shape == ref.shape
    assert np.allclose(np.linalg.norm(fp32, axis=1), 1.0, atol=1e-5)
    assert float((fp32 * ref).sum(1).min()) > 0.99999  # same model, same tokens, same pooling
    assert float((int8 * ref).sum(1).min()) > 0.95  # quantized: close, not equal
    assert not np.array_equal(int8, fp32)


def cli_without(module: str, corpus: Path) -> list[str]:
    """The genreg CLI in a subprocess that cannot import ``module`` (a missing extra), with
    ``corpus`` snapshotted as ``small``: the command prefix to run it again."""
    code = f"import sys; sys.modules[{module!r}] = None\nfrom genreg.cli import main; main()\n"
    run = [sys.executable, "-c", code]
    subprocess.run([*run, "corpus", "snapshot", "small", str(corpus), "-q"], check=True)
    return run


def test_missing_extra_is_one_line_and_writes_nothing(tmp_path: Path, registry: Any) -> None:
    run = cli_without("onnxruntime", _corpus(tmp_path, 5))
    p = subprocess.run(
        [*run, "corpus", "index", "small", "--backend", "onnx"], capture_output=True, text=True
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: embedding backend onnx needs the onnx extra: pip install 'genreg[onnx]'"
    ]
    assert registry.derived.list("index") == [] and registry.derived.list(KIND) == []


def test_device_is_recorded_but_not_fingerprinted_backend_is() -> None:
    base = Lineage(source="eval", embedding=ModelPin("m", "sha256:aa"))
    cpu = Lineage(source="eval", embedding=ModelPin("m", "sha256:aa", "torch", "none", "cpu"))
    gpu = Lineage(source="eval", embedding=ModelPin("m", "sha256:aa", "torch", "none", "cuda"))
    onnx = Lineage(source="eval", embedding=ModelPin("m", "sha256:aa", "onnx", "int8", "cpu"))
    assert base.fingerprint == cpu.fingerprint == gpu.fingerprint
    assert onnx.fingerprint != cpu.fingerprint
    stored = gpu.to_dict()
    assert stored["embedding"] == {"model": "m", "digest": "sha256:aa", "device": "cuda"}
    assert Lineage.from_dict(stored).embedding == ModelPin("m", "sha256:aa", None, None, "cuda")
    assert Lineage.from_dict(onnx.to_dict()).embedding == onnx.embedding
    from genreg.core.compare import lineage_diff

    assert lineage_diff(cpu, gpu) == {}
    assert set(lineage_diff(cpu, onnx)) == {"embedding"}


REPO = Path(__file__).resolve().parent.parent


def push_examples(registry: Any, tmp_path: Path) -> None:
    """The shipped prompts, routing and eval sets pushed, the example corpus snapshotted as
    ``docs`` -- what ``evals/baseline.yaml`` runs on (also used by the openvino tests)."""
    import shutil

    for sub in ("registry", "evals/sets"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    registry.push([tmp_path / "registry", tmp_path / "evals"])
    registry.snapshot("docs", REPO / "examples" / "corpus")


@pytest.mark.skipif(
    not (REPO / "examples" / "corpus").is_dir(), reason="example corpus not present"
)
def test_eval_run_on_onnx_int8_records_backend_and_device(
    registry: Any, cli: Any, tmp_path: Path
) -> None:
    push_examples(registry, tmp_path)
    args = [
        "eval",
        "run",
        REPO / "evals" / "baseline.yaml",
        "--set",
        "chunking=none",
        "--set",
        "embedding={backend: onnx, quantize: int8}",
        "--json",
        "--quiet",
    ]
    r = cli(*args)
    assert r.exit_code == 0, r.output
    cold = json.loads(r.output)
    emb = cold["lineage"]["embedding"]
    assert (emb["backend"], emb["quantize"], emb["device"]) == ("onnx", "int8", "cpu")
    assert emb["digest"] != registry.load_embedder(None).digest
    warm = json.loads(cli(*args).output)  # index and query vectors cached: nothing embedded
    assert "device" not in warm["lineage"]["embedding"]
    assert warm["identical_to"] == cold["run_id"]  # the device is not part of the fingerprint


def test_a_second_registry_in_the_same_process_records_the_export_too(
    registry: Any, tmp_path: Path
) -> None:
    """The runtime session is process-wide; the export is per registry: a registry whose
    embedder finds the session already loaded (for another registry) still gets the export
    recorded (derived row + object), so its other processes fetch it instead of exporting."""
    from genreg import Registry

    registry.load_embedder({"backend": "onnx"}).encode(["warm the session"])
    other = Registry.init(tmp_path / "other" / ".genreg")
    try:
        emb = other.load_embedder({"backend": "onnx"})
        emb.encode(["the same model, another registry"])
        rows = other.derived.list(KIND)
        assert [r.key for r in rows] == [emb.export_digest]
        assert other.objects.has(rows[0].object_digest)
    finally:
        other.close()


def test_cpu_isa_classes() -> None:
    from genreg.retrieval.onnx_backend import cpu_isa, isa_of

    amx = "processor : 0\nflags : fpu avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16\n"
    assert isa_of("x86_64", amx) == "x86_64:amx"
    assert isa_of("x86_64", "flags : fpu sse avx2 avx512f avx512_vnni\n") == "x86_64:avx512_vnni"
    assert isa_of("x86_64", "flags : fpu sse avx2\n") == "x86_64:avx2"
    assert isa_of("x86_64", "flags : fpu sse\n") == "x86_64:baseline"
    assert isa_of("aarch64", "Features : fp asimd sve i8mm bf16\n") == "aarch64:bf16+i8mm+sve"
    assert cpu_isa().split(":", 1)[0]  # this machine's


def test_int8_digests_name_the_cpu_class_and_float32_ones_do_not(
    registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genreg.retrieval import onnx_backend, openvino_backend

    specs = [
        {"backend": "onnx"},
        {"backend": "onnx", "quantize": "int8"},
        {"backend": "openvino"},
        {"backend": "openvino", "precision": "bf16"},
        {"backend": "openvino", "quantize": "int8"},
    ]
    here = [registry.load_embedder(s).digest for s in specs]
    monkeypatch.setattr(onnx_backend, "cpu_isa", lambda: "x86_64:other-class")
    monkeypatch.setattr(openvino_backend, "cpu_isa", lambda: "x86_64:other-class")
    there = [registry.load_embedder(s).digest for s in specs]
    assert [a == b for a, b in zip(here, there)] == [True, False, True, False, False]
    int8 = registry.load_embedder(specs[1])
    assert int8.settings["runtime"] == {"isa": "x86_64:other-class"}
