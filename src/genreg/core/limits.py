"""Size caps of registered content, per kind (issue 14 item 16).

A version's canonical content, and any file read to build it, may be at most
``max_bytes(kind)`` bytes. Defaults below; ``GENREG_MAX_<KIND>_BYTES`` (e.g.
``GENREG_MAX_PROMPT_BYTES=4194304``) overrides one kind. Corpus snapshots are not capped
as a whole (they are chunked into packs); each corpus document file is capped by
``GENREG_MAX_DOCUMENT_BYTES``.
"""

from __future__ import annotations

import os

from genreg.errors import ConfigError

MiB = 1 << 20
DEFAULTS = {
    "prompt": 1 * MiB,
    "routing": 1 * MiB,
    "config": 1 * MiB,  # eval config files
    "evalset": 256 * MiB,
    "runfile": 2048 * MiB,  # TREC/JSONL run files scored by `eval score`
    "document": 64 * MiB,  # one file of a corpus tree / one JSONL record
}


def max_bytes(kind: str) -> int:
    var = f"GENREG_MAX_{kind.upper()}_BYTES"
    raw = os.environ.get(var)
    if raw is None:
        return DEFAULTS[kind]
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r}: expected a number of bytes") from None
    if value < 1:
        raise ConfigError(f"{var}={raw!r}: must be at least 1")
    return value


def human(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB and n % (MiB // 16) == 0 else f"{n} bytes"
