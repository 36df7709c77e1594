"""The one timestamp format of stored rows and lineage: ISO-8601 UTC with microseconds and a
``Z`` (``2026-11-28T04:21:26.123456Z``), portable across databases and sortable as text."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> str:
    """The current time in the store's timestamp format."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
