"""Per-kind parsing into canonical bytes, decoding, pretty forms and kind detection."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genreg.core.evalset import EvalSet, diff_rows, parse_evalset
from genreg.core.hashing import canonical_json, digest_bytes
from genreg.core.kinds import BY_NAME
from genreg.core.prompt import Prompt, parse_prompt_data, parse_prompt_file
from genreg.core.routing import Routing, parse_routing_data, parse_routing_file
from genreg.core.validation import split_lines_keepends
from genreg.errors import InvalidArtifact, InvalidRef

FILE_KINDS = tuple(k.name for k in BY_NAME.values() if k.from_files)  # not corpus


@dataclass(frozen=True)
class Parsed:
    """Validated content in canonical form: ``digest`` is ``sha256:`` of ``data``."""

    kind: str
    data: bytes
    summary: dict[str, Any]

    @property
    def digest(self) -> str:
        return digest_bytes(self.data)


def _prompt_summary(p: Prompt) -> dict[str, Any]:
    return {
        "type": p.type,
        "variables": sorted(p.declared()),
        "model": p.model.get("model"),
    }


def _capped(parsed: Parsed, where: str) -> Parsed:
    """Refuse canonical content over the kind's size cap (:mod:`genreg.core.limits`)."""
    from genreg.core.limits import human, max_bytes

    cap = max_bytes(parsed.kind)
    if len(parsed.data) > cap:
        var = f"GENREG_MAX_{parsed.kind.upper()}_BYTES"
        raise InvalidArtifact(
            f"{where}: content is larger than the {parsed.kind} size cap ({human(cap)}; {var})"
        )
    return parsed


def parse_file(kind: str, path: Path) -> Parsed:
    return _capped(_parse_file(kind, path), str(path))


def _parse_file(kind: str, path: Path) -> Parsed:
    if kind == "prompt":
        p = parse_prompt_file(path)
        return Parsed(kind, canonical_json(p.to_content()), _prompt_summary(p))
    if kind == "evalset":
        e = parse_evalset(path)
        return Parsed(kind, e.to_bytes(), e.summary())
    if kind == "routing":
        r = parse_routing_file(path)
        return Parsed(kind, canonical_json(r.config), _routing_summary(r))
    raise InvalidRef(
        f"kind {kind!r} cannot be registered from a file (use 'genreg corpus snapshot')"
    )


def parse_payload(kind: str, payload: Any, where: str = "request") -> Parsed:
    """Content given as data (API bodies, imports) rather than a file."""
    return _capped(_parse_payload(kind, payload, where), where)


def _parse_payload(kind: str, payload: Any, where: str) -> Parsed:
    if kind == "prompt":
        p = parse_prompt_data(payload, where)
        return Parsed(kind, canonical_json(p.to_content()), _prompt_summary(p))
    if kind == "routing":
        r = parse_routing_data(payload, where)
        return Parsed(kind, canonical_json(r.config), _routing_summary(r))
    if kind == "evalset":
        from genreg.core.evalset import build

        if not isinstance(payload, list):
            raise InvalidArtifact(f"{where}: an eval set payload must be a list of rows")
        e = build((where, i, row) for i, row in enumerate(payload, start=1))
        return Parsed(kind, e.to_bytes(), e.summary())
    raise InvalidRef(f"kind {kind!r} cannot be registered from a payload")


def _routing_summary(r: Routing) -> dict[str, Any]:
    return {
        "routes": [x["name"] for x in r.routes()],
        "models": sorted(
            {x["target"]["model"] for x in r.routes()} | {r.config["default"]["target"]["model"]}
        ),
    }


def decode(kind: str, data: bytes) -> Any:
    if kind == "prompt":
        return Prompt.from_content(json.loads(data))
    if kind == "evalset":
        return EvalSet.from_bytes(data)
    if kind == "routing":
        return Routing(json.loads(data))
    return json.loads(data)


def _corpus_summary(data: bytes) -> dict[str, Any]:
    """What ``show`` prints of a corpus snapshot: the manifest header and document counts
    (a manifest can hold millions of lines; ``corpus export`` writes the documents)."""
    from genreg.core.corpus import parse_manifest

    m = parse_manifest(data)
    return {"manifest": m.header, "documents": m.docs, "formats": m.formats()}


def content_json(kind: str, data: bytes) -> Any:
    """The content as plain JSON (for ``show --json`` and the API)."""
    if kind == "evalset":
        return EvalSet.from_bytes(data).rows
    if kind == "corpus":
        return _corpus_summary(data)
    return json.loads(data)


def to_payload(kind: str, data: bytes) -> Any:
    """Canonical bytes back to the input form :func:`parse_payload` accepts (round-trips)."""
    obj = content_json(kind, data)
    if kind == "prompt":
        obj = {k: v for k, v in obj.items() if k != "type" and v is not None}
    return obj


_PROMPT_KEYS = ("description", "template", "messages", "variables", "model", "metadata")


def _block_dumper() -> Any:
    """A YAML dumper writing multi-line strings as literal ``|`` blocks (as people write
    templates), not as folded scalars with a blank line between every line."""
    import yaml

    class BlockDumper(yaml.SafeDumper):
        pass

    def str_block(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value.rstrip("\n") or value.endswith("\n") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    BlockDumper.add_representer(str, str_block)
    return BlockDumper


def pretty(kind: str, data: bytes) -> str:
    """The content as registered, in a stable text form used for ``show`` and unified
    diffs: block-style YAML in the order a prompt file is written (description, template or
    messages, variables, model, metadata); multi-line strings as literal blocks. Parsing it
    back gives the same content (and digest)."""
    import yaml

    if kind == "evalset":
        return data.decode("utf-8")
    obj = _corpus_summary(data) if kind == "corpus" else json.loads(data)
    if kind == "prompt":
        obj = {k: obj[k] for k in _PROMPT_KEYS if obj.get(k) not in (None, {}) or k == "variables"}
    return yaml.dump(
        obj,
        Dumper=_block_dumper(),
        sort_keys=kind != "prompt",
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def diff(kind: str, a: bytes, b: bytes, label_a: str, label_b: str) -> dict[str, Any]:
    if kind == "evalset":
        return {"kind": kind, "rows": diff_rows(EvalSet.from_bytes(a), EvalSet.from_bytes(b))}
    if kind == "corpus":
        from genreg.core.corpus import diff_entries, parse_manifest

        added, removed, changed, _ = diff_entries(
            parse_manifest(a, label_a).entries, parse_manifest(b, label_b).entries
        )
        return {"kind": kind, "rows": {"added": added, "removed": removed, "changed": changed}}
    import difflib

    lines = difflib.unified_diff(
        split_lines_keepends(pretty(kind, a)),
        split_lines_keepends(pretty(kind, b)),
        fromfile=label_a,
        tofile=label_b,
    )
    return {"kind": kind, "unified": "".join(lines)}


def detect_kind(path: Path) -> str | None:
    """Kind of a file under the project's conventional folders, or None to skip it.

    ``registry/prompts/**`` -> prompt, ``registry/routing/**`` -> routing,
    ``evals/sets/**`` (``*.jsonl`` or a BEIR directory) -> evalset.
    """
    parts = [p.lower() for p in path.parts]
    suffix = path.suffix.lower()
    if "prompts" in parts and suffix in {
        ".yaml",
        ".yml",
        ".json",
        ".txt",
        ".j2",
        ".jinja",
        ".jinja2",
    }:
        return "prompt"
    if "routing" in parts and suffix in {".yaml", ".yml", ".json"}:
        return "routing"
    if "sets" in parts and (suffix == ".jsonl" or (path.is_dir() and (path / "qrels").is_dir())):
        return "evalset"
    return None


def name_from_path(path: Path) -> str:
    return path.name if path.is_dir() else path.name.split(".")[0]
