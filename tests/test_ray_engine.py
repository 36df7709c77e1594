"""The ``ray`` engine on a real local 2-worker Ray cluster with the real default model.

- the cache vectors and the index a Ray job builds equal the in-process path's bit for bit
  (the actors embed the in-process path's own blocks, so every model call sees the same
  batch; all-MiniLM-L6-v2 on CPU gives the same bits for the same batch whatever the thread
  count -- 1 per actor here, 2 in-process);
- a job killed half-way (SIGKILL of the driver) leaves only complete, digest-verified
  shards, each one whole planned block; running it again embeds only the missing chunks,
  writes no duplicate vector and ends with the same index;
- an unreachable ``RAY_ADDRESS`` and a missing ``ray`` extra are one clear line, exit 2, and
  nothing written -- from ``genreg corpus index --engine ray`` and from an eval config's
  ``embedding: {engine: ray, ray: {...}}``;
- an ``ivfpq`` index built with ``engine=ray`` (its build units as Ray tasks, merged by the
  driver) is byte-identical to the local build (trunk envelope and inverted lists).
- with a test model whose vectors depend on the batch (as all-MiniLM-L6-v2's do, by ~1e-7)
  and part of the corpus cached, the in-process build and Ray give the same vectors bit for
  bit, the same FAISS index (flat and ivfpq) and hits -- one block plan, one ``encode`` call
  per block in both (``genreg.retrieval.blocks``) -- where embedding the missing chunks in
  one call would not; a killed in-process build resumes to the same bits;
- an actor checks every text it reads from the chunk-text table against the digest the
  driver expects for that row: a corrupt table file is an IntegrityError naming the row.

One cluster (``num_cpus=2``, no dashboard, no usage stats) serves the whole module; the
corpus is a few thousand short one-chunk documents, embedded with ``batch_size=8`` (blocks of
256 texts, so a job is several shards).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genreg.retrieval.cache import KIND, EmbeddingCache, decode_shard
from genreg.retrieval.chunking import ChunkingSpec, iter_chunks, text_digest
from genreg.retrieval.index import decode_index
from genreg.retrieval.ray_engine import plan_blocks

N_DOCS = 2048
BATCH = 8  # texts per model call; a block (and shard) is BATCH x 32 = 256 texts
WORDS = "cell gene virus cancer drug trial dose blood brain heart lung risk protein mouse liver"
CLI = [sys.executable, "-c", "from genreg.cli import main; main()"]
REPO = Path(__file__).resolve().parent.parent


def _texts() -> list[str]:
    w = WORDS.split()
    return [
        f"n{i} " + " ".join(w[(i * 7 + j * 3) % len(w)] for j in range(1 + i % 6))
        for i in range(N_DOCS)
    ]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("raycorpus") / "c.jsonl"
    with p.open("w", encoding="utf-8") as fh:
        for i, t in enumerate(_texts()):
            fh.write(json.dumps({"_id": f"d{i}", "text": t}) + "\n")
    return p


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local 2-CPU Ray cluster for the module; yields its GCS address (a RAY_ADDRESS)."""
    import ray

    before = dict(os.environ)
    tmp = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit 107 bytes
    with pytest.MonkeyPatch.context() as mp:  # nothing leaks into the rest of the session
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            mp.setenv(name, os.environ.get(name, "1"))
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            object_store_memory=128 * 1024 * 1024,
            _temp_dir=tmp,
        )
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)
    for name in set(os.environ) - set(before):  # anything Ray's driver set (PYTHONBREAKPOINT)
        del os.environ[name]
    os.environ.update(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> dict[str, Any]:
    """The in-process build: its index info and every chunk's cached vector."""
    from genreg import Registry

    reg = Registry.init(tmp_path_factory.mktemp("rayref") / ".genreg")
    try:
        reg.snapshot("kb", corpus_file)
        info = reg.build_index("kb", chunking="none", batch_size=BATCH)
        _, meta = decode_index(reg.objects.get_bytes(info.object_digest))
        texts = json.loads(reg.objects.get_bytes(meta["texts"]))  # in the index's chunk order
        digests = [text_digest(t) for t in texts]
        emb = reg.load_embedder(None)
        vecs = EmbeddingCache(reg.objects, reg.derived, emb.digest, emb.dim).matrix(digests)
        return {
            "info": info,
            "texts": texts,
            "digests": digests,
            "vectors": vecs,
            "model": emb.digest,
        }
    finally:
        reg.close()


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def _shards(registry: Any, model: str) -> list[tuple[Any, list[str]]]:
    """Every shard row with its chunk digests, each object read back digest-verified."""
    out = []
    for row in registry.derived.list(KIND, scope=model):
        data = registry.objects.get_bytes(row.object_digest, verify=True)
        ds, vecs = decode_shard(data, row.object_digest)
        assert row.meta["count"] == len(ds) == len(vecs)
        out.append((row, [d.hex() for d in ds]))
    return out


def test_ray_build_equals_in_process_bit_for_bit(
    registry: Any, corpus_file: Path, ray_cluster: str, reference: dict[str, Any]
) -> None:
    registry.snapshot("kb", corpus_file)
    info = registry.build_index(
        "kb", chunking="none", batch_size=BATCH, engine="ray", ray={"actors": 2}
    )
    ref = reference["info"]
    assert (info.engine, info.embedded, info.n_chunks) == ("ray", N_DOCS, N_DOCS)
    assert info.key == ref.key
    emb = registry.load_embedder(None)
    vecs = EmbeddingCache(registry.objects, registry.derived, emb.digest, emb.dim).matrix(
        reference["digests"]
    )
    assert np.array_equal(_bits(vecs), _bits(reference["vectors"]))
    assert info.object_digest == ref.object_digest  # the FAISS index bytes, byte for byte
    # one shard per planned block, no chunk twice
    shards = _shards(registry, emb.digest)
    assert len(shards) == -(-N_DOCS // (BATCH * 32))
    seen = [d for _, ds in shards for d in ds]
    assert len(seen) == len(set(seen)) == N_DOCS
    # a second run reuses the index and starts no job
    again = registry.build_index("kb", chunking="none", batch_size=BATCH, engine="ray")
    assert again.reused and again.embedded == 0


def _alive_embed_actors(job: str | None) -> int:
    from ray._private import state

    return sum(
        1
        for a in state.actors(actor_state_name="ALIVE").values()
        if "EmbedActor" in str(a.get("ActorClassName", "")) and a.get("JobID") != job
    )


def test_killed_job_resumes_with_only_missing_chunks(
    registry: Any,
    corpus_file: Path,
    ray_cluster: str,
    reference: dict[str, Any],
    tmp_path: Path,
) -> None:
    import ray

    registry.snapshot("kb", corpus_file)
    model = reference["model"]
    env = {**os.environ, "RAY_ADDRESS": ray_cluster}
    log = (tmp_path / "job.log").open("w+")
    job = subprocess.Popen(
        [
            *CLI,
            "corpus",
            "index",
            "kb",
            "-c",
            "none",
            "--engine",
            "ray",
            "--actors",
            "2",
            "--batch-size",
            str(BATCH),
            "--json",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    digests = reference["digests"]
    blocks = plan_blocks(digests, reference["texts"], set(digests), BATCH * 32)
    deadline = time.monotonic() + 120
    while len(registry.derived.list(KIND, scope=model)) < 2:
        if job.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"job ended (rc {job.returncode}) before it was killed:\n{log.read()}")
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)  # the driver dies mid-job; Ray then kills its actors
    assert job.wait(30) == -signal.SIGKILL
    me = ray.get_runtime_context().get_job_id()
    deadline = time.monotonic() + 30
    while _alive_embed_actors(me) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive_embed_actors(me) == 0

    # only complete, digest-verified shards, each exactly one planned block
    shards = _shards(registry, model)
    planned = {frozenset(b["digests"]) for b in blocks}
    assert all(frozenset(ds) in planned for _, ds in shards)
    cached = {d for _, ds in shards for d in ds}
    assert 0 < len(cached) < N_DOCS, "the kill should land mid-job"
    assert registry.derived.list("index") == []

    # run it again: only the missing chunks are embedded, nothing twice, same index
    info = registry.build_index("kb", chunking="none", batch_size=BATCH, engine="ray")
    assert info.embedded == N_DOCS - len(cached)
    after = _shards(registry, model)
    assert {r.key for r, _ in shards} <= {r.key for r, _ in after}
    seen = [d for _, ds in after for d in ds]
    assert len(seen) == len(set(seen)) == N_DOCS
    emb = registry.load_embedder(None)
    vecs = EmbeddingCache(registry.objects, registry.derived, model, emb.dim).matrix(
        reference["digests"]
    )
    assert np.array_equal(_bits(vecs), _bits(reference["vectors"]))
    assert info.object_digest == reference["info"].object_digest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nothing_written(registry: Any) -> None:
    assert registry.derived.list("index") == []
    assert registry.derived.list(KIND) == []


def test_unreachable_ray_address_is_one_line_and_writes_nothing(
    registry: Any, corpus_file: Path, tmp_path: Path
) -> None:
    registry.snapshot("kb", corpus_file)
    port = _free_port()
    for address, line in (
        (
            f"127.0.0.1:{port}",
            f"error: RAY_ADDRESS 127.0.0.1:{port}: no Ray cluster answers there "
            "(Connection refused)",
        ),
        (
            f"ray://127.0.0.1:{port}",
            f"error: RAY_ADDRESS ray://127.0.0.1:{port}: no Ray cluster answers there "
            "(Connection refused)",
        ),
        (
            "cluster.example",
            "error: RAY_ADDRESS 'cluster.example': expected host:port, ray://host:port or auto",
        ),
    ):
        p = subprocess.run(
            [*CLI, "corpus", "index", "kb", "-c", "none", "--engine", "ray"],
            env={**os.environ, "RAY_ADDRESS": address},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().splitlines() == [line]
        _nothing_written(registry)


def test_missing_ray_extra_is_one_line_and_writes_nothing(registry: Any, corpus_file: Path) -> None:
    registry.snapshot("kb", corpus_file)
    code = "import sys; sys.modules['ray'] = None\nfrom genreg.cli import main; main()\n"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    p = subprocess.run(
        [sys.executable, "-c", code, "corpus", "index", "kb", "-c", "none", "--engine", "ray"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: engine ray needs the ray extra: pip install 'genreg[ray]'"
    ]
    _nothing_written(registry)


@pytest.mark.skipif(
    not (REPO / "examples" / "corpus").is_dir(), reason="example corpus not present"
)
def test_eval_config_engine_ray_is_wired_and_an_unreachable_cluster_writes_nothing(
    registry: Any, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sub in ("registry", "evals/sets"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    registry.push([tmp_path / "registry", tmp_path / "evals"])
    registry.snapshot("docs", REPO / "examples" / "corpus")
    port = _free_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    r = cli(
        "eval",
        "run",
        REPO / "evals" / "baseline.yaml",
        "--set",
        "embedding={engine: ray, ray: {actors: 1, batch_size: 8}}",
        "--quiet",
    )
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [
        f"error: RAY_ADDRESS 127.0.0.1:{port}: no Ray cluster answers there (Connection refused)"
    ]
    _nothing_written(registry)
    assert registry.list_runs() == []

    # no cluster address: the config's ray options reach the engine, parsed (captured where
    # the indexing service looks embed_missing up; no cluster is started)
    import genreg.retrieval.ray_engine as ray_engine
    from genreg.errors import ConfigError

    monkeypatch.delenv("RAY_ADDRESS")
    got: list[Any] = []

    def capture(
        settings: Any,
        emb: Any,
        digests: Any,
        texts: Any,
        missing: Any,
        options: Any,
        progress: Any = None,
    ) -> Any:
        got.append((options, len(missing)))
        raise ConfigError("captured")

    monkeypatch.setattr(ray_engine, "embed_missing", capture)
    r = cli(
        "eval",
        "run",
        REPO / "evals" / "baseline.yaml",
        "--set",
        "embedding={engine: ray, ray: {actors: 3, batch_size: 5, num_cpus: 0.5}}",
        "--quiet",
    )
    assert r.output.strip().splitlines() == ["error: captured"], r.output
    assert len(got) == 1 and got[0][1] > 0
    assert got[0][0] == ray_engine.RayOptions(actors=3, num_cpus=0.5, batch_size=5)


class _TableEmbedder:
    """``doc N`` -> a fixed seeded unit vector (no model: the index build is under test)."""

    tokenizer = None
    name, dim, digest = "table-32", 32, "sha256:" + "ef" * 32

    def __init__(self) -> None:
        rng = np.random.default_rng(5)
        c = rng.standard_normal((24, 32)).astype(np.float32)
        x = c[rng.integers(0, 24, 4000)] + 0.6 * rng.standard_normal((4000, 32)).astype(np.float32)
        self.table = x / np.linalg.norm(x, axis=1, keepdims=True)

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
        return self.table[[int(t.split()[-1]) for t in texts]]


def test_ann_index_units_built_as_ray_tasks_merge_byte_identical_to_local(
    tmp_path: Path, ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine=ray: the ivfpq build units run as Ray tasks (each reading its cache shards from
    the object store, returning its part of the inverted lists), merged by the driver: the
    stored index (trunk envelope, inverted lists) is byte-identical to the local build."""
    from genreg import Registry
    from genreg.retrieval import ann, ray_engine

    src = tmp_path / "c.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for i in range(3000):
            fh.write(json.dumps({"_id": f"d{i}", "text": f"doc {i}"}) + "\n")
    monkeypatch.setattr(ann, "UNIT_ROWS", 700)  # several units (and Ray tasks)
    ran: list[int] = []
    real = ray_engine.build_units

    def counting(url, trained, units, paths, options):  # type: ignore[no-untyped-def]
        for added in real(url, trained, units, paths, options):
            ran.append(added)
            yield added

    monkeypatch.setattr(ray_engine, "build_units", counting)
    spec = {"type": "ivfpq", "nlist": 16, "m": 8, "nprobe": 4, "train_size": 1000}
    built = {}
    for engine in ("local", "ray"):
        reg = Registry.init(tmp_path / engine / ".genreg")
        try:
            reg.snapshot("kb", src)
            # vectors cached first, 600 a shard (a unit is whole shards): the same shards in
            # both homes, and only the index build is on Ray here
            emb = _TableEmbedder()
            docs = list(iter_chunks(reg.iter_documents("kb"), ChunkingSpec()))
            cache = EmbeddingCache(reg.objects, reg.derived, emb.digest, emb.dim)
            for lo in range(0, len(docs), 600):
                part = docs[lo : lo + 600]
                cache.add([c.digest for c in part], emb.encode([c.text for c in part]))
            info = reg.build_index(
                "kb",
                model=_TableEmbedder(),
                chunking="none",
                index=spec,
                engine=engine,
                ray={"actors": 2, "address": ray_cluster},
            )
            row = reg.derived.get(info.key)
            built[engine] = (
                info.key,
                reg.objects.get_bytes(info.object_digest),
                reg.objects.get_bytes(row.meta["lists"]),
            )
            r = reg.open_retriever("kb", model=_TableEmbedder(), chunking="none", index=spec)
            hits = r.search_vectors(_TableEmbedder().table[:5], 3)
            assert [h[0].doc_id for h in hits] == [f"d{i}" for i in range(5)]
        finally:
            reg.close()
    assert sorted(ran) == [600, 1200, 1200]  # whole 600-row shards, >= 700 a unit: 3 Ray tasks
    assert built["ray"] == built["local"]


def test_ann_build_on_ray_reads_texts_from_the_stored_table_and_equals_in_process(
    tmp_path: Path, ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine=ray, an ivfpq index, its chunks not cached: the driver sends the actors no text
    -- each block is a (lo, hi) range of the row order, whose texts the actor reads from the
    chunk-text table stored first -- and the index key, the cache vectors, the row tables, the
    FAISS index (trunk and inverted lists, byte for byte) and the hits equal the in-process
    build's (repeated texts embedded once). With one block
    cached already (as a killed job leaves it) the job embeds exactly the other planned
    blocks, one shard each."""
    from genreg import Registry
    from genreg.retrieval import ray_engine
    from genreg.retrieval.index import decode_envelope

    src = tmp_path / "c.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for i in range(3000):  # doc 2500.. repeat earlier texts: distinct chunks only
            fh.write(json.dumps({"_id": f"d{i}", "text": f"doc {i % 2500}"}) + "\n")
    sent: list[dict[str, Any]] = []
    real = ray_engine._run_blocks

    def recording(settings, emb, options, blocks, total, extra, progress):  # type: ignore[no-untyped-def]
        sent.extend(blocks)
        return real(settings, emb, options, blocks, total, extra, progress)

    monkeypatch.setattr(ray_engine, "_run_blocks", recording)
    # the actors unpickle this module's _TableEmbedder: send it by value (no tests/ on the
    # workers' path)
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spec = {"type": "ivfpq", "nlist": 16, "m": 8, "nprobe": 4, "train_size": 1000}
    distinct = [f"doc {i}" for i in range(2500)]
    digests = [text_digest(t) for t in distinct]
    blocks = plan_blocks(digests, distinct, set(digests), BATCH * 32)  # the whole job's
    built = {}
    for engine in ("local", "ray"):
        reg = Registry.init(tmp_path / engine / ".genreg")
        try:
            reg.snapshot("kb", src)
            emb = _TableEmbedder()
            cache = EmbeddingCache(reg.objects, reg.derived, emb.digest, emb.dim)
            cache.add(blocks[1]["digests"], emb.encode(blocks[1]["texts"]))  # a killed job's
            info = reg.build_index(
                "kb",
                model=_TableEmbedder(),
                chunking="none",
                index=spec,
                batch_size=BATCH,
                engine=engine,
                ray={"actors": 2, "address": ray_cluster},
            )
            assert info.embedded == 2500 - BATCH * 32 and info.n_chunks == 3000
            row_digests = [text_digest(f"doc {i % 2500}") for i in range(3000)]
            vecs = EmbeddingCache(reg.objects, reg.derived, emb.digest, emb.dim).matrix(row_digests)
            if engine == "ray":  # each new shard one whole planned block: as a re-run's
                shards = {frozenset(ds) for _, ds in _shards(reg, emb.digest)}
                assert shards == {frozenset(b["digests"]) for b in blocks}
            meta = reg.derived.get(info.key).meta
            r = reg.open_retriever("kb", model=_TableEmbedder(), chunking="none", index=spec)
            hits = r.search_vectors(emb.table[:20], 3)
            built[engine] = (
                info.key,
                _bits(vecs).tobytes(),
                # the shards differ (Ray: one a block), so the row map does (where each
                # row's vector is); the FAISS index itself -- trunk and lists -- does not
                [meta[t] for t in ("text_table", "rowids", "digests", "lists")],
                bytes(decode_envelope(reg.objects.get_bytes(info.object_digest))[1]),
                [[(h.doc_id, h.score) for h in q] for q in hits],
            )
        finally:
            reg.close()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert built["ray"] == built["local"]
    assert sent and all(set(b) == {"block", "lo", "hi"} for b in sent)  # no text, no digest
    assert sum(b["hi"] - b["lo"] for b in sent) == 2500 - BATCH * 32
    assert [b["block"] for b in sent] == [b["block"] for b in blocks if b["block"] != 1]


class _BatchEmbedder:
    """A model whose vectors depend on the batch, as all-MiniLM-L6-v2's do (padding to the
    batch's longest text): ``doc N ...`` -> a seeded unit vector for N, plus a small term
    seeded by the length of the longest text in the same batch (texts sorted longest first
    and cut every ``batch_size``, as sentence-transformers does inside one ``encode`` call),
    normalised. A different batching gives different bits."""

    tokenizer = None
    name, dim, digest = "batchy-32", 32, "sha256:" + "ab" * 32

    def __init__(self) -> None:
        rng = np.random.default_rng(11)
        x = rng.standard_normal((4000, 32)).astype(np.float32)
        self.table = x / np.linalg.norm(x, axis=1, keepdims=True)

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for lo in range(0, len(order), max(batch_size, 1)):
            idx = order[lo : lo + max(batch_size, 1)]
            longest = max(len(texts[i]) for i in idx)
            pad = np.random.default_rng(longest).standard_normal(self.dim).astype(np.float32)
            v = self.table[[int(texts[i].split()[1]) for i in idx]] + 1e-3 * pad
            out[idx] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out


def _batchy_corpus(path: Path, n: int = 3000) -> list[str]:
    """Texts of many lengths (so the blocks' order matters), a few repeated."""
    texts = [f"doc {i % 2800} " + "w" * (1 + (i % 2800) * 37 % 53) for i in range(n)]
    with path.open("w", encoding="utf-8") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"_id": f"d{i}", "text": t}) + "\n")
    return texts


@pytest.mark.parametrize("spec", ["flat", "ivfpq"])
def test_batch_sensitive_model_gives_the_same_bits_in_process_and_on_ray_when_partly_cached(
    tmp_path: Path, ray_cluster: str, spec: str
) -> None:
    """A model whose vectors depend on the batch, some chunks cached already (one planned
    block and a few scattered chunks: a new snapshot version's case) and several blocks
    missing: the in-process build embeds the same blocks with the same calls as the Ray
    actors, so the cache vectors are equal bit for bit, and so are the FAISS index (flat:
    the whole index object; ivfpq: trunk and inverted lists) and the hits. Embedding the
    missing chunks in one call (the in-process path before the shared block plan) would
    have given different bits."""
    from ray import cloudpickle

    from genreg import Registry
    from genreg.retrieval.index import decode_envelope

    index: Any = (
        "flat"
        if spec == "flat"
        else {"type": "ivfpq", "nlist": 16, "m": 8, "nprobe": 4, "train_size": 1000}
    )
    _batchy_corpus(tmp_path / "c.jsonl")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    built = {}
    try:
        for engine in ("local", "ray"):
            reg = Registry.init(tmp_path / engine / ".genreg")
            try:
                reg.snapshot("kb", tmp_path / "c.jsonl")
                # the snapshot's distinct chunks, first-seen order
                chunks = iter_chunks(reg.iter_documents("kb"), ChunkingSpec())
                distinct = list(dict.fromkeys(c.text for c in chunks))
                digests = [text_digest(t) for t in distinct]
                blocks = plan_blocks(digests, distinct, set(digests), BATCH * 32)
                scattered = [7, 123, 999, 2001, 2777]
                pre_d = blocks[2]["digests"] + [digests[i] for i in scattered]
                pre_t = blocks[2]["texts"] + [distinct[i] for i in scattered]
                missing = [d for d in digests if d not in set(pre_d)]
                assert len(plan_blocks(digests, distinct, set(missing), BATCH * 32)) > 5
                emb = _BatchEmbedder()
                cache = EmbeddingCache(reg.objects, reg.derived, emb.digest, emb.dim)
                cache.add(pre_d, emb.encode(pre_t, batch_size=BATCH))
                info = reg.build_index(
                    "kb",
                    model=_BatchEmbedder(),
                    chunking="none",
                    index=index,
                    batch_size=BATCH,
                    engine=engine,
                    ray={"actors": 2, "address": ray_cluster},
                )
                assert info.embedded == len(missing)
                cache = EmbeddingCache(reg.objects, reg.derived, emb.digest, emb.dim)
                vecs = cache.matrix(digests)
                r = reg.open_retriever("kb", model=_BatchEmbedder(), chunking="none", index=index)
                hits = r.search_vectors(vecs[::97], 3)
                data = reg.objects.get_bytes(info.object_digest)
                if spec == "flat":  # the index object (vectors, texts, ids) as stored
                    faiss_part: Any = data
                else:
                    meta = reg.derived.get(info.key).meta
                    faiss_part = (
                        bytes(decode_envelope(data)[1]),
                        reg.objects.get_bytes(meta["lists"]),
                    )
                built[engine] = (
                    info.key,
                    _bits(vecs).tobytes(),
                    faiss_part,
                    [[(h.doc_id, h.score) for h in q] for q in hits],
                )
            finally:
                reg.close()
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert built["ray"] == built["local"]
    # the old in-process batching (all missing texts in one call) gives other bits
    at = {d: i for i, d in enumerate(digests)}
    one_call = _BatchEmbedder().encode([distinct[at[d]] for d in missing], batch_size=BATCH)
    got = np.frombuffer(built["local"][1], dtype=np.uint32).reshape(len(digests), -1)
    assert not np.array_equal(_bits(one_call), got[[at[d] for d in missing]])


def test_actor_checks_each_text_it_reads_against_the_drivers_digest(
    tmp_path: Path, ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine=ray, ivfpq: a chunk-text table whose file is corrupt (one text changed, same
    length: its offsets still parse) is an IntegrityError naming the row, and nothing of
    that row's block is cached."""
    from ray import cloudpickle

    from genreg import Registry
    from genreg.errors import IntegrityError
    from genreg.retrieval import ray_engine

    texts = _batchy_corpus(tmp_path / "c.jsonl")
    bad_row = 1500  # document d1500's text (its only occurrence)
    assert texts.count(texts[bad_row]) == 1
    real = ray_engine.embed_rows

    def corrupting(settings, emb, table, *a, **k):  # type: ignore[no-untyped-def]
        path = reg.objects.local_path(table)
        assert path is not None
        data = bytearray(path.read_bytes())
        at = data.index(texts[bad_row].encode()) + len(f"doc {bad_row} ")
        assert data[at : at + 1] == b"w"
        data[at : at + 1] = b"v"
        path.chmod(0o644)
        path.write_bytes(bytes(data))
        return real(settings, emb, table, *a, **k)

    monkeypatch.setattr(ray_engine, "embed_rows", corrupting)
    spec = {"type": "ivfpq", "nlist": 16, "m": 8, "nprobe": 4, "train_size": 1000}
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    reg = Registry.init(tmp_path / ".genreg")
    try:
        reg.snapshot("kb", tmp_path / "c.jsonl")
        rows = [c.text for c in iter_chunks(reg.iter_documents("kb"), ChunkingSpec())]
        row = rows.index(texts[bad_row])  # the table's row (documents in the snapshot's order)
        with pytest.raises(IntegrityError, match=rf"^ray actor: row {row} of chunk-text table"):
            reg.build_index(
                "kb",
                model=_BatchEmbedder(),
                chunking="none",
                index=spec,
                batch_size=BATCH,
                engine="ray",
                ray={"actors": 2, "address": ray_cluster},
            )
        distinct = list(dict.fromkeys(rows))
        digests = [text_digest(t) for t in distinct]
        block = next(
            b["digests"]
            for b in plan_blocks(digests, distinct, set(digests), BATCH * 32)
            if text_digest(texts[bad_row]) in b["digests"]
        )
        cached = {d for _, ds in _shards(reg, _BatchEmbedder.digest) for d in ds}
        assert not cached & set(block)
    finally:
        reg.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


class _Killed(Exception):
    pass


def test_killed_in_process_build_resumes_with_the_planned_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process (no Ray): a build that dies half-way has cached only whole blocks (shards
    of at most SHARD_MAX vectors, whole blocks each), and its re-run embeds the remaining
    planned blocks with the same calls: the vectors equal an uninterrupted build's bit for
    bit, with a model whose vectors depend on the batch."""
    from genreg import Registry
    from genreg.retrieval import cache as cache_mod

    monkeypatch.setattr(cache_mod, "SHARD_MAX", 600)  # a shard: 2 blocks of 256
    _batchy_corpus(tmp_path / "c.jsonl")

    class Dying(_BatchEmbedder):
        calls = 0

        def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
            Dying.calls += 1
            if Dying.calls == 6:  # the 6th block: 2 shards (4 blocks) written, the 5th lost
                raise _Killed
            return super().encode(texts, batch_size, progress=progress)

    got = {}
    for run in ("uninterrupted", "resumed"):
        reg = Registry.init(tmp_path / run / ".genreg")
        try:
            reg.snapshot("kb", tmp_path / "c.jsonl")
            if run == "resumed":
                with pytest.raises(_Killed):
                    reg.build_index("kb", model=Dying(), chunking="none", batch_size=BATCH)
                shards = _shards(reg, _BatchEmbedder.digest)
                assert sorted(r.meta["count"] for r, _ in shards) == [512, 512]
            info = reg.build_index("kb", model=_BatchEmbedder(), chunking="none", batch_size=BATCH)
            chunks = list(iter_chunks(reg.iter_documents("kb"), ChunkingSpec()))
            assert info.embedded == len({c.digest for c in chunks}) - (
                4 * BATCH * 32 if run == "resumed" else 0
            )
            emb = _BatchEmbedder()
            cache = EmbeddingCache(reg.objects, reg.derived, emb.digest, emb.dim)
            vecs = cache.matrix([c.digest for c in chunks])
            got[run] = (_bits(vecs).tobytes(), info.key, info.object_digest)
        finally:
            reg.close()
    assert got["resumed"] == got["uninterrupted"]


def test_openvino_int8_on_ray_is_quantized_once_by_the_driver_and_matches_in_process(
    registry: Any, corpus_file: Path, ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver makes (or fetches) the NNCF model before the job (so the actors find that
    one object instead of each quantizing); the actors' vectors match the in-process ones to
    cosine 0.9999 (OpenVINO does not promise the same bits for 1 and 2 threads)."""
    from genreg.retrieval.openvino_backend import KIND as IR_KIND
    from genreg.retrieval.openvino_backend import OpenVinoEmbedder

    prepared: list[str] = []
    real = OpenVinoEmbedder.prepare

    def spy(self: Any) -> Path:
        prepared.append(self.digest)
        return real(self)

    monkeypatch.setattr(OpenVinoEmbedder, "prepare", spy)
    spec = {"backend": "openvino", "quantize": "int8"}
    registry.snapshot("kb", corpus_file)
    info = registry.build_index(
        "kb", model=spec, chunking="none", batch_size=BATCH, engine="ray", ray={"actors": 2}
    )
    emb = registry.load_embedder(spec)
    assert prepared == [emb.digest] and info.embedded == N_DOCS
    assert [r.key for r in registry.derived.list(IR_KIND)] == [emb.ir_digest]
    texts = _texts()
    digests = [text_digest(t) for t in texts]
    got = EmbeddingCache(registry.objects, registry.derived, emb.digest, emb.dim).matrix(digests)
    want = emb.encode(texts, batch_size=BATCH)
    assert float((got * want).sum(1).min()) > 0.9999


def test_a_model_the_driver_cannot_run_is_refused_before_the_job_and_writes_nothing(
    registry: Any, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bf16 on a CPU without it: the driver's prepare() refuses in one line, before any
    export is written or any cluster is started (no RAY_ADDRESS: it would start one)."""
    from genreg.errors import ConfigError
    from genreg.retrieval import onnx_backend, openvino_backend

    monkeypatch.setattr(openvino_backend, "cpu_has_bf16", lambda core: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    registry.snapshot("kb", corpus_file)
    with pytest.raises(ConfigError) as e:
        registry.build_index(
            "kb",
            model={"backend": "openvino", "precision": "bf16"},
            chunking="none",
            engine="ray",
            ray={"actors": 2},
        )
    assert e.value.message.startswith("embedding.precision: bf16 needs a CPU with bfloat16")
    assert registry.derived.list(onnx_backend.KIND) == [] and registry.derived.list("index") == []


def test_an_actors_config_error_reaches_the_user_as_its_one_line() -> None:
    from genreg.errors import ConfigError
    from genreg.retrieval.ray_engine import _actor_error

    remote = RuntimeError(
        "ray::MapWorker(MapBatches(EmbedActor)).__init__() (pid=1, ip=127.0.0.1)\n"
        "  File ...\ngenreg.errors.ConfigError: model /m: OpenVINO cannot compile x.onnx (E: y)\n"
    )
    wrapped = RuntimeError("Ray Data failed")
    wrapped.__cause__ = remote
    assert _actor_error(wrapped) == (ConfigError, "model /m: OpenVINO cannot compile x.onnx (E: y)")
    assert _actor_error(RuntimeError("something else")) is None
