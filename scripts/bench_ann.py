#!/usr/bin/env python
"""Benchmark: compressed on-disk ``ivfpq`` (with and without ``refine``) vs a flat index over
the same cached vectors -- build time, peak RSS of build and of search (each in its own
process under ``/usr/bin/time -v``), index size, per-query latency p50/p99 and recall@10
against exact search. Everything is measured side by side in one run.

    flock /work/team/bench.lock .venv/bin/python scripts/bench_ann.py --n 1000000
    flock /work/team/bench.lock .venv/bin/python scripts/bench_ann.py --scifact   # real check
    flock /work/team/bench.lock .venv/bin/python scripts/bench_ann.py --ray-build # units on Ray
    flock /work/team/bench.lock .venv/bin/python scripts/bench_ann.py --exact-cache

**Synthetic data** (``--n``): deterministic, clustered, L2-normalised 384-d float32 vectors
(all-MiniLM-L6-v2's dimension) with a low intrinsic dimension, as sentence embeddings have,
generated in blocks of 50,000 from ``numpy.random.default_rng([seed, 0, block])``: a 64-d latent
space with a decaying spectrum (scale of latent axis i: i^-0.5), 64 topics, 16 sub-topics per
topic (``topic + 0.5 * latent noise``: 1,024 sub-topics); each vector is a random sub-topic
plus ``0.5 * latent noise``, mapped into 384-d by a fixed random orthonormal basis, plus
isotropic 384-d noise of 20% of its norm, then normalised. Uniform random vectors would be the
wrong test: every neighbour is almost equally far and no ANN index (nor any retriever) is
meaningful on them. Queries: ``--queries`` more vectors drawn the same way (stream 1 instead
of 0: the same topics), not in the corpus. Chunk "texts" are ``synthetic N`` (their sha256 is the row's digest).

**What runs**, each phase a separate process (``--phase``) so peak RSS is that phase's alone:

1. ``prepare``: a registry home in ``--work`` whose embedding cache holds the vectors
   (``EmbeddingCache.add``, 50,000-vector shards, as genreg writes them), the query vectors and
   the exact top-10 of every query (streamed over the shards: ``ann.ExactSearch``).
2. ``flat``: the flat baseline at its smallest -- an ``IndexFlatIP`` filled block by block
   from the cache shards (never a second copy of the matrix; FAISS's growing buffer still
   peaks near 2x the index while it is re-allocated), written to a file. genreg's own flat
   path also holds the decoded matrix and the serialised index while building: more than
   this, so the build ratio is conservative.
   ``flat_search``: that file read back (``faiss.read_index``: the index, once) and searched
   query by query -- the search-side baseline.
3. ``build``: the ivfpq build exactly as ``genreg corpus index`` does it: ``ann.plan_rows``
   (digest-only pass), ``ann.sample_positions`` + ``ann.gather`` + ``ann.train``,
   ``ann.build_ondisk`` (streamed units, merged into on-disk inverted lists; one process).
4. ``search``: ``ann.open_ondisk`` (memory-mapped lists), ``apply_search_params``, and for
   ``refine > 0`` ``ann.Refined`` over ``ann.VectorReader`` (exact re-ranking from the cache
   shards, rows located by the stored row map) -- what ``open_retriever`` builds -- then every
   query searched alone (k=10, the fetch of an unchunked eval at k=10) and each hit mapped to
   its document id and chunk number, timed per query, for each ``--settings`` entry. The row
   ids (synthetic: 4 chunks a document, ids ``doc-NNNNNNN``) come from the index's row-id
   table, read per hit with ``pread`` (``genreg.retrieval.rowids``). The phase also reports its
   resident set at the end split into anonymous memory and file-backed pages (the mapped
   inverted lists, shared libraries) from ``/proc/self/status``.
   ``search_json``: the same with the row ids as an index stored them before that table: the
   meta's ``doc_ids``/``chunk_index`` JSON lists parsed into Python lists (and the set of doc
   ids the retriever then built) -- the "before" figure, side by side.

``--name NAME`` keeps the index phases (``build``, ``search``, ``search_json``) apart: their
index, row map and results go to ``--work/NAME`` (the shared inputs linked from ``--work``),
so another index type is measured beside the default one without touching its files and the
flat figures are reused, e.g. ``--name ivf_hnsw --phases build,search --spec '{"type":
"ivf_hnsw"}'``. The summary labels the index by its type.

``--ray-build``: the index built twice, side by side, each in its own process -- in-process
(``build``) and with its build units as Ray tasks (``build_ray``: ``engine=ray``,
``ray_engine.build_units``) on a local cluster of ``--ray-workers`` 1-CPU workers started,
workers up, before the clock -- in ``--work/NAME-inproc`` and ``--work/NAME-ray`` (NAME
default ``ray-build``); it prints both build times and whether the lists files (and the
default ``--work/ivfpq``'s) are byte-identical, and fails when they are not. Peak RSS is the
driver's: Ray's workers are not its children.

``--exact-cache``: ``ann_recall@k``'s exact reference, each step its own process in
``--work/NAME`` (default ``exact-cache``) -- ``exact``: ``ann.ExactSearch`` over every cached
vector (what every eval run paid); ``exact_cached`` twice: ``ann.ExactCache`` (the answers
stored in the registry of ``--work``; the first run stores them when they are not there yet,
the second is an unchanged re-run), checked against ``gt.npy`` and ``exact``'s scores.

Not measured here: query embedding (the model).
The load average is printed at the start and end of each phase (2 cores shared: figures
taken with it above 2.5 are "under load").

**SciFact** (``--scifact``): the real check through ``genreg eval run`` (all 5,183 abstracts,
300 test queries, default model): the flat index vs ``ivfpq`` (``--scifact-index``) with
``refine`` 0, 4 and 16, and 4x the ``nprobe`` at ``refine`` 16 -- nDCG@10, ``ann_recall@10``, per-query search latency p50/p99 (query
embedding included: cached, as the abstracts are, by a warm-up eval that is not reported).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
DIM = 384
BLOCK = 50_000
MODEL = "sha256:" + hashlib.sha256(b"bench_ann synthetic vectors").hexdigest()
K = 10
DEFAULT_SETTINGS = (
    "nprobe=1,refine=0;nprobe=4,refine=0;nprobe=32,refine=0;nprobe=96,refine=0;nprobe=32,refine=4;nprobe=32,refine=8;"
    "nprobe=32,refine=16;nprobe=64,refine=16;nprobe=64,refine=32"
)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


LATENT = 64  # intrinsic dimension of the synthetic embeddings


def synthetic(n: int, seed: int, stream: int = 0) -> Iterator[tuple[list[str], Any]]:
    """Yields (digests, vectors) blocks of the synthetic corpus (see the module docstring)."""
    import numpy as np

    top = np.random.default_rng([seed, 10**6])
    basis, _ = np.linalg.qr(top.standard_normal((DIM, LATENT)))  # 384 x 64, orthonormal
    basis = basis.T.astype(np.float32)
    scale = (np.arange(1, LATENT + 1) ** -0.5).astype(np.float32)  # decaying spectrum

    def latent(rng: Any, count: int) -> Any:
        return rng.standard_normal((count, LATENT)).astype(np.float32) * scale

    topics = latent(top, 64)
    subtopics = topics[np.repeat(np.arange(64), 16)] + 0.5 * latent(top, 1024)
    for b, lo in enumerate(range(0, n, BLOCK)):
        rng = np.random.default_rng([seed, stream, b])
        count = min(BLOCK, n - lo)
        z = subtopics[rng.integers(0, 1024, count)] + 0.5 * latent(rng, count)
        x = z @ basis
        noise = rng.standard_normal((count, DIM)).astype(np.float32)
        x += 0.2 * np.linalg.norm(x, axis=1, keepdims=True) * noise / np.sqrt(DIM)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        digests = [hashlib.sha256(f"synthetic {lo + i}".encode()).hexdigest() for i in range(count)]
        yield digests, x.astype(np.float32)


def open_reg(work: Path):
    from genreg import Registry

    home = work / "home"
    return Registry(home) if home.exists() else Registry.init(home)


def rows_of(work: Path):
    import numpy as np

    return np.fromfile(work / "rows.bin", dtype="S32")


def exact_search(reg, rows):
    from genreg.retrieval import ann

    return ann.ExactSearch(reg.objects, reg.derived, MODEL, DIM, rows)


# ---- phases (each in its own process) -------------------------------------------------------
def phase_prepare(args) -> dict:
    import numpy as np

    from genreg.retrieval.cache import EmbeddingCache

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    reg = open_reg(work)
    cache = EmbeddingCache(reg.objects, reg.derived, MODEL, DIM)
    t0 = time.perf_counter()
    with open(work / "rows.bin", "wb") as fh:
        for digests, x in synthetic(args.n, args.seed):
            cache.add(digests, x)
            fh.write(bytes.fromhex("".join(digests)))
    t_cache = time.perf_counter() - t0
    q = np.concatenate([x for _, x in synthetic(args.queries, args.seed, stream=1)])
    np.save(work / "queries.npy", q)
    t1 = time.perf_counter()
    _, gt = exact_search(reg, rows_of(work))(q, K)
    np.save(work / "gt.npy", gt)
    reg.close()
    return {"cache_s": t_cache, "exact_s": time.perf_counter() - t1}


def _latencies(search, q) -> tuple[list[float], list]:
    import numpy as np

    search(q[:20], K)  # warm-up (first page-ins, plan)
    lat, found = [], []
    for i in range(len(q)):
        t = time.perf_counter()
        _, ids = search(q[i : i + 1], K)
        lat.append(time.perf_counter() - t)
        found.append(ids[0])
    return lat, np.stack(found)


def _summary(lat: list[float], found, gt) -> dict:
    import numpy as np

    a = np.sort(np.asarray(lat)) * 1000
    recall = np.mean([len(set(f) & set(g)) / K for f, g in zip(found, gt, strict=True)])
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "recall10": float(recall),
    }


def phase_flat(args) -> dict:
    import faiss
    import numpy as np

    from genreg.retrieval import ann

    work = args.work
    reg = open_reg(work)
    rows = rows_of(work)
    t0 = time.perf_counter()
    plan = ann.plan_rows(reg.objects, reg.derived, MODEL, DIM, rows)
    index = faiss.IndexFlatIP(DIM)
    order = np.empty(len(rows), dtype=np.int64)  # flat ids are insertion order
    at = 0
    for s, part in plan.by_shard():
        for sel, vecs in ann.iter_vectors(reg.objects, plan.shards[s], plan.pos_of[part]):
            index.add(vecs)
            order[at : at + len(sel)] = part[sel]
            at += len(sel)
    build_s = time.perf_counter() - t0
    faiss.write_index(index, str(work / "flat.faiss"))
    np.save(work / "flat-order.npy", order)
    return {"build_s": build_s, "bytes": int(index.ntotal) * DIM * 4}


def phase_flat_search(args) -> dict:
    import faiss
    import numpy as np

    work = args.work
    t0 = time.perf_counter()
    index = faiss.read_index(str(work / "flat.faiss"))
    order = np.load(work / "flat-order.npy")
    open_s = time.perf_counter() - t0
    q, gt = np.load(work / "queries.npy"), np.load(work / "gt.npy")

    def search(x, k):
        d, i = index.search(x, k)
        return d, order[i]

    lat, found = _latencies(search, q[: args.flat_queries])
    return {"queries": len(found), "open_s": open_s, **_summary(lat, found, gt[: len(found)])}


def phase_build(args, ray: Any = None) -> dict:
    from genreg.retrieval import ann
    from genreg.retrieval.index import IndexSpec

    work = args.work
    reg = open_reg(work)
    spec = IndexSpec.parse(json.loads(args.spec))
    rows = rows_of(work)
    t0 = time.perf_counter()
    ann.check_trainable(spec, DIM, len(rows))
    plan = ann.plan_rows(reg.objects, reg.derived, MODEL, DIM, rows)
    del rows
    positions = ann.sample_positions(spec, len(plan.shard_of))
    t1 = time.perf_counter()
    trained = ann.train(spec, ann.gather(reg.objects, plan, positions, DIM))
    t2 = time.perf_counter()
    out = work / "ivfpq"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir()
    n = ann.build_ondisk(reg.objects, plan, trained, out, workers=1, ray=ray)
    (work / "rowmap.bin").write_bytes(ann.encode_rowmap(plan))  # stored beside the index
    t3 = time.perf_counter()
    size = sum(p.stat().st_size for p in out.iterdir())
    return {
        "n": n,
        "build_s": t3 - t0,
        "plan_s": t1 - t0,
        "train_s": t2 - t1,
        "add_merge_s": t3 - t2,
        "bytes": size,
        "trunk_bytes": (out / ann.TRUNK).stat().st_size,
    }


def _worker_pid() -> int:
    return os.getpid()


def phase_build_ray(args) -> dict:
    """``build`` with the build units as Ray tasks (``engine=ray``: ``ray_engine.build_units``)
    on a local cluster of ``--ray-workers`` 1-CPU workers, started before the clock (as an
    existing ``RAY_ADDRESS`` cluster would be, its workers up: its start-up reported apart) and
    shut down at the end of the phase."""
    import shutil

    import ray

    from genreg.retrieval.ray_engine import LOCAL_OBJECT_STORE_BYTES, RayOptions

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    tmp = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit 107 bytes
    t0 = time.perf_counter()
    try:  # the cluster is shut down (and its temp dir removed) whatever fails
        ray.init(
            num_cpus=args.ray_workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            _temp_dir=tmp,
        )
        ready = ray.remote(num_cpus=1)(_worker_pid)  # every worker up (idle) before the clock
        ray.get([ready.remote() for _ in range(args.ray_workers)])
        start_s = time.perf_counter() - t0
        out = phase_build(args, ray=RayOptions(actors=args.ray_workers, num_cpus=1.0))
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return {**out, "ray_start_s": start_s, "ray_workers": args.ray_workers}


def _exact_scope_rows(work: Path) -> str:
    """The bench's stand-in for an index's row-digests object digest: sha256 of ``rows.bin``
    (the same bytes: every row's 32-byte text digest, in row order)."""
    return "sha256:" + _sha256(work / "rows.bin")


def phase_exact(args, cached: bool = False) -> dict:
    """The exact top-10 of every query as an eval's ``ann_recall@k`` computes it: ``exact`` --
    ``ann.ExactSearch`` streaming every cached vector (what every eval run paid before the
    cache); ``exact_cached`` -- the same behind ``ann.ExactCache`` (the registry's stored
    answers: computed and stored when they are not there yet). Both check the rows against
    ``gt.npy``; ``exact`` keeps its scores for ``exact_cached`` to compare bit for bit."""
    import numpy as np

    from genreg.retrieval import ann

    work = args.work
    reg = open_reg(work)
    q, gt = np.load(work / "queries.npy"), np.load(work / "gt.npy")
    plain = exact_search(reg, lambda: rows_of(work))
    search: Any = plain
    if cached:
        search = ann.ExactCache(
            plain,
            reg.objects,
            reg.derived,
            model_digest=MODEL,
            dim=DIM,
            rows_digest=_exact_scope_rows(work),
        )
    t0 = time.perf_counter()
    scores, rows = search(q, K)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"seconds": seconds, "queries": len(q)}
    out["rows_equal_gt"] = bool(np.array_equal(rows, gt))
    if cached:
        out.update(searched=search.searched, cached=search.cached)
        ref = work / "exact-scores.npy"
        if ref.exists():
            want = np.load(ref)
            out["scores_bit_identical"] = bool(
                np.array_equal(scores.view(np.uint32), want.view(np.uint32))
            )
    else:
        np.save(work / "exact-scores.npy", scores)
    reg.close()
    return out


def doc_of(row: int) -> tuple[str, int]:
    """The synthetic chunk -> document mapping: 4 chunks a document."""
    return f"doc-{row // 4:07d}", row % 4


def phase_rowids(args) -> dict:
    """The index's row ids both ways genreg stores them (made once, not measured): the JSON
    lists of an old (or flat) index's meta, and the compact table of ``genreg.retrieval.rowids``."""
    from genreg.core.hashing import canonical_json
    from genreg.retrieval.rowids import encode_rowids

    work = args.work
    if (work / "rowids.bin").exists() and (work / "rowids.json").exists():
        return {"made": False}
    pairs = [doc_of(r) for r in range(args.n)]
    doc_ids, chunk_index = [d for d, _ in pairs], [c for _, c in pairs]
    (work / "rowids.json").write_bytes(
        canonical_json({"chunk_index": chunk_index, "doc_ids": doc_ids})
    )
    (work / "rowids.bin").write_bytes(encode_rowids(doc_ids, chunk_index))
    return {"made": True}


def open_rows(work: Path, how: str) -> tuple[Any, Any]:
    """(doc_ids, chunk_index) as ``open_retriever`` gets them: ``json`` -- the stored JSON
    parsed into two Python lists (the index meta before the row-id table); ``table`` -- the
    row-id table read per lookup (``genreg.retrieval.rowids``)."""

    from genreg.retrieval.rowids import RowIds

    if how == "json":
        meta = json.loads((work / "rowids.json").read_bytes())
        doc_ids = meta["doc_ids"]
        assert len(set(doc_ids)) < len(doc_ids)  # what Retriever computed ("chunked") then
        return doc_ids, meta["chunk_index"]
    t = RowIds(work / "rowids.bin")
    return t.doc_ids, t.chunk_index


def phase_search(args, rows: str = "table") -> dict:
    import numpy as np

    from genreg.retrieval import ann
    from genreg.retrieval.index import IndexSpec, apply_search_params

    work = args.work
    reg = open_reg(work)
    q, gt = np.load(work / "queries.npy"), np.load(work / "gt.npy")
    t0 = time.perf_counter()
    doc_ids, chunk_index = open_rows(work, rows)
    index = ann.open_ondisk(work / "ivfpq")
    exact = ann.ExactSearch(
        reg.objects,
        reg.derived,
        MODEL,
        DIM,
        lambda: rows_of(work),
        rowmap=lambda: ann.decode_rowmap((work / "rowmap.bin").read_bytes()),
    )
    reader = ann.VectorReader(exact, work / "spill")
    open_s = time.perf_counter() - t0
    base = json.loads(args.spec)
    out = {"open_s": open_s, "settings": []}
    for setting in args.settings.split(";"):
        params = {k: int(v) for k, v in (kv.split("=") for kv in setting.split(","))}
        spec = IndexSpec.parse({**base, **params})
        apply_search_params(index, spec)
        searcher = ann.Refined(index, reader, spec.get("refine")) if spec.get("refine") else index

        def search(x, k, searcher=searcher):  # and each hit's document, as a Retriever does
            d, i = searcher.search(x, k)
            for r in i.ravel():
                if r >= 0:
                    doc_ids[r], chunk_index[r]
            return d, i

        t = time.perf_counter()
        lat, found = _latencies(search, q)
        out["settings"].append(
            {"setting": setting, "wall_s": time.perf_counter() - t, **_summary(lat, found, gt)}
        )
    out["rss_end"] = rss_parts()  # the index still open: its mapped lists are counted
    return out


def rss_parts() -> dict:
    """This process's resident set now, in MB: anonymous, file-backed, and the peak."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(status[k].split()[0]) // 1024 for k in ("RssAnon", "RssFile", "VmHWM")}


PHASES = {"prepare": phase_prepare, "flat": phase_flat, "build": phase_build}
PHASES.update({"flat_search": phase_flat_search, "search": phase_search})
PHASES.update({"rowids": phase_rowids, "search_json": lambda a: phase_search(a, rows="json")})
PHASES["build_ray"] = phase_build_ray
PHASES.update({"exact": phase_exact, "exact_cached": lambda a: phase_exact(a, cached=True)})
# the ones --name separates
INDEX_PHASES = ("build", "build_ray", "search", "search_json", "exact", "exact_cached")
SHARED = ("home", "rows.bin", "queries.npy", "gt.npy", "rowids.bin", "rowids.json")


# ---- the driver -----------------------------------------------------------------------------
def phase_work(args, phase: str, name: str | None = None) -> Path:
    """Where ``phase`` runs and keeps its files and result: ``--work``, or for an index phase
    under ``--name`` (or ``name``) the sub-directory ``--work/NAME`` -- its own index
    (``NAME/ivfpq``, whatever the index type), row map and results, beside the default ones,
    the shared inputs (vectors, queries, exact top-10, row ids) linked from ``--work``."""
    name = name or args.name
    if not name or phase not in INDEX_PHASES:
        return args.work
    sub = args.work / name
    sub.mkdir(exist_ok=True)
    for f in SHARED:
        if not (sub / f).exists() and (args.work / f).exists():
            (sub / f).symlink_to(args.work / f)
    return sub


def run_phase(args, phase: str, name: str | None = None) -> dict:
    work = phase_work(args, phase, name)
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--phase", phase]
    cmd += ["--work", str(work), "--n", str(args.n), "--queries", str(args.queries)]
    cmd += ["--seed", str(args.seed), "--spec", args.spec, "--settings", args.settings]
    cmd += ["--flat-queries", str(args.flat_queries), "--ray-workers", str(args.ray_workers)]
    load0 = loadavg()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"phase {phase} failed (exit {p.returncode})")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result.update(
        phase=phase,
        wall_s=wall,
        peak_rss_mb=int(rss.group(1)) / 1024 if rss else None,
        load=f"{load0} -> {loadavg()}",
    )
    print(json.dumps(result), file=sys.stderr, flush=True)
    (work / f"result-{phase}.json").write_text(json.dumps(result), encoding="utf-8")
    return result


def synthetic_run(args) -> None:
    if not (args.work / "gt.npy").exists():
        run_phase(args, "prepare")
    got = {}
    if not args.name or not all((args.work / f).exists() for f in ("rowids.bin", "rowids.json")):
        run_phase(args, "rowids")
    phases = args.phases.split(",")
    for phase in ("flat", "flat_search", "build", "search_json", "search"):
        saved = phase_work(args, phase) / f"result-{phase}.json"
        if phase == "search_json" and args.name and phase not in phases:
            continue  # the row-id storage comparison: the default index's only
        if phase in phases or not saved.exists():
            got[phase] = run_phase(args, phase)
        else:  # --phases: this phase's figures from the previous run in --work
            got[phase] = json.loads(saved.read_text(encoding="utf-8"))
    flat, fsearch, build, search = (got[p] for p in ("flat", "flat_search", "build", "search"))
    sjson = got.get("search_json")
    kind = json.loads(args.spec).get("type", "ivfpq")
    mb = 1 << 20
    print(f"\n{args.n:,} synthetic clustered 384-d vectors, {args.queries} queries, k={K}")
    print(f"{kind} spec {args.spec}; one process per phase (peak RSS from /usr/bin/time -v)")
    print(f"{'':28}{'flat':>12}{kind:>12}{'ratio':>9}")
    print(
        f"{'build time (s)':28}{flat['build_s']:>12.1f}{build['build_s']:>12.1f}"
        f"{build['build_s'] / flat['build_s']:>9.2f}"
    )
    print(
        f"{'build peak RSS (MB)':28}{flat['peak_rss_mb']:>12.0f}{build['peak_rss_mb']:>12.0f}"
        f"{build['peak_rss_mb'] / flat['peak_rss_mb']:>9.3f}"
    )
    print(
        f"{'search peak RSS (MB)':28}{fsearch['peak_rss_mb']:>12.0f}{search['peak_rss_mb']:>12.0f}"
        f"{search['peak_rss_mb'] / fsearch['peak_rss_mb']:>9.3f}"
    )
    if sjson is not None:
        print(
            f"{'  row ids as JSON lists':28}{fsearch['peak_rss_mb']:>12.0f}"
            f"{sjson['peak_rss_mb']:>12.0f}{sjson['peak_rss_mb'] / fsearch['peak_rss_mb']:>9.3f}"
            f"   (before the row-id table; {search['peak_rss_mb'] / sjson['peak_rss_mb']:.3f}x)"
        )
    print(
        f"{'index size (MB)':28}{flat['bytes'] / mb:>12.1f}{build['bytes'] / mb:>12.1f}"
        f"{build['bytes'] / flat['bytes']:>9.3f}"
    )
    print(
        f"  {kind} build: plan {build['plan_s']:.1f} s, train {build['train_s']:.1f} s, "
        f"add+merge {build['add_merge_s']:.1f} s; search open {search['open_s']:.2f} s"
    )
    if "rss_end" in search:
        e = search["rss_end"]
        print(
            f"  {kind} search resident at the end: {e['RssAnon']} MB anonymous + {e['RssFile']} MB"
            " file-backed (the mapped inverted lists, shared libraries)"
        )
    print(f"\n{'search (per query)':28}{'p50 ms':>10}{'p99 ms':>10}{'recall@10':>11}")
    name = f"flat (exact, {fsearch['queries']} queries)"
    print(
        f"{name:28}{fsearch['p50_ms']:>10.2f}{fsearch['p99_ms']:>10.2f}{fsearch['recall10']:>11.3f}"
    )
    for s in search["settings"]:
        name = f"{kind} " + s["setting"]
        print(f"{name:28}{s['p50_ms']:>10.2f}{s['p99_ms']:>10.2f}{s['recall10']:>11.3f}")
    print("\nload: " + "; ".join(f"{r['phase']} {r['load']}" for r in got.values()))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ray_build_run(args) -> None:
    """``--ray-build``: the same index built twice side by side, in this machine's one process
    (``build``, in ``--work/NAME-inproc``) and with its build units as Ray tasks on a local
    ``--ray-workers``-worker cluster (``build_ray``, in ``--work/NAME-ray``; NAME: ``--name``,
    default ``ray-build``), each in its own process; then whether the two (and the default
    ``--work/ivfpq``, when it was built from the same spec) are byte-identical."""
    name = args.name or "ray-build"
    local = run_phase(args, "build", f"{name}-inproc")
    remote = run_phase(args, "build_ray", f"{name}-ray")
    dirs = {"in-process": args.work / f"{name}-inproc" / "ivfpq"}
    dirs["ray"] = args.work / f"{name}-ray" / "ivfpq"
    if (args.work / "ivfpq" / "lists.ivfdata").exists():
        dirs["default --work/ivfpq"] = args.work / "ivfpq"
    sums = {k: (_sha256(d / "lists.ivfdata"), _sha256(d / "index.faiss")) for k, d in dirs.items()}
    print(f"\n{args.n:,} vectors, spec {args.spec}; build units as Ray tasks vs in-process")
    print(f"{'':28}{'in-process':>12}{'ray':>12}{'ratio':>9}")
    for label, key in (("build time (s)", "build_s"), ("  train (s)", "train_s")):
        a, b = local[key], remote[key]
        print(f"{label:28}{a:>12.1f}{b:>12.1f}{b / a:>9.2f}")
    a, b = local["add_merge_s"], remote["add_merge_s"]
    print(f"{'  add + merge (s)':28}{a:>12.1f}{b:>12.1f}{b / a:>9.2f}")
    a, b = local["peak_rss_mb"], remote["peak_rss_mb"]
    print(f"{'driver peak RSS (MB)':28}{a:>12.0f}{b:>12.0f}{b / a:>9.2f}")
    print(f"  Ray cluster start-up (not in the build time): {remote['ray_start_s']:.1f} s")
    for k, (lists, trunk) in sums.items():
        print(f"  {k:22} lists sha256 {lists[:16]}  trunk sha256 {trunk[:16]}")
    same = len({v[0] for v in sums.values()}) == 1
    print(f"  lists file byte-identical: {'yes' if same else 'NO'}")
    print(f"load: build {local['load']}; build_ray {remote['load']}")
    if not same:
        raise SystemExit("the Ray build's lists file differs from the in-process build's")


def exact_cache_run(args) -> None:
    """``--exact-cache``: ``ann_recall@k``'s exact reference at ``--n`` rows x ``--queries``,
    each in its own process, in ``--work/NAME`` (NAME: ``--name``, default ``exact-cache``):
    ``exact`` (the stream over every cached vector, as every eval run did) then
    ``exact_cached`` twice -- the first computes and stores the answers when the registry does
    not have them yet (it says so), the second is an unchanged re-run's cost."""
    name = args.name or "exact-cache"
    before = run_phase(args, "exact", name)
    fill = run_phase(args, "exact_cached", name)
    after = run_phase(args, "exact_cached", name)
    print(f"\n{args.n:,} cached vectors, {args.queries} queries, k={K}: ann_recall's exact top-k")
    print(f"{'':40}{'seconds':>9}{'peak RSS MB':>13}  queries searched / from the cache")
    rows = (
        ("ExactSearch (every run, before)", before, "all / -"),
        ("ExactCache, first run", fill, f"{fill['searched']} / {fill['cached']}"),
        ("ExactCache, unchanged re-run (after)", after, f"{after['searched']} / {after['cached']}"),
    )
    for label, r, how in rows:
        print(f"{label:40}{r['seconds']:>9.3f}{r['peak_rss_mb']:>13.0f}  {how}")
    print(f"  re-run / before: {after['seconds'] / before['seconds']:.4f}x")
    same = all(r["rows_equal_gt"] for r in (before, fill, after))
    same = same and fill.get("scores_bit_identical") and after.get("scores_bit_identical")
    print(f"  rows = gt.npy, scores bit-identical to ExactSearch's: {'yes' if same else 'NO'}")
    print("load: " + "; ".join(f"{r['phase']} {r['load']}" for r in (before, fill, after)))
    if not same:
        raise SystemExit("the cached exact results differ from ExactSearch's")


# ---- SciFact ----------------------------------------------------------------------------------
SCIFACT_CFG = """\
name: scifact-ann
evalset: evalset:scifact#test
corpus: corpus:scifact
chunking: none
index: {index}
k: [10]
metrics: [ndcg@10]
"""


def scifact_run(args) -> None:
    from genreg import Registry

    work = args.work
    home = work / "scifact-home"
    reg = Registry(home) if home.exists() else Registry.init(home)
    if not reg.derived.list("embshard"):
        reg.register("evalset", "scifact", args.data)
        reg.snapshot("scifact", args.data / "corpus.jsonl")
    rows = []
    ann_spec = json.loads(args.scifact_index)
    nprobe = ann_spec.get("nprobe", 32)
    variants = [("flat", "flat")] + [
        (f"ivfpq nprobe {p} refine {r}", json.dumps({**ann_spec, "nprobe": p, "refine": r}))
        for p, r in ((nprobe, 0), (nprobe, 4), (nprobe, 16), (4 * nprobe, 16))
    ]
    cfg = work / "scifact-ann.yaml"
    cfg.write_text(SCIFACT_CFG.format(index="flat"), encoding="utf-8")
    reg.eval_run(cfg)  # warm-up: embeds the abstracts and queries once (cached after)
    for name, index in variants:
        cfg.write_text(SCIFACT_CFG.format(index=index), encoding="utf-8")
        load0 = loadavg()
        t0 = time.perf_counter()
        out = reg.eval_run(cfg)
        wall = time.perf_counter() - t0
        rep = out.run.report
        lat = rep.get("latency", {})
        rows.append(
            {
                "name": name,
                "ndcg10": out.run.metrics["ndcg@10"],
                "ann_recall10": ((rep.get("ann") or {}).get("recall") or {}).get("ann_recall@10"),
                "p50_ms": lat.get("p50_ms"),
                "p99_ms": lat.get("p99_ms"),
                "wall_s": wall,
                "load": f"{load0} -> {loadavg()}",
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    reg.close()
    print(f"\nSciFact (5,183 abstracts, 300 test queries), ivfpq {args.scifact_index}")
    print(f"{'index':28}{'nDCG@10':>9}{'ann_recall@10':>15}{'p50 ms':>9}{'p99 ms':>9}  load")
    for r in rows:
        rec = "-" if r["ann_recall10"] is None else f"{r['ann_recall10']:.3f}"
        print(
            f"{r['name']:28}{r['ndcg10']:>9.4f}{rec:>15}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"  {r['load']}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="synthetic vectors")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--flat-queries", type=int, default=200, help="queries timed on flat (it is slow)"
    )
    ap.add_argument("--work", type=Path, default=None, help="work dir (kept: reused by reruns)")
    ap.add_argument(
        "--spec",
        default='{"type": "ivfpq", "nlist": 1024, "m": 48, "train_size": 65536}',
        help="the ivfpq index (build parameters)",
    )
    ap.add_argument("--settings", default=DEFAULT_SETTINGS, help="search settings, ';'-separated")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument(
        "--phases",
        default="flat,flat_search,build,search_json,search",
        help="phases to (re)run; the others' figures come from the previous run in --work",
    )
    ap.add_argument(
        "--name",
        default=None,
        help="keep the index phases' index and results in --work/NAME (shared inputs linked)",
    )
    ap.add_argument(
        "--ray-build",
        action="store_true",
        help="build the index in-process and as Ray tasks side by side instead",
    )
    ap.add_argument("--ray-workers", type=int, default=2, help="local Ray cluster CPUs")
    ap.add_argument(
        "--exact-cache",
        action="store_true",
        help="ann_recall's exact search, uncached vs ann.ExactCache, instead",
    )
    ap.add_argument("--scifact", action="store_true", help="the SciFact eval check instead")
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    ap.add_argument(
        "--scifact-index", default='{"type": "ivfpq", "nlist": 128, "m": 48, "nprobe": 16}'
    )
    args = ap.parse_args()
    if args.phase:
        from genreg.retrieval.ann import quiet_native

        with quiet_native():
            result = PHASES[args.phase](args)
        print(json.dumps(result))
        return
    if args.work is None:
        args.work = Path(tempfile.gettempdir()) / f"bench_ann-{args.n}"
    args.work.mkdir(parents=True, exist_ok=True)
    if args.scifact:
        scifact_run(args)
    elif args.ray_build:
        ray_build_run(args)
    elif args.exact_cache:
        exact_cache_run(args)
    else:
        synthetic_run(args)


if __name__ == "__main__":
    main()
