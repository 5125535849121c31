"""Robustness criteria: one score per candidate from its mean outcome in each future.

Every criterion works on *utilities* ``u = sign x mean`` (``sign`` +1 for an outcome
to maximise, -1 to minimise), so "higher is better" throughout, and reports the score
back in the outcome's units:

* ``expected``: the weighted mean of the futures' means, ``sum_f w_f m_f``;
* ``worst_case``: the mean in the worst future for the candidate, ``sign x min_f u_f``;
* ``percentile`` (q): the weighted q-th percentile of ``u`` over futures (inverted CDF:
  the smallest ``u_f`` whose cumulative weight reaches q/100), back as ``sign x u``;
  q = 10 is a pessimistic summary, q = 50 the weighted median;
* ``minimax_regret``: ``max_f (best_f - u_f)``, where ``best_f`` is the best utility any
  candidate reached in future f (Savage's minimax regret); always minimised, >= 0.

References: Savage (1951), "The theory of statistical decision", JASA 46:55-67; Kwakkel,
Eker & Pruyt (2016) "How robust is a robust policy?" (robustness metrics in exploratory
modelling).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["CRITERIA", "weighted_percentile", "robust_scores", "regret_matrix", "score_direction"]

CRITERIA = ("expected", "worst_case", "percentile", "minimax_regret")


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Inverted-CDF weighted percentile: the smallest value whose cumulative weight share >= q/100."""
    values = np.asarray(values, float)
    weights = np.asarray(weights, float)
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order]) / weights.sum()
    index = int(np.searchsorted(cumulative, q / 100.0 - 1e-12, side="left"))
    return float(values[order][min(index, values.size - 1)])


def regret_matrix(means: np.ndarray, sign: float) -> np.ndarray:
    """Regret of each candidate in each future, ``best_f - u_cf`` [outcome units], shape (C, F).

    ``means`` is (C, F); NaN means stay NaN (and do not set ``best_f``).
    """
    utility = sign * np.asarray(means, float)
    best = np.nanmax(np.where(np.isfinite(utility), utility, -np.inf), axis=0)
    return best[None, :] - utility


def robust_scores(means: np.ndarray, weights: np.ndarray, sign: float, criterion: str,
                  percentile: float | None = None) -> np.ndarray:
    """Score of each candidate: array (C,) from ``means`` (C, F) and future ``weights`` (F,).

    A candidate with a NaN mean in any future scores NaN (its outcome is undefined there,
    e.g. a margin without revenue); for ``minimax_regret`` the best per future is taken
    over the candidates with finite means.
    """
    means = np.atleast_2d(np.asarray(means, float))
    weights = np.asarray(weights, float)
    utility = sign * means
    undefined = ~np.isfinite(means).all(axis=1)
    if criterion == "expected":
        scores = (means * weights[None, :]).sum(axis=1) / weights.sum()
    elif criterion == "worst_case":
        scores = sign * utility.min(axis=1)
    elif criterion == "percentile":
        if percentile is None:
            raise ValueError("criterion percentile needs a percentile")
        scores = np.array([sign * weighted_percentile(row, weights, percentile) if np.isfinite(row).all()
                           else np.nan for row in utility])
    elif criterion == "minimax_regret":
        complete = np.where(undefined[:, None], np.nan, means)
        scores = np.nanmax(regret_matrix(complete, sign), axis=1) if (~undefined).any() else np.full(len(means), np.nan)
    else:
        raise ValueError(f"unknown robustness criterion {criterion!r} (known: {', '.join(CRITERIA)})")
    return np.where(undefined, np.nan, scores)


#: An Optuna study direction.
Direction = Literal["minimize", "maximize"]


def score_direction(direction: Direction, criterion: str) -> Direction:
    """Optuna direction of a robust score: regret is minimised whatever the outcome's direction."""
    return "minimize" if criterion == "minimax_regret" else direction
