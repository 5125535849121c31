"""The Python API for notebooks and scripts; the CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Mapping, Sequence

import numba
import xarray as xr

from .compile import RESOLUTIONS, CompiledScenario, compile_scenario
from .config import ConfigError, Scenario, load_scenario, resolve_strategy_class, strategy_construction_error
from .engine import OutputBuffers, simulate_batch
from .kernels import layout as L
from .results import (
    OutputError,
    ZarrBatchWriter,
    batch_dataset,
    check_output_path,
    claim_output,
    InMemoryCollector,
    open_results,
    output_format,
    provenance,
    save_dataset,
)
from .strategies import BUILTIN

__all__ = [
    "run",
    "simulate_replications",
    "load_scenario",
    "open_results",
    "make_strategies",
    "estimate_output_bytes",
    "estimate_memory_bytes",
    "ConfigError",
    "OutputError",
]

#: Largest batch the automatic batch size picks, and its per-batch output budget [bytes].
MAX_AUTO_BATCH = 64
BATCH_OUTPUT_BUDGET = 256 * 2**20
# Bytes per seller-market-period, seller-period and market-period in the in-engine
# float64 buffers (see kernels.layout) and in the final Dataset.
_ENGINE_BYTES = (8 * L.N_OUT_SM, 8 * L.N_OUT_S, 8 * L.N_OUT_M)
_DATASET_BYTES = (8 * 11 + 4 * 17, 8 * 3 + 4 * 2 + 1, 4)


def make_strategies(scenario: Scenario) -> list:
    """One fresh strategy object per seller population, in config order.

    Raises
    ------
    ValueError
        With ``problems`` when a built-in strategy refuses its ``strategy_params``.
    ConfigError
        When a user strategy's constructor raises: names the class, the population and
        the config file.
    """
    objects = []
    for index, pop in enumerate(scenario.sellers):
        cls = BUILTIN.get(pop.strategy) or resolve_strategy_class(pop.strategy)
        try:
            objects.append(cls(pop.strategy_params))
        except ValueError as exc:
            if hasattr(exc, "problems") or pop.strategy in BUILTIN:
                raise
            raise strategy_construction_error(scenario, index, exc) from None
        except Exception as exc:  # noqa: BLE001 - user code: report it as a config problem
            raise strategy_construction_error(scenario, index, exc) from None
    return objects


def _per_replication_bytes(compiled: CompiledScenario, sizes: tuple[int, int, int]) -> int:
    T, S, M = compiled.n_periods, compiled.n_sellers, compiled.n_markets
    return T * (S * M * sizes[0] + S * sizes[1] + M * sizes[2])


def estimate_output_bytes(compiled: CompiledScenario, replications: int) -> int:
    """Approximate size of the result Dataset in memory [bytes]."""
    return replications * _per_replication_bytes(compiled, _DATASET_BYTES)


def estimate_memory_bytes(compiled: CompiledScenario, replications: int, batch: int, in_memory: bool) -> int:
    """Approximate peak memory of a run [bytes]: one batch's engine buffers and Datasets,
    plus the whole result when it is collected in memory (``.nc`` or no output)."""
    per_batch = batch * _per_replication_bytes(compiled, _ENGINE_BYTES) + 2 * estimate_output_bytes(compiled, batch)
    return per_batch + (estimate_output_bytes(compiled, replications) if in_memory else 0)


def _auto_batch_size(compiled: CompiledScenario, replications: int) -> int:
    per = max(_per_replication_bytes(compiled, _ENGINE_BYTES), 1)
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
    """Memory available to a new allocation [bytes]: MemAvailable (free + reclaimable cache)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**34


@contextlib.contextmanager
def _numba_threads(threads: int | None):
    if threads is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


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
    max_memory_share: float = 0.6,
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
        Numba threads for the kernels (default: numba's setting, all cores).
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
    max_memory_share : float
        A result collected in memory (``.nc`` or no ``out``) may take at most this share
        of the memory available now; a larger one is refused before any work, with the
        size a ``.zarr`` store would take instead.

    Returns
    -------
    xarray.Dataset
        Dims ``replication``, ``time``, ``seller``, ``market``; see
        :data:`cbecsim.results.VARIABLES`. Lazily backed by the store when ``out`` is Zarr.

    Raises
    ------
    ConfigError, OutputError, ValueError
        Before any simulation work, for a bad scenario, output path or argument, an
        output that would not fit in memory or on disk, or one another process is
        writing (:class:`cbecsim.files.OutputLockedError`).

    Notes
    -----
    While ``out`` is written its writer lock is held; partial outputs of the same name
    left by killed runs are removed first (a warning on the ``cbecsim`` logger says so).
    SIGTERM is handled like Ctrl-C (when this runs in the main thread and no handler is
    installed): the partial output is removed and :class:`KeyboardInterrupt` raised.
    """
    if overrides or not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides)
    replications = scenario.replications if replications is None else int(replications)
    seed = scenario.seed if seed is None else int(seed)
    problems = [("replications", f"must be >= 1, got {replications}")] if replications < 1 else []
    _check_arguments(problems, seed, resolution, batch_size, threads)
    make_strategies(scenario)  # refuse bad strategy_params before any work

    compiled = compile_scenario(scenario, resolution)
    streaming = out is not None and output_format(out) == "zarr"
    if out is not None:
        check_output_path(out, overwrite)
    batch = batch_size or _auto_batch_size(compiled, replications)
    from .guards import check_run, estimate_run, terminate_as_interrupt

    check_run(estimate_run(compiled, replications, batch, out), out, max_memory_share, _available_memory())
    with contextlib.ExitStack() as stack:
        if out is not None:
            stack.callback(claim_output(out, overwrite).release)
        stack.enter_context(terminate_as_interrupt())
        return _simulate_and_write(scenario, compiled, replications, seed, batch, threads, out, overwrite,
                                   streaming, progress)


def _simulate_and_write(scenario, compiled, replications, seed, batch, threads, out, overwrite, streaming,
                        progress) -> xr.Dataset:
    total = replications * compiled.n_days
    report = progress if callable(progress) else None
    done = 0

    def on_day(_day: int) -> None:
        nonlocal done
        done += current
        if report is not None and (_day % 7 == 6 or _day == compiled.n_days - 1):
            report(done, total)

    attrs = provenance(compiled, seed, replications)
    writer = ZarrBatchWriter(out, overwrite) if streaming else InMemoryCollector(replications)
    buffers = OutputBuffers(compiled, batch)
    try:
        with _numba_threads(threads):
            for replication0 in range(0, replications, batch):
                current = min(batch, replications - replication0)
                output = simulate_batch(
                    compiled, make_strategies(scenario), seed, replication0, current, on_day, buffers
                )
                writer.write(batch_dataset(compiled, output))
        if streaming:
            return open_results(writer.close(attrs))
    except BaseException:
        if streaming:
            writer.abort()
        raise
    result = writer.close(attrs)
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
    buffers = OutputBuffers(compiled, batch)
    collector = InMemoryCollector(count, first)
    with _numba_threads(threads):
        for offset in range(0, count, batch):
            current = min(batch, count - offset)
            output = simulate_batch(
                compiled, make_strategies(scenario), seed, first + offset, current, None, buffers
            )
            collector.write(batch_dataset(compiled, output))
    return collector.close({})
