"""Showing a storage URL without its credentials: the one redactor for object-store and
database URLs (errors, ``gc``/``db`` reports, the API's ``details.store``).

User info is everything before the *last* ``@`` of the part before the query string -- a
secret may itself contain ``/`` (AWS secret keys often do), so the authority is not cut at
the first ``/``. Over-redacting a path that holds an ``@`` is the safe failure."""

from __future__ import annotations


def _split(url: str) -> tuple[str, str] | None:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    return scheme, rest.rpartition("@")[2]


def redact_url(url: str) -> str:
    """``url`` without user info (``user:secret@``), query string or fragment."""
    parts = _split(url)
    if parts is None:
        return url
    return f"{parts[0]}://{parts[1]}"


def endpoint_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (no user info, path or query); ``unknown`` when
    ``url`` has no scheme."""
    parts = _split(url)
    if parts is None:
        return "unknown"
    return f"{parts[0]}://{parts[1].split('/', 1)[0]}"
