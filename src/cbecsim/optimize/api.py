"""``cbecsim.optimize(spec)``: search a seller's levers across policy futures, robustly."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from ..config import ConfigError, Scenario, load_scenario
from ..files import folder_problem, write_text_atomically
from ..results import OutputError
from .objectives import OUTCOMES
from .spec import LoadedOptimize, load_optimize_spec
from .study import STUDY_FILE, OptimizeError, StudyOutcome, make_executor, open_study, run_study

__all__ = ["optimize", "OptimizeResult", "check_outcome_variables", "check_out"]

TRIALS_FILE, PARETO_FILE, BEST_FILE, COMPARE_FILE, REPORT_FILE = (
    "trials.csv", "pareto.csv", "best.yaml", "compare.csv", "report.html")


@dataclasses.dataclass
class OptimizeResult:
    """What :func:`optimize` found, and the files it wrote under ``out``.

    ``trials``: one row per trial (``trials.csv``); ``pareto``: the non-dominated
    feasible trials (``pareto.csv`` with several objectives); ``best`` the recommended
    trial's row and ``why`` the rule that chose it; ``best_levers`` its lever values;
    ``best_scenario`` the validated base scenario with them written in (``best.yaml``).
    """

    loaded: LoadedOptimize
    out: Path
    outcome: StudyOutcome
    trials: pd.DataFrame
    pareto: pd.DataFrame
    best: pd.Series | None
    why: str
    _comparison: pd.DataFrame | None = None
    _study: Any = None

    @property
    def study(self):
        """The Optuna study (``out/study.db``)."""
        if self._study is None:
            self._study = open_study(self.out)
        return self._study

    @property
    def best_levers(self) -> dict[str, Any] | None:
        if self.best is None:
            return None
        trial = next(t for t in self.study.get_trials(deepcopy=False) if t.number == int(self.best["trial"]))
        return dict(trial.user_attrs["levers"])

    @property
    def best_scenario(self) -> Scenario | None:
        from .outputs import best_scenario_data

        levers = self.best_levers
        return None if levers is None else load_scenario(best_scenario_data(self.loaded, levers))

    def compare(self, replications: int | None = None, executor=None) -> pd.DataFrame:
        """Recommendation minus each built-in strategy, per future and outcome, on fresh replications.

        See :func:`cbecsim.optimize.outputs.compare_arms`; the default comparison
        (``compare.replications`` of the spec) is computed once and cached.
        """
        from .outputs import compare_arms

        levers = self.best_levers
        if levers is None:
            raise OptimizeError(f"nothing to compare: {self.why}")
        if replications is None and executor is None and self._comparison is not None:
            return self._comparison
        comparison = compare_arms(self.loaded, levers, replications, executor)
        if replications is None:
            self._comparison = comparison
        return comparison


def check_outcome_variables(loaded: LoadedOptimize) -> None:
    """Simulate one day of the base and check every outcome's variables are in the result.

    Raises :class:`ConfigError` naming the outcome, where it is used and the missing
    variable (e.g. ``final_equity`` before the engine records ``equity``).
    """
    from ..api import simulate_replications

    start = loaded.base.horizon.start.isoformat()
    probe = simulate_replications(load_scenario(loaded.base_data, {"horizon.end": start}), 0, 1,
                                  seed=loaded.seed, resolution="day", threads=1)
    problems = []
    uses = [(f"objectives.{i}.outcome", o.outcome) for i, o in enumerate(loaded.spec.objectives)]
    uses += [(f"constraints.{i}.outcome", c.outcome) for i, c in enumerate(loaded.spec.constraints)]
    for where, name in uses:
        missing = [v for v in OUTCOMES[name].needs if v not in probe.data_vars]
        if missing:
            problems.append((where, f"outcome {name!r} needs the result variable {', '.join(map(repr, missing))}, "
                                    "which this cbecsim build does not record"))
    if problems:
        raise ConfigError(problems)


def check_out(out: Path, resume: bool) -> bool:
    """Refuse an output folder that cannot be used; True when resuming a study there."""
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder")
        if not resume:
            raise OutputError(f"{out} already exists (pass --resume to continue the study in it, or choose "
                              "another --out)")
        if not (out / STUDY_FILE).exists():
            raise OutputError(f"{out} holds no study ({STUDY_FILE}): nothing to resume")
        return True
    if problem := folder_problem(out):
        raise OutputError(problem)
    return False


def optimize(
    spec: LoadedOptimize | str | os.PathLike | Mapping[str, Any],
    out: str | os.PathLike | None = None,
    *,
    trials: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster: str | None = None,
    cluster_options: Mapping[str, Any] | None = None,
    resume: bool = False,
    report: bool = True,
    progress: Callable[[dict], None] | None = None,
) -> OptimizeResult:
    """Search the focal population's levers across the spec's policy futures.

    Parameters
    ----------
    spec : optimisation spec path, mapping, or :class:`~cbecsim.optimize.spec.LoadedOptimize`
    out : folder for the study and its outputs (default: a new temporary folder)
    trials : trials in the study when done (default: the spec's ``trials``); with
        ``resume``, the total including those already there
    workers : local worker processes for evaluations (default 1: this process)
    scheduler : ``tcp://host:port`` (or a scheduler JSON file) of a running Dask cluster
    cluster : ``"slurm"`` or ``"pbs"``: start one with dask-jobqueue (options from the
        spec's ``cluster:``, overridden by ``cluster_options``)
    resume : continue the study in ``out`` (also how a second process joins it)
    report : also compare the recommendation with the built-in strategies on fresh
        replications and write ``compare.csv`` and ``report.html``
    progress : called with event dicts (``start``, ``trial``, ``rung``, ``failure``, ``compare``)

    Returns
    -------
    OptimizeResult

    Raises
    ------
    ConfigError, OutputError
        Before any work or file, for a bad spec, argument or output folder.
    OptimizeError
        When evaluations keep failing (the study stays resumable).
    """
    loaded = spec if isinstance(spec, LoadedOptimize) else load_optimize_spec(spec)
    problems = []
    if trials is not None and trials < 1:
        problems.append(("trials", f"must be >= 1, got {trials}"))
    if workers is not None and workers < 1:
        problems.append(("workers", f"must be >= 1, got {workers}"))
    if scheduler and cluster:
        problems.append(("scheduler", "give either a scheduler address or --cluster, not both"))
    if cluster is not None and cluster not in ("slurm", "pbs"):
        problems.append(("cluster", f"must be slurm or pbs, got {cluster!r}"))
    if problems:
        raise ConfigError(problems)
    folder = Path(out) if out is not None else None
    if folder is not None:
        check_out(folder, resume)
    check_outcome_variables(loaded)
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix=f"cbecsim-optimize-{loaded.spec.name}-"))
    options = dict(loaded.spec.cluster.model_dump())
    options.update({k: v for k, v in (cluster_options or {}).items() if v not in (None, [], ())})
    try:
        executor = make_executor(workers, scheduler, cluster, options)
    except Exception as exc:  # noqa: BLE001 - an unreachable scheduler is a user error
        raise OutputError(f"cannot start the evaluators: {type(exc).__name__}: {exc}") from None
    folder.mkdir(exist_ok=True)
    outcome = run_study(loaded, folder, int(trials or loaded.spec.trials), executor, progress)
    return write_outputs(loaded, folder, outcome, report, progress)


def write_outputs(loaded: LoadedOptimize, out: Path, outcome: StudyOutcome, report: bool = True,
                  progress: Callable[[dict], None] | None = None) -> OptimizeResult:
    """Build trials.csv, pareto.csv, best.yaml and (with ``report``) compare.csv and report.html."""
    from .outputs import (
        build_report,
        lever_importances,
        pareto_frame,
        recommend,
        regret_table,
        trials_frame,
        write_best_yaml,
    )

    study = open_study(out)
    frame = trials_frame(loaded, study)
    write_text_atomically(out / TRIALS_FILE, frame.to_csv(index=False, float_format="%.6g"))
    pareto = pareto_frame(loaded, frame) if not frame.empty else frame
    if len(loaded.spec.objectives) > 1:
        write_text_atomically(out / PARETO_FILE, pareto.to_csv(index=False, float_format="%.6g"))
    best, why = recommend(loaded, frame) if not frame.empty else (None, "no trials")
    result = OptimizeResult(loaded, out, outcome, frame, pareto, best, why, _study=study)
    if best is not None:
        levers = result.best_levers
        assert levers is not None  # best_levers is None only when best is
        scores = {f"robust.{o.outcome}": float(best[f"robust.{o.outcome}"]) for o in loaded.spec.objectives}
        write_best_yaml(loaded, out / BEST_FILE, levers, int(best["trial"]), why, scores)
    if report:
        comparison = None
        if best is not None:
            if progress is not None:
                progress({"event": "compare", "arms": 1 + len(loaded.spec.compare.strategies),
                          "replications": loaded.spec.compare.replications})
            comparison = result.compare()
            write_text_atomically(out / COMPARE_FILE, comparison.to_csv(index=False, float_format="%.6g"))
        notes = {name: OUTCOMES[name].description for name in loaded.outcomes}
        text = build_report(loaded, frame, pareto, best, why, comparison, lever_importances(loaded, study),
                            regret_table(loaded, frame), notes)
        write_text_atomically(out / REPORT_FILE, text)
    return result
