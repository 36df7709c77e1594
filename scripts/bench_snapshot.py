#!/usr/bin/env python
"""Benchmark corpus snapshots against DVC, side by side in one run.

Every figure is the wall time of a CLI subprocess (process start-up included), files in the
page cache. For each tree size N (files of ~2 KB in 100 folders):

- cold:      ``genreg corpus snapshot``   vs ``dvc add``
- 1% edit:   re-snapshot                  vs ``dvc add`` again
- unchanged: ``genreg corpus status`` and re-snapshot vs ``dvc status`` (median of 3)

plus new bytes stored after a 1% edit of a ~50 MB JSONL (and DVC's cache growth), and, with
``--rss``, peak RSS (``/usr/bin/time -v``) of snapshotting a 1 GB tree. DVC lives in its own
venv, never a genreg dependency::

    python3 -m venv /tmp/dvcvenv && /tmp/dvcvenv/bin/pip install dvc
    GENREG_BENCH_DVC=/tmp/dvcvenv/bin/dvc .venv/bin/python scripts/bench_snapshot.py --sizes 10000

(``--dvc PATH`` works too; without either, a ``dvc`` on PATH is used; ``--genreg PATH`` times
another genreg executable.) A warm-up run of each tool comes first (bytecode written, files
in the page cache); the load average is printed at the start and the end. The targets of the
first-hour issue are printed with each ratio: at 10,000 files a cold snapshot and the re-snapshot
after a 1% change each at most 0.25x ``dvc add``'s time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "this",
    "are",
    "from",
    "at",
    "be",
    "or",
    "an",
    "it",
    "data",
    "model",
]


def text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    n = 0
    while n < size:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:size] + "\n"


def make_tree(root: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    files = []
    for i in range(n):
        p = root / f"d{i % 100:02}" / f"doc{i:06}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"doc {i}\n" + text(rng, size), encoding="utf-8")
        files.append(p)
    return files


def warm(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            p.read_bytes()


def run(cmd: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode not in ok:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return dt


def median(fn, k: int = 3) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(fn() for _ in range(k))


def edit(files: list[Path], frac: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    for p in rng.sample(files, max(1, int(len(files) * frac))):
        p.write_text(p.read_text() + "edited\n")


def bench_tree(n: int, args: argparse.Namespace, base: Path) -> dict[str, float]:
    work = base / f"tree-{n}"
    shutil.rmtree(work, ignore_errors=True)
    repo = work / "repo"
    data = work / "data"  # genreg's copy; dvc add replaces its files (new inodes), so each
    files = make_tree(data, n, args.size)  # tool gets its own identical tree
    dvc_files = make_tree(repo / "data", n, args.size) if args.dvc else []
    warm(work)
    env = {**os.environ, "GENREG_HOME": str(work / "home"), "GENREG_AUTHOR": "bench"}
    g = [args.genreg]
    run([*g, "init", str(work / "home")], work, env)
    res: dict[str, float] = {}
    res["genreg_cold"] = run([*g, "corpus", "snapshot", "bench", str(data), "-q"], work, env)
    if args.dvc:
        run([args.dvc, "init", "--no-scm", "-q"], repo, env)
        run([args.dvc, "config", "core.analytics", "false"], repo, env)
        res["dvc_cold"] = run([args.dvc, "add", "data", "-q"], repo, env)
    edit(files, 0.01)
    edit(dvc_files, 0.01)
    res["genreg_1pct"] = run([*g, "corpus", "snapshot", "bench", str(data), "-q"], work, env)
    if args.dvc:
        res["dvc_1pct"] = run([args.dvc, "add", "data", "-q"], repo, env)
    status = [*g, "corpus", "status", "corpus:bench", str(data), "-q"]
    res["genreg_status"] = median(lambda: run(status, work, env))
    snap = [*g, "corpus", "snapshot", "bench", str(data), "-q"]
    res["genreg_unchanged"] = median(lambda: run(snap, work, env))
    if args.dvc:
        res["dvc_status"] = median(lambda: run([args.dvc, "status", "-q"], repo, env, (0, 1)))
    shutil.rmtree(work, ignore_errors=True)
    return res


def warm_up(args: argparse.Namespace, base: Path) -> None:
    """One small run of each tool before anything is timed: Python writes the bytecode of every
    module the snapshot path imports (pip did that for dvc at install time; an editable
    genreg checkout has none until a first run, ~75 ms of compiling), and both tools' files
    are in the page cache."""
    work = base / "warm-up"
    shutil.rmtree(work, ignore_errors=True)
    make_tree(work / "data", 20, args.size)
    make_tree(work / "repo" / "data", 20, args.size)
    env = {**os.environ, "GENREG_HOME": str(work / "home"), "GENREG_AUTHOR": "bench"}
    run([args.genreg, "init", str(work / "home")], work, env)
    run([args.genreg, "corpus", "snapshot", "w", str(work / "data"), "-q"], work, env)
    run([args.genreg, "corpus", "status", "corpus:w", str(work / "data"), "-q"], work, env)
    if args.dvc:
        run([args.dvc, "init", "--no-scm", "-q"], work / "repo", env)
        run([args.dvc, "add", "data", "-q"], work / "repo", env)
    shutil.rmtree(work, ignore_errors=True)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_jsonl(args: argparse.Namespace, base: Path) -> dict[str, float]:
    work = base / "jsonl"
    shutil.rmtree(work, ignore_errors=True)
    (work / "repo").mkdir(parents=True)
    src = work / "repo" / "corpus.jsonl"
    rng = random.Random(2)
    n = int(args.jsonl_mb * 1e6 / 1000)
    lines = [
        json.dumps({"_id": str(i), "title": f"t{i}", "text": text(rng, 950)}) + "\n"
        for i in range(n)
    ]
    src.write_text("".join(lines))
    env = {**os.environ, "GENREG_HOME": str(work / "home"), "GENREG_AUTHOR": "bench"}
    g = [args.genreg]
    run([*g, "init", str(work / "home")], work, env)

    def snap() -> dict:  # type: ignore[type-arg]
        r = subprocess.run([*g, "corpus", "snapshot", "big", str(src), "--json"], cwd=work, env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(r.stdout)["stats"]  # type: ignore[no-any-return]

    out: dict[str, float] = {"jsonl_bytes": src.stat().st_size}
    t = time.perf_counter()
    snap()
    out["genreg_jsonl_cold_s"] = time.perf_counter() - t
    if args.dvc:
        run([args.dvc, "init", "--no-scm", "-q"], work / "repo", env)
        run([args.dvc, "add", "corpus.jsonl", "-q"], work / "repo", env)
        cache0 = du(work / "repo" / ".dvc" / "cache")
    for i in rng.sample(range(n), n // 100):
        lines[i] = lines[i].replace('"title": "t', '"title": "T', 1)
    src.write_text("".join(lines))
    t = time.perf_counter()
    st = snap()
    out["genreg_jsonl_1pct_s"] = time.perf_counter() - t
    out["genreg_new_bytes"] = st["new_bytes"]
    out["genreg_new_fraction"] = st["new_bytes"] / out["jsonl_bytes"]
    if args.dvc:
        run([args.dvc, "add", "corpus.jsonl", "-q"], work / "repo", env)
        out["dvc_new_bytes"] = du(work / "repo" / ".dvc" / "cache") - cache0
    shutil.rmtree(work, ignore_errors=True)
    return out


def bench_rss(args: argparse.Namespace, base: Path) -> dict[str, float]:
    work = base / "rss"
    shutil.rmtree(work, ignore_errors=True)
    files = int(args.rss_gb * 1e9 / 100_000)
    make_tree(work / "data", files, 100_000)
    env = {**os.environ, "GENREG_HOME": str(work / "home"), "GENREG_AUTHOR": "bench"}
    run([args.genreg, "init", str(work / "home")], work, env)
    t = time.perf_counter()
    r = subprocess.run(
        ["/usr/bin/time", "-v", args.genreg, "corpus", "snapshot", "big", str(work / "data"), "-q"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    dt = time.perf_counter() - t
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "rss_tree_bytes": files * 100_000,
        "rss_seconds": dt,
        "peak_rss_mb": int(m.group(1)) / 1024 if m else -1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--dvc",
        default=os.environ.get("GENREG_BENCH_DVC")
        or shutil.which("dvc")
        or "/work/bench-venvs/dvc/bin/dvc",
        help="dvc executable, from a separate venv (default: $GENREG_BENCH_DVC, else dvc on PATH)",
    )
    ap.add_argument("--genreg", default=str(ROOT / ".venv" / "bin" / "genreg"))
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated file counts")
    ap.add_argument("--size", type=int, default=2000, help="bytes per file")
    ap.add_argument("--jsonl-mb", type=float, default=50)
    ap.add_argument(
        "--rss", action="store_true", help="also snapshot a --rss-gb tree under /usr/bin/time -v"
    )
    ap.add_argument("--rss-gb", type=float, default=1.0)
    ap.add_argument("--workdir", default="/tmp/genreg-bench-snapshot")
    args = ap.parse_args()
    if args.dvc and not Path(args.dvc).exists():
        print(f"dvc not found at {args.dvc}: DVC columns skipped (install it in a separate venv)")
        args.dvc = None
    base = Path(args.workdir)
    base.mkdir(parents=True, exist_ok=True)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode is written once, then read
    with open("/proc/loadavg") as fh:
        print(f"load average at start: {fh.read().split()[0]} (2 cores: > 2.5 is 'under load')")
    warm_up(args, base)
    for n in (int(s) for s in args.sizes.split(",")):
        r = bench_tree(n, args, base)
        print(f"\n## {n} files x ~{args.size} B")
        for key, label in (("cold", "cold snapshot / dvc add"), ("1pct", "after 1% changed / dvc add"),
                           ("status", "nothing changed: status / dvc status"),
                           ("unchanged", "nothing changed: re-snapshot / dvc status")):  # fmt: skip
            gk = f"genreg_{key}"
            dk = "dvc_status" if key in ("status", "unchanged") else f"dvc_{key}"
            line = f"{label:45} genreg {r[gk]:7.2f} s"
            if dk in r:
                ratio = r[gk] / r[dk]
                line += f"   dvc {r[dk]:7.2f} s   ratio {ratio:.2f}x"
                if key in ("cold", "1pct"):
                    line += f"   (target <= 0.25x: {'ok' if ratio <= 0.25 else 'MISSED'})"
            print(line)
    if args.jsonl_mb:
        j = bench_jsonl(args, base)
        print(f"\n## JSONL {j['jsonl_bytes'] / 1e6:.1f} MB, 1% of records edited")
        print(f"genreg cold {j['genreg_jsonl_cold_s']:.2f} s, re-snapshot {j['genreg_jsonl_1pct_s']:.2f} s, "
              f"new bytes {j['genreg_new_bytes']:.0f} ({100 * j['genreg_new_fraction']:.2f}% of the file)")  # fmt: skip
        if "dvc_new_bytes" in j:
            print(
                f"dvc new cache bytes {j['dvc_new_bytes']:.0f} ({100 * j['dvc_new_bytes'] / j['jsonl_bytes']:.1f}%)"
            )
    if args.rss:
        m = bench_rss(args, base)
        print(f"\n## Peak RSS, {m['rss_tree_bytes'] / 1e9:.2f} GB tree (100 KB files)")
        print(f"genreg snapshot {m['rss_seconds']:.1f} s, peak RSS {m['peak_rss_mb']:.0f} MB")
    with open("/proc/loadavg") as fh:
        print(f"\nload average at the end: {fh.read().split()[0]}")


if __name__ == "__main__":
    main()
