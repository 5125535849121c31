"""Opt-in: ``cbecsim sweep --cluster slurm`` against a real single-node SLURM.

Run with ``CBECSIM_SLURM_TEST=1 python -m pytest tests/sweep/test_sweep_slurm.py`` as root on
a Debian machine: ``scripts/slurm_single_node.sh start`` installs (apt) and starts munge,
slurmctld and slurmd on localhost; dask-jobqueue then submits worker jobs with sbatch.
"""

import os
import shutil
import subprocess

import pytest
import xarray as xr
from test_sweep import DATA_VARIABLES, _write_base, _write_spec

from cbecsim.sweep import open_sweep, read_manifest
from helpers import ROOT, cli

pytestmark = pytest.mark.skipif(
    os.environ.get("CBECSIM_SLURM_TEST") != "1",
    reason="starts SLURM daemons (root, Debian slurm-wlm): set CBECSIM_SLURM_TEST=1 to run",
)


def test_slurm_cluster_gives_the_local_pools_results(tmp_path):
    started = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_single_node.sh"), "start"],
                             capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    assert shutil.which("sbatch")
    _write_base(tmp_path)
    spec = _write_spec(tmp_path)
    local = cli("sweep", str(spec), "--out", str(tmp_path / "local.zarr"), "--workers", "2", "--quiet")
    assert local.returncode == 0, local.stderr
    slurm = cli("sweep", str(spec), "--out", str(tmp_path / "slurm.zarr"), "--cluster", "slurm", "--cores", "2",
                "--memory", "4GB", "--walltime", "00:10:00", "--jobs", "1", "--queue", "debug")
    assert slurm.returncode == 0, slurm.stdout + slurm.stderr
    assert "SLURM cluster via dask-jobqueue" in slurm.stdout
    result = open_sweep(tmp_path / "slurm.zarr")[DATA_VARIABLES].drop_attrs(deep=False).load()
    expected = open_sweep(tmp_path / "local.zarr")[DATA_VARIABLES].drop_attrs(deep=False).load()
    xr.testing.assert_identical(result, expected)
    # Every task ran in a worker started by a SLURM batch job.
    jobs = {r["batch_job"] for r in read_manifest(tmp_path / "slurm.zarr").values()}
    assert None not in jobs and len(jobs) == 1, jobs
