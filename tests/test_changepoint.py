"""Change points of a trend series (pytest_energy.stats.changepoint): steps found, noise and stray runs not."""

from __future__ import annotations

import random

import pytest
from scipy.stats import mannwhitneyu

from pytest_energy.stats.changepoint import detect, rank_pvalue


def _noisy(level: float, count: int, noise: float, rng: random.Random) -> list[float]:
    return [level * (1 + rng.gauss(0, noise)) for _ in range(count)]


def test_steps_found_where_the_level_changes_and_not_in_noise():
    rng = random.Random(7)
    flat = _noisy(10, 40, 0.01, rng)
    assert detect(flat) == []
    stepped = _noisy(10, 20, 0.01, rng) + _noisy(11, 20, 0.01, rng)
    step, = detect(stepped)
    assert step.index == 20 and step.ratio == pytest.approx(1.1, abs=0.02)
    small = _noisy(10, 20, 0.005, rng) + _noisy(10.3, 20, 0.005, rng)
    assert detect(small) == []  # a real 3 % shift is under the 5 % a step must reach


def test_one_stray_run_is_not_a_step_but_two_at_the_end_are():
    rng = random.Random(11)
    series = _noisy(10, 30, 0.01, rng)
    spiked = list(series)
    spiked[12] *= 1.4
    assert detect(spiked) == []
    tail = series[:-2] + [v * 1.3 for v in series[-2:]]
    step, = detect(tail)
    assert step.index == 28 and step.after > 12.5


def test_steps_false_alarm_rate_on_flat_noisy_series_is_low():
    rng = random.Random(5)
    alarms = sum(bool(detect(_noisy(10, 30, 0.03, rng))) for _ in range(200))
    assert alarms <= 4  # at most 2 % of noisy flat series get a step



def test_contended_runs_rarely_make_a_level_and_the_rank_test_is_why():
    """One run in ten reads 20-40 % high (a neighbour on the runner): clusters of them are no step."""
    rng = random.Random(21)
    series = [[10 * (1 + rng.gauss(0, 0.01) + (rng.uniform(0.2, 0.4) if rng.random() < 0.1 else 0.0))
               for _ in range(30)] for _ in range(300)]
    with_ranks = sum(bool(detect(values)) for values in series)
    fit_alone = sum(bool(detect(values, max_pvalue=None)) for values in series)
    assert with_ranks <= 12 and fit_alone >= 2 * with_ranks  # at most 4 %, and the rank test halves it


def test_a_lasting_step_up_and_back_is_two_change_points():
    rng = random.Random(3)
    series = _noisy(10, 40, 0.01, rng)
    lasting = series[:20] + [v * 1.1 for v in series[20:32]] + series[32:]
    up, down = detect(lasting)
    assert (up.index, down.index) == (20, 32)
    assert up.ratio == pytest.approx(1.1, abs=0.02) and down.ratio == pytest.approx(1 / 1.1, abs=0.02)


def test_an_old_level_holds_three_runs_the_newest_two():
    assert detect([1.0, 1.0, 2.0, 2.0, 2.0, 2.0]) == []  # an old level of two runs is not a level
    assert [p.index for p in detect([1.0] * 20 + [2.0, 2.0])] == [20]  # 2 of 22 runs on top: p 0.009
    assert detect([1.0, 1.0, 1.0, 2.0]) == []  # a single run is never a level


@pytest.mark.parametrize("sizes", [(2, 8), (3, 27), (5, 5), (12, 40)])
def test_the_rank_test_is_mann_whitneys_exact_two_sided_p(sizes):
    rng = random.Random(sum(sizes))
    a = [rng.gauss(0.8, 1) for _ in range(sizes[0])]
    b = [rng.gauss(0, 1) for _ in range(sizes[1])]
    exact = mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
    assert rank_pvalue(a, b) == pytest.approx(exact, rel=1e-9)
    assert rank_pvalue(b, a) == pytest.approx(exact, rel=1e-9)


def test_large_samples_use_the_normal_approximation():
    rng = random.Random(9)
    a = [rng.gauss(0.3, 1) for _ in range(60)]
    b = [rng.gauss(0, 1) for _ in range(90)]
    expected = mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
    assert rank_pvalue(a, b) == pytest.approx(expected, rel=1e-6)
