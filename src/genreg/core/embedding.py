"""How an embedding model may be run: the one table of backends, quantization, precision and
devices genreg offers, and which combinations it refuses (one line each).

``backend``: ``torch`` (sentence-transformers), ``onnx`` (genreg's ONNX export run by ONNX
Runtime) or ``openvino`` (the same export run by OpenVINO on the CPU). ``quantize``: ``none``
or ``int8`` (onnx: ONNX Runtime's dynamic quantization of the MatMul weights; openvino:
NNCF's post-training static quantization, calibrated on a fixed text set shipped with
genreg). ``precision``: the inference precision OpenVINO computes in, ``f32`` or ``bf16``
(a CPU with bfloat16 support: AVX512_BF16 or AMX). ``device``: ``auto`` (a CUDA GPU when
present), ``cpu`` or ``cuda``. Every backend, quantization and precision is a different
model with its own digest; the device is environment.

Both the eval-config loader and :class:`genreg.retrieval.embedders.EmbeddingSpec` check
combinations here, so the two never disagree.
"""

from __future__ import annotations

BACKENDS = ("torch", "onnx", "openvino")
QUANTIZE = ("none", "int8")
PRECISIONS = ("f32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
DEFAULTS = {"backend": "torch", "quantize": "none", "precision": "f32", "device": "auto"}
ALLOWED = {"backend": BACKENDS, "quantize": QUANTIZE, "precision": PRECISIONS, "device": DEVICES}

# (field, value) -> the backends that offer it
_OFFERED = {
    ("quantize", "int8"): ("onnx", "openvino"),
    ("precision", "bf16"): ("openvino",),
}
# (field, value) -> the backends that cannot run it
_REFUSED = {("device", "cuda"): ("openvino",)}


def combination_error(backend: str, quantize: str, precision: str, device: str) -> str | None:
    """``"<field>: <why>"`` for a combination genreg does not offer (the caller prefixes
    where it came from, e.g. ``embedding.``), or None when it is offered."""
    values = {"quantize": quantize, "precision": precision, "device": device}
    for (fld, value), backends in _OFFERED.items():
        if values[fld] == value and backend not in backends:
            return f"{fld}: {value} needs backend: {' or '.join(backends)}"
    for (fld, value), backends in _REFUSED.items():
        if values[fld] == value and backend in backends:
            return f"{fld}: {value} is not available with backend: {backend}"
    return None
