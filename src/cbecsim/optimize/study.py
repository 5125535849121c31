"""Run a study: the Optuna storage under DIR, ask/tell, racing, executors and resume.

The study lives in ``DIR/study.db`` (Optuna's RDB storage on SQLite: transactional, so a
process killed at any moment leaves a readable study, and several processes can share
it). Every process that works on the study asks for trials under an exclusive file lock
(``DIR/.ask.lock``) and only while the study has fewer than N trials, so two workers
never take the same trial and together they stop at N. Evaluations (pure functions of a
payload, :func:`~cbecsim.optimize.evaluate.evaluate_candidate`) run in this process, in
local worker processes or on Dask workers (the executors of :mod:`cbecsim.sweep.executors`).

Racing (successive halving, asynchronous as in ASHA, Li et al. 2020, "A System for
Massively Parallel Hyperparameter Tuning", MLSys): a candidate first gets
``replications`` replications; when its robust score is in the top ``1/eta`` of all
candidates scored at that rung (and at least ``eta`` have been), it gets ``eta`` times as
many -- the next block of replication indices, the same for every candidate, so the
pairing holds -- up to ``rungs`` times. Its final value uses all its replications.

Resume: a trial still marked running whose process is gone (same host, pid not alive) is
marked failed (``stale``) and its levers are queued again, so ``--resume`` finishes the
N trials with the completed ones (and the best value) kept as they were.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..sweep.executors import DaskExecutor, LocalExecutor, start_jobqueue_cluster
from .evaluate import evaluate_candidate
from .robust import Direction, robust_scores, score_direction
from .spec import LoadedOptimize

__all__ = ["OptimizeError", "StudyOutcome", "run_study", "open_study", "make_executor", "STUDY_FILE",
           "EVALUATIONS_FILE", "UNDEFINED_VIOLATION"]

STUDY_FILE = "study.db"
EVALUATIONS_FILE = "evaluations.jsonl"
LOCK_FILE = ".ask.lock"
#: Constraint value recorded when the constrained outcome is undefined (NaN): violated.
UNDEFINED_VIOLATION = 1.0e9
#: Evaluations failing in a row, with none completed in this run, before the run stops.
MAX_CONSECUTIVE_FAILURES = 5


class OptimizeError(RuntimeError):
    """The study cannot go on (every evaluation fails, or an outcome cannot be computed)."""


@dataclasses.dataclass
class StudyOutcome:
    out: Path
    trials: int  # trials in the study (all states, stale ones excluded)
    completed: int
    failed: int
    ran: int  # trials finished by this run
    seconds: float
    seller_market_days: int  # simulated by this run
    executor: str


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage_url(out: Path) -> str:
    return f"sqlite:///{(Path(out) / STUDY_FILE).resolve()}"


def _sqlite_pragmas(connection, _record) -> None:
    # Write-ahead log with synchronous=NORMAL: a commit no longer waits for an fsync (ten
    # times faster here), and the database still survives a killed process intact (only
    # a power cut may lose the last commits). WAL needs a local filesystem, not NFS.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _storage(out: Path):
    import optuna
    from sqlalchemy import event

    storage = optuna.storages.RDBStorage(storage_url(out), engine_kwargs={"connect_args": {"timeout": 120}})
    event.listen(storage.engine, "connect", _sqlite_pragmas)
    storage.engine.dispose()  # reconnect with the pragmas
    return storage


def open_study(out: str | os.PathLike, sampler=None):
    """Load the study stored in ``out`` (``out/study.db``)."""
    import optuna

    _quiet_optuna()
    out = Path(out)
    names = optuna.get_all_study_names(_storage(out))
    if not names:
        raise OptimizeError(f"{out / STUDY_FILE} holds no study")
    return optuna.load_study(study_name=names[0], storage=_storage(out), sampler=sampler)


# --------------------------------------------------------------------------------------
# Levers <-> Optuna distributions
# --------------------------------------------------------------------------------------


def distributions(loaded: LoadedOptimize) -> dict:
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

    result: dict[str, BaseDistribution] = {}
    for lever in loaded.spec.levers:
        if lever.type == "categorical":
            assert lever.choices is not None  # Lever._one_kind: categorical <=> choices
            choices = lever.choices if lever.scalar_choices else [json.dumps(c, sort_keys=True, default=str)
                                                                  for c in lever.choices]
            result[lever.label] = CategoricalDistribution(choices)
            continue
        assert lever.min is not None and lever.max is not None  # Lever._one_kind: a range has both
        if lever.type == "integer":
            result[lever.label] = IntDistribution(int(lever.min), int(lever.max), log=lever.log,
                                                  step=int(lever.step or 1))
        else:
            result[lever.label] = FloatDistribution(lever.min, lever.max, log=lever.log, step=lever.step)
    return result


def decode_levers(loaded: LoadedOptimize, params: dict) -> dict[str, Any]:
    """Optuna's params -> ``{lever label: config value}`` (JSON-encoded choices decoded)."""
    decoded = {}
    for lever in loaded.spec.levers:
        value = params[lever.label]
        if lever.type == "categorical" and not lever.scalar_choices:
            value = json.loads(value)
        elif lever.type == "integer":
            value = int(value)
        decoded[lever.label] = value
    return decoded


# --------------------------------------------------------------------------------------
# Scores and constraints from per-future means
# --------------------------------------------------------------------------------------


def means_of(values: dict[str, dict[str, list[float]]]) -> tuple[dict, dict]:
    """Per outcome and future: mean and standard error over replications (NaN skipped)."""
    means: dict[str, dict[str, float]] = {}
    ses: dict[str, dict[str, float]] = {}
    for outcome, by_future in values.items():
        means[outcome], ses[outcome] = {}, {}
        for future, items in by_future.items():
            x = np.asarray(items, float)
            x = x[np.isfinite(x)]
            means[outcome][future] = float(x.mean()) if x.size else math.nan
            ses[outcome][future] = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return means, ses


def violations(loaded: LoadedOptimize, means: dict) -> list[float]:
    """One value per constraint (Optuna's convention: <= 0 feasible): the worst future's excess."""
    result = []
    for constraint in loaded.spec.constraints:
        worst = -math.inf
        for future in loaded.future_names:
            m = means[constraint.outcome][future]
            if not math.isfinite(m):
                worst = UNDEFINED_VIOLATION
                break
            if constraint.min is not None:
                worst = max(worst, constraint.min - m)
            if constraint.max is not None:
                worst = max(worst, m - constraint.max)
        result.append(float(worst))
    return result


def score_matrix(loaded: LoadedOptimize, rows: list[dict], objective_index: int) -> np.ndarray:
    """Robust scores (C,) of candidates given their per-future ``means`` dicts."""
    objective = loaded.spec.objectives[objective_index]
    table = np.array([[row[objective.outcome][f] for f in loaded.future_names] for row in rows], float)
    robustness = loaded.spec.robustness
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return robust_scores(table, np.asarray(loaded.weights), objective.sign, robustness.criterion,
                             robustness.percentile)


def directions(loaded: LoadedOptimize) -> list[Direction]:
    return [score_direction(o.optuna_direction, loaded.spec.robustness.criterion) for o in loaded.spec.objectives]


# --------------------------------------------------------------------------------------
# Executors: evaluations in this process, local worker processes, or Dask
# --------------------------------------------------------------------------------------


class InProcessExecutor:
    """Evaluate in this process, one at a time (the default with one worker)."""

    capacity = 1
    description = "this process"

    def submit(self, payload: dict) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(evaluate_candidate(payload))
        except Exception as exc:  # noqa: BLE001 - handed back like a worker's failure
            future.set_exception(exc)
        return future

    def wait(self, futures: list, timeout: float) -> set:
        return {f for f in futures if f.done()}

    def close(self, cancel: bool = False) -> None:
        pass


class LocalPoolExecutor(LocalExecutor):
    """The sweep's local worker processes (spawn, one numba thread each), running evaluations."""

    def submit(self, payload: dict) -> Any:
        return self._ensure_pool().submit(evaluate_candidate, payload)


class DaskEvaluationExecutor(DaskExecutor):
    """The sweep's Dask executor (a scheduler address or a jobqueue cluster), running evaluations."""

    def __init__(self, client, cluster=None, description: str = ""):
        super().__init__(client, cluster, description)
        try:
            self.capacity = max(1, 2 * sum(client.nthreads().values()))
        except Exception:  # noqa: BLE001 - an adaptive cluster with no workers yet
            self.capacity = 4

    def submit(self, payload: dict) -> Any:
        key = f"cbecsim-optimize-{payload['tag']}-{os.getpid()}-{time.time_ns()}"
        return self.client.submit(evaluate_candidate, payload, key=key, pure=False, retries=0)


def make_executor(workers: int | None = None, scheduler: str | None = None, cluster: str | None = None,
                  cluster_options: dict | None = None):
    """The executor for ``--workers N`` (1: this process), ``--scheduler ADDR`` or ``--cluster KIND``."""
    if scheduler:
        return DaskEvaluationExecutor.connect(scheduler)
    if cluster:
        started = start_jobqueue_cluster(cluster, cluster_options or {})
        return DaskEvaluationExecutor(started.client, started.cluster, started.description)
    if workers is None or workers <= 1:
        return InProcessExecutor()
    return LocalPoolExecutor(workers, 1)


def payload(loaded: LoadedOptimize, overrides: dict, first: int, count: int, tag: str, threads: int | None) -> dict:
    spec = loaded.spec
    return {
        "base": loaded.base_data, "overrides": overrides,
        "futures": [[name, loaded.future_overrides(name)] for name in loaded.future_names],
        "focal": loaded.focal_index, "outcomes": loaded.outcomes, "seed": loaded.seed,
        "first": first, "count": count, "resolution": spec.resolution, "batch_size": spec.batch_size,
        "threads": threads, "tag": tag,
    }


# --------------------------------------------------------------------------------------
# The study loop
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(path: Path):
    import fcntl

    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _counts(trial) -> bool:
    """Whether a trial counts towards N: everything but queued ones and stale (killed) ones."""
    from optuna.trial import TrialState

    if trial.state == TrialState.WAITING:
        return False
    return not (trial.state == TrialState.FAIL and trial.user_attrs.get("stale"))


@dataclasses.dataclass
class _Candidate:
    trial: Any
    levers: dict
    overrides: dict
    rung: int = 0
    values: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    seller_market_days: int = 0


class _Study:
    def __init__(self, loaded: LoadedOptimize, out: Path, n_trials: int, executor, emit: Callable[[dict], None],
                 threads: int | None):
        import optuna

        self.loaded = loaded
        self.out = out
        self.n_trials = n_trials
        self.executor = executor
        self.emit = emit
        self.threads = threads
        self.host = socket.gethostname()
        self.distributions = distributions(loaded)
        self.lock = out / LOCK_FILE
        storage = _storage(out)
        name = loaded.spec.name
        existing = name in optuna.get_all_study_names(storage)
        fingerprint = loaded.fingerprint()
        if existing:
            stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get("fingerprint")
            if stored != fingerprint:
                from ..results import OutputError

                raise OutputError(f"{out} holds a study of a different spec (or cbecsim version): fingerprint "
                                  f"{stored} != {fingerprint}; use another --out")
        n_before = 0 if not existing else len(optuna.load_study(study_name=name, storage=storage).trials)
        seed = loaded.spec.sampler_seed if n_before == 0 else (loaded.spec.sampler_seed + 1_000_003 * n_before
                                                               + os.getpid()) % 2**32
        self.study = optuna.create_study(storage=storage, study_name=name, directions=directions(loaded),
                                         sampler=self._sampler(seed), load_if_exists=True)
        if not existing:
            attrs = {"fingerprint": fingerprint, "spec": loaded.spec.model_dump(mode="json"),
                     "seed": loaded.seed, "rung_replications": loaded.rung_replications,
                     "focal": loaded.focal_label, "futures": loaded.future_names, "outcomes": loaded.outcomes}
            for key, value in attrs.items():
                self.study.set_user_attr(key, value)

    def _sampler(self, seed: int):
        # Constraints reach the samplers through Trial.set_constraint (Optuna >= 5), set
        # before each tell: <= 0 feasible; TPE and NSGA-II prefer feasible trials.
        import optuna

        spec = self.loaded.spec
        if len(spec.objectives) == 1:
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.startup_trials, multivariate=True,
                                              constant_liar=True)
        population = spec.population_size or int(min(50, max(4, self.n_trials // 5)))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)

    # --- trials ---------------------------------------------------------------------

    def recover_stale(self) -> int:
        """Fail (``stale``) and requeue running trials whose process is gone; returns how many."""
        from optuna.trial import TrialState

        storage = self.study._storage
        recovered = 0
        now = dt.datetime.now()
        with _exclusive(self.lock):
            for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                pid, host = trial.user_attrs.get("pid"), trial.user_attrs.get("host")
                if pid is not None:
                    gone = host == self.host and pid != os.getpid() and not _alive(int(pid))
                else:  # killed between ask and recording its process
                    gone = trial.datetime_start is not None and (now - trial.datetime_start).total_seconds() > 60
                if not gone:
                    continue
                storage.set_trial_user_attr(trial._trial_id, "stale", True)
                storage.set_trial_user_attr(trial._trial_id, "failed_reason",
                                            f"its process (pid {pid} on {host}) ended before the trial finished")
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                self.study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
                recovered += 1
        return recovered

    def ask(self) -> _Candidate | None:
        with _exclusive(self.lock):
            used = sum(1 for t in self.study.get_trials(deepcopy=False) if _counts(t))
            if used >= self.n_trials:
                return None
            trial = self.study.ask(fixed_distributions=self.distributions)
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("host", self.host)
        levers = decode_levers(self.loaded, trial.params)
        trial.set_user_attr("levers", levers)
        return _Candidate(trial, levers, self.loaded.lever_overrides(levers))

    def submit(self, candidate: _Candidate, inflight: dict) -> None:
        rungs = self.loaded.rung_replications
        first = 0 if candidate.rung == 0 else rungs[candidate.rung - 1]
        count = rungs[candidate.rung] - first
        tag = f"trial{candidate.trial.number}-rung{candidate.rung}"
        future = self.executor.submit(payload(self.loaded, candidate.overrides, first, count, tag, self.threads))
        inflight[future] = candidate.trial.number

    def _log(self, candidate: _Candidate, result: dict) -> None:
        record = {"trial": candidate.trial.number, "rung": candidate.rung, "first": result.get("first"),
                  "count": result.get("count"), "worker_pid": result.get("pid"), "worker_host": result.get("host"),
                  "study_pid": os.getpid(), "seconds": result.get("seconds"),
                  "seller_market_days": result.get("seller_market_days", 0), "error": result.get("error")}
        with open(self.out / EVALUATIONS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _promote(self, candidate: _Candidate, means: dict) -> bool:
        """ASHA's rule at the candidate's rung: in the top 1/eta of the candidates scored there."""
        racing = self.loaded.spec.racing
        if racing is None or candidate.rung >= racing.rungs:
            return False
        if any(v > 0 for v in violations(self.loaded, means)):
            return False
        key = f"means_r{self.loaded.rung_replications[candidate.rung]}"
        candidate.trial.set_user_attr(key, means)
        rows = [means] + [t.user_attrs[key] for t in self.study.get_trials(deepcopy=False)
                          if key in t.user_attrs and t.number != candidate.trial.number]
        if len(rows) < racing.eta:
            return False
        scores = score_matrix(self.loaded, rows, 0)
        if not np.isfinite(scores[0]):
            return False
        better = scores if directions(self.loaded)[0] == "maximize" else -scores
        rank = int(np.sum(np.nan_to_num(better[1:], nan=-np.inf) > better[0]))
        return rank < len(rows) // racing.eta

    def finish(self, candidate: _Candidate) -> dict:
        from optuna.trial import TrialState

        trial = candidate.trial
        means, ses = means_of(candidate.values)
        replications = self.loaded.rung_replications[candidate.rung]
        constraint_values = violations(self.loaded, means)
        for key, value in {"means": means, "se": ses, "replications": replications, "rung": candidate.rung,
                           "constraints": constraint_values, "seller_market_days": candidate.seller_market_days,
                           "evaluation_seconds": round(candidate.seconds, 4)}.items():
            trial.set_user_attr(key, value)
        for i, value in enumerate(constraint_values):
            trial.set_constraint(f"constraint_{i}", value)
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        rows = [means] + [t.user_attrs["means"] for t in done]
        values = [float(score_matrix(self.loaded, rows, j)[0]) for j in range(len(self.loaded.spec.objectives))]
        if not all(math.isfinite(v) for v in values):
            undefined = sorted(
                {
                    f"{o}.{f}"
                    for o, by in means.items()
                    for f, m in by.items()
                    if not math.isfinite(m) and o in [x.outcome for x in self.loaded.spec.objectives]
                }
            )
            reason = f"objective undefined (NaN) in {', '.join(undefined)}"
            trial.set_user_attr("failed_reason", reason)
            self.study.tell(trial, state=TrialState.FAIL)
            return {"state": "fail", "reason": reason}
        self.study.tell(trial, values)
        return {"state": "complete", "values": values}

    def best_so_far(self) -> float | None:
        from optuna.trial import TrialState

        feasible = [
            t
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if all(v <= 0 for v in t.user_attrs.get("constraints", []))
        ]
        if not feasible or len(self.loaded.spec.objectives) > 1:
            return None
        values = [t.values[0] for t in feasible]
        return max(values) if directions(self.loaded)[0] == "maximize" else min(values)

    def release(self, candidates: list[_Candidate], reason: str) -> None:
        """Mark unfinished trials failed (stale) and queue their levers again."""
        from optuna.trial import TrialState

        for candidate in candidates:
            with contextlib.suppress(Exception):
                candidate.trial.set_user_attr("stale", True)
                candidate.trial.set_user_attr("failed_reason", reason)
                self.study.tell(candidate.trial, state=TrialState.FAIL)
                self.study.enqueue_trial(dict(candidate.trial.params), user_attrs={"retry_of": candidate.trial.number})

    def run(self) -> StudyOutcome:
        from optuna.trial import TrialState

        started = time.perf_counter()
        recovered = self.recover_stale()
        done = sum(1 for t in self.study.get_trials(deepcopy=False) if _counts(t) and t.state.is_finished())
        self.emit(
            {
                "event": "start",
                "trials": self.n_trials,
                "done": done,
                "recovered": recovered,
                "executor": self.executor.description,
                "best": self.best_so_far(),
            }
        )
        active: dict[int, _Candidate] = {}
        inflight: dict[Any, int] = {}
        exhausted = False
        ran = failures_in_row = completed_here = work = 0
        capacity = max(1, int(min(self.executor.capacity, 10**6)))
        try:
            while True:
                while not exhausted and len(active) < capacity:
                    candidate = self.ask()
                    if candidate is None:
                        exhausted = True
                        break
                    active[candidate.trial.number] = candidate
                    self.submit(candidate, inflight)
                if not inflight:
                    break
                for future in self.executor.wait(list(inflight), timeout=0.5):
                    number = inflight.pop(future)
                    candidate = active[number]
                    try:
                        result = future.result()
                    except Exception as exc:  # noqa: BLE001 - a worker lost, a pool broken
                        result = {"error": f"{type(exc).__name__}: {exc}", "fatal": False}
                    self._log(candidate, result)
                    if "error" in result:
                        del active[number]
                        candidate.trial.set_user_attr("failed_reason", result["error"])
                        self.study.tell(candidate.trial, state=TrialState.FAIL)
                        ran += 1
                        failures_in_row += 1
                        self.emit({"event": "failure", "trial": number, "error": result["error"]})
                        if result.get("fatal"):
                            raise OptimizeError(result["error"])
                        if failures_in_row >= MAX_CONSECUTIVE_FAILURES and completed_here == 0:
                            raise OptimizeError(
                                f"{failures_in_row} evaluations in a row failed; the last: {result['error']}"
                            )
                        continue
                    for outcome, by_future in result["values"].items():
                        for name, items in by_future.items():
                            candidate.values.setdefault(outcome, {}).setdefault(name, []).extend(items)
                    candidate.seconds += result.get("seconds", 0.0)
                    candidate.seller_market_days += result.get("seller_market_days", 0)
                    work += result.get("seller_market_days", 0)
                    means, _ = means_of(candidate.values)
                    if self._promote(candidate, means):
                        candidate.rung += 1
                        self.submit(candidate, inflight)
                        self.emit(
                            {
                                "event": "rung",
                                "trial": number,
                                "rung": candidate.rung,
                                "replications": self.loaded.rung_replications[candidate.rung],
                            }
                        )
                        continue
                    del active[number]
                    told = self.finish(candidate)
                    ran += 1
                    if told["state"] == "complete":
                        completed_here += 1
                        failures_in_row = 0
                    else:
                        failures_in_row += 1
                    done = sum(1 for t in self.study.get_trials(deepcopy=False) if _counts(t) and t.state.is_finished())
                    self.emit(
                        {
                            "event": "trial",
                            "trial": number,
                            "done": done,
                            "trials": self.n_trials,
                            "best": self.best_so_far(),
                            **told,
                        }
                    )
        except BaseException:
            self.executor.close(cancel=True)
            self.release(list(active.values()), "interrupted before the trial finished")
            raise
        self.executor.close()
        trials = [t for t in self.study.get_trials(deepcopy=False) if _counts(t)]
        return StudyOutcome(
            out=self.out,
            trials=len(trials),
            completed=sum(1 for t in trials if t.state == TrialState.COMPLETE),
            failed=sum(1 for t in trials if t.state == TrialState.FAIL),
            ran=ran,
            seconds=time.perf_counter() - started,
            seller_market_days=work,
            executor=self.executor.description,
        )


def run_study(
    loaded: LoadedOptimize,
    out: Path,
    n_trials: int,
    executor,
    emit: Callable[[dict], None] | None = None,
    threads: int | None = 1,
) -> StudyOutcome:
    """Run (or continue) the study in ``out`` until it holds ``n_trials`` trials.

    ``threads``: numba threads per evaluation (default 1: evaluations are small and many,
    and parallel kernels on a busy machine spin far more than they gain).
    """
    _quiet_optuna()
    study = _Study(loaded, out, n_trials, executor, emit or (lambda event: None), threads)
    return study.run()
