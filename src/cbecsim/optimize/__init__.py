"""Strategy optimisation under policy uncertainty (``cbecsim optimize``).

>>> import cbecsim
>>> result = cbecsim.optimize("configs/optimize/traffic_first_us_truce.yaml", "opt")  # doctest: +SKIP
>>> result.trials.sort_values("robust_score").tail()                                # doctest: +SKIP
>>> result.best_scenario                                                             # doctest: +SKIP
>>> result.compare()                                                                 # doctest: +SKIP

See :mod:`cbecsim.optimize.spec` (spec format), :mod:`~cbecsim.optimize.objectives`
(the outcome registry), :mod:`~cbecsim.optimize.robust` (criteria),
:mod:`~cbecsim.optimize.study` (storage, racing, resume) and
:mod:`~cbecsim.optimize.outputs` (files in DIR).
"""

import types as _types

from .._lazy import lazy_attributes

# Imported on first use, so that registering ``cbecsim optimize`` does not load Optuna.
_WHERE = {
    "optimize": "api", "OptimizeResult": "api",
    "OptimizeSpec": "spec", "LoadedOptimize": "spec", "load_optimize_spec": "spec",
    "OUTCOMES": "objectives", "Outcome": "objectives", "register_outcome": "objectives",
    "OptimizeError": "study", "open_study": "study",
    "robust_scores": "robust", "CRITERIA": "robust",
}

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())

__all__ = ["optimize", "OptimizeResult", "OptimizeSpec", "LoadedOptimize", "load_optimize_spec", "OUTCOMES",
           "Outcome", "register_outcome", "OptimizeError", "open_study", "robust_scores", "CRITERIA"]


class _CallablePackage(_types.ModuleType):
    """``cbecsim.optimize`` is both this package and the function: importing the package
    binds it on :mod:`cbecsim` under the same name as the lazily exported function, so
    the package itself forwards calls to :func:`cbecsim.optimize.api.optimize`."""

    def __call__(self, *args, **kwargs):
        from .api import optimize

        return optimize(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallablePackage
del _types  # keep dir(cbecsim.optimize) to the exported names
