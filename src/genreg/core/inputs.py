"""Strict, bounded parsing of untrusted JSON and YAML.

Everything that enters the registry as structured data (prompt/routing files and API bodies,
eval-set rows, run files, bundles, lock files, tags) goes through here, so one set of rules
holds everywhere:

- the value is plain JSON: mappings with **string keys**, lists, strings, booleans, null,
  integers and **finite** floats (``NaN``/``Infinity`` are refused: they are not JSON and
  every later response would emit invalid JSON);
- **duplicate keys** are refused (JSON, JSONL and YAML would otherwise keep the last one);
- nesting is at most :data:`MAX_NESTING` levels;
- strings are valid Unicode (no lone surrogates such as ``"\\ud800"``: they cannot be stored
  as UTF-8);
- integers have at most Python's 4,300 digits;
- YAML: aliases may expand to at most :data:`YAML_MAX_ALIAS_NODES` nodes in total (a
  "billion laughs" file is refused in microseconds), timestamps stay the strings they were
  written as (``2024-01-01``), and ``!!binary``, ``!!set``, ``!!omap``, ``!!pairs`` and any
  other non-JSON tag are refused.

A violation raises :class:`~genreg.errors.InvalidArtifact` with one line naming where
(``file:line`` when known) and which field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from genreg.errors import InvalidArtifact

MAX_NESTING = 100
YAML_MAX_ALIAS_NODES = 10_000
_SURROGATE = re.compile("[\ud800-\udfff]")


def field_part(p: Any) -> str:
    """One field-path component for a one-line message (odd keys are quoted and escaped)."""
    t = str(p)
    return t if t.isprintable() and t.strip() == t and t else repr(t)


def _field(path: list[Any]) -> str:
    return ".".join(field_part(p)[:80] for p in path) if path else "(top level)"


def check_value(value: Any, where: str, *, max_depth: int = MAX_NESTING) -> Any:
    """``value`` unchanged if it is plain, bounded JSON (see the module doc), else
    :class:`InvalidArtifact` naming the field. Iterative: any depth is safe to check."""
    stack: list[tuple[Any, list[Any]]] = [(value, [])]
    while stack:
        v, path = stack.pop()
        if isinstance(v, str):
            m = _SURROGATE.search(v)
            if m:
                raise InvalidArtifact(
                    f"{where}: {_field(path)}: string has a lone surrogate "
                    f"U+{ord(m.group(0)):04X} (not valid Unicode)"
                )
        elif v is None or isinstance(v, (bool, int)):
            continue
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise InvalidArtifact(
                    f"{where}: {_field(path)}: {v} is not allowed (numbers must be finite)"
                )
        elif isinstance(v, (dict, list)):
            if len(path) >= max_depth:
                raise InvalidArtifact(
                    f"{where}: {_field(path[:3])}...: nested deeper than {max_depth} levels"
                )
            if isinstance(v, dict):
                for k, item in v.items():
                    if not isinstance(k, str):
                        raise InvalidArtifact(
                            f"{where}: {_field(path)}: mapping key {k!r} is not a string"
                        )
                    if _SURROGATE.search(k):
                        raise InvalidArtifact(
                            f"{where}: {_field(path)}: key has a lone surrogate (not valid Unicode)"
                        )
                    stack.append((item, [*path, k]))
            else:
                stack.extend((item, [*path, i]) for i, item in enumerate(v))
        else:
            raise InvalidArtifact(
                f"{where}: {_field(path)}: a {type(v).__name__} value is not plain JSON"
            )
    return value


# ---- JSON -----------------------------------------------------------------------------------
class _Dup(ValueError):
    pass


class _NonFinite(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Dup(k)
        out[k] = v
    return out


def _constant(name: str) -> Any:
    raise _NonFinite(f"{name} is not allowed (numbers must be finite)")


def _dup_line(text: str, key: str) -> int | None:
    """Line of the second occurrence of ``"key":`` (best effort, for the message)."""
    pat = re.compile(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:")
    hits = [m.start() for m in pat.finditer(text)]
    return text.count("\n", 0, hits[1]) + 1 if len(hits) > 1 else None


def load_json(text: str | bytes, where: str, *, line: int | None = None) -> Any:
    """``json.loads`` with the rules above; errors read ``where[:line]: invalid JSON: ...``.

    ``line`` is the line number of ``text`` in its file (JSONL records)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            loc = f"{where}:{line}" if line else where
            raise InvalidArtifact(f"{loc}: not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        ln = line if line is not None else exc.lineno
        raise InvalidArtifact(f"{where}:{ln}: invalid JSON: {exc.msg}") from None
    except _Dup as exc:
        key = str(exc)
        dup_ln = line if line is not None else _dup_line(text, key)
        loc = f"{where}:{dup_ln}" if dup_ln else where
        raise InvalidArtifact(f"{loc}: invalid JSON: duplicate key {key!r}") from None
    except RecursionError:
        loc = f"{where}:{line}" if line else where
        raise InvalidArtifact(
            f"{loc}: invalid JSON: nested deeper than {MAX_NESTING} levels"
        ) from None
    except _NonFinite as exc:
        loc = f"{where}:{line}" if line else where
        raise InvalidArtifact(f"{loc}: invalid JSON: {exc}") from None
    except ValueError:  # the only other one: an integer over Python's 4,300-digit limit
        loc = f"{where}:{line}" if line else where
        raise InvalidArtifact(f"{loc}: invalid JSON: integer has more than 4300 digits") from None
    return check_value(value, f"{where}:{line}" if line else where)


# ---- YAML -----------------------------------------------------------------------------------
def _yaml_loader() -> Any:
    import yaml
    from yaml.constructor import ConstructorError, SafeConstructor
    from yaml.nodes import MappingNode, SequenceNode

    class Loader(yaml.SafeLoader):  # the pure-Python one: compose_node must be ours
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self._sizes: dict[int, int] = {}
            self._expanded = 0
            self._depth = 0

        def _size(self, node: Any) -> int:
            s = self._sizes.get(id(node))
            if s is None:
                s = 1
                if isinstance(node, SequenceNode):
                    s += sum(self._size(c) for c in node.value)
                elif isinstance(node, MappingNode):
                    s += sum(self._size(k) + self._size(v) for k, v in node.value)
                self._sizes[id(node)] = s
            return s

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                target = self.anchors.get(event.anchor)
                if target is not None:
                    self._expanded += self._size(target)
                    if self._expanded > YAML_MAX_ALIAS_NODES:
                        raise ConstructorError(
                            None,
                            None,
                            f"aliases expand to more than {YAML_MAX_ALIAS_NODES} nodes "
                            "(alias bomb?)",
                            event.start_mark,
                        )
            self._depth += 1
            try:
                if self._depth > MAX_NESTING:
                    raise ConstructorError(
                        None,
                        None,
                        f"nested deeper than {MAX_NESTING} levels",
                        self.peek_event().start_mark,
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            # Keys merged in with ``<<`` may be overridden; a mapping's own keys may not repeat.
            own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
            self.flatten_mapping(node)
            first_own = len(node.value) - own
            out: dict[Any, Any] = {}
            seen: set[Any] = set()
            for i, (key_node, value_node) in enumerate(node.value):
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, str):
                    raise ConstructorError(
                        None,
                        None,
                        f"mapping key {key!r} is not a string (quote it)",
                        key_node.start_mark,
                    )
                if i >= first_own:
                    if key in seen:
                        raise ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark
                        )
                    seen.add(key)
                out[key] = self.construct_object(value_node, deep=deep)
            return out

        def construct_yaml_float(self, node: Any) -> Any:
            v = SafeConstructor.construct_yaml_float(self, node)
            if not math.isfinite(v):
                raise ConstructorError(
                    None,
                    None,
                    f"{node.value} is not allowed (numbers must be finite)",
                    node.start_mark,
                )
            return v

        def construct_yaml_int(self, node: Any) -> Any:
            try:
                return SafeConstructor.construct_yaml_int(self, node)
            except ValueError:
                raise ConstructorError(
                    None, None, "integer has more than 4300 digits", node.start_mark
                ) from None

        def construct_yaml_timestamp(self, node: Any) -> Any:
            return self.construct_scalar(node)  # keep "2024-01-01" a string

        def refuse(self, node: Any) -> Any:
            raise ConstructorError(
                None,
                None,
                f"tag {node.tag} is not supported (plain JSON values only)",
                node.start_mark,
            )

    Loader.add_constructor("tag:yaml.org,2002:float", Loader.construct_yaml_float)
    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", Loader.construct_yaml_timestamp)
    for tag in ("binary", "set", "omap", "pairs"):
        Loader.add_constructor(f"tag:yaml.org,2002:{tag}", Loader.refuse)
    Loader.add_constructor(None, Loader.refuse)
    return Loader


_LOADER: Any = None


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` with the rules above; errors read ``where:line: invalid YAML: ...``."""
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = _yaml_loader()
    try:
        value = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidArtifact(f"{where}{line}: invalid YAML: {problem}") from None
    except RecursionError:
        raise InvalidArtifact(
            f"{where}: invalid YAML: nested deeper than {MAX_NESTING} levels"
        ) from None
    return check_value(value, where)
