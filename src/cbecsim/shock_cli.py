"""``cbecsim shock CONFIG``: the scenario against its no-shock counterfactual, in one command.

Exit codes: 0 done; 2 bad input (config, ``--without``/``--at``, arguments, output folder)
-- reported before any work, one line per problem, nothing written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

from .cli_types import console as _console
from .cli_types import positive_int as _positive_int
from .cli_types import print_problems as _print_problems

__all__ = ["register", "run_command"]

EXIT_OK, EXIT_USAGE = 0, 2

#: The outcomes of the terminal tables: (outcome, column heading).
TABLE_OUTCOMES = (("cm2_margin", "CM2 margin"), ("survival", "survival share"), ("visibility", "visibility"))


def _date(text: str) -> str:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None
    return text


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``shock`` command to the main parser's subparsers (sets ``handler``)."""
    from .cli import _add_scenario_arguments, _seed

    parser = subparsers.add_parser(
        "shock", help="what a policy change does: the scenario against its no-shock counterfactual",
        description="Run CONFIG as configured (the shocked world) and its counterfactual -- the same scenario "
                    "without the named duty changes (default: every change after the horizon start, so the "
                    "regime in force at the start stays) -- on the same random streams, and print per strategy "
                    "the effect after each change date on CM2 margin, survival and visibility with 95% CIs. "
                    "With --out DIR also DIR/shocked.nc, counterfactual.nc, effects.csv, effects.nc (every "
                    "outcome and window) and report.html.",
    )
    _add_scenario_arguments(parser)
    parser.add_argument("--without", action="append", default=[], metavar="NAME",
                        help="what the counterfactual removes: a regime set of the config's policy (eu_2026), a "
                             "library entry (eu_2026/parcel-fixed-duty-3-per-heading), one of the config's own "
                             "changes (duty_schedule.0) or a change date (2026-07-01); repeatable")
    parser.add_argument("--at", type=_date, metavar="YYYY-MM-DD",
                        help="fork date: the first day the worlds may differ (default: the first removed change); "
                             "without --without, every change on or after it is removed")
    parser.add_argument("--replications", "-n", type=_positive_int, metavar="N",
                        help="Monte Carlo replications of each world (default: the config's)")
    parser.add_argument("--seed", type=_seed, metavar="S", help="master seed (default: the config's)")
    parser.add_argument("--resolution", choices=["day", "week", "month"], default="week",
                        help="output period (default: week)")
    parser.add_argument("--out", "-o", metavar="DIR", help="folder to write the two worlds, effects and report into")
    parser.add_argument("--format", choices=["nc", "zarr"], default="nc",
                        help="file format of the two worlds' results in DIR (default: nc)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DIR written by cbecsim shock")
    parser.add_argument("--compare-set", dest="compare_overrides", metavar="KEY=VALUE", action="append", default=[],
                        help="a second arm with these overrides on top of --set (e.g. "
                             "sellers.0.fulfilment=overseas_warehouse), run with its own counterfactual on the "
                             "same streams: prints the difference in differences (does the lever change the "
                             "shock's effect?) with CIs; repeatable")
    parser.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads for the numba kernels")
    parser.add_argument("--batch-size", type=_positive_int, metavar="B", help="replications simulated together")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_command)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Handle ``cbecsim shock``; returns the exit code."""
    from .config import ConfigError, load_scenario
    from .results import OutputError
    from .shock import check_output_dir, plan_compare, plan_shock, shock

    flags = ("--without", "--at")
    try:
        scenario = load_scenario(args.config, args.overrides)
        plan = plan_shock(scenario, args.without, args.at, flags)
        if args.compare_overrides:
            try:
                plan_compare(plan, args.compare_overrides, args.without, args.at, flags)
            except ConfigError as exc:
                raise ConfigError([(path.replace("compare arm", "--compare-set", 1), message)
                                   for path, message in exc.problems]) from None
        if args.out is not None:
            check_output_dir(args.out, args.overwrite, "--out")
    except ConfigError as exc:
        _print_problems(exc.problems)
        return EXIT_USAGE

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    worlds = 4 if args.compare_overrides else 2
    replications = args.replications or scenario.replications
    n_days = scenario.horizon.days
    started = time.perf_counter()
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[world]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            disable=args.quiet, transient=False,
        ) as bar:
            task = bar.add_task(f"shock analysis of {scenario.name}", total=None, world="")

            def progress(done: int, total: int) -> None:
                world = min(done // (replications * n_days), worlds - 1)
                names = ["shocked", "counterfactual", "compare shocked", "compare counterfactual"]
                bar.update(task, completed=done, total=total, world=f"world {world + 1}/{worlds}: {names[world]}")

            result = shock(scenario, without=args.without, replications=args.replications, seed=args.seed,
                           at=args.at, resolution=args.resolution, compare_overrides=args.compare_overrides or None,
                           out=args.out, overwrite=args.overwrite, format=args.format, batch_size=args.batch_size,
                           threads=args.threads, progress=progress, flags=flags)
    except (ConfigError, OutputError) as exc:
        _print_problems(getattr(exc, "problems", [("", str(exc))]))
        return EXIT_USAGE
    except ValueError as exc:  # strategy_params rejected by a strategy
        if hasattr(exc, "problems"):
            _print_problems(exc.problems)
            return EXIT_USAGE
        raise
    print_answer(result, time.perf_counter() - started)
    return EXIT_OK


def _table(effects, window: str, title: str, variable: str):
    import numpy as np
    from rich.table import Table

    from .analysis.effects import format_effect

    table = Table(title=title, title_justify="left")
    table.add_column("strategy", no_wrap=True)
    for _, heading in TABLE_OUTCOMES:
        table.add_column(f"{heading} [95% CI]", justify="right")
    table.add_column("variance ratio", justify="right")
    for group in effects["group"].values:
        cells = []
        for outcome, _ in TABLE_OUTCOMES:
            row = effects.sel(group=group, outcome=outcome, window=window)
            low, high = float(row["low"]), float(row["high"])
            text = format_effect(float(row[variable]), low, high, "1")
            cells.append(f"[bold]{text}[/bold]" if np.isfinite(low) and (low > 0 or high < 0) else text)
        ratios = [float(effects["variance_ratio"].sel(group=group, outcome=o, window=window)) for o, _ in
                  TABLE_OUTCOMES]
        table.add_row(str(group), *cells, " / ".join("n/a" if not np.isfinite(r) else f"{r:.2f}" for r in ratios))
    return table


def _verdict(effects, window: str, what: str) -> str:
    from .analysis.effects import distinguishable

    found = distinguishable(effects, window, [o for o, _ in TABLE_OUTCOMES])
    headings = dict(TABLE_OUTCOMES)
    yes = [f"{group} ({', '.join(headings[o] for o in outcomes)})" for group, outcomes in found.items() if outcomes]
    no = [group for group, outcomes in found.items() if not outcomes]
    text = f"{what} distinguishable from zero (95% CI excludes 0): {'; '.join(yes) if yes else 'none'}"
    return text + (f"; not distinguishable: {', '.join(no)}" if no else "")


def print_answer(result, elapsed: float) -> None:
    """The terminal answer: one table per change date, the verdict line, the pre-change check."""
    import numpy as np

    console = _console(200)
    plan, effects = result.plan, result.effects
    replications = result.shocked.sizes["replication"]
    end = plan.shocked.horizon.end
    console.print(plan.describe())
    for date in plan.change_dates:
        window = f"after {date}"
        later = [d for d in plan.change_dates if d > date]
        scope = f" (with the later changes of {', '.join(map(str, later))})" if later else ""
        console.print(_table(effects, window, f"effect from {date} to {end}{scope}: shocked - counterfactual, mean "
                                              f"[95% CI] over {replications} paired replications (pp)", "effect"))
        console.print(_verdict(effects, window, "effects from " + str(date)))
    before = next((w for w in effects["window"].values if w.startswith("before")), None)
    if before is None:
        console.print(f"check: sellers see the change coming from the horizon start ({plan.fork_date}): there is "
                      "no window in which the worlds are identical")
    else:
        largest = float(np.nanmax(np.abs(effects["effect"].sel(window=before).values), initial=0.0))
        console.print(f"check: before {plan.fork_date} the worlds are identical: largest |effect| over every "
                      f"group and outcome = {largest:g}")
    if plan.fork_date < plan.change_dates[0]:
        console.print(_table(effects, f"anticipation {plan.fork_date} to {plan.change_dates[0] - dt.timedelta(days=1)}",
                             f"anticipation, {plan.fork_date} to the first change: sellers act on the announced change "
                             f"before it is in force (shocked - counterfactual, mean [95% CI], pp)", "effect"))
    if result.interaction is not None:
        arm = ", ".join(result.compare_overrides)
        for date in plan.change_dates:
            window = f"after {date}"
            console.print(_table(result.interaction, window,
                                 f"difference in differences from {date}: the shock's effect with {arm} minus as "
                                 f"configured, mean [95% CI] (pp)", "interaction"))
            console.print(_verdict(result.interaction, window, f"interactions from {date}"))
    if result.out is not None:
        files = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in Path(result.out).iterdir()))
        console.print(f"saved {result.out}/ ({files})")
    console.print(f"[dim]{elapsed:.1f} s[/dim]")
