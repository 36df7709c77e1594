"""gc's byte accounting of a materialised index copy whose ``lists.ivfdata`` is a hard link to
a stored object: the bytes are counted once (with the object), and a dry run reports what the
real run then reclaims; its summary calls only entries past the grace period stale."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genreg.retrieval import ann


def test_gc_counts_a_hard_linked_index_copy_once_dry_run_equal_to_real(
    registry: Any, genreg_home: Path, cli: Any
) -> None:
    lists = registry.objects.put_bytes(b"L" * 7000)  # an unreferenced stored object
    src = registry.objects.local_path(lists)
    assert src is not None
    dead = genreg_home / "cache" / "ann" / ("ee" * 32)  # a copy of an index nothing names
    dead.mkdir(parents=True)
    (dead / ann.TRUNK).write_bytes(b"x" * 1000)
    os.link(src, dead / ann.LISTS)

    dry = registry.gc(dry_run=True, grace_seconds=0)
    assert [(c["size"], c["linked"]) for c in dry.caches] == [(1000, 7000)]
    total = dry.bytes_reclaimable + dry.cache_bytes_reclaimable
    assert lists in {o["digest"] for o in dry.unreferenced}
    out = cli("gc")  # a dry run, default grace: the entry is recent, not stale
    assert out.exit_code == 0, out.output
    assert "1 unneeded index cache entry, 0 stale (past the grace period)" in out.output
    assert "1000 B  recent, kept (+6.8 KiB linked to a stored object)" in out.output

    real = registry.gc(dry_run=False, grace_seconds=0)
    assert lists in real.deleted and not dead.exists()
    assert real.bytes_reclaimable + real.cache_bytes_reclaimable == total
    assert [(c["size"], c["linked"]) for c in real.caches] == [(1000, 7000)]
