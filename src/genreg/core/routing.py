"""Routing configs: ordered routes (match -> target) and a required default.

A route matches when every condition it states holds: ``tags`` (all present), ``any_tags``
(at least one), ``query_regex`` (a search with the linear-time RE2 engine: no
backreferences or lookaround, so no pattern can stall the server; see :func:`compile_regex`), ``min_tokens``/``max_tokens`` (inclusive,
on the query's token length). Token length uses ``length_tokenizer`` when the config names
one, else the documented estimate :func:`estimate_tokens`. The first matching route wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from genreg.core.inputs import check_value
from genreg.core.validation import parse_structured, schema_errors
from genreg.errors import InvalidArtifact

_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
# Queries longer than this are refused by the HTTP API (POST /v1/routing/NAME/explain).
MAX_QUERY_CHARS = 10_000
# RE2 program memory for one pattern; a pattern that needs more is refused at registration.
REGEX_MAX_MEM = 8 << 20


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (google-re2): matching time is linear in the query, for
    every pattern. Raises ``ValueError`` with a one-line reason for patterns RE2 cannot run
    (backreferences, lookaround) or that need more than :data:`REGEX_MAX_MEM`."""
    import re2

    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = REGEX_MAX_MEM
    try:
        return re2.compile(pattern, opts)
    except re2.error as exc:
        msg = exc.args[0] if exc.args else exc
        msg = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
        try:
            re.compile(pattern)
        except re.error as py_exc:
            raise ValueError(f"invalid regex: {py_exc}") from None
        raise ValueError(
            f"regex not supported by the linear-time RE2 engine ({msg}); backreferences and "
            "lookaround are not available"
        ) from None


def estimate_tokens(text: str) -> int:
    """Documented estimate (used when no tokenizer is configured): the larger of the count of
    words-and-punctuation marks and ceil(characters / 4) -- the usual rule of thumb for
    BPE tokenizers on English text. Labelled as an estimate wherever it is reported."""
    return max(len(_WORD_RE.findall(text)), math.ceil(len(text) / 4))


@dataclass
class Decision:
    route: str  # route name, or "default"
    target: dict[str, Any]
    reasons: list[str]  # why the chosen route matched
    rejected: list[tuple[str, str]]  # (route, first failing condition) for earlier routes
    query_tokens: int
    token_counter: str

    def to_dict(self) -> dict[str, Any]:
        """The one public form (CLI ``explain --json`` and ``POST /v1/routing/{name}/explain``)."""
        return {
            "route": self.route,
            "target": self.target,
            "reasons": self.reasons,
            "rejected": [{"route": r, "why": w} for r, w in self.rejected],
            "query_tokens": self.query_tokens,
            "token_counter": self.token_counter,
        }


@dataclass
class Routing:
    config: dict[str, Any]

    def routes(self) -> list[dict[str, Any]]:
        return list(self.config.get("routes") or [])

    def _check(
        self, match: dict[str, Any], query: str, tags: set[str], n: int
    ) -> tuple[bool, list[str]]:
        why: list[str] = []
        if "tags" in match:
            need = set(match["tags"])
            if not need <= tags:
                return False, [f"missing tag(s) {', '.join(sorted(need - tags))}"]
            why.append(f"has tags {', '.join(sorted(need))}")
        if "any_tags" in match:
            hit = set(match["any_tags"]) & tags
            if not hit:
                return False, [f"none of tags {', '.join(match['any_tags'])}"]
            why.append(f"has tag {', '.join(sorted(hit))}")
        if "query_regex" in match:
            try:
                m = compile_regex(match["query_regex"]).search(query)
            except ValueError as exc:  # a config registered before RE2 was the engine
                raise InvalidArtifact(f"query_regex /{match['query_regex']}/: {exc}") from None
            if not m:
                return False, [f"query does not match /{match['query_regex']}/"]
            why.append(f"query matches /{match['query_regex']}/ at {m.group(0)!r}")
        lo, hi = match.get("min_tokens"), match.get("max_tokens")
        if lo is not None and n < lo:
            return False, [f"{n} tokens < min_tokens {lo}"]
        if hi is not None and n > hi:
            return False, [f"{n} tokens > max_tokens {hi}"]
        if lo is not None or hi is not None:
            why.append(
                f"{n} tokens within [{lo if lo is not None else 0}, {hi if hi is not None else 'inf'}]"
            )
        if not why:
            why.append("route has no conditions (matches everything)")
        return True, why

    def choose(
        self,
        query: str,
        tags: list[str] | None = None,
        counter: Callable[[str], int] | None = None,
    ) -> Decision:
        count = counter or estimate_tokens
        n = count(query)
        counter_name = self.config.get("length_tokenizer") or "estimate"
        tagset = set(tags or [])
        rejected: list[tuple[str, str]] = []
        for r in self.routes():
            ok, why = self._check(r.get("match") or {}, query, tagset, n)
            if ok:
                return Decision(r["name"], r["target"], why, rejected, n, counter_name)
            rejected.append((r["name"], why[0]))
        return Decision(
            "default",
            self.config["default"]["target"],
            ["no earlier route matched"],
            rejected,
            n,
            counter_name,
        )


def _invalid(where: str, errors: list[str]) -> InvalidArtifact:
    """Every error of a file at once, each with its field path."""
    head = errors[0] if len(errors) == 1 else f"{len(errors)} errors: " + "; ".join(errors)
    return InvalidArtifact(f"{where}: {head}", details={"errors": errors})


def parse_routing_data(data: Any, where: str) -> Routing:
    if not isinstance(data, dict):
        raise InvalidArtifact(
            f"{where}: a routing config must be a mapping with 'routes' and 'default'"
        )
    check_value(data, where)
    errors = schema_errors("routing", data)
    if errors:
        raise _invalid(where, errors)
    names: set[str] = set()
    for i, r in enumerate(data.get("routes") or []):
        if r["name"] in names or r["name"] == "default":
            errors.append(f"routes.{i}.name: duplicate or reserved route name {r['name']!r}")
        names.add(r["name"])
        rx = (r.get("match") or {}).get("query_regex")
        if rx is not None:
            try:
                compile_regex(rx)
            except ValueError as exc:
                errors.append(f"routes.{i}.match.query_regex: {exc}")
        m = r.get("match") or {}
        if "min_tokens" in m and "max_tokens" in m and m["min_tokens"] > m["max_tokens"]:
            errors.append(f"routes.{i}.match: min_tokens > max_tokens")
    if errors:
        raise _invalid(where, errors)
    return Routing(data)


def parse_routing_file(path: Path) -> Routing:
    return parse_routing_data(parse_structured(path, kind="routing"), str(path))
