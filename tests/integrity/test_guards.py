"""Guards and hardening pieces of issue 16 that need no killed process: validate's quiet
notes, the writer lock's re-entrancy, the free-space and memory checks, checksums."""

from __future__ import annotations

import os

import pytest

import cbecsim
from cbecsim import cli
from cbecsim.files import OutputError, WriterLock, format_bytes, output_marker
from cbecsim.guards import RunEstimate, check_run
from cbecsim.integrity import CHECKSUM_FILE, expected_chunks, read_zarr_checksums
from cbecsim.notes import NOTE_FORMS, sort_policy_notes
from helpers import CONFIGS


def test_validate_prints_only_the_notes_the_config_does_not_handle(capsys):
    assert cli.main(["validate", str(CONFIGS / "eu_fixed_duty_2026.yaml")]) == 0
    quiet = capsys.readouterr().out.splitlines()
    notes = [line for line in quiet if line.startswith("note:")]
    # VAT (the EU markets set vat_rate) and the end of the US sets' coverage (the config's own
    # 2026-07-24 change) are handled; since the engine has the postal kind (issue 14) the
    # library emits every kind, so nothing is left to note.
    assert notes == []
    assert "17 more notes this config already handles: --verbose shows them" in quiet[-1]
    assert cli.main(["validate", str(CONFIGS / "eu_fixed_duty_2026.yaml"), "--verbose"]) == 0
    verbose = capsys.readouterr().out
    assert "handled: US: no regime for parcel from CN on or after 2026-07-24" in verbose
    assert "the config's own duty_schedule sets the US parcel regime of every seller concerned by 2026-07-24" \
        in verbose
    assert "the markets of EU set vat_rate" in verbose


def test_a_coverage_gap_the_config_does_not_fill_is_shown():
    scenario = cbecsim.load_scenario(CONFIGS / "eu_fixed_duty_2026.yaml", {"duty_schedule": []})
    shown, _ = sort_policy_notes(scenario)
    assert any("no regime for parcel from CN on or after 2026-07-24" in note for note in shown)


def test_every_note_of_the_policy_library_has_a_known_form():
    """A new sentence in cbecsim.policies would be shown unclassified: this test says so."""
    from cbecsim.policies import list_regime_sets, to_duty_changes

    notes = []
    for info in list_regime_sets():
        notes += to_duty_changes([info.name], [info.destination]).unsupported
    assert notes
    unknown = [n for n in notes if not any(form.match(n) for form in NOTE_FORMS.values())]
    assert unknown == []
    # and the form the engine's own kinds (parcel, bulk) produce
    scenario = cbecsim.load_scenario(CONFIGS / "eu_fixed_duty_2026.yaml")
    assert [n for n in scenario.policy_notes if not any(form.match(n) for form in NOTE_FORMS.values())] == []


def test_the_writer_lock_is_reentrant_and_exclusive(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "r.nc"
    with WriterLock(target) as outer:
        with WriterLock(target):
            pass
        assert (tmp_path / ".r.nc.lock").exists()  # still held by the outer one
        probe = subprocess.run([sys.executable, "-c", "import sys; from cbecsim.files import WriterLock; "
                                "WriterLock(sys.argv[1]).acquire()", str(target)], capture_output=True, text=True)
        assert probe.returncode != 0 and "OutputLockedError" in probe.stderr and f"PID {os.getpid()}" in probe.stderr
        assert outer.notes == []
    assert list(tmp_path.iterdir()) == []


def _estimate(fmt, result=10 * 2**30, memory=11 * 2**30):
    return RunEstimate(replications=10, days=10, seller_markets=1, output_format=fmt, result_bytes=result,
                       memory_bytes=memory, disk_bytes=result // 2 if fmt == "zarr" else result,
                       zarr_disk_bytes=result // 2, batch=1)


def test_memory_and_free_space_checks_say_what_would_fit(tmp_path, monkeypatch):
    with pytest.raises(OutputError) as refused:
        check_run(_estimate("netcdf"), tmp_path / "r.nc", 0.6, 4 * 2**30)
    text = str(refused.value)
    assert "more than 60% of the 4.0 GiB available" in text and "--out " + str(tmp_path / "r.zarr") in text
    assert "would take about 5.0 GiB on disk" in text

    class Full:
        f_bavail, f_frsize = 1024, 4096  # 4 MiB free

    monkeypatch.setattr(os, "statvfs", lambda path: Full)
    with pytest.raises(OutputError, match=r"has 4.0 MiB free, but the output needs about 5.0 GiB"):
        check_run(_estimate("zarr"), tmp_path / "r.zarr", 0.6, 64 * 2**30)
    with pytest.raises(OutputError, match="more than the 4.0 MiB free"):  # the .zarr advice checks the disk too
        check_run(_estimate("netcdf"), tmp_path / "r.nc", 0.6, 4 * 2**30)
    assert format_bytes(1536) == "1.5 KiB"


def test_results_carry_checksums_and_every_chunk(tmp_path):
    scenario = cbecsim.load_scenario(CONFIGS / "baseline.yaml", {"horizon.end": "2025-01-20", "sellers.0.count": 1,
                                                                  "sellers.1.count": 1, "sellers.2.count": 1})
    cbecsim.run(scenario, replications=3, batch_size=1, out=tmp_path / "r.zarr")
    listing = read_zarr_checksums(tmp_path / "r.zarr")
    for key in expected_chunks(tmp_path / "r.zarr", "lost_sales"):  # all zeros, still written
        assert key in listing
    assert output_marker(tmp_path / "r.zarr") is None
    (tmp_path / "r.zarr" / CHECKSUM_FILE).unlink()
    cbecsim.open_results(tmp_path / "r.zarr")  # an older store without checksums still opens (with a warning)
    cbecsim.run(scenario, replications=1, out=tmp_path / "r.nc")
    import netCDF4

    with netCDF4.Dataset(tmp_path / "r.nc") as dataset:
        assert dataset["revenue"].filters()["fletcher32"] and "cbecsim_checksums" in dataset.ncattrs()
    assert "cbecsim_checksums" not in cbecsim.open_results(tmp_path / "r.nc").attrs


def test_run_refuses_a_second_writer_of_the_same_output(tmp_path):
    other = WriterLock(tmp_path / "r.nc")
    other.acquire()
    try:
        import subprocess
        import sys

        done = subprocess.run([sys.executable, "-m", "cbecsim.cli", "run", str(CONFIGS / "baseline.yaml"), "--set",
                               "horizon.end=2025-01-10", "-n", "1", "--out", str(tmp_path / "r.nc"), "-q"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and f"PID {os.getpid()} on host" in done.stderr and "being written" in done.stderr
    finally:
        other.release()
    assert list(tmp_path.iterdir()) == []


def test_report_overwrite_replaces_only_a_cbecsim_report(tmp_path):
    from cbecsim.analysis.report import ReportError, output_path

    foreign = tmp_path / "notes.html"
    foreign.write_text("<html><body>my own notes</body></html>")
    with pytest.raises(ReportError, match="is not an HTML report written by cbecsim report"):
        output_path(tmp_path / "r.nc", str(foreign), overwrite=True)
    ours = tmp_path / "r.html"
    ours.write_text("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                    '<meta name="generator" content="cbecsim 0.1.0"><title>cbecsim report: x</title>')
    assert output_path(tmp_path / "r.nc", str(ours), overwrite=True) == ours
