"""Checksums that let a reader prove a saved result is the one that was written.

Two formats, two mechanisms:

* **Zarr** (run results and sweep stores): ``cbecsim_checksums.json`` at the store's
  root lists every file of the store (metadata and chunks) with its size and CRC-32 of
  its bytes as stored. It is written last, when the store is complete.
  :func:`verify_zarr_store` re-reads every listed file: a missing, shorter or altered
  file is reported with the variable it belongs to (the first path component). Cost:
  one read of the store's compressed bytes (about a second per GB).
* **NetCDF**: every data variable is stored with HDF5's Fletcher-32 filter (checked by
  the HDF5 library on every read, by any reader), and the global attribute
  ``cbecsim_checksums`` holds the CRC-32 of every variable's stored (raw, undecoded)
  values, coordinates included. :func:`verify_netcdf` reads each variable raw with
  netCDF4 and compares.

A mismatch raises :class:`DamagedResultError` naming the file and the variable; the CLI
turns it into exit 2 with the word "damaged".
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

from .files import OutputError, write_text_atomically

__all__ = [
    "CHECKSUM_FILE",
    "NETCDF_CHECKSUM_ATTRIBUTE",
    "DamagedResultError",
    "file_crc32",
    "zarr_checksums",
    "write_zarr_checksums",
    "verify_zarr_store",
    "verify_zarr_files",
    "netcdf_checksums",
    "add_netcdf_checksums",
    "RunningChecksums",
    "verify_netcdf",
]

CHECKSUM_FILE = "cbecsim_checksums.json"
NETCDF_CHECKSUM_ATTRIBUTE = "cbecsim_checksums"
#: Files of a sweep store that are append-only logs, not part of its data.
LOG_FILES = frozenset({"sweep_manifest.jsonl", "sweep_executions.jsonl", "sweep_failures.jsonl"})


class DamagedResultError(OutputError):
    """A saved result whose bytes no longer match the checksums written with it."""

    def __init__(self, path: str | os.PathLike, variable: str, detail: str):
        self.path = Path(path)
        self.variable = variable
        self.detail = detail
        super().__init__(f"{path}: damaged: variable {variable!r} {detail}; the result cannot be trusted "
                         "(restore it from a copy or run it again)")


def file_crc32(path: str | os.PathLike, chunk: int = 1 << 22) -> tuple[int, int]:
    """``(size in bytes, CRC-32)`` of a file's contents."""
    crc = 0
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            crc = zlib.crc32(block, crc)
            size += len(block)
    return size, crc


def _store_files(root: Path) -> Iterable[str]:
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        for name in sorted(names):
            relative = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            if relative == CHECKSUM_FILE or relative in LOG_FILES:
                continue
            yield relative


def zarr_checksums(root: str | os.PathLike) -> dict[str, list[int]]:
    """``{relative path: [size, crc32]}`` of every data and metadata file of a store."""
    root = Path(root)
    return {relative: list(file_crc32(root / relative)) for relative in _store_files(root)}


def write_zarr_checksums(root: str | os.PathLike, files: dict[str, list[int]] | None = None) -> None:
    """Write ``cbecsim_checksums.json`` (atomically) for a complete store."""
    root = Path(root)
    files = zarr_checksums(root) if files is None else files
    text = json.dumps({"algorithm": "crc32", "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files},
                      sort_keys=True)
    write_text_atomically(root / CHECKSUM_FILE, text)


def _variable_of(relative: str) -> str:
    return relative.split("/", 1)[0] if "/" in relative else f"(store metadata {relative})"


def verify_zarr_files(root: str | os.PathLike, files: dict[str, list[int]]) -> None:
    """Check that each listed file exists with its size and CRC-32; raise on the first mismatch."""
    root = Path(root)
    for relative, (size, crc) in sorted(files.items()):
        target = root / relative
        if not target.is_file():
            raise DamagedResultError(root, _variable_of(relative), f"is incomplete: its file {relative} is missing")
        found_size, found_crc = file_crc32(target)
        if found_size != size:
            raise DamagedResultError(root, _variable_of(relative),
                                     f"fails its checksum: {relative} has {found_size} bytes, {size} were written")
        if found_crc != crc:
            raise DamagedResultError(root, _variable_of(relative),
                                     f"fails its checksum: the bytes of {relative} changed after it was written")


def read_zarr_checksums(root: str | os.PathLike) -> dict[str, list[int]] | None:
    """The store's checksum listing, or None if it has none (written before checksums existed)."""
    path = Path(root) / CHECKSUM_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("algorithm") != "crc32" or not isinstance(files, dict):
            raise ValueError("unknown layout")
        return {str(k): [int(v[0]), int(v[1])] for k, v in files.items()}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DamagedResultError(root, f"(store metadata {CHECKSUM_FILE})", f"cannot be read ({exc})") from None


def expected_chunks(root: str | os.PathLike, array: str) -> list[str]:
    """Every chunk key (``name/i.j.k``) of a Zarr format 2 array, from its ``.zarray``.

    cbecsim writes every chunk (:func:`cbecsim.results.every_chunk_written`), so a complete store holds
    each of them.
    """
    import itertools
    import math

    meta = json.loads((Path(root) / array / ".zarray").read_text(encoding="utf-8"))
    counts = [max(1, math.ceil(size / chunk)) if size else 0 for size, chunk in zip(meta["shape"], meta["chunks"])]
    separator = meta.get("dimension_separator", ".")
    if not counts:
        return [f"{array}/0"]
    return [f"{array}/" + separator.join(map(str, index)) for index in itertools.product(*map(range, counts))]


def check_chunk_coverage(root: str | os.PathLike, files: dict[str, list[int]]) -> None:
    """Raise unless the checksum listing holds every chunk of every array it lists."""
    arrays = sorted(relative[: -len("/.zarray")] for relative in files if relative.endswith("/.zarray"))
    for array in arrays:
        missing = [key for key in expected_chunks(root, array) if key not in files]
        if missing:
            raise DamagedResultError(root, array, f"is incomplete: {len(missing)} of its chunks were never "
                                                  f"written (first: {missing[0]})")


def verify_zarr_store(root: str | os.PathLike) -> bool:
    """Verify every file listed in the store's checksums, and that every chunk of every
    array is listed. False if the store has no listing (written before checksums)."""
    files = read_zarr_checksums(root)
    if files is None:
        return False
    verify_zarr_files(root, files)
    check_chunk_coverage(root, files)
    return True


# --------------------------------------------------------------------------------------
# NetCDF
# --------------------------------------------------------------------------------------


def _values_bytes(values: np.ndarray, after_first: bool = False) -> bytes:
    """The bytes a variable's values are checksummed as: C-order raw bytes, or for text
    the values joined by NUL in UTF-8 (``after_first``: a continuation block, which
    starts with the NUL that joins it to the block before)."""
    if values.dtype == object or values.dtype.kind in "US":
        text = "\x00".join(str(v) for v in np.asarray(values).ravel())
        return (("\x00" if after_first else "") + text).encode("utf-8")
    return np.ascontiguousarray(np.asarray(values)).tobytes()


def _raw_crc(variable) -> int:
    """CRC-32 of a netCDF4 variable's stored values (auto mask/scale off)."""
    variable.set_auto_maskandscale(False)
    return zlib.crc32(_values_bytes(variable[...]))


class RunningChecksums:
    """The CRC-32 of variables written block by block along their first axis.

    A NetCDF file streamed along ``replication`` (its first dim) holds each variable's
    values in C order as the blocks concatenated, so the checksum of the whole variable
    is the CRC-32 carried over the blocks' bytes: the file need not be read back to
    checksum it. :meth:`add` takes the values exactly as stored (CF-encoded).
    """

    def __init__(self) -> None:
        self.crcs: dict[str, int] = {}

    def add(self, name: str, stored_values: np.ndarray) -> None:
        started = name in self.crcs
        self.crcs[name] = zlib.crc32(_values_bytes(stored_values, after_first=started), self.crcs.get(name, 0))


def netcdf_checksums(path: str | os.PathLike, skip: Iterable[str] = ()) -> dict[str, int]:
    """``{variable: crc32}`` of every variable of a NetCDF file, as stored (but those in ``skip``)."""
    import netCDF4

    skipped = set(skip)
    with netCDF4.Dataset(path, "r") as dataset:
        return {name: _raw_crc(variable) for name, variable in sorted(dataset.variables.items())
                if name not in skipped}


def add_netcdf_checksums(path: str | os.PathLike, known: dict[str, int] | None = None) -> None:
    """Store the checksum of every variable in the file's ``cbecsim_checksums`` global
    attribute: those in ``known`` as given (computed while writing, see
    :class:`RunningChecksums`), the others read from the file."""
    import netCDF4

    known = dict(known or {})
    checksums = {**netcdf_checksums(path, skip=known), **known}
    with netCDF4.Dataset(path, "a") as dataset:
        missing = set(known) - set(dataset.variables)
        if missing:  # pragma: no cover - a writer bug, never a user's input
            raise ValueError(f"{path}: checksums given for variables not in the file: {sorted(missing)}")
        dataset.setncattr(NETCDF_CHECKSUM_ATTRIBUTE, json.dumps(checksums, sort_keys=True))


def verify_netcdf(path: str | os.PathLike) -> bool:
    """Read every variable raw and compare with the stored checksums; raise if damaged.

    Returns False for a file without checksums (written before they existed, or not by
    cbecsim) or without a NetCDF signature. A read
    error (HDF5's Fletcher-32 check failing, a damaged chunk) is reported as damage of
    that variable.
    """
    import netCDF4

    with open(path, "rb") as handle:
        signature = handle.read(8)
    if signature != b"\x89HDF\r\n\x1a\n" and signature[:3] != b"CDF":
        return False  # not a NetCDF file at all: the reader says so
    try:
        dataset = netCDF4.Dataset(path, "r")
    except OSError as exc:
        raise DamagedResultError(path, "(file structure)", f"cannot be opened ({exc})") from None
    with dataset:
        try:
            stored = json.loads(dataset.getncattr(NETCDF_CHECKSUM_ATTRIBUTE))
        except AttributeError:
            return False
        except ValueError:
            raise DamagedResultError(path, f"(attribute {NETCDF_CHECKSUM_ATTRIBUTE})", "cannot be read") from None
        for name in sorted(stored):
            if name not in dataset.variables:
                raise DamagedResultError(path, name, "is missing")
            try:
                crc = _raw_crc(dataset.variables[name])
            except (RuntimeError, OSError, ValueError) as exc:
                raise DamagedResultError(path, name, f"cannot be read ({exc})") from None
            if crc != int(stored[name]):
                raise DamagedResultError(path, name, "fails its checksum: its stored values changed after "
                                                     "they were written")
    return True
