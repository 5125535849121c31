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
   touch the same chunk, and every chunk is written (zarr's ``array.write_empty_chunks``). The worker
   then reads back its chunk files and returns their sizes and CRC-32s. The parent
   appends one JSON line per finished task to ``sweep_manifest.jsonl`` (flushed and
   fsync'ed): the task id, its rectangle, the chunk checksums and ``record_crc``, the
   CRC-32 of the record's other fields. Workers also append ``start``/``done`` lines to
   ``sweep_executions.jsonl`` (a record of every execution, resumed or not).
3. :func:`finalize_store` checks that every task's chunks match its manifest record,
   sets ``complete: true``, consolidates the metadata and writes
   ``cbecsim_checksums.json`` (every file of the store, :mod:`cbecsim.integrity`) last.

The manifest proves completeness, not a flag (:func:`scan_manifest`). A record counts
only if its ``record_crc`` matches, its task id is one of the store's tasks with that
task's rectangle, and it lists a chunk of every data variable. ``--resume`` also checks
each counted record's chunk files against their checksums and runs again every task
whose data are missing or altered (a line says which and why). A last line without its
newline (the parent was killed while appending) is ignored and cut off by the next
writer. Lines that fail these checks are ignored, each with a warning.

The whole sweep holds the store's writer lock (:class:`cbecsim.files.WriterLock`), so a
second ``--resume`` of the same store is refused at once with the first one's PID and
host.

An incomplete store has no checksum listing, so :func:`cbecsim.open_results` refuses
it; :func:`open_sweep` refuses it with a clear message (or, with
``allow_incomplete=True``, opens it with a warning; unfinished regions read as NaN / 0).
A complete one is opened only after its checksums, its chunk coverage and its manifest
have been verified.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
import warnings
import zlib
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..compile import compile_scenario
from ..config import Scenario
from ..files import remove, replace, temporary_sibling
from ..integrity import (
    DamagedResultError,
    check_chunk_coverage,
    file_crc32,
    read_zarr_checksums,
    verify_zarr_files,
    write_zarr_checksums,
    zarr_checksums,
)
from ..results import DECODING, EXIT_DAY_ENCODING, ZARR_FORMAT, allocate_outputs, every_chunk_written, outputs_dataset

# results.py types ZARR_FORMAT (the constant 2) as int and DECODING as dict[str, bool];
# the casts below give zarr and xarray the types their signatures ask for (Literal[2, 3];
# keyword arguments of any type). They can go once results.py declares
# ``ZARR_FORMAT: Final = 2`` and ``DECODING: dict[str, Any]``.

__all__ = [
    "MANIFEST",
    "EXECUTIONS",
    "IncompleteSweepError",
    "open_sweep",
    "read_manifest",
    "scan_manifest",
    "ManifestScan",
    "summarize_paths",
    "SUMMARY_VARIABLES",
]

log = logging.getLogger("cbecsim.sweep")

MANIFEST = "sweep_manifest.jsonl"
EXECUTIONS = "sweep_executions.jsonl"
FAILURES = "sweep_failures.jsonl"

#: ``--summary-only`` variables: name -> (dims without scenario, units, description).
SUMMARY_VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "revenue_total": (("replication", "seller"), "USD", "revenue summed over the horizon and all markets"),
    "cm2_total": (
        ("replication", "seller"),
        "USD",
        "contribution margin after ads, summed over the horizon and markets",
    ),
    "ad_spend_total": (("replication", "seller"), "USD", "ad spend summed over the horizon and markets"),
    "duty_paid_total": (("replication", "seller"), "USD", "duty paid summed over the horizon and markets"),
    "units_sold_total": (("replication", "seller"), "units", "units sold over the horizon and markets"),
    "lost_sales_total": (("replication", "seller"), "units", "units lost to stock-outs over the horizon and markets"),
    "cm2_margin": (("replication", "seller"), "1", "cm2_total / revenue_total; NaN without revenue"),
    "final_cash": (("replication", "seller"), "USD", "cash at the end of the last period"),
    "survived": (("replication", "seller"), "1", "seller still trading at the end of the horizon"),
    "mean_visibility": (
        ("replication", "seller"),
        "1",
        "mean share of attention over the periods and the markets the seller serves",
    ),
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
        "revenue_total": outcomes["revenue_total"],
        "cm2_total": outcomes["cm2_total"],
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
    encoding: dict[Hashable, dict] = {}
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
    coords: dict[Hashable, Any] = {
        "scenario": (
            "scenario",
            np.arange(n_points, dtype=np.int64),
            {"description": "design point index (see the factor coordinates)"},
        ),
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
        with every_chunk_written():
            template.to_zarr(
                temporary, mode="w-", compute=False, encoding=encoding, consolidated=False, zarr_format=ZARR_FORMAT
            )
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


def record_crc(record: dict) -> int:
    """CRC-32 of a manifest record's fields other than ``record_crc`` (canonical JSON)."""
    body = {k: v for k, v in record.items() if k != "record_crc"}
    return zlib.crc32(json.dumps(body, sort_keys=True, default=str).encode("utf-8"))


@dataclasses.dataclass
class ManifestScan:
    """What the manifest proves: ``records`` (task id -> its valid record, the last one
    if a task was recorded twice), ``problems`` (one sentence per ignored line) and
    ``torn_at`` (byte offset of a last line without its newline, or None)."""

    records: dict[int, dict]
    problems: list[str]
    torn_at: int | None


def scan_manifest(
    path: str | os.PathLike,
    rectangles: list[tuple[int, int, int, int]] | None = None,
    variables: list[str] | None = None,
) -> ManifestScan:
    """Read ``sweep_manifest.jsonl`` and keep the records that prove a finished task.

    With ``rectangles`` (per task id) a record must name a task of the store with its
    rectangle; with ``variables`` it must list a chunk of each. Chunk files themselves are
    checked by :func:`verify_task_chunks`.
    """
    manifest = Path(path) / MANIFEST
    records: dict[int, dict] = {}
    problems: list[str] = []
    if not manifest.exists():
        return ManifestScan(records, problems, None)
    raw = manifest.read_bytes()
    torn_at = None
    if raw and not raw.endswith(b"\n"):
        torn_at = raw.rfind(b"\n") + 1
        raw = raw[:torn_at]
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        where = f"{MANIFEST} line {number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"{where}: not a JSON record: ignored")
            continue
        if not isinstance(record, dict) or "task" not in record:
            problems.append(f"{where}: not a task record: ignored")
            continue
        if record.get("record_crc") != record_crc(record):
            problems.append(
                f"{where}: task {record.get('task')!r}: its checksum does not match its contents "
                "(edited or damaged): ignored"
            )
            continue
        task = record["task"]
        if not isinstance(task, int) or (rectangles is not None and not 0 <= task < len(rectangles)):
            known = f" (tasks 0..{len(rectangles) - 1})" if rectangles is not None else ""
            problems.append(f"{where}: task {task!r} is not a task of this store{known}: ignored")
            continue
        if rectangles is not None:
            p0, p1, r0, r1 = rectangles[task]
            if record.get("points") != [p0, p1] or record.get("replications") != [r0, r1]:
                problems.append(
                    f"{where}: task {task} names scenarios {record.get('points')} and replications "
                    f"{record.get('replications')}, not its own [{p0}, {p1}] and [{r0}, {r1}]: ignored"
                )
                continue
        chunks = record.get("chunks")
        if not isinstance(chunks, dict) or (
            variables is not None and {key.split("/", 1)[0] for key in chunks} != set(variables)
        ):
            problems.append(f"{where}: task {task} does not list the checksums of its chunks: ignored")
            continue
        records[task] = record
    return ManifestScan(records, problems, torn_at)


def read_manifest(path: str | os.PathLike) -> dict[int, dict]:
    """Finished tasks of a store: ``{task id: record}``.

    Only records whose checksum matches, whose task id is one of the store's tasks and
    that list their chunks count (see :func:`scan_manifest`); a torn last line is
    ignored. Chunk data are not read here (see :func:`open_sweep`).
    """
    path = Path(path)
    rectangles = variables = None
    with contextlib.suppress(Exception):
        attrs = store_attrs(path)
        rectangles = task_rectangles(
            int(attrs["points"]),
            int(attrs["replications"]),
            int(attrs["points_per_task"]),
            int(attrs["replications_per_task"]),
        )
        variables = data_variables(path)
    return scan_manifest(path, rectangles, variables).records


def data_variables(path: str | os.PathLike) -> list[str]:
    """Names of the store's arrays that have a ``scenario`` dim first (the tasks' data)."""
    path = Path(path)
    names = []
    for child in sorted(path.iterdir()):
        attrs_file = child / ".zattrs"
        if not (child / ".zarray").is_file() or not attrs_file.is_file():
            continue
        dims = json.loads(attrs_file.read_text()).get("_ARRAY_DIMENSIONS", [])
        if dims[:2] == ["scenario", "replication"]:
            names.append(child.name)
    return names


def task_chunk_keys(path: str | os.PathLike, variables: list[str], p0: int, r0: int) -> list[str]:
    """The chunk file of each variable that holds the task starting at (p0, r0)."""
    path = Path(path)
    keys = []
    for name in variables:
        meta = json.loads((path / name / ".zarray").read_text())
        chunks, separator = meta["chunks"], meta.get("dimension_separator", ".")
        index = [p0 // chunks[0], r0 // chunks[1]] + [0] * (len(chunks) - 2)
        keys.append(f"{name}/{separator.join(map(str, index))}")
    return keys


def task_chunk_checksums(path: str | os.PathLike, p0: int, r0: int) -> dict[str, list[int]]:
    """``{chunk key: [size, crc32]}`` of the chunks a task wrote (read back from disk)."""
    path = Path(path)
    return {key: list(file_crc32(path / key)) for key in task_chunk_keys(path, data_variables(path), p0, r0)}


def verify_task_chunks(
    path: str | os.PathLike, record: dict, listing: dict[str, list[int]] | None = None
) -> str | None:
    """Why a task's chunks do not match its manifest record, or None if they do.

    ``listing``: checksums of the store's files already computed (no re-read).
    """
    path = Path(path)
    for key, (size, crc) in sorted(record["chunks"].items()):
        if listing is not None:
            found = listing.get(key)
            if found is None:
                return f"its chunk {key} is missing"
            found_size, found_crc = found
        else:
            if not (path / key).is_file():
                return f"its chunk {key} is missing"
            found_size, found_crc = file_crc32(path / key)
        if found_size != size or found_crc != crc:
            return f"its chunk {key} differs from what was written"
    return None


def _append_line(path: Path, record: dict, sync: bool) -> None:
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())


def append_manifest(path: Path, record: dict) -> None:
    """Append a finished task's record, with its ``record_crc``, and fsync."""
    record = {k: v for k, v in record.items() if k != "record_crc"}
    record = json.loads(json.dumps(record, sort_keys=True, default=str))  # as it will be read back
    record["record_crc"] = record_crc(record)
    _append_line(path / MANIFEST, record, sync=True)


def truncate_torn_manifest(path: Path, torn_at: int) -> str:
    """Cut a last line without its newline off the manifest (the writer holds the lock)."""
    manifest = path / MANIFEST
    size = manifest.stat().st_size
    with open(manifest, "r+b") as handle:
        handle.truncate(torn_at)
        handle.flush()
        os.fsync(handle.fileno())
    return (
        f"{MANIFEST}: its last line ({size - torn_at} bytes) was cut off mid-write by a killed run; "
        "removed (that task runs again)"
    )


def append_failure(path: Path, record: dict) -> None:
    _append_line(path / FAILURES, record, sync=True)


def log_execution(path: str | os.PathLike, task: int, event: str, attempt: int) -> None:
    """A worker's record of one task execution (start/done), appended to the store."""
    record = {
        "task": task,
        "event": event,
        "attempt": attempt,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "time": time.time(),
    }
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


def store_layout(path: Path) -> tuple[dict, list[tuple[int, int, int, int]], list[str]]:
    """A sweep store's attributes, task rectangles and data variables."""
    attrs = store_attrs(path)
    rectangles = task_rectangles(
        int(attrs["points"]),
        int(attrs["replications"]),
        int(attrs["points_per_task"]),
        int(attrs["replications_per_task"]),
    )
    return attrs, rectangles, data_variables(path)


def finalize_store(path: Path, extra_attrs: dict) -> None:
    """Check every task's chunks against the manifest, then mark the store complete.

    Raises :class:`DamagedResultError` if a task is missing from the manifest or its
    chunks changed after they were written (the store stays incomplete and resumable).
    """
    import zarr

    _, rectangles, variables = store_layout(path)
    scan = scan_manifest(path, rectangles, variables)
    listing = zarr_checksums(path)  # one read of every file
    for task in range(len(rectangles)):
        record = scan.records.get(task)
        why = "it is not in the manifest" if record is None else verify_task_chunks(path, record, listing)
        if why:
            raise DamagedResultError(
                path, variables[0] if variables else "?", f"cannot be marked complete: task {task}: {why}; run --resume"
            )
    group = zarr.open_group(str(path), mode="a", zarr_format=ZARR_FORMAT)
    group.attrs.update({**extra_attrs, "complete": True})
    with quiet_about_logs():
        zarr.consolidate_metadata(str(path), zarr_format=ZARR_FORMAT)
    listing.update({name: list(file_crc32(path / name)) for name in (".zattrs", ".zmetadata")})
    write_zarr_checksums(path, listing)


def _unproven_tasks(path: Path, listing: dict[str, list[int]] | None) -> tuple[list[int], int, list[str]]:
    """Tasks the manifest does not prove done (with ``listing``: against those checksums)."""
    _, rectangles, variables = store_layout(path)
    scan = scan_manifest(path, rectangles, variables)
    missing = [
        t
        for t in range(len(rectangles))
        if t not in scan.records or verify_task_chunks(path, scan.records[t], listing) is not None
    ]
    return missing, len(rectangles), scan.problems


def open_sweep(path: str | os.PathLike, allow_incomplete: bool = False, verify: bool = True) -> xr.Dataset:
    """Open a sweep store written by :func:`cbecsim.sweep.run_sweep` or ``cbecsim sweep``.

    Values are read lazily. A store counts as complete only when its checksum listing
    verifies (every file present and unchanged, every chunk of every array written) and
    its manifest proves every task (see the module docstring); ``verify=False`` skips
    re-reading the files (the manifest is still checked against the listing).

    Raises :class:`IncompleteSweepError` for a store whose tasks have not all finished
    (resume it with ``cbecsim sweep SPEC --out PATH --resume``), unless
    ``allow_incomplete``: then it warns and opens it. Raises
    :class:`cbecsim.integrity.DamagedResultError` for a store whose files changed.
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
    listing = read_zarr_checksums(path) if attrs.get("complete", False) else None
    if listing is not None:
        if verify:
            verify_zarr_files(path, listing)
        check_chunk_coverage(path, listing)
        missing, tasks, _ = _unproven_tasks(path, listing)
        if missing:
            raise DamagedResultError(
                path,
                "(manifest)",
                f"does not prove tasks {_ranges(missing)} of {tasks} "
                "finished, although the store says complete; run --resume",
            )
        return xr.open_zarr(
            path, consolidated=True, chunks=None, zarr_format=ZARR_FORMAT, **DECODING
        )
    missing, tasks, _ = _unproven_tasks(path, None)
    if missing:
        message = (
            f"{path}: incomplete sweep ({tasks - len(missing)} of {tasks} tasks finished and verified); "
            f"finish it with `cbecsim sweep SPEC --out {path} --resume`"
        )
    else:
        message = (
            f"{path}: incomplete sweep (all {tasks} tasks finished, but the store was not finalised); "
            f"finish it with `cbecsim sweep SPEC --out {path} --resume`"
        )
    if not allow_incomplete:
        raise IncompleteSweepError(message)
    warnings.warn(message + "; unfinished regions read as NaN (floats) or 0", stacklevel=2)
    with quiet_about_logs():
        return xr.open_zarr(
            path, consolidated=False, chunks=None, zarr_format=ZARR_FORMAT, **DECODING
        )


def _ranges(tasks: list[int]) -> str:
    shown = ", ".join(map(str, tasks[:8]))
    return shown + (f" and {len(tasks) - 8} more" if len(tasks) > 8 else "")


def task_rectangles(
    n_points: int, replications: int, points_per_task: int, replications_per_task: int
) -> list[tuple[int, int, int, int]]:
    """``(first point, end point, first replication, end replication)`` per task id."""
    rectangles = []
    for p0 in range(0, n_points, points_per_task):
        for r0 in range(0, replications, replications_per_task):
            rectangles.append(
                (p0, min(p0 + points_per_task, n_points), r0, min(r0 + replications_per_task, replications))
            )
    return rectangles
