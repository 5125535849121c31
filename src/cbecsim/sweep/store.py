"""The sweep's Zarr store: template, region writes, manifest, completion, opening.

One store (Zarr format 2, like :mod:`cbecsim.results`) holds the whole sweep. Dims
``scenario``, ``replication``, ``time``, ``seller``, ``market`` and the data variables,
units and attributes of a single run (:data:`cbecsim.results.VARIABLES`, ``exit_day``,
``initial_cash``), each with ``scenario`` as its first dim; one coordinate per factor
along ``scenario``. A seller or market coordinate that a factor changes (e.g.
``strategy`` when a population's strategy is a factor) becomes ``(scenario, seller)``;
``ds.isel(scenario=i)`` then looks exactly like a single run.

Life of a store:

1. :func:`create_store` writes the template (metadata and coordinates, no data) under a
   temporary name and renames it, so the final name always holds a well-formed store,
   with attribute ``complete: false`` and no consolidated metadata.
2. Each task writes its rectangle ``(points, replications)`` with
   ``to_zarr(region=...)``; chunks are exactly one task's rectangle, so no two tasks
   touch the same chunk. After a task's write has returned, the parent appends one JSON
   line to ``sweep_manifest.jsonl`` (flushed and fsync'ed); ``--resume`` runs only the
   tasks not in it. Workers also append ``start``/``done`` lines to
   ``sweep_executions.jsonl`` (a record of every execution, resumed or not).
3. :func:`finalize_store` sets ``complete: true`` and consolidates the metadata.

An incomplete store has no consolidated metadata, so :func:`cbecsim.open_results`
refuses it; :func:`open_sweep` refuses it with a clear message (or, with
``allow_incomplete=True``, opens it with a warning; unfinished regions read as NaN / 0).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..compile import compile_scenario
from ..config import Scenario
from ..files import remove, replace, temporary_sibling
from ..results import EXIT_DAY_ENCODING, ZARR_FORMAT, allocate_outputs, outputs_dataset

__all__ = [
    "MANIFEST",
    "EXECUTIONS",
    "IncompleteSweepError",
    "open_sweep",
    "read_manifest",
    "summarize_paths",
    "SUMMARY_VARIABLES",
]

MANIFEST = "sweep_manifest.jsonl"
EXECUTIONS = "sweep_executions.jsonl"
FAILURES = "sweep_failures.jsonl"

#: ``--summary-only`` variables: name -> (dims without scenario, units, description).
SUMMARY_VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "revenue_total": (("replication", "seller"), "USD", "revenue summed over the horizon and all markets"),
    "cm2_total": (("replication", "seller"), "USD", "contribution margin after ads, summed over the horizon and markets"),
    "ad_spend_total": (("replication", "seller"), "USD", "ad spend summed over the horizon and markets"),
    "duty_paid_total": (("replication", "seller"), "USD", "duty paid summed over the horizon and markets"),
    "units_sold_total": (("replication", "seller"), "units", "units sold over the horizon and markets"),
    "lost_sales_total": (("replication", "seller"), "units", "units lost to stock-outs over the horizon and markets"),
    "cm2_margin": (("replication", "seller"), "1", "cm2_total / revenue_total; NaN without revenue"),
    "final_cash": (("replication", "seller"), "USD", "cash at the end of the last period"),
    "survived": (("replication", "seller"), "1", "seller still trading at the end of the horizon"),
    "mean_visibility": (("replication", "seller"), "1",
                        "mean share of attention over the periods and the markets the seller serves"),
    "shoppers_total": (("replication", "market"), "1", "shoppers arriving over the horizon"),
}


class IncompleteSweepError(RuntimeError):
    """A sweep store whose tasks have not all finished."""


def summarize_paths(dataset: xr.Dataset) -> xr.Dataset:
    """Per-(replication, seller) horizon outcomes of a full-path Dataset (``--summary-only``).

    Keeps :data:`SUMMARY_VARIABLES` plus ``exit_day`` and ``initial_cash`` unchanged;
    drops the ``time`` dim (and ``market`` for seller outcomes). Definitions follow
    :func:`cbecsim.summary.seller_outcomes`.
    """
    from ..summary import seller_outcomes

    outcomes = seller_outcomes(dataset)
    data = {
        "revenue_total": dataset["revenue"].sum(["time", "market"]),
        "cm2_total": dataset["cm2"].sum(["time", "market"]),
        "ad_spend_total": dataset["ad_spend"].sum(["time", "market"]),
        "duty_paid_total": dataset["duty_paid"].sum(["time", "market"]),
        "units_sold_total": dataset["units_sold"].sum(["time", "market"], dtype=np.int64),
        "lost_sales_total": dataset["lost_sales"].sum(["time", "market"], dtype=np.int64),
        "cm2_margin": outcomes["cm2_margin"],
        "final_cash": outcomes["final_cash"],
        "survived": outcomes["survived"],
        "mean_visibility": outcomes["mean_visibility"].astype(np.float32),
        "shoppers_total": dataset["shoppers"].sum("time", dtype=np.int64),
    }
    variables = {}
    for name, (dims, units, description) in SUMMARY_VARIABLES.items():
        array = data[name].drop_vars([c for c in data[name].coords if c not in data[name].dims], errors="ignore")
        variables[name] = xr.Variable(dims, array.transpose(*dims).values, {"units": units, "description": description})
    variables["exit_day"] = dataset["exit_day"].variable
    variables["initial_cash"] = dataset["initial_cash"].variable
    coords = {name: c.variable for name, c in dataset.coords.items() if "time" not in c.dims}
    return xr.Dataset(variables, coords=coords)


def zero_dataset(scenario: Scenario, resolution: str, summary_only: bool) -> xr.Dataset:
    """A one-replication Dataset of zeros with every variable, coordinate and attribute."""
    compiled = compile_scenario(scenario, resolution)
    # The schema's arrays for one replication, wrapped as the engine's results are.
    dataset = outputs_dataset(compiled, allocate_outputs(compiled, 1), 0)
    return summarize_paths(dataset) if summary_only else dataset


def build_template(
    zero: xr.Dataset,
    structures: list[xr.Dataset] | None,
    point_structure: np.ndarray | None,
    n_points: int,
    replications: int,
    points_per_task: int,
    replications_per_task: int,
    scenario_coords: dict[str, tuple[tuple[str, ...], np.ndarray, dict]],
    attrs: dict,
) -> tuple[xr.Dataset, dict]:
    """A dask-backed Dataset of the full shape, and its Zarr encoding."""
    import dask.array as da

    variables = {}
    encoding: dict[str, dict] = {}
    for name, variable in zero.data_vars.items():
        dims = ("scenario",) + variable.dims
        shape = (n_points,) + tuple(replications if d == "replication" else zero.sizes[d] for d in variable.dims)
        chunks = (points_per_task,) + tuple(
            replications_per_task if d == "replication" else zero.sizes[d] for d in variable.dims
        )
        dtype = variable.dtype
        variables[name] = xr.Variable(dims, da.zeros(shape, dtype=dtype, chunks=chunks), dict(variable.attrs))
        encoding[name] = {"chunks": chunks}
    encoding["exit_day"].update(EXIT_DAY_ENCODING)
    coords: dict[str, Any] = {
        "scenario": ("scenario", np.arange(n_points, dtype=np.int64),
                     {"description": "design point index (see the factor coordinates)"}),
        "replication": ("replication", np.arange(replications, dtype=np.int64)),
    }
    for name, coord in zero.coords.items():
        if "replication" in coord.dims:
            continue
        if structures is None or all(s[name].variable.equals(coord.variable) for s in structures):
            coords[name] = coord.variable
        else:
            stacked = np.stack([s[name].values for s in structures])[point_structure]
            coords[name] = xr.Variable(("scenario",) + coord.dims, stacked, dict(coord.attrs))
    for name, (dims, values, coord_attrs) in scenario_coords.items():
        coords[name] = xr.Variable(dims, values, coord_attrs)
    return xr.Dataset(variables, coords=coords, attrs=attrs), encoding


@contextlib.contextmanager
def quiet_about_logs():
    """The manifest and execution log live in the store's folder; Zarr lists them when it
    walks the store and warns that they are not Zarr objects, which is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy")
        yield


def create_store(path: Path, template: xr.Dataset, encoding: dict, overwrite: bool) -> None:
    """Write the template's metadata and coordinates, then rename into place."""
    temporary = temporary_sibling(path)
    try:
        template.to_zarr(temporary, mode="w-", compute=False, encoding=encoding, consolidated=False,
                         zarr_format=ZARR_FORMAT)
        (temporary / MANIFEST).touch()
        if path.exists() and not overwrite:  # pragma: no cover - checked before
            raise FileExistsError(path)
        replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise


def store_attrs(path: Path) -> dict:
    import zarr

    return dict(zarr.open_group(str(path), mode="r", zarr_format=ZARR_FORMAT).attrs)


def read_manifest(path: str | os.PathLike) -> dict[int, dict]:
    """Finished tasks of a store: ``{task id: record}`` (a torn last line is ignored)."""
    manifest = Path(path) / MANIFEST
    records: dict[int, dict] = {}
    if not manifest.exists():
        return records
    for line in manifest.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "task" in record:
            records[int(record["task"])] = record
    return records


def _append_line(path: Path, record: dict, sync: bool) -> None:
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())


def append_manifest(path: Path, record: dict) -> None:
    _append_line(path / MANIFEST, record, sync=True)


def append_failure(path: Path, record: dict) -> None:
    _append_line(path / FAILURES, record, sync=True)


def log_execution(path: str | os.PathLike, task: int, event: str, attempt: int) -> None:
    """A worker's record of one task execution (start/done), appended to the store."""
    record = {"task": task, "event": event, "attempt": attempt, "pid": os.getpid(), "host": socket.gethostname(),
              "time": time.time()}
    try:
        _append_line(Path(path) / EXECUTIONS, record, sync=False)
    except OSError:  # pragma: no cover - the log is advisory
        pass


def read_executions(path: str | os.PathLike) -> list[dict]:
    log = Path(path) / EXECUTIONS
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def finalize_store(path: Path, extra_attrs: dict) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="a", zarr_format=ZARR_FORMAT)
    group.attrs.update({**extra_attrs, "complete": True})
    with quiet_about_logs():
        zarr.consolidate_metadata(str(path), zarr_format=ZARR_FORMAT)


def open_sweep(path: str | os.PathLike, allow_incomplete: bool = False) -> xr.Dataset:
    """Open a sweep store written by :func:`cbecsim.sweep.run_sweep` or ``cbecsim sweep``.

    Values are read lazily. Raises :class:`IncompleteSweepError` for a store whose
    tasks have not all finished (resume it with ``cbecsim sweep SPEC --out PATH
    --resume``), unless ``allow_incomplete``: then it warns and opens it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such sweep store")
    try:
        attrs = store_attrs(path)
    except Exception as exc:  # noqa: BLE001 - any failure means "not a store"
        raise ValueError(f"{path}: not a Zarr store ({exc})") from None
    if "sweep_fingerprint" not in attrs:
        raise ValueError(f"{path}: not a sweep store (use cbecsim.open_results for a single run)")
    if not attrs.get("complete", False):
        done = len(read_manifest(path))
        message = (f"{path}: incomplete sweep ({done} of {attrs.get('tasks')} tasks finished); finish it with "
                   f"`cbecsim sweep SPEC --out {path} --resume`")
        if not allow_incomplete:
            raise IncompleteSweepError(message)
        warnings.warn(message + "; unfinished regions read as NaN (floats) or 0", stacklevel=2)
        with quiet_about_logs():
            return xr.open_zarr(path, consolidated=False, chunks=None, zarr_format=ZARR_FORMAT)
    return xr.open_zarr(path, consolidated=True, chunks=None, zarr_format=ZARR_FORMAT)


def task_rectangles(n_points: int, replications: int, points_per_task: int,
                    replications_per_task: int) -> list[tuple[int, int, int, int]]:
    """``(first point, end point, first replication, end replication)`` per task id."""
    rectangles = []
    for p0 in range(0, n_points, points_per_task):
        for r0 in range(0, replications, replications_per_task):
            rectangles.append((p0, min(p0 + points_per_task, n_points), r0, min(r0 + replications_per_task, replications)))
    return rectangles
