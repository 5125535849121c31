"""What writing a result to NetCDF costs, by compression setting: seconds to write and
to read back, and the file's size.

Simulates ``--replications`` replications of configs/eu_fixed_duty_2026.yaml at
``--resolution`` once, in memory, then writes the listing variables (dims replication,
time, seller, market; float and integer) with each setting, in chunks of
``cbecsim.results.NETCDF_CHUNK_REPLICATIONS`` replications, medians of ``--repeats``
writes. The settings compared are deflate (zlib, which every NetCDF-4 reader has) at
level 1 with and without the shuffle filter, with Fletcher-32 as cbecsim writes it, and
no compression as the floor; cbecsim's own setting is
:data:`cbecsim.results.NETCDF_COMPRESSION`.

Usage: python benchmarks/netcdf_write.py [--replications 200] [--resolution week] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import xarray as xr

import cbecsim
from cbecsim.results import NETCDF_CHUNK_REPLICATIONS, NETCDF_COMPRESSION

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "eu_fixed_duty_2026.yaml"
SETTINGS = {
    "zlib 1 + shuffle": {"zlib": True, "complevel": 1, "shuffle": True},
    "zlib 1": {"zlib": True, "complevel": 1, "shuffle": False},
    "none": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--resolution", default="week")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = cbecsim.run(CONFIG, replications=args.replications, seed=1, resolution=args.resolution)
    names = [name for name, variable in result.data_vars.items()
             if variable.dims == ("replication", "time", "seller", "market") and variable.dtype.kind in "fi"]
    listing = result[names]
    listing.attrs = {}
    raw = sum(listing[name].nbytes for name in names)
    print(f"{len(names)} listing variables of {args.replications} replications at {args.resolution} resolution: "
          f"{raw / 2**20:.0f} MiB in memory; median of {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="cbecsim-netcdf-") as folder:
        path = Path(folder) / "listing.nc"
        for label, options in SETTINGS.items():
            chunks = {name: (min(NETCDF_CHUNK_REPLICATIONS, args.replications),) + listing[name].shape[1:]
                      for name in names}
            encoding = {name: dict(options, fletcher32=True, chunksizes=chunks[name]) for name in names}
            writes, reads = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                listing.to_netcdf(path, engine="netcdf4", encoding=encoding)
                writes.append(time.perf_counter() - start)
                start = time.perf_counter()
                with xr.open_dataset(path, engine="netcdf4") as opened:
                    opened.load()
                reads.append(time.perf_counter() - start)
            ours = " (cbecsim's)" if options == NETCDF_COMPRESSION else ""
            print(f"  {label + ours:28s} write {statistics.median(writes):6.2f} s   "
                  f"read {statistics.median(reads):6.2f} s   file {path.stat().st_size / 2**20:7.1f} MiB")


if __name__ == "__main__":
    main()
