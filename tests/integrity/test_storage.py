"""Saving and opening results: formats, atomic writes, overwrite rules, resolutions."""

import numpy as np
import pytest
import xarray as xr

import cbecsim
from cbecsim.results import VARIABLES, OutputError
from helpers import CONFIGS, cli, short


@pytest.fixture(scope="module")
def scenario():
    return short(days=35)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_keeps_data_units_and_provenance(tmp_path, scenario, suffix):
    path = tmp_path / f"result{suffix}"
    result = cbecsim.run(scenario, replications=5, seed=1, batch_size=2, out=path)
    opened = cbecsim.open_results(path)
    memory = cbecsim.run(scenario, replications=5, seed=1)
    xr.testing.assert_identical(opened[list(VARIABLES)].load(), memory[list(VARIABLES)])
    np.testing.assert_array_equal(opened["exit_day"].values, memory["exit_day"].values)
    for name, (_, units, _, _) in VARIABLES.items():
        assert opened[name].attrs["units"] == units
    assert opened.attrs["seed"] == 1 and opened.attrs["replications"] == 5
    assert "cbecsim_version" in opened.attrs and "git_revision" in opened.attrs
    reloaded = cbecsim.load_scenario(__import__("json").loads(opened.attrs["config"]))
    assert reloaded.horizon == scenario.horizon
    assert result.sizes == opened.sizes
    # Nothing but the final file/store is left behind.
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("load", [True, False])
def test_nc_result_returned_equals_the_file_and_its_checksums_are_the_stored_values(tmp_path, scenario, load):
    # load=True returns the arrays the file was written from (not read back) and the
    # checksums are carried over the batches as they are written: both must agree with
    # the file itself, read back from scratch, over several batches and a short last one.
    import json

    import netCDF4

    from cbecsim.integrity import NETCDF_CHECKSUM_ATTRIBUTE, netcdf_checksums, verify_netcdf

    path = tmp_path / "result.nc"
    with cbecsim.run(scenario, replications=7, seed=3, batch_size=3, threads=2, out=path, load=load) as lazy:
        # Read it all and close the file first: netCDF-C crashes reopening a file this
        # process still holds open after another handle of it was closed.
        returned = lazy.load()
    assert verify_netcdf(path)
    with netCDF4.Dataset(path) as dataset:
        stored = json.loads(dataset.getncattr(NETCDF_CHECKSUM_ATTRIBUTE))
    assert stored == netcdf_checksums(path) and len(stored) == len(returned.variables)
    xr.testing.assert_identical(returned, cbecsim.open_results(path, load=True))
    xr.testing.assert_identical(returned, cbecsim.run(scenario, replications=7, seed=3).assign_attrs(returned.attrs))


def test_refuses_to_overwrite_unless_asked(tmp_path, scenario):
    path = tmp_path / "result.nc"
    cbecsim.run(scenario, replications=1, out=path)
    before = path.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        cbecsim.run(scenario, replications=1, seed=99, out=path)
    assert path.read_bytes() == before
    cbecsim.run(scenario, replications=1, seed=99, out=path, overwrite=True)
    assert path.read_bytes() != before


def test_bad_output_suffix_is_refused_before_work(tmp_path, scenario):
    with pytest.raises(OutputError, match=".nc"):
        cbecsim.run(scenario, replications=1, out=tmp_path / "result.csv")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_interrupted_run_leaves_nothing_under_the_final_name(tmp_path, scenario, suffix):
    path = tmp_path / f"result{suffix}"

    def interrupt(done, total):
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cbecsim.run(scenario, replications=6, batch_size=2, out=path, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("resolution", ["week", "month"])
def test_coarser_resolution_aggregates_the_daily_paths(scenario, resolution):
    daily = cbecsim.run(scenario, replications=2, seed=8)
    coarse = cbecsim.run(scenario, replications=2, seed=8, resolution=resolution)
    period = np.searchsorted(coarse["time"].values, daily["time"].values, side="right") - 1
    grouped = daily.assign_coords(period=("time", period)).groupby("period")
    for name in ("revenue", "units_sold", "ad_spend", "duty_paid", "cm2", "costs", "shoppers"):
        summed = grouped.sum()[name].rename(period="time")
        np.testing.assert_allclose(summed.transpose(*coarse[name].dims).values, coarse[name].values,
                                   rtol=1e-12, atol=1e-9, err_msg=name)
    last = daily.isel(time=[int(np.flatnonzero(period == p)[-1]) for p in range(coarse.sizes["time"])])
    for name in ("cash", "alive", "stock"):
        np.testing.assert_array_equal(last[name].values, coarse[name].values, err_msg=name)


def test_cli_run_end_to_end(tmp_path):
    out = tmp_path / "us.nc"
    result = cli("run", str(CONFIGS / "us_de_minimis_2025.yaml"), "-n", "2", "--set", "horizon.end=2025-03-31",
                 "--resolution", "week", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "traffic_first" in result.stdout and "survival" in result.stdout
    opened = cbecsim.open_results(out)
    assert opened.sizes["replication"] == 2 and opened.attrs["resolution"] == "week"
    again = cli("run", str(CONFIGS / "us_de_minimis_2025.yaml"), "-n", "2", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
