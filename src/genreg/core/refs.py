"""The one reference grammar used by the CLI, the API, the SDK and eval configs.

::

    KIND:NAME               latest version           prompt:rag-answer
    KIND:NAME@ALIAS         an alias                 prompt:rag-answer@production
    KIND:NAME@vN            a version number         corpus:docs@v3
    KIND:NAME@sha256:HEX    a digest prefix (>= 6)   evalset:gold@sha256:9f2c1e
    ...#SPLIT               an eval-set split        evalset:gold@v3#test
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genreg.core.kinds import BY_NAME
from genreg.errors import InvalidName, InvalidRef

KINDS: tuple[str, ...] = tuple(BY_NAME)  # prompt, evalset, corpus, routing
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{6,64})$")
MIN_DIGEST_PREFIX = 6
LATEST = "latest"
# Version numbers are stored as signed 64-bit integers (SQLite, PostgreSQL BIGINT).
MAX_VERSION = 2**63 - 1


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if valid, else raise :class:`InvalidName` saying why."""
    if not name:
        raise InvalidName(f"invalid {what} '': must not be empty")
    if ".." in name:
        raise InvalidName(f"invalid {what} {name!r}: '..' is not allowed")
    if not NAME_RE.match(name):
        raise InvalidName(
            f"invalid {what} {name!r}: use lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 100 characters"
        )
    return name


def validate_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidRef(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    return kind


@dataclass(frozen=True)
class Ref:
    """A parsed reference. Exactly one of alias / version / digest_prefix may be set."""

    kind: str
    name: str
    alias: str | None = None
    version: int | None = None
    digest_prefix: str | None = None  # hex only, without "sha256:"
    split: str | None = None

    @property
    def is_pinned(self) -> bool:
        return self.version is not None or self.digest_prefix is not None

    @property
    def artifact(self) -> str:
        return f"{self.kind}:{self.name}"

    def selector(self) -> str | None:
        if self.version is not None:
            return f"v{self.version}"
        if self.digest_prefix is not None:
            return f"sha256:{self.digest_prefix}"
        return self.alias

    def __str__(self) -> str:
        s = self.artifact
        sel = self.selector()
        if sel:
            s += f"@{sel}"
        if self.split:
            s += f"#{self.split}"
        return s

    def with_split(self, split: str | None) -> Ref:
        return Ref(self.kind, self.name, self.alias, self.version, self.digest_prefix, split)


def parse_ref(text: str, *, kind: str | None = None) -> Ref:
    """Parse a reference; ``kind`` supplies the default when ``text`` has no ``KIND:``."""
    raw = text.strip()
    if not raw:
        raise InvalidRef("invalid reference '': expected KIND:NAME[@ALIAS|@vN|@sha256:HEX]")
    split: str | None = None
    if "#" in raw:
        raw, split = raw.split("#", 1)
        validate_name(split, "split")
    head, sep, sel = raw.partition("@")
    if ":" in head:
        k, name = head.split(":", 1)
    elif kind is not None:
        k, name = kind, head
    else:
        raise InvalidRef(
            f"invalid reference {text!r}: expected KIND:NAME (kinds: {', '.join(KINDS)})"
        )
    validate_kind(k)
    if kind is not None and k != kind:
        raise InvalidRef(f"reference {text!r} is a {k}, expected a {kind}")
    validate_name(name)
    if split is not None and not BY_NAME[k].has_splits:
        raise InvalidRef(f"invalid reference {text!r}: '#split' applies only to evalsets")
    if not sep:
        return Ref(k, name, split=split)
    if not sel:
        raise InvalidRef(f"invalid reference {text!r}: nothing after '@'")
    m = _VERSION_RE.match(sel)
    if m:
        if len(m.group(1)) > 19 or int(m.group(1)) > MAX_VERSION:
            raise InvalidRef(f"invalid reference {text[:60]!r}: version number too large")
        return Ref(k, name, version=int(m.group(1)), split=split)
    if re.match(r"^v[0-9]+$", sel):
        raise InvalidRef(f"invalid reference {text!r}: versions are numbered from v1")
    if sel.startswith("sha256:"):
        d = _DIGEST_RE.match(sel.lower())
        if not d:
            raise InvalidRef(
                f"invalid reference {text!r}: a digest needs 'sha256:' and at least "
                f"{MIN_DIGEST_PREFIX} hex digits"
            )
        return Ref(k, name, digest_prefix=d.group(1), split=split)
    validate_name(sel, "alias")
    if sel == LATEST:
        return Ref(k, name, split=split)
    return Ref(k, name, alias=sel, split=split)
