"""What a study leaves in DIR: trials.csv, pareto.csv, best.yaml, compare.csv, report.html.

Everything here is read from the study's storage (and, for the comparison, from fresh
simulations), so the files can be rebuilt at any time; each is written under a
temporary name and renamed (:func:`cbecsim.files.write_text_atomically`).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml

from ..config import apply_overrides, load_scenario
from ..files import write_text_atomically
from .robust import regret_matrix
from .spec import LoadedOptimize
from .study import directions, score_matrix

__all__ = ["trials_frame", "pareto_frame", "recommend", "best_scenario_data", "write_best_yaml", "compare_arms",
           "lever_importances", "regret_table", "build_report"]


def _complete(study) -> list:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "means" in t.user_attrs]


def trials_frame(loaded: LoadedOptimize, study) -> pd.DataFrame:
    """One row per trial: levers, per-future means, robust scores (over all complete trials), constraints.

    Columns: ``trial``, ``state``, one per lever (its label), ``replications``, ``rung``,
    ``<outcome>.<future>`` (mean over the trial's replications), ``robust.<objective>``
    (the criterion's score, recomputed over every complete trial so that regret is
    against the best of the whole study), ``robust_score`` (the first objective's),
    ``violation.<i>`` per constraint (<= 0 holds in every future), ``feasible``,
    ``seller_market_days``, ``seconds``, ``failed_reason``, ``retry_of``, ``pid``, ``host``.
    """
    from optuna.trial import TrialState

    spec = loaded.spec
    complete = _complete(study)
    rows_means = [t.user_attrs["means"] for t in complete]
    scores = {o.outcome: score_matrix(loaded, rows_means, j) if complete else np.array([])
              for j, o in enumerate(spec.objectives)}
    position = {t.number: i for i, t in enumerate(complete)}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        attrs = trial.user_attrs
        row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name.lower()}
        levers = attrs.get("levers") or {}
        for lever in spec.levers:
            value = levers.get(lever.label, trial.params.get(lever.label))
            row[lever.label] = value if isinstance(value, (int, float, str, bool, type(None))) else yaml.safe_dump(
                value, default_flow_style=True).strip()
        row["replications"] = attrs.get("replications")
        row["rung"] = attrs.get("rung")
        means = attrs.get("means") or {}
        for outcome in loaded.outcomes:
            for future in loaded.future_names:
                row[f"{outcome}.{future}"] = (means.get(outcome) or {}).get(future, math.nan)
        for objective in spec.objectives:
            row[f"robust.{objective.outcome}"] = (float(scores[objective.outcome][position[trial.number]])
                                                  if trial.number in position else math.nan)
        row["robust_score"] = row[f"robust.{spec.objectives[0].outcome}"]
        constraint_values = attrs.get("constraints") or [math.nan] * len(spec.constraints)
        for i, value in enumerate(constraint_values):
            row[f"violation.{i}"] = value
        row["feasible"] = bool(trial.state == TrialState.COMPLETE and all(v <= 0 for v in constraint_values))
        row["seller_market_days"] = attrs.get("seller_market_days")
        row["seconds"] = attrs.get("evaluation_seconds")
        row["failed_reason"] = attrs.get("failed_reason", "")
        row["retry_of"] = attrs.get("retry_of")
        row["pid"] = attrs.get("pid")
        row["host"] = attrs.get("host")
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs = {"criterion": spec.robustness.criterion, "constraints": [c.describe() for c in spec.constraints]}
    return frame


def _utilities(loaded: LoadedOptimize, frame: pd.DataFrame) -> np.ndarray:
    """Robust scores as 'higher is better', (n, objectives)."""
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions(loaded)])
    columns = [f"robust.{o.outcome}" for o in loaded.spec.objectives]
    return frame[columns].to_numpy(float) * signs[None, :]


def pareto_frame(loaded: LoadedOptimize, frame: pd.DataFrame) -> pd.DataFrame:
    """The feasible complete trials that no other feasible trial dominates on the robust scores."""
    chosen = frame[(frame["state"] == "complete") & frame["feasible"]].copy()
    if chosen.empty:
        return chosen
    utility = _utilities(loaded, chosen)
    keep = []
    for i in range(len(chosen)):
        dominated = np.any(np.all(utility >= utility[i], axis=1) & np.any(utility > utility[i], axis=1))
        keep.append(not dominated)
    return chosen[np.array(keep)].reset_index(drop=True)


def recommend(loaded: LoadedOptimize, frame: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """The recommended trial and why it was chosen.

    Among feasible complete trials (else, with a note, the least-violating ones): with
    racing, only those that reached the highest rung any of them reached (their scores
    rest on the most replications); then the best robust score of the first objective
    (with several objectives: the Pareto-optimal trial best on the first objective).
    """
    complete = frame[frame["state"] == "complete"]
    if complete.empty:
        return None, "no trial completed"
    feasible = complete[complete["feasible"]]
    note = ""
    if feasible.empty:
        worst = complete[[c for c in complete.columns if c.startswith("violation.")]].max(axis=1)
        feasible = complete[worst == worst.min()]
        note = "no candidate met every constraint in every future; the least-violating are considered. "
    if len(loaded.spec.objectives) > 1 and not note:
        pool = pareto_frame(loaded, frame)
        why = "the Pareto-optimal trial with the best robust score on the first objective"
    else:
        pool = feasible
        why = "the feasible trial with the best robust score"
    if loaded.spec.racing is not None and loaded.spec.racing.rungs > 0:
        top = pool["rung"].max()
        pool = pool[pool["rung"] == top]
        top_replications = loaded.rung_replications[int(top)]
        why += f" among those raced to the top rung reached ({int(top)}: {top_replications} replications)"
    utility = _utilities(loaded, pool)[:, 0]
    if not np.isfinite(utility).any():
        return None, note + "no trial has a finite robust score"
    best = pool.iloc[int(np.nanargmax(utility))]
    return best, note + why


def best_scenario_data(loaded: LoadedOptimize, levers: dict) -> dict:
    """The base scenario mapping with the levers written in (validated)."""
    data = apply_overrides(loaded.base_data, loaded.lever_overrides(levers))
    load_scenario(data)  # refuse to recommend something that does not validate
    return data


def write_best_yaml(loaded: LoadedOptimize, path: Path, levers: dict, trial: int, why: str, scores: dict) -> Path:
    data = best_scenario_data(loaded, levers)
    data["name"] = f"{loaded.base.name}_optimised"
    lines = [
        f"# Recommended by `cbecsim optimize` (study {loaded.spec.name!r}, trial {trial}): {why}.",
        f"# The base scenario {loaded.spec.base} (relative to the spec) with the spec's set: and these levers of "
        "population "
        f"{loaded.focal_label!r}:",
        *[f"#   {lever.path} = {levers[lever.label]!r}" for lever in loaded.spec.levers],
        f"# Robust scores ({loaded.spec.robustness.criterion} across futures {', '.join(loaded.future_names)}): "
        + ", ".join(f"{k} {v:.6g}" for k, v in scores.items()),
        "# The futures are not written in: run a future with its overrides, e.g. cbecsim run best.yaml --set ...",
        "",
    ]
    text = "\n".join(lines) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return write_text_atomically(path, text)


# --------------------------------------------------------------------------------------
# Fresh-replication comparison with the built-in strategies
# --------------------------------------------------------------------------------------


def arms(loaded: LoadedOptimize, levers: dict) -> dict[str, dict]:
    """Overrides of every compared arm: the recommendation, then each built-in strategy."""
    focal = f"sellers.{loaded.focal_index}"
    base_strategy = loaded.base.sellers[loaded.focal_index].strategy
    result = {"recommended": loaded.lever_overrides(levers)}
    for strategy in loaded.spec.compare.strategies:
        if strategy == base_strategy:
            result[f"{strategy} (base)"] = {}
        else:
            result[strategy] = {f"{focal}.strategy": strategy, f"{focal}.strategy_params": {}}
    return result


def compare_arms(
    loaded: LoadedOptimize, levers: dict, replications: int | None = None, executor=None, first: int | None = None
) -> pd.DataFrame:
    """Paired differences recommended - arm, per future and outcome, on fresh replications.

    The replications are ``first .. first + replications - 1`` with ``first`` (default)
    the search's ``search_replications``: disjoint from every replication the search
    used, same seed, so the arms are paired with each other (common random numbers) but
    the recommendation's estimate is not biased by having been selected on them.

    Returns a DataFrame: ``future``, ``arm``, ``outcome``, ``recommended``, ``arm_mean``,
    ``difference`` (mean of recommended - arm over replications), ``ci_low``,
    ``ci_high`` (95% paired t interval), ``n``, ``first_replication``,
    ``last_replication``.
    """
    from scipy import stats

    from .study import InProcessExecutor, payload

    count = int(replications or loaded.spec.compare.replications)
    first = loaded.search_replications if first is None else int(first)
    executor = executor or InProcessExecutor()
    overrides = arms(loaded, levers)
    futures = {
        name: executor.submit(payload(loaded, o, first, count, f"compare-{name}", 1)) for name, o in overrides.items()
    }
    results = {}
    for name, future in futures.items():
        result = future.result()
        if "error" in result:
            raise RuntimeError(f"comparison arm {name!r}: {result['error']}")
        results[name] = result["values"]
    rows = []
    for future in loaded.future_names:
        for name in overrides:
            if name == "recommended":
                continue
            for outcome in loaded.outcomes:
                x = np.asarray(results["recommended"][outcome][future], float)
                y = np.asarray(results[name][outcome][future], float)
                ok = np.isfinite(x) & np.isfinite(y)
                d = x[ok] - y[ok]
                low = high = math.nan
                if d.size > 1 and np.ptp(d) > 0:
                    interval = stats.ttest_rel(x[ok], y[ok]).confidence_interval(0.95)
                    low, high = float(interval.low), float(interval.high)
                elif d.size > 1:
                    low = high = float(d.mean())
                rows.append(
                    {
                        "future": future,
                        "arm": name,
                        "outcome": outcome,
                        "recommended": float(x[ok].mean()) if ok.any() else math.nan,
                        "arm_mean": float(y[ok].mean()) if ok.any() else math.nan,
                        "difference": float(d.mean()) if d.size else math.nan,
                        "ci_low": low,
                        "ci_high": high,
                        "n": int(d.size),
                        "first_replication": first,
                        "last_replication": first + count - 1,
                    }
                )
    return pd.DataFrame(rows)


def lever_importances(loaded: LoadedOptimize, study) -> pd.DataFrame | str:
    """Optuna's parameter importances (fANOVA) per objective, or why there are none."""
    import optuna

    complete = _complete(study)
    if len(complete) < 3:
        return f"too few complete trials ({len(complete)}) for importances"
    frames = []
    for j, objective in enumerate(loaded.spec.objectives):
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)

            def objective_value(trial: optuna.trial.FrozenTrial, j: int = j) -> float:
                return trial.values[j]

            values = optuna.importance.get_param_importances(study, evaluator=evaluator, target=objective_value)
        except Exception as exc:  # noqa: BLE001 - e.g. every trial with the same levers
            return f"not available: {type(exc).__name__}: {exc}"
        frames.append(pd.Series(values, name=objective.outcome))
    return pd.concat(frames, axis=1).fillna(0.0).rename_axis("lever")


def regret_table(loaded: LoadedOptimize, frame: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Regret of the best candidates in each future on the first objective [its units].

    Regret in future f = the best mean any complete trial reached in f minus the
    candidate's mean in f (the better direction counted positive); ``max`` is the
    largest over futures (minimax regret picks the smallest).
    """
    objective = loaded.spec.objectives[0]
    complete = frame[frame["state"] == "complete"]
    if complete.empty:
        return pd.DataFrame()
    columns = [f"{objective.outcome}.{f}" for f in loaded.future_names]
    regrets = regret_matrix(complete[columns].to_numpy(float), objective.sign)
    table = pd.DataFrame(regrets, columns=loaded.future_names, index=complete["trial"].to_numpy())
    table["max"] = table.max(axis=1)
    table.index.name = "trial"
    return table.sort_values("max").head(top)


# --------------------------------------------------------------------------------------
# The HTML report
# --------------------------------------------------------------------------------------

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}.good{background:#e5f5e0}"
    ".bad{background:#fde0dd}.note{color:#555;font-size:0.92em}code{background:#f6f6f6}"
)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return _e(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[Sequence[str]] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            cls = classes[i][j] if classes else ""
            cells.append(f'<td class="{cls}">{_num(cell)}</td>' if cls else f"<td>{_num(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _figure(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{encoded}">'


def _history_plot(loaded: LoadedOptimize, frame: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = frame[frame["state"] == "complete"].sort_values("trial")
    if complete.empty:
        return ""
    figure, ax = plt.subplots(figsize=(7, 3.2))
    y = complete["robust_score"].to_numpy(float)
    maximise = directions(loaded)[0] == "maximize"
    feasible = complete["feasible"].to_numpy(bool)
    ax.scatter(
        complete["trial"],
        y,
        c=np.where(feasible, "tab:blue", "tab:gray"),
        s=14,
        label="trial (grey: violates a constraint)",
    )
    best = (
        pd.Series(np.where(feasible, y, np.nan)).cummax()
        if maximise
        else pd.Series(np.where(feasible, y, np.nan)).cummin()
    )
    ax.plot(complete["trial"], best.ffill(), color="tab:red", label="best feasible so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{loaded.spec.robustness.criterion}: {loaded.spec.objectives[0].outcome}")
    ax.legend(fontsize=8)
    return _figure(figure)


def _pareto_plot(loaded: LoadedOptimize, frame: pd.DataFrame, pareto: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(loaded.spec.objectives) < 2 or frame.empty:
        return ""
    a, b = (f"robust.{o.outcome}" for o in loaded.spec.objectives[:2])
    complete = frame[frame["state"] == "complete"]
    figure, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(complete[a], complete[b], s=12, color="tab:gray", label="trials")
    if not pareto.empty:
        ordered = pareto.sort_values(a)
        ax.plot(ordered[a], ordered[b], "o-", color="tab:red", label="Pareto front")
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    ax.legend(fontsize=8)
    return _figure(figure)


def build_report(
    loaded: LoadedOptimize,
    frame: pd.DataFrame,
    pareto: pd.DataFrame,
    best: pd.Series | None,
    why: str,
    comparison: pd.DataFrame | None,
    importances: pd.DataFrame | str,
    regrets: pd.DataFrame,
    outcome_notes: dict[str, str],
) -> str:
    """The self-contained report.html (inline styles, images as base64 PNG)."""
    spec = loaded.spec
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>cbecsim optimize {_e(spec.name)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Strategy optimisation: {_e(spec.name)}</h1>",
    ]
    if spec.description:
        parts.append(f"<p>{_e(spec.description)}</p>")
    rungs = loaded.rung_replications
    racing = (
        f"Racing (successive halving): a candidate starts with {rungs[0]} replications; one whose robust score "
        f"is in the top 1/{spec.racing.eta} of its rung gets {spec.racing.eta}x as many, up to {rungs[-1]} "
        f"({spec.racing.rungs} promotion(s)). Each trial's 'replications' column says how many its values use."
        if spec.racing is not None and spec.racing.rungs > 0
        else f"Every candidate is evaluated on {rungs[0]} replications (no racing)."
    )
    complete = frame[frame["state"] == "complete"] if not frame.empty else frame
    parts.append(
        "<h2>Set-up</h2>"
        + _table(
            ["", ""],
            [
                ["base scenario", str(loaded.base_path)],
                [
                    "focal population",
                    f"{loaded.focal_label} (sellers.{loaded.focal_index}, "
                    f"{loaded.base.sellers[loaded.focal_index].count} sellers)",
                ],
                ["objectives", "; ".join(f"{o.direction} {o.outcome}" for o in spec.objectives)],
                ["constraints (every future)", "; ".join(c.describe() for c in spec.constraints) or "none"],
                ["futures (weight)", "; ".join(f"{n} ({w:.3g})" for n, w in zip(loaded.future_names, loaded.weights))],
                [
                    "robustness",
                    spec.robustness.criterion
                    + (f" (q = {spec.robustness.percentile:g})" if spec.robustness.percentile else ""),
                ],
                ["seed / resolution", f"{loaded.seed} / {spec.resolution}"],
                ["trials", f"{len(frame)} ({len(complete)} complete)"],
            ],
            [["l", "l"]] * 8,
        )
    )
    parts.append(
        f"<p class='note'>Common random numbers: every candidate, in every future, is simulated with seed "
        f"{loaded.seed} on the same replication indices (0 .. {rungs[-1] - 1} at most), so replication r of "
        f"two candidates saw the same shoppers, lead times and parameter draws. {_e(racing)}</p>"
    )
    parts.append(
        "<h3>Levers</h3>"
        + _table(
            ["lever", "path", "type", "range / choices"],
            [
                [
                    lever.label,
                    lever.path,
                    lever.type,
                    f"{lever.min:g} .. {lever.max:g}{' (log)' if lever.log else ''}"
                    if lever.choices is None
                    else ", ".join(map(str, lever.choices)),
                ]
                for lever in spec.levers
            ],
            [["l"] * 4] * len(spec.levers),
        )
    )
    parts.append(
        "<h3>Outcomes</h3>"
        + _table(
            ["outcome", "definition"], [[k, v] for k, v in outcome_notes.items()], [["l", "l"]] * len(outcome_notes)
        )
    )

    parts.append("<h2>Recommendation</h2>")
    if best is None:
        parts.append(f"<p>No recommendation: {_e(why)}.</p>")
    else:
        parts.append(f"<p>Trial {int(best['trial'])}: {_e(why)}.</p>")
        rows = [[lever.label, best[lever.label]] for lever in spec.levers]
        parts.append(_table(["lever", "value"], rows, [["l", "l"]] * len(rows)))
        header = ["outcome", *loaded.future_names]
        rows = [[o, *[best[f"{o}.{f}"] for f in loaded.future_names]] for o in loaded.outcomes]
        parts.append(
            f"<p>Mean over the search's {int(best['replications'])} replications (selected on these, so "
            "optimistic; see the comparison on fresh replications below):</p>" + _table(header, rows)
        )
        parts.append(
            "<p>Written to <code>best.yaml</code> (the base scenario with these levers; it runs with "
            "<code>cbecsim run best.yaml</code>).</p>"
        )

    parts.append("<h2>Search</h2>" + _history_plot(loaded, frame))
    if len(spec.objectives) > 1:
        parts.append("<h3>Pareto front (robust scores)</h3>" + _pareto_plot(loaded, frame, pareto))
        if not pareto.empty:
            columns = [
                "trial",
                *[lever.label for lever in spec.levers],
                *[f"robust.{o.outcome}" for o in spec.objectives],
            ]
            parts.append(_table(columns, pareto[columns].to_numpy().tolist()))

    parts.append("<h2>Recommendation against the built-in strategies, per future</h2>")
    if comparison is None or comparison.empty:
        parts.append("<p>Not computed.</p>")
    else:
        first, last = int(comparison["first_replication"].iloc[0]), int(comparison["last_replication"].iloc[0])
        parts.append(
            f"<p class='note'>Re-estimated on <b>fresh replications {first} .. {last}</b> (same seed): "
            f"disjoint from the replications 0 .. {rungs[-1] - 1} the search selected on, so these "
            "differences are not inflated by the selection. Each arm is the base scenario with the focal "
            "population following that built-in strategy at its default parameters ('(base)': as the base "
            "configures it). Difference = recommended - arm, mean over replications with a 95% paired t "
            "interval (common random numbers: the same replication indices in every arm). Green: the "
            "interval favours the recommendation; red: it favours the arm.</p>"
        )
        direction = {o.outcome: o.sign for o in spec.objectives}
        for future in loaded.future_names:
            chosen = comparison[comparison["future"] == future]
            rows, classes = [], []
            for _, row in chosen.iterrows():
                sign = direction.get(row["outcome"], 0.0)
                cls = ""
                if sign and math.isfinite(row["ci_low"]):
                    if sign * row["ci_low"] > 0 and sign * row["ci_high"] > 0:
                        cls = "good"
                    elif sign * row["ci_low"] < 0 and sign * row["ci_high"] < 0:
                        cls = "bad"
                rows.append(
                    [
                        row["arm"],
                        row["outcome"],
                        row["recommended"],
                        row["arm_mean"],
                        row["difference"],
                        f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]",
                        row["n"],
                    ]
                )
                classes.append(["l", "l", "", "", cls, cls, ""])
            parts.append(
                f"<h3>future {_e(future)}</h3>"
                + _table(["arm", "outcome", "recommended", "arm", "difference", "95% CI", "n"], rows, classes)
            )

    parts.append("<h2>Lever importances</h2>")
    if isinstance(importances, str):
        parts.append(f"<p>{_e(importances)}</p>")
    else:
        parts.append(
            "<p class='note'>Optuna's fANOVA importances of each lever for each robust score (shares of "
            "the variance of the score explained, over the complete trials).</p>"
        )
        parts.append(
            _table(
                ["lever", *importances.columns], [[i, *r] for i, r in zip(importances.index, importances.to_numpy())]
            )
        )
    parts.append("<h2>Regret table</h2>")
    if regrets.empty:
        parts.append("<p>No complete trials.</p>")
    else:
        parts.append(
            f"<p class='note'>Regret on {_e(spec.objectives[0].outcome)} in each future: the best mean any "
            "trial reached there minus the trial's mean (0 = best in that future); 'max' is the worst over "
            "futures, which minimax regret minimises. The 10 trials with the smallest maximum regret.</p>"
        )
        parts.append(_table(["trial", *regrets.columns], [[i, *r] for i, r in zip(regrets.index, regrets.to_numpy())]))
    failed = frame[frame["state"] == "fail"] if not frame.empty else frame
    if len(failed):
        parts.append(
            "<h2>Failed trials</h2>"
            + _table(
                ["trial", "reason"], failed[["trial", "failed_reason"]].to_numpy().tolist(), [["", "l"]] * len(failed)
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)
