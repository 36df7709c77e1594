"""The ``openvino`` embedding backend: genreg's ONNX export run by the OpenVINO runtime on the
CPU (``embedding: {backend: openvino}``).

It is :class:`~genreg.retrieval.onnx_backend.OnnxEmbedder` with another runtime: the same
export (made once and kept in the registry as the ``onnxmodel`` derived object that
``backend: onnx`` uses -- never exported twice), the same tokenizer, batching and output
handling; only opening the model and running a batch differ. OpenVINO reads the ONNX file
directly (``Core().read_model`` + ``compile_model(..., "CPU")``, about a second, so no
compiled-model cache is kept) with inference precision pinned to f32 (a CPU with bf16 support
would otherwise default to bf16 and give other vectors for the same digest).

Identity: a *different model* from the ONNX Runtime one. Its digest is ``sha256:`` of the
canonical JSON of ``{"source": <source model digest>, "backend": "openvino", **settings}``
where the settings are the ONNX export's (format, opset, pooling, sequence length, exporter
versions) plus ``runtime: {openvino: <version>, device: CPU, precision: f32}``.

Not supported, one :class:`ConfigError` line each (:class:`EmbeddingSpec` checks them):
``quantize: int8`` (OpenVINO runs ONNX Runtime's dynamically quantized export, but slower
than the float32 one here -- see BENCHMARKS.md; use ``backend: onnx, quantize: int8``) and
``device: cuda`` (OpenVINO has no CUDA device). ``auto`` and ``cpu`` run on the CPU.

``openvino`` (plus ``onnxruntime``/``onnx`` for the export) is the ``genreg[openvino]`` extra,
imported only here and only when the backend is used; without it, one line naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genreg.errors import ConfigError
from genreg.retrieval.onnx_backend import OnnxEmbedder, _version

if TYPE_CHECKING:
    import numpy as np

PRECISION = "f32"


def require_openvino() -> Any:
    """``openvino``, or a one-line :class:`ConfigError` naming the extra to install (the
    export it runs needs onnxruntime/onnx too, which the same extra installs)."""
    try:
        import onnxruntime  # noqa: F401 - the export's quantizer/runtime (genreg[onnx])
        import openvino
    except ImportError:
        raise ConfigError(
            "embedding backend openvino needs the openvino extra: pip install 'genreg[openvino]'"
        ) from None
    return openvino


class OpenVinoEmbedder(OnnxEmbedder):
    """genreg's ONNX export run by OpenVINO on the CPU (module doc)."""

    backend = "openvino"

    def _identity_settings(self) -> dict[str, Any]:
        runtime = {"openvino": _version("openvino"), "device": "CPU", "precision": PRECISION}
        return {**self.export_settings, "runtime": runtime}

    def _open(self) -> Any:
        if self.device == "cuda":  # EmbeddingSpec refuses it; an embedder built directly too
            raise ConfigError("embedding.device: cuda is not available with backend: openvino")
        ov = require_openvino()
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        path = self.model_file()  # export/fetch errors are their own (not compile errors)
        try:
            return core.compile_model(core.read_model(str(path)), "CPU", config)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the runtime's errors are one line
            first = (str(exc).strip().split("\n", 1)[0] or "no message")[:200]
            raise ConfigError(
                f"model {self.path}: OpenVINO cannot compile the ONNX export "
                f"({type(exc).__name__}: {first})"
            ) from None

    def _device_of(self, sess: Any) -> str:
        return "cpu"

    def _input_names(self, sess: Any) -> set[str]:
        return {i.get_any_name() for i in sess.inputs}

    def _infer(self, sess: Any, feed: dict[str, np.ndarray]) -> np.ndarray:
        request = sess.create_infer_request()  # one per call: safe across threads
        request.infer(feed)
        return request.get_output_tensor(0).data.copy()
