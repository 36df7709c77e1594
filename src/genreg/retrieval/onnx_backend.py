"""The ``onnx`` embedding backend: a sentence-transformers model exported to ONNX and run by
ONNX Runtime, optionally int8-quantized (``embedding: {backend: onnx, quantize: int8}``).

The export is genreg's own (sentence-transformers' ONNX backend needs ``optimum``, which does
not support the transformers this project uses): ``torch.onnx.export`` of the local model
files (nothing is downloaded) wrapped with the model's pooling (mean or CLS over the attention
mask) and L2 normalisation, so the graph outputs exactly what ``SentenceTransformer.encode(...,
normalize_embeddings=True)`` returns; texts are tokenized by the model's ``tokenizer.json``
with the ``tokenizers`` library (the same fast tokenizer sentence-transformers uses), with
the model's ``max_seq_length``. ``quantize: int8`` is ONNX Runtime's dynamic quantization of
the MatMul weights, per channel.

Identity: an export is a *different model*. Its digest is ``sha256:`` of the canonical JSON of
``{"source": <source model digest>, "backend": "onnx", **settings}`` where the settings are
the export format, opset, pooling, sequence length, quantization and the torch (exporter) and
onnxruntime (quantizer and runtime) versions, and for int8 ``runtime.isa``, the CPU's
instruction-set class (:func:`cpu_isa`: ONNX Runtime picks its int8 kernels by it) -- so its vectors live in their own cache
entries and runs record it apart from the torch model. The digest is computed from the
settings, never from the exported bytes, so naming the model costs nothing.

The export is made once and kept in the registry as a derived object (``kind="onnxmodel"``,
``scope`` = source model digest, ``key`` = the export's digest) plus a local copy under
``<home>/cache/onnx/``; every later process (or Ray actor) fetches it instead of exporting.

``onnxruntime`` and ``onnx`` are the ``genreg[onnx]`` extra, imported only here and only when
the backend is used; without them the backend fails with one line naming the extra.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.core.hashing import digest_json
from genreg.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from genreg.retrieval.embedders import Progress
    from genreg.store.metadata import DerivedStore
    from genreg.store.objects import ObjectStore

EXPORT_FORMAT = 1
OPSET = 17
KIND = "onnxmodel"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_files: dict[str, Path] = {}  # export digest -> the local file a session was loaded from
_sessions: dict[str, Any] = {}  # InferenceSession per (export digest, device) (process-wide)
_lock = threading.Lock()
_making = threading.RLock()  # held while an export / quantization is made or fetched


def require_onnx() -> Any:
    """``onnxruntime``, or a one-line :class:`ConfigError` naming the extra to install."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "embedding backend onnx needs the onnx extra: pip install 'genreg[onnx]'"
        ) from None
    return onnxruntime


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# x86 instruction-set tiers whose int8 / bf16 kernels round differently, best first
_X86_TIERS = (
    ("amx", {"amx_tile", "amx_int8", "amx_bf16"}),
    ("avx512_bf16", {"avx512_bf16"}),
    ("avx512_vnni", {"avx512_vnni"}),
    ("avx_vnni", {"avx_vnni"}),
    ("avx512", {"avx512f"}),
    ("avx2", {"avx2"}),
)
_ARM_FEATURES = ("bf16", "i8mm", "sve", "asimddp")


@functools.cache
def cpu_isa() -> str:
    """This CPU's instruction-set class for reduced-precision kernels (``x86_64:amx``,
    ``x86_64:avx512_vnni``, ``aarch64:bf16+i8mm``...): ONNX Runtime and OpenVINO pick their
    int8 and bf16 kernels by it, and the kernels round differently (measured: ONNX Runtime
    int8 nDCG@10 +0.0009 on one machine, +0.0073 on another), so a quantized or bf16 model's
    digest names it -- vectors made on another class of CPU are another model's. Read from
    ``/proc/cpuinfo`` (no runtime imported); ``<machine>:unknown`` where that is missing."""
    import platform

    machine = platform.machine().lower() or "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"{machine}:unknown"
    return isa_of(machine, text)


def isa_of(machine: str, cpuinfo: str) -> str:
    """:func:`cpu_isa` of a machine name and the text of its ``/proc/cpuinfo``."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags |= set(value.split())
            break
    if machine in ("x86_64", "amd64", "i686", "i386"):
        tier = next((t for t, need in _X86_TIERS if need <= flags), "baseline")
    else:
        tier = "+".join(f for f in _ARM_FEATURES if f in flags) or "baseline"
    return f"{machine}:{tier}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model {path.parent}: cannot read {path.name} ({exc})") from None
    return data if isinstance(data, dict) else {}


def model_layout(root: Path) -> dict[str, Any]:
    """Pooling, sequence length and dimension of a Transformer + Pooling (+ Normalize)
    sentence-transformers model; a :class:`ConfigError` for anything else."""
    where = f"model {root}"
    try:
        modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(
            f"{where}: backend onnx needs a sentence-transformers model directory (modules.json)"
        ) from None
    types = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if (
        not types
        or types[0] != "Transformer"
        or not set(types)
        <= {
            "Transformer",
            "Pooling",
            "Normalize",
        }
    ):
        raise ConfigError(
            f"{where}: backend onnx supports Transformer + Pooling (+ Normalize) models, "
            f"not {' + '.join(types)}"
        )
    pool_dir = next(
        (m.get("path", "") for m in modules if str(m["type"]).endswith("Pooling")), None
    )
    pool = _read_json(root / pool_dir / "config.json") if pool_dir is not None else {}
    if pool.get("pooling_mode_cls_token"):
        pooling = "cls"
    elif pool.get("pooling_mode_mean_tokens", pool_dir is None):
        pooling = "mean"
    else:
        raise ConfigError(f"{where}: backend onnx supports mean or CLS pooling only")
    st = _read_json(root / "sentence_bert_config.json")
    cfg = _read_json(root / "config.json")
    max_len = int(st.get("max_seq_length") or cfg.get("max_position_embeddings") or 512)
    if cfg.get("max_position_embeddings"):
        max_len = min(max_len, int(cfg["max_position_embeddings"]))
    if not (root / "tokenizer.json").is_file():
        raise ConfigError(f"{where}: backend onnx needs the fast tokenizer file tokenizer.json")
    return {
        "pooling": pooling,
        "max_seq_length": max_len,
        "lowercase": bool(st.get("do_lower_case", False)),
        "dim": int(pool.get("word_embedding_dimension") or cfg.get("hidden_size") or 0),
    }


def export_settings(root: Path, quantize: str) -> dict[str, Any]:
    """Everything an export depends on besides the source weights (see the module doc)."""
    layout = model_layout(root)
    out: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "opset": OPSET,
        "pooling": layout["pooling"],
        "max_seq_length": layout["max_seq_length"],
        "lowercase": layout["lowercase"],
        "normalize": True,
        "quantize": quantize,
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
    }
    if quantize == "int8":
        out["int8"] = {
            "method": "dynamic",
            "weight_type": "QInt8",
            "per_channel": True,
            "ops": ["MatMul"],
        }
    return out


def export_digest(source_digest: str, settings: dict[str, Any]) -> str:
    return digest_json({"source": source_digest, "backend": "onnx", **settings})


def export_model(root: Path, settings: dict[str, Any], out_file: Path) -> None:
    """Export (and quantize) the model in ``root`` to ``out_file``, using ``out_file``'s
    directory for intermediate files (a :class:`~genreg.store.objects.StagingDir` made by
    :class:`ExportStore`, which gc reclaims if the process is killed); a
    :class:`ConfigError` when the export fails (nothing is left at ``out_file``)."""
    require_onnx()
    work = out_file.parent
    try:
        fp32 = work / "model.onnx"
        _torch_export(root, settings, fp32)
        if settings["quantize"] == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
            q = work / "model.int8.onnx"
            quantize_dynamic(
                str(fp32),
                str(q),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
            )
            fp32 = q
        os.replace(fp32, out_file)
    except ConfigError:
        raise
    except Exception as exc:
        out_file.unlink(missing_ok=True)
        raise ConfigError(
            f"model {root}: ONNX export failed ({type(exc).__name__}: {exc})"
        ) from None


def _torch_export(root: Path, settings: dict[str, Any], out: Path) -> None:
    import warnings

    from genreg.retrieval.embedders import _offline

    _offline()
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = AutoModel.from_pretrained(str(root)).eval()
    pooling = settings["pooling"]

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            h = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types)
            h = h.last_hidden_state
            if pooling == "cls":
                e = h[:, 0]
            else:
                m = mask.unsqueeze(-1).to(h.dtype)
                e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(e, p=2, dim=1)

    # A padded example batch, so the traced attention keeps its masking path.
    ids = torch.full((3, 11), 1000, dtype=torch.long)
    mask = torch.ones((3, 11), dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 8:] = 0
    types = torch.zeros((3, 11), dtype=torch.long)
    axes = {n: {0: "batch", 1: "seq"} for n in _INPUTS}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(),
            (ids, mask, types),
            str(out),
            input_names=list(_INPUTS),
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "batch"}},
            opset_version=settings["opset"],
            dynamo=False,
        )


class ExportStore:
    """Exported (or quantized) models kept in the registry as derived objects, with a local
    file copy under ``local_dir``. An export is made in a work directory under ``work_dir``
    (a :class:`~genreg.store.objects.StagingDir`: gc reclaims a killed export's) and moved
    into place whole, so ``local_dir`` only ever holds finished files."""

    def __init__(
        self,
        objects: ObjectStore | None,
        derived: DerivedStore | None,
        local_dir: Path,
        work_dir: Path | None = None,
    ) -> None:
        self.objects = objects
        self.derived = derived
        self.local_dir = Path(local_dir)
        # <home>/cache/tmp beside <home>/cache/onnx: gc's work-directory root
        self.work_dir = Path(work_dir) if work_dir is not None else self.local_dir.parent / "tmp"

    def local_path(self, digest: str, suffix: str = ".onnx") -> Path:
        return self.local_dir / f"{digest.split(':', 1)[-1]}{suffix}"

    def get(self, digest: str, kind: str = KIND, suffix: str = ".onnx") -> Path | None:
        """The local file of an export (fetched from the registry when only it has it)."""
        p = self.local_path(digest, suffix)
        if p.is_file():
            return p
        if self.derived is None or self.objects is None:
            return None
        row = self.derived.get(digest)
        if row is None or row.kind != kind:
            return None
        data = self.objects.get_bytes(row.object_digest)
        self._keep_file(p, lambda tmp: tmp.write_bytes(data))
        return p

    def keep(
        self,
        source_digest: str,
        digest: str,
        settings: dict[str, Any],
        write: Any,
        *,
        kind: str = KIND,
        suffix: str = ".onnx",
    ) -> Path:
        """``write(tmp)`` the file of export ``digest`` (``tmp`` lies in a fresh work
        directory it may use for intermediate files), record it in the registry as a derived
        object of ``kind`` (scope: the source model), keep the local copy; returns it."""
        p = self.local_path(digest, suffix)

        def stored(tmp: Path) -> None:
            write(tmp)
            if self.derived is None or self.objects is None:
                return
            from genreg.store.objects import ensure_stored

            data = tmp.read_bytes()
            obj = self.objects.put_bytes(data)
            row = self.derived.put(
                kind=kind,
                scope=source_digest,
                key=digest,
                object_digest=obj,
                meta={"settings": settings, "bytes": len(data)},
            )
            if row.object_digest != obj:  # another process exported first: use theirs
                tmp.write_bytes(self.objects.get_bytes(row.object_digest))
            else:
                ensure_stored(self.objects, obj, data)

        self._keep_file(p, stored)
        return p

    def _keep_file(self, p: Path, write: Any) -> None:
        from genreg.store.objects import StagingDir

        self.local_dir.mkdir(parents=True, exist_ok=True)
        with StagingDir(self.work_dir, prefix="export-") as work:
            tmp = work / p.name
            write(tmp)
            os.replace(tmp, p)


@dataclass(frozen=True)
class Made:
    """A file an embedder runs, made once per registry and kept by :class:`ExportStore`:
    its key (``digest``), what it is made from (``settings``, the row's meta), its derived
    ``kind`` and local ``suffix``, and ``make(tmp)``, which writes it."""

    digest: str
    settings: dict[str, Any]
    make: Callable[[Path], None]
    kind: str = KIND
    suffix: str = ".onnx"


class OnnxEmbedder:
    """An ONNX export of a sentence-transformers model, run by ONNX Runtime (module doc).
    Same interface as :class:`genreg.retrieval.embedders.Embedder`."""

    backend = "onnx"

    def __init__(
        self,
        name: str,
        path: Path,
        source_digest: str,
        *,
        quantize: str = "none",
        precision: str = "f32",
        device: str = "auto",
        exports: ExportStore | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.source_digest = source_digest
        self.quantize = quantize
        self.precision = precision
        self.device = device
        self.threads = threads
        # the ONNX file this backend runs (``backend: openvino`` runs the same float32 export)
        self.export_settings = export_settings(self.path, self._export_quantize())
        self.export_digest = export_digest(source_digest, self.export_settings)
        # the model's identity: the export plus whatever else decides its vectors (runtime)
        self.settings = self._identity_settings()
        self.digest = digest_json(
            {"source": source_digest, "backend": self.backend, **self.settings}
        )
        self.name = f"{name} [{self._name_suffix()}]"
        self.exports = exports
        self.device_used: str | None = None

    def _export_quantize(self) -> str:
        """The quantization of the ONNX export this backend runs (here: its own)."""
        return self.quantize

    def _name_suffix(self) -> str:
        return self.backend + ("-int8" if self.quantize == "int8" else "")

    def _identity_settings(self) -> dict[str, Any]:
        """The settings the digest is computed from (besides source and backend): the
        export's, and for int8 the CPU class whose kernels run it (:func:`cpu_isa`)."""
        if self.quantize == "int8":
            return {**self.export_settings, "runtime": {"isa": cpu_isa()}}
        return self.export_settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.digest[:19]})"

    @cached_property
    def dim(self) -> int:
        return int(model_layout(self.path)["dim"])

    @cached_property
    def tokenizer(self) -> Any:
        """The HF tokenizer (for chunking by tokens), as the torch backend gives it."""
        from genreg.retrieval.embedders import _offline

        _offline()
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.path))

    @cached_property
    def _fast(self) -> Any:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tcfg = _read_json(self.path / "tokenizer_config.json")
        pad = tcfg.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        pad = pad or "[PAD]"
        pad_id = tok.token_to_id(pad)
        tok.enable_truncation(max_length=self.export_settings["max_seq_length"])
        tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad)
        return tok

    @property
    def loaded(self) -> bool:
        return self._session_key in _sessions

    @property
    def _session_key(self) -> str:
        return f"{self.digest}|{self.device}|{self.threads}"

    def _export(self) -> Made:
        """The ONNX export (``backend: openvino`` makes its int8 model from the float32 one)."""
        settings = self.export_settings
        return Made(
            self.export_digest, settings, lambda tmp: export_model(self.path, settings, tmp)
        )

    def _runs(self) -> Made:
        """The file this backend runs: here its ONNX export."""
        return self._export()

    def _file(self, made: Made) -> Path:
        """The local file of ``made`` (made once per registry; afterwards fetched)."""
        with _making:  # one thread makes it; the others then find it
            store = self._store()
            path = store.get(made.digest, made.kind, made.suffix) or store.keep(
                self.source_digest,
                made.digest,
                made.settings,
                made.make,
                kind=made.kind,
                suffix=made.suffix,
            )
            _files[made.digest] = path
            return path

    def model_file(self) -> Path:
        """The exported model file (exported once; afterwards fetched)."""
        return self._file(self._export())

    def run_file(self) -> Path:
        """The file this backend runs (:meth:`_runs`), made or fetched."""
        return self._file(self._runs())

    def prepare(self) -> Path:
        """Make (or fetch) the file this backend runs, without loading a runtime: the Ray
        driver calls it so that its actors all fetch one export instead of each exporting."""
        return self.run_file()

    def _store(self) -> ExportStore:
        if self.exports is not None:
            return self.exports
        local = Path(tempfile.gettempdir()) / "genreg-onnx"  # an embedder built without one
        return ExportStore(None, None, local, local / "tmp")

    def _adopt(self) -> None:
        """Record in this embedder's registry the file this process loaded for another one
        (made once per registry, not once per process): a copy of it, kept as made would be."""
        runs = self._runs()
        if self.exports is None or self.exports.get(runs.digest, runs.kind, runs.suffix):
            return
        have = _files.get(runs.digest)
        if have is not None and have.is_file():
            self.exports.keep(
                self.source_digest,
                runs.digest,
                runs.settings,
                lambda tmp: shutil.copyfile(have, tmp),
                kind=runs.kind,
                suffix=runs.suffix,
            )

    @property
    def session(self) -> Any:
        """The loaded runtime (made once per model, device and thread count, process-wide)."""
        with _lock:
            key = self._session_key
            if key not in _sessions:
                _sessions[key] = self._open()
            else:  # loaded for another registry in this process: this one records it too
                self._adopt()
            sess = _sessions[key]
            self.device_used = self._device_of(sess)
            return sess

    # -- the runtime: ONNX Runtime here; a subclass runs the same export on another one ----
    def _open(self) -> Any:
        ort = require_onnx()
        providers = ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        if self.device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        elif self.device == "cuda":
            raise ConfigError(
                "embedding.device: cuda requested but onnxruntime has no CUDA provider "
                "(install onnxruntime-gpu)"
            )
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        return ort.InferenceSession(str(self.run_file()), opts, providers=providers)

    def _device_of(self, sess: Any) -> str:
        return "cuda" if sess.get_providers()[0].startswith("CUDA") else "cpu"

    def _input_names(self, sess: Any) -> set[str]:
        return {i.name for i in sess.get_inputs()}

    def _infer(self, sess: Any, feed: dict[str, np.ndarray]) -> np.ndarray:
        return sess.run(None, feed)[0]

    def feed(self, texts: list[str], names: set[str]) -> dict[str, np.ndarray]:
        """The model inputs of one batch (those of ``names`` the graph takes), tokenized
        as sentence-transformers does (lower-cased first when the model says so)."""
        import numpy as np

        if self.export_settings["lowercase"]:
            texts = [t.lower() for t in texts]
        enc = self._fast.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        return {k: v for k, v in feed.items() if k in names}

    def _run(self, texts: list[str]) -> np.ndarray:
        sess = self.session
        return self._infer(sess, self.feed(texts, self._input_names(sess)))

    def encode(
        self, texts: list[str], batch_size: int = 32, *, progress: Progress | None = None
    ) -> np.ndarray:
        """Embed ``texts`` (rows in input order), longest first in batches of ``batch_size``
        (as sentence-transformers does), reporting progress between blocks of batches."""
        import numpy as np

        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        batch_size = max(batch_size, 1)
        block = batch_size * 32
        loading = progress is not None and not self.loaded
        if loading and progress is not None:
            progress(f"loading {self.name}", 0, None)
        _ = self.session
        if progress is not None:
            if loading:
                progress(f"loading {self.name}", 1, 1)
            progress("embedding", 0, n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._run([texts[i] for i in idx])
            done = min(start + batch_size, n)
            if progress is not None and (done % block == 0 or done == n):
                progress("embedding", done, n)
        return out
