"""The ``cbecsim`` command line: a thin layer over :mod:`cbecsim.api`.

Exit codes: 0 success; 2 bad input (config, arguments, output path, a result that is
damaged, an output another process is writing) -- reported before any work, one line
per problem, no traceback; 3 a user strategy failed mid-run (the partial output is
removed); 130 interrupted (Ctrl-C or SIGTERM; the partial output is removed).
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from .cli_types import console as _console
from .cli_types import positive_int as _positive_int
from .cli_types import print_problems as _print_problems

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_USAGE, EXIT_USER_CODE, EXIT_INTERRUPTED = 0, 2, 3, 130

#: Default of ``run --confirm-above``: a larger output needs --yes.
CONFIRM_ABOVE_DEFAULT = "10GiB"
_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "KIB": 2**10, "M": 1e6, "MB": 1e6, "MIB": 2**20, "G": 1e9, "GB": 1e9,
          "GIB": 2**30, "T": 1e12, "TB": 1e12, "TIB": 2**40}


def _size(text: str) -> int:
    """An argparse type: a size like 500MB, 10GiB or 2e9 (bytes)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a size like 500MB or 10GiB, got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be in 0 .. 2**63-1, got {value}")
    return value


def _add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="scenario YAML file (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
        help="override any config field by its dotted path before validation, e.g. "
             "--set replications=50 --set sellers.0.count=10 "
             "--set markets.US/charging.shoppers_per_day=8000 (list items by index or name; "
             "values are parsed as YAML). Repeatable.",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="cbecsim",
        description="Monte Carlo policy-shock simulation of cross-border e-commerce sellers: "
                    "run a scenario config and get distributions of margin, survival and visibility.",
    )
    parser.add_argument("--version", action="version", version=f"cbecsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run", help="simulate a scenario and save its outcome distributions",
        description="Simulate CONFIG for N replications, save the labelled results (NetCDF .nc or "
                    "Zarr .zarr by the --out suffix) and print a per-strategy summary: median and "
                    "5-95% band of final cash, CM2 margin, survival share and mean visibility.",
    )
    _add_scenario_arguments(run)
    run.add_argument("--replications", "-n", type=_positive_int, metavar="N",
                     help="Monte Carlo replications (default: the config's 'replications')")
    run.add_argument("--seed", type=_seed, metavar="S",
                     help="master seed (default: the config's 'seed'); the same seed gives "
                          "bit-identical results for any --batch-size and --threads")
    run.add_argument("--out", "-o", metavar="PATH",
                     help="where to save results: PATH.nc (NetCDF, written at the end) or PATH.zarr "
                          "(Zarr, each batch streamed to disk so memory stays flat). Without --out "
                          "nothing is saved, only the summary is printed.")
    run.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    run.add_argument("--threads", type=_positive_int, metavar="N",
                     help="CPU threads for the numba kernels (default: all cores)")
    run.add_argument("--batch-size", type=_positive_int, metavar="B",
                     help="replications simulated together; memory is bounded by one batch "
                          "(default: up to 512, fewer for large states or streamed outputs)")
    run.add_argument("--resolution", choices=["day", "week", "month"], default="day",
                     help="output period: flows summed, levels at period end, shares averaged (default: day)")
    run.add_argument("--quiet", "-q", action="store_true",
                     help="no estimate line, progress bar or summary table (a run above --confirm-above is "
                          "then refused unless --yes)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the work (seller-market-days), the output's size and the peak memory, run the "
                          "checks on the output path, and exit; runs nothing, creates nothing")
    run.add_argument("--yes", "-y", action="store_true",
                     help="run even if the output is larger than --confirm-above (without asking)")
    run.add_argument("--confirm-above", type=_size, default=_size(CONFIRM_ABOVE_DEFAULT), metavar="SIZE",
                     help=f"ask before writing an output larger than SIZE, uncompressed, e.g. 500MB, 2GiB "
                          f"(default: {CONFIRM_ABOVE_DEFAULT})")
    run.add_argument("--max-memory-share", type=_share, default=0.6, metavar="F",
                     help="refuse a result held in memory (.nc or no --out) that would take more than this "
                          "share of the available memory (default: 0.6); .zarr outputs are streamed")

    validate = commands.add_parser(
        "validate", help="check a scenario config without running it",
        description="Validate CONFIG (with any --set overrides): print the problems, one per line "
                    "with the field's path, and exit 2; or print a short description and exit 0.",
    )
    _add_scenario_arguments(validate)
    validate.add_argument("--verbose", "-v", action="store_true",
                          help="also print the policy-library notes this config already handles, and why")

    experiment = commands.add_parser(
        "experiment", help="run an experiment folder (arms, metrics with CIs, the paper's verdict)",
        description="Run the experiment in DIR (experiment.yaml: scenario arms under common random "
                    "numbers and metrics, each with the seed paper's expectation) and print each "
                    "metric's estimate with its 95% confidence interval and the verdict (agrees, "
                    "disagrees, inconclusive). --write saves DIR/summary.csv and the README table; "
                    "--check reruns at the reduced check_replications and compares with the "
                    "committed summary within Monte Carlo tolerance (exit 1 if any metric is out).",
    )
    experiment.add_argument("folder", metavar="DIR", help="experiment folder, e.g. experiments/shenzhen_us_2025")
    experiment.add_argument("--replications", "-n", type=_positive_int, metavar="N",
                            help="replications per arm (default: the spec's; with --check its check_replications)")
    mode = experiment.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="save summary.csv and refresh the README's results table")
    mode.add_argument("--check", action="store_true",
                      help="compare a reduced run with the committed summary.csv (what CI runs)")
    validate.add_argument(
        "--calibration", action="store_true",
        help="also simulate CONFIG (weekly output) and compare it with the sourced targets of "
             "calibration_targets.yaml: the fitted set (site conversion 2.5-3%%, CPC USD 0.88-1.30, ad click "
             "conversion 7-13%%, ACoS 20-35%%, sellers' TACoS 10-20%% traffic-first and 5-15%% brand, brand gross "
             "margin 38-48%%) and, reported apart, the held-out checks the fit did not use (own- and cross-price "
             "elasticity and ad incrementality from paired perturbation runs of one focal seller per strategy, "
             "return rates, seller exit rate); "
             "exit 1 if a fitted target lies outside its band (use configs/baseline.yaml, the calibrated "
             "reference)",
    )
    validate.add_argument("--replications", "-n", type=_positive_int, metavar="N", default=20,
                          help="replications for --calibration (default: 20)")

    from .policies import cli as policies_cli

    policies_cli.register(commands)
    from .fees import cli as fees_cli  # the fee library (issue 13): cbecsim fees list|show|quote

    fees_cli.register(commands)
    from .sweep import cli as sweep_cli

    sweep_cli.register(commands)
    from .analysis import report as report_cli

    report_cli.register(commands)
    from . import shock_cli

    shock_cli.register(commands)
    from .optimize import cli as optimize_cli

    optimize_cli.register(commands)
    return parser


def _cmd_validate(args) -> int:
    from .config import ConfigError, load_scenario

    try:
        scenario = load_scenario(args.config, args.overrides)
        from .api import make_strategies

        make_strategies(scenario)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return EXIT_USAGE
    except ValueError as exc:  # strategy_params rejected by a strategy
        _print_problems(getattr(exc, "problems", [("", str(exc))]))
        return EXIT_USAGE
    sellers = sum(p.count for p in scenario.sellers)
    own = len(scenario.duty_schedule)
    from_policy = len(scenario.effective_duty_schedule) - own
    regimes = f"{own} duty changes"
    if scenario.policy:
        regimes = f"regime sets {', '.join(scenario.policy)} ({from_policy} changes) + {own} own duty changes"
    print(
        f"ok: {scenario.name}: {scenario.horizon.days} days ({scenario.horizon.start} to "
        f"{scenario.horizon.end}), {len(scenario.markets)} markets, {sellers} sellers in "
        f"{len(scenario.sellers)} populations, {regimes}, "
        f"{scenario.replications} replications, seed {scenario.seed}"
    )
    from .notes import sort_policy_notes

    shown, handled = sort_policy_notes(scenario)
    for note in shown:
        print(f"note: {note}")
    if args.verbose:
        for note, reason in handled:
            print(f"handled: {note} -- {reason}")
    elif handled:
        print(f"({len(handled)} more note{'s' if len(handled) != 1 else ''} this config already handles: "
              "--verbose shows them)")
    if args.calibration:
        return _calibration(scenario, args.replications)
    return EXIT_OK


def _percent_1(value: float) -> str:
    return f"{100.0 * value:.1f}%"


def _decimal_2(value: float) -> str:
    return f"{value:.2f}"


def _calibration(scenario, replications: int) -> int:
    from rich.markup import escape
    from rich.table import Table

    from .calibration import check_calibration

    console = _console()
    with console.status(f"simulating {replications} replications of {scenario.name} ..."):
        table = check_calibration(scenario, replications=replications)
    for role, title in (("fitted", "fitted targets (the baseline was tuned to these)"),
                        ("held_out", "held-out checks (not used by the fit)")):
        out = Table(title=f"calibration of {scenario.name}, {title}: {replications} replications, "
                          "estimate [95% CI] against the band")
        for column in ("target", "measured as", "estimate [95% CI]", "band", "sources' figure", ""):
            out.add_column(column)
        for name, row in table[table["role"] == role].iterrows():
            fmt = _percent_1 if row["percent"] else _decimal_2
            if row["passed"] is None:
                out.add_row(name, escape(row["label"]), escape(f"not measured: {row['note']}"),
                            f"{fmt(row['low'])} .. {fmt(row['high'])}", row["observed"], "[dim]n/a[/dim]")
                continue
            out.add_row(
                name, escape(row["label"]),
                escape(f"{fmt(row['estimate'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"),
                f"{fmt(row['low'])} .. {fmt(row['high'])}", row["observed"],
                "[green]ok[/green]" if row["passed"] else "[red]OUT[/red]",
            )
        console.print(out)
    fitted = table[table["role"] == "fitted"]
    held = table[(table["role"] == "held_out") & table["passed"].notna()]
    held_failed = [name for name, row in held.iterrows() if not row["passed"]]
    console.print(f"held-out: {len(held) - len(held_failed)} of {len(held)} measured checks within their bands"
                  + (f"; outside: {', '.join(held_failed)}" if held_failed else ""))
    failed = [name for name, row in fitted.iterrows() if not row["passed"]]
    if failed:
        console.print(f"calibration: {len(failed)} of {len(fitted)} fitted targets outside their band: "
                      f"{', '.join(failed)}")
        return 1
    console.print(f"calibration: all {len(fitted)} fitted targets within their bands")
    return EXIT_OK


def _print_summary(result, elapsed: float) -> None:
    from rich.table import Table

    from .summary import exit_reason_table, strategy_summary

    frame = strategy_summary(result)
    table = Table(title=f"{result.attrs.get('scenario', '')}: {result.sizes['replication']} replications, "
                        f"median [5%, 95%]")
    table.add_column("strategy", no_wrap=True)
    for column in ("sellers", "final cash (USD)", "CM2 margin", "median seller CM2 margin", "survival share",
                   "mean visibility"):
        table.add_column(column, justify="right")

    def band(row, name, fmt):
        return f"{fmt(row[name + '_median'])} [{fmt(row[name + '_p05'])}, {fmt(row[name + '_p95'])}]"

    money = lambda v: "n/a" if v != v else f"{v:,.0f}"  # noqa: E731
    percent = lambda v: "n/a" if v != v else f"{100 * v:.1f}%"  # noqa: E731
    for strategy, row in frame.iterrows():
        table.add_row(
            str(strategy), str(int(row["sellers"])), band(row, "final_cash", money),
            band(row, "cm2_margin", percent), percent(row["median_seller_cm2_margin"]), band(row, "survival", percent),
            band(row, "mean_visibility", percent),
        )
    # Not a terminal (a pipe, a log file): print the table at full width, not 80 columns.
    console = _console()
    console.print(table)
    console.print("[dim]CM2 margin: sum of the strategy's CM2 over the sum of its revenue in each replication "
                  "(median and 5-95% band over replications); median seller CM2 margin: the median of each "
                  "seller's own margin; cash and visibility bands are over sellers x replications.[/dim]")
    reasons = exit_reason_table(result)
    if not reasons.empty:
        exits = Table(title="how sellers ended the horizon: share of sellers x replications")
        exits.add_column("strategy", no_wrap=True)
        for column in reasons.columns:
            exits.add_column("exit: " + column if column != "survived" else column, justify="right")
        for strategy, row in reasons.iterrows():
            exits.add_row(str(strategy), *(percent(value) for value in row))
        console.print(exits)
    console.print(f"[dim]{elapsed:.1f} s[/dim]")


def _plan_run(args, scenario):
    """The run's estimate and the problem that would stop it (or None), before any work."""
    from .api import _auto_batch_size, _available_memory
    from .compile import compile_scenario
    from .guards import check_run, estimate_run
    from .results import OutputError, check_output_path

    replications = args.replications or scenario.replications
    compiled = compile_scenario(scenario, args.resolution)
    batch = args.batch_size or _auto_batch_size(compiled, replications)
    estimate = estimate_run(compiled, replications, batch, args.out)
    try:
        if args.out is not None:
            check_output_path(args.out, args.overwrite)
        check_run(estimate, args.out, args.max_memory_share, _available_memory())
    except OutputError as exc:
        return estimate, str(exc)
    return estimate, None


def _confirmed(args, estimate) -> bool:
    """Whether a run larger than --confirm-above may go ahead (--yes, or the user said yes)."""
    from .files import format_bytes

    if estimate.result_bytes <= args.confirm_above or args.yes:
        return True
    what = (f"the output would take about {format_bytes(estimate.result_bytes)} uncompressed, more than "
            f"--confirm-above {format_bytes(args.confirm_above)}")
    if args.quiet or not sys.stdin.isatty():
        _print_problems([("", f"{what}; pass --yes to run it anyway (or fewer replications, a coarser "
                              "--resolution)")])
        return False
    answer = input(f"{what}. Run it? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _cmd_run(args) -> int:
    from .api import run
    from .config import ConfigError, load_scenario
    from .errors import UserCodeError
    from .results import OutputError

    try:
        scenario = load_scenario(args.config, args.overrides)
        estimate, problem = _plan_run(args, scenario)
    except (ConfigError, OutputError) as exc:
        _print_problems(getattr(exc, "problems", [("", str(exc))]))
        return EXIT_USAGE
    if args.dry_run:
        target = args.out or "(no --out: nothing saved)"
        print(f"dry run of {scenario.name} -> {target}\n{estimate.describe()}")
        if problem:
            _print_problems([("", problem)])
            return EXIT_USAGE
        print("checks passed (output path writable, free space, memory); nothing was run or created")
        return EXIT_OK
    if problem:
        _print_problems([("", problem)])
        return EXIT_USAGE
    if not _confirmed(args, estimate):
        return EXIT_USAGE

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    show = not args.quiet
    if show:
        print(f"run: {estimate.describe()}")
    started = time.perf_counter()
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[reps]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            disable=not show, transient=False,
        ) as bar:
            replications = args.replications or scenario.replications
            task = bar.add_task(f"simulating {scenario.name}", total=None, reps="")
            n_days = scenario.horizon.days

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total,
                           reps=f"{done // n_days}/{replications} replications")

            result = run(
                scenario, replications=args.replications, seed=args.seed, batch_size=args.batch_size,
                threads=args.threads, resolution=args.resolution, out=args.out,
                overwrite=args.overwrite, progress=progress, max_memory_share=args.max_memory_share,
                load=False,  # the summary reads a few variables; the file need not be in memory
            )
    except (ConfigError, OutputError) as exc:
        _print_problems(getattr(exc, "problems", [("", str(exc))]))
        return EXIT_USAGE
    except UserCodeError as exc:
        removed = "; the partial output was removed" if args.out else ""
        _print_problems([("", f"{exc}{removed}")])
        return EXIT_USER_CODE
    except ValueError as exc:  # strategy_params rejected by a strategy
        if hasattr(exc, "problems"):
            _print_problems(exc.problems)
            return EXIT_USAGE
        raise
    elapsed = time.perf_counter() - started
    try:
        if show:
            _print_summary(result, elapsed)
            if args.out:
                print(f"saved {Path(args.out)}")
    finally:
        result.close()
    return EXIT_OK


def _cmd_experiment(args) -> int:
    from rich.table import Table

    from .config import ConfigError
    from .experiment import compare_summaries, load_arms, load_experiment, read_summary, run_experiment, write_summary

    try:
        spec, folder = load_experiment(args.folder)
        load_arms(spec, folder)
        committed = read_summary(folder) if args.check else None
    except ConfigError as exc:
        _print_problems(exc.problems)
        return EXIT_USAGE
    replications = args.replications or (spec.check_replications if args.check else spec.replications)
    console = _console(200)
    started = time.perf_counter()
    with console.status("") as status:
        summary = run_experiment(
            folder, replications,
            progress=lambda arm: status.update(f"{spec.name}: simulating arm {arm!r}, {replications} replications"),
        )
    table = Table(title=f"{spec.name}: {replications} replications per arm, estimate [95% CI]")
    for column in ("metric", "what", "estimate [95% CI]", "paper", "verdict"):
        table.add_column(column)
    from .experiment import estimate_text

    for name, row in summary.iterrows():
        table.add_row(name, row["description"], estimate_text(row), row["expected"], row["verdict"])
    console.print(spec.question)
    console.print(table)
    console.print(f"[dim]{time.perf_counter() - started:.1f} s[/dim]")
    if args.write:
        write_summary(folder, summary)
        console.print(f"saved {folder / 'summary.csv'}")
    if committed is not None:
        comparison = compare_summaries(committed, summary)
        failed = comparison[~comparison["passed"]]
        for name, row in failed.iterrows():
            console.print(f"[red]out of tolerance[/red] {name}: committed {row['committed']:.4g}, "
                          f"now {row['fresh']:.4g} (|difference| {abs(row['difference']):.3g} > "
                          f"{row['tolerance']:.3g})")
        if len(failed):
            return 1
        console.print(f"check: all {len(comparison)} metrics within Monte Carlo tolerance of the committed summary")
    return EXIT_OK


class _NoteHandler(logging.Handler):
    """cbecsim's warnings (a stale partial removed, a lock taken over, ...) as ``note:`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"note: {record.getMessage()}", file=sys.stderr)


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    from .errors import Terminated

    raise Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"run": _cmd_run, "validate": _cmd_validate, "experiment": _cmd_experiment}
    logger = logging.getLogger("cbecsim")
    handler = _NoteHandler(logging.WARNING)
    logger.addHandler(handler)
    logger.propagate = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)  # SIGTERM cleans up like Ctrl-C
    try:
        if args.command in handlers:
            return handlers[args.command](args)
        return args.handler(args)
    except KeyboardInterrupt as exc:
        why = f" ({exc})" if str(exc) else ""
        print(
            f"interrupted{why}; the partial output was removed, nothing was written under the output name",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        logger.removeHandler(handler)
        logger.propagate = True


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
