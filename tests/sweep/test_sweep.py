"""Parameter sweeps: designs, spec validation, executors (local pool at 1 and 2
workers, a real Dask cluster on loopback), kill-and-resume, retries, summary-only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

import cbecsim
from cbecsim.sweep import (
    SUMMARY_VARIABLES,
    IncompleteSweepError,
    SweepTaskError,
    build_design,
    open_sweep,
    read_manifest,
    run_sweep,
)
from cbecsim.sweep.store import read_executions
from helpers import CONFIGS, ROOT, TESTS, cli, short

DATA_VARIABLES = list(cbecsim.VARIABLES) + ["exit_day", "initial_cash"]


def _write_base(folder: Path, **overrides) -> Path:
    """A tiny base scenario: 60 days, 3 + 2 + 2 sellers."""
    scenario = short(days=60, sellers__0__count=3, sellers__1__count=2, sellers__2__count=2, **overrides)
    path = folder / "base.yaml"
    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True)))
    return path


def _write_spec(folder: Path, name: str = "spec.yaml", **fields) -> Path:
    spec = {
        "name": "tiny",
        "base": "base.yaml",
        "factors": [
            {"name": "us_duty", "path": "duty_schedule.1.set.ad_valorem_rate", "levels": [0.25, 1.0]},
            {"name": "third_strategy", "path": "sellers.2.strategy", "levels": ["diversified", "traffic_first"]},
            {"name": "reserve", "path": "markets.US/charging.reserve_price", "levels": [0.1, 0.4]},
        ],
        "design": "grid",
        "replications": 4,
        "seed": 5,
        "resolution": "month",
        "points_per_task": 1,
        "replications_per_task": 2,
    }
    spec.update(fields)
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def _data(dataset: xr.Dataset) -> xr.Dataset:
    return dataset[DATA_VARIABLES].drop_attrs(deep=False).load()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    _write_base(folder)
    _write_spec(folder)
    return folder


@pytest.fixture(scope="module")
def reference(folder) -> xr.Dataset:
    """The tiny sweep on one local worker process: the reference every other run must equal."""
    outcome = run_sweep(folder / "spec.yaml", folder / "one_worker.zarr", workers=1)
    assert outcome.complete and outcome.ran == outcome.tasks == 16
    return open_sweep(folder / "one_worker.zarr")


# --- designs ------------------------------------------------------------------------


def _spec(**fields):
    base = {"base": "b.yaml", "factors": [], "replications": 1}
    base.update(fields)
    from cbecsim.sweep.spec import SweepSpec

    return SweepSpec.model_validate(base)


def test_grid_has_one_point_per_combination_of_levels():
    spec = _spec(factors=[{"path": "a.x", "levels": [1, 2, 3]}, {"path": "b", "levels": ["p", "q"]},
                          {"path": "c", "levels": [True, False]}])
    design = build_design(spec, seed=1)
    assert design.n_points == 3 * 2 * 2
    assert len(set(design.values)) == 12
    assert design.values[0] == (1, "p", True) and design.values[1] == (1, "p", False)


@pytest.mark.parametrize("kind", ["lhs", "sobol"])
def test_sampled_points_are_inside_their_ranges_and_reproducible(kind):
    factors = [
        {"name": "u", "path": "a", "min": -1.0, "max": 3.0},
        {"name": "lu", "path": "b", "min": 0.01, "max": 100.0, "distribution": "loguniform"},
        {"name": "i", "path": "c", "min": 2, "max": 5, "distribution": "integer"},
        {"name": "lev", "path": "d", "levels": ["x", "y", "z"]},
    ]
    spec = _spec(design=kind, points=16, factors=factors)
    design = build_design(spec, seed=42)
    expected = 16 * (4 + 2) if kind == "sobol" else 16
    assert design.n_points == expected
    u, lu, i, lev = (np.array([row[k] for row in design.values], dtype=object) for k in range(4))
    assert all(-1.0 <= v <= 3.0 for v in u) and all(0.01 <= v <= 100.0 for v in lu)
    assert set(i) <= {2, 3, 4, 5} and all(isinstance(v, int) for v in i)
    assert set(lev) <= {"x", "y", "z"}
    if kind == "lhs":  # one point per stratum of each column
        strata = np.floor(design.unit * 16).astype(int)
        for column in strata.T:
            assert sorted(column) == list(range(16))
        assert set(i) == {2, 3, 4, 5} and set(lev) == {"x", "y", "z"}
    assert build_design(spec, seed=42).values == design.values
    assert build_design(spec, seed=43).values != design.values


def test_sobol_points_are_what_salib_analysis_consumes():
    from SALib.analyze import sobol

    spec = _spec(design="sobol", points=64, factors=[
        {"name": "a", "path": "a", "min": 0.0, "max": 1.0}, {"name": "b", "path": "b", "min": 0.0, "max": 1.0}])
    design = build_design(spec, seed=3)
    a, b = (np.array([row[k] for row in design.values]) for k in range(2))
    indices = sobol.analyze(design.salib_problem, 5 * a + 0.1 * b, calc_second_order=False, seed=1)
    assert indices["S1"][0] > 0.9 and indices["S1"][1] < 0.05


# --- spec validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "factor, expected",
    [
        (
            {"path": "markets.US/charging.shopers_per_day", "levels": [1000]},
            "factors.0.levels.0: markets.US/charging.shopers_per_day = 1000: markets.0.shopers_per_day: unknown key",
        ),
        ({"path": "duty_schedule.1.set.ad_valorem_rate", "levels": []}, "factors.0: levels is empty"),
        (
            {"path": "duty_schedule.1.set.ad_valorem_rate", "min": 0.5, "max": 0.1},
            "min (0.5) is greater than max (0.1)",
        ),
        ({"path": "duty_schedule.9.set.ad_valorem_rate", "levels": [0.1]}, "index 9 out of range"),
        ({"path": "markets.US/charging.vat_rate", "levels": [0.2, 2.0]}, "factors.0.levels.1: "),
        ({"path": "sellers.0.count", "levels": [3, 5]}, "every point of a sweep must share"),
        ({"path": "seed", "levels": [1, 2]}, "cannot be a factor"),
    ],
)
def test_bad_spec_exits_2_with_the_path_and_creates_nothing(tmp_path, factor, expected):
    _write_base(tmp_path)
    design = {"design": "lhs", "points": 4} if "min" in factor else {}
    spec = _write_spec(tmp_path, factors=[factor], **design)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("sweep", str(spec), "--out", str(tmp_path / "out.zarr"))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert all(line.startswith("error: ") for line in result.stderr.strip().splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_dry_run_prints_the_design_and_creates_nothing(tmp_path):
    _write_base(tmp_path)
    spec = _write_spec(tmp_path)
    result = cli("sweep", str(spec), "--out", str(tmp_path / "out.zarr"), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "8 points" in result.stdout and "tasks: 16" in result.stdout
    assert "seller-market-days" in result.stdout and "traffic_first" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.yaml", "spec.yaml"]


def test_existing_output_is_refused_unless_resume_or_overwrite(folder, reference, tmp_path):
    result = cli("sweep", str(folder / "spec.yaml"), "--out", str(folder / "one_worker.zarr"))
    assert result.returncode == 2 and "already exists" in result.stderr
    result = cli("sweep", str(folder / "spec.yaml"), "--out", str(folder / "one_worker.zarr"), "--resume")
    assert result.returncode == 0 and "already complete" in result.stdout
    other = _write_spec(folder, name="other.yaml", seed=6)
    result = cli("sweep", str(other), "--out", str(folder / "one_worker.zarr"), "--resume")
    assert result.returncode == 2 and "different sweep spec" in result.stderr


# --- results ------------------------------------------------------------------------


def test_each_point_equals_a_single_run_and_replications_share_shocks(folder, reference):
    assert dict(reference.sizes) == {"scenario": 8, "replication": 4, "time": 3, "seller": 7, "market": 3}
    assert reference.attrs["complete"] and reference.attrs["design"] == "grid"
    for name, (_, units, _, _) in cbecsim.VARIABLES.items():
        assert reference[name].attrs["units"] == units and reference[name].dims[0] == "scenario"
    point = reference.isel(scenario=7)  # us_duty 1.0, traffic_first, reserve 0.4
    assert (float(point.us_duty), str(point.third_strategy.values), float(point.reserve)) == (1.0, "traffic_first", 0.4)
    scenario = cbecsim.load_scenario(
        folder / "base.yaml",
        {
            "duty_schedule.1.set.ad_valorem_rate": 1.0,
            "sellers.2.strategy": "traffic_first",
            "markets.US/charging.reserve_price": 0.4,
        },
    )
    single = cbecsim.run(scenario, replications=4, seed=5, resolution="month")
    xr.testing.assert_identical(
        point[DATA_VARIABLES].reset_coords(drop=True).drop_attrs(deep=False).load(),
        single[DATA_VARIABLES].reset_coords(drop=True).drop_attrs(deep=False),
    )
    # The population whose strategy is a factor: strategy varies along scenario.
    assert reference["strategy"].dims == ("scenario", "seller")
    assert set(reference["strategy"].isel(seller=-1).values) == {"diversified", "traffic_first"}
    # Common random numbers: shopper arrivals depend on (seed, replication, day, market) only.
    shoppers = reference["shoppers"].values
    assert (shoppers == shoppers[:1]).all()
    assert not (shoppers[:, :1] == shoppers[:, 1:2]).all()


def test_two_workers_give_identical_results(folder, reference):
    run_sweep(folder / "spec.yaml", folder / "two_workers.zarr", workers=2)
    xr.testing.assert_identical(_data(open_sweep(folder / "two_workers.zarr")), _data(reference))


@pytest.fixture
def dask_cluster(tmp_path):
    """A real dask.distributed scheduler and two single-threaded worker processes on loopback."""
    scheduler_file = tmp_path / "scheduler.json"
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    processes = [
        subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--scheduler-file",
                str(scheduler_file),
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    ]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert scheduler_file.exists(), "dask scheduler did not start"
        for _ in range(2):  # two worker processes, one thread each
            processes.append(
                subprocess.Popen(
                    [
                        str(bin_dir / "dask"),
                        "worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--no-nanny",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_real_dask_cluster_gives_identical_results(folder, reference, dask_cluster):
    assert dask_cluster.startswith("tcp://127.0.0.1:")
    result = cli(
        "sweep", str(folder / "spec.yaml"), "--out", str(folder / "dask.zarr"), "--scheduler", dask_cluster, "--quiet"
    )
    assert result.returncode == 0, result.stderr
    xr.testing.assert_identical(_data(open_sweep(folder / "dask.zarr")), _data(reference))
    pids = {record["pid"] for record in read_manifest(folder / "dask.zarr").values()}
    assert len(pids) == 2  # both dask worker processes ran tasks


def test_killed_sweep_resumes_to_the_same_store_without_redoing_finished_tasks(folder, reference):
    out = folder / "killed.zarr"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cbecsim.cli",
            "sweep",
            str(folder / "spec.yaml"),
            "--out",
            str(out),
            "--workers",
            "1",
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    finished: dict = {}
    while time.time() < deadline and parent.poll() is None:
        finished = read_manifest(out) if out.exists() else {}
        if len(finished) >= 3:
            break
        time.sleep(0.005)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stderr.close()
    finished = read_manifest(out)
    assert 3 <= len(finished) < 16, f"kill came too late or too early: {len(finished)} tasks done"
    with pytest.raises(IncompleteSweepError, match="--resume"):
        open_sweep(out)
    with pytest.raises(cbecsim.OutputError, match="incomplete sweep store"):
        cbecsim.open_results(out)
    time.sleep(0.5)  # the worker dies with its parent (PR_SET_PDEATHSIG)
    started_before = {(r["task"], r["pid"]) for r in read_executions(out) if r["event"] == "start"}

    result = cli("sweep", str(folder / "spec.yaml"), "--out", str(out), "--workers", "1", "--resume")
    assert result.returncode == 0, result.stderr
    assert f"{len(finished)} already done" in result.stdout
    xr.testing.assert_identical(_data(open_sweep(out)), _data(reference))
    assert set(read_manifest(out)) == set(range(16))
    resumed_starts = [
        r["task"] for r in read_executions(out) if r["event"] == "start" and (r["task"], r["pid"]) not in started_before
    ]
    assert not set(resumed_starts) & set(finished), "finished tasks were run again"
    assert sorted(resumed_starts) == sorted(set(range(16)) - set(finished))


def test_a_failing_task_is_retried_once_then_reported_and_the_rest_kept(tmp_path):
    _write_base(
        tmp_path,
        sellers__0__strategy="sweep_strategies:Faulty",
        sellers__0__strategy_params={"mode": "ok", "marker": str(tmp_path / "flaky.marker")},
    )
    spec = _write_spec(
        tmp_path,
        factors=[{"name": "mode", "path": "sellers.0.strategy_params.mode", "levels": ["ok", "flaky", "broken"]}],
        points_per_task=1,
        replications_per_task=4,
    )
    events = []
    with pytest.raises(SweepTaskError) as error:
        run_sweep(spec, tmp_path / "out.zarr", workers=1, progress=events.append)
    failures = error.value.outcome.failures
    assert [(f["scenario"], f["values"]) for f in failures] == [(2, {"mode": "broken"})]
    assert "RuntimeError: broken on purpose" in failures[0]["error"]
    assert sorted(e["task"] for e in events if e["event"] == "retry") == [1, 2]
    assert set(read_manifest(tmp_path / "out.zarr")) == {0, 1}
    incomplete = pytest.warns(UserWarning, match="incomplete sweep")
    with incomplete:
        partial = open_sweep(tmp_path / "out.zarr", allow_incomplete=True)
    assert np.isfinite(partial["revenue"].isel(scenario=[0, 1]).values).all()
    assert np.isnan(partial["revenue"].isel(scenario=2).values).all()
    # The CLI: exit 1, the failing point and its factor value on stderr.
    result = cli("sweep", str(spec), "--out", str(tmp_path / "out.zarr"), "--workers", "1", "--resume")
    assert result.returncode == 1
    assert "scenario 2" in result.stdout + result.stderr and "'broken'" in result.stdout + result.stderr


def test_summary_only_keeps_per_seller_outcomes(folder, reference):
    outcome = run_sweep(folder / "spec.yaml", folder / "summary.zarr", workers=2, summary_only=True)
    assert outcome.complete
    summary = open_sweep(folder / "summary.zarr")
    assert set(summary.data_vars) == set(SUMMARY_VARIABLES) | {"exit_day", "initial_cash"}
    assert "time" not in summary.dims and summary.attrs["summary_only"] == 1
    np.testing.assert_allclose(summary["revenue_total"].values, reference["revenue"].sum(["time", "market"]).values)
    np.testing.assert_array_equal(summary["final_cash"].values, reference["cash"].isel(time=-1).values)
    np.testing.assert_array_equal(summary["survived"].values, reference["alive"].isel(time=-1).values)
    xr.testing.assert_identical(
        summary["exit_day"].load().reset_coords(drop=True), reference["exit_day"].load().reset_coords(drop=True)
    )


def test_base_may_extend_another_config(tmp_path):
    """configs/us_de_minimis_2025.yaml is `extends: baseline.yaml` + policy; as a sweep base
    it must be read the way `cbecsim run` reads it."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"base: {ROOT / 'configs' / 'us_de_minimis_2025.yaml'}\n"
        "factors:\n  - {name: reserve, path: markets.US/charging.reserve_price, levels: [0.1, 0.2]}\n"
        "design: grid\nreplications: 2\n"
    )
    done = cli("sweep", str(spec), "--out", str(tmp_path / "s.zarr"), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "s.zarr").exists()


def test_an_origin_sweep_pays_each_origins_hand_computed_duty(tmp_path):
    """configs/sweeps/us_origin_cn_vn.yaml (the traffic-first sellers from CN or VN, on
    parcels): from 2025-09-01 to 2025-11-09 a US charger pays 55% from CN (IEEPA 20% + 10%
    reciprocal + Section 301 25%) and 20% from VN (reciprocal 20%), on its price."""
    spec = yaml.safe_load((CONFIGS / "sweeps" / "us_origin_cn_vn.yaml").read_text())
    spec.update(base=str(CONFIGS / "us_de_minimis_2025.yaml"), replications=3, resolution="day")
    spec["set"]["horizon.end"] = "2025-11-09"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    outcome = run_sweep(tmp_path / "spec.yaml", tmp_path / "origin.zarr", workers=1)
    assert outcome.complete
    sweep = open_sweep(tmp_path / "origin.zarr")
    traffic = np.flatnonzero(sweep["strategy"].values == "traffic_first")
    window = sweep.isel(seller=traffic).sel(market="US/charging", time=slice("2025-09-01", "2025-11-09"))
    rate = (window["duty_paid"].sum(["replication", "time", "seller"])
            / window["revenue"].sum(["replication", "time", "seller"])).values  # (scenario,)
    origins = list(sweep["traffic_first_origin"].values)
    assert dict(zip(origins, np.round(rate, 12))) == {"CN": 0.55, "VN": 0.2}
    assert float(window["units_from_warehouse"].sum()) == 0.0  # every unit went by parcel
