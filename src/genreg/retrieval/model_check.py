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

_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


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
    if not any((d / w).is_file() for w in _WEIGHTS):
        return f"no weights in {d} (model.safetensors or pytorch_model.bin)"
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
