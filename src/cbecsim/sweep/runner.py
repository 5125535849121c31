"""Plan and run a sweep: tasks, the store, the executor loop, retries and resume."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from ..compile import compile_scenario
from ..config import ConfigError, load_scenario
from ..files import WriterLock, folder_problem, recover, refuse_foreign, remove_stale_partials
from ..integrity import CHECKSUM_FILE
from ..results import OutputError, provenance
from .design import Design, build_design
from .executors import DaskExecutor, LocalExecutor, TaskFailure, start_jobqueue_cluster
from .spec import LoadedSweep, load_sweep_spec
from .store import (
    append_failure,
    append_manifest,
    build_template,
    create_store,
    data_variables,
    finalize_store,
    open_sweep,
    scan_manifest,
    store_attrs,
    task_rectangles,
    truncate_torn_manifest,
    verify_task_chunks,
    zero_dataset,
)

log = logging.getLogger("cbecsim.sweep")

__all__ = ["SweepPlan", "SweepOutcome", "SweepTaskError", "plan_sweep", "run_sweep"]

#: Memory budget of one task's output arrays [bytes]; a task's peak is about twice this
#: (its arrays plus one point's Dataset) plus one engine batch.
TASK_BYTES = 128 * 2**20
#: Tasks aimed for when the sweep is big enough: enough for load balance and a smooth
#: progress bar, few enough that per-task overhead (a region write) stays small.
TARGET_TASKS = 64
#: Least work per task [seller-market-days] (about 0.3 s on one core at month
#: resolution), so the region write and scheduling stay a small share of a task.
MIN_TASK_WORK = 2_000_000


@dataclasses.dataclass
class SweepPlan:
    loaded: LoadedSweep
    design: Design
    template: xr.Dataset
    encoding: dict
    rectangles: list[tuple[int, int, int, int]]
    points_per_task: int
    replications_per_task: int
    summary_only: bool
    seller_market_days: np.ndarray  # (P,) per point, all replications
    full_bytes: int  # uncompressed size of the full-path variables
    summary_bytes: int  # uncompressed size with --summary-only

    @property
    def n_points(self) -> int:
        return self.design.n_points

    @property
    def n_tasks(self) -> int:
        return len(self.rectangles)

    @property
    def output_bytes(self) -> int:
        return self.summary_bytes if self.summary_only else self.full_bytes

    def task_seller_market_days(self, task: int) -> int:
        p0, p1, r0, r1 = self.rectangles[task]
        per_replication = self.seller_market_days[p0:p1] / self.loaded.replications
        return int(per_replication.sum() * (r1 - r0))

    def payload(self, task: int, store: Path, attempt: int, threads: int) -> dict:
        p0, p1, r0, r1 = self.rectangles[task]
        spec = self.loaded.spec
        return {
            "task": task,
            "attempt": attempt,
            "store": str(store),
            "base": self.loaded.base_data,
            "points": (p0, p1),
            "replications": (r0, r1),
            "overrides": [self.design.overrides(p) for p in range(p0, p1)],
            "labels": [self.design.labels(p) for p in range(p0, p1)],
            "seed": self.loaded.seed,
            "resolution": spec.resolution,
            "batch_size": spec.batch_size,
            "threads": threads,
            "summary_only": self.summary_only,
        }


@dataclasses.dataclass
class SweepOutcome:
    path: Path
    tasks: int
    ran: int
    skipped: int
    failures: list[dict]
    seconds: float
    seller_market_days: int
    executor: str
    peak_rss_mib: dict[str, float]
    complete: bool


class SweepTaskError(RuntimeError):
    """Some tasks failed twice; the others are in the store, which stays resumable."""

    def __init__(self, outcome: SweepOutcome):
        self.outcome = outcome
        lines = [f"{len(outcome.failures)} task(s) failed twice; the store stays incomplete and resumable:"]
        lines += [f"  task {f['task']} (scenarios {f['points'][0]}..{f['points'][1] - 1}): {f['error']}"
                  for f in outcome.failures]
        super().__init__("\n".join(lines))


def _structure_key(design: Design, structural: tuple[int, ...], point: int) -> str:
    return json.dumps([design.values[point][i] for i in structural], sort_keys=True, default=str)


def _layout(spec, n_points: int, replications: int, full_per_rep: int, kept_per_rep: int,
            total_smd: int) -> tuple[int, int]:
    """Points and replications per task: within the memory budget, at most
    TARGET_TASKS tasks, and at least MIN_TASK_WORK seller-market-days per task."""
    wanted = int(max(1, min(TARGET_TASKS, total_smd // MIN_TASK_WORK)))
    max_rpt = int(min(replications, max(1, TASK_BYTES // max(full_per_rep, 1))))
    if spec.replications_per_task:
        rpt = min(spec.replications_per_task, replications)
    elif spec.points_per_task is None and wanted > n_points:
        rpt = min(max_rpt, math.ceil(replications / math.ceil(wanted / n_points)))
    else:
        rpt = max_rpt
    if spec.points_per_task:
        ppt = min(spec.points_per_task, n_points)
    else:
        by_memory = TASK_BYTES // max(rpt * kept_per_rep, 1)
        ppt = int(max(1, min(by_memory, math.ceil(n_points / wanted))))
    return ppt, rpt


def plan_sweep(
    spec: LoadedSweep | str | os.PathLike | Mapping[str, Any],
    summary_only: bool = False,
    layout: tuple[int, int] | None = None,
) -> SweepPlan:
    """Validate the spec and lay out the design, tasks and store template (no work done)."""
    loaded = spec if isinstance(spec, LoadedSweep) else load_sweep_spec(spec)
    design = build_design(loaded.spec, loaded.seed)
    resolution = loaded.spec.resolution
    replications = loaded.replications
    P = design.n_points

    # Seller/market coordinates per distinct value of the structural factors.
    keys = [_structure_key(design, loaded.structural, p) for p in range(P)]
    distinct = list(dict.fromkeys(keys))
    scenarios = {}
    for key in distinct:
        point = keys.index(key)
        scenarios[key] = load_scenario(
            loaded.base_data, {design.paths[i]: design.values[point][i] for i in loaded.structural}
        )
    full_zero = {key: zero_dataset(scenarios[key], resolution, False) for key in distinct}
    kept_zero = {key: zero_dataset(scenarios[key], resolution, True) for key in distinct} if summary_only else full_zero
    first = kept_zero[distinct[0]]
    structures = [kept_zero[k] for k in distinct] if len(distinct) > 1 else None
    point_structure = np.array([distinct.index(k) for k in keys]) if len(distinct) > 1 else None

    def per_rep(dataset: xr.Dataset) -> int:
        return int(sum(v.nbytes for v in dataset.data_vars.values()))

    full_per_rep = per_rep(full_zero[distinct[0]])
    summary_per_rep = per_rep(zero_dataset(scenarios[distinct[0]], resolution, True))
    days = {key: compile_scenario(scenarios[key], resolution).n_days for key in distinct}
    smd = np.array([days[k] * int(full_zero[k]["served"].values.sum()) * replications for k in keys], dtype=np.int64)
    ppt, rpt = layout or _layout(loaded.spec, P, replications, full_per_rep,
                                 summary_per_rep if summary_only else full_per_rep, int(smd.sum()))

    scenario_coords: dict[str, tuple] = {}
    for i, factor in enumerate(loaded.spec.factors):
        coord_attrs = {"description": f"sweep factor: config field {factor.path}", "config_path": factor.path}
        scenario_coords[factor.label] = (("scenario",), design.coordinate(i), coord_attrs)
    if design.unit is not None:
        scenario_coords["factor"] = (("factor",), np.array(design.names, dtype=str), {"description": "sweep factors"})
        scenario_coords["design_unit"] = (("scenario", "factor"), design.unit, {
            "description": f"the {design.kind} design's unit-hypercube sample each point was mapped from "
                           "(rows in SALib order for sobol)"})

    attrs = provenance(compile_scenario(loaded.base, resolution), loaded.seed, replications)
    spec_json = loaded.spec.model_dump(mode="json")
    attrs.update({
        "title": f"cbecsim sweep {loaded.spec.name!r} over scenario {loaded.base.name!r}",
        "sweep": json.dumps(spec_json, sort_keys=True),
        "sweep_fingerprint": loaded.fingerprint(),
        "design": design.kind,
        "points": P,
        "factors": json.dumps([{"name": f.label, **f.model_dump(mode="json", exclude_none=True)}
                               for f in loaded.spec.factors], sort_keys=True),
        "common_random_numbers": "replication r uses the same random streams (seed, replication, day, market, "
                                 "seller, purpose) at every point",
        "summary_only": int(summary_only),
        "contents": ("per-(scenario, replication, seller) horizon outcomes (see cbecsim.sweep.SUMMARY_VARIABLES)"
                     if summary_only else "full paths, as a single run, per scenario"),
        "tasks": len(task_rectangles(P, replications, ppt, rpt)),
        "points_per_task": ppt,
        "replications_per_task": rpt,
        "complete": False,
    })
    if design.salib_problem is not None:
        attrs["salib_problem"] = json.dumps(design.salib_problem)
    if design.kind == "sobol":
        assert design.base_samples is not None  # build_design sets it for a sobol design
        attrs["sobol_base_samples"] = int(design.base_samples)
        attrs["sobol_second_order"] = int(design.second_order)
    template, encoding = build_template(first, structures, point_structure, P, replications, ppt, rpt,
                                        scenario_coords, attrs)
    return SweepPlan(
        loaded=loaded, design=design, template=template, encoding=encoding,
        rectangles=task_rectangles(P, replications, ppt, rpt), points_per_task=ppt,
        replications_per_task=rpt, summary_only=summary_only, seller_market_days=smd,
        full_bytes=full_per_rep * replications * P, summary_bytes=summary_per_rep * replications * P,
    )


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    if out.suffix.lower() != ".zarr":
        raise OutputError(f"{out}: a sweep is written to a Zarr store: the name must end in .zarr")
    if resume and overwrite:
        raise OutputError("--resume and --overwrite contradict each other: choose one")
    if problem := folder_problem(out):
        raise OutputError(problem)
    if out.exists() and not resume and not overwrite:
        raise OutputError(f"{out} already exists (pass --resume to finish it, or --overwrite to replace it)")
    if os.path.lexists(out):
        refuse_foreign(out)  # --overwrite / --resume only touch a cbecsim store


def _finished_tasks(out: Path, plan: "SweepPlan") -> set[int]:
    """Tasks whose chunks in ``out`` match their manifest records (the writer lock is held).

    Cuts a torn last manifest line; says, on the ``cbecsim.sweep`` logger, which lines
    were ignored and which recorded tasks run again.
    """
    variables = data_variables(out)
    expected = sorted(str(name) for name in plan.template.data_vars)
    if sorted(variables) != expected:
        missing = sorted(set(expected) - set(variables))
        raise OutputError(f"{out}: cannot be resumed: the metadata of {', '.join(missing) or 'some variables'} "
                          "are missing or damaged; start again with --overwrite")
    scan = scan_manifest(out, plan.rectangles, variables)
    if scan.torn_at is not None:
        log.warning(truncate_torn_manifest(out, scan.torn_at))
    for problem in scan.problems:
        log.warning(problem)
    finished = set()
    for task, record in sorted(scan.records.items()):
        why = verify_task_chunks(out, record)
        if why:
            log.warning(f"task {task}: {why}: running it again")
        else:
            finished.add(task)
    return finished


def run_sweep(
    spec: LoadedSweep | str | os.PathLike | Mapping[str, Any],
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster: str | None = None,
    cluster_options: Mapping[str, Any] | None = None,
    resume: bool = False,
    summary_only: bool = False,
    overwrite: bool = False,
    progress: Callable[[dict], None] | None = None,
) -> SweepOutcome:
    """Run a parameter sweep into one Zarr store.

    Parameters
    ----------
    spec : sweep spec path, mapping, or :class:`~cbecsim.sweep.spec.LoadedSweep`
    out : path ending in ``.zarr``
    workers : local worker processes (default: all cores); ignored with a scheduler/cluster
    scheduler : ``tcp://host:port`` (or a scheduler JSON file) of a running Dask cluster
    cluster : ``"slurm"`` or ``"pbs"``: start one with dask-jobqueue
    cluster_options : override the spec's ``cluster:`` section (queue, cores, memory, ...)
    resume : finish an interrupted sweep in ``out`` (only the tasks not in its manifest)
    summary_only : keep per-(scenario, replication, seller) outcomes, not full paths
    overwrite : replace an existing ``out``
    progress : called with event dicts (``start``, ``task``, ``retry``, ``failure``)

    Returns
    -------
    SweepOutcome

    Raises
    ------
    ConfigError, OutputError
        Before any work, for a bad spec, argument or output path.
    SweepTaskError
        When tasks failed twice (after all others finished; the store stays resumable).
    """
    started = time.perf_counter()
    out = Path(out)
    loaded = spec if isinstance(spec, LoadedSweep) else load_sweep_spec(spec)
    if workers is not None and workers < 1:
        raise ConfigError([("workers", f"must be >= 1, got {workers}")])
    if scheduler and cluster:
        raise ConfigError([("scheduler", "give either a scheduler address or --cluster, not both")])
    if cluster is not None and cluster not in ("slurm", "pbs"):
        raise ConfigError([("cluster", f"must be slurm or pbs, got {cluster!r}")])
    _check_out(out, resume, overwrite)
    with WriterLock(out, "running a sweep") as lock:
        for note in [*lock.notes, *recover(out), *remove_stale_partials(out)]:
            log.warning(note)
        return _run_locked(loaded, out, started, workers, scheduler, cluster, cluster_options, resume,
                           summary_only, overwrite, progress)


def _run_locked(loaded, out: Path, started: float, workers, scheduler, cluster, cluster_options, resume: bool,
                summary_only: bool, overwrite: bool, progress) -> SweepOutcome:
    resuming = resume and out.exists()
    layout = None
    if resuming:
        try:
            attrs = store_attrs(out)
        except Exception as exc:  # noqa: BLE001
            raise OutputError(f"{out}: cannot be resumed, not a readable Zarr store ({exc})") from None
        if attrs.get("sweep_fingerprint") != loaded.fingerprint():
            raise OutputError(f"{out} was written by a different sweep spec (or cbecsim version); "
                              "use --overwrite to start again")
        if bool(attrs.get("summary_only", 0)) != summary_only:
            raise OutputError(f"{out} was written {'with' if attrs.get('summary_only') else 'without'} "
                              "--summary-only; resume it the same way")
        layout = (int(attrs["points_per_task"]), int(attrs["replications_per_task"]))
        if attrs.get("complete"):
            try:
                open_sweep(out)  # verifies the checksums and the manifest
            except Exception as exc:  # noqa: BLE001 - damaged or unproven: resume it
                log.warning(f"{out} says complete but does not verify ({exc}); checking every task")
                _reopen(out)
            else:
                tasks = int(attrs["tasks"])
                return SweepOutcome(out, tasks, 0, tasks, [], time.perf_counter() - started,
                                    0, "none (already complete)", {}, True)
    plan = plan_sweep(loaded, summary_only, layout)
    if not resuming:
        from ..files import free_space_problem
        from ..guards import ZARR_DISK_FRACTION

        if problem := free_space_problem(out, int(plan.output_bytes * ZARR_DISK_FRACTION), "the sweep store"):
            raise OutputError(f"--out {out}: {problem}")
    options = dict(loaded.spec.cluster.model_dump())
    options.update({k: v for k, v in (cluster_options or {}).items() if v not in (None, [], ())})

    threads = 1
    if scheduler:
        try:
            executor: Any = DaskExecutor.connect(scheduler)
        except Exception as exc:  # noqa: BLE001 - unreachable address is a user error
            raise OutputError(f"--scheduler {scheduler}: cannot connect ({type(exc).__name__}: {exc})") from None
    elif cluster:
        executor = start_jobqueue_cluster(cluster, options)
    else:
        executor = LocalExecutor(workers or os.cpu_count() or 1, threads)

    try:
        if not resuming:
            create_store(out, plan.template, plan.encoding, overwrite)
        finished = _finished_tasks(out, plan) if resuming else set()
        todo = [t for t in range(plan.n_tasks) if t not in finished]
        outcome = _execute(plan, out, executor, todo, len(finished), threads, progress)
    except BaseException:
        executor.close(cancel=True)
        raise
    executor.close()
    outcome.seconds = time.perf_counter() - started
    outcome.skipped = len(finished)
    if outcome.failures:
        raise SweepTaskError(outcome)
    finalize_store(out, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    outcome.complete = True
    return outcome


def _reopen(out: Path) -> None:
    """Mark a store that claimed completeness as incomplete again, before resuming it."""
    import zarr

    from ..results import ZARR_FORMAT

    (out / CHECKSUM_FILE).unlink(missing_ok=True)
    (out / ".zmetadata").unlink(missing_ok=True)
    # results.ZARR_FORMAT is the constant 2, typed int there; zarr asks for Literal[2, 3].
    group = zarr.open_group(str(out), mode="a", zarr_format=ZARR_FORMAT)
    group.attrs.update({"complete": False})


def _execute(plan: SweepPlan, out: Path, executor, todo: list[int], skipped: int, threads: int,
             progress: Callable[[dict], None] | None) -> SweepOutcome:
    emit = progress or (lambda event: None)
    total_smd = sum(plan.task_seller_market_days(t) for t in todo)
    emit({"event": "start", "tasks": plan.n_tasks, "todo": len(todo), "skipped": skipped,
          "seller_market_days": total_smd, "executor": executor.description})
    pending = deque((task, 1) for task in todo)
    inflight: dict[Any, tuple[int, int]] = {}
    failures: list[dict] = []
    peaks: dict[str, float] = {}
    done_smd = 0
    ran = 0
    limit = max(1, 2 * executor.capacity) if executor.capacity < 10**9 else len(todo) or 1
    while pending or inflight:
        while pending and len(inflight) < limit:
            task, attempt = pending.popleft()
            try:
                future = executor.submit(plan.payload(task, out, attempt, threads))
            except BrokenProcessPool:  # pragma: no cover - the pool is rebuilt on submit
                future = executor.submit(plan.payload(task, out, attempt, threads))
            inflight[future] = (task, attempt)
        for future in executor.wait(list(inflight), timeout=0.5):
            task, attempt = inflight.pop(future)
            p0, p1, r0, r1 = plan.rectangles[task]
            try:
                info = future.result()
            except TaskFailure as exc:
                error, where = str(exc), exc.scenario
            except BrokenProcessPool as exc:
                error, where = f"a worker process died ({exc or 'BrokenProcessPool'})", p0
            except Exception as exc:  # noqa: BLE001 - e.g. a Dask worker lost
                error, where = f"{type(exc).__name__}: {exc}", p0
            else:
                append_manifest(out, {"task": task, "points": [p0, p1], "replications": [r0, r1],
                                      "attempt": attempt, **info})
                ran += 1
                done_smd += plan.task_seller_market_days(task)
                key = f"{info['host']}:{info['pid']}"
                peaks[key] = max(peaks.get(key, 0.0), info["peak_rss_mib"])
                emit({"event": "task", "task": task, "done": skipped + ran, "tasks": plan.n_tasks,
                      "seller_market_days": done_smd, **{k: v for k, v in info.items() if k != "chunks"}})
                continue
            if attempt == 1:
                emit({"event": "retry", "task": task, "error": error})
                pending.appendleft((task, 2))
                continue
            record = {"task": task, "points": [p0, p1], "replications": [r0, r1], "scenario": where,
                      "values": plan.design.labels(where), "error": error}
            append_failure(out, record)
            failures.append(record)
            emit({"event": "failure", **record})
    return SweepOutcome(out, plan.n_tasks, ran, skipped, failures, 0.0, done_smd, executor.description, peaks, False)
