""" "Did you mean ...?" for a reference that names no artifact."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_artifact(kind: str, name: str, known: Iterable[tuple[str, str]]) -> str | None:
    """The known ``KIND:NAME`` closest to ``kind:name`` (same name under another kind counts
    as close), or None when nothing is close enough."""
    candidates = [f"{k}:{n}" for k, n in known]
    same_name = [c for c in candidates if c.split(":", 1)[1] == name]
    if same_name:
        return same_name[0]
    match = difflib.get_close_matches(f"{kind}:{name}", candidates, n=1, cutoff=0.75)
    return match[0] if match else None
