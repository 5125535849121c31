"""``cbecsim report``: a self-contained HTML file, bad input refused with exit 2, and the
report opening in a real headless Chromium with every image loaded and no console error."""

import re
import shutil

import numpy as np
import pytest
import xarray as xr

import cbecsim
from cbecsim.analysis import report as report_module
from cbecsim.cli import main
from helpers import cli, short

SMALL = {"sellers__0__count": 4, "sellers__1__count": 4, "sellers__2__count": 4}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Shocked and baseline results (same seed), one with another seed, one without layer variables."""
    folder = tmp_path_factory.mktemp("report")
    paths = {}
    for name, config, seed in (("shock", "us_de_minimis_2025.yaml", 5), ("base", "baseline.yaml", 5),
                               ("base_seed6", "baseline.yaml", 6)):
        paths[name] = folder / f"{name}.nc"
        cbecsim.run(short(config, days=120, **SMALL), replications=8, seed=seed, resolution="week", out=paths[name])
    core = cbecsim.open_results(paths["shock"])
    layer = [v for v in ("delivery_days", "ltv", "cac", "listing_interruptions") if v in core]
    paths["core"] = folder / "core.nc"
    cbecsim.results.save_dataset(core.drop_vars(layer), paths["core"])
    paths["sellers"] = folder / "fewer_sellers.nc"
    cbecsim.run(short("baseline.yaml", days=120, sellers__0__count=3, sellers__1__count=4, sellers__2__count=4),
                replications=8, seed=5, resolution="week", out=paths["sellers"])
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(folder / "foreign.nc")
    paths["foreign"] = folder / "foreign.nc"
    (folder / "garbage.nc").write_text("not a netcdf file")
    paths["garbage"] = folder / "garbage.nc"
    return paths


def test_report_command_writes_one_self_contained_html_file(results, tmp_path):
    out = tmp_path / "report.html"
    done = cli("report", str(results["shock"]), "--compare", str(results["base"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    text = out.read_text(encoding="utf-8")
    # Every resource is inline: images are data: URIs; no scripts, stylesheets or links to fetch.
    sources = re.findall(r'\bsrc\s*=\s*"([^"]*)"', text)
    assert len(sources) >= 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert text.count("<svg") == 4  # the time charts (3 fan charts, survival) are inline SVG
    assert not re.search(r"<(script|link|iframe|object|embed)\b", text, re.IGNORECASE)
    assert not re.search(r'\b(href|src)\s*=\s*["\']?(https?:)?//', text, re.IGNORECASE)
    assert not re.search(r"url\((?!#)", text)  # only the SVG's own clip paths: url(#id)
    for part in ("us_de_minimis_2025", "KPIs (seed paper, Table 4)", "CM2 margin", "organic share of sales",
                 "Kaplan-Meier", "median survival", "Exit hazard around the duty-change dates", "2025-02-04",
                 "Paired differences: shock - base", "variance ratio", "&quot;seed&quot;: 5"):
        assert part in text, part
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_report_marks_kpis_the_result_cannot_compute(results, tmp_path):
    out = tmp_path / "core.html"
    assert main(["report", str(results["core"]), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "not modelled: needs variable delivery_days" in text
    assert "not modelled: needs variable ltv and cac" in text


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("foreign", "is not a cbecsim result: it lacks dims replication, time, seller, market"),
    ("garbage", "cannot be read as a cbecsim result"),
    ("seed", "seeds differ (5 vs 6)"),
    ("sellers", "seller: 12 vs 11"),
    ("exists", "already exists (pass --overwrite to replace it)"),
    ("suffix", "the name must end in .html"),
])
def test_bad_input_exits_2_with_a_message_and_writes_nothing(results, tmp_path, capsys, case, message):
    out = tmp_path / "report.html"
    args = {
        "missing": [str(tmp_path / "nope.nc")],
        "foreign": [str(results["foreign"])],
        "garbage": [str(results["garbage"])],
        "seed": [str(results["shock"]), "--compare", str(results["base_seed6"])],
        "sellers": [str(results["base"]), "--compare", str(results["sellers"])],
        "exists": [str(results["shock"])],
        "suffix": [str(results["shock"]), "--out", str(tmp_path / "report.txt")],
    }[case]
    if case == "exists":
        out.write_text("old")
    if "--out" not in args:
        args += ["--out", str(out)]
    assert main(["report", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.startswith("error: ") and "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["report.html"] if case == "exists" else [])
    if case == "exists":
        assert out.read_text() == "old"


def test_a_failed_write_leaves_neither_report_nor_temporary_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        report_module.write_report("<html></html>", tmp_path / "report.html")
    assert list(tmp_path.iterdir()) == []


def test_report_opens_in_headless_chromium_with_all_images_and_no_console_errors(results, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium where apt-get is available)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    out = tmp_path / "report.html"
    assert main(["report", str(results["shock"]), "--compare", str(results["base"]), "--out", str(out)]) == 0
    problems, requests = [], []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            charts = page.evaluate("Array.from(document.querySelectorAll('figure.chart svg')).map("
                                   "s => [s.getBoundingClientRect().width, s.getBoundingClientRect().height])")
            title = page.title()
            headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        finally:
            browser.close()
    assert title == "cbecsim report: us_de_minimis_2025"
    assert len(images) >= 4 and len(charts) == 4
    assert all(complete and width > 0 and height > 0 for complete, width, height in images), images
    assert all(width > 300 and height > 200 for width, height in charts), charts
    assert problems == []
    # Only the file itself and its inline data: images were requested: nothing from the network.
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    assert any(h.startswith("Paired differences") for h in headings)


def test_time_charts_mark_every_duty_change_date(results, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(results["shock"]), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    # us_2025's changes inside the 120-day horizon (2025-01-01 .. 2025-04-30).
    dates = {"2025-02-04", "2025-03-04", "2025-04-05", "2025-04-09", "2025-04-10"}
    markers = re.findall(r'id="change-date-(\d{4}-\d\d-\d\d)-\d+"', text)
    assert set(markers) == dates
    assert len(markers) == 4 * len(dates)  # on each of the 3 fan charts and the survival chart
    # A label beside each: 2025-04-09 and -10 share one ("2025-04-09 / 04-10") so they do not overprint.
    for label in ("2025-02-04", "2025-03-04", "2025-04-09 / 04-10"):
        assert len(re.findall(rf"<text[^>]*>\s*{label}\s*<", text)) == 4, label


def test_compared_runs_are_labelled_by_label_or_file_name(results, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(results["shock"]), "--compare", str(results["base"]), "--out", str(out),
                 "--label", "US 2025", "--label", "status quo"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Paired differences: US 2025 - status quo" in text and "(compare)" not in text
    assert report_module.run_labels(None, "a/x.nc", None, "b/x.nc") == ("a/x.nc", "b/x.nc")
    assert report_module.run_labels(None, "a/x.nc", None, "b/y.nc", ["only"]) == ("only", "y")


def test_fan_chart_leaves_out_the_short_last_period_and_keeps_the_legend_off_the_bands(results):
    from cbecsim.analysis.plots import fan_chart

    result = cbecsim.open_results(results["shock"])  # 120 days = 17 weeks + a 1-day period
    assert (result["period_end"].values[-1] - result["time"].values[-1]) == np.timedelta64(0, "ns")
    figure = fan_chart(result, "cm2")
    axes = figure.axes[0]
    line = axes.get_lines()[0]
    assert len(line.get_xdata()) == result.sizes["time"] - 1  # the 1-day period is not drawn as a drop
    assert axes.get_legend() is None and len(figure.legends) == 1  # the legend sits below the axes
    left, right = axes.get_xlim()
    assert (left, right) == (line.get_xdata()[0], line.get_xdata()[-1]) or np.isclose(
        [left, right], axes.convert_xunits([line.get_xdata()[0], line.get_xdata()[-1]])).all()  # no blank margin
    levels = fan_chart(result, "cash")  # a level: its last period is a real value
    assert len(levels.axes[0].get_lines()[0].get_xdata()) == result.sizes["time"]
