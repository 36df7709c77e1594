"""The OpenAPI document states what the routes really accept (issue 14 item 19).

The routes validate names, aliases, digests and references themselves (so their errors keep
their own codes: ``invalid_name``, ``invalid_ref``); this module writes the same rules into
``/openapi.json`` as patterns and enums, so that every request the schema calls valid is
accepted, and every one it calls invalid is a documented 4xx. Schemathesis checks both
directions in CI (``tests/test_schemathesis.py``).
"""

from __future__ import annotations

from typing import Any

from genreg.core.kinds import BY_NAME
from genreg.core.refs import MAX_VERSION

_NAME = r"(?!.*\.\.)[a-z0-9][a-z0-9._-]{0,99}"
NAME_PATTERN = f"^{_NAME}$"
# an alias a client may set: not 'latest' and not vN (reserved)
ALIAS_PATTERN = f"^(?!latest$)(?!v[0-9]+$){_NAME}$"
DIGEST_PATTERN = r"^(sha256:)?[0-9a-f]{6,64}$"
# KIND:NAME[@ALIAS|@vN|@sha256:HEX], eval sets also #SPLIT; vN up to 18 digits (< 2^63)
_SEL = rf"(@(v[1-9][0-9]{{0,17}}|sha256:[0-9a-f]{{6,64}}|(?!v[0-9]+$){_NAME}))?"
_PLAIN = "|".join(k.name for k in BY_NAME.values() if not k.has_splits)
_SPLIT = [k.name for k in BY_NAME.values() if k.has_splits]
_SPLIT_ALT = _SPLIT[0] if len(_SPLIT) == 1 else f"({'|'.join(_SPLIT)})"
REF_PATTERN = f"^(({_PLAIN}):{_NAME}{_SEL}|{_SPLIT_ALT}:{_NAME}{_SEL}(#{_NAME})?)$"


def _url_kinds() -> list[str]:
    from genreg.api.reads import URL_KINDS

    return sorted(URL_KINDS)


def _param_rules() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("path", "kind"): {"enum": _url_kinds()},
        ("path", "name"): {"pattern": NAME_PATTERN},
        ("path", "alias"): {"pattern": ALIAS_PATTERN},
        ("query", "alias"): {"pattern": NAME_PATTERN},
        ("query", "digest"): {"pattern": DIGEST_PATTERN},
        # empty means "no filter"
        ("query", "used"): {"pattern": f"^$|{REF_PATTERN}"},
    }


def _apply(schema: dict[str, Any], rules: dict[str, Any]) -> None:
    """Add ``rules`` to a parameter schema (also inside ``anyOf`` for optional ones)."""
    targets = [s for s in schema.get("anyOf", []) if s.get("type") == "string"] or [schema]
    for t in targets:
        t.update(rules)


_BOUNDS = ("minimum", "maximum", "pattern", "minLength", "maxLength")


def _push_down(node: Any) -> None:
    """``{"anyOf": [{"type": "integer"}, {"type": "null"}], "minimum": 1}`` -> the bound on
    the integer branch, where generators and validators look for it (FastAPI puts
    ``json_schema_extra`` of an optional field next to the ``anyOf``)."""
    if isinstance(node, dict):
        for k in ("minimum", "maximum"):  # pydantic turns 2^63-1 into the float 2^63
            v = node.get(k)
            if isinstance(v, float) and v.is_integer():
                node[k] = MAX_VERSION if v >= MAX_VERSION else int(v)
        branches = node.get("anyOf")
        if isinstance(branches, list):
            moved = {k: node.pop(k) for k in _BOUNDS if k in node}
            for k in ("minimum", "maximum"):
                v = moved.get(k)
                if isinstance(v, float) and v.is_integer():
                    moved[k] = MAX_VERSION if v >= MAX_VERSION else int(v)
            for b in branches:
                if isinstance(b, dict) and b.get("type") not in (None, "null"):
                    b.update(moved)
        for v in node.values():
            _push_down(v)
    elif isinstance(node, list):
        for v in node:
            _push_down(v)


def refine(spec: dict[str, Any]) -> dict[str, Any]:
    rules = _param_rules()
    for ops in (spec.get("paths") or {}).values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            for p in op.get("parameters", []):
                r = rules.get((p.get("in"), p.get("name")))
                if r is not None:
                    _apply(p.setdefault("schema", {}), r)
                _push_down(p.get("schema"))
    comps = (spec.get("components") or {}).get("schemas") or {}
    for body in ("AliasBody", "PromoteBody"):
        s = comps.get(body)
        if s is None:
            continue
        props = s.get("properties", {})
        if "digest" in props:
            _apply(props["digest"], {"pattern": DIGEST_PATTERN})
        # exactly one of version / digest
        s["oneOf"] = [
            {
                "required": ["version"],
                "properties": {"version": {"type": "integer"}, "digest": {"type": "null"}},
            },
            {
                "required": ["digest"],
                "properties": {"digest": {"type": "string"}, "version": {"type": "null"}},
            },
        ]
        for k in ("version", "digest"):
            if k in props:
                props[k].pop("default", None)
    _push_down(comps)
    return spec


def install(app: Any) -> None:
    """Serve the refined document at ``/openapi.json`` (built once, on first request)."""
    original = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not done:
            done.append(refine(original()))
        return done[0]

    app.openapi = openapi
