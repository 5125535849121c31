"""The Python API for notebooks and scripts; the CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

import numba
import xarray as xr

from .compile import RESOLUTIONS, CompiledScenario, compile_scenario
from .config import ConfigError, Scenario, load_scenario, resolve_strategy_class
from .engine import simulate_batch
from .results import (
    OutputError,
    ZarrBatchWriter,
    allocate_outputs,
    check_output_path,
    open_results,
    output_format,
    outputs_dataset,
    provenance,
    reset_outputs,
    save_dataset,
)
from .schema import dataset_bytes
from .strategies import BUILTIN, StrategyParamsError

__all__ = [
    "run",
    "simulate_replications",
    "load_scenario",
    "open_results",
    "make_strategies",
    "estimate_output_bytes",
    "ConfigError",
    "OutputError",
]

#: Largest batch the automatic batch size picks, and the per-batch output budget [bytes]
#: of a streamed (.zarr) run. Each replication's state (about 100 KB for the baseline) is
#: stepped by one thread for a whole stretch of days, so the batch size does not change
#: what must stay in cache; it sets the parallel grain and the streamed batch's memory.
MAX_AUTO_BATCH = 64
BATCH_OUTPUT_BUDGET = 256 * 2**20


def make_strategies(scenario: Scenario | CompiledScenario) -> list:
    """One fresh strategy object per seller population, in config order.

    Raises
    ------
    StrategyParamsError
        A strategy refused its ``strategy_params``; problems carry the full path
        (``sellers.N.strategy_params.key``).
    ConfigError
        A user strategy cannot be imported.
    """
    if isinstance(scenario, CompiledScenario):
        entries = list(zip(scenario.population_strategies, scenario.population_strategy_params))
    else:
        entries = [(pop.strategy, pop.strategy_params) for pop in scenario.sellers]
    objects = []
    for i, (name, params) in enumerate(entries):
        cls = BUILTIN.get(name) or resolve_strategy_class(name)
        try:
            objects.append(cls(params))
        except StrategyParamsError as exc:
            raise StrategyParamsError(
                [(f"sellers.{i}.strategy_params" + (f".{path}" if path else ""), message)
                 for path, message in exc.problems]
            ) from None
    return objects


def _sizes(compiled: CompiledScenario, replications: int) -> dict[str, int]:
    return {"replication": replications, "time": compiled.n_periods, "seller": compiled.n_sellers,
            "market": compiled.n_markets}


def estimate_output_bytes(compiled: CompiledScenario, replications: int) -> int:
    """Size of the result Dataset in memory [bytes], from the variable table (:mod:`cbecsim.schema`)."""
    return dataset_bytes(_sizes(compiled, replications))


def _auto_batch_size(compiled: CompiledScenario, replications: int) -> int:
    per = max(estimate_output_bytes(compiled, 1), 1)
    return max(1, min(MAX_AUTO_BATCH, replications, BATCH_OUTPUT_BUDGET // per))


def _check_arguments(problems: list, seed: int, resolution: str, batch_size: int | None,
                     threads: int | None) -> None:
    """Add the problems with the common run arguments to ``problems``; raise if any."""
    if not 0 <= seed < 2**63:
        problems.append(("seed", f"must be in 0 .. 2**63-1, got {seed}"))
    if resolution not in RESOLUTIONS:
        problems.append(("resolution", f"must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}"))
    if batch_size is not None and batch_size < 1:
        problems.append(("batch_size", f"must be >= 1, got {batch_size}"))
    if threads is not None and not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        problems.append(("threads", f"must be in 1 .. {numba.config.NUMBA_NUM_THREADS} on this machine, got {threads}"))
    if problems:
        raise ConfigError(problems)


def _available_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**34


@contextlib.contextmanager
def _thread_pool(threads: int | None):
    """``(pool, threads)`` for the engine: ``threads`` (default: every core numba may use)
    threads that advance disjoint replications at once, or no pool for one thread."""
    count = numba.config.NUMBA_NUM_THREADS if threads is None else int(threads)
    if count <= 1:
        yield None, 1
        return
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="cbecsim") as pool:
        yield pool, count


def run(
    scenario: Scenario | str | os.PathLike | Mapping[str, Any],
    replications: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    resolution: str = "day",
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> xr.Dataset:
    """Simulate a scenario and return the outcome distributions.

    Parameters
    ----------
    scenario : Scenario, path to a YAML config, or mapping
    replications : int, optional
        Number of Monte Carlo replications (default: the scenario's).
    seed : int, optional
        Master seed (default: the scenario's). Same seed => bit-identical data variables
        for any ``batch_size`` and ``threads``.
    batch_size : int, optional
        Replications simulated together; memory is bounded by the batch. Default: up to
        64, fewer if the batch's output buffers would exceed 256 MiB.
    threads : int, optional
        Threads that advance replications at once (default: every core numba may use,
        ``NUMBA_NUM_THREADS``).
    resolution : {"day", "week", "month"}
        Output period; flows are summed, levels taken at the period end, shares averaged.
    out : path, optional
        ``.nc`` (written once at the end) or ``.zarr`` (each batch streamed as it
        finishes, so memory stays flat however many replications). Written under a
        temporary name and renamed when complete.
    overwrite : bool
        Replace an existing ``out``.
    overrides : ``["a.b=c"]`` or ``{"a.b": value}``, optional
        Applied to the scenario before validation.
    progress : bool or callable(done_replication_days, total_replication_days)

    Returns
    -------
    xarray.Dataset
        Dims ``replication``, ``time``, ``seller``, ``market``; see
        :data:`cbecsim.results.VARIABLES`. Lazily backed by the store when ``out`` is Zarr.

    Raises
    ------
    ConfigError, OutputError, ValueError
        Before any simulation work, for a bad scenario, output path or argument.
    """
    if overrides or not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides)
    replications = scenario.replications if replications is None else int(replications)
    seed = scenario.seed if seed is None else int(seed)
    problems = [("replications", f"must be >= 1, got {replications}")] if replications < 1 else []
    _check_arguments(problems, seed, resolution, batch_size, threads)
    compiled = compile_scenario(scenario, resolution)
    make_strategies(compiled)  # refuse bad strategy_params before any work
    streaming = out is not None and output_format(out) == "zarr"
    if out is not None:
        check_output_path(out, overwrite)
    if not streaming:
        needed = estimate_output_bytes(compiled, replications)
        if needed > 0.6 * _available_memory():
            raise OutputError(
                f"the result would take about {needed / 2**30:.1f} GiB in memory; write it to a .zarr "
                "store (batches are streamed to disk) or use a coarser --resolution"
            )
    batch = min(batch_size or _auto_batch_size(compiled, replications), replications)
    total = replications * compiled.n_days
    report = progress if callable(progress) else None
    done = 0

    def on_days(days: int) -> None:
        nonlocal done
        done += days * current
        if report is not None:
            report(done, total)

    attrs = provenance(compiled, seed, replications)
    writer = ZarrBatchWriter(out, overwrite) if streaming else None
    # Streamed: one batch of output arrays, reused; in memory: the whole run's arrays,
    # which the kernels fill in place (the result wraps them, no copy).
    outputs = allocate_outputs(compiled, batch if streaming else replications)
    try:
        with _thread_pool(threads) as (pool, count):
            for replication0 in range(0, replications, batch):
                current = min(batch, replications - replication0)
                if streaming:
                    if replication0 > 0:
                        reset_outputs(outputs)
                    simulate_batch(compiled, make_strategies(compiled), seed, replication0, current, outputs, 0,
                                   on_days, pool, count)
                    writer.write(outputs_dataset(compiled, outputs, replication0, current))
                else:
                    simulate_batch(compiled, make_strategies(compiled), seed, replication0, current, outputs,
                                   replication0, on_days, pool, count)
        if streaming:
            return open_results(writer.close(attrs))
    except BaseException:
        if streaming:
            writer.abort()
        raise
    result = outputs_dataset(compiled, outputs, 0, attrs=attrs)
    if out is not None:
        save_dataset(result, out, overwrite)
    return result


def simulate_replications(
    scenario: Scenario | str | os.PathLike | Mapping[str, Any],
    first: int,
    count: int,
    seed: int | None = None,
    resolution: str = "day",
    batch_size: int | None = None,
    threads: int | None = None,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Simulate replications ``first .. first + count - 1`` of a scenario, in memory.

    The building block of sweeps: the counter-based generator is keyed by the replication
    index, so the Dataset equals ``run(scenario, replications=first + count, seed=seed)``
    sliced to ``replication=slice(first, first + count)`` (bit-identical data variables),
    whatever ``batch_size`` or ``threads``; and replication ``r`` of two scenarios run
    with the same seed sees the same shocks (common random numbers).

    Parameters
    ----------
    scenario : Scenario, path to a YAML config, or mapping
    first, count : int
        First replication index (>= 0) and number of replications (>= 1).
    seed : int, optional
        Master seed (default: the scenario's).
    resolution : {"day", "week", "month"}
    batch_size : int, optional
        Replications simulated together (default as in :func:`run`).
    threads : int, optional
        Numba threads (default: numba's setting).
    overrides : optional
        Dotted-path overrides applied before validation, as in :func:`run`.

    Returns
    -------
    xarray.Dataset
        Dims ``replication`` (coordinate ``first .. first + count - 1``), ``time``,
        ``seller``, ``market``; the data variables of :data:`cbecsim.results.VARIABLES`
        plus ``exit_day`` and ``initial_cash``. No provenance attributes (see
        :func:`cbecsim.results.provenance`). Memory: the result plus one batch of
        engine buffers.

    Raises
    ------
    ConfigError
        Before any work, for a bad scenario or argument.
    """

    if overrides or not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides)
    seed = scenario.seed if seed is None else int(seed)
    problems = []
    if first < 0:
        problems.append(("first", f"must be >= 0, got {first}"))
    if count < 1:
        problems.append(("count", f"must be >= 1, got {count}"))
    _check_arguments(problems, seed, resolution, batch_size, threads)
    compiled = compile_scenario(scenario, resolution)
    batch = min(batch_size or _auto_batch_size(compiled, count), count)
    outputs = allocate_outputs(compiled, count)
    with _thread_pool(threads) as (pool, n_threads):
        for offset in range(0, count, batch):
            current = min(batch, count - offset)
            simulate_batch(compiled, make_strategies(compiled), seed, first + offset, current, outputs, offset,
                           None, pool, n_threads)
    return outputs_dataset(compiled, outputs, first)
