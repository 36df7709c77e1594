#!/usr/bin/env python
"""Crash injection (issue 14, "keep the attacks in CI"): kill -9 the real CLI at random
points of a snapshot, a push, an import, an alias move and a gc; after each kill `genreg
verify` must pass (a gc killed between its two phases may leave referenced objects in
trash/, which verify names and the next gc restores -- the only problem allowed), and
re-running the killed command must converge: the state is then exactly what an uninterrupted
run gives, and verify is clean.

Bounded: operations run round-robin until --seconds or --rounds is reached. Run from .ci/run
(a slow lane); locally:

    PATH=.venv/bin:$PATH python scripts/crash_inject.py --seconds 60 --seed 1

Exit 0 when every round held, 1 with the failing round's command, kill delay and output.
Every process it kills is one it started (its own process group), by id.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GENREG = [str(Path(sys.executable).parent / "genreg")]
N_FILES = 600  # documents in the snapshotted tree (and records in its JSONL file)


class Failed(Exception):
    pass


class Lab:
    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.home = root / ".genreg"
        self.env = {
            **os.environ,
            "GENREG_HOME": str(self.home),
            "GENREG_AUTHOR": "crash",
            "GENREG_CEILING_DIRECTORIES": str(root.parent),
            "GENREG_CACHE_DIR": str(root / ".cache"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "GENREG_NO_FAST_CLI": "1",
        }
        self.durations: dict[str, float] = {}
        self.kills = 0
        self.finished_before_kill = 0

    # ---- running ------------------------------------------------------------------------
    def run(self, *args: str, ok: bool = True, home: Path | None = None) -> Any:
        env = self.env if home is None else {**self.env, "GENREG_HOME": str(home)}
        r = subprocess.run(
            [*GENREG, *args], env=env, cwd=self.root, capture_output=True, text=True, timeout=120
        )
        if ok and r.returncode != 0:
            raise Failed(f"genreg {' '.join(args)} exited {r.returncode}: {r.stderr or r.stdout}")
        return r

    def killed(self, op: str, *args: str) -> float:
        """Run ``genreg ARGS`` and SIGKILL it after a random delay; returns the delay."""
        # kill somewhere between the end of start-up (imports) and a bit past the end of an
        # uninterrupted run of the same command (sometimes it finishes: that must hold too)
        full = self.durations.get(op, 1.0)
        boot = min(self.durations.get("startup", 0.0) * 0.8, full * 0.5)
        delay = boot + self.rng.uniform(0.0, 1.1) * (full - boot)
        p = subprocess.Popen(
            [*GENREG, *args],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            p.wait(timeout=delay)
            self.finished_before_kill += 1
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the group this script started
            p.wait()
            self.kills += 1
        return delay

    def timed(self, op: str, *args: str) -> Any:
        t = time.perf_counter()
        r = self.run(*args)
        self.durations[op] = time.perf_counter() - t
        return r

    def reg(self) -> Any:
        """A fresh in-process handle for the checks (the killed work runs in the CLI)."""
        from genreg import Registry

        return Registry(self.home)

    def verify(self, allow_trash: bool = False) -> None:
        reg = self.reg()
        try:
            rep = reg.verify()
        finally:
            reg.close()
        bad = [p for p in rep.problems if not (allow_trash and "in gc trash" in p.problem)]
        if bad:
            raise Failed("verify: " + "; ".join(str(p) for p in bad[:5]))

    # ---- the operations ---------------------------------------------------------------------
    def setup(self) -> None:
        self.run("init", str(self.home))
        self.timed("startup", "db", "current")  # start-up cost of the CLI alone
        src = self.root / "docs"
        for i in range(N_FILES):
            d = src / f"part{i % 15}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"doc{i}.md").write_text(f"# Doc {i}\n" + f"body of document {i}. " * 60)
        with open(src / "records.jsonl", "w") as fh:
            for i in range(N_FILES):
                fh.write(json.dumps({"id": f"r{i}", "text": f"record {i} " * 40}) + "\n")
        (self.root / "registry" / "prompts").mkdir(parents=True)
        self.timed("snapshot", "corpus", "snapshot", "kb", "docs", "-q")
        self.write_prompts(0)
        self.timed("push", "push")
        # an export bundle from another registry (the import's source)
        other = self.root / "other" / ".genreg"
        self.run("init", str(other))
        rows = self.root / "rows.jsonl"
        rows.write_text(
            "".join(
                json.dumps({"id": f"q{i}", "query": f"query {i}", "relevant": [f"d{i}"]}) + "\n"
                for i in range(3000)
            )
        )
        self.run("register", "evalset", "gold", str(rows), home=other)
        self.bundle = self.root / "gold.bundle.json"
        self.run("export", "evalset:gold", "-o", str(self.bundle), home=other)
        self.bundle_digest = json.loads(self.bundle.read_text())["digest"]
        self.imports = 0

    def write_prompts(self, n: int) -> None:
        for j in range(8):
            (self.root / "registry" / "prompts" / f"p{j}.yaml").write_text(
                f'template: "round {n} prompt {j}: {{{{ q }}}}"\n'
                "variables: {properties: {q: {type: string}}}\n"
            )

    def op_snapshot(self, n: int) -> None:
        src = self.root / "docs"
        for i in self.rng.sample(range(N_FILES), 20):  # a changed working tree each round
            (src / f"part{i % 15}" / f"doc{i}.md").write_text(f"# Doc {i}\nround {n}\n" * 50)
        (src / f"new{n}.md").write_text(f"new in round {n}\n" * 100)
        self.killed("snapshot", "corpus", "snapshot", "kb", "docs", "-q")
        self.verify()
        self.timed("snapshot", "corpus", "snapshot", "kb", "docs", "-q")
        reg = self.reg()
        try:
            st = reg.corpus_status("corpus:kb", src)
            if not st.identical:
                raise Failed(f"re-run snapshot did not converge: {st.to_dict()}")
            docs = sum(1 for _ in reg.iter_documents("corpus:kb"))  # every document readable
            if docs != st.unchanged:
                raise Failed(f"corpus:kb reads {docs} documents, manifest lists {st.unchanged}")
        finally:
            reg.close()
        self.verify()

    def op_push(self, n: int) -> None:
        self.write_prompts(n)
        self.killed("push", "push")
        self.verify()
        self.timed("push", "push")
        reg = self.reg()
        try:
            again = reg.push(root=self.root)
            if any(r.created for r in again):
                raise Failed(f"push did not converge: {[r.name for r in again if r.created]}")
            for j in range(8):
                _, content = reg.show(f"prompt:p{j}")
                if f"round {n} prompt {j}" not in content["template"]:
                    raise Failed(f"prompt:p{j} latest is not round {n}: {content}")
        finally:
            reg.close()

    def op_import(self, n: int) -> None:
        self.imports += 1
        name = f"gold{self.imports}"
        self.killed("import", "import", str(self.bundle), "--name", name)
        self.verify()
        self.timed("import", "import", str(self.bundle), "--name", name)
        reg = self.reg()
        try:
            hist = reg.history(f"evalset:{name}")
            if [v.digest for v in hist] != [self.bundle_digest]:
                raise Failed(f"evalset:{name} versions {[v.digest for v in hist]}")
            reg.content(hist[0])  # readable, digest-checked
        finally:
            reg.close()

    def op_alias(self, n: int) -> None:
        reg = self.reg()
        try:
            target = self.rng.choice(reg.history("prompt:p0")).version
        finally:
            reg.close()
        self.killed("alias", "alias", "set", f"prompt:p0@v{target}", "production")
        self.verify()
        self.timed("alias", "alias", "set", f"prompt:p0@v{target}", "production")
        reg = self.reg()
        try:
            got = reg.resolve("prompt:p0@production").version
            if got != target:
                raise Failed(f"production -> v{got}, expected v{target}")
            journal = reg.alias_history("prompt:p0", "production")
            last = max(journal, key=lambda e: e.created_at) if journal else None
            if last is None or last.to_version != target:
                raise Failed(f"alias journal does not end at v{target}: {journal[-3:]}")
        finally:
            reg.close()

    def op_gc(self, n: int) -> None:
        self.killed("gc", "gc", "--delete", "--grace", "0", "-q")
        self.verify(allow_trash=True)  # hidden, referenced objects: the next gc restores them
        self.timed("gc", "gc", "--delete", "--grace", "0", "-q")
        self.verify()
        reg = self.reg()
        try:
            left = reg.gc(dry_run=True, grace_seconds=0)
            if left.unreferenced:
                raise Failed(f"gc did not converge: {len(left.unreferenced)} objects left")
        finally:
            reg.close()


OPS = ["snapshot", "push", "import", "alias", "gc"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=90.0, help="time budget (default 90)")
    ap.add_argument("--rounds", type=int, default=200, help="at most this many rounds")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    ap.add_argument("--keep", action="store_true", help="keep the lab directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="time each round")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="genreg-crash-"))
    lab = Lab(root, rng)
    start = time.monotonic()
    done = 0
    try:
        lab.setup()
        if a.verbose:
            print(f"setup: {time.monotonic() - start:.1f} s")
        while done < a.rounds and time.monotonic() - start < a.seconds:
            op = OPS[done % len(OPS)]
            try:
                t = time.monotonic()
                getattr(lab, f"op_{op}")(done)
                if a.verbose:
                    print(f"round {done} {op}: {time.monotonic() - t:.1f} s")
            except Failed as exc:
                print(f"crash_inject: FAIL round {done} ({op}, seed {seed}): {exc}")
                print(f"crash_inject: lab kept at {root}")
                a.keep = True
                return 1
            done += 1
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"crash_inject: ok -- {done} rounds ({lab.kills} killed mid-run, "
        f"{lab.finished_before_kill} finished before the kill) in "
        f"{time.monotonic() - start:.0f} s, seed {seed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
