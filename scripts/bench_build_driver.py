#!/usr/bin/env python
"""Benchmark: peak RSS of the on-disk (``ivfpq``) index build's driver -- the process that runs
``corpus index`` -- for two source trees side by side in one run (``--before``: e.g. main's
``src``, which held every chunk as Python lists; ``--after``: this tree's, which streams the
chunks into on-disk tables).

    flock /work/team/bench.lock .venv/bin/python scripts/bench_build_driver.py \\
        --docs 250000 --before /work/main/src --after src

**Data** (deterministic): ``--docs`` documents of 2,500-2,800 characters (``doc N`` then words
drawn by ``numpy.random.default_rng([seed, block])``), one JSONL file snapshotted as
``genreg corpus snapshot`` does, chunked ``chars:700`` -- 4 chunks a document (three of 700
characters, one of 400-700): 1M chunks at the default 250,000 documents. The embedding cache
is filled first, through genreg's own cache code (``EmbeddingCache.add``, 50,000-vector
shards), with a synthetic L2-normalised 384-d vector for every chunk's text digest, under a
synthetic embedder's digest -- so the build embeds nothing (the embedder raises if asked) and
what is measured is the driver: chunking, the row tables, planning, training, the streamed
build of the inverted lists, storing.

**What runs**: ``prepare`` once (a registry home in ``--work``), then for each tree a copy of
that home (objects hard-linked: they are immutable) and ``build`` in its own process under
``/usr/bin/time -v`` with ``PYTHONPATH=<tree>``: ``Registry.build_index`` with the synthetic
embedder and ``--spec`` (default ivfpq nlist 1024, m 48) -- the service call ``genreg corpus
index`` makes (the CLI cannot take a Python embedder object). Both builds must store the same
index object (checked). The load average is printed beside each phase. ``--flat`` also
builds a ``flat`` index of the same corpus with the ``--after`` tree, the issue's baseline
("peak RSS during build under 10% of a flat index's"), side by side.

**Cold** (``--cold``, e.g. with ``--engine ray``): nothing is cached; both builds embed every
chunk with ``DigestEmbedder`` (each text's SHAKE-256 digest as its vector: deterministic,
cheap, sent to the Ray actors by value). ``--engine ray``: ``build_index(engine="ray",
ray={"actors": 2})`` with no ``RAY_ADDRESS``, so genreg starts a local 2-actor cluster for the
job and stops it (its files in a temp dir removed afterwards). Ray's processes are not the
driver: the driver's own peak is its ``VmHWM`` (``time -v`` reports the largest of it and the
children it reaped); the Ray processes under it are sampled every 0.5 s (each one's
``VmHWM``, and the peak of their summed ``VmRSS``, which counts shared object-store pages once
per process). Both homes are then compared (``--phase check``): index key, every cache vector,
the cache shards, the FAISS trunk, the inverted lists and the row tables.

    flock /work/team/bench.lock .venv/bin/python scripts/bench_build_driver.py --docs 250000 \\
        --before /work/wt-before/src --after src --engine ray --cold
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
DIM = 384
BLOCK = 50_000
MODEL = "sha256:" + hashlib.sha256(b"bench_build_driver synthetic vectors").hexdigest()
COLD_MODEL = "sha256:" + hashlib.sha256(b"bench_build_driver shake256 vectors").hexdigest()
CHUNKING = "chars:700"
SPEC = '{"type": "ivfpq", "nlist": 1024, "m": 48}'
WORDS = [
    "cell",
    "gene",
    "virus",
    "cancer",
    "drug",
    "trial",
    "dose",
    "blood",
    "brain",
    "heart",
    "lung",
    "risk",
    "protein",
    "mouse",
    "liver",
    "kidney",
    "tumor",
    "immune",
    "therapy",
    "patient",
    "model",
    "signal",
    "pathway",
    "receptor",
    "enzyme",
    "acid",
    "growth",
    "factor",
    "tissue",
    "sample",
    "study",
    "effect",
    "level",
    "response",
    "rate",
    "method",
    "result",
    "group",
    "control",
]


class SyntheticEmbedder:
    """The cached vectors' model: digest and dimension only; embedding is an error here."""

    tokenizer = None
    name = "bench-synthetic-384"
    digest = MODEL
    dim = DIM

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
        raise SystemExit(f"bench: {len(texts)} chunks were not cached (nothing should embed)")


class DigestEmbedder:
    """``--cold``: embeds for real, cheaply and deterministically -- each text's vector is its
    SHAKE-256 digest (384 bytes as int8), L2-normalised. Defined in ``__main__``, so Ray's
    cloudpickle sends it to the actors by value (nothing of this script on their path)."""

    tokenizer = None
    name = "bench-digest-384"
    digest = COLD_MODEL
    dim = DIM

    def encode(self, texts: list[str], batch_size: int = 32, *, progress: Any = None) -> Any:
        import numpy as np

        raw = b"".join(hashlib.shake_256(t.encode("utf-8")).digest(DIM) for t in texts)
        x = np.frombuffer(raw, dtype=np.int8).reshape(len(texts), DIM).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def phase_prepare(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from genreg import Registry
    from genreg.retrieval.cache import EmbeddingCache
    from genreg.retrieval.chunking import ChunkingSpec, iter_chunks

    home = args.work / "base" / ".genreg"
    if home.exists():
        shutil.rmtree(home.parent)
    home.parent.mkdir(parents=True)
    src = args.work / "corpus.jsonl"
    t0 = time.perf_counter()
    words = np.array(WORDS)
    with src.open("w", encoding="utf-8") as fh:
        for b in range(0, args.docs, 10_000):
            rng = np.random.default_rng([args.seed, b])
            picks = words[rng.integers(0, len(words), size=(min(10_000, args.docs - b), 520))]
            lengths = rng.integers(2500, 2801, size=len(picks))
            for i, (row, n) in enumerate(zip(picks, lengths, strict=True)):
                text = (f"doc {b + i} " + " ".join(row.tolist()))[: int(n)]
                fh.write(json.dumps({"_id": f"doc-{b + i:07d}", "text": text}) + "\n")
    reg = Registry.init(home)
    try:
        reg.snapshot("bench", src)
        t1 = time.perf_counter()
        cache = EmbeddingCache(reg.objects, reg.derived, MODEL, DIM)
        chunks = iter_chunks(reg.iter_documents("bench"), ChunkingSpec.parse(CHUNKING))
        n = chars = 0
        seen: set[str] = set()
        pending: list[str] = []

        def flush() -> None:
            if args.cold:  # --cold: the build embeds every chunk itself
                pending.clear()
                return
            rng = np.random.default_rng([args.seed, 1, n])
            x = rng.standard_normal((len(pending), DIM)).astype(np.float32)
            cache.add(pending, x / np.linalg.norm(x, axis=1, keepdims=True))
            pending.clear()

        for ch in chunks:
            n += 1
            chars += len(ch.text)
            if ch.digest not in seen:
                seen.add(ch.digest)
                pending.append(ch.digest)
                if len(pending) == BLOCK:
                    flush()
        if pending:
            flush()
    finally:
        reg.close()
    return {
        "docs": args.docs,
        "chunks": n,
        "distinct": len(seen),
        "mean_chunk_chars": round(chars / max(n, 1), 1),
        "corpus_mb": round(src.stat().st_size / 2**20, 1),
        "snapshot_s": round(t1 - t0, 1),
        "cache_s": round(time.perf_counter() - t1, 1),
    }


def phase_build(args: argparse.Namespace) -> dict[str, Any]:
    from genreg import Registry

    reg = Registry(args.home)
    try:
        t0 = time.perf_counter()
        info = reg.build_index(
            "bench",
            model=DigestEmbedder() if args.cold else SyntheticEmbedder(),
            chunking=CHUNKING,
            index=json.loads(args.spec),
            engine=args.engine,
            ray={"actors": 2} if args.engine == "ray" else None,
        )
        seconds = time.perf_counter() - t0
    finally:
        reg.close()
    assert not info.reused and (info.embedded > 0) == args.cold, info
    return {
        "object": info.object_digest,
        "key": info.key,
        "chunks": info.n_chunks,
        "embedded": info.embedded,
        "build_s": round(seconds, 1),
        # this process alone (``time -v`` reports the largest of it and every process it
        # and its children reaped: with engine ray, the Ray processes it started too)
        "driver_hwm_mb": round(_status_kb("self", "VmHWM") / 1024, 1),
    }


def phase_check(args: argparse.Namespace) -> dict[str, Any]:
    """What two ``--keep``-ed cold builds (``--home`` and ``--other``) stored, compared: the
    index key, every cache vector in the index's row order (SHA-256 of their bytes, read
    50,000 rows at a time), the cache shards (their object digests), the FAISS trunk, the
    inverted lists and the row tables."""
    import numpy as np

    from genreg import Registry
    from genreg.retrieval.cache import KIND, EmbeddingCache
    from genreg.retrieval.index import decode_envelope

    out: dict[str, Any] = {}
    for label, home in (("a", args.home), ("b", args.other)):
        reg = Registry(home)
        try:
            (row,) = reg.derived.list("index")
            meta, trunk = decode_envelope(reg.objects.get_bytes(row.object_digest))
            rows = np.frombuffer(reg.objects.get_bytes(meta["digests"]), dtype="S32")
            cache = EmbeddingCache(reg.objects, reg.derived, meta["model_digest"], meta["dim"])
            h = hashlib.sha256()
            raw = rows.tobytes()
            for lo in range(0, len(rows), BLOCK):
                part = raw[lo * 32 : (lo + BLOCK) * 32]
                ds = [part[i : i + 32].hex() for i in range(0, len(part), 32)]
                h.update(np.ascontiguousarray(cache.matrix(ds), dtype=np.float32).tobytes())
            shards = sorted(
                r.object_digest for r in reg.derived.list(KIND, scope=meta["model_digest"])
            )
            out[label] = {
                "key": row.key,
                "vectors": h.hexdigest(),
                "shards": hashlib.sha256("".join(shards).encode()).hexdigest(),
                "n_shards": len(shards),
                "trunk": hashlib.sha256(trunk).hexdigest(),
                **{t: meta[t] for t in ("lists", "text_table", "rowids", "digests", "rowmap")},
                "object": row.object_digest,
            }
        finally:
            reg.close()
    a, b = out["a"], out["b"]
    return {"same": {k: a[k] == b[k] for k in a}, "n_shards": a["n_shards"], "rows": len(rows)}


def copy_home(base: Path, dest: Path) -> None:
    """``base`` copied to ``dest``: the immutable objects hard-linked, the rest copied."""
    if dest.exists():
        shutil.rmtree(dest)

    def link_or_copy(s: str, d: str) -> Any:
        if f"{os.sep}objects{os.sep}" in s:
            os.link(s, d)
            return d
        return shutil.copy2(s, d)

    shutil.copytree(base, dest, copy_function=link_or_copy)


def _status_kb(pid: int | str, field: str) -> int:
    """A ``/proc/<pid>/status`` field in kB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class RayProcesses:
    """Samples, every ``interval`` seconds, the processes under ``root`` (the ``time -v``
    process) other than the driver: Ray's workers (``ray::...`` / ``default_worker.py``: the
    actors and tasks) and its system processes (raylet with the object store, gcs_server,
    agents). Keeps each process's last ``VmHWM`` (its own peak RSS) and the peak of the
    summed ``VmRSS`` per class (shared pages, e.g. the object store's, count once per
    process mapping them: an upper bound)."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        import threading

        self.root, self.interval = root, interval
        self.hwm: dict[int, tuple[str, int]] = {}
        self.peak_sum = {"worker": 0, "system": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _children(self) -> dict[int, list[int]]:
        kids: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            kids.setdefault(ppid, []).append(int(d.name))
        return kids

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            kids = self._children()
            drivers = kids.get(self.root, [])  # time -v's one child: the driver
            todo = [k for d in drivers for k in kids.get(d, [])]
            sums = {"worker": 0, "system": 0}
            while todo:
                pid = todo.pop()
                todo += kids.get(pid, [])
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                cls = "worker" if b"ray::" in cmd or b"default_worker.py" in cmd else "system"
                hwm = _status_kb(pid, "VmHWM")
                if hwm:
                    self.hwm[pid] = (cls, hwm)
                sums[cls] += _status_kb(pid, "VmRSS")
            for cls, v in sums.items():
                self.peak_sum[cls] = max(self.peak_sum[cls], v)

    def report(self) -> dict[str, Any]:
        self.stop.set()
        self.thread.join()
        out: dict[str, Any] = {}
        for cls in ("worker", "system"):
            hwms = [h for c, h in self.hwm.values() if c == cls]
            out[cls] = {
                "processes": len(hwms),
                "max_peak_rss_mb": round(max(hwms, default=0) / 1024, 1),
                "peak_sum_rss_mb": round(self.peak_sum[cls] / 1024, 1),
            }
        return out


def run(
    args: argparse.Namespace,
    phase: str,
    tree: Path,
    home: Path | None = None,
    other: Path | None = None,
) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--phase", phase]
    cmd += ["--work", str(args.work), "--docs", str(args.docs), "--seed", str(args.seed)]
    cmd += ["--spec", args.spec, "--engine", args.engine] + (["--cold"] if args.cold else [])
    cmd += (["--home", str(home)] if home else []) + (["--other", str(other)] if other else [])
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    ray_tmp = None
    if args.engine == "ray" and phase == "build":  # the local cluster's files, removed after
        ray_tmp = Path(tempfile.mkdtemp(prefix="rbd", dir="/tmp"))  # short: socket paths
        env.update(RAY_TMPDIR=str(ray_tmp), RAY_USAGE_STATS_ENABLED="0")
        env.pop("RAY_ADDRESS", None)  # genreg starts (and stops) a local cluster
    load0 = loadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True, env=env)
        mon = RayProcesses(proc.pid) if ray_tmp else None
        rc = proc.wait()
        workers = mon.report() if mon else None
        out_f.seek(0)
        err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    if ray_tmp:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    if rc != 0:
        sys.stderr.write(stdout + stderr)
        raise SystemExit(f"phase {phase} ({tree}) failed (exit {rc})")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    out = json.loads(stdout.strip().splitlines()[-1])
    out.update(
        phase=phase,
        tree=str(tree),
        wall_s=round(time.perf_counter() - t0, 1),
        peak_rss_mb=round(int(rss.group(1)) / 1024, 1) if rss else None,
        load=f"{load0} -> {loadavg()}",
    )
    if workers is not None:
        out["ray"] = workers
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def cold_side_by_side(args: argparse.Namespace, prep: dict[str, Any]) -> None:
    """``--cold``: both builds embed every chunk (``DigestEmbedder``; ``--engine ray``: on a
    local 2-actor cluster genreg starts and stops, its processes sampled); both homes kept
    until :func:`phase_check` has compared what they stored."""
    results, homes = {}, {}
    for label, tree in (("before", args.before), ("after", args.after)):
        homes[label] = args.work / label / ".genreg"
        copy_home(args.work / "base" / ".genreg", homes[label])
        results[label] = run(args, "build", tree, homes[label])
    try:
        check = run(args, "check", args.after, homes["before"], homes["after"])
    finally:
        for home in homes.values():
            shutil.rmtree(home.parent)
    b, a = results["before"], results["after"]
    same = check["same"]
    if not (same["key"] and same["vectors"]):
        raise SystemExit(f"the two builds differ in index key or cache vectors: {check}")
    print(
        f"\n{prep['chunks']:,} chunks ({prep['distinct']:,} distinct, {prep['docs']:,} documents,"
        f" mean {prep['mean_chunk_chars']} chars), corpus {prep['corpus_mb']} MB, nothing cached;"
        f" engine {args.engine}; {b['embedded']:,} embedded by each build"
    )
    print("same (before vs after): " + ", ".join(f"{k} {v}" for k, v in same.items()))
    print(f"| cold `corpus index` (ivfpq, engine {args.engine}) | before | after | ratio |")
    print("|---|---|---|---|")

    def line(name: str, x: float, y: float, unit: str) -> None:
        print(f"| {name} | {x:,.0f} {unit} | {y:,.0f} {unit} | {y / x:.3f} |")

    line("driver peak RSS (its own VmHWM)", b["driver_hwm_mb"], a["driver_hwm_mb"], "MB")
    line("`time -v` max RSS (driver or a reaped child)", b["peak_rss_mb"], a["peak_rss_mb"], "MB")
    if args.engine == "ray":
        for cls, what in (("worker", "Ray workers"), ("system", "Ray system processes")):
            bw, aw = b["ray"][cls], a["ray"][cls]
            line(
                f"largest of the {what}: peak RSS",
                bw["max_peak_rss_mb"],
                aw["max_peak_rss_mb"],
                "MB",
            )
            line(f"{what}: summed RSS, peak", bw["peak_sum_rss_mb"], aw["peak_sum_rss_mb"], "MB")
    print(
        f"| build time | {b['build_s']} s | {a['build_s']} s | {a['build_s'] / b['build_s']:.2f} |"
    )
    print(f"| load average | {b['load']} | {a['load']} | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spec", default=SPEC)
    ap.add_argument("--work", type=Path, default=Path("/tmp/genreg-bench-build-driver"))
    ap.add_argument("--before", type=Path, default=Path("/work/main/src"))
    ap.add_argument("--after", type=Path, default=ROOT / "src")
    ap.add_argument("--engine", choices=["local", "ray"], default="local")
    ap.add_argument("--cold", action="store_true", help="nothing cached: the build embeds")
    ap.add_argument("--phase", choices=["prepare", "build", "check"])
    ap.add_argument("--home", type=Path)
    ap.add_argument("--other", type=Path)
    ap.add_argument(
        "--flat",
        action="store_true",
        help="also build a flat index of the same corpus (--after tree): the issue's baseline",
    )
    args = ap.parse_args()
    if args.phase:
        fn = {"prepare": phase_prepare, "build": phase_build, "check": phase_check}[args.phase]
        print(json.dumps(fn(args)))
        return
    if args.flat and args.cold:
        raise SystemExit("--flat: only without --cold (a cold flat build is not measured)")
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"spec {args.spec}; chunking {CHUNKING}; one process per phase (/usr/bin/time -v)")
    prep = run(args, "prepare", args.after)
    if args.cold:
        cold_side_by_side(args, prep)
        return
    results = {}
    builds = [("before", args.before, args.spec), ("after", args.after, args.spec)]
    if args.flat:
        builds.append(("flat", args.after, '{"type": "flat"}'))
    for label, tree, spec in builds:
        home = args.work / label / ".genreg"
        copy_home(args.work / "base" / ".genreg", home)
        results[label] = run(
            argparse.Namespace(**{**vars(args), "spec": spec}), "build", tree, home
        )
        shutil.rmtree(home.parent)
    b, a = results["before"], results["after"]
    if a["object"] != b["object"]:
        raise SystemExit(f"the two builds stored different index objects: {b} vs {a}")
    print(
        f"\n{prep['chunks']:,} chunks ({prep['docs']:,} documents, mean "
        f"{prep['mean_chunk_chars']} chars), corpus {prep['corpus_mb']} MB; same index object"
    )
    print("| driver of `corpus index` (ivfpq) | before | after | ratio |")
    print("|---|---|---|---|")
    print(
        f"| peak RSS | {b['peak_rss_mb']:,.0f} MB | {a['peak_rss_mb']:,.0f} MB | "
        f"{a['peak_rss_mb'] / b['peak_rss_mb']:.3f} |"
    )
    print(
        f"| build time | {b['build_s']} s | {a['build_s']} s | {a['build_s'] / b['build_s']:.2f} |"
    )
    print(f"| load average | {b['load']} | {a['load']} | |")
    if "flat" in results:
        f = results["flat"]
        print(
            f"\nflat index of the same corpus (after tree): peak RSS {f['peak_rss_mb']:,.0f} MB, "
            f"build {f['build_s']} s (load {f['load']}); after / flat: peak RSS "
            f"{a['peak_rss_mb'] / f['peak_rss_mb']:.3f}, time {a['build_s'] / f['build_s']:.2f}"
        )


if __name__ == "__main__":
    main()
