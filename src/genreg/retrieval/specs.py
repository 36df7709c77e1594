"""Shared parsing for the ``--chunking`` / ``--index`` option values."""

from __future__ import annotations

import json
from typing import Any

from genreg.errors import ConfigError


def json_object_or_text(text: str, option: str) -> Any:
    """A value that starts with ``{`` is parsed as JSON (errors name ``option``); any other
    value is returned stripped, for the caller's short form."""
    text = text.strip()
    if not text.startswith("{"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option} {text!r}: invalid JSON: {exc.msg}") from None
