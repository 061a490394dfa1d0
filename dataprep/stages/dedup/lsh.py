"""Choosing LSH bands x rows from a threshold and a target recall, and the S-curve.

A pair with Jaccard J shares at least one of b bands of r rows with probability
P(J) = 1 - (1 - J^r)^b. datasketch picks (b, r) minimising a weighted sum of false positive
and negative areas, which at threshold 0.8 / 128 perms catches only ~40% of pairs sitting
exactly at 0.8. We instead require P(threshold) >= recall and, among the (b, r) that meet it,
take the one with the least false-candidate area (integral of P over [0, threshold]).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

CURVE_POINTS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def catch_probability(jaccard: float | np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - np.asarray(jaccard, dtype=np.float64) ** rows) ** bands


def false_area(threshold: float, bands: int, rows: int) -> float:
    grid = np.linspace(0.0, threshold, 257)
    values = catch_probability(grid, bands, rows)
    return float(np.sum((values[1:] + values[:-1]) * 0.5 * np.diff(grid)))


def choose_bands(num_perm: int, threshold: float, recall: float) -> tuple[int, int]:
    """(bands, rows) meeting the recall at the threshold with the fewest false candidates."""
    best: tuple[float, int, int] | None = None
    fallback: tuple[float, int, int] | None = None
    for rows in range(1, num_perm + 1):
        most = num_perm // rows
        p = float(catch_probability(threshold, most, rows))
        if fallback is None or p > fallback[0]:
            fallback = (p, most, rows)
        if p < recall:
            continue
        # Fewer bands means fewer false candidates: take the fewest that meet the recall.
        bands = next(
            b for b in range(1, most + 1) if catch_probability(threshold, b, rows) >= recall
        )
        area = false_area(threshold, bands, rows)
        if best is None or area < best[0]:
            best = (area, bands, rows)
    chosen = best if best is not None else fallback
    assert chosen is not None
    return chosen[1], chosen[2]


def s_curve(bands: int, rows: int) -> dict[str, float]:
    return {f"{j:.2f}": round(float(catch_probability(j, bands, rows)), 4) for j in CURVE_POINTS}


def verify_floor(threshold: float, recall: float, num_perm: int) -> float:
    """The estimated Jaccard a candidate needs to pass --verify.

    An estimate from num_perm slots has standard error sqrt(J(1-J)/num_perm), so demanding
    estimate >= threshold would drop half the pairs sitting at the threshold. Lowering the bar
    by z(recall) standard errors lets a pair at the threshold pass with probability `recall`
    (the same promise the band choice makes) while still rejecting LSH's far-off candidates.
    """
    z = NormalDist().inv_cdf(recall)
    return threshold - z * float(np.sqrt(threshold * (1.0 - threshold) / num_perm))
