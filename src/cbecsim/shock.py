"""Shock analysis: a scenario against its no-shock counterfactual on common random numbers.

The *shocked* world is the scenario as configured. Its *counterfactual* is the same
scenario with some dated duty changes removed: by default every change dated after the
horizon start (the regime in force at the start stays in force for the whole horizon);
with ``without`` the changes of a policy-library regime set (``eu_2026``), of one library
entry (``eu_2026/parcel-fixed-duty-3-per-heading``), one of the config's own changes
(``duty_schedule.0``) or all changes of a date (``2026-07-01``). The counterfactual is
built as a Scenario whose ``duty_schedule`` is the shocked world's effective schedule
(the library's changes materialised, then the config's own) minus the removed changes,
with ``policy: []``; a change's fields that are not set keep their previous value, so the
regime in force before a removed change simply stays.

Both worlds run with the same seed and replication indices, so replication r of both sees
the same shoppers, auctions and lead times (DESIGN.md sec. 4): they are identical until the
first removed change (the *fork*), and the effects (:mod:`cbecsim.analysis.effects`) are
paired differences, exactly 0 before it.

``cbecsim shock`` (:mod:`cbecsim.shock_cli`) and :func:`shock` write ``DIR/shocked.nc``,
``DIR/counterfactual.nc``, ``DIR/effects.csv``, ``DIR/effects.nc`` and
``DIR/report.html``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import sys
import types
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import xarray as xr

from .config import ConfigError, DutyChange, Scenario, load_scenario
from .files import folder_problem, remove, temporary_sibling

__all__ = ["shock", "ShockResult", "ShockPlan", "RemovedChange", "plan_shock", "plan_compare", "change_names",
           "simulate_pair", "OUTPUT_FILES", "check_output_dir"]

#: Names ``shock`` writes under ``out`` (the two worlds as ``.nc`` or, with
#: ``format="zarr"``, ``.zarr``; with a compare arm also ``compare/`` and ``interaction.*``).
OUTPUT_FILES = ("shocked.nc", "shocked.zarr", "counterfactual.nc", "counterfactual.zarr", "effects.csv",
                "effects.nc", "report.html", "compare", "interaction.csv", "interaction.nc")


# --------------------------------------------------------------------------------------
# The counterfactual: which changes are removed
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RemovedChange:
    """One duty change the counterfactual leaves out."""

    name: str  # "eu_2026/parcel-fixed-duty-3-per-heading" or "duty_schedule.0"
    date: dt.date
    region: str
    scope: str  # origins, categories, kinds in words
    sets: str  # the fields it sets, e.g. "low_value_duty_per_item=3 EUR"


@dataclasses.dataclass(frozen=True)
class ShockPlan:
    """The two worlds of a shock analysis and where they part."""

    shocked: Scenario
    counterfactual: Scenario
    removed: tuple[RemovedChange, ...]
    change_dates: tuple[dt.date, ...]  # distinct dates of the removed changes, sorted
    fork_date: dt.date  # first day on which the worlds may differ (a removed change is visible)
    without: tuple[str, ...]  # the names asked for (empty: the default)

    @property
    def fork_day(self) -> int:
        """Index of the fork date in the horizon [days since the horizon start]."""
        return (self.fork_date - self.shocked.horizon.start).days

    def describe(self) -> str:
        """The counterfactual in one sentence."""
        asked = ", ".join(self.without) if self.without else (
            f"every change from {self.fork_date}" if self.fork_date != self.change_dates[0]
            else "every change after the horizon start")
        dates = ", ".join(str(d) for d in self.change_dates)
        return (f"counterfactual: {self.shocked.name} without {asked} ({len(self.removed)} duty changes "
                f"on {dates}); the worlds are identical before {self.fork_date}")


def change_names(scenario: Scenario) -> list[str]:
    """A name per entry of ``scenario.effective_duty_schedule``, in its order.

    A change's own ``name`` where it has one; else, for a policy-library change, the
    library entry it comes from (``set/entry-id``, from its ``source``); else, for the
    config's own changes, ``duty_schedule.<index>``.
    """
    effective = scenario.effective_duty_schedule
    n_policy = len(effective) - len(scenario.duty_schedule)
    names = []
    for position, change in enumerate(effective):
        own = getattr(change, "name", None)
        if own:
            names.append(str(own))
        elif position < n_policy:
            names.append((change.source or "").split(":", 1)[0] or f"policy.{position}")
        else:
            names.append(f"duty_schedule.{position - n_policy}")
    return names


def _scope(change: DutyChange) -> str:
    parts = [f"origins {'/'.join(change.origins)}" if change.origins else "all origins",
             f"categories {'/'.join(change.categories)}" if change.categories else "all categories",
             "/".join(change.kinds) if change.kinds else "parcel/bulk"]
    return ", ".join(parts)


def _sets(change: DutyChange) -> str:
    fields = change.set.model_dump(exclude_none=True)
    money = ("de_minimis_threshold", "low_value_duty_per_item", "specific_duty_per_item")
    return ", ".join(f"{k}={v:g} {change.currency}" if k in money else f"{k}={v}" for k, v in fields.items())


def _as_date(value: Any, flag: str, problems: list) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        problems.append((flag, f"expected a date YYYY-MM-DD, got {value!r}"))
        return None


def _listing(items: Sequence[str], limit: int = 12) -> str:
    items = list(dict.fromkeys(items))
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def plan_shock(scenario: Scenario, without: Sequence[str] | str | None = None,
               at: dt.date | str | None = None, flags: tuple[str, str] = ("without", "at")) -> ShockPlan:
    """Decide which changes the counterfactual removes and build it.

    Parameters
    ----------
    scenario : the shocked world
    without : names of what to remove (see the module docstring); default: every change
        dated after the horizon start, or on or after ``at`` when it is given
    at : fork date override: the first day the worlds may differ (after the horizon
        start, on or before the first removed change)
    flags : how to name ``without`` and ``at`` in error messages (the CLI passes
        ``("--without", "--at")``)

    Raises
    ------
    ConfigError
        With one ``(flag, message)`` per problem: an unknown name (the message lists the
        valid ones), a date outside the horizon, a change dated after the horizon or on its
        start, a config with no change inside the horizon to remove, or a fork date after
        the first removed change.
    """
    flag_without, flag_at = flags
    if isinstance(without, str):
        without = [without]
    without = tuple(without or ())
    start, end = scenario.horizon.start, scenario.horizon.end
    effective = scenario.effective_duty_schedule
    names = change_names(scenario)
    problems: list[tuple[str, str]] = []
    at_date = _as_date(at, flag_at, problems)
    if at_date is not None and not start < at_date <= end:
        problems.append((flag_at, f"{at_date} is outside the horizon: expected a date after its start {start} "
                                  f"and on or before its end {end}"))
    inside = sorted({c.date for c in effective if start < c.date <= end})
    inside_text = ", ".join(map(str, inside)) or "none"
    removed: set[int] = set()
    if not without:
        first = at_date or (start + dt.timedelta(days=1))
        removed = {i for i, c in enumerate(effective) if first <= c.date <= end}
        if not removed and not problems:
            if at_date is None:
                problems.append((flag_without, f"{scenario.name} has no duty change inside the horizon ({start} "
                                               f"to {end}) to remove: every change is dated on its start, so the "
                                               "counterfactual would be the same world; add a dated change to "
                                               "duty_schedule or a regime set to policy"))
            else:
                problems.append((flag_at, f"no duty change is dated on or after {at_date} inside the horizon "
                                          f"(changes inside it: {inside_text})"))
    set_names = list(scenario.policy)
    for name in without:
        problems_before = len(problems)
        asked_date = None
        try:
            asked_date = dt.date.fromisoformat(name)
        except ValueError:
            pass
        if asked_date is not None:
            matches = [i for i, c in enumerate(effective) if c.date == asked_date]
            if not start < asked_date <= end:
                problems.append((flag_without, f"{name} is outside the horizon: expected a date after its start "
                                               f"{start} and on or before its end {end} (changes inside it: "
                                               f"{inside_text})"))
            elif not matches:
                problems.append((flag_without, f"no duty change is dated {name} (changes inside the horizon: "
                                               f"{inside_text})"))
        elif name in set_names:
            members = [i for i, n in enumerate(names) if n.split("/", 1)[0] == name]
            matches = [i for i in members if start < effective[i].date <= end]
            if not matches:
                problems.append((flag_without, f"regime set {name} has no change inside the horizon ({start} to "
                                               f"{end}): nothing to remove"))
        elif name in names:
            members = [i for i, n in enumerate(names) if n == name]
            matches = [i for i in members if start < effective[i].date <= end]
            dates = ", ".join(sorted({str(effective[i].date) for i in members}))
            if not matches:
                if all(effective[i].date > end for i in members):
                    where = f"after the horizon end {end}: removing it changes nothing inside the horizon"
                else:
                    where = (f"on or before the horizon start {start}: it sets the regime in force at the start, "
                             "which the counterfactual keeps")
                problems.append((flag_without, f"{name} is dated {dates}, {where}"))
        else:
            matches = []
            valid = [*set_names, *(n for n, c in zip(names, effective) if start < c.date <= end), *map(str, inside)]
            problems.append((flag_without, f"unknown name {name!r}: expected a regime set of the config's policy, "
                                           f"a duty change or a change date inside the horizon: "
                                           f"{_listing(valid) or 'none (no change inside the horizon)'}"))
        if len(problems) == problems_before:
            removed.update(matches)
    if problems:
        raise ConfigError(problems)
    change_dates = tuple(sorted({effective[i].date for i in removed}))
    # Sellers act on an announced change before it comes into force (front-loading,
    # pausing imports): the worlds part on the first day a removed change is visible.
    seen, first_seen = min((scenario.visible_from(effective[i]), i) for i in removed)
    seen = max(seen, start)
    fork = at_date or seen
    if fork > seen:
        why = (f"the first removed change ({change_dates[0]})" if seen == change_dates[0] else
               f"sellers see {names[first_seen]} coming from {seen} (announced {effective[first_seen].announced}, "
               f"anticipation_days {scenario.anticipation_days})")
        raise ConfigError([(flag_at, f"{fork} is after the day the two worlds start to differ: {why}; give a "
                                     f"date on or before {seen}")])
    data = scenario.model_dump(mode="json", exclude_none=True)
    data["policy"] = []
    data["duty_schedule"] = [c.model_dump(mode="json", exclude_none=True) for i, c in enumerate(effective)
                             if i not in removed]
    data["name"] = f"{scenario.name} (counterfactual)"
    counterfactual = load_scenario(data)
    removed_changes = tuple(
        RemovedChange(names[i], effective[i].date, effective[i].region, _scope(effective[i]), _sets(effective[i]))
        for i in sorted(removed, key=lambda i: (effective[i].date, i)))
    return ShockPlan(scenario, counterfactual, removed_changes, change_dates, fork, without)


# --------------------------------------------------------------------------------------
# Simulating the pair: the counterfactual forked from the shocked world
# --------------------------------------------------------------------------------------


def simulate_pair(shocked: Scenario, counterfactual: Scenario, fork_day: int, replications: int, seed: int,
                  resolution: str, batch_size: int | None = None, threads: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  out_shocked: str | os.PathLike | None = None,
                  out_counterfactual: str | os.PathLike | None = None,
                  overwrite: bool = False) -> tuple[xr.Dataset, xr.Dataset]:
    """Simulate the shocked world and its counterfactual on common random numbers.

    Parameters
    ----------
    shocked, counterfactual : Scenarios that are identical before day ``fork_day``
    fork_day : first day index on which the worlds may differ [days since the horizon
        start]
    replications, seed : replications ``0 .. replications - 1`` of both, same master seed
    resolution, batch_size, threads : as :func:`cbecsim.run`
    progress : callable(done, total) in replication-days over both worlds
    out_shocked, out_counterfactual, overwrite : where to save each world (``.nc`` or
        ``.zarr``), as :func:`cbecsim.run`'s ``out``

    Returns
    -------
    (shocked result, counterfactual result): Datasets with identical dims and coords.

    Notes
    -----
    The counterfactual is forked from the shocked world's state at ``fork_day``
    (:func:`cbecsim.api.run_pair`): the days before it are simulated once, and its
    trajectory equals a full run of ``counterfactual`` bit for bit (a test checks it),
    because before the fork no removed change is in force or visible to the sellers.
    """
    from .api import run_pair

    return run_pair(shocked, counterfactual, fork_day, replications, seed, resolution, batch_size=batch_size,
                    threads=threads, out_shocked=out_shocked, out_counterfactual=out_counterfactual,
                    overwrite=overwrite, progress=progress or False)


# --------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class ShockResult:
    """What :func:`shock` returns.

    Attributes
    ----------
    plan : the two worlds and the removed changes (:class:`ShockPlan`)
    shocked, counterfactual : result Datasets (dims replication, time, seller, market)
    effects : Dataset (group, outcome, window): ``effect``, ``low``, ``high``,
        ``shocked``, ``counterfactual``, ``variance_ratio``, ... (see
        :func:`cbecsim.analysis.effects.shock_effects`)
    survival : Kaplan-Meier curves of both worlds and their difference with a band
        (:func:`cbecsim.analysis.effects.survival_difference`)
    compare : the compare arm's ShockResult (``compare_overrides``), or None
    interaction : difference in differences, compare arm minus this one
        (:func:`cbecsim.analysis.effects.interaction_effects`), or None
    out : the folder written, or None
    """

    plan: ShockPlan
    shocked: xr.Dataset
    counterfactual: xr.Dataset
    effects: xr.Dataset
    survival: xr.Dataset
    compare: "ShockResult | None" = None
    interaction: xr.Dataset | None = None
    compare_overrides: tuple[str, ...] = ()
    out: Path | None = None

    @property
    def change_dates(self) -> tuple[dt.date, ...]:
        return self.plan.change_dates

    @property
    def fork_date(self) -> dt.date:
        return self.plan.fork_date

    def to_frame(self) -> pd.DataFrame:
        """The effects in long format, one row per (group, outcome, window), groups in the CLI's order."""
        from .analysis.effects import effects_frame

        return effects_frame(self.effects)

    def interaction_frame(self) -> pd.DataFrame | None:
        """The difference in differences in long format (None without a compare arm)."""
        from .analysis.effects import effects_frame

        return None if self.interaction is None else effects_frame(self.interaction)


def plan_compare(plan: ShockPlan, compare_overrides: Sequence[str] | Mapping[str, Any],
                 without: Sequence[str] | str | None = None, at: dt.date | str | None = None,
                 flags: tuple[str, str] = ("without", "at")) -> ShockPlan:
    """The compare arm's ShockPlan: ``plan``'s shocked scenario with ``compare_overrides``.

    Raises ConfigError (paths prefixed ``compare arm:``) for bad overrides, for an arm whose
    seller populations or markets differ (the interaction pairs the same sellers) or whose
    removed changes fall on other dates.
    """
    base = plan.shocked
    try:
        arm = load_scenario(base, compare_overrides)
        compare_plan = plan_shock(arm, without, at, flags)
    except ConfigError as exc:
        raise ConfigError([(f"compare arm: {path}", message) for path, message in exc.problems]) from None

    def sellers(scenario: Scenario) -> list:
        return [(p.label, p.strategy, p.count) for p in scenario.sellers]

    if sellers(arm) != sellers(base) or arm.market_names != base.market_names:
        raise ConfigError([("compare arm", "changes the seller populations or markets: the difference in "
                                           "differences pairs the same sellers in both arms; change a lever "
                                           "(fulfilment, prices, ads ...) instead")])
    if compare_plan.change_dates != plan.change_dates:
        raise ConfigError([("compare arm", f"removes changes on {', '.join(map(str, compare_plan.change_dates))}, "
                                           f"the base arm on {', '.join(map(str, plan.change_dates))}: the two "
                                           "arms must remove the same changes")])
    return compare_plan


def check_output_dir(out: str | os.PathLike, overwrite: bool, flag: str = "out") -> Path:
    """Refuse an output folder that cannot be (re)written; raise ConfigError.

    A folder that exists is replaced only with ``overwrite`` and only if it holds nothing
    but what :func:`shock` writes (:data:`OUTPUT_FILES`).
    """
    path = Path(out)
    if path.suffix.lower() in (".nc", ".zarr", ".html", ".csv"):
        raise ConfigError([(flag, f"{path}: a shock analysis writes a folder (shocked.nc, counterfactual.nc, "
                                  "effects.csv, effects.nc, report.html): give a folder name without a suffix")])
    if path.exists():
        if not path.is_dir():
            raise ConfigError([(flag, f"{path} exists and is not a folder")])
        contents = [p.name for p in path.iterdir()]
        foreign = [n for n in contents if n not in OUTPUT_FILES]
        if contents and not overwrite:
            raise ConfigError([(flag, f"{path} already exists (pass --overwrite / overwrite=True to replace it)")])
        if foreign:
            raise ConfigError([(flag, f"{path} holds files cbecsim shock did not write ({_listing(foreign, 5)}); "
                                      "it is not replaced: choose another folder")])
    if problem := folder_problem(path):
        raise ConfigError([(flag, problem)])
    return path


def _check_run_arguments(replications: int, seed: int, resolution: str, batch_size, threads) -> None:
    from .api import _check_arguments

    problems = [("replications", f"must be >= 1, got {replications}")] if replications < 1 else []
    _check_arguments(problems, seed, resolution, batch_size, threads)


def _load(scenario: Scenario | str | os.PathLike | Mapping[str, Any],
          overrides: Sequence[str] | Mapping[str, Any] | None) -> Scenario:
    if overrides or not isinstance(scenario, Scenario):
        return load_scenario(scenario, overrides)
    return scenario


def _attach(result: xr.Dataset, plan: ShockPlan, role: str) -> xr.Dataset:
    result.attrs.update(
        shock_role=role, shock_fork_date=str(plan.fork_date),
        shock_change_dates=", ".join(map(str, plan.change_dates)),
        shock_removed=", ".join(dict.fromkeys(c.name for c in plan.removed)),
        shock_without=", ".join(plan.without) or "(default: every change after the horizon start)")
    return result


def shock(
    scenario: Scenario | str | os.PathLike | Mapping[str, Any],
    without: Sequence[str] | str | None = None,
    replications: int | None = None,
    seed: int | None = None,
    at: dt.date | str | None = None,
    resolution: str = "week",
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    compare_overrides: Sequence[str] | Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    format: str = "nc",
    batch_size: int | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    level: float = 0.95,
    report: bool = True,
    flags: tuple[str, str] = ("without", "at"),
) -> ShockResult:
    """Run a scenario and its counterfactual on common random numbers; return the shock's effects.

    Parameters
    ----------
    scenario : Scenario, path to a YAML config, or mapping (the shocked world)
    without : what the counterfactual removes (regime-set names, change names, dates; see
        :func:`plan_shock`); default every change after the horizon start
    replications, seed : default the scenario's
    at : fork date override (see :func:`plan_shock`)
    resolution : output period, ``"week"`` by default (``"day"``, ``"month"``)
    overrides : dotted-path overrides of the scenario, as ``--set``
    compare_overrides : overrides of a second arm (e.g. ``["sellers.0.fulfilment=overseas_warehouse"]``),
        run with its own counterfactual on the same streams; ``interaction`` then holds the
        difference in differences (compare arm's effect - this arm's)
    out : folder to write (shocked, counterfactual, effects.csv, effects.nc, report.html);
        written under a temporary name and renamed when complete
    overwrite : replace an existing ``out`` (only one that holds shock outputs)
    format : ``"nc"`` or ``"zarr"`` for the two worlds' results
    batch_size, threads : as :func:`cbecsim.run`
    progress : callable(done, total) in replication-days over all worlds
    level : confidence level of the intervals
    report : write ``report.html`` into ``out``

    Returns
    -------
    ShockResult

    Raises
    ------
    ConfigError
        Before any simulation, for a bad scenario, a bad ``without``/``at``, bad run
        arguments or an output folder that cannot be written.
    """
    from .analysis.effects import interaction_effects, shock_effects, survival_difference

    base = _load(scenario, overrides)
    plan = plan_shock(base, without, at, flags)
    replications = base.replications if replications is None else int(replications)
    seed = base.seed if seed is None else int(seed)
    _check_run_arguments(replications, seed, resolution, batch_size, threads)
    if format not in ("nc", "zarr"):
        raise ConfigError([("format", f"must be 'nc' or 'zarr', got {format!r}")])
    compare_plan = plan_compare(plan, compare_overrides, without, at, flags) if compare_overrides else None
    path = check_output_dir(out, overwrite) if out is not None else None
    # Replication-days simulated: per arm both worlds, the days before its fork once.
    arm_days = [replications * (2 * base.horizon.days - arm.fork_day)
                for arm in (plan, compare_plan) if arm is not None]
    total = sum(arm_days)

    def offset_progress(offset: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, _total: progress(offset + done, total)

    temporary = temporary_sibling(path) if path is not None else None
    try:
        if temporary is not None:
            temporary.mkdir()
        suffix = f".{format}"

        def run_arm(arm_plan: ShockPlan, folder: Path | None, offset: int) -> tuple[xr.Dataset, xr.Dataset]:
            if folder is not None:
                folder.mkdir(exist_ok=True)
            shocked, counterfactual = simulate_pair(
                arm_plan.shocked, arm_plan.counterfactual, arm_plan.fork_day, replications, seed, resolution,
                batch_size=batch_size, threads=threads, progress=offset_progress(offset),
                out_shocked=None if folder is None else folder / f"shocked{suffix}",
                out_counterfactual=None if folder is None else folder / f"counterfactual{suffix}")
            pair = (_attach(shocked.load(), arm_plan, "shocked"),
                    _attach(counterfactual.load(), arm_plan, "counterfactual"))
            if folder is not None:
                for data, role in zip(pair, ("shocked", "counterfactual")):
                    _annotate(folder / f"{role}{suffix}", data.attrs)
            return pair

        pair = run_arm(plan, temporary, 0)
        effects = shock_effects(*pair, plan.change_dates, level=level, fork_date=plan.fork_date)
        survival = survival_difference(*pair, level=level)
        result = ShockResult(plan, pair[0], pair[1], effects, survival)
        if compare_plan is not None:
            compare_pair = run_arm(compare_plan, None if temporary is None else temporary / "compare",
                                   arm_days[0])
            result.compare = ShockResult(compare_plan, *compare_pair,
                                         shock_effects(*compare_pair, plan.change_dates, level=level,
                                                       fork_date=plan.fork_date),
                                         survival_difference(*compare_pair, level=level))
            result.interaction = interaction_effects(pair, compare_pair, plan.change_dates, level=level,
                                                     fork_date=plan.fork_date)
            assert compare_overrides is not None  # compare_plan is planned only from compare_overrides
            result.compare_overrides = tuple(_override_text(compare_overrides))
        if temporary is not None:
            assert path is not None  # temporary is path's sibling
            _write_tables(result, temporary, report)
            _move_into_place(temporary, path)
            result.out = path
    except BaseException:
        if temporary is not None:
            remove(temporary)
        raise
    return result


def _annotate(path: Path, attrs: Mapping[str, Any]) -> None:
    """Store the ``shock_*`` attributes in a saved result, in place (metadata only)."""
    extra = {k: v for k, v in attrs.items() if k.startswith("shock_")}
    if path.suffix == ".zarr":
        import zarr

        from .results import ZARR_FORMAT

        # results.ZARR_FORMAT is the constant 2, typed int there; zarr asks for Literal[2, 3].
        group = zarr.open_group(str(path), mode="a", zarr_format=ZARR_FORMAT)
        group.attrs.update(extra)
        zarr.consolidate_metadata(str(path), zarr_format=ZARR_FORMAT)
    else:
        import netCDF4

        with netCDF4.Dataset(path, "a") as handle:
            for key, value in extra.items():
                handle.setncattr(key, value)


def _override_text(overrides: Sequence[str] | Mapping[str, Any]) -> list[str]:
    if isinstance(overrides, Mapping):
        return [f"{k}={v}" for k, v in overrides.items()]
    return [str(o) for o in overrides]


def _save_netcdf(dataset: xr.Dataset, path: Path) -> None:
    dataset.to_netcdf(path, engine="netcdf4")


def _write_tables(result: ShockResult, folder: Path, report: bool) -> None:
    result.to_frame().to_csv(folder / "effects.csv", index=False, float_format="%.6g")
    _save_netcdf(result.effects, folder / "effects.nc")
    if result.compare is not None:
        result.compare.to_frame().to_csv(folder / "compare" / "effects.csv", index=False, float_format="%.6g")
        _save_netcdf(result.compare.effects, folder / "compare" / "effects.nc")
        interaction_frame = result.interaction_frame()
        # shock() sets interaction together with compare.
        assert interaction_frame is not None and result.interaction is not None
        interaction_frame.to_csv(folder / "interaction.csv", index=False, float_format="%.6g")
        _save_netcdf(result.interaction, folder / "interaction.nc")
    if report:
        from .analysis.report import build_shock_report

        text = build_shock_report(result)
        (folder / "report.html").write_text(text, encoding="utf-8")


def _move_into_place(temporary: Path, path: Path) -> None:
    """Rename the finished folder to ``path``; an old one is moved aside first, then deleted."""
    if path.exists():
        aside = temporary_sibling(path)
        os.replace(path, aside)
        os.replace(temporary, path)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(temporary, path)


class _CallableModule(types.ModuleType):
    """``cbecsim.shock`` names both this module and its :func:`shock` function.

    The package exports the function under the module's own name, and Python sets the
    package attribute to the module when the module is first imported (``from
    cbecsim.shock import ...``), so the module calls the function when called:
    ``cbecsim.shock(scenario, ...)`` works whichever was imported first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> ShockResult:
        return shock(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
