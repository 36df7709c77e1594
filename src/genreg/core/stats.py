"""Paired significance tests over per-query metric values (numpy, imported lazily).

Both tests look at the per-query differences ``d_i = b_i - a_i`` of two runs on the same
queries (same order), with ``delta = mean(d)``.

- :func:`paired_bootstrap`: resample the queries with replacement ``n_resamples`` times.
  The confidence interval is the percentile interval of the resampled mean differences.
  The two-sided p-value uses the bootstrap distribution shifted to mean 0 (the null of no
  difference): ``p = (#{|mean(d*) - delta| >= |delta|} + 1) / (n_resamples + 1)``.
- :func:`paired_randomization`: under the null the sign of each ``d_i`` is exchangeable;
  flip signs at random ``n_resamples`` times:
  ``p = (#{|mean(s * d)| >= |delta|} + 1) / (n_resamples + 1)``.

The ``+ 1`` counts the observed statistic itself, so a p-value is never 0. Identical inputs
give ``delta = 0``, a CI of ``[0, 0]`` and ``p = 1``. Results depend only on the inputs and
the seed (``numpy.random.default_rng(seed)``); work is chunked so memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from genreg.errors import ConfigError

_CHUNK_ELEMENTS = 4_000_000  # resamples x queries per vectorised chunk
_EPS = 1e-12  # float slack when comparing resampled statistics with the observed one


@dataclass(frozen=True)
class BootstrapResult:
    mean_delta: float
    ci_low: float
    ci_high: float
    p_value: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _deltas(a: Sequence[float], b: Sequence[float], n_resamples: int) -> Any:
    import numpy as np

    if len(a) != len(b):
        raise ConfigError(f"paired test needs equal lengths, got {len(a)} and {len(b)} values")
    if len(a) == 0:
        raise ConfigError("paired test needs at least one query")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise ConfigError("paired test values must be finite numbers")
    return d


def _chunks(n_resamples: int, n: int) -> list[int]:
    size = max(1, _CHUNK_ELEMENTS // n)
    return [min(size, n_resamples - s) for s in range(0, n_resamples, size)]


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Mean difference ``mean(b) - mean(a)`` with a bootstrap CI and two-sided p-value."""
    import numpy as np

    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence!r}")
    d = _deltas(a, b, n_resamples)
    n = len(d)
    delta = float(d.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    done = 0
    for size in _chunks(n_resamples, n):
        idx = rng.integers(0, n, size=(size, n))
        means[done : done + size] = d[idx].mean(axis=1)
        done += size
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    extreme = int(np.count_nonzero(np.abs(means - delta) >= abs(delta) - _EPS))
    p = (extreme + 1) / (n_resamples + 1)
    return BootstrapResult(delta, _clean(low), _clean(high), min(1.0, p))


def paired_randomization(
    a: Sequence[float],
    b: Sequence[float],
    *,
    n_resamples: int = 10000,
    seed: int = 0,
) -> float:
    """Two-sided p-value of a sign-flip permutation test on the paired differences."""
    import numpy as np

    d = _deltas(a, b, n_resamples)
    n = len(d)
    observed = abs(float(d.mean()))
    rng = np.random.default_rng(seed)
    extreme = 0
    for size in _chunks(n_resamples, n):
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
        means = (signs * d).mean(axis=1)
        extreme += int(np.count_nonzero(np.abs(means) >= observed - _EPS))
    return min(1.0, (extreme + 1) / (n_resamples + 1))


def _clean(x: float) -> float:
    """A float, with -0.0 and float dust around 0 reported as 0."""
    x = float(x)
    return 0.0 if math.isclose(x, 0.0, abs_tol=1e-15) else x


__all__ = ["BootstrapResult", "paired_bootstrap", "paired_randomization"]
