"""Where sweep tasks run: a local process pool, an existing Dask cluster, or a SLURM/PBS
cluster started with dask-jobqueue. All three run :func:`execute_task` on the same
payloads, so the results are bit-identical whichever is used.

A task simulates a rectangle of (points x replications) and writes it to the store
itself (``to_zarr(region=...)``): the store must be on a filesystem the workers share
with the machine that runs ``cbecsim sweep`` (always true for local processes and a
single-node or shared-filesystem cluster).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import resource
import socket
import sys
import time
from collections.abc import Hashable
from typing import Any

__all__ = ["TaskFailure", "execute_task", "LocalExecutor", "DaskExecutor", "start_jobqueue_cluster"]


class TaskFailure(Exception):
    """A task that raised: the scenario index and factor values it failed at, and why."""

    def __init__(self, scenario: int, values: dict, message: str):
        super().__init__(scenario, values, message)
        self.scenario = scenario
        self.values = values
        self.message = message

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"scenario {self.scenario} ({shown}): {self.message}"


def _set_numba_threads(threads: int) -> None:
    import numba

    # numba.config sets its options with globals()[name] = value, which mypy cannot see.
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


def execute_task(payload: dict) -> dict:
    """Simulate one task's points x replications and write its region of the store.

    ``payload``: ``task``, ``attempt``, ``store``, ``base`` (raw base scenario mapping),
    ``points`` ``[p0, p1)``, ``replications`` ``[r0, r1)``, ``overrides`` and ``labels``
    per point, ``seed``, ``resolution``, ``batch_size``, ``threads``, ``summary_only``.
    Returns timing and memory figures; raises :class:`TaskFailure`.
    """
    import numpy as np
    import xarray as xr

    from ..api import simulate_replications
    from ..config import load_scenario
    from ..results import ZARR_FORMAT, every_chunk_written
    from .store import log_execution, quiet_about_logs, summarize_paths, task_chunk_checksums

    started = time.perf_counter()
    _set_numba_threads(payload["threads"])
    store = payload["store"]
    log_execution(store, payload["task"], "start", payload["attempt"])
    p0, p1 = payload["points"]
    r0, r1 = payload["replications"]
    arrays: dict[Hashable, np.ndarray] = {}
    dims: dict[Hashable, tuple[Hashable, ...]] = {}
    for k, overrides in enumerate(payload["overrides"]):
        index = p0 + k
        try:
            scenario = load_scenario(payload["base"], overrides)
            dataset = simulate_replications(
                scenario, r0, r1 - r0, seed=payload["seed"], resolution=payload["resolution"],
                batch_size=payload["batch_size"],
            )
            if payload["summary_only"]:
                dataset = summarize_paths(dataset)
        except Exception as exc:  # noqa: BLE001 - reported with the point that failed
            raise TaskFailure(index, payload["labels"][k], f"{type(exc).__name__}: {exc}") from None
        if not arrays:
            for name, variable in dataset.data_vars.items():
                arrays[name] = np.empty((p1 - p0,) + variable.shape, dtype=variable.dtype)
                dims[name] = ("scenario",) + variable.dims
        for name, variable in dataset.data_vars.items():
            arrays[name][k] = variable.values
        del dataset
    region = xr.Dataset({name: (dims[name], arrays[name]) for name in arrays})
    try:
        with quiet_about_logs(), every_chunk_written():
            region.to_zarr(store, region={"scenario": slice(p0, p1), "replication": slice(r0, r1)},
                           consolidated=False, zarr_format=ZARR_FORMAT)
        # Read back what was written: the parent records these checksums in the manifest,
        # and a resume or the final check compares the chunk files with them.
        chunks = task_chunk_checksums(store, p0, r0)
    except Exception as exc:  # noqa: BLE001
        raise TaskFailure(
            p0, payload["labels"][0], f"writing scenarios {p0}..{p1 - 1}: {type(exc).__name__}: {exc}"
        ) from None
    log_execution(store, payload["task"], "done", payload["attempt"])
    return {
        "chunks": chunks,
        "seconds": round(time.perf_counter() - started, 4),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "batch_job": os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID"),
        # ru_maxrss: KiB on Linux, bytes on macOS
        "peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20), 1
        ),
    }


def _local_worker_init(threads: int) -> None:
    """Pool worker start: die with the parent (Linux), one numba thread per worker."""
    parent = os.getppid()
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: a killed parent takes us along
    except Exception:  # noqa: BLE001 - not Linux: workers exit when their queue closes
        pass
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)
    _set_numba_threads(threads)


class LocalExecutor:
    """Local worker processes (``spawn``; one numba thread each)."""

    def __init__(self, workers: int, threads: int = 1):
        self.workers = workers
        self.threads = threads
        self.capacity = workers
        self.description = f"{workers} local worker process{'es' if workers != 1 else ''}"
        self._pool: cf.ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None or getattr(self._pool, "_broken", False):
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = cf.ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_local_worker_init,
                initargs=(self.threads,),
            )
        return self._pool

    def submit(self, payload: dict) -> Any:
        return self._ensure_pool().submit(execute_task, payload)

    def wait(self, futures: list, timeout: float) -> set:
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return done

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self._pool = None


class DaskExecutor:
    """A dask.distributed cluster: an existing scheduler, or one started here."""

    def __init__(self, client, cluster=None, description: str = ""):
        self.client = client
        self.cluster = cluster
        self.description = description or f"Dask scheduler {client.scheduler.address}"
        self.capacity = 10**9  # the scheduler queues; submit everything

    @classmethod
    def connect(cls, address: str, timeout: float = 30.0) -> "DaskExecutor":
        from distributed import Client

        if address.endswith(".json") and os.path.exists(address):
            client = Client(scheduler_file=address, timeout=timeout)
        else:
            client = Client(address, timeout=timeout)
        return cls(client, None, f"Dask scheduler {client.scheduler.address}")

    def submit(self, payload: dict) -> Any:
        key = f"cbecsim-sweep-task-{payload['task']}-attempt-{payload['attempt']}-{os.getpid()}-{time.time_ns()}"
        return self.client.submit(execute_task, payload, key=key, pure=False, retries=0)

    def wait(self, futures: list, timeout: float) -> set:
        from distributed import wait
        from distributed.utils import TimeoutError as DaskTimeout

        try:
            done, _ = wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except (DaskTimeout, TimeoutError):
            return set()
        return set(done)

    def close(self, cancel: bool = False) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def start_jobqueue_cluster(kind: str, options: dict) -> DaskExecutor:
    """Start a SLURMCluster or PBSCluster with ``options`` and connect to it.

    ``options``: queue, account, cores, memory, walltime, jobs, job_extra,
    local_directory, log_directory, startup_timeout. Each job runs ``cores``
    single-threaded worker processes with this Python interpreter.
    """
    try:
        import dask_jobqueue
    except ImportError:
        raise RuntimeError("--cluster needs dask-jobqueue: pip install 'cbecsim[cluster]'") from None
    from distributed import Client

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    kwargs: dict[str, Any] = {
        "cores": options["cores"],
        "processes": options["cores"],
        "memory": options["memory"],
        "walltime": options["walltime"],
        "job_extra_directives": list(options.get("job_extra") or []),
        "python": sys.executable,
        "scheduler_options": {"dashboard_address": None},
    }
    for name in ("queue", "account", "local_directory", "log_directory"):
        if options.get(name):
            kwargs[name] = options[name]
    cluster = cls(**kwargs)
    cluster.scale(jobs=options["jobs"])
    client = Client(cluster)
    try:
        client.wait_for_workers(1, timeout=options["startup_timeout"])
    except Exception as exc:  # noqa: BLE001
        client.close()
        cluster.close()
        raise RuntimeError(
            f"no {kind.upper()} worker started within {options['startup_timeout']:.0f} s "
            f"({type(exc).__name__}); check the queue (squeue / qstat) and the job logs"
        ) from None
    return DaskExecutor(
        client,
        cluster,
        f"{kind.upper()} cluster via dask-jobqueue ({options['jobs']} job(s) x "
        f"{options['cores']} worker(s), scheduler {client.scheduler.address})",
    )
