"""One evaluation: a candidate's outcomes in every future on one block of replications.

:func:`evaluate_candidate` is a pure function of its payload (picklable, no storage, no
globals), so it runs the same in this process, in a local worker process or on a Dask
worker. Common random numbers: every candidate and every future of a study is simulated
with the same seed and the same replication indices, so replication ``r`` of two
candidates saw the same shoppers, lead times and parameter draws and their difference is
paired.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

__all__ = ["evaluate_candidate", "EvaluationError"]


class EvaluationError(RuntimeError):
    """An evaluation that could not be done; ``fatal`` when no candidate could be (a missing variable)."""

    def __init__(self, message: str, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


def evaluate_candidate(payload: dict[str, Any]) -> dict[str, Any]:
    """Simulate one candidate in every future and reduce each outcome per replication.

    ``payload``: ``base`` (raw base scenario mapping), ``overrides`` (the candidate's
    resolved config paths -> values), ``futures`` (list of ``[name, overrides]``),
    ``focal`` (population index), ``outcomes`` (names), ``seed``, ``first``, ``count``
    (replication indices ``first .. first + count - 1``), ``resolution``,
    ``batch_size``, ``threads`` (numba threads for this evaluation, restored after; None:
    numba's setting); ``tag`` is passed back unchanged.

    Returns
    -------
    dict
        ``values``: ``{outcome: {future: [float] * count}}``; ``seller_market_days``
        (simulated, all futures); ``seconds``, ``pid``, ``host``, ``tag``. On failure
        ``error`` (a one-line reason) and ``fatal`` instead of ``values``.
    """
    import numpy as np

    from ..api import simulate_replications
    from ..config import ConfigError, load_scenario
    from .objectives import MissingVariableError, focal_mask, outcome_values

    started = time.perf_counter()
    out: dict[str, Any] = {"tag": payload.get("tag"), "pid": os.getpid(), "host": socket.gethostname(),
                           "first": payload["first"], "count": payload["count"]}
    threads = payload.get("threads")
    if threads:
        import numba

        # numba.config sets its options with globals()[name] = value, which mypy cannot see.
        threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    values: dict[str, dict[str, list[float]]] = {name: {} for name in payload["outcomes"]}
    work = 0
    for future, future_overrides in payload["futures"]:
        try:
            scenario = load_scenario(payload["base"], {**payload["overrides"], **future_overrides})
            result = simulate_replications(scenario, payload["first"], payload["count"], seed=payload["seed"],
                                           resolution=payload["resolution"], batch_size=payload.get("batch_size"),
                                           threads=threads)
            index = payload["focal"]
            first = sum(p.count for p in scenario.sellers[:index])
            population = scenario.sellers[index]
            mask = focal_mask(result, first, population.count, population.label)
            for name in payload["outcomes"]:
                values[name][future] = [float(v) for v in outcome_values(result, name, mask)]
            served = int(np.asarray(result["served"].values).sum())
            work += served * scenario.horizon.days * payload["count"]
        except MissingVariableError as exc:
            out.update(error=str(exc), fatal=True, seconds=time.perf_counter() - started)
            return out
        except ConfigError as exc:
            shown = "; ".join(f"{p}: {m}" if p else m for p, m in exc.problems)
            out.update(error=f"future {future}: invalid scenario: {shown}", fatal=False,
                       seconds=time.perf_counter() - started)
            return out
        except Exception as exc:  # noqa: BLE001 - reported with the trial that failed
            message = str(exc).splitlines()[0] if str(exc) else ""
            out.update(error=f"future {future}: {type(exc).__name__}: {message}", fatal=False,
                       seconds=time.perf_counter() - started)
            return out
    out.update(values=values, seller_market_days=int(work), seconds=round(time.perf_counter() - started, 4))
    return out
