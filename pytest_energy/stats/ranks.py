"""Ranks, the one home of the rank statistics the gate (Mann-Whitney intervals), the change points
(their rank test) and the quality metrics (Spearman's rho) share."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank (as Spearman's rho needs)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


@lru_cache(maxsize=256)
def rank_sum_counts(n: int, m: int, upto: int) -> tuple[int, ...]:
    """How many of the C(n+m, n) orderings of two samples give the Mann-Whitney U = 0, 1, .., upto.

    These are the coefficients of the Gaussian binomial [n+m choose n]_q, the product over
    i = 1..n of (1 - q^(m+i)) / (1 - q^i), truncated at degree ``upto`` (exact integers).
    """
    coefficients = [1] + [0] * upto
    for i in range(1, n + 1):
        step = m + i
        for degree in range(upto, step - 1, -1):  # multiply by (1 - q^(m+i))
            coefficients[degree] -= coefficients[degree - step]
        for degree in range(i, upto + 1):  # divide by (1 - q^i)
            coefficients[degree] += coefficients[degree - i]
    return tuple(coefficients)
