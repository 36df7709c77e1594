"""The ``ray`` embedding engine: chunks missing from the embedding cache are embedded by Ray
Data actors, each writing its finished shards straight into the registry.

``genreg corpus index REF --engine ray`` (or ``embedding: {engine: ray}`` in an eval config)
hands the chunks whose vectors are not cached to :func:`embed_missing`:

- the blocks are the in-process path's own (:mod:`genreg.retrieval.blocks`: all the distinct
  chunks, cached or not, longest first, ties in first-seen order, cut every ``batch_size x
  32`` texts; one ``encode`` call per block over exactly its missing texts, the same call
  in-process and here), so a deterministic model gives the same vectors bit for bit even
  when its vectors depend on the batch; only blocks with a missing chunk are sent;
- for an on-disk index (``ivfpq`` / ``ivf_hnsw``, :func:`embed_rows`) the driver holds no
  chunk text: the chunk-text table is stored first, the rows in embedding order (8 bytes a
  row) and their expected text digests (32 bytes a row) go once into Ray's object store and
  a block is a ``(lo, hi)`` range of them, whose texts the actor reads from the table in the
  registry's object store;
- ``ray.data.from_items(blocks).map_batches(EmbedActor, concurrency=actors, ...)``: each actor
  loads the model once (``num_cpus``/``num_gpus`` per actor configurable), embeds a block,
  checks every text against the digest the driver expects for it (a wrong table range or a
  corrupt local table file is an :class:`IntegrityError` naming the row, before anything of
  that block is written) and writes the block as one cache shard
  (:mod:`genreg.retrieval.cache` format, ``derived(kind="embshard")`` row after the object)
  to the registry's object store and database -- S3 and PostgreSQL in a team setup, which
  every worker must reach (``GENREG_OBJECTS_URL``, ``GENREG_DATABASE_URL``);
- so a job killed half-way leaves only complete, digest-verified shards, and running it again
  embeds only the blocks still missing (the same blocks: the resumed vectors equal an
  uninterrupted run's). Shards are content-addressed and rows keyed by their digest, so a
  re-run never duplicates a vector.

For an on-disk ANN index (``ivfpq`` / ``ivf_hnsw``) the index's build units run as Ray tasks
too (:func:`build_units`): each reads its vectors from the cache shards in the object store,
adds them to the trained index and returns its unit file (its part of the inverted lists);
the driver writes them and merges (``genreg.retrieval.ann.build_ondisk``), so the index is
byte-identical to a local build. Embedding and index units share one Ray session.

The cluster is ``RAY_ADDRESS`` when set (``auto``, ``host:port`` or ``ray://host:port``; a
``host:port`` that does not answer is one clear line before anything is written) or a local
one started for the job with ``actors x num_cpus`` CPUs, a small object store and no
dashboard, shut down afterwards. Ray (``genreg[ray]``) is imported only here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genreg.errors import ConfigError, GenregError, IntegrityError
from genreg.retrieval.blocks import block_size, embed_order, plan_blocks, row_blocks

__all__ = ["RayOptions", "embed_missing", "embed_order", "embed_rows", "plan_blocks", "row_blocks"]

if TYPE_CHECKING:
    from genreg.settings import Settings

Progress = Callable[[str, int, int | None], None]
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class RayOptions:
    """``actors`` (Ray actors, each loading the model once), ``num_cpus``/``num_gpus`` per
    actor, ``batch_size`` (texts per model call; a block, and shard, is ``batch_size x 32``
    texts) and ``address`` (default ``RAY_ADDRESS``; unset: a local cluster)."""

    actors: int = 2
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 32
    address: str | None = None

    @classmethod
    def parse(cls, value: Any, where: str = "ray") -> RayOptions:
        if value is None:
            return cls()
        if isinstance(value, RayOptions):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping (actors, num_cpus, num_gpus, ...)")
        unknown = sorted(set(value) - {"actors", "num_cpus", "num_gpus", "batch_size", "address"})
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}")
        try:
            opts = cls(
                actors=int(value.get("actors", 2)),
                num_cpus=float(value.get("num_cpus", 1.0)),
                num_gpus=float(value.get("num_gpus", 0.0)),
                batch_size=int(value.get("batch_size", 32)),
                address=value.get("address"),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if opts.actors < 1 or opts.batch_size < 1 or opts.num_cpus <= 0 or opts.num_gpus < 0:
            raise ConfigError(f"{where}: actors and batch_size must be >= 1, num_cpus > 0")
        return opts


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("engine ray needs the ray extra: pip install 'genreg[ray]'") from None
    return ray


def check_address(address: str) -> None:
    """One clear line when a ``host:port`` cluster address does not accept connections."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"RAY_ADDRESS {address!r}: expected host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            pass
    except OSError as exc:
        raise ConfigError(
            f"RAY_ADDRESS {address}: no Ray cluster answers there ({exc.strerror or exc})"
        ) from None


class EmbedActor:
    """A Ray Data actor: loads the model once, embeds blocks, writes each as a cache shard."""

    def __init__(
        self,
        settings: Settings,
        spec: Mapping[str, Any] | None,
        embedder: Any,
        digest: str,
        batch_size: int,
        threads: int | None,
        table: str | None = None,
        order: list[Any] | None = None,
    ) -> None:
        """``order``: for blocks given as row ranges, ``[rows, digests]`` object refs (the
        rows in embedding order and their expected ``S32`` text digests)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from genreg.store.metadata import open_metadata
        from genreg.store.objects import open_object_store

        # the registry's stores, opened from the settings at the store layer (no service/)
        self.objects = open_object_store(settings.objects_url)
        self.derived = open_metadata(settings.database_url).derived
        if embedder is None:
            from genreg.retrieval.embedders import load_embedder
            from genreg.retrieval.onnx_backend import ExportStore

            cache = settings.home / "cache"
            exports = ExportStore(self.objects, self.derived, cache / "onnx", cache / "tmp")
            embedder = load_embedder(
                dict(spec or {}), cache_dir=settings.home / "cache", exports=exports
            )
            if threads and hasattr(embedder, "threads"):
                embedder.threads = threads
        if embedder.digest != digest:
            raise IntegrityError(
                f"ray actor: model digest {embedder.digest} differs from the driver's {digest}"
            )
        self.emb = embedder
        self.digest = digest
        self.batch_size = batch_size
        self.texts: Any = None
        self.order: Any = None
        self.expected: Any = None
        self.table = table
        if table is not None and order is not None:  # blocks are ranges of table rows
            import ray

            from genreg.retrieval.texttable import open_texts

            self.texts = open_texts(self.objects, table, settings.home / "cache" / "ann" / "texts")
            self.order = ray.get(order[0])  # the rows in embedding order (8 bytes a row)
            self.expected = ray.get(order[1])  # their text digests (S32, 32 bytes a row)
        if hasattr(embedder, "model") and not hasattr(embedder, "session"):
            _ = embedder.model  # load the weights once, here
        elif hasattr(embedder, "session"):
            _ = embedder.session

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from genreg.retrieval.cache import KIND, encode_shard
        from genreg.store.objects import ensure_stored

        shards, counts, blocks = [], [], []
        for b, ds, ts in self._blocks(batch):  # every text checked against its digest once
            # the same call the in-process path makes for this block (genreg.retrieval.blocks)
            vecs = np.asarray(self.emb.encode(ts, batch_size=self.batch_size), dtype=np.float32)
            blob = encode_shard(ds, vecs)
            obj = self.objects.put_bytes(blob)
            self.derived.put(
                kind=KIND,
                scope=self.digest,
                key=obj,
                object_digest=obj,
                meta={"count": len(ds), "dim": int(vecs.shape[1])},
            )
            ensure_stored(self.objects, obj, blob)
            shards.append(obj)
            counts.append(len(ds))
            blocks.append(int(b))
        return {"block": blocks, "shard": shards, "count": counts}

    def _blocks(self, batch: dict[str, Any]) -> Iterator[tuple[Any, list[str], list[str]]]:
        """(block, digests, texts) of each block: sent inline, or a ``(lo, hi)`` range of
        the row order whose texts are read here from the stored chunk-text table; every text
        checked against the digest the driver expects for it (an :class:`IntegrityError`,
        naming the table row in table mode, before the block is embedded)."""
        from genreg.retrieval.chunking import text_digest

        if "lo" in batch:
            for b, lo, hi in zip(batch["block"], batch["lo"], batch["hi"]):
                rows = self.order[int(lo) : int(hi)]
                want = self.expected[int(lo) : int(hi)].tobytes()
                ts = [self.texts[int(r)] for r in rows]
                ds = [want[32 * i : 32 * (i + 1)].hex() for i in range(len(ts))]
                for r, d, t in zip(rows, ds, ts, strict=True):
                    if text_digest(t) != d:
                        raise IntegrityError(
                            f"ray actor: row {int(r)} of chunk-text table sha256:{self.table} "
                            f"does not match its chunk's digest sha256:{d}"
                        )
                yield b, ds, ts
            return
        for b, ds, ts in zip(batch["block"], batch["digests"], batch["texts"]):
            ds, ts = [str(d) for d in ds], [str(t) for t in ts]
            for d, t in zip(ds, ts, strict=True):
                if text_digest(t) != d:
                    raise IntegrityError(f"ray actor: chunk text does not match sha256:{d}")
            yield b, ds, ts


def embedder_spec(emb: Any) -> dict[str, Any] | None:
    """How an actor rebuilds a genreg embedder (by local path, so it is the same model)."""
    from genreg.retrieval.embedders import Embedder
    from genreg.retrieval.onnx_backend import OnnxEmbedder

    if isinstance(emb, (Embedder, OnnxEmbedder)):
        return {
            "model": str(emb.path),
            "backend": emb.backend,
            "quantize": emb.quantize,
            "precision": getattr(emb, "precision", "f32"),
            "device": emb.device,
        }
    return None


def cluster_address(options: RayOptions) -> str | None:
    """The cluster to connect to: ``options.address``, else ``RAY_ADDRESS``; None: local."""
    return options.address or os.environ.get("RAY_ADDRESS") or None


def preflight(options: RayOptions) -> Any:
    """Fail fast, before any chunking or writing: an unreachable ``host:port`` cluster
    address or a missing ``ray`` extra is one :class:`ConfigError` line. Returns ``ray``."""
    address = cluster_address(options)
    if address:
        check_address(address)
    return require_ray()


def embed_missing(
    settings: Settings,
    emb: Any,
    digests: list[str],
    texts: list[str],
    missing: list[str],
    options: RayOptions,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Embed the ``missing`` chunks on Ray (module doc); returns ``{"shards", "embedded",
    "seconds", "actors"}``. Raises :class:`ConfigError` for a missing extra or an unreachable
    cluster before anything is written."""
    preflight(options)  # before planning: one line, nothing written
    _prepare(emb)
    blocks = plan_blocks(digests, texts, set(missing), block_size(options.batch_size))
    total = sum(len(b["digests"]) for b in blocks)
    return _run_blocks(settings, emb, options, blocks, total, {}, progress)


def embed_rows(
    settings: Settings,
    emb: Any,
    table: str,
    rows: Any,
    lengths: Any,
    missing: Any,
    options: RayOptions,
    progress: Progress | None = None,
    *,
    digests: Any,
) -> dict[str, Any]:
    """:func:`embed_missing` for an on-disk index's build: the ``missing`` ones (a bool per
    row) of the distinct chunks at ``rows`` (first-seen order; ``lengths``: their texts'
    lengths in characters) of the stored chunk-text table ``table``
    (:mod:`genreg.retrieval.texttable`; ``digests``: every table row's text digest, ``S32``).
    The blocks :func:`plan_blocks` plans, but the driver holds no text: the missing rows in
    embedding order (8 bytes a row) and their expected digests (32 bytes a row) go once into
    Ray's object store, each block is a ``(lo, hi)`` range of them, and each actor reads its
    blocks' texts from the table in the registry's object store (copied once per worker
    when the store has no local files, such as S3) and checks each against its digest."""
    import numpy as np

    preflight(options)
    _prepare(emb)
    order, ranges = row_blocks(rows, lengths, missing, block_size(options.batch_size))
    if not ranges:
        return {"shards": 0, "embedded": 0, "seconds": 0.0, "actors": 0}
    expected = np.ascontiguousarray(np.asarray(digests, dtype="S32")[order])
    with ray_session(options) as ray:  # one session for the puts and the job
        # in a list: not resolved early
        extra = {"table": table, "order": [ray.put(order), ray.put(expected)]}
        return _run_blocks(settings, emb, options, ranges, len(order), extra, progress)


def _prepare(emb: Any) -> None:
    """Before any cluster starts: the refusals an actor would hit (a missing extra, bf16 on
    a CPU without it -- one line, nothing written), then the export / int8 quantization
    made (or fetched) once, here, into the registry, so the actors all fetch that one
    instead of each making its own."""
    if embedder_spec(emb) is not None and hasattr(emb, "prepare"):
        emb.prepare()


def _run_blocks(
    settings: Settings,
    emb: Any,
    options: RayOptions,
    blocks: list[dict[str, Any]],
    total: int,
    extra: dict[str, Any],
    progress: Progress | None,
) -> dict[str, Any]:
    """``blocks`` through a pool of :class:`EmbedActor` (``extra``: more constructor
    arguments); returns ``{"shards", "embedded", "seconds", "actors"}``."""
    if not blocks:
        return {"shards": 0, "embedded": 0, "seconds": 0.0, "actors": 0}
    spec = embedder_spec(emb)
    t0 = time.perf_counter()
    with ray_session(options) as ray:
        from ray.data import DataContext

        # Ray Data's INFO/WARNING lines (progress bars off, "execution finished") are noise
        # on a genreg command's stderr; genreg reports progress itself.
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ds = ray.data.from_items(blocks, override_num_blocks=len(blocks))
        threads = max(1, int(options.num_cpus)) if not options.num_gpus else None
        out = ds.map_batches(
            EmbedActor,
            fn_constructor_kwargs={
                "settings": settings,
                "spec": spec,
                "embedder": None if spec is not None else emb,
                "digest": emb.digest,
                "batch_size": options.batch_size,
                "threads": threads,
                **extra,
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=options.actors),
            num_cpus=options.num_cpus,
            num_gpus=options.num_gpus or None,
        )
        done = shards = 0
        if progress is not None:
            progress("embedding", 0, total)
        try:
            for row in out.iter_rows():
                done += int(row["count"])
                shards += 1
                if progress is not None:
                    progress("embedding", done, total)
        except Exception as exc:  # an actor's genreg error arrives wrapped by Ray Data
            found = _actor_error(exc)
            if found is None:
                raise
            cls, message = found
            raise cls(message) from None
    return {
        "shards": shards,
        "embedded": done,
        "seconds": round(time.perf_counter() - t0, 3),
        "actors": options.actors,
    }


_ACTOR_ERRORS: dict[str, type[GenregError]] = {
    "IntegrityError": IntegrityError,  # a text that does not match its digest...
    "ConfigError": ConfigError,  # ...or the model cannot run there (extra, CPU, compile)
}


def _actor_error(exc: BaseException) -> tuple[type[GenregError], str] | None:
    """The class and one-line message of the genreg error an actor raised
    (:data:`_ACTOR_ERRORS`), found in what Ray Data raised (the error itself, or the remote
    traceback text of a ``RayTaskError``)."""
    import re

    pattern = re.compile(r"genreg\.errors\.(" + "|".join(_ACTOR_ERRORS) + r"): ([^\n]+)")
    seen: set[int] = set()
    todo: list[Any] = [exc]
    found: tuple[type[GenregError], str] | None = None
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if type(e) in _ACTOR_ERRORS.values():
            return type(e), str(e)
        hits = pattern.findall(str(e))
        if hits and found is None:
            name, message = hits[-1]
            found = (_ACTOR_ERRORS[name], message.strip())
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return found


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """``ray``, connected: to the cluster this process is already connected to, else to
    ``options.address`` / ``RAY_ADDRESS``, else to a local cluster started (and shut down
    afterwards) with ``actors x num_cpus`` CPUs, a small object store and no dashboard."""
    ray = preflight(options)
    address = cluster_address(options)
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
            "configure_logging": True,
        }
        if address:
            kw["address"] = address
        else:
            kw["num_cpus"] = max(1, int(round(options.actors * options.num_cpus)))
            kw["num_gpus"] = int(options.actors * options.num_gpus) if options.num_gpus else 0
            kw["object_store_memory"] = LOCAL_OBJECT_STORE_BYTES
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        try:
            ray.init(**kw)
        except Exception as exc:  # ConnectionError, RuntimeError, ... from ray.init
            raise ConfigError(f"ray: cannot start or reach a cluster ({exc})") from None
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


# ---- index build units as Ray tasks ---------------------------------------------------------
def _unit_task(objects_url: str, trained: bytes, unit: Any) -> tuple[int, bytes]:
    """One build unit on a Ray worker: its vectors read from the cache shards in the object
    store (``objects_url``: S3 in a team setup), added to the trained index; returns the
    unit's index file (its part of the inverted lists) for the driver to merge."""
    import tempfile
    from pathlib import Path

    from genreg.retrieval.ann import build_unit
    from genreg.store.objects import open_object_store

    with tempfile.TemporaryDirectory(prefix="genreg-unit-") as d:
        path = Path(d) / "unit.faiss"
        added = build_unit(open_object_store(objects_url), trained, unit, str(path))
        return added, path.read_bytes()


def build_units(
    objects_url: str, trained: bytes, units: list[Any], paths: list[str], options: RayOptions
) -> Iterator[int]:
    """Build ``units`` as Ray tasks (``num_cpus`` each, as many at a time as the cluster
    fits); each finished unit's index file is written to its entry of ``paths`` (on the
    driver) as it arrives. Yields the vectors each unit added."""
    with ray_session(options) as ray:
        task = ray.remote(num_cpus=options.num_cpus)(_unit_task)
        trained_ref = ray.put(trained)  # once into the object store, not once per task
        pending = {
            task.remote(objects_url, trained_ref, u): p for u, p in zip(units, paths, strict=True)
        }
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                added, blob = ray.get(ref)
                with open(pending.pop(ref), "wb") as fh:
                    fh.write(blob)
                yield int(added)
