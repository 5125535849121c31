"""Experiment designs: the points of a sweep and their factor values.

* ``grid``: every combination of the factors' levels (the last factor varies fastest);
  ``n = prod(len(levels))``.
* ``lhs``: a Latin hypercube of ``points`` points (:class:`scipy.stats.qmc.LatinHypercube`).
* ``sobol``: Saltelli's scheme from SALib (:func:`SALib.sample.sobol.sample`), ``points``
  base samples N giving ``N * (k + 2)`` points, or ``N * (2k + 2)`` with
  ``second_order``, in the row order :func:`SALib.analyze.sobol.analyze` expects.

lhs and sobol sample the unit hypercube and map each column through its factor: a range
``uniform`` (``min + u (max - min)``), ``loguniform`` (uniform in log), ``integer``
(``min .. max``, equal chances); a factor with ``levels`` takes ``levels[floor(u n)]``.
The unit sample is kept (``design_unit`` in the store) with the SALib problem
(``salib_problem`` attribute, unit bounds), so Sobol indices can be computed straight
from per-scenario outcomes. The design's random stream is seeded with the spec's seed:
the same spec gives the same points.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

import numpy as np

from .spec import Factor, SweepSpec

__all__ = ["Design", "build_design", "coordinate_values"]


@dataclasses.dataclass(frozen=True)
class Design:
    """The points of a sweep. ``values[p][i]`` is factor ``i``'s value at point ``p``."""

    kind: str
    names: tuple[str, ...]
    paths: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    unit: np.ndarray | None  # (P, k) unit-hypercube sample (lhs, sobol)
    salib_problem: dict | None
    base_samples: int | None = None
    second_order: bool = False

    @property
    def n_points(self) -> int:
        return len(self.values)

    def overrides(self, point: int) -> dict[str, Any]:
        """``{path: value}`` of one point, for :func:`cbecsim.config.load_scenario`."""
        return dict(zip(self.paths, self.values[point]))

    def labels(self, point: int) -> dict[str, Any]:
        """``{factor name: value}`` of one point (for messages)."""
        return dict(zip(self.names, self.values[point]))

    def coordinate(self, factor: int) -> np.ndarray:
        return coordinate_values([row[factor] for row in self.values])


def _python(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def coordinate_values(values: list[Any]) -> np.ndarray:
    """A typed array for a factor's values: bool, int64, float64 or str (JSON for others)."""
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    return np.array([v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for v in values],
                    dtype=str)


def _from_unit(factor: Factor, u: np.ndarray) -> list[Any]:
    if factor.levels is not None:
        n = len(factor.levels)
        index = np.minimum((u * n).astype(np.int64), n - 1)
        return [factor.levels[i] for i in index]
    assert factor.min is not None and factor.max is not None  # Factor._one_kind: a range has both
    low, high = float(factor.min), float(factor.max)
    if factor.distribution == "integer":
        span = int(high) - int(low)
        return [int(low) + int(min(math.floor(x * (span + 1)), span)) for x in u]
    if factor.distribution == "loguniform":
        return [float(math.exp(math.log(low) + x * (math.log(high) - math.log(low)))) for x in u]
    return [float(low + x * (high - low)) for x in u]


def build_design(spec: SweepSpec, seed: int) -> Design:
    """The points of ``spec``'s design (deterministic given ``seed``)."""
    names = tuple(f.label for f in spec.factors)
    paths = tuple(f.path for f in spec.factors)
    k = len(spec.factors)
    if spec.design == "grid":
        levels = [f.levels for f in spec.factors if f.levels is not None]
        assert len(levels) == k  # SweepSpec: a grid needs levels for every factor
        rows = tuple(tuple(_python(v) for v in combo) for combo in itertools.product(*levels))
        return Design("grid", names, paths, rows, None, None)
    problem = {"num_vars": k, "names": list(names), "bounds": [[0.0, 1.0]] * k}
    if spec.design == "lhs":
        from scipy.stats import qmc

        unit = qmc.LatinHypercube(d=k, rng=np.random.default_rng(seed)).random(spec.points)
        base_samples = None
    else:
        from SALib.sample import sobol

        unit = sobol.sample(problem, spec.points, calc_second_order=spec.second_order, seed=seed)
        base_samples = spec.points
    columns = [_from_unit(f, unit[:, i]) for i, f in enumerate(spec.factors)]
    rows = tuple(tuple(_python(col[p]) for col in columns) for p in range(unit.shape[0]))
    return Design(spec.design, names, paths, rows, np.asarray(unit, dtype=np.float64), problem, base_samples,
                  spec.second_order)
