"""Lineage: the environment a run executed in, and the run's fingerprint.

:func:`capture_environment` records: the git commit of the working tree the eval ran from
(``git rev-parse HEAD`` in the current directory), whether it was dirty (``git status
--porcelain`` non-empty, untracked files included) and, when dirty, ``diff_digest`` =
``sha256:`` of ``git diff HEAD`` (so two dirty runs of different edits differ); the genreg
version; the Python version and implementation; the versions of the key packages
(:data:`KEY_PACKAGES`, from installed metadata, never imported); the platform; CPU model,
logical cores, total RAM; and GPUs (``nvidia-smi``, when present). Nothing here imports torch.

Fingerprint
-----------
``fingerprint(lineage)`` = ``sha256:`` of the canonical JSON (``genreg.core.hashing``) of
exactly these fields of the lineage record (:data:`FINGERPRINT_FIELDS`) -- the inputs that
determine the result:

- ``source``: ``eval`` (genreg retrieved) or ``score`` (an external run file);
- ``inputs``: for each role (prompt, evalset, corpus, routing) the exact kind, name, version,
  digest and split;
- ``embedding``: model name and weights digest; ``chunking`` and ``index``: their
  normalised parameters; ``k`` and ``metrics``; ``cost``: the cost options;
- ``run_file``: ``sha256:`` of the scored run file (``eval score`` only);
- ``code``: git commit, dirty flag, diff digest, genreg version;
- ``packages``: Python version and key package versions.

Left out on purpose (they do not change the numbers): run id, eval name, author, start/end
time, host, CPU model, cores, RAM and GPU, batch size, gates and baseline. Two runs with the
same fingerprint are therefore a repeat of the same computation ("identical to run X").
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from genreg.core.hashing import digest_bytes, digest_json

KEY_PACKAGES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "faiss-cpu",
    "numpy",
    "tokenizers",
)
FINGERPRINT_FIELDS = (
    "source",
    "inputs",
    "embedding",
    "chunking",
    "index",
    "k",
    "metrics",
    "cost",
    "run_file",
    "code",
    "packages",
)


def _git(args: list[str], cwd: Path) -> tuple[int, bytes]:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 1, b""
    return out.returncode, out.stdout


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{commit, dirty, diff_digest}`` of the git working tree at ``cwd`` (None outside git)."""
    where = Path(cwd or Path.cwd())
    rc, head = _git(["rev-parse", "HEAD"], where)
    if rc != 0:
        return {"commit": None, "dirty": None, "diff_digest": None}
    rc, status = _git(["status", "--porcelain"], where)
    dirty = bool(status.strip()) if rc == 0 else None
    diff_digest = None
    if dirty:
        _, diff = _git(["diff", "HEAD"], where)
        diff_digest = digest_bytes(diff + b"\0" + status)
    return {"commit": head.decode().strip(), "dirty": dirty, "diff_digest": diff_digest}


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def gpus() -> list[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return (
        [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] if out.returncode == 0 else []
    )


def capture_environment(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{code, packages, host}``: what the lineage record stores about the environment."""
    from genreg import __version__

    return {
        "code": {**git_state(cwd), "genreg": __version__},
        "packages": {
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
            **package_versions(),
        },
        "host": {
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "ram_bytes": ram_bytes(),
            "gpu": gpus(),
        },
    }


def fingerprint(lineage: dict[str, Any]) -> str:
    """``sha256:`` of the canonical JSON of :data:`FINGERPRINT_FIELDS` of ``lineage``."""
    return digest_json({f: lineage.get(f) for f in FINGERPRINT_FIELDS})
