"""Labelled outputs: the one module that builds result :class:`xarray.Dataset` objects.

Dimensions: ``replication``, ``time`` (start of each output period), ``seller`` and
``market``. Money is USD; every variable carries ``units`` and ``description``
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

import numpy as np
import xarray as xr

from .compile import CompiledScenario
from .engine import BatchOutput
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
from .integrity import CHECKSUM_FILE, NETCDF_CHECKSUM_ATTRIBUTE, add_netcdf_checksums, verify_netcdf, verify_zarr_store, write_zarr_checksums
from .kernels import layout as L

__all__ = [
    "VARIABLES",
    "batch_dataset",
    "InMemoryCollector",
    "save_dataset",
    "open_results",
    "ZarrBatchWriter",
    "output_format",
    "OutputError",
    "claim_output",
]

log = logging.getLogger("cbecsim.results")

SM = ("replication", "time", "seller", "market")
S = ("replication", "time", "seller")
M = ("replication", "time", "market")

#: name -> (dims, units, dtype, description)
VARIABLES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "revenue": (SM, "USD", "float64", "sales revenue net of VAT in the period"),
    "units_sold": (SM, "units", "int32", "units sold in the period"),
    "lost_sales": (SM, "units", "int32", "units demanded but out of stock in the period"),
    "ad_spend": (SM, "USD", "float64", "sponsored-ad spend in the period"),
    "duty_paid": (SM, "USD", "float64", "customs duty paid in the period (parcels at sale, bulk imports on arrival)"),
    "landed_cost": (SM, "USD/unit", "float64",
                    "landed cost per unit (unit cost + freight + duty + handling) under the regime, price and "
                    "fulfilment mode of each day, averaged over the days the seller traded; NaN after exit"),
    "cm2": (SM, "USD", "float64",
            "contribution margin after ads: revenue - units x (landed cost + referral + fulfilment fees) - ad spend"),
    "visibility": (SM, "1", "float32",
                   "seller's share of all attention (organic + sponsored) in the market, mean over the period"),
    "organic_share": (SM, "1", "float32", "share of units sold attributed to organic attention; NaN with no sales"),
    "stock": (SM, "units", "int32", "stock on hand at the end of the period"),
    "clicks": (SM, "1", "int32", "sponsored-ad clicks in the period"),
    "cash": (S, "USD", "float64", "cash at the end of the period"),
    "alive": (S, "1", "bool", "seller still trading at the end of the period"),
    "costs": (S, "USD", "float64",
              "all cash paid out in the period (stock, freight, duty, fees, ads, fixed costs)"),
    "shoppers": (M, "1", "int32", "shoppers arriving in the market in the period"),
    # --- model layers (issue 7): the seed paper's Table 4 KPIs and what they are built from
    "returns": (SM, "units", "int32", "units returned in the period (refunded; restocked at factory cost)"),
    "return_rate": (SM, "1", "float32", "returns / units sold in the period; NaN with no sales"),
    "refunds": (SM, "USD", "float64", "price refunded on returns in the period (booked in costs, not revenue)"),
    "rating": (S, "stars", "float32",
               "star rating (1..5) at the end of the period; moves with returns and delivery time"),
    "listing_interruptions": (SM, "1", "int32", "compliance incidents that took the listing down, started in the period"),
    "interrupted_days": (SM, "days", "int32", "days the listing was down after a compliance incident"),
    "listed_days": (SM, "days", "int32", "days the live seller listed in the market"),
    "repeat_purchase_rate": (SM, "1", "float32",
                             "share of units sold in the period bought by returning customers (marketplace "
                             "and DTC); NaN with no sales"),
    "repeat_revenue": (SM, "USD", "float64", "revenue from returning customers' purchases in the period"),
    "new_customers": (SM, "1", "int32", "first purchases in the period, marketplace and DTC (one customer each)"),
    "dtc_new_customers": (SM, "1", "int32", "first purchases through the DTC channel in the period"),
    "customers": (SM, "1", "int32", "customers (marketplace + DTC) not yet lapsed at the end of the period"),
    "ltv": (SM, "USD/customer", "float64",
            "realised lifetime value to date: cumulative (first-purchase + repeat) revenue / cumulative new "
            "customers, from the start to the period end; NaN before the first customer"),
    "acquisition_spend": (SM, "USD", "float64", "sponsored-ad spend + DTC paid acquisition (CAC x new DTC customers)"),
    "cac": (SM, "USD/customer", "float64",
            "blended customer acquisition cost: acquisition_spend / new_customers in the period; NaN with none"),
    "dtc_revenue": (SM, "USD", "float64", "revenue through the DTC channel (own site / social), net of VAT"),
    "dtc_units": (SM, "units", "int32", "units sold through the DTC channel"),
    "top_market_share": (S, "1", "float32",
                         "largest market's share of the seller's revenue in the period; NaN with no revenue"),
    "delivery_days": (SM, "days", "float32", "mean delivery time of the units sold in the period; NaN with no sales"),
    "capability_costs": (S, "USD", "float64",
                         "localisation, compliance, CM2/LTV analytics and market-research costs in the period "
                         "(included in costs)"),
}

_SM_COLUMNS = {
    "revenue": L.O_REVENUE,
    "units_sold": L.O_UNITS,
    "lost_sales": L.O_LOST,
    "ad_spend": L.O_AD_SPEND,
    "duty_paid": L.O_DUTY,
    "cm2": L.O_CM2,
    "stock": L.O_STOCK,
    "clicks": L.O_CLICKS,
    "returns": L.O_RETURNS,
    "refunds": L.O_REFUNDS,
    "listing_interruptions": L.O_INCIDENTS,
    "interrupted_days": L.O_INTERRUPTED_DAYS,
    "listed_days": L.O_LISTED_DAYS,
    "repeat_revenue": L.O_REPEAT_REVENUE,
    "new_customers": L.O_NEW_CUSTOMERS,
    "dtc_new_customers": L.O_DTC_NEW_CUSTOMERS,
    "customers": L.O_CUSTOMERS,
    "dtc_revenue": L.O_DTC_REVENUE,
    "dtc_units": L.O_DTC_UNITS,
}


#: Zarr format 2: its fixed-width string and consolidated-metadata encodings are
#: specified and read by every Zarr implementation (format 3 warns about both).
ZARR_FORMAT = 2

#: How results are decoded on reading: variables in ``days`` (listed_days, delivery_days,
#: ...) stay numbers; xarray before 2025.x would turn them into timedeltas.
DECODING = {"decode_timedelta": False}


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


def _mean_over_days(total: np.ndarray, days: np.ndarray) -> np.ndarray:
    return np.divide(total, days, out=np.full(total.shape, np.nan), where=days > 0)


def batch_dataset(compiled: CompiledScenario, batch: BatchOutput) -> xr.Dataset:
    """A labelled Dataset of one batch's replications (no provenance attributes).

    Float64 variables are views into the batch's buffers: write or copy the Dataset
    before the next batch runs.
    """
    sm, s, m = batch.seller_market, batch.seller, batch.market
    data: dict[str, np.ndarray] = {name: sm[..., column] for name, column in _SM_COLUMNS.items()}
    days = sm[..., L.O_DAYS]
    data["landed_cost"] = _mean_over_days(sm[..., L.O_LANDED_COST], days)
    # Mean over the period's days (not the seller's trading days), so the shares of a
    # market's sellers sum to at most 1 even when one exits part-way through a period.
    period_days = np.bincount(compiled.period_of_day, minlength=compiled.n_periods).astype(float)
    data["visibility"] = sm[..., L.O_VISIBILITY] / period_days[:, None, None]  # every period has >= 1 day
    data["organic_share"] = _mean_over_days(sm[..., L.O_ORGANIC_UNITS], sm[..., L.O_UNITS])
    data["cash"] = s[..., L.OS_CASH]
    data["alive"] = s[..., L.OS_ALIVE] > 0.5
    data["costs"] = s[..., L.OS_COSTS]
    data["shoppers"] = m[..., L.OM_SHOPPERS]
    units = sm[..., L.O_UNITS]
    data["return_rate"] = _mean_over_days(sm[..., L.O_RETURNS], units)
    data["repeat_purchase_rate"] = _mean_over_days(sm[..., L.O_REPEAT_UNITS], units)
    data["delivery_days"] = _mean_over_days(sm[..., L.O_DELIVERY_UNIT_DAYS], units)
    data["rating"] = s[..., L.OS_RATING]
    data["capability_costs"] = s[..., L.OS_CAPABILITY_COSTS]
    acquisition = sm[..., L.O_AD_SPEND] + sm[..., L.O_DTC_ACQUISITION]
    data["acquisition_spend"] = acquisition
    data["cac"] = _mean_over_days(acquisition, sm[..., L.O_NEW_CUSTOMERS])
    data["ltv"] = _mean_over_days(
        np.cumsum(sm[..., L.O_REVENUE], axis=1), np.cumsum(sm[..., L.O_NEW_CUSTOMERS], axis=1)
    )
    revenue = sm[..., L.O_REVENUE]
    seller_revenue = revenue.sum(axis=-1)
    data["top_market_share"] = _mean_over_days(revenue.max(axis=-1), seller_revenue)

    variables = {}
    for name, (dims, units, dtype, description) in VARIABLES.items():
        # No copy where the dtype already matches: the writers consume the batch before
        # the engine reuses its buffers, and every pass over fresh memory costs page faults.
        variables[name] = xr.Variable(
            dims, data[name].astype(dtype, copy=False), {"units": units, "description": description}
        )

    exit_dates = np.where(
        batch.exit_day >= 0,
        compiled.dates.values[0] + batch.exit_day.astype("timedelta64[D]"),
        np.datetime64("NaT"),
    ).astype("datetime64[ns]")
    variables["exit_day"] = xr.Variable(
        ("replication", "seller"), exit_dates,
        {"description": "day the seller exited (cash below its credit line); NaT if it survived "
                        "the horizon (censored)"},
    )
    variables["initial_cash"] = xr.Variable(
        ("replication", "seller"), batch.initial_cash.copy(), {"units": "USD", "description": "cash on day 0"}
    )
    n_batch = sm.shape[0]
    return xr.Dataset(variables, coords=_coords(compiled, batch.replication0, n_batch))


def _coords(compiled: CompiledScenario, replication0: int, n_batch: int) -> dict:
    scenario = compiled.scenario
    populations = compiled.seller_population
    home = [
        compiled.market_names[int(np.argmax(row))] if row.any() else ""
        for row in compiled.seller_served
    ]
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
        "region": ("market", np.array([m.region for m in scenario.markets], dtype=str)),
        "category": ("market", np.array([m.category for m in scenario.markets], dtype=str)),
        "served": (("seller", "market"), compiled.seller_served.copy(),
                   {"description": "the seller's population lists in this market"}),
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
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True,
        timeout=5, check=False,
    ).stdout.strip()
    return revision + ("-dirty" if dirty else "")


def provenance(compiled: CompiledScenario, seed: int, replications: int) -> dict[str, str | int]:
    """Dataset attributes that make a result traceable and re-runnable."""
    from . import __version__

    config = compiled.scenario.model_dump(mode="json")
    config["seed"] = seed
    config["replications"] = replications
    return {
        "title": f"cbecsim run of scenario {compiled.scenario.name!r}",
        "scenario": compiled.scenario.name,
        "config": json.dumps(config, sort_keys=True),
        # The regimes as applied: the policy library's changes for `policy` then the
        # config's own, so a result stays re-runnable if the library is updated later
        # (use it as duty_schedule with policy: []).
        "duty_schedule_effective": json.dumps(
            [change.model_dump(mode="json", exclude_none=True) for change in compiled.scenario.effective_duty_schedule],
            sort_keys=True,
        ),
        "seed": int(seed),
        "replications": int(replications),
        "resolution": compiled.resolution,
        "cbecsim_version": __version__,
        "git_revision": git_revision(),
        "money_units": "USD (market-currency amounts converted at the day's rate: the scenario's currency_rates, "
                       "or its FX paths where fx_volatility or fx_series is set)",
    }


class InMemoryCollector:
    """Collect batch Datasets into preallocated full-size arrays (one copy, no concat).

    Holds replications ``first .. first + replications - 1``.
    """

    def __init__(self, replications: int, first: int = 0):
        self.replications = replications
        self.first = first
        self._template: xr.Dataset | None = None
        self._arrays: dict[str, np.ndarray] = {}

    def write(self, batch: xr.Dataset) -> None:
        first = int(batch["replication"].values[0]) - self.first
        if self._template is None:
            self._template = batch.isel(replication=slice(0, 0))
            for name, variable in batch.data_vars.items():
                self._arrays[name] = np.empty((self.replications,) + variable.shape[1:], dtype=variable.dtype)
        for name, variable in batch.data_vars.items():
            self._arrays[name][first:first + variable.shape[0]] = variable.values

    def close(self, attrs: dict) -> xr.Dataset:
        template = self._template
        coords = {name: coord.variable for name, coord in template.coords.items() if "replication" not in coord.dims}
        coords["replication"] = ("replication", np.arange(self.first, self.first + self.replications, dtype=np.int64))
        variables = {
            name: xr.Variable(template[name].dims, self._arrays[name], template[name].attrs)
            for name in template.data_vars
        }
        return xr.Dataset(variables, coords=coords, attrs=attrs)


#: Exit dates are stored as float days so that NaT (survived) round-trips in NetCDF and Zarr.
EXIT_DAY_ENCODING = {"units": "days since 1970-01-01", "dtype": "float64"}


def _encoding(dataset: xr.Dataset | None = None) -> dict:
    """exit_day as float days; with ``dataset`` (NetCDF), Fletcher-32 on every data variable."""
    encoding: dict[str, dict] = {"exit_day": dict(EXIT_DAY_ENCODING)}
    if dataset is not None:
        for name in dataset.data_vars:
            encoding.setdefault(name, {})["fletcher32"] = True
    return encoding


def _write_failed(path: Path, exc: BaseException) -> None:
    """Turn a full disk or an unwritable folder into an OutputError that says so."""
    import errno

    code = getattr(exc, "errno", None)
    text = str(exc)
    full = code == errno.ENOSPC or "No space left" in text or "HDF error" in text or "NetCDF: Write" in text
    if full:
        from .files import format_bytes

        try:
            free = os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize
        except OSError:  # pragma: no cover
            free = -1
        if code == errno.ENOSPC or free < 1 << 20:
            raise OutputError(f"{path}: no space left on device while writing it ({format_bytes(max(free, 0))} "
                              "free); the partial output was removed and any previous version is untouched") from None
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
                    dataset.to_zarr(temporary, mode="w", encoding=_encoding(), consolidated=True,
                                    zarr_format=ZARR_FORMAT)
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
            batch.to_zarr(self.temporary, mode="w", encoding=_encoding(), consolidated=False,
                          zarr_format=ZARR_FORMAT)
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


def open_results(path: str | os.PathLike, verify: bool = True) -> xr.Dataset:
    """Open a result saved by :func:`cbecsim.run` or ``cbecsim run --out``.

    Zarr stores open lazily (values are read when used); NetCDF files are loaded.

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
    with xr.open_dataset(path, engine="netcdf4", **DECODING) as dataset:
        loaded = dataset.load()
    # The checksums describe the file, not the result: drop them, as the Zarr listing is
    # a file beside the data, so an opened result has the attributes it was saved with.
    loaded.attrs.pop(NETCDF_CHECKSUM_ATTRIBUTE, None)
    return loaded

