"""The Python API for notebooks and scripts; the CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

import numba
import xarray as xr

from .compile import RESOLUTIONS, CompiledScenario, compile_scenario
from .config import ConfigError, Scenario, load_scenario, resolve_strategy_class, strategy_construction_error
from .engine import BatchSimulation, simulate_batch
from .kernels import layout as L
from .kernels import state as K
from .results import (
    OutputError,
    allocate_outputs,
    batch_writer,
    check_output_path,
    claim_output,
    open_results,
    output_format,
    outputs_dataset,
    provenance,
    reset_outputs,
    slice_outputs,
)
from .schema import dataset_bytes
from .strategies import BUILTIN, StrategyParamsError

__all__ = [
    "run",
    "run_pair",
    "simulate_replications",
    "load_scenario",
    "open_results",
    "make_strategies",
    "estimate_output_bytes",
    "estimate_memory_bytes",
    "ConfigError",
    "OutputError",
]

#: Largest batch the automatic batch size picks, the per-batch output budget of a
#: streamed (.zarr) run and the per-batch state budget [bytes]. Each replication's state
#: (about 100 KB for the baseline) is stepped by one thread for a whole stretch of days,
#: so the batch size does not change what must stay in cache; it sets how many
#: replications one strategy review acts on at once (a review's Python cost is mostly per
#: call, so large batches spread it thin), and the memory of a streamed batch (a streamed
#: run keeps two sets of batch outputs per thread, see _simulate).
MAX_AUTO_BATCH = 512
BATCH_OUTPUT_BUDGET = 32 * 2**20
BATCH_STATE_BUDGET = 64 * 2**20


def make_strategies(scenario: Scenario | CompiledScenario) -> list:
    """One fresh strategy object per seller population, in config order.

    Raises
    ------
    StrategyParamsError
        A strategy refused its ``strategy_params``; problems carry the full path
        (``sellers.N.strategy_params.key``).
    ConfigError
        A user strategy cannot be imported, or (given a Scenario) its constructor raised:
        the message names the class, the population and the config file.
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
        except Exception as exc:  # noqa: BLE001 - user code: report it as a config problem
            if name in BUILTIN or not isinstance(scenario, Scenario):
                raise
            raise strategy_construction_error(scenario, i, exc) from None
    return objects


def _sizes(compiled: CompiledScenario, replications: int) -> dict[str, int]:
    return {"replication": replications, "time": compiled.n_periods, "seller": compiled.n_sellers,
            "market": compiled.n_markets}


def estimate_output_bytes(compiled: CompiledScenario, replications: int) -> int:
    """Size of the result Dataset in memory [bytes], from the variable table (:mod:`cbecsim.schema`)."""
    return dataset_bytes(_sizes(compiled, replications))


def _state_bytes(compiled: CompiledScenario) -> int:
    """Bytes of one replication's engine state and work space."""
    S, M = compiled.n_sellers, compiled.n_markets
    per_listing = 8 * (16 + L.N_WINDOW + L.N_LAYER_SM + K.N_ACC + L.N_STOCK + 1)
    return S * M * per_listing + S * 8 * (20 + L.N_LEVERS)


def estimate_memory_bytes(compiled: CompiledScenario, replications: int, batch: int, in_memory: bool) -> int:
    """Approximate peak memory of a run [bytes]: the engine state of the batches running
    at once, and either the whole result (collected in memory: ``.nc`` or no output; the
    kernels fill it in place) or one batch of output arrays per thread (streamed to
    ``.zarr``), plus the Dataset a streamed batch is written from."""
    workers = max(1, min(numba.get_num_threads(), -(-replications // max(batch, 1))))
    state = workers * batch * _state_bytes(compiled)
    if in_memory:
        return state + estimate_output_bytes(compiled, replications)
    return state + (2 * workers + 1) * estimate_output_bytes(compiled, batch)


def _auto_batch_size(compiled: CompiledScenario, replications: int, streaming: bool = True) -> int:
    """Replications simulated together: as many as the budgets allow (up to
    MAX_AUTO_BATCH); a streamed run also keeps one batch of outputs."""
    limit = BATCH_STATE_BUDGET // max(_state_bytes(compiled), 1)
    if streaming:
        limit = min(limit, BATCH_OUTPUT_BUDGET // max(estimate_output_bytes(compiled, 1), 1))
    return max(1, min(MAX_AUTO_BATCH, replications, limit))


def _max_threads() -> int:
    """Most threads numba may use on this machine (NUMBA_NUM_THREADS)."""
    # numba.config sets it through its module globals(), which type checkers cannot see
    return int(vars(numba.config)["NUMBA_NUM_THREADS"])


def _check_arguments(problems: list, seed: int, resolution: str, batch_size: int | None,
                     threads: int | None) -> None:
    """Add the problems with the common run arguments to ``problems``; raise if any."""
    if not 0 <= seed < 2**63:
        problems.append(("seed", f"must be in 0 .. 2**63-1, got {seed}"))
    if resolution not in RESOLUTIONS:
        problems.append(("resolution", f"must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}"))
    if batch_size is not None and batch_size < 1:
        problems.append(("batch_size", f"must be >= 1, got {batch_size}"))
    if threads is not None and not 1 <= threads <= _max_threads():
        problems.append(("threads", f"must be in 1 .. {_max_threads()} on this machine, got {threads}"))
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
    load: bool = True,
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
        512, fewer if the batch's state would exceed 64 MiB or (streamed to a file) its
        output buffers 32 MiB.
    threads : int, optional
        Batches simulated at once, one thread each (default: every core numba may use,
        ``NUMBA_NUM_THREADS``). Results do not depend on it.
    resolution : {"day", "week", "month"}
        Output period; flows are summed, levels taken at the period end, shares averaged.
    out : path, optional
        ``.nc`` or ``.zarr``: each batch is written to it as it finishes, while the next
        batches run. Written under a temporary name and renamed when complete. A
        ``.zarr`` store (and a ``.nc`` file with ``load=False``) is streamed, so memory
        stays flat however many replications, and the returned Dataset reads it lazily.
    overwrite : bool
        Replace an existing ``out``.
    overrides : ``["a.b=c"]`` or ``{"a.b": value}``, optional
        Applied to the scenario before validation.
    progress : bool or callable(done_replication_days, total_replication_days)
    max_memory_share : float
        A result collected in memory (no ``out``) may take at most this share of the
        memory available now; a larger one is refused before any work, with the size a
        ``.zarr`` store would take instead.
    load : bool
        With a ``.nc`` ``out``: return the whole result in memory (default: the arrays
        the file was written from, so it is not read back; equal to
        ``open_results(out)``), or the file opened lazily (memory stays bounded by the
        batches; the file stays open until the Dataset is closed). A ``.zarr`` result is
        always opened lazily.

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
    UserCodeError
        A user strategy failed mid-run (the partial output is removed).

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
    make_strategies(scenario)  # refuse bad strategy_params and failing constructors before any work
    compiled = compile_scenario(scenario, resolution)
    return _run_worlds([compiled], 0, replications, seed, batch_size, threads, [out], overwrite, progress,
                       max_memory_share, load)[0]


def run_pair(
    shocked: Scenario,
    counterfactual: Scenario,
    fork_day: int,
    replications: int,
    seed: int,
    resolution: str = "day",
    batch_size: int | None = None,
    threads: int | None = None,
    out_shocked: str | os.PathLike | None = None,
    out_counterfactual: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], None] = False,
    max_memory_share: float = 0.6,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Simulate a scenario and its counterfactual on common random numbers, forked.

    Both worlds use ``seed`` and replications ``0 .. replications - 1``; the
    counterfactual is forked from the shocked world's state on ``fork_day`` (days since
    the horizon start), so the days before it are simulated once
    (:meth:`cbecsim.engine.BatchSimulation.fork`). Its data equal a full
    ``run(counterfactual, ...)`` bit for bit provided the two scenarios agree on every
    input the engine reads before ``fork_day`` (same sellers, markets and horizon; duty
    changes that differ are neither in force nor visible to sellers before it: see
    :func:`cbecsim.shock.plan_shock`).

    Parameters
    ----------
    shocked, counterfactual : Scenarios with the same sellers, markets and horizon
    fork_day : first day the worlds may differ, 0 .. the horizon's days (0: no shared days)
    replications, seed, resolution, batch_size, threads : as :func:`run`
    out_shocked, out_counterfactual : ``.nc`` / ``.zarr`` paths for both worlds, or neither
    overwrite, progress, max_memory_share : as :func:`run` (progress counts the
        replication-days simulated over both worlds, the shared ones once)

    Returns
    -------
    (shocked result, counterfactual result)

    Raises
    ------
    ConfigError, OutputError, ValueError
        Before any simulation work, for bad arguments, worlds that do not match, or an
        output that cannot be written.
    """
    problems = [("replications", f"must be >= 1, got {replications}")] if replications < 1 else []
    _check_arguments(problems, seed, resolution, batch_size, threads)
    make_strategies(shocked)
    make_strategies(counterfactual)
    worlds = [compile_scenario(shocked, resolution), compile_scenario(counterfactual, resolution)]
    first, second = worlds
    if (first.n_days, first.dates[0], first.n_sellers, first.market_names, first.n_periods) != (
            second.n_days, second.dates[0], second.n_sellers, second.market_names, second.n_periods):
        raise ValueError("the shocked world and its counterfactual must have the same horizon, sellers and markets")
    if not 0 <= int(fork_day) <= first.n_days:
        raise ValueError(f"fork_day must lie in 0 .. {first.n_days}, got {fork_day}")
    if (out_shocked is None) != (out_counterfactual is None):
        raise ValueError("give both out_shocked and out_counterfactual, or neither")
    shocked_result, counterfactual_result = _run_worlds(
        worlds, int(fork_day), replications, seed, batch_size, threads, [out_shocked, out_counterfactual], overwrite,
        progress, max_memory_share)
    return shocked_result, counterfactual_result


def _run_worlds(worlds: list[CompiledScenario], fork_day: int, replications: int, seed: int,
                batch_size: int | None, threads: int | None, outs: list, overwrite: bool, progress,
                max_memory_share: float, load: bool = True) -> list[xr.Dataset]:
    """:func:`run` (one world) or :func:`run_pair` (a world and its counterfactual) after
    their arguments are checked: the output checks, the size and memory estimates (each
    world gets its share of ``max_memory_share``), the writer locks and the SIGTERM
    handler, then :func:`_simulate_worlds` in memory (``outs`` all None) or streamed to
    ``outs``; the results carry their provenance."""
    from .guards import check_run, estimate_run, terminate_as_interrupt

    streaming = outs[0] is not None  # .nc and .zarr alike: batch by batch, memory bounded by the batches
    for out in outs:
        if out is not None:
            check_output_path(out, overwrite)
    # A .nc result returned loaded is the whole result in memory anyway: the kernels fill
    # it in place and the batches are written from it, instead of reading the file back.
    keep = streaming and load and all(output_format(out) == "netcdf" for out in outs)
    batch = batch_size or _auto_batch_size(worlds[0], replications, streaming)
    for world, out in zip(worlds, outs):
        check_run(estimate_run(world, replications, batch, out, kept_in_memory=keep or not streaming), out,
                  max_memory_share / len(worlds), _available_memory())
    attrs = [provenance(world, seed, replications) for world in worlds]
    with contextlib.ExitStack() as stack:
        for out in outs:
            if out is not None:
                stack.callback(claim_output(out, overwrite).release)
        stack.enter_context(terminate_as_interrupt())
        if not streaming:
            results = _simulate_worlds(worlds, fork_day, seed, 0, replications, batch_size, threads, progress, None)
            assert results is not None  # without writers the Datasets are returned
            for result, world_attrs in zip(results, attrs):
                result.attrs.update(world_attrs)
            return results
        writers = [batch_writer(out, overwrite) for out in outs]
        try:
            kept = _simulate_worlds(worlds, fork_day, seed, 0, replications, batch_size, threads, progress, writers,
                                    keep=keep)
            closed = [writer.close(world_attrs) for writer, world_attrs in zip(writers, attrs)]
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        if kept is not None:  # the arrays the files were written from: no need to read them back
            for result, world_attrs in zip(kept, attrs):
                result.attrs.update(world_attrs)
            return kept
        # Just written and checksummed: opened without verifying them again.
        return [open_results(path, verify=False, load=load) for path in closed]


def _simulate_in_memory(compiled: CompiledScenario, seed: int, first: int, count: int, batch_size: int | None,
                        threads: int | None, progress) -> xr.Dataset:
    """:func:`_simulate` into one set of output arrays; the Dataset wraps them."""
    result = _simulate(compiled, seed, first, count, batch_size, threads, progress, None)
    assert result is not None  # without a writer the arrays are returned
    return result


def _simulate(compiled: CompiledScenario, seed: int, first: int, count: int, batch_size: int | None,
              threads: int | None, progress, writer) -> xr.Dataset | None:
    """Replications ``first .. first + count - 1``, in batches run concurrently.

    ``threads`` batches are simulated at once, each on one thread (the kernel releases
    the GIL, so one batch's strategy reviews in Python overlap the others' kernel work).
    Without ``writer`` the kernels fill one set of output arrays for the whole run and the
    returned Dataset wraps them; with a batch writer (.nc or .zarr) each thread reuses one batch of
    output arrays and the batches are written in replication order, one wave at a time.
    """
    results = _simulate_worlds([compiled], 0, seed, first, count, batch_size, threads, progress,
                               None if writer is None else [writer])
    return None if results is None else results[0]


def _simulate_worlds(worlds: list[CompiledScenario], fork_day: int, seed: int, first: int, count: int,
                     batch_size: int | None, threads: int | None, progress,
                     writers: list | None, keep: bool = False) -> list[xr.Dataset] | None:
    """:func:`_simulate` for one world, or for a world and its counterfactual forked on ``fork_day``.

    With two worlds (same sellers, markets and horizon; the second differs only in its
    policy from day ``fork_day`` on), each batch simulates the first world up to the fork
    (the arrivals of the fork day excluded), then copies its state, strategies and outputs
    into the second (:meth:`cbecsim.engine.BatchSimulation.fork`) and simulates both to
    the end: the days before the fork are simulated once. ``fork_day`` 0 simulates both
    from the start. ``writers``: one per world, or None (in memory; one Dataset per world
    returned). ``keep`` (with writers): the whole result is also kept in memory and
    returned, as without writers, the batches written from it as they finish.
    """
    compiled = worlds[0]
    workers = max(1, numba.get_num_threads() if threads is None else int(threads))
    streaming = writers is not None
    batch = batch_size or _auto_batch_size(compiled, count, streaming)
    batch = max(1, min(batch, -(-count // workers) if batch_size is None else batch, count))
    workers = min(workers, -(-count // batch))
    batches = [(first + offset, min(batch, count - offset)) for offset in range(0, count, batch)]
    report = progress if callable(progress) else None
    shared = fork_day if len(worlds) > 1 else 0
    total = count * (len(worlds) * compiled.n_days - (len(worlds) - 1) * shared)
    done = 0
    lock = threading.Lock()

    def simulate(replication0: int, n: int, outputs: list, row0: int) -> None:
        def on_days(days: int) -> None:
            nonlocal done
            with lock:
                done += days * n
                if report is not None:
                    report(done, total)

        if len(worlds) == 1:
            simulate_batch(compiled, make_strategies(compiled), seed, replication0, n, outputs[0], row0, on_days)
            return
        if shared <= 0:
            for world, world_outputs in zip(worlds, outputs):
                simulate_batch(world, make_strategies(world), seed, replication0, n, world_outputs, row0, on_days)
            return
        shocked = BatchSimulation(compiled, make_strategies(compiled), seed, replication0, n, outputs[0], row0,
                                  on_days)
        shocked.start()
        shocked.run(until=shared, receive_last=False)  # each world receives the fork day's arrivals itself
        counterfactual = shocked.fork(worlds[1], outputs[1], row0)
        shocked.run()
        counterfactual.run()

    if not streaming:
        outputs = [allocate_outputs(world, count) for world in worlds]
        jobs = [(r0, n, outputs, r0 - first) for r0, n in batches]
        _run_jobs(simulate, jobs, workers)
        return [outputs_dataset(world, world_outputs, first) for world, world_outputs in zip(worlds, outputs)]
    assert writers is not None and len(writers) == len(worlds)
    waves = [batches[i:i + workers] for i in range(0, len(batches), workers)]
    if keep:
        # The kernels fill the whole result in place, as in memory; each wave is written
        # from it while the next wave runs, and the result is returned without reading
        # the files back.
        whole = [allocate_outputs(world, count) for world in worlds]
        sets = [[whole for _ in range(workers)]]
    else:
        # Two sets of batch buffers: while one wave is written, the next wave's kernels
        # run on the other set.
        sets = [[[allocate_outputs(world, batch) for world in worlds] for _ in range(workers)]
                for _ in range(min(2, len(waves)))]

    def row0_of(replication0: int) -> int:
        return replication0 - first if keep else 0

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cbecsim") as pool:

        def start(index: int) -> list:
            buffers = sets[index % len(sets)]
            if index >= len(sets) and not keep:
                for buffer in buffers:
                    for world_buffer in buffer:
                        reset_outputs(world_buffer)
            return [pool.submit(simulate, r0, n, buffer, row0_of(r0))
                    for (r0, n), buffer in zip(waves[index], buffers)]

        running = start(0)
        try:
            for index, wave in enumerate(waves):
                for future in running:
                    future.result()
                following = start(index + 1) if index + 1 < len(waves) else []
                for (r0, n), buffer in zip(wave, sets[index % len(sets)]):
                    for world, writer, world_buffer in zip(worlds, writers, buffer):
                        rows = slice_outputs(world_buffer, row0_of(r0), n)
                        writer.write(outputs_dataset(world, rows, r0, n))
                running = following
        except BaseException:
            for future in running:
                future.cancel()
            raise
    if keep:
        return [outputs_dataset(world, world_outputs, first) for world, world_outputs in zip(worlds, whole)]
    return None


def _run_jobs(function, jobs: list, workers: int) -> None:
    """Call ``function(*job)`` for each job, on ``workers`` threads; the first error is raised."""
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            function(*job)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cbecsim") as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


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
        Batches simulated at once (default: as in :func:`run`).
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
    return _simulate_in_memory(compiled, seed, first, count, batch_size, threads, False)
