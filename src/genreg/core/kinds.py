"""One description per artifact kind: what the rest of genreg asks about a kind, in one place
(instead of ``kind == "evalset"`` checks scattered over the API, the lock file and the
service). Parsing, canonical form, pretty, diff and summaries per kind are in
:mod:`genreg.core.artifacts`, dispatched on these names. Imports nothing heavy (the client
and the fast CLI read it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    url: str  # the API path segment: /v1/{url}/{name}
    #: reads need the ``evalsets:read`` scope and are never cached publicly: gold answers
    #: must not leak into prompts or public caches
    secret: bool = False
    #: served (by pinned/alias reads) with the content in the body; False: metadata only
    #: (a corpus manifest can hold millions of lines)
    content_in_body: bool = True
    #: ``genreg lock`` may pin it (apps load it at run time)
    lockable: bool = False
    #: registered from a file or payload (``register``/``push``); False: ``corpus snapshot``
    from_files: bool = True
    #: the version digest is the sha256 of the stored bytes (False: a corpus digest is the
    #: manifest digest, computed over its canonical entries)
    digest_is_content: bool = True
    #: ``export``/``import`` bundles carry it (False: ``genreg corpus export``)
    exportable: bool = True
    #: refs may select a split (``#test``)
    has_splits: bool = False


PROMPT = Kind("prompt", "prompts", lockable=True)
EVALSET = Kind("evalset", "evalsets", secret=True, has_splits=True)
CORPUS = Kind(
    "corpus",
    "corpus",
    content_in_body=False,
    from_files=False,
    digest_is_content=False,
    exportable=False,
)
ROUTING = Kind("routing", "routing", lockable=True)

BY_NAME: dict[str, Kind] = {k.name: k for k in (PROMPT, EVALSET, CORPUS, ROUTING)}
#: API path segments -> kind: the plural/url form, the singular, and ``corpora``
BY_URL: dict[str, Kind] = {
    **{k.url: k for k in BY_NAME.values()},
    **BY_NAME,
    "corpora": CORPUS,
}


def kind(name: str) -> Kind:
    """The description of a known kind (``KeyError`` otherwise; validate refs first)."""
    return BY_NAME[name]
