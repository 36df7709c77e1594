"""Pre-flight check of a local embedding-model directory (issue 14 item 7): an
``embedding.model`` that points at a directory which is not a sentence-transformers (or plain
Hugging Face transformer) model is one line naming the directory and what is wrong, before
any indexing starts -- never a ValueError/JSONDecodeError traceback from the loader.
:func:`genreg.retrieval.embedders.load_embedder` runs it, so every entry point (eval
config, ``corpus index --model``, ``Registry.load_embedder``, ``genreg.retrieval``) does."""

from __future__ import annotations

import json
from pathlib import Path

from genreg.errors import ConfigError

# weights a loader accepts: single-file or sharded (``*.index.json`` naming the shards)
# checkpoints, or an ONNX / OpenVINO export alone (sentence-transformers' onnx/openvino
# backends read ``onnx/*.onnx`` and ``openvino/*.xml``)
_WEIGHTS = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
_EXPORTS = (("onnx", "*.onnx"), ("openvino", "*.xml"))


def _has_weights(d: Path) -> bool:
    if any((d / w).is_file() for w in _WEIGHTS):
        return True
    return any(any(p.is_file() for p in (d / sub).glob(pat)) for sub, pat in _EXPORTS)


def _transformer_problem(d: Path) -> str | None:
    cfg = d / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no config.json in {d}"
    except (OSError, ValueError) as exc:
        return f"{cfg} is not readable JSON ({exc.__class__.__name__})"
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        return f"{cfg} has no 'model_type'"
    if not _has_weights(d):
        return (
            f"no weights in {d} (model.safetensors, pytorch_model.bin, their sharded "
            "*.index.json, onnx/*.onnx or openvino/*.xml)"
        )
    return None


def model_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be loaded as an embedding model, or None."""
    modules = path / "modules.json"
    if not modules.exists():
        problem = _transformer_problem(path)
        return None if problem is None else f"not a model directory: {problem}"
    try:
        mods = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{modules} is not readable JSON ({exc.__class__.__name__})"
    if not isinstance(mods, list) or not mods or not all(isinstance(m, dict) for m in mods):
        return f"{modules} must be a non-empty list of modules"
    for m in mods:
        kind = m.get("type")
        if not isinstance(kind, str) or not kind.startswith("sentence_transformers."):
            return f"{modules}: module type {kind!r} is not part of sentence-transformers"
        if kind.endswith(".Transformer"):
            sub = path / str(m.get("path") or "")
            problem = _transformer_problem(sub)
            if problem is not None:
                return problem
    return None


def check_model_dir(name: str, path: Path) -> None:
    """Raise one ConfigError line when ``path`` is not a loadable model directory."""
    problem = model_dir_problem(path)
    if problem is not None:
        raise ConfigError(f"embedding model {name}: {problem}")
