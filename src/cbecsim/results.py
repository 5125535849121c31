"""Labelled outputs: the one module that builds result :class:`xarray.Dataset` objects.

Dimensions: ``replication``, ``time`` (start of each output period), ``seller`` and
``market``. The variables are those of :data:`cbecsim.schema.VARIABLES`; the engine's
output arrays (:class:`cbecsim.kernels.state.Outputs`) already hold them at the run's
resolution, so :func:`outputs_dataset` wraps views of them. Money is USD; every variable carries ``units`` and
``description``
attributes; dataset attributes carry the resolved config, seed, package version and git
revision. Storage is NetCDF (``.nc``) or Zarr (``.zarr``) by the path's suffix, always
written under a temporary name and renamed, so an interrupted run never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Final

import numpy as np
import xarray as xr

from .compile import CompiledScenario
from .files import (
    OutputError,
    WriterLock,
    folder_problem,
    recover,
    refuse_foreign,
    remove,
    remove_stale_partials,
    replace,
    temporary_sibling,
)
from .integrity import (
    CHECKSUM_FILE,
    NETCDF_CHECKSUM_ATTRIBUTE,
    RunningChecksums,
    add_netcdf_checksums,
    verify_netcdf,
    verify_zarr_store,
    write_zarr_checksums,
)
from .kernels.state import OUTPUT_FIELDS, OUTPUT_GROUPS, RATIO_OUTPUTS, Outputs
from .schema import VARIABLES

#: exit_reason names by code (kernels.layout.EXIT_*).
EXIT_REASONS = ("survived", "insolvent", "unprofitable", "strategic")

__all__ = [
    "VARIABLES",
    "allocate_outputs",
    "reset_outputs",
    "outputs_dataset",
    "save_dataset",
    "open_results",
    "ZarrBatchWriter",
    "NetcdfBatchWriter",
    "batch_writer",
    "output_format",
    "OutputError",
    "claim_output",
]

log = logging.getLogger("cbecsim.results")

#: Zarr format 2: its fixed-width string and consolidated-metadata encodings are
#: specified and read by every Zarr implementation (format 3 warns about both).
ZARR_FORMAT: Final = 2

#: How results are decoded on reading: variables in ``days`` (listed_days, delivery_days,
#: ...) stay numbers; xarray before 2025.x would turn them into timedeltas.
DECODING: dict[str, Any] = {"decode_timedelta": False}


@contextlib.contextmanager
def every_chunk_written():
    """Within the block, Zarr writes chunks that hold only the fill value too, so a
    complete store holds every chunk and a missing one means damage (the checksum
    listing's coverage check). A zarr setting, not a ``to_zarr`` argument: xarray
    before 2025.x does not pass that argument to zarr-python 3."""
    import zarr

    with zarr.config.set({"array.write_empty_chunks": True}):
        yield


def output_format(path: str | os.PathLike) -> str:
    """``"netcdf"`` or ``"zarr"`` from the path's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".nc":
        return "netcdf"
    if suffix == ".zarr":
        return "zarr"
    raise OutputError(f"{path}: output must end in .nc (NetCDF) or .zarr (Zarr), not {suffix or 'no suffix'!r}")


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite`` (and then unless it is cbecsim's own,
    see :mod:`cbecsim.files`); check that the folder accepts a new file."""
    path = Path(path)
    output_format(path)
    if os.path.lexists(path):
        if not overwrite:
            raise OutputError(f"{path} already exists (pass --overwrite / overwrite=True to replace it)")
        refuse_foreign(path)
    if problem := folder_problem(path):
        raise OutputError(problem)
    return path


def claim_output(path: str | os.PathLike, overwrite: bool, purpose: str = "writing a run result") -> WriterLock:
    """Check ``path``, take its writer lock and clean what interrupted writers left.

    Returns the held :class:`~cbecsim.files.WriterLock` (release it when the output is in
    place or abandoned). Stale partial outputs of the same name and an interrupted
    replace are cleaned up, each with a warning on the ``cbecsim`` logger.
    """
    path = check_output_path(path, overwrite)
    lock = WriterLock(path, purpose).acquire()
    try:
        for note in [*lock.notes, *recover(path), *remove_stale_partials(path)]:
            log.warning(note)
        check_output_path(path, overwrite)  # a replace may just have been undone
    except BaseException:
        lock.release()
        raise
    return lock


def allocate_outputs(compiled: CompiledScenario, rows: int) -> Outputs:
    """Output arrays for ``rows`` replications, filled for a fresh run (see :func:`reset_outputs`).

    Field-major per dtype group (:data:`cbecsim.kernels.state.OUTPUT_GROUPS`), at the
    run's output resolution: the kernels write straight into them.
    """
    T, S, M = compiled.n_periods, compiled.n_sellers, compiled.n_markets
    extent = {"replication": rows, "time": T, "seller": S, "market": M}
    arrays = {
        group: np.zeros((len(fields),) + tuple(extent[d] for d in dims), dtype=dtype)
        for group, (fields, dims, dtype) in OUTPUT_GROUPS.items()
    }
    outputs = Outputs(**arrays, exit_day=np.full((rows, S), -1, dtype=np.int64), initial_cash=np.zeros((rows, S)),
                      exit_reason=np.zeros((rows, S), dtype=np.int8), origin=np.zeros((rows, S), dtype=np.int8))
    _fill_ratios(outputs)
    return outputs


def _fill_ratios(outputs: Outputs) -> None:
    # Ratios of cells the kernels never write (markets a seller cannot list in) stay NaN,
    # as they would with no sales; the kernels overwrite the others at each period end.
    for name in RATIO_OUTPUTS:
        group, index = OUTPUT_FIELDS[name]
        getattr(outputs, group)[index].fill(np.nan)


def reset_outputs(outputs: Outputs) -> None:
    """Refill reused output arrays for the next batch: flows and levels 0, ratios NaN,
    exit days -1."""
    array: np.ndarray
    for array in outputs:
        array.fill(0)
    outputs.exit_day.fill(-1)
    _fill_ratios(outputs)


def slice_outputs(outputs: Outputs, row0: int, rows: int) -> Outputs:
    """Rows ``row0 .. row0 + rows - 1`` of ``outputs``: views, not copies (the grouped
    arrays are field-major, so their replication axis is the second)."""
    grouped = len(OUTPUT_GROUPS)
    return Outputs(*(array[:, row0:row0 + rows] if i < grouped else array[row0:row0 + rows]
                     for i, array in enumerate(outputs)))


def outputs_dataset(
    compiled: CompiledScenario, outputs: Outputs, replication0: int, rows: int | None = None, attrs: dict | None = None
) -> xr.Dataset:
    """Wrap the first ``rows`` rows of ``outputs`` as a labelled Dataset: a wrap, not a copy.

    The data variables are views into ``outputs`` (except ``exit_day``, converted to
    dates): write or copy the Dataset before the arrays are reused.
    """
    rows = outputs.exit_day.shape[0] if rows is None else rows
    variables = {}
    for name, variable in VARIABLES.items():
        group, index = OUTPUT_FIELDS[name]
        variables[name] = xr.Variable(variable.dims, getattr(outputs, group)[index, :rows], variable.attrs)
    exit_day = outputs.exit_day[:rows]
    exit_dates = np.where(
        exit_day >= 0,
        compiled.dates.values[0] + exit_day.astype("timedelta64[D]"),
        np.datetime64("NaT"),
    ).astype("datetime64[ns]")
    variables["exit_day"] = xr.Variable(
        ("replication", "seller"),
        exit_dates,
        {
            "description": "day the seller exited (cash below its credit line, or it left every market); NaT "
            "if it survived the horizon (censored)"
        },
    )
    variables["initial_cash"] = xr.Variable(
        ("replication", "seller"), outputs.initial_cash[:rows], {"units": "USD", "description": "cash on day 0"}
    )
    variables["exit_reason"] = xr.Variable(
        ("replication", "seller"),
        np.asarray(EXIT_REASONS)[outputs.exit_reason[:rows]],
        {"description": "why the seller exited: insolvent (equity below minus its credit line, or cash past the "
         "line with no stock to recover it within recovery_days), unprofitable (its strategy's trailing-CM2 "
         "rule), strategic (its strategy chose to leave), survived (trading at the horizon end)"},
    )
    variables["production_origin"] = xr.Variable(
        ("replication", "seller"),
        np.asarray(compiled.origins)[outputs.origin[:rows]],
        {"description": "the seller's production origin at the horizon end (its configured origin, or the one it "
         "moved production to: origin_options)"},
    )
    return xr.Dataset(variables, coords=_coords(compiled, replication0, rows), attrs=attrs or {})


def _coords(compiled: CompiledScenario, replication0: int, n_batch: int) -> dict:
    populations = compiled.seller_population
    home = [compiled.market_names[int(np.argmax(row))] if row.any() else "" for row in compiled.seller_served]
    period_end = compiled.dates.values[compiled.period_ends]
    return {
        "replication": ("replication", np.arange(replication0, replication0 + n_batch, dtype=np.int64)),
        "time": ("time", compiled.period_starts.values),
        "period_end": ("time", period_end, {"description": "last day of the output period"}),
        "seller": ("seller", np.arange(compiled.n_sellers, dtype=np.int64)),
        "strategy": ("seller", np.array([compiled.population_strategies[p] for p in populations], dtype=str)),
        "population": ("seller", np.array([compiled.population_labels[p] for p in populations], dtype=str)),
        "origin": ("seller", np.array([compiled.origins[o] for o in compiled.seller_origin], dtype=str)),
        "home_market": ("seller", np.array(home, dtype=str)),
        "market": ("market", np.array(compiled.market_names, dtype=str)),
        "region": ("market", np.array(compiled.market_regions, dtype=str)),
        "category": ("market", np.array(compiled.market_categories, dtype=str)),
        "served": (
            ("seller", "market"),
            compiled.seller_served.copy(),
            {"description": "the seller's population lists in this market"},
        ),
    }


def git_revision() -> str:
    """The git commit of the cbecsim source tree, or ``"unknown"`` outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    revision = result.stdout.strip()
    if result.returncode != 0 or not revision:
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return revision + ("-dirty" if dirty else "")


def provenance(compiled: CompiledScenario, seed: int, replications: int) -> dict[str, str | int]:
    """Dataset attributes that make a result traceable and re-runnable."""
    from . import __version__

    config = json.loads(compiled.config_json)
    config["seed"] = seed
    config["replications"] = replications
    return {
        "title": f"cbecsim run of scenario {compiled.name!r}",
        "scenario": compiled.name,
        "config": json.dumps(config, sort_keys=True),
        # The regimes as applied: the policy library's changes for `policy` then the
        # config's own, so a result stays re-runnable if the library is updated later
        # (use it as duty_schedule with policy: []).
        "duty_schedule_effective": compiled.duty_schedule_json,
        "seed": int(seed),
        "replications": int(replications),
        "resolution": compiled.resolution,
        "cbecsim_version": __version__,
        "git_revision": git_revision(),
        "money_units": "USD (market-currency amounts converted at the day's rate: the scenario's currency_rates "
        "(fx_path fixed) or the month's average rate (fx_path monthly), or its FX paths where fx_volatility or "
        "fx_series is set)",
    }


#: Exit dates are stored as float days so that NaT (survived) round-trips in NetCDF and Zarr.
EXIT_DAY_ENCODING = {"units": "days since 1970-01-01", "dtype": "float64"}


def _encoding(dataset: xr.Dataset | None = None) -> dict:
    """exit_day as float days; with ``dataset`` (NetCDF), Fletcher-32 on every data variable."""
    encoding: dict[str, dict] = {"exit_day": dict(EXIT_DAY_ENCODING)}
    if dataset is not None:
        for name in dataset.data_vars:
            encoding.setdefault(str(name), {})["fletcher32"] = True
    return encoding


def _free_bytes(path: Path) -> int:
    try:
        stats = os.statvfs(path.parent)
    except OSError:  # pragma: no cover
        return 1 << 62
    return stats.f_bavail * stats.f_frsize


def _write_failed(path: Path, exc: BaseException) -> None:
    """Turn a full disk or an unwritable folder into an OutputError that says so."""
    import errno

    code = getattr(exc, "errno", None)
    text = str(exc)
    full = code == errno.ENOSPC or "No space left" in text or "HDF error" in text or "NetCDF: Write" in text
    # HDF5 reports a full disk as whatever its last system call failed with (opening a
    # file to append gives EACCES): a write error with under 1 MiB free is a full disk.
    full = full or (isinstance(exc, OSError) and code in (errno.EACCES, errno.EIO) and _free_bytes(path) < 1 << 20)
    if full:
        from .files import format_bytes

        try:
            free = os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize
        except OSError:  # pragma: no cover
            free = -1
        if code == errno.ENOSPC or free < 1 << 20:
            raise OutputError(
                f"{path}: no space left on device while writing it ({format_bytes(max(free, 0))} "
                "free); the partial output was removed and any previous version is untouched"
            ) from None
    if isinstance(exc, OSError) and code in (errno.EROFS, errno.EACCES, errno.EPERM):
        raise OutputError(f"{path}: cannot be written ({exc.strerror}); the partial output was removed") from None


def save_dataset(dataset: xr.Dataset, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``dataset`` to ``path`` (.nc or .zarr) atomically: temporary name, checksums, rename.

    Holds the output's writer lock while writing. NetCDF: Fletcher-32 per data variable
    and a ``cbecsim_checksums`` attribute; Zarr: ``cbecsim_checksums.json`` (see
    :mod:`cbecsim.integrity`).
    """
    lock = claim_output(path, overwrite)
    path = Path(path)
    fmt = output_format(path)
    temporary = temporary_sibling(path)
    try:
        try:
            if fmt == "netcdf":
                dataset.to_netcdf(temporary, engine="netcdf4", encoding=_encoding(dataset))
                add_netcdf_checksums(temporary)
            else:
                with every_chunk_written():
                    dataset.to_zarr(
                        temporary, mode="w", encoding=_encoding(), consolidated=True, zarr_format=ZARR_FORMAT
                    )
                write_zarr_checksums(temporary)
            replace(temporary, path)
        except BaseException as exc:
            remove(temporary)
            _write_failed(path, exc)
            raise
    finally:
        lock.release()
    return path


class ZarrBatchWriter:
    """Stream batch Datasets into one Zarr store, appending along ``replication``.

    Memory stays bounded by the batch: each batch is written as it finishes. The store
    lives under a temporary name until :meth:`close` renames it; :meth:`abort` (or an
    exception inside a ``with`` block) removes it.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.path = Path(path)
        if output_format(self.path) != "zarr":
            raise OutputError(f"{self.path}: streaming output must be a .zarr store")
        self._lock = claim_output(self.path, overwrite)
        self.temporary = temporary_sibling(self.path)
        self._started = False

    def write(self, batch: xr.Dataset) -> None:
        try:
            with every_chunk_written():
                self._write(batch)
        except Exception as exc:  # noqa: BLE001 - a full disk or unwritable folder says so
            self.abort()
            _write_failed(self.path, exc)
            raise

    def _write(self, batch: xr.Dataset) -> None:
        if not self._started:
            batch.to_zarr(self.temporary, mode="w", encoding=_encoding(), consolidated=False, zarr_format=ZARR_FORMAT)
            self._started = True
        else:
            # Coordinates without the replication dim are already in the store.
            batch = batch.drop_vars([n for n, c in batch.coords.items() if "replication" not in c.dims])
            batch.to_zarr(self.temporary, append_dim="replication", consolidated=False, zarr_format=ZARR_FORMAT)

    def close(self, attrs: dict) -> Path:
        import zarr

        try:
            group = zarr.open_group(str(self.temporary), mode="a", zarr_format=ZARR_FORMAT)
            group.attrs.update(attrs)
            zarr.consolidate_metadata(str(self.temporary), zarr_format=ZARR_FORMAT)
            write_zarr_checksums(self.temporary)
            replace(self.temporary, self.path)
        except BaseException as exc:
            self.abort()
            _write_failed(self.path, exc)
            raise
        self._lock.release()
        return self.path

    def abort(self) -> None:
        remove(self.temporary)
        self._lock.release()

    def __enter__(self) -> "ZarrBatchWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


#: NetCDF compression of results: zlib (deflate, which every NetCDF-4 reader has) at
#: level 1, the cheapest; the outputs compress well (zeros in cells a seller does not
#: serve, integer counts, repeated period values). No shuffle filter: on these outputs
#: it made files larger and writes slower (benchmarks/netcdf_write.py: the 320 MiB of
#: listing variables of 200 replications of eu_fixed_duty_2026 at week resolution take
#: 102 MiB written in 4.2 s with shuffle, 84 MiB in 2.8 s without).
NETCDF_COMPRESSION = {"zlib": True, "complevel": 1, "shuffle": False}
#: Replications per NetCDF chunk: large enough that HDF5's per-chunk cost is small next
#: to compressing it, small enough that reading one replication reads little.
NETCDF_CHUNK_REPLICATIONS = 32
#: HDF5 chunk cache per variable while a result is written [bytes].
NETCDF_CHUNK_CACHE_BYTES = 4 * 2**20


class NetcdfBatchWriter:
    """Stream batch Datasets into one NetCDF file along an unlimited ``replication`` dim.

    Like :class:`ZarrBatchWriter`: memory stays bounded by the batch; the file lives
    under a temporary name until :meth:`close` adds the checksums (Fletcher-32 per
    variable and the ``cbecsim_checksums`` attribute) and renames it. Every data variable
    is compressed (:data:`NETCDF_COMPRESSION`), in chunks of NETCDF_CHUNK_REPLICATIONS replications.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.path = Path(path)
        if output_format(self.path) != "netcdf":
            raise OutputError(f"{self.path}: this writer writes .nc files")
        self._lock = claim_output(self.path, overwrite)
        self.temporary = temporary_sibling(self.path)
        self._rows = 0
        self._encoding: dict[str, dict] = {}
        # Checksums of the variables streamed along replication, carried over the
        # batches as they are written, so closing need not read the file back.
        self._checksums = RunningChecksums()

    def write(self, batch: xr.Dataset) -> None:
        try:
            self._write(batch)
        except Exception as exc:  # noqa: BLE001 - a full disk or unwritable folder says so
            self.abort()
            _write_failed(self.path, exc)
            raise

    def _write(self, batch: xr.Dataset) -> None:
        import netCDF4

        # HDF5 keeps each variable's chunks being filled in a cache; the library's default
        # (tens of MB per variable, for 35 variables) would hold most of the file in memory.
        netCDF4.set_chunk_cache(NETCDF_CHUNK_CACHE_BYTES, 1009, 0.75)
        n = batch.sizes["replication"]
        if self._rows == 0:
            encoding = _encoding(batch)
            for name, variable in batch.data_vars.items():
                options = encoding.setdefault(name, {})
                options.update(NETCDF_COMPRESSION)
                options["chunksizes"] = tuple(
                    min(n, NETCDF_CHUNK_REPLICATIONS) if d == "replication" else batch.sizes[d] for d in variable.dims)
            self._encoding = encoding
            batch.to_netcdf(self.temporary, engine="netcdf4", encoding=encoding, unlimited_dims=["replication"])
            for key, stored in batch.variables.items():
                if stored.dims[:1] == ("replication",):
                    self._checksums.add(str(key), self._stored_values(str(key), stored))
        else:
            with netCDF4.Dataset(self.temporary, "a") as dataset:
                dataset.set_auto_maskandscale(False)
                for key, stored in batch.variables.items():
                    if "replication" not in stored.dims:
                        continue
                    name = str(key)
                    values = self._stored_values(name, stored)
                    axis = stored.dims.index("replication")
                    index = tuple(slice(self._rows, self._rows + n) if i == axis else slice(None)
                                  for i in range(stored.ndim))
                    dataset.variables[name][index] = values
                    if axis == 0:
                        self._checksums.add(name, values)
        self._rows += n

    def _stored_values(self, name: str, variable: xr.Variable) -> np.ndarray:
        """``variable``'s values as the file stores them (CF-encoded with its encoding)."""
        plain = variable.copy(deep=False)
        plain.encoding = dict(self._encoding.get(name, {}))
        return np.asarray(xr.conventions.encode_cf_variable(plain, name=name).values)

    def close(self, attrs: dict) -> Path:
        import netCDF4

        try:
            with netCDF4.Dataset(self.temporary, "a") as dataset:
                for key, value in attrs.items():
                    dataset.setncattr(key, value)
            add_netcdf_checksums(self.temporary, known=self._checksums.crcs)
            replace(self.temporary, self.path)
        except BaseException as exc:
            self.abort()
            _write_failed(self.path, exc)
            raise
        self._lock.release()
        return self.path

    def abort(self) -> None:
        remove(self.temporary)
        self._lock.release()

    def __enter__(self) -> "NetcdfBatchWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def batch_writer(path: str | os.PathLike, overwrite: bool = False) -> "ZarrBatchWriter | NetcdfBatchWriter":
    """The streaming writer for ``path``'s format (``.zarr`` or ``.nc``)."""
    return ZarrBatchWriter(path, overwrite) if output_format(path) == "zarr" else NetcdfBatchWriter(path, overwrite)


def _recover_for_reading(path: Path) -> None:
    """A replace interrupted between its two renames left no file under ``path``: put the
    previous version back (under the writer lock, so never behind a live writer)."""
    from .files import OutputLockedError

    try:
        with WriterLock(path, "restoring an interrupted replace") as lock:
            for note in [*lock.notes, *recover(path)]:
                log.warning(note)
    except (OutputLockedError, OSError):
        return


def _unverified(path: Path) -> None:
    """Say so when a cbecsim result has no checksums (a file that is not cbecsim's is left
    to the reader and the caller's checks)."""
    from .files import output_marker

    with contextlib.suppress(OSError):
        if output_marker(path) is None:
            log.warning("%s has no checksums (written by an older cbecsim): not verified", path)


def open_results(path: str | os.PathLike, verify: bool = True, load: bool = True) -> xr.Dataset:
    """Open a result saved by :func:`cbecsim.run` or ``cbecsim run --out``.

    Zarr stores open lazily (values are read when used); NetCDF files are loaded, unless
    ``load`` is False (then lazily too, the file kept open until the Dataset is closed).

    Parameters
    ----------
    path : ``.nc`` file or ``.zarr`` store (a complete sweep store opens too)
    verify : check the checksums written with the result first (default). A Zarr store's
        files are re-read once (about a second per GB); pass False to skip that for a
        store you have just verified.

    Raises
    ------
    FileNotFoundError, OutputError
        :class:`cbecsim.integrity.DamagedResultError` (an ``OutputError``) when a
        variable no longer matches its checksum, or files are missing.
    """
    path = Path(path)
    if not path.exists():
        _recover_for_reading(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such result")
    if output_format(path) == "zarr":
        attrs = json.loads((path / ".zattrs").read_text()) if (path / ".zattrs").is_file() else {}
        if "sweep_fingerprint" in attrs and (not attrs.get("complete") or not (path / CHECKSUM_FILE).exists()):
            # A sweep store still being written (or killed): reading it would give a
            # half-filled result. It is complete only once every task's chunks were
            # verified and the store's checksums written (cbecsim.sweep.store).
            raise OutputError(
                f"{path}: an incomplete sweep store (some tasks have not finished or were not verified); "
                "finish it with `cbecsim sweep SPEC --out STORE --resume`, or open it with "
                "cbecsim.sweep.open_sweep(path, allow_incomplete=True)"
            )
        if not (path / ".zmetadata").exists():
            raise OutputError(f"{path}: not a complete result store (no consolidated metadata)")
        if verify and not verify_zarr_store(path):
            _unverified(path)
        return xr.open_zarr(path, consolidated=True, chunks=None, zarr_format=ZARR_FORMAT, **DECODING)
    if verify and not verify_netcdf(path):
        _unverified(path)
    if load:
        with xr.open_dataset(path, engine="netcdf4", **DECODING) as dataset:
            opened = dataset.load()
    else:
        opened = xr.open_dataset(path, engine="netcdf4", **DECODING)
    # The checksums describe the file, not the result: drop them, as the Zarr listing is
    # a file beside the data, so an opened result has the attributes it was saved with.
    opened.attrs.pop(NETCDF_CHECKSUM_ATTRIBUTE, None)
    return opened
