"""The ``genreg`` entry point. Hot commands are answered without importing typer, pydantic or
SQLAlchemy (their import is most of a short command's time); everything else -- and any
case the fast path does not handle exactly, errors included -- runs the full typer CLI
(:mod:`genreg.cli`), so output and exit codes are always the typer CLI's.

Fast here, on the default SQLite backend (stdlib ``sqlite3``):

- ``genreg --help`` / ``-h``: the full CLI renders it once and caches the text, keyed by every
  source file of genreg, typer's version and the help width; later calls print the cache.
- ``genreg resolve REF [--json]``, ``genreg list [KIND] [--json]``,
  ``genreg history REF [--json]``.
- ``genreg corpus snapshot NAME SOURCE [-m MSG] [--tag k=v] [--author A] [--json] [-q]``
  (without a progress bar: on a terminal it uses the full CLI, which draws one).

``GENREG_NO_FAST_CLI=1`` turns the fast path off (the benchmark compares both).
``tests/test_fast_cli.py`` checks both paths print byte-identical output.
"""

from __future__ import annotations

import os
import sys
from typing import Any

FAST_OFF = "GENREG_NO_FAST_CLI"


def main() -> None:
    argv = sys.argv[1:]
    if not os.environ.get(FAST_OFF):
        if argv in (["--help"], ["-h"]):
            sys.exit(_help())
        code = run_fast(argv)
        if code is not None:
            sys.stdout.flush()
            sys.exit(code)
    _full()


def _full() -> None:
    from genreg.cli import main as full_main

    full_main()


# ---- --help: rendered by typer once, then cached ----------------------------------------------
def _cache_dir() -> str:
    env = os.environ.get("GENREG_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "genreg")


def _help_key() -> str:
    """Changes with any genreg source file, typer's install and click's help width."""
    import hashlib
    import shutil

    h = hashlib.sha256(sys.version.encode())
    root = os.path.dirname(os.path.abspath(__file__))
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                st = os.stat(os.path.join(d, f))
                h.update(f"{d}/{f}:{st.st_mtime_ns}:{st.st_size}\n".encode())
    for p in sys.path:
        t = os.path.join(p, "typer", "__init__.py")
        if os.path.exists(t):
            st = os.stat(t)
            h.update(f"{t}:{st.st_mtime_ns}:{st.st_size}".encode())
            break
    width = max(min(shutil.get_terminal_size().columns, 80) - 2, 50)  # click's formatter
    h.update(f"width={width}".encode())
    return h.hexdigest()[:24]


def _help() -> int:
    path = os.path.join(_cache_dir(), f"help-{_help_key()}.txt")
    try:
        with open(path, encoding="utf-8") as f:
            sys.stdout.write(f.read())
        return 0
    except OSError:
        pass
    import contextlib
    import io

    buf = io.StringIO()
    code: Any = 0
    try:
        with contextlib.redirect_stdout(buf):
            _full()
    except SystemExit as exc:
        code = exc.code
    text = buf.getvalue()
    sys.stdout.write(text)
    if code in (0, None) and text:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError:
            pass
    return code if isinstance(code, int) else (0 if code is None else 1)


# ---- read commands ------------------------------------------------------------------------------
def _split(args: list[str], flags: set[str]) -> tuple[list[str], set[str]] | None:
    """Positional args and the given boolean flags; None for anything else."""
    pos, seen = [], set()
    for a in args:
        if a in flags:
            seen.add(a)
        elif a.startswith("-"):
            return None
        else:
            pos.append(a)
    return pos, seen


def _reader() -> Any:
    """The SQLite metadata store when it needs no migration (else None: the full CLI)."""
    from genreg.settings import resolve_settings
    from genreg.store.sqlite_metadata import open_current

    return open_current(resolve_settings().database_url)


def run_fast(argv: list[str]) -> int | None:
    """Exit code after answering ``argv`` on the fast path, or None to use the full CLI."""
    if not argv:
        return None
    cmd, rest = argv[0], argv[1:]
    handler = {"resolve": _resolve, "list": _list, "history": _history}.get(cmd)
    if cmd == "corpus" and rest[:1] == ["snapshot"]:
        handler, rest = _snapshot, rest[1:]
    if handler is None:
        return None
    try:
        out = handler(rest)
    except Exception:  # noqa: BLE001 - the full CLI reports it, in its own words
        return None
    if out is None:
        return None
    out()  # printing happens only once the work succeeded
    return 0


def _resolve(args: list[str]) -> Any:
    from genreg import textout

    parsed = _split(args, {"--json"})
    if parsed is None or len(parsed[0]) != 1:
        return None
    reader = _reader()
    if reader is None:
        return None
    from genreg.core.refs import parse_ref

    v = reader.resolve(parse_ref(parsed[0][0]))
    if "--json" in parsed[1]:
        return lambda: textout.emit_json(textout.resolve_json(v))
    return lambda: textout.echo(f"{v.ref}  {v.digest}")


def _list(args: list[str]) -> Any:
    from genreg import textout

    parsed = _split(args, {"--json"})
    if parsed is None or len(parsed[0]) > 1:
        return None
    kind = parsed[0][0] if parsed[0] else None
    reader = _reader()
    if reader is None:
        return None
    from genreg.core.refs import validate_kind

    if kind is not None:
        validate_kind(kind)
    arts = reader.list_artifacts(kind)
    if "--json" in parsed[1]:
        return lambda: textout.emit_json([a.to_dict() for a in arts])
    return lambda: textout.table(textout.list_rows(arts), textout.LIST_COLUMNS)


def _history(args: list[str]) -> Any:
    from genreg import textout

    parsed = _split(args, {"--json"})
    if parsed is None or len(parsed[0]) != 1:
        return None
    reader = _reader()
    if reader is None:
        return None
    from genreg.core.refs import parse_ref

    r = parse_ref(parsed[0][0])
    versions = reader.history(r.kind, r.name)
    if "--json" in parsed[1]:
        return lambda: textout.emit_json([v.to_dict() for v in versions])
    return lambda: textout.table(textout.history_rows(versions), textout.HISTORY_COLUMNS)


# ---- corpus snapshot ----------------------------------------------------------------------------
_SNAPSHOT_VALUE = {"-m": "message", "--message": "message", "--author": "author", "--tag": "tag"}
_SNAPSHOT_FLAGS = {"--json", "--quiet", "-q"}


def _snapshot(args: list[str]) -> Any:
    pos: list[str] = []
    opts: dict[str, Any] = {"message": "", "author": None, "tag": []}
    flags: set[str] = set()
    i = 0
    while i < len(args):
        a = args[i]
        if a in _SNAPSHOT_FLAGS:
            flags.add(a)
        elif a in _SNAPSHOT_VALUE and i + 1 < len(args):
            key = _SNAPSHOT_VALUE[a]
            i += 1
            if key == "tag":
                opts["tag"].append(args[i])
            else:
                opts[key] = args[i]
        elif a.startswith("-"):
            return None  # any other option: the full CLI
        else:
            pos.append(a)
        i += 1
    if len(pos) != 2:
        return None
    quiet = bool(flags & {"--quiet", "-q", "--json"})
    if not quiet and sys.stderr.isatty() and not os.environ.get("CI"):
        return None  # a progress bar is wanted: the full CLI draws it
    tags: dict[str, str] = {}
    for item in opts["tag"]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return None  # the full CLI names the bad --tag
        tags[key] = value
    from pathlib import Path

    from genreg import textout
    from genreg.service import Registry

    reg = Registry()
    res = reg.snapshot(
        pos[0], Path(pos[1]), message=opts["message"], tags=tags, author=opts["author"]
    )
    if "--json" in flags:
        return lambda: textout.emit_json(res.to_dict())
    return lambda: textout.snapshot_lines(res)
