"""Size, memory and signal guards of a run, checked before any simulation work.

* :func:`estimate_run`: seller-market-days, the result's size (in memory, on disk) and
  the run's peak memory, from :func:`cbecsim.api.estimate_output_bytes` (the one size
  function) and :func:`cbecsim.api.estimate_memory_bytes`.
* :func:`check_run`: refuse a result collected in memory (``.nc`` or no output) that
  would take more than ``max_memory_share`` of the available memory -- saying what a
  ``.zarr`` store would take instead, and whether the disk has room for it -- and an
  output whose folder lacks the free space.
* :func:`terminate_as_interrupt`: SIGTERM raises :class:`cbecsim.errors.Terminated` (a
  ``KeyboardInterrupt``) so the same cleanup as Ctrl-C runs: the partial output is
  removed and the writer lock released.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
from pathlib import Path

from .files import OutputError, format_bytes, free_space_problem

__all__ = ["RunEstimate", "estimate_run", "check_run", "terminate_as_interrupt", "ZARR_DISK_FRACTION",
           "NETCDF_DISK_FACTOR"]

#: On-disk size of a Zarr result relative to its uncompressed size, assumed for the
#: free-space check. Measured 0.34 on configs/baseline.yaml (90 days, daily output, 4
#: replications: 3.6 MB on disk for 10.8 MB estimated); 0.5 leaves a margin.
ZARR_DISK_FRACTION = 0.5
#: On-disk size of a NetCDF result relative to the estimate (uncompressed; measured 1.02,
#: the HDF5 headers, coordinates and Fletcher-32 checksums).
NETCDF_DISK_FACTOR = 1.05


@dataclasses.dataclass(frozen=True)
class RunEstimate:
    """What a run will cost, before it starts. Sizes in bytes."""

    replications: int
    days: int
    seller_markets: int
    output_format: str | None  # "netcdf", "zarr" or None (nothing saved)
    result_bytes: int  # the result Dataset, uncompressed
    memory_bytes: int  # peak memory of the run
    disk_bytes: int  # expected on disk (0 without output)
    zarr_disk_bytes: int  # what a .zarr store of the same result would take
    batch: int

    @property
    def seller_market_days(self) -> int:
        return self.replications * self.days * self.seller_markets

    def describe(self) -> str:
        """One line: work, output size, memory."""
        if self.output_format == "zarr":
            disk = (f"output about {format_bytes(self.result_bytes)} uncompressed (about "
                    f"{format_bytes(self.disk_bytes)} on disk)")
        elif self.output_format == "netcdf":
            disk = f"output about {format_bytes(self.disk_bytes)} on disk"
        else:
            disk = f"result about {format_bytes(self.result_bytes)} in memory (not saved)"
        return (f"{self.replications:,} replications x {self.days:,} days x {self.seller_markets:,} seller-markets "
                f"= {self.seller_market_days:,} seller-market-days; {disk}; peak memory about "
                f"{format_bytes(self.memory_bytes)} (batches of {self.batch})")


def estimate_run(compiled, replications: int, batch: int, out: str | os.PathLike | None,
                 kept_in_memory: bool | None = None) -> RunEstimate:
    """Estimate a run of ``compiled`` (a :class:`~cbecsim.compile.CompiledScenario`).

    ``kept_in_memory``: the whole result is held in memory (default: when there is no
    ``out``; also a ``.nc`` result returned loaded)."""
    from .api import estimate_memory_bytes, estimate_output_bytes
    from .results import output_format

    fmt = output_format(out) if out is not None else None
    result = estimate_output_bytes(compiled, replications)
    zarr_disk = int(result * ZARR_DISK_FRACTION)
    disk = {"zarr": zarr_disk, "netcdf": int(result * NETCDF_DISK_FACTOR), None: 0}[fmt]
    served = int(compiled.seller_served.sum())
    in_memory = fmt is None if kept_in_memory is None else kept_in_memory
    memory = estimate_memory_bytes(compiled, replications, min(batch, replications), in_memory=in_memory)
    return RunEstimate(replications=replications, days=compiled.n_days, seller_markets=served, output_format=fmt,
                       result_bytes=result, memory_bytes=memory, disk_bytes=disk, zarr_disk_bytes=zarr_disk,
                       batch=min(batch, replications))


def check_run(estimate: RunEstimate, out: str | os.PathLike | None, max_memory_share: float,
              available_memory: int) -> None:
    """Raise :class:`OutputError` for a run that cannot fit in memory or on disk."""
    if not 0 < max_memory_share <= 1:
        raise OutputError(f"max_memory_share must be in (0, 1], got {max_memory_share}")
    if estimate.output_format != "zarr":
        allowed = max_memory_share * available_memory
        if estimate.memory_bytes > allowed:
            target = Path(out).with_suffix(".zarr") if out is not None else Path("RESULT.zarr")
            streamed = estimate.memory_bytes - estimate.result_bytes
            alternative = (f"a .zarr store (--out {target}) streams batches to disk, so memory stays about "
                           f"{format_bytes(streamed)}, and would take about {format_bytes(estimate.zarr_disk_bytes)} "
                           f"on disk ({format_bytes(estimate.result_bytes)} uncompressed)")
            free = _free_bytes(target)
            if free is not None and estimate.zarr_disk_bytes > free:
                advice = (f"{alternative}: more than the {format_bytes(free)} free in {target.parent}, so run fewer "
                          "replications or a coarser --resolution")
            else:
                advice = f"write it to a .zarr store instead: {alternative}; or use a coarser --resolution"
            raise OutputError(
                f"the result would hold about {format_bytes(estimate.memory_bytes)} in memory, more than "
                f"{max_memory_share:.0%} of the {format_bytes(available_memory)} available (max_memory_share / "
                f"--max-memory-share); {advice}"
            )
    if out is not None:
        problem = free_space_problem(out, estimate.disk_bytes)
        if problem:
            raise OutputError(f"--out {out}: {problem}")


def _free_bytes(path: Path) -> int | None:
    try:
        stats = os.statvfs(path.parent)
    except (OSError, AttributeError):
        return None
    return stats.f_bavail * stats.f_frsize


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM raises :class:`cbecsim.errors.Terminated`.

    Only in the main thread and only when SIGTERM has its default action (a program
    that installed its own handler keeps it).
    """
    from .errors import Terminated

    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
