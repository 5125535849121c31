"""``cbecsim sweep``: run a sweep spec into one resumable Zarr store.

Exit codes: 0 done; 1 some tasks failed twice (the others are stored; the store stays
resumable); 2 bad input, reported before any work with nothing created; 130 interrupted.
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
    """Add the ``sweep`` command to an argparse subparsers object (sets ``handler``)."""
    parser = subparsers.add_parser(
        "sweep", help="run a parameter sweep (grid, Latin hypercube, Sobol') into one Zarr store",
        description="Run every point of the sweep SPEC (a base scenario, factors, a design, replications "
                    "and a seed) and stream the results into one Zarr store with a 'scenario' dim: on "
                    "local worker processes, an existing Dask scheduler, or a SLURM/PBS cluster. Replication "
                    "r sees the same random shocks at every point (common random numbers). A killed sweep "
                    "is finished with --resume, which runs only the tasks not yet done.",
    )
    parser.add_argument("spec", metavar="SPEC", help="sweep spec YAML (see configs/sweeps/)")
    parser.add_argument("--out", "-o", metavar="PATH.zarr", required=True, help="the Zarr store to write")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", "-w", type=_positive_int, metavar="N",
                       help="local worker processes, one numba thread each (default: all cores)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster: tcp://host:port or a scheduler JSON file. "
                            "Workers must see the --out path (shared filesystem).")
    where.add_argument("--cluster", choices=["slurm", "pbs"],
                       help="start a Dask cluster with dask-jobqueue (options from the spec's 'cluster:' "
                            "section, overridden by the flags below)")
    jobs = parser.add_argument_group("--cluster options (override the spec's cluster: section)")
    jobs.add_argument("--queue", help="partition (SLURM) or queue (PBS)")
    jobs.add_argument("--account", help="account to charge")
    jobs.add_argument("--cores", type=_positive_int, help="cores per job = worker processes per job")
    jobs.add_argument("--memory", help="memory per job, e.g. 4GB")
    jobs.add_argument("--walltime", help="walltime per job, HH:MM:SS")
    jobs.add_argument("--jobs", type=_positive_int, help="number of jobs to start")
    jobs.add_argument("--job-extra", action="append", default=[], metavar="DIRECTIVE",
                      help="extra #SBATCH/#PBS directive, e.g. --job-extra=--exclusive (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the design (points, factor values, tasks, work, output size) and exit; "
                             "runs nothing, creates nothing")
    parser.add_argument("--resume", action="store_true", help="finish an interrupted sweep in --out")
    parser.add_argument("--summary-only", action="store_true",
                        help="keep per-(scenario, replication, seller) horizon outcomes instead of full paths "
                             "(see README 'Sweeps')")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_cmd_sweep)
    return parser


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover



def _print_plan(plan, args) -> None:
    from rich.table import Table

    design = plan.design
    spec = plan.loaded.spec
    table = Table(title=f"sweep {spec.name!r}: {design.kind} design, {plan.n_points} points")
    table.add_column("scenario", justify="right")
    for name, path in zip(design.names, design.paths):
        table.add_column(f"{name}\n[dim]{path}[/dim]", justify="right")
    rows = list(range(plan.n_points))
    shown: list[int | None] = [*rows] if len(rows) <= 40 else [*rows[:20], None, *rows[-20:]]
    for p in shown:
        if p is None:
            table.add_row("…", *["…"] * len(design.names))
            continue
        table.add_row(str(p), *[f"{v:.6g}" if isinstance(v, float) else str(v) for v in design.values[p]])
    console = _console()
    console.print(table)
    smd = int(plan.seller_market_days.sum())
    kept = "per-(scenario, replication, seller) outcomes (--summary-only)" if plan.summary_only else "full paths"
    console.print(
        f"base: {plan.loaded.base_path}  replications per point: {plan.loaded.replications}  seed: "
        f"{plan.loaded.seed}  resolution: {spec.resolution}\n"
        f"tasks: {plan.n_tasks} ({plan.points_per_task} point(s) x {plan.replications_per_task} replication(s) "
        f"each)  work: {smd:,} seller-market-days ({smd / plan.n_points:,.0f} per point)\n"
        f"output ({kept}): about {_size(plan.output_bytes)} uncompressed "
        f"(full paths {_size(plan.full_bytes)}, --summary-only {_size(plan.summary_bytes)})\n"
        f"executor: {_where(args)}\n[dim]dry run: nothing was run or created[/dim]"
    )


def _where(args) -> str:
    if args.scheduler:
        return f"Dask scheduler {args.scheduler}"
    if args.cluster:
        return f"{args.cluster.upper()} cluster via dask-jobqueue"
    import os

    return f"{args.workers or os.cpu_count()} local worker processes"


def _cmd_sweep(args) -> int:
    from pathlib import Path

    from ..config import ConfigError
    from ..results import OutputError
    from .runner import SweepTaskError, plan_sweep, run_sweep
    from .spec import load_sweep_spec

    out = Path(args.out)
    try:
        loaded = load_sweep_spec(args.spec)
        if args.dry_run:
            _print_plan(plan_sweep(loaded, args.summary_only), args)
            return EXIT_OK
    except ConfigError as exc:
        _print_problems(exc.problems)
        return EXIT_USAGE
    except OutputError as exc:
        _print_problems([("", str(exc))])
        return EXIT_USAGE

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cluster_options = {"queue": args.queue, "account": args.account, "cores": args.cores, "memory": args.memory,
                       "walltime": args.walltime, "jobs": args.jobs, "job_extra": args.job_extra}
    console = _console()
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=console, disable=args.quiet, transient=False,
    ) as bar:
        state: dict = {}

        def progress(event: dict) -> None:
            kind = event["event"]
            if kind == "start":
                state["skipped"] = event["skipped"]
                state["task"] = bar.add_task(f"sweep {loaded.spec.name}", total=event["tasks"],
                                             completed=event["skipped"], rate="")
                state["t0"] = time.perf_counter()
                note = f", {event['skipped']} already done (resumed)" if event["skipped"] else ""
                bar.console.print(f"running {event['todo']} task(s) on {event['executor']}{note}")
            elif kind == "task":
                elapsed = max(time.perf_counter() - state["t0"], 1e-9)
                rate = event["seller_market_days"] / elapsed
                bar.update(state["task"], completed=event["done"], rate=f"{rate / 1e6:.2f} M seller-market-days/s")
            elif kind == "retry":
                bar.console.print(f"[yellow]task {event['task']} failed, retrying once: {event['error']}[/yellow]")
            elif kind == "failure":
                shown = ", ".join(f"{k}={v!r}" for k, v in event["values"].items())
                bar.console.print(f"[red]task {event['task']} failed twice at scenario {event['scenario']} "
                                  f"({shown}): {event['error']}[/red]")

        try:
            outcome = run_sweep(
                loaded, out, workers=args.workers, scheduler=args.scheduler, cluster=args.cluster,
                cluster_options=cluster_options, resume=args.resume, summary_only=args.summary_only,
                overwrite=args.overwrite, progress=progress,
            )
        except ConfigError as exc:
            _print_problems(exc.problems)
            return EXIT_USAGE
        except OutputError as exc:
            _print_problems([("", str(exc))])
            return EXIT_USAGE
        except RuntimeError as exc:
            if isinstance(exc, SweepTaskError):
                failed = exc.outcome
                print(f"error: {len(failed.failures)} of {failed.tasks} tasks failed twice (listed above; also in "
                      f"{out}/sweep_failures.jsonl); {failed.ran + failed.skipped} finished tasks are stored. "
                      f"Fix the cause and run again with --resume.", file=sys.stderr)
                return EXIT_FAILED
            _print_problems([("", str(exc))])
            return EXIT_FAILED
        except KeyboardInterrupt:
            print(f"interrupted; finished tasks are kept in {out}: finish with --resume", file=sys.stderr)
            return EXIT_INTERRUPTED
    elapsed = time.perf_counter() - started
    if outcome.ran == 0 and outcome.skipped == outcome.tasks and outcome.seller_market_days == 0 \
            and outcome.executor.startswith("none"):
        print(f"{out} is already complete; nothing to do")
        return EXIT_OK
    if not args.quiet:
        rate = outcome.seller_market_days / max(elapsed, 1e-9)
        print(f"saved {out}: {outcome.tasks} tasks ({outcome.ran} run, {outcome.skipped} resumed), "
              f"{outcome.seller_market_days:,} seller-market-days in {elapsed:.1f} s ({rate / 1e6:.2f} M/s)")
    return EXIT_OK
