"""Fault injection (issue 16): each fault leaves nothing lost, nothing silently wrong, and
says what happened.

Kills are made deterministic by killing the process from inside at a chosen point
(``cbecsim.files._fault_point``, a wrapped writer method, or a progress callback), in a
subprocess. Configs are tiny (configs/baseline.yaml, 31 days, 4 sellers, 2-6
replications), so the whole file stays well under a minute and a half on two cores.

Not here: a user strategy failing mid-run (issue 16 item 6, exit 3), which belongs with
the engine; only the CLI's mapping of :class:`cbecsim.errors.UserCodeError` is tested.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

import cbecsim
from cbecsim import cli
from cbecsim.config import ConfigError
from cbecsim.files import OutputError, WriterLock
from cbecsim.integrity import CHECKSUM_FILE, DamagedResultError
from cbecsim.results import VARIABLES, claim_output, open_results, save_dataset
from cbecsim.sweep import IncompleteSweepError, open_sweep, read_manifest, run_sweep
from cbecsim.sweep.store import MANIFEST, read_executions, record_crc
from helpers import CONFIGS, ROOT, TESTS, short

TINY = ["--set", "horizon.end=2025-01-31", "--set", "sellers.0.count=2", "--set", "sellers.1.count=1",
        "--set", "sellers.2.count=1"]
TINY_OVERRIDES = {"horizon.end": "2025-01-31", "sellers.0.count": 2, "sellers.1.count": 1, "sellers.2.count": 1}
DATA = list(VARIABLES) + ["exit_day", "initial_cash"]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))


def _data(dataset: xr.Dataset) -> xr.Dataset:
    return dataset[DATA].drop_attrs(deep=False).load()


def _python(code: str, *args: str, wait: bool = True, **kwargs):
    command = [sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    if not wait:
        return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kwargs)
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, **kwargs)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def tiny():
    return short(days=31, sellers__0__count=2, sellers__1__count=1, sellers__2__count=1)


@pytest.fixture(scope="module")
def old_new(tiny, tmp_path_factory):
    """Two different results of the tiny scenario (seeds 1 and 2), and the new one as .nc."""
    folder = tmp_path_factory.mktemp("versions")
    old = cbecsim.run(tiny, replications=2, seed=1)
    new = cbecsim.run(tiny, replications=2, seed=2)
    save_dataset(new, folder / "new.nc")
    return old, new, folder / "new.nc"


# --------------------------------------------------------------------------------------
# 1. Atomic replace: SIGKILL in the replace window leaves the old or the new, never a mix
# --------------------------------------------------------------------------------------

_REPLACE_AND_DIE = """
    import os, signal, sys
    import cbecsim.files as files
    from cbecsim.results import open_results, save_dataset
    stage, target, new, fallback = sys.argv[1:5]
    if fallback == "1":
        files._exchange = lambda first, second: False  # the move-aside path (no renameat2)
    def die(at, path):
        if at == stage and str(path) == target:
            os.kill(os.getpid(), signal.SIGKILL)
    files._fault_point = die
    save_dataset(open_results(new), target, overwrite=True)
"""

REPLACE_CASES = [  # suffix, stage killed at, move-aside fallback, what the name must hold after
    (".zarr", "synced", False, "old"),
    (".zarr", "exchanged", False, "new"),
    (".zarr", "aside", True, "old"),
    (".zarr", "renamed", True, "new"),
    (".nc", "synced", False, "old"),
    (".nc", "renamed", False, "new"),
]


def test_sigkill_in_the_replace_window_leaves_old_or_new_never_a_mix(old_new, tmp_path, caplog):
    old, new, new_nc = old_new
    runs = []
    for k, (suffix, stage, fallback, _) in enumerate(REPLACE_CASES):
        target = tmp_path / f"case{k}" / f"result{suffix}"
        target.parent.mkdir()
        save_dataset(old, target)
        runs.append(_python(_REPLACE_AND_DIE, stage, target, new_nc, int(fallback), wait=False))
    for k, (process, (suffix, stage, _fallback, expected)) in enumerate(zip(runs, REPLACE_CASES)):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == -signal.SIGKILL, stderr
        target = tmp_path / f"case{k}" / f"result{suffix}"
        with caplog.at_level(logging.WARNING, logger="cbecsim"):
            opened = open_results(target)  # verifies every checksum; restores an interrupted replace
        xr.testing.assert_identical(_data(opened), _data(old if expected == "old" else new))
        if stage == "aside":
            assert "restored" in caplog.text and "previous version was kept" in caplog.text
        # The next writer cleans up what the killed one left (a partial, the old version).
        claim_output(target, overwrite=True).release()
        assert _listing(target.parent) == [target.name], (stage, _listing(target.parent))


def test_overwrite_refuses_what_cbecsim_did_not_write(tiny, tmp_path):
    folder = tmp_path / "isdir.nc"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    foreign_store = tmp_path / "theirs.zarr"
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(foreign_store, zarr_format=2)
    text = tmp_path / "essay.nc"
    text.write_text("not a NetCDF file")
    for target, why in ((folder, "is a folder"), (foreign_store, "without cbecsim's 'cbecsim_version'"),
                        (text, "not a NetCDF file")):
        with pytest.raises(OutputError, match=why):
            cbecsim.run(tiny, replications=1, out=target, overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me" and text.read_text() == "not a NetCDF file"
    assert xr.open_zarr(foreign_store)["a"].values.tolist() == [0, 1, 2]
    code = cli.main(["run", str(CONFIGS / "baseline.yaml"), *TINY, "-n", "1", "--out", str(folder), "--overwrite",
                     "-q"])
    assert code == 2 and (folder / "notes.txt").exists()


# --------------------------------------------------------------------------------------
# 2. Killed runs: SIGKILL and SIGTERM mid-run, .nc and .zarr
# --------------------------------------------------------------------------------------

_RUN_AND_DIE = """
    import os, signal, sys
    import cbecsim
    out, overrides = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
    scenario = cbecsim.load_scenario("configs/baseline.yaml", overrides)
    def progress(done, total):
        if done > 2 * total // 3:
            os.kill(os.getpid(), signal.SIGKILL)
    # One thread, batches of 2: the first batch is written while the second is simulated,
    # so once the third is under way the first is in the partial output.
    cbecsim.run(scenario, replications=6, batch_size=2, seed=3, threads=1, out=out, progress=progress)
"""


def test_sigkill_mid_run_loses_nothing_and_the_next_run_cleans_up(tiny, tmp_path, caplog):
    outs = {suffix: tmp_path / suffix[1:] / f"killed{suffix}" for suffix in (".nc", ".zarr")}
    runs = []
    for out in outs.values():
        out.parent.mkdir()
        runs.append(_python(_RUN_AND_DIE, out, *[f"{k}={v}" for k, v in TINY_OVERRIDES.items()], wait=False))
    for process in runs:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == -signal.SIGKILL, stderr
    expected = _data(cbecsim.run(tiny, replications=6, seed=3))
    for suffix, out in outs.items():
        assert not out.exists()  # never a half-written result under the final name
        left = _listing(out.parent)
        assert f".{out.name}.lock" in left  # the dead writer's lock
        if suffix == ".zarr":
            assert any(name.startswith(f".{out.name}.partial-") for name in left)  # its streamed batches
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cbecsim"):
            cbecsim.run(tiny, replications=6, batch_size=2, seed=3, out=out)
        assert "took over the writer lock" in caplog.text and "no longer running" in caplog.text
        if suffix == ".zarr":
            assert "a partial output of killed.zarr left by an interrupted run" in caplog.text
        assert _listing(out.parent) == [out.name]
        xr.testing.assert_identical(_data(open_results(out)), expected)


_CLI_TERMINATED = """
    import os, signal, sys
    import cbecsim.results as results
    from cbecsim import cli
    where, argv = sys.argv[1], sys.argv[2:]
    owner = results.ZarrBatchWriter if where == "ZarrBatchWriter.write" else results
    name = where.rsplit(".", 1)[-1]
    original = getattr(owner, name)
    def terminate_after(*args, **kwargs):
        value = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` or a batch scheduler's time limit would
        return value
    setattr(owner, name, terminate_after)
    sys.exit(cli.main(argv))
"""


def test_sigterm_mid_run_removes_the_partial_and_exits_130(tmp_path):
    runs = []
    for suffix, where in ((".zarr", "ZarrBatchWriter.write"), (".nc", "add_netcdf_checksums")):
        folder = tmp_path / suffix[1:]
        folder.mkdir()
        runs.append((folder, _python(_CLI_TERMINATED, where, "run", CONFIGS / "baseline.yaml", *TINY, "-n", "4",
                                     "--batch-size", "2", "--out", folder / f"term{suffix}", "-q", wait=False)))
    for folder, process in runs:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 130, stderr
        assert "interrupted (SIGTERM)" in stderr and "partial output was removed" in stderr
        assert _listing(folder) == []  # no result, no partial, no lock


# --------------------------------------------------------------------------------------
# 3. Sweeps: killed mid-sweep, forged / torn / foreign manifests, concurrent resumes,
#    a killed Dask worker
# --------------------------------------------------------------------------------------


def _write_sweep(folder: Path, **base_overrides) -> Path:
    scenario = short(days=31, sellers__0__count=2, sellers__1__count=1, sellers__2__count=1, **base_overrides)
    (folder / "base.yaml").write_text(yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True)))
    spec = {"name": "faults", "base": "base.yaml", "design": "grid", "replications": 4, "seed": 5,
            "resolution": "week", "points_per_task": 1, "replications_per_task": 2,
            "factors": [{"name": "reserve", "path": "markets.US/charging.reserve_price", "levels": [0.1, 0.4]}]}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder / "spec.yaml"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A tiny sweep (2 points x 2 replication blocks = 4 tasks) and its complete store."""
    folder = tmp_path_factory.mktemp("sweep")
    spec = _write_sweep(folder)
    outcome = run_sweep(spec, folder / "reference.zarr", workers=1)
    assert outcome.complete and outcome.tasks == 4
    return spec, folder / "reference.zarr", _data(open_sweep(folder / "reference.zarr"))


def _unfinish(store: Path, tasks: list[int]) -> None:
    """Make a copy of a complete store look like a killed sweep: ``tasks`` never ran."""
    import zarr

    lines = (store / MANIFEST).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        if record["task"] in tasks:
            for key in record["chunks"]:
                (store / key).unlink()  # the chunks of a task that never ran are not there
    (store / MANIFEST).write_text("".join(line + "\n" for line, r in zip(lines, records) if r["task"] not in tasks))
    (store / CHECKSUM_FILE).unlink()
    (store / ".zmetadata").unlink()
    zarr.open_group(str(store), mode="a", zarr_format=2).attrs.update({"complete": False})


def _copy(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


_SWEEP_AND_DIE = """
    import os, signal, sys
    import cbecsim.sweep.runner as runner
    from cbecsim import cli
    how, after, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    original, done = runner.append_manifest, []
    def append_then_die(*args, **kwargs):
        original(*args, **kwargs)
        done.append(1)
        if len(done) == after:
            os.kill(os.getpid(), getattr(signal, how))
    runner.append_manifest = append_then_die
    sys.exit(cli.main(argv))
"""


def test_killed_mid_sweep_resumes_to_the_same_data(sweep, tmp_path, caplog):
    spec, _, reference = sweep
    stores = {how: tmp_path / f"{how}.zarr" for how in ("SIGKILL", "SIGTERM")}
    runs = {how: _python(_SWEEP_AND_DIE, how, 2, "sweep", spec, "--out", out, "--workers", "1", "--quiet",
                         wait=False) for how, out in stores.items()}
    for how, process in runs.items():
        _, stderr = process.communicate(timeout=300)
        out = stores[how]
        if how == "SIGKILL":
            assert process.returncode == -signal.SIGKILL, stderr
        else:
            assert process.returncode == 130 and "finish with --resume" in stderr, stderr
            assert not (tmp_path / f".{out.name}.lock").exists()  # released on the way out
        assert set(read_manifest(out)) == {0, 1}
        with pytest.raises(IncompleteSweepError, match="2 of 4 tasks finished and verified"):
            open_sweep(out)
        with pytest.raises(OutputError, match="incomplete sweep store"):
            open_results(out)
    time.sleep(0.3)  # the pool worker dies with its parent (PR_SET_PDEATHSIG)
    with caplog.at_level(logging.WARNING, logger="cbecsim"):
        outcome = run_sweep(spec, stores["SIGKILL"], workers=1, resume=True)
    assert "took over the writer lock of SIGKILL.zarr" in caplog.text
    assert outcome.skipped == 2 and outcome.ran == 2 and outcome.complete
    xr.testing.assert_identical(_data(open_sweep(stores["SIGKILL"])), reference)


def test_forged_torn_and_foreign_manifest_lines_are_refused_and_the_tasks_rerun(sweep, tmp_path, caplog):
    spec, complete, reference = sweep
    store = _copy(complete, tmp_path / "forged.zarr")
    records = {json.loads(line)["task"]: json.loads(line) for line in (store / MANIFEST).read_text().splitlines()}
    _unfinish(store, [2, 3])
    with (store / MANIFEST).open("a") as manifest:
        # Hand-added "task 2 done": no valid checksum of the record.
        manifest.write(json.dumps({**records[2], "record_crc": 12345}) + "\n")
        # Task 3 with a correct record checksum, but chunk checksums of data never written.
        forged = {**records[3], "chunks": {k: [v[0], v[1] ^ 1] for k, v in records[3]["chunks"].items()}}
        forged["record_crc"] = record_crc(forged)
        manifest.write(json.dumps(forged) + "\n")
        # A task id the store does not have, with a valid checksum.
        foreign = {**records[1], "task": 12}
        foreign["record_crc"] = record_crc(foreign)
        manifest.write(json.dumps(foreign) + "\n")
        # A torn last line: the parent killed while appending.
        manifest.write(json.dumps(records[0])[:40])
    assert set(read_manifest(store)) == {0, 1, 3}  # task 3's record is well-formed; its data are not there
    with pytest.raises(IncompleteSweepError, match="2 of 4 tasks finished and verified"):
        open_sweep(store)
    with caplog.at_level(logging.WARNING, logger="cbecsim"):
        outcome = run_sweep(spec, store, workers=1, resume=True)
    log = caplog.text
    assert "task 2: its checksum does not match its contents (edited or damaged): ignored" in log
    assert "task 12 is not a task of this store (tasks 0..3): ignored" in log
    assert "task 3: its chunk" in log and "running it again" in log
    assert "cut off mid-write by a killed run" in log
    assert outcome.skipped == 2 and outcome.ran == 2 and outcome.complete  # "12 finished" is impossible
    xr.testing.assert_identical(_data(open_sweep(store)), reference)
    assert not (store / MANIFEST).read_text().endswith("}")  # the torn tail was cut, every line is whole
    assert set(read_manifest(store)) == {0, 1, 2, 3}


def test_a_store_that_claims_complete_is_verified_not_trusted(sweep, tmp_path):
    spec, complete, reference = sweep
    store = _copy(complete, tmp_path / "claims.zarr")
    chunk = next(k for k in json.loads((store / CHECKSUM_FILE).read_text())["files"]
                 if k.startswith("revenue/") and not k.split("/")[-1].startswith("."))
    (store / chunk).unlink()
    with pytest.raises(DamagedResultError, match="'revenue' is incomplete"):
        open_sweep(store)
    with pytest.raises(DamagedResultError, match="damaged"):
        open_results(store)
    outcome = run_sweep(spec, store, workers=1, resume=True)  # runs the task whose chunk is gone
    assert outcome.complete and outcome.ran == 1
    xr.testing.assert_identical(_data(open_sweep(store)), reference)
    (store / "revenue" / ".zarray").unlink()  # metadata damaged: resuming cannot repair it
    with pytest.raises(OutputError, match="cannot be resumed: the metadata of revenue"):
        run_sweep(spec, store, workers=1, resume=True)


def test_two_concurrent_resumes_one_runs_the_other_is_refused_at_once(sweep, tmp_path):
    spec, complete, reference = sweep
    store = _copy(complete, tmp_path / "race.zarr")
    _unfinish(store, [1, 2, 3])
    argv = ["-m", "cbecsim.cli", "sweep", str(spec), "--out", str(store), "--workers", "1", "--resume", "--quiet"]
    first, second = (subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2))
    results = [(p, *p.communicate(timeout=300)) for p in (first, second)]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [(p.returncode, err) for p, _, err in results]
    winner = next(p for p, _, _ in results if p.returncode == 0)
    loser_err = next(err for p, _, err in results if p.returncode == 2)
    assert f"PID {winner.pid} on host {socket.gethostname()}" in loser_err and "being written" in loser_err, loser_err
    before = len(read_executions(complete))
    starts = [r for r in read_executions(store)[before:] if r["event"] == "start"]
    assert sorted(r["task"] for r in starts) == [1, 2, 3]  # each remaining task ran once, by the winner
    xr.testing.assert_identical(_data(open_sweep(store)), reference)


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    target = tmp_path / "out.zarr"
    died = _python("""
        import os, signal, sys
        from cbecsim.files import WriterLock
        WriterLock(sys.argv[1]).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """, target)
    assert died.returncode == -signal.SIGKILL
    record = json.loads((tmp_path / ".out.zarr.lock").read_text())
    live = WriterLock(target).acquire()
    assert f"left by PID {record['pid']}" in live.notes[0] and "no longer running" in live.notes[0]
    held = _python("""
        import sys
        from cbecsim.files import OutputLockedError, WriterLock
        try:
            WriterLock(sys.argv[1]).acquire()
        except OutputLockedError as exc:
            print(exc)
            sys.exit(2)
    """, target)
    assert held.returncode == 2 and f"PID {os.getpid()} on host {socket.gethostname()}" in held.stdout
    live.release()
    assert _listing(tmp_path) == []


def test_a_killed_dask_worker_is_replaced_and_the_sweep_is_unchanged(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from cbecsim.api import simulate_replications
    from cbecsim.sweep import load_sweep_spec

    spec = _write_sweep(tmp_path, sellers__0__strategy="sweep_strategies:Faulty",
                        sellers__0__strategy_params={"mode": "die", "marker": str(tmp_path / "died.marker")})
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])  # the workers import sweep_strategies
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        outcome = run_sweep(spec, tmp_path / "dask.zarr", scheduler=cluster.scheduler_address)
    killed = int((tmp_path / "died.marker").read_text())  # the worker that SIGKILLed itself mid-task
    assert outcome.complete
    assert killed not in {r["pid"] for r in read_manifest(tmp_path / "dask.zarr").values()}
    stored = open_sweep(tmp_path / "dask.zarr")
    loaded = load_sweep_spec(spec)
    for point, reserve in enumerate([0.1, 0.4]):  # each point equals a plain in-process run
        expected = simulate_replications(loaded.base_data, 0, 4, seed=5, resolution="week", overrides={
            "markets.US/charging.reserve_price": reserve, "sellers.0.strategy_params.mode": "ok"})
        xr.testing.assert_identical(_data(stored.isel(scenario=point).reset_coords(drop=True)),
                                    _data(expected.reset_coords(drop=True)))


# --------------------------------------------------------------------------------------
# 4. Full disk, read-only folder, unwritable paths: refused before work, or cleaned up
# --------------------------------------------------------------------------------------


def _mount_tmpfs(path: Path, size: str, read_only: bool = False) -> bool:
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_disk_that_fills_up_mid_run_gives_no_space_left_and_keeps_the_old_output(tiny, old_new, tmp_path,
                                                                                 monkeypatch, suffix):
    """A 3 MiB tmpfs (mounted when allowed; otherwise ENOSPC is simulated, and the test says so)."""
    old = old_new[0]
    disk = tmp_path / "disk"
    mounted = os.geteuid() == 0 and _mount_tmpfs(disk, "3m")
    try:
        if not mounted:
            disk.mkdir(exist_ok=True)
        out = disk / f"result{suffix}"
        save_dataset(old, out)
        if mounted:
            def fill(done, total):  # the disk fills up while the run is going (another writer)
                if done >= total // 2 and not (disk / "filler").exists():
                    # Unbuffered: a full disk fails the write here, not the flush at close
                    # (which, buffered, raised out of the callback when the last write was partial).
                    with open(disk / "filler", "wb", buffering=0) as handle:
                        try:
                            while True:
                                handle.write(b"\0" * 65536)
                        except OSError:
                            pass
        else:
            import errno

            def fill(done, total):
                pass

            def enospc(*args, **kwargs):
                raise OSError(errno.ENOSPC, "No space left on device (simulated: tmpfs not mountable)")

            monkeypatch.setattr(xr.Dataset, "to_netcdf", enospc)
            monkeypatch.setattr(xr.Dataset, "to_zarr", enospc)
        with pytest.raises(OutputError, match="no space left on device"):
            cbecsim.run(tiny, replications=4, batch_size=1, seed=2, out=out, overwrite=True, progress=fill)
        (disk / "filler").unlink(missing_ok=True)
        assert sorted(p.name for p in disk.iterdir()) == [out.name]  # no partial, no lock
        monkeypatch.undo()
        xr.testing.assert_identical(_data(open_results(out)), _data(old))  # the old output is intact
    finally:
        if mounted:
            _umount(disk)


def test_too_little_free_space_is_refused_before_any_work(tiny, tmp_path):
    disk = tmp_path / "small"
    if not (os.geteuid() == 0 and _mount_tmpfs(disk, "256k")):
        pytest.skip("cannot mount a tmpfs here (needs root): the free-space check is unit-tested in test_guards")
    try:
        started = []
        with pytest.raises(OutputError, match=r"has .* free, but the output needs about"):
            cbecsim.run(tiny, replications=8, out=disk / "r.nc", progress=lambda d, t: started.append(d))
        assert started == [] and list(disk.iterdir()) == []
        code = cli.main(["run", str(CONFIGS / "baseline.yaml"), *TINY, "-n", "8", "--out", str(disk / "r.zarr"),
                         "-q"])
        assert code == 2 and list(disk.iterdir()) == []
    finally:
        _umount(disk)


def test_a_read_only_folder_or_proc_is_refused_before_any_work(tiny, tmp_path, capsys):
    folder = tmp_path / "ro"
    if os.geteuid() == 0:
        if not _mount_tmpfs(folder, "1m", read_only=True):
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        folder.mkdir()
        folder.chmod(0o555)
    try:
        started = []
        with pytest.raises(OutputError, match="is not writable"):
            cbecsim.run(tiny, replications=1, out=folder / "r.nc", progress=lambda d, t: started.append(d))
        assert started == []
        for out in (folder / "r.zarr", Path("/proc/x.nc")):
            assert cli.main(["run", str(CONFIGS / "baseline.yaml"), *TINY, "-n", "1", "--out", str(out), "-q"]) == 2
            assert "is not writable" in capsys.readouterr().err
    finally:
        if os.geteuid() == 0:
            _umount(folder)
        else:
            folder.chmod(0o755)


def test_huge_runs_need_yes_and_dry_run_creates_nothing(tmp_path, capsys):
    base = ["run", str(CONFIGS / "baseline.yaml"), *TINY]
    assert cli.main([*base, "-n", "1000000000", "--out", str(tmp_path / "big.zarr"), "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert "1,000,000,000 replications x 31 days x" in out and "seller-market-days" in out
    assert "free, but the output needs about" in err
    # Fits the disk but is larger than --confirm-above: refused under --quiet without --yes.
    assert cli.main([*base, "-n", "2000", "--out", str(tmp_path / "mid.zarr"), "--confirm-above", "1MB",
                     "-q"]) == 2
    assert "pass --yes to run it anyway" in capsys.readouterr().err
    assert cli.main([*base, "-n", "2", "--out", str(tmp_path / "small.nc"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 replications x 31 days x" in out and "on disk" in out and "peak memory about" in out
    assert "nothing was run or created" in out
    # A .nc result beyond the memory share is refused, with the .zarr alternative and its size.
    assert cli.main([*base, "-n", "2000", "--out", str(tmp_path / "mem.nc"), "--max-memory-share", "0.00001",
                     "-q"]) == 2
    err = capsys.readouterr().err
    assert "write it to a .zarr store instead" in err and "on disk" in err and "mem.zarr" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# 5. Damaged results: a flipped byte in a .nc and in a .zarr chunk
# --------------------------------------------------------------------------------------


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def test_a_flipped_byte_in_a_netcdf_variable_is_reported_as_damaged(old_new, tmp_path, capsys):
    old = old_new[0]
    path = tmp_path / "result.nc"
    save_dataset(old, path)
    raw = path.read_bytes()
    offset = raw.find(np.ascontiguousarray(old["cash"].values).tobytes()[:64])
    assert offset > 0, "cash's stored bytes not found"
    _flip(path, offset + 100)
    with pytest.raises(DamagedResultError, match=r"damaged: variable 'cash'"):
        open_results(path)
    from cbecsim.analysis import report

    assert report.main(["report", str(path), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "damaged: variable 'cash'" in err and not (tmp_path / "r.html").exists()


def test_a_flipped_byte_in_a_zarr_chunk_is_reported_as_damaged(old_new, tmp_path, capsys):
    old = old_new[0]
    path = tmp_path / "result.zarr"
    save_dataset(old, path)
    chunk = next((path / "revenue").glob("0.*"))
    _flip(chunk, chunk.stat().st_size // 2)
    with pytest.raises(DamagedResultError, match=r"damaged: variable 'revenue' fails its checksum"):
        open_results(path)
    from cbecsim.analysis import report

    assert report.main(["report", str(path), "--out", str(tmp_path / "r.html")]) == 2
    assert "damaged: variable 'revenue'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# 6. Bad input: alias bomb, oversized config, NaN/inf in every numeric field, strategies
# --------------------------------------------------------------------------------------


def test_a_yaml_alias_bomb_and_a_huge_config_are_refused_fast(tmp_path, capsys):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nname: *a9\n")
    started = time.perf_counter()
    assert cli.main(["validate", str(bomb)]) == 2
    assert time.perf_counter() - started < 5
    assert "expands to more than 200,000 values through YAML aliases" in capsys.readouterr().err
    big = tmp_path / "big.yaml"
    big.write_text("name: x\ndescription: " + "y" * (6 * 2**20) + "\n")
    assert cli.main(["validate", str(big)]) == 2
    assert "the file is 6.0 MiB; the limit is 5 MiB" in capsys.readouterr().err
    assert cli.main(["validate", str(CONFIGS / "baseline.yaml"), "--set", "name=*x"]) == 2  # undefined alias


def _numeric_fields() -> list[tuple[str, object]]:
    """Every numeric config field, as (dotted path, a value that is NaN/inf there), built
    from the pydantic models themselves so a new field cannot be missed."""
    import typing

    from cbecsim import config as c

    def numbers(annotation) -> bool:
        args = typing.get_args(annotation)
        return annotation in (float, int) or any(numbers(a) for a in args if a is not type(None))

    paths: list[str] = []
    sections = {"markets.0": c.Market, "fulfilment_modes.direct_parcel": c.FulfilmentMode,
                "duty_schedule.0.set": c.DutyFields, "sellers.0": c.SellerPopulation,
                "sellers.0.params": c.SellerParams, "sellers.0.dtc": c.DtcSettings, "": c.Scenario,
                "markets.0.seasonality.0": c.SeasonalPeak}
    for prefix, model in sections.items():
        for name, field in model.model_fields.items():
            if name in ("fx_series", "click_through", "lead_time_days", "currency_rates"):
                continue  # containers, listed below
            if numbers(field.annotation):
                paths.append(f"{prefix}.{name}".lstrip("."))
    paths += ["markets.0.click_through.0", "fulfilment_modes.direct_parcel.lead_time_days.0",
              "currency_rates.EUR", "sellers.0.strategy_params.price_index"]
    for dist, fields in {"uniform": ("low", "high"), "normal": ("mean", "sd"), "lognormal": ("median", "sigma"),
                         "triangular": ("low", "mode", "high"), "constant": ("value",)}.items():
        paths += [f"sellers.0.params.unit_cost.{dist}.{f}" for f in fields]
    return [(path, value) for path in paths for value in (float("nan"), float("inf"), float("-inf"))]


NUMERIC_FIELDS = _numeric_fields()


def test_nan_and_inf_are_refused_in_every_numeric_field():
    base = cbecsim.load_scenario(CONFIGS / "baseline.yaml", TINY_OVERRIDES).model_dump(mode="json", exclude_none=True)
    distributions = {"uniform": {"low": 1.0, "high": 2.0}, "normal": {"mean": 2.0, "sd": 0.1},
                     "lognormal": {"median": 2.0, "sigma": 0.1}, "triangular": {"low": 1.0, "mode": 1.5, "high": 2.0},
                     "constant": {"value": 2.0}}
    accepted = []
    assert len(NUMERIC_FIELDS) >= 3 * 70
    for path, value in NUMERIC_FIELDS:
        overrides: dict = {}
        parts = path.split(".")
        if len(parts) > 2 and parts[-2] in distributions and "unit_cost" in parts:
            overrides["sellers.0.params.unit_cost"] = {"dist": parts[-2], **distributions[parts[-2]],
                                                        parts[-1]: value}
            where = "sellers.0.params.unit_cost"
        elif parts[0] == "markets" and "fx_series" in parts:
            continue
        else:
            if parts[:3] == ["duty_schedule", "0", "set"] and not base["duty_schedule"]:
                continue
            if path.startswith("markets.0.seasonality"):
                overrides["markets.0.seasonality"] = [{"name": "peak", "start": "07-08", "end": "07-11",
                                                       "multiplier": value}]
            else:
                overrides[path] = value
            where = path.rsplit(".", 1)[0] if path.endswith(".0") else path
        try:
            cbecsim.load_scenario(base, overrides)
        except ConfigError as exc:
            text = str(exc)
            assert "finite" in text or "overflow" in text or "must be" in text or "expected" in text, (path, text)
            field = where.split(".")[-1]
            assert field in text or "strategy_params" in text, (path, text)
        else:
            accepted.append((path, value))
    assert accepted == []
    # fx_series values (a mapping of dates), and the CLI: exit 2, one line naming the field.
    with pytest.raises(ConfigError, match=r"markets.0.fx_series.2025-01-10: Input should be a finite number"):
        cbecsim.load_scenario(base, {"markets.0.fx_series": {"2025-01-10": float("nan")}})
    done = subprocess.run([sys.executable, "-m", "cbecsim.cli", "validate", str(CONFIGS / "baseline.yaml"),
                           "--set", "markets.US/charging.shoppers_per_day=.inf"], capture_output=True, text=True,
                          cwd=ROOT, env=ENV, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: markets.0.shoppers_per_day: Input should be a finite number (got inf)"]
    assert "Traceback" not in done.stderr


def test_integer_outputs_cannot_wrap_around():
    with pytest.raises(ConfigError, match="would overflow the 32-bit shopper count"):
        cbecsim.load_scenario(CONFIGS / "baseline.yaml", {"markets.0.shoppers_per_day": 1e12})
    with pytest.raises(ConfigError, match="would overflow the 32-bit stock count"):
        cbecsim.load_scenario(CONFIGS / "baseline.yaml", {"sellers.0.params.expected_daily_units": 1e9})
    with pytest.raises(ConfigError, match="less than or equal to 36525"):
        cbecsim.load_scenario(CONFIGS / "baseline.yaml", {"sellers.0.review_days": 10**30})


def test_user_strategy_problems_name_the_class_population_and_config(tmp_path, capsys, monkeypatch):
    base = ["validate", str(CONFIGS / "baseline.yaml"), *TINY]
    assert cli.main([*base, "--set", "sellers.0.strategy=mypk.strategies:Cautious"]) == 2
    err = capsys.readouterr().err
    assert "cannot import module 'mypk.strategies' for class 'Cautious'" in err
    assert "imported from the working directory" in err and "or the installed packages" in err
    assert "population 'mypk.strategies:Cautious' (sellers.0)" in err and "baseline.yaml" in err
    # A package in the working directory is found without PYTHONPATH (as `python -m` would).
    package = tmp_path / "mypk"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "strategies.py").write_text(textwrap.dedent("""
        class Cautious:
            def __init__(self, params):
                if params.get("risk", 0) > 1:
                    raise RuntimeError("risk must be at most 1")
            def initialise(self, view):
                pass
            def review(self, view):
                pass
    """))
    monkeypatch.chdir(tmp_path)
    assert cli.main([*base, "--set", "sellers.0.strategy=mypk.strategies:Cautious"]) == 0
    capsys.readouterr()
    code = cli.main(["run", *base[1:], "--set", "sellers.0.strategy=mypk.strategies:Cautious",
                     "--set", "sellers.0.strategy_params={risk: 5}", "-n", "1", "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "raised RuntimeError: risk must be at most 1 in its constructor" in err and "sellers.0" in err
    # Unknown keys get "did you mean", unknown list items the valid names.
    assert cli.main([*base, "--set", "markets.0.shopers_per_day=5", "--set",
                     "markets.US/chargng.reserve_price=0.2"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'US/charging'?" in err and "names US/charging, US/audio, EU/charging" in err


def test_a_user_code_error_mid_run_exits_3_and_removes_the_partial(tmp_path, monkeypatch, capsys):
    """The engine raises UserCodeError (issue 16 item 6, the lead's); here only the CLI's part."""
    from cbecsim import results
    from cbecsim.errors import UserCodeError

    original = results.ZarrBatchWriter.write

    def fail_after_first_batch(self, batch):
        original(self, batch)
        raise UserCodeError("review() returned NaN prices", population="mine", strategy="mypk:Mine", day=14,
                            replication=2)

    monkeypatch.setattr(results.ZarrBatchWriter, "write", fail_after_first_batch)
    code = cli.main(["run", str(CONFIGS / "baseline.yaml"), *TINY, "-n", "2", "--out", str(tmp_path / "u.zarr"), "-q"])
    assert code == 3
    err = capsys.readouterr().err
    assert "strategy mypk:Mine of population 'mine' failed at day 14, replication 2" in err
    assert "the partial output was removed" in err and list(tmp_path.iterdir()) == []
