"""``cbecsim optimize SPEC --out DIR``: robust strategy optimisation across policy futures.

Exit codes: 0 done; 1 the search could not go on (evaluations keep failing; the study
stays resumable); 2 bad input, reported before any work with nothing written; 130
interrupted (finish with --resume).
"""

from __future__ import annotations

import argparse
import sys
import time

from ..cli_types import console as _console
from ..cli_types import positive_int as _positive_int
from ..cli_types import print_problems as _print_problems

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``optimize`` command to an argparse subparsers object (sets ``handler``)."""
    parser = subparsers.add_parser(
        "optimize", help="search a seller population's levers for a robust strategy across policy futures",
        description="Search the levers of the focal seller population in SPEC (config paths with ranges or "
                    "choices) with Optuna (TPE for one objective, NSGA-II for several), evaluating every "
                    "candidate in every policy future on the same replications and random streams (common "
                    "random numbers), and score it robustly across futures (expected value, worst case, a "
                    "percentile or minimax regret). Writes DIR/trials.csv, pareto.csv (several objectives), "
                    "best.yaml (runs with `cbecsim run`), compare.csv and report.html (the recommendation "
                    "against each built-in strategy per future, on fresh replications). The study lives in "
                    "DIR/study.db: --resume continues a killed study, and several processes may share it.",
    )
    parser.add_argument("spec", metavar="SPEC", help="optimisation spec YAML (see configs/optimize/)")
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="folder for the study and its outputs")
    parser.add_argument("--trials", type=_positive_int, metavar="N",
                        help="trials in the study when done (default: the spec's 'trials'); with --resume the "
                             "total, including those already done")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", "-w", type=_positive_int, metavar="N",
                       help="local worker processes evaluating candidates, one numba thread each (default 1: "
                            "this process)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="evaluate on an existing Dask cluster: tcp://host:port or a scheduler JSON file")
    where.add_argument("--cluster", choices=["slurm", "pbs"],
                       help="start a Dask cluster with dask-jobqueue (options from the spec's 'cluster:' section, "
                            "overridden by the flags below)")
    jobs = parser.add_argument_group("--cluster options (override the spec's cluster: section)")
    jobs.add_argument("--queue", help="partition (SLURM) or queue (PBS)")
    jobs.add_argument("--account", help="account to charge")
    jobs.add_argument("--cores", type=_positive_int, help="cores per job = worker processes per job")
    jobs.add_argument("--memory", help="memory per job, e.g. 4GB")
    jobs.add_argument("--walltime", help="walltime per job, HH:MM:SS")
    jobs.add_argument("--jobs", type=_positive_int, help="number of jobs to start")
    jobs.add_argument("--job-extra", action="append", default=[], metavar="DIRECTIVE",
                      help="extra #SBATCH/#PBS directive (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the study in --out (after a kill, or to add a worker process to it)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the spec and print the search (levers, futures, replications, work); "
                             "simulates nothing, writes nothing")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_cmd_optimize)
    return parser


def _print_plan(loaded, args) -> None:
    from rich.table import Table

    spec = loaded.spec
    console = _console()
    table = Table(title=f"optimize {spec.name!r}: levers of population {loaded.focal_label!r} "
                        f"(sellers.{loaded.focal_index})")
    for column in ("lever", "config path", "type", "range / choices"):
        table.add_column(column)
    for lever in spec.levers:
        span = (f"{lever.min:g} .. {lever.max:g}{' (log)' if lever.log else ''}" if lever.choices is None
                else ", ".join(map(str, lever.choices)))
        table.add_row(lever.label, loaded.resolve(lever.path), lever.type, span)
    console.print(table)
    futures = Table(title="futures")
    for column in ("future", "weight", "overrides", "description"):
        futures.add_column(column)
    for name, weight in zip(loaded.future_names, loaded.weights):
        future = spec.futures[name]
        futures.add_row(name, f"{weight:.3g}", str(len(future.set)), future.description)
    console.print(futures)
    served = sum(p.count * len(p.markets) for p in loaded.base.sellers)
    days = loaded.base.horizon.days
    rungs = loaded.rung_replications
    trials = args.trials or spec.trials
    per_eval = served * days * rungs[0] * len(loaded.future_names)
    console.print(
        f"objectives: {'; '.join(f'{o.direction} {o.outcome}' for o in spec.objectives)}  robustness: "
        f"{spec.robustness.criterion}\nconstraints: {'; '.join(c.describe() for c in spec.constraints) or 'none'}\n"
        f"trials: {trials}  replications per evaluation: {rungs[0]}"
        + (f" (racing up to {rungs[-1]})" if len(rungs) > 1 else "")
        + f"  seed: {loaded.seed}  resolution: {spec.resolution}\n"
        f"work: {per_eval:,} seller-market-days per candidate (all futures, first rung), about "
        f"{per_eval * trials:,} for the search without racing\n"
        f"comparison: recommendation vs {', '.join(spec.compare.strategies)} on fresh replications "
        f"{rungs[-1]} .. {rungs[-1] + spec.compare.replications - 1}\n"
        "[dim]dry run: nothing was simulated or written[/dim]")


def _cmd_optimize(args) -> int:
    from pathlib import Path

    from ..config import ConfigError
    from ..results import OutputError
    from .api import check_out
    from .spec import load_optimize_spec

    out = Path(args.out)
    try:
        loaded = load_optimize_spec(args.spec)
        if args.dry_run:
            _print_plan(loaded, args)
            return EXIT_OK
        check_out(out, args.resume)
    except (ConfigError, OutputError) as exc:
        _print_problems(getattr(exc, "problems", [("", str(exc))]))
        return EXIT_USAGE

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .api import optimize
    from .study import OptimizeError

    cluster_options = {"queue": args.queue, "account": args.account, "cores": args.cores, "memory": args.memory,
                       "walltime": args.walltime, "jobs": args.jobs, "job_extra": args.job_extra}
    console = _console()
    started = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("trials"),
                  TextColumn("{task.fields[best]}"), TimeElapsedColumn(), console=console, disable=args.quiet) as bar:
        state: dict = {}

        def best_text(value) -> str:
            return "" if value is None else f"best so far {value:.4g}"

        def progress(event: dict) -> None:
            kind = event["event"]
            if kind == "start":
                state["task"] = bar.add_task(f"optimize {loaded.spec.name}", total=event["trials"],
                                             completed=event["done"], best=best_text(event["best"]))
                note = f", {event['done']} already done" if event["done"] else ""
                note += f", {event['recovered']} interrupted trial(s) queued again" if event["recovered"] else ""
                bar.console.print(f"evaluating on {event['executor']}{note}")
            elif kind == "trial":
                bar.update(state["task"], completed=event["done"], best=best_text(event["best"]))
            elif kind == "failure":
                bar.console.print(f"[yellow]trial {event['trial']} failed: {event['error']}[/yellow]")
            elif kind == "compare":
                bar.console.print(f"comparing the recommendation with {event['arms'] - 1} built-in strategies on "
                                  f"{event['replications']} fresh replications ...")

        try:
            result = optimize(loaded, out, trials=args.trials, workers=args.workers, scheduler=args.scheduler,
                              cluster=args.cluster, cluster_options=cluster_options, resume=args.resume,
                              progress=progress)
        except (ConfigError, OutputError) as exc:
            _print_problems(getattr(exc, "problems", [("", str(exc))]))
            return EXIT_USAGE
        except (OptimizeError, RuntimeError) as exc:
            _print_problems([("", f"{exc} (the study in {out} stays resumable with --resume)")])
            return EXIT_FAILED
        except KeyboardInterrupt:
            print(f"interrupted; finished trials are kept in {out}: continue with --resume", file=sys.stderr)
            return EXIT_INTERRUPTED
    if not args.quiet:
        outcome = result.outcome
        print(f"saved {out}: {outcome.trials} trials ({outcome.completed} complete, {outcome.failed} failed; "
              f"{outcome.ran} run now), {outcome.seller_market_days:,} seller-market-days in "
              f"{time.perf_counter() - started:.1f} s")
        if result.best is not None:
            levers = ", ".join(f"{lever.label}={result.best[lever.label]}" for lever in loaded.spec.levers)
            print(f"recommended: trial {int(result.best['trial'])} ({levers}), robust score "
                  f"{result.best['robust_score']:.4g}; see {out / 'report.html'}")
        else:
            print(f"no recommendation: {result.why}")
    return EXIT_OK
