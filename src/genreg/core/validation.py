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


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidArtifact(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InvalidArtifact(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise InvalidArtifact(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidArtifact(f"{path}:{line}: not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InvalidArtifact(f"{path}: file is empty")
    return text.removeprefix("\ufeff")


def parse_structured(path: Path, text: str | None = None) -> Any:
    """Parse a YAML or JSON file strictly (:mod:`genreg.core.inputs`); errors name the file
    and line."""
    from genreg.core.inputs import load_json, load_yaml

    text = read_text(path) if text is None else text
    if path.suffix.lower() == ".json":
        return load_json(text, str(path))
    return load_yaml(text, str(path))
