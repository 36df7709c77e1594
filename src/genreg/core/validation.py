"""Loading structured files (YAML/JSON/JSONL) with errors that name file, line and field."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from genreg.errors import InvalidArtifact

SCHEMA_DIR = Path(__file__).parent / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


def field_path(path: Any) -> str:
    from genreg.core.inputs import field_part

    parts = [field_part(p)[:80] for p in path]
    return ".".join(parts) if parts else "(top level)"


def schema_errors(name: str, value: Any) -> list[str]:
    """Every violation of schema ``name``, each as 'field: message', sorted by field."""
    errs = sorted(_validator(name).iter_errors(value), key=lambda e: [str(p) for p in e.path])
    out = []
    for e in errs:
        msg = e.message
        if e.validator == "oneOf" and e.schema_path and "relevant" in list(e.path):
            msg = "must be a list of doc ids or a map doc id -> integer relevance >= 0"
        elif e.validator == "oneOf" and not list(e.path):
            msg = "needs exactly one of 'template' or 'messages'"
        out.append(f"{field_path(e.path)}: {msg}")
    return out


def read_bytes(path: Path, kind: str) -> bytes:
    """The bytes of a regular file of at most ``max_bytes(kind)`` bytes. Devices, FIFOs and
    sockets are refused before they are opened (``/dev/zero`` or a FIFO would read forever)."""
    import stat

    from genreg.core.limits import human, max_bytes

    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidArtifact(f"{path}: file not found") from None
    except OSError as exc:
        raise InvalidArtifact(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArtifact(f"{path}: is a directory, expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArtifact(f"{path}: not a regular file (device, FIFO or socket)")
    cap = max_bytes(kind)
    try:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
    except OSError as exc:
        raise InvalidArtifact(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > cap:
        var = f"GENREG_MAX_{kind.upper()}_BYTES"
        raise InvalidArtifact(f"{path}: larger than the {kind} size cap ({human(cap)}; {var})")
    return data


def read_text(path: Path, kind: str = "prompt") -> str:
    data = read_bytes(path, kind)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidArtifact(f"{path}:{line}: not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InvalidArtifact(f"{path}: file is empty")
    return text.removeprefix("\ufeff")


def split_lines(text: str) -> list[str]:
    """JSONL/TSV/run-file lines: split on ``\\n`` only (a ``\\r`` before it is dropped).
    Never ``str.splitlines()``, which also splits inside JSON strings on U+2028, U+2029,
    U+0085, form feeds and other separators a row may legally contain (issue 14 item 4)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def split_lines_keepends(text: str) -> list[str]:
    """``text`` cut after each ``\\n`` (for unified diffs), never at other separators."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def parse_structured(path: Path, text: str | None = None, kind: str = "prompt") -> Any:
    """Parse a YAML or JSON file strictly (:mod:`genreg.core.inputs`); errors name the file
    and line."""
    from genreg.core.inputs import load_json, load_yaml

    text = read_text(path, kind) if text is None else text
    if path.suffix.lower() == ".json":
        return load_json(text, str(path))
    return load_yaml(text, str(path))
