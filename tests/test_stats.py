"""Paired significance tests: real differences are detected, no difference is p = 1."""

from __future__ import annotations

import random

import pytest

from genreg.core.stats import BootstrapResult, paired_bootstrap, paired_randomization
from genreg.errors import ConfigError


def shifted(n: int = 200, shift: float = 0.08, seed: int = 1) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    a = [rng.random() for _ in range(n)]
    b = [min(1.0, x + shift + rng.gauss(0, 0.05)) for x in a]
    return a, b


def test_known_improvement_has_small_p_and_ci_excluding_zero() -> None:
    a, b = shifted()
    boot = paired_bootstrap(a, b, n_resamples=2000)
    assert boot.mean_delta == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
    assert 0 < boot.ci_low < boot.mean_delta < boot.ci_high
    assert boot.p_value < 0.01
    assert paired_randomization(a, b, n_resamples=2000) < 0.01
    # a regression is the mirror image
    back = paired_bootstrap(b, a, n_resamples=2000)
    assert back.ci_high < 0 and back.mean_delta == pytest.approx(-boot.mean_delta)


def test_identical_inputs_give_p_one_and_zero_interval() -> None:
    a = [0.1, 0.5, 0.9, 0.3]
    assert paired_bootstrap(a, list(a)) == BootstrapResult(0.0, 0.0, 0.0, 1.0)
    assert paired_randomization(a, list(a)) == 1.0


def test_noise_only_difference_is_not_significant() -> None:
    rng = random.Random(7)
    a = [rng.random() for _ in range(100)]
    b = [x + rng.choice([-0.05, 0.05]) for x in a]
    assert paired_randomization(a, b, seed=3) > 0.05
    res = paired_bootstrap(a, b, seed=3)
    assert res.ci_low < 0 < res.ci_high


def test_same_seed_same_result_other_seed_differs() -> None:
    a, b = shifted(n=60, shift=0.01, seed=4)
    assert paired_bootstrap(a, b, seed=11) == paired_bootstrap(a, b, seed=11)
    assert paired_randomization(a, b, seed=11) == paired_randomization(a, b, seed=11)
    assert paired_bootstrap(a, b, seed=11) != paired_bootstrap(a, b, seed=12)
    assert paired_randomization(a, b, seed=11) != paired_randomization(a, b, seed=12)


def test_chunked_resampling_matches_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    import genreg.core.stats as stats

    a, b = shifted(n=50, shift=0.02)
    whole = paired_bootstrap(a, b, n_resamples=500), paired_randomization(a, b, n_resamples=500)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 50 * 7)  # chunks of 7 resamples
    chunked = paired_bootstrap(a, b, n_resamples=500), paired_randomization(a, b, n_resamples=500)
    # not bit-identical streams, but the same statistics within Monte Carlo error
    assert chunked[0].mean_delta == whole[0].mean_delta
    assert chunked[0].ci_low == pytest.approx(whole[0].ci_low, abs=0.01)
    assert chunked[1] == pytest.approx(whole[1], abs=0.1)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        ([0.1, 0.2], [0.1], {}, "equal lengths, got 2 and 1"),
        ([], [], {}, "at least one query"),
        ([0.1], [float("nan")], {}, "finite"),
        ([0.1], [0.2], {"n_resamples": 0}, "n_resamples"),
        ([0.1], [0.2], {"confidence": 1.5}, "confidence"),
    ],
)
def test_invalid_input_is_a_real_error(a, b, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        paired_bootstrap(a, b, **kwargs)
    if "confidence" not in kwargs:
        with pytest.raises(ConfigError, match=message):
            paired_randomization(a, b, **kwargs)
