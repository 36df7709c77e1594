"""The ``openvino`` embedding backend: genreg's ONNX export run by the OpenVINO runtime on the
CPU (``embedding: {backend: openvino}``), optionally int8-quantized by NNCF
(``quantize: int8``) and/or computed in bfloat16 (``precision: bf16``).

It is :class:`~genreg.retrieval.onnx_backend.OnnxEmbedder` with another runtime: the same
float32 export (made once and kept in the registry as the ``onnxmodel`` derived object that
``backend: onnx`` uses -- never exported twice), the same tokenizer, batching and output
handling; only opening the model and running a batch differ. OpenVINO reads the ONNX file
directly (``Core().read_model`` + ``compile_model(..., "CPU")``, a second or so, so no
compiled-model cache is kept).

``precision`` is OpenVINO's ``INFERENCE_PRECISION_HINT``, always set explicitly: ``f32`` (the
default; a CPU with bf16 support would otherwise default to bf16 and give other vectors for
the same digest) or ``bf16`` (bfloat16 matrix arithmetic -- AMX or AVX512_BF16 -- about 2.5x
float32 here, see BENCHMARKS.md). ``bf16`` on a CPU without bfloat16 support is refused with
one line rather than silently run in another precision, and the compiled model's precision is
checked against the one asked for.

``quantize: int8`` is NNCF's post-training static quantization (``nncf.quantize``,
``ModelType.TRANSFORMER``, the mixed preset: int8 weights and activations of the matrix
multiplications, SmoothQuant and bias correction) of the float32 export, calibrated on
:data:`CALIBRATION` -- a fixed set of passages shipped with genreg (paragraphs of its example
corpus), never the corpus or queries being evaluated, so the quantized model does not depend
on what it embeds. It is made once per registry and kept as a derived object
(``kind="openvinomodel"``, ``scope`` = source model digest, ``key`` = :attr:`ir_digest`) whose
object is an uncompressed tar of the OpenVINO IR (``model.xml`` + ``model.bin``), plus a local
copy under ``<home>/cache/onnx/``; later processes (and Ray actors) fetch it instead of
quantizing (~12-14 s on 2 cores). With ``--engine ray`` the driver makes or fetches it
(:meth:`OpenVinoEmbedder.prepare`, after the same refusals as in-process) before the job.

Identity: a *different model* from the ONNX Runtime one and from each other. Its digest is
``sha256:`` of the canonical JSON of ``{"source": <source model digest>, "backend":
"openvino", **settings}`` where the settings are the float32 export's (format, opset,
pooling, sequence length, exporter versions) plus ``runtime: {openvino: <version>, device:
CPU, precision}`` and, for int8, ``quantize: int8`` and ``int8: {method, preset, nncf
version, calibration digest and size}``. For int8 and bf16 ``runtime.isa`` also names the
CPU's instruction-set class (:func:`~genreg.retrieval.onnx_backend.cpu_isa`: AMX, AVX512_BF16
and VNNI kernels round differently), so vectors made on another class of CPU are another
model's; float32 digests do not name it (unchanged from before it existed).

``device: cuda`` is refused (:mod:`genreg.core.embedding`: OpenVINO has no CUDA device);
``auto`` and ``cpu`` run on the CPU. ``openvino`` and ``nncf`` (plus ``onnxruntime``/``onnx``
for the export) are the ``genreg[openvino]`` extra, imported only here and only when the
backend is used; without them, one line naming the extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.core.hashing import digest_json
from genreg.errors import ConfigError
from genreg.retrieval.embedders import first_line
from genreg.retrieval.onnx_backend import Made, OnnxEmbedder, _version, cpu_isa

if TYPE_CHECKING:
    import numpy as np

KIND = "openvinomodel"  # derived objects: NNCF-quantized IRs
SUFFIX = ".ovir.tar"
CALIBRATION = Path(__file__).with_name("calibration.jsonl")  # {"text": ...} per line
CALIBRATION_BATCH = 16


def require_openvino(quantize: str = "none") -> Any:
    """``openvino``, or a one-line :class:`ConfigError` naming the extra to install (the
    export it runs needs onnxruntime/onnx too, and int8 nncf, which the same extra installs)."""
    try:
        import onnxruntime  # noqa: F401 - the export's runtime (genreg[onnx])
        import openvino

        if quantize == "int8":
            # NNCF sends usage telemetry (Google Analytics) unless NNCF_CI or NNCF_DEV is set
            # (its only effect in nncf 3.4: nncf/telemetry/wrapper.py, read when nncf is
            # first imported); genreg runs offline and sends nothing on its users' behalf.
            # Process-wide, and inherited by child processes, like HF_HUB_OFFLINE.
            os.environ.setdefault("NNCF_CI", "1")
            import nncf  # noqa: F401
    except ImportError:
        raise ConfigError(
            "embedding backend openvino needs the openvino extra: pip install 'genreg[openvino]'"
        ) from None
    return openvino


def cpu_has_bf16(core: Any) -> bool:
    """Whether OpenVINO computes bfloat16 natively on this CPU (AVX512_BF16 or AMX)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@cache
def calibration_texts() -> tuple[str, ...]:
    with CALIBRATION.open(encoding="utf-8") as fh:
        return tuple(json.loads(line)["text"] for line in fh if line.strip())


@cache
def calibration_digest() -> str:
    return "sha256:" + hashlib.sha256(CALIBRATION.read_bytes()).hexdigest()


def int8_settings() -> dict[str, Any]:
    """What an NNCF int8 model depends on besides the float32 export."""
    return {
        "method": "nncf-ptq",
        "model_type": "transformer",
        "preset": "mixed",
        "nncf": _version("nncf"),
        "calibration": {
            "digest": calibration_digest(),
            "texts": len(calibration_texts()),
            "batch": CALIBRATION_BATCH,
        },
    }


def pack_ir(xml: Path, weights: Path, out: Path) -> None:
    """``model.xml`` + ``model.bin`` as one uncompressed tar with fixed headers (the same
    IR always gives the same bytes)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, src in (("model.xml", xml), ("model.bin", weights)):
            info = tarfile.TarInfo(name)
            info.size = src.stat().st_size
            info.mode = 0o644
            with src.open("rb") as fh:
                tar.addfile(info, fh)


def read_ir(core: Any, path: Path) -> Any:
    """The OpenVINO model of a :func:`pack_ir` file, read from memory."""
    import numpy as np
    import openvino as ov

    parts = {}
    try:
        with tarfile.open(path, "r") as tar:
            for name in ("model.xml", "model.bin"):
                fh = tar.extractfile(tar.getmember(name))
                if fh is None:
                    raise KeyError(name)
                parts[name] = fh.read()
    except (KeyError, tarfile.TarError, OSError) as exc:
        raise ConfigError(
            f"{path}: not an OpenVINO IR pack ({type(exc).__name__}: {exc}); delete it to "
            "fetch or make it again"
        ) from None
    return core.read_model(
        parts["model.xml"], ov.Tensor(np.frombuffer(parts["model.bin"], np.uint8))
    )


class OpenVinoEmbedder(OnnxEmbedder):
    """genreg's ONNX export run by OpenVINO on the CPU (module doc)."""

    backend = "openvino"

    def _export_quantize(self) -> str:
        return "none"  # int8 is NNCF's, applied to the float32 export

    def _name_suffix(self) -> str:
        parts = [self.backend]
        if self.quantize == "int8":
            parts.append("int8")
        if self.precision != "f32":
            parts.append(self.precision)
        return "-".join(parts)

    def _identity_settings(self) -> dict[str, Any]:
        runtime: dict[str, Any] = {
            "openvino": _version("openvino"),
            "device": "CPU",
            "precision": self.precision,
        }
        if self.quantize == "int8" or self.precision != "f32":
            runtime["isa"] = cpu_isa()  # their kernels round by CPU class (f32: unchanged)
        out = {**self.export_settings, "runtime": runtime}
        if self.quantize == "int8":
            out["quantize"] = "int8"
            out["int8"] = int8_settings()
        return out

    @cached_property
    def ir_settings(self) -> dict[str, Any]:
        """What the quantized IR is made from (int8 only)."""
        return {"export": self.export_digest, "openvino": _version("openvino"), **int8_settings()}

    @cached_property
    def ir_digest(self) -> str:
        """The key of the quantized IR's derived object (int8 only)."""
        return digest_json({"backend": "openvino", "ir": self.ir_settings})

    def _runs(self) -> Made:
        """For int8 the NNCF-quantized IR pack; else the float32 ONNX export."""
        if self.quantize != "int8":
            return self._export()
        return Made(self.ir_digest, self.ir_settings, self._quantize, KIND, SUFFIX)

    def check(self) -> Any:
        """Refuse, in one line and before anything is written, what cannot run here: CUDA,
        a missing extra, bf16 on a CPU without it. Returns an OpenVINO ``Core``."""
        if self.device == "cuda":  # EmbeddingSpec refuses it; an embedder built directly too
            raise ConfigError("embedding.device: cuda is not available with backend: openvino")
        core = require_openvino().Core()
        if self.precision == "bf16" and not cpu_has_bf16(core):
            raise ConfigError(
                "embedding.precision: bf16 needs a CPU with bfloat16 support (AVX512_BF16 or "
                "AMX), which OpenVINO does not find on this one; use precision: f32"
            )
        return core

    def prepare(self) -> Path:
        """The checks of :meth:`check`, then the file this model runs (made or fetched)."""
        self.check()
        return self.run_file()

    def _quantize(self, out: Path) -> None:
        """NNCF int8 of the float32 export into ``out`` (an IR pack); one line on failure."""
        import logging

        ov = require_openvino("int8")
        onnx_file = self.model_file()  # export/fetch errors are their own
        try:
            import nncf

            nncf.set_log_level(logging.ERROR)
            core = ov.Core()
            model = core.read_model(str(onnx_file))
            names = self._input_names(model)
            texts = list(calibration_texts())
            batches = [
                self.feed(texts[i : i + CALIBRATION_BATCH], names)
                for i in range(0, len(texts), CALIBRATION_BATCH)
            ]
            # NNCF draws its own progress bars on stdout (rich), which would corrupt --json
            # output; the caller's progress shows this as part of loading the model
            with contextlib.redirect_stdout(io.StringIO()):
                quantized = nncf.quantize(
                    model,
                    nncf.Dataset(batches),
                    model_type=nncf.ModelType.TRANSFORMER,
                    preset=nncf.QuantizationPreset.MIXED,
                    subset_size=len(batches),
                )
            xml = out.parent / "model.xml"
            ov.save_model(quantized, str(xml), compress_to_fp16=False)
            pack_ir(xml, xml.with_suffix(".bin"), out)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the quantizer's errors are one line
            out.unlink(missing_ok=True)
            first = first_line(exc)
            raise ConfigError(
                f"model {self.path}: OpenVINO int8 quantization failed ({type(exc).__name__}: {first})"
            ) from None

    def _open(self) -> Any:
        core = self.check()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.precision}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
            # a set thread count is a share of the machine (a Ray actor's num_cpus): OpenVINO
            # pins its threads to the first cores by default, so two 1-thread actors on one
            # machine shared one core (measured: 30 texts/s each vs 60 unpinned)
            config["ENABLE_CPU_PINNING"] = False
        # export/fetch/quantize errors are their own (not compile errors)
        path = self.run_file()
        try:
            model = read_ir(core, path) if self.quantize == "int8" else core.read_model(str(path))
            compiled = core.compile_model(model, "CPU", config)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the runtime's errors are one line
            first = first_line(exc)
            raise ConfigError(
                f"model {self.path}: OpenVINO cannot compile {path.name} "
                f"({type(exc).__name__}: {first})"
            ) from None
        got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if got != self.precision:
            raise ConfigError(
                f"embedding.precision: {self.precision} asked for, but OpenVINO compiled "
                f"the model in {got} on this CPU"
            )
        return compiled

    def _device_of(self, sess: Any) -> str:
        return "cpu"

    def _input_names(self, sess: Any) -> set[str]:
        return {i.get_any_name() for i in sess.inputs}

    def _infer(self, sess: Any, feed: dict[str, np.ndarray]) -> np.ndarray:
        request = sess.create_infer_request()  # one per call: safe across threads
        request.infer(feed)
        return request.get_output_tensor(0).data.copy()
