"""The hot read path: resolve a reference and answer with pre-serialised bytes.

A version is immutable, so its JSON body (metadata + content) is built once and kept in
memory keyed by ``(kind, name, version)``; the content digest is its ETag.

Resolutions (ref -> version + finished body) are cached per thread and validated on EVERY
request with SQLite's ``PRAGMA data_version`` (a few microseconds), which changes whenever
any other connection -- this process's writer or another process -- commits. So an alias
moved anywhere is visible to the very next request: no server-side staleness at all; the only
staleness is the ``max-age`` (default 5 s) clients and proxies may apply. Without a
cheap change counter (PostgreSQL) every request resolves through SQL.

Pinned bodies carry nothing mutable (no alias list): a response marked ``immutable`` must
never change. Alias/latest bodies add ``alias`` and ``aliases`` in front.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from genreg.core import artifacts as kinds
from genreg.core.kinds import BY_NAME, BY_URL
from genreg.core.refs import MAX_VERSION, Ref, validate_name
from genreg.core.types import VersionInfo
from genreg.errors import InvalidRef, NotFound

if TYPE_CHECKING:
    from genreg.core.prompt import Prompt
    from genreg.service import Registry

IMMUTABLE = "public, max-age=31536000, immutable"
URL_KINDS = {segment: k.name for segment, k in BY_URL.items()}  # plural, singular, corpora
_MAX_CACHED_BODY = 1 << 20
_MAX_ENTRIES = 4096


def url_kind(segment: str) -> str:
    k = URL_KINDS.get(segment)
    if k is None:
        raise NotFound(
            f"unknown kind {segment!r}: expected one of prompts, evalsets, routing, corpus"
        )
    return k


def make_ref(
    kind: str,
    name: str,
    version: int | None = None,
    alias: str | None = None,
    digest: str | None = None,
) -> Ref:
    """A Ref from URL parts; at most one selector."""
    validate_name(name)
    given = [x for x in (version, alias, digest) if x is not None]
    if len(given) > 1:
        raise InvalidRef("give at most one of version, alias or digest")
    if version is not None:
        if version < 1:
            raise InvalidRef(f"invalid version {version}: versions start at 1")
        if version > MAX_VERSION:
            raise InvalidRef(f"invalid version: at most {MAX_VERSION} (2^63 - 1)")
        return Ref(kind, name, version=version)
    if digest is not None:
        from genreg.core.refs import parse_ref

        d = digest if digest.startswith("sha256:") else "sha256:" + digest
        return parse_ref(f"{kind}:{name}@{d}")
    if alias is not None and alias != "latest":
        validate_name(alias, "alias")
        return Ref(kind, name, alias=alias)
    return Ref(kind, name)


def immutable(ref: Ref) -> bool:
    """A version number or a FULL digest always names the same bytes."""
    return ref.version is not None or len(ref.digest_prefix or "") == 64


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    for part in if_none_match.split(","):
        p = part.strip()
        if p == "*" or p.removeprefix("W/") == etag:
            return True
    return False


class Reader:
    def __init__(self, registry: Registry) -> None:
        self.reg = registry
        self._bodies: dict[tuple[str, str, int], bytes] = {}
        self._prompts: dict[tuple[str, int], Prompt] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def resolve(self, ref: Ref) -> VersionInfo:
        return self.lookup(ref)[0]

    def lookup(self, ref: Ref) -> tuple[VersionInfo, bytes]:
        """The version ``ref`` names and its response body (pinned or alias form)."""
        dv = self.reg.data_version()  # changes whenever another connection commits
        if dv is None:  # no cheap change counter (PostgreSQL): resolve every time
            info = self.reg.resolve(ref, suggest=False)
            return info, self._body_for(ref, info)
        local = self._local
        cache: dict[Ref, tuple[VersionInfo, bytes]] | None = getattr(local, "cache", None)
        if cache is None or local.dv != dv or len(cache) > _MAX_ENTRIES:
            cache = local.cache = {}
            local.dv = dv
        hit = cache.get(ref)
        if hit is None:
            info = self.reg.resolve(ref, suggest=False)
            hit = cache[ref] = (info, self._body_for(ref, info))
        return hit

    def answer(
        self, ref: Ref, if_none_match: str | None, *, private: bool, max_age: int
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` for a GET of ``ref``: 200, or 304 when the ETag matches."""
        info, body = self.lookup(ref)
        cc = IMMUTABLE if immutable(ref) else f"public, max-age={max_age}"
        if private:
            cc = cc.replace("public", "private", 1)
        headers = {"etag": f'"{info.digest}"', "cache-control": cc}
        if etag_matches(if_none_match, headers["etag"]):
            return 304, headers, b""
        return 200, headers, body

    def _body_for(self, ref: Ref, info: VersionInfo) -> bytes:
        return self.body(info) if immutable(ref) else self.alias_body(info, ref.alias)

    def body(self, info: VersionInfo) -> bytes:
        """The immutable JSON body of one version (cached)."""
        key = (info.kind, info.name, info.version)
        b = self._bodies.get(key)
        if b is not None:
            return b
        d = info.public_dict(aliases=False)
        if BY_NAME[info.kind].content_in_body:  # a corpus manifest can be huge: metadata only
            d["content"] = kinds.content_json(info.kind, self.reg.content(info))
        b = json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(b) <= _MAX_CACHED_BODY:
            with self._lock:
                if len(self._bodies) >= _MAX_ENTRIES:
                    self._bodies.pop(next(iter(self._bodies)))
                self._bodies[key] = b
        return b

    def alias_body(self, info: VersionInfo, alias: str | None) -> bytes:
        head = json.dumps({"alias": alias, "aliases": list(info.aliases)}, separators=(",", ":"))
        return head[:-1].encode("utf-8") + b"," + self.body(info)[1:]

    def prompt(self, info: VersionInfo) -> Prompt:
        key = (info.name, info.version)
        p = self._prompts.get(key)
        if p is None:
            p = kinds.decode("prompt", self.reg.content(info))
            with self._lock:
                if len(self._prompts) >= _MAX_ENTRIES:
                    self._prompts.pop(next(iter(self._prompts)))
                self._prompts[key] = p
        return p
