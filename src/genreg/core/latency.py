"""Latency figures of a run: per-query latencies (seconds) -> the reported percentiles.

``mode`` says what one latency is: ``per-query`` (each query embedded and searched on its own,
timed alone: the latency one request sees) or ``per-batch`` (a batch's time divided by its
size: every query of a batch gets the same figure, so p50 = p95 = p99 within a batch).
"""

from __future__ import annotations

from typing import Any

PER_QUERY = "per-query"
PER_BATCH = "per-batch"
MODES = (PER_QUERY, PER_BATCH)


def latency_summary(
    latencies: list[float], wall: float, batch_size: int, mode: str = PER_BATCH
) -> dict[str, Any]:
    import numpy as np

    if not latencies:
        return {"queries": 0, "batch_size": batch_size, "mode": mode}
    ms = np.asarray(latencies) * 1000.0
    return {
        "queries": len(latencies),
        "batch_size": batch_size,
        "mode": mode,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "qps": len(latencies) / wall if wall > 0 else None,
        "wall_seconds": wall,
    }
