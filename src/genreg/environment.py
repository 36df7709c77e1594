"""Capturing the environment a run executes in (the edge: subprocesses, ``/proc``).

:func:`capture_environment` records: the git commit of the working tree the eval ran from
(``git rev-parse HEAD`` in the current directory), whether it was dirty and, when dirty,
``diff_digest`` = ``sha256:`` of ``git diff HEAD`` plus the status lines (so two dirty runs of
different edits differ); the genreg version; the Python version and implementation; the
versions of the key packages (:data:`KEY_PACKAGES`, from installed metadata, never imported);
the platform; CPU model, logical cores, total RAM; and GPUs (``nvidia-smi``, when present).
Nothing here imports torch.

**Dirty** means a tracked file differs from ``HEAD`` (modified, staged, deleted, renamed):
``git status --porcelain --untracked-files=no``. Untracked files (editor swap files, a fresh
``results/`` directory, the registry home itself) do not make the tree dirty: they cannot
change what a tracked checkout computes, and counting them made nearly every two runs of a PR
differ.

The result is a :class:`genreg.core.lineage.Environment`; :func:`capture_environment` also
returns its stored dict form (``{code, packages, host}``) for callers that predate the type.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from genreg.core.hashing import digest_bytes
from genreg.core.lineage import CodeState, Environment

KEY_PACKAGES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "faiss-cpu",
    "numpy",
    "tokenizers",
)


def _git(args: list[str], cwd: Path) -> tuple[int, bytes]:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 1, b""
    return out.returncode, out.stdout


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{commit, dirty, diff_digest}`` of the git working tree at ``cwd`` (None outside git).
    Untracked files do not count as dirty (see the module docstring)."""
    where = Path(cwd or Path.cwd())
    rc, head = _git(["rev-parse", "HEAD"], where)
    if rc != 0:
        return {"commit": None, "dirty": None, "diff_digest": None}
    rc, status = _git(["status", "--porcelain", "--untracked-files=no"], where)
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


def environment(cwd: str | Path | None = None) -> Environment:
    """The :class:`~genreg.core.lineage.Environment` of this process (git state at ``cwd``)."""
    from genreg import __version__

    return Environment(
        code=CodeState(**git_state(cwd), genreg=__version__),
        packages={
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
            **package_versions(),
        },
        host={
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "ram_bytes": ram_bytes(),
            "gpu": gpus(),
        },
    )


def capture_environment(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{code, packages, host}``: the stored form of :func:`environment`."""
    return environment(cwd).to_dict()
