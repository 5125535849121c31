"""``cbecsim report RESULTS [--out report.html] [--compare OTHER]``: one self-contained HTML file.

The report holds the scenario (name, description, provenance attributes, the full
config), the seed paper's Table 4 KPIs per strategy, fan charts, Kaplan-Meier survival
curves with median survival and the exit hazard around the scenario's duty-change
dates, outcome distributions, and -- with ``--compare`` -- paired differences against
another result run with the same seed (common random numbers). Images are embedded as
base64 PNG, styles are inline, and nothing is fetched from the network, so the file
opens offline in any browser.

Exit codes: 0 written; 2 bad input (missing or unreadable file, not a cbecsim result, a
sweep store, a ``--compare`` result that cannot be paired, an output path that exists
or cannot be written) with one ``error:`` line and no traceback. The report is
written under a temporary name and renamed, so a failure never leaves a half-written
file.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import io
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from ..files import OutputError, folder_problem, refuse_foreign, write_text_atomically

__all__ = ["register", "main", "build_report", "write_report", "ReportError"]

EXIT_OK, EXIT_USAGE = 0, 2


class ReportError(Exception):
    """Bad input for the report: the message says what and which file."""


# --------------------------------------------------------------------------------------
# Loading and checks
# --------------------------------------------------------------------------------------


def load_result(path: str | os.PathLike, role: str = "RESULTS"):
    """Open a saved run result for the report, or raise :class:`ReportError`."""
    from ..results import OutputError, open_results
    from ._common import ResultError, check_result

    path = Path(path)
    if not path.exists():
        raise ReportError(f"{role} {path}: no such file")
    try:
        result = open_results(path)
    except OutputError as exc:
        raise ReportError(f"{role} {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure means "not a result we can read"
        raise ReportError(f"{role} {path}: cannot be read as a cbecsim result "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if "scenario" in result.dims:
        raise ReportError(f"{role} {path} is a sweep store ({result.sizes['scenario']} scenarios); "
                          "cbecsim report takes one run -- analyse sweeps with cbecsim.analysis "
                          "(sobol_indices, scenario_discovery, kpi_table)")
    try:
        check_result(result, f"{role} {path}")
    except ResultError as exc:
        raise ReportError(str(exc)) from None
    return result.load()


def output_path(results: Path, out: str | None, overwrite: bool) -> Path:
    """The report's path: ``--out`` or RESULTS with suffix .html; refuse what cannot be written."""
    path = Path(out) if out else results.with_suffix(".html")
    if path.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"--out {path}: the report is HTML: the name must end in .html")
    if path.exists() and not overwrite:
        raise ReportError(f"{path} already exists (pass --overwrite to replace it)")
    if path.is_dir():
        raise ReportError(f"{path} is a folder")
    try:
        refuse_foreign(path)  # --overwrite replaces only a report cbecsim wrote
    except OutputError as exc:
        raise ReportError(str(exc)) from None
    if problem := folder_problem(path):
        raise ReportError(problem)
    return path


def write_report(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` under a temporary name, then rename (never half-written)."""
    return write_text_atomically(path, text)


# --------------------------------------------------------------------------------------
# HTML pieces
# --------------------------------------------------------------------------------------

_STYLE = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
     color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;
     margin-top:2em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.missing{color:#8a6d3b;background:#fcf8e3;font-style:italic}
.meets{color:#1b7e3c}.misses{color:#b02a2a}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
figure.chart{margin:.5em 0}figure.chart svg{max-width:100%;height:auto;display:block}
td.zero{color:#777}td.sig{font-weight:600}
.note{color:#555;font-size:.9em}pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em;
     max-height:30em}details summary{cursor:pointer;color:#0b5394}
"""


def _e(value) -> str:
    return html.escape(str(value))


def _figure_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{_e(figure.axes[0].get_title() if figure.axes else "figure")}" ' \
           f'src="data:image/png;base64,{encoded}">'


def _figure_svg(figure) -> str:
    """The figure as inline SVG (text kept as text), so its change-date markers
    (``id="change-date-YYYY-MM-DD-n"``) and labels can be read from the HTML."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    title = figure.axes[0].get_title() if figure.axes else "figure"
    return f'<figure class="chart" role="img" aria-label="{_e(title)}">{text[text.index("<svg"):].strip()}</figure>'


def _fmt(value: float, units: str) -> str:
    import numpy as np

    if value is None or not np.isfinite(value):
        return "n/a"
    if units == "1":
        return f"{100 * value:.1f}%"
    if units.startswith("USD"):
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _fmt_difference(value: float, units: str) -> str:
    """A difference: shares in percentage points."""
    import numpy as np

    if units == "1" and value is not None and np.isfinite(value):
        return f"{100 * value:+.1f} pp"
    return _fmt(value, units)


def _fmt_band(value, low, high, units: str) -> str:
    import numpy as np

    if value is None or not np.isfinite(value):
        return "n/a"
    if low is None or not np.isfinite(low):
        return _fmt(value, units)
    return f"{_fmt(value, units)} [{_fmt(low, units)}, {_fmt(high, units)}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[Sequence[str]] | None = None) -> str:
    out = ["<table>"]
    if any(header):
        out += ["<thead><tr>", *(f"<th>{_e(h)}</th>" for h in header), "</tr></thead>"]
    out.append("<tbody>")
    for i, row in enumerate(rows):
        out.append("<tr>")
        for j, cell in enumerate(row):
            css = classes[i][j] if classes else ""
            out.append(f'<td class="{css}">{cell}</td>' if css else f"<td>{cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _provenance(result, source: str) -> str:
    from ._common import scenario_config

    config = scenario_config(result)
    attrs = result.attrs
    strategies = result["strategy"].to_series().value_counts(sort=False)
    rows = [
        ("scenario", attrs.get("scenario", config.get("name", "?"))),
        ("description", " ".join(str(config.get("description", "")).split()) or "(none)"),
        ("results file", source),
        ("horizon", f"{config.get('horizon', {}).get('start', '?')} to {config.get('horizon', {}).get('end', '?')} "
                    f"({result.sizes['time']} periods of {attrs.get('resolution', '?')})"),
        ("replications", attrs.get("replications", result.sizes["replication"])),
        ("seed", attrs.get("seed", "?")),
        ("sellers", ", ".join(f"{k}: {v}" for k, v in strategies.items())),
        ("markets", ", ".join(map(str, result["market"].values))),
        ("policy regime sets", ", ".join(config.get("policy", []) or []) or "(none)"),
        ("cbecsim version", attrs.get("cbecsim_version", "?")),
        ("git revision", attrs.get("git_revision", "?")),
        ("money", attrs.get("money_units", "USD")),
    ]
    table = _table(["", ""], [[f"<b>{_e(k)}</b>", _e(v)] for k, v in rows])
    pretty = json.dumps(config, indent=2, sort_keys=True) if config else "(no config attribute)"
    return (f"{table}<details><summary>Full resolved config (JSON, as stored in the result's "
            f"<code>config</code> attribute)</summary><pre>{_e(pretty)}</pre></details>")


def _kpi_section(result) -> str:
    from .kpi import kpi_table

    table = kpi_table(result)
    strategies = list(dict.fromkeys(table["strategy"]))
    header = ["stage", "KPI", "target", *strategies, "definition"]
    rows, classes = [], []
    for _, block in table.groupby("kpi", sort=False):
        first = block.iloc[0]
        row = [str(first["stage"]), _e(first["label"]), _e(first["target"] or "")]
        css = ["", "", ""]
        for strategy in strategies:
            entry = block[block["strategy"] == strategy].iloc[0]
            if entry["status"].startswith("not modelled"):
                row.append(_e(entry["status"]))
                css.append("missing")
            else:
                text = _fmt_band(entry["value"], entry["ci_low"], entry["ci_high"], entry["units"])
                meets = entry["meets_target"]
                row.append(_e(text))
                css.append("num " + ("meets" if meets is True else "misses" if meets is False else ""))
        row.append(_e(f"{first['definition']} [{first['units']}]"))
        css.append("")
        rows.append(row)
        classes.append(css)
    note = ("<p class='note'>Mean over replications of each replication's KPI for the strategy's sellers, "
            "with its 95% t interval over replications. Percentages are shares. Stages follow the seed "
            "paper's Table 4 (1: 0-3 months, 2: 3-9 months, 3: 9-18 months); a KPI whose inputs the result "
            "does not carry is marked <i>not modelled</i> with the variable it needs.</p>")
    return note + _table(header, rows, classes)


def _shock_dates(result) -> list:
    """Dates of duty changes strictly inside the horizon, from the stored config."""
    import numpy as np
    import pandas as pd

    from ._common import scenario_config

    config = scenario_config(result)
    dates: set = set()
    try:
        from ..config import load_scenario

        scenario = load_scenario(config)
        dates = {change.date for change in scenario.effective_duty_schedule}
    except Exception:  # noqa: BLE001 - fall back to the config's own duty changes
        dates = {dt.date.fromisoformat(str(c["date"])) for c in config.get("duty_schedule", []) if "date" in c}
    start = pd.Timestamp(result["time"].values[0]).date()
    end = pd.Timestamp(result["period_end"].values[-1]).date() if "period_end" in result.coords else None
    inside = sorted(d for d in dates if d > start and (end is None or d <= end))
    return [np.datetime64(d) for d in inside]


def _survival_section(result, shock_dates: Sequence | None) -> str:
    import numpy as np
    import pandas as pd

    from .plots import survival_plot
    from .stats import describe
    from .survival import hazard_around, kaplan_meier, median_survival

    dates = list(shock_dates) if shock_dates is not None else _shock_dates(result)
    curves = kaplan_meier(result)
    medians = median_survival(curves)
    share = describe(result, "survival", level="replication", ci=0.95, method="bootstrap", bootstrap="percentile",
                     quantiles=(0.5,), n_boot=1000, seed=0)
    rows = []
    for strategy in curves["strategy"].values:
        m = medians.sel(strategy=strategy)
        s = share.sel(strategy=strategy)

        def day(value):
            if not np.isfinite(value):
                return "not reached"
            date = pd.Timestamp(curves.attrs["horizon_start"]) + pd.Timedelta(days=float(value))
            return f"{date.date()} (day {value:.0f})"

        alive = _fmt_band(float(s["mean_value"]), float(s["mean_low"]), float(s["mean_high"]), "1")
        rows.append([_e(strategy), _e(alive),
                     _e(day(float(m["median_days"]))),
                     _e(f"{day(float(m['median_low_days']))} .. {day(float(m['median_high_days']))}")])
    parts = [_figure_svg(survival_plot(curves, marks=dates)),
             "<p class='note'>Kaplan-Meier estimate over seller-replications (sellers that survived the "
             "horizon are censored at its end), 95% Greenwood band on the log(-log) scale.</p>",
             _table(["strategy", "alive at horizon end [95% bootstrap CI over replications]", "median survival",
                     "median 95% CI"], rows)]
    if dates:
        hazard = hazard_around(result, dates, window_days=28)
        rows = []
        for date in hazard["date"].values:
            for strategy in hazard["strategy"].values:
                h = hazard.sel(date=date, strategy=strategy)
                per_1000 = lambda v: "n/a" if not np.isfinite(v) else f"{1000 * v:.2f}"  # noqa: E731
                ratio = float(h["rate_ratio"])
                rows.append([_e(str(pd.Timestamp(date).date())), _e(strategy),
                             _e(f"{per_1000(float(h['hazard'].sel(window='before')))} "
                                f"({int(h['exits'].sel(window='before'))} exits)"),
                             _e(f"{per_1000(float(h['hazard'].sel(window='after')))} "
                                f"({int(h['exits'].sel(window='after'))} exits)"),
                             _e("n/a" if not np.isfinite(ratio) else
                                f"{ratio:.2f} [{float(h['rate_ratio_low']):.2f}, {float(h['rate_ratio_high']):.2f}]")])
        parts.append("<h3>Exit hazard around the duty-change dates</h3><p class='note'>Exits per 1,000 "
                     "seller-days at risk in the 28 days before and from each date; the ratio's 95% interval is "
                     "a percentile bootstrap over replications (n/a: no exits before, or no exposure).</p>")
        parts.append(_table(["date", "strategy", "before", "after", "after / before"], rows))
    return "".join(parts)


_FANS = (("cash", "cash at period end, all sellers of the strategy"),
         ("cm2", "CM2 per period (all markets)"),
         ("visibility", "share of attention (mean over served markets)"))


def _paired_section(result, other, names: tuple[str, str]) -> str:
    import numpy as np

    from .paired import paired_difference
    from .plots import distribution_plot

    outcomes = (("final_cash", "final cash"), ("cm2_margin", "CM2 margin"), ("survival", "alive at horizon end"),
                ("revenue", "revenue over the horizon"), ("visibility", "mean visibility"))
    rows = []
    for variable, label in outcomes:
        diff = paired_difference(result, other, variable)
        units = diff.attrs["units"]
        for strategy in diff["strategy"].values:
            d = diff.sel(strategy=strategy)
            ratio = float(d["variance_ratio"])
            rows.append([_e(label), _e(strategy), _e(_fmt(float(d["mean_a"]), units)),
                         _e(_fmt(float(d["mean_b"]), units)),
                         _e(f"{_fmt_difference(float(d['difference']), units)} "
                            f"[{_fmt_difference(float(d['difference_low']), units)}, "
                            f"{_fmt_difference(float(d['difference_high']), units)}]"),
                         _e(f"[{_fmt_difference(float(d['unpaired_low']), units)}, "
                            f"{_fmt_difference(float(d['unpaired_high']), units)}]"),
                         _e("n/a" if not np.isfinite(ratio) else f"{ratio:.3f}")])
    text = (f"<p class='note'>Per replication, the strategy's mean outcome in <b>{_e(names[0])}</b> minus the same "
            f"in <b>{_e(names[1])}</b> (same seed: replication r of both saw the same shocks). Paired 95% t "
            "interval over replications, beside the unpaired (Welch) interval that ignores the pairing; variance "
            "ratio = var(paired differences) / (var(A) + var(B)), below 1 when common random numbers help.</p>")
    table = _table(["outcome", "strategy", f"A: {names[0]}", f"B: {names[1]}", "A - B [paired 95% CI]",
                    "unpaired 95% CI", "variance ratio"], rows)
    figures = "".join(_figure_png(distribution_plot({names[0]: result, names[1]: other}, variable))
                      for variable in ("final_cash", "cm2_margin"))
    return text + table + figures


def run_labels(result, source: str = "", compare=None, compare_source: str = "",
               labels: Sequence[str] | None = None) -> tuple[str, str]:
    """Names of the two compared runs: ``labels`` where given, else the file names (the
    paths where the names are equal), else the scenario names."""
    from pathlib import PurePath

    def scenario(data, i: int) -> str:
        return str((data.attrs if data is not None else {}).get("scenario", f"run {i + 1}"))

    defaults = [PurePath(where).stem if where else scenario(data, i)
                for i, (data, where) in enumerate(((result, source), (compare, compare_source)))]
    if defaults[0] == defaults[1]:
        distinct_paths = source and compare_source and source != compare_source
        defaults = [str(source), str(compare_source)] if distinct_paths else [defaults[0], f"{defaults[1]} (2)"]
    given = [str(label) for label in (labels or [])]
    names = [given[i] if i < len(given) else defaults[i] for i in range(2)]
    if names[0] == names[1]:
        names[1] = f"{names[1]} (2)"
    return names[0], names[1]


def build_report(result, source: str = "", compare=None, compare_source: str = "",
                 shock_dates: Sequence | None = None, labels: Sequence[str] | None = None) -> str:
    """The report as one HTML string (see the module docstring).

    Parameters
    ----------
    result : run result Dataset
    source : where it was read from (shown in the provenance table)
    compare : another run result with the same seed, sellers and replications, or None
    compare_source : where ``compare`` was read from
    shock_dates : dates marked on the time charts and used by the hazard table (default:
        the duty-change dates inside the horizon, from the stored config)
    labels : names of ``result`` and ``compare`` in the paired section (default: their
        file names, see :func:`run_labels`)
    """
    import pandas as pd

    from ._common import check_result
    from .paired import check_paired
    from .plots import distribution_plot, fan_chart

    check_result(result)
    if compare is not None:
        check_paired(result, compare)
    name = result.attrs.get("scenario", "result")
    title = f"cbecsim report: {name}"
    dates = list(shock_dates) if shock_dates is not None else _shock_dates(result)
    sections = [f"<h1>{_e(title)}</h1>",
                f"<p class='note'>Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} by "
                f"<code>cbecsim report</code>. Intervals resample or vary whole replications (the independent "
                f"unit).</p>",
                "<h2>Scenario and provenance</h2>", _provenance(result, source),
                "<h2>KPIs (seed paper, Table 4)</h2>", _kpi_section(result),
                "<h2>Paths over time</h2><p class='note'>Quantile bands over the strategy's seller-replications: "
                "5-95% (light), 25-75% (dark), median (line).</p>"]
    for variable, caption in _FANS:
        sections.append(f"<h3>{_e(caption)}</h3>")
        sections.append(_figure_svg(fan_chart(result, variable, marks=dates)))
    if dates:
        listed = _e(", ".join(str(pd.Timestamp(d).date()) for d in dates))
        sections.append(f"<p class='note'>Dashed lines: the duty-change dates ({listed}).</p>")
    sections.append("<h2>Survival</h2>")
    sections.append(_survival_section(result, dates))
    sections.append("<h2>Outcome distributions</h2>")
    for variable in ("final_cash", "cm2_margin"):
        sections.append(_figure_png(distribution_plot(result, variable)))
    if compare is not None:
        names = run_labels(result, source, compare, compare_source, labels)
        sections.append(f"<h2>Paired differences: {_e(names[0])} - {_e(names[1])}</h2>")
        sections.append(f"<p class='note'>Compared with {_e(compare_source or names[1])}.</p>")
        sections.append(_paired_section(result, compare, names))
    return _page(title, sections)


def _page(title: str, sections: Sequence[str]) -> str:
    body = "\n".join(sections)
    from .. import __version__

    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta name="generator" content="cbecsim {_e(__version__)}">'
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


# --------------------------------------------------------------------------------------
# The shock page
# --------------------------------------------------------------------------------------

#: Outcomes of the per-change tables, and of the shock fan charts.
SHOCK_TABLE_OUTCOMES = ("cm2_margin", "survival", "visibility", "revenue", "price", "duty_paid")
SHOCK_FANS = (
    ("cm2_margin", "CM2 margin per period"),
    ("survival", "share of sellers still trading"),
    ("visibility", "share of attention"),
    ("cm2", "CM2 per seller and period"),
    ("price", "mean price (revenue / units)"),
    ("duty_paid", "duty paid per seller and period"),
)


def _effect_cell(effects, group, outcome, window, prefix: str = "") -> tuple[str, str]:
    """(text, css class) of one effect with its interval; bold where the interval excludes 0."""
    import numpy as np

    from .effects import format_effect

    row = effects.sel(group=group, outcome=outcome, window=window)
    value = float(row[prefix or "effect"])
    low, high = float(row["low"]), float(row["high"])
    units = str(effects["units"].sel(outcome=outcome).values)
    css = "num"
    if np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0):
        css += " sig"
    elif value == 0 and low == 0 and high == 0:
        css += " zero"
    text = format_effect(value, low, high, units)
    point, _, interval = text.partition(" [")
    if not interval:
        return _e(text), css
    return f"{_e(point)}<br><small>[{_e(interval)}</small>", css


def _effects_table(effects, window: str, outcomes: Sequence[str], variable: str = "effect") -> str:
    import numpy as np

    header = ["group", *[f"{o} [{effects['units'].sel(outcome=o).values}]" for o in outcomes], "variance ratio"]
    rows, classes = [], []
    for group in effects["group"].values:
        row, css = [_e(group)], [""]
        for outcome in outcomes:
            text, cls = _effect_cell(effects, group, outcome, window, variable)
            row.append(text)
            css.append(cls)
        ratios = [float(effects["variance_ratio"].sel(group=group, outcome=o, window=window)) for o in outcomes[:3]]
        row.append(_e(" / ".join("n/a" if not np.isfinite(r) else f"{r:.2f}" for r in ratios)))
        css.append("num")
        rows.append(row)
        classes.append(css)
    return _table(header, rows, classes)


def _window_span(effects, window: str) -> str:
    import pandas as pd

    chosen = effects.sel(window=window)
    first, last = chosen["covers_start"].values, chosen["covers_end"].values
    if pd.isna(first):
        return "no output period"
    return f"{pd.Timestamp(first).date()} to {pd.Timestamp(last).date()}"


def _removed_rows(removed) -> list[list[str]]:
    """One row per (date, change name), the scopes of its per-kind entries beneath each other."""
    rows: dict[tuple, list[str]] = {}
    for change in removed:
        rows.setdefault((change.date, change.name, change.region), []).append(f"{_e(change.scope)}: {_e(change.sets)}")
    return [[_e(date), _e(name), _e(region), "<br>".join(parts)] for (date, name, region), parts in rows.items()]


def build_shock_report(shock) -> str:
    """The shock page as one HTML string.

    ``shock`` is a :class:`cbecsim.shock.ShockResult` (or any object with its attributes:
    ``plan``, ``shocked``, ``counterfactual``, ``effects``, ``survival``, ``compare``,
    ``interaction``, ``compare_overrides``). The page holds what was removed and where the
    worlds fork, one effect table per change date (the window from the change to the
    horizon end), the event windows, fan charts of the paired difference over time with a
    marker at every change date, the Kaplan-Meier curves of both worlds and their
    difference, every effect in a table, the difference in differences of a compare arm,
    and both worlds' configs.
    """
    import numpy as np

    from .effects import effect_paths
    from .plots import difference_fan_chart, survival_pair_plot

    plan, effects = shock.plan, shock.effects
    shocked, counterfactual = shock.shocked, shock.counterfactual
    name = shocked.attrs.get("scenario", plan.shocked.name)
    title = f"cbecsim shock report: {name}"
    dates = [np.datetime64(d) for d in plan.change_dates]
    windows = list(effects["window"].values)
    before = next((w for w in windows if w.startswith("before")), None)
    if before is None:
        check = (f"<p class='note'>Sellers see the change coming from the horizon start ({_e(plan.fork_date)}): no "
                 "window has the worlds identical.</p>")
    else:
        before_max = float(np.nanmax(np.abs(effects["effect"].sel(window=before).values), initial=0.0))
        before_nan = int(np.isnan(effects["effect"].sel(window=before).values).sum())
        check = (f"<p class='note'>Check: before {_e(plan.fork_date)} (window <i>{_e(before)}</i>, "
                 f"{_e(_window_span(effects, before))}) the largest |effect| over every group and outcome is "
                 f"{before_max:g}{f' ({before_nan} undefined)' if before_nan else ''}: the worlds are identical "
                 "there.</p>")
    if plan.fork_date < plan.change_dates[0]:
        check += (f"<p class='note'>From {_e(plan.fork_date)} sellers see the first removed change coming "
                  f"(announced, within anticipation_days = {_e(plan.shocked.anticipation_days)}) and may act on it "
                  "before it is in force: the window <i>anticipation</i> holds those effects.</p>")
    replications = shocked.sizes["replication"]
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='note'>Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} by "
        f"<code>cbecsim shock</code>. Effects are shocked minus counterfactual, paired replication by "
        f"replication (same seed {_e(shocked.attrs.get('seed', '?'))}, {replications} replications: common random "
        "numbers); intervals are 95% paired t intervals over replications; bold: the interval excludes 0.</p>",
        "<h2>The two worlds</h2>",
        f"<p>{_e(plan.describe())}.</p>",
        _table(["date", "change removed", "region", "scope: what it sets"], _removed_rows(plan.removed)),
        check,
    ]
    sections.append("<h2>Effect after each change</h2>")
    for date in plan.change_dates:
        window = f"after {date}"
        later = [d for d in plan.change_dates if d > date]
        note = f" It includes the later changes ({', '.join(map(str, later))})." if later else ""
        sections.append(
            f"<h3>From {_e(date)} to the horizon end</h3><p class='note'>Output periods "
            f"{_e(_window_span(effects, window))}.{_e(note)} Variance ratio (CM2 margin / survival / "
            "visibility): var(paired differences) / (var(shocked) + var(counterfactual)); below 1 the "
            "pairing narrows the interval.</p>"
        )
        sections.append(_effects_table(effects, window, SHOCK_TABLE_OUTCOMES))
    sections.append("<h2>Event windows</h2><p class='note'>The first 4 and 12 weeks from each change date.</p>")
    for date in plan.change_dates:
        for weeks in (4, 12):
            window = f"{weeks} weeks from {date}"
            if window in windows:
                sections.append(
                    f"<h3>{_e(window)}</h3><p class='note'>Output periods {_e(_window_span(effects, window))}.</p>"
                )
                sections.append(_effects_table(effects, window, SHOCK_TABLE_OUTCOMES))
    paths = effect_paths(shocked, counterfactual, outcomes=[o for o, _ in SHOCK_FANS])
    sections.append(
        "<h2>Effects over time</h2><p class='note'>Per output period: the mean paired difference "
        "(line), its 95% interval (dark band) and the 5-95% range of the per-replication differences "
        "(light band). Dashed lines: the change dates.</p>"
    )
    for outcome, caption in SHOCK_FANS:
        sections.append(f"<h3>{_e(caption)}</h3>")
        sections.append(_figure_svg(difference_fan_chart(paths, outcome, marks=dates)))
    sections.append("<h2>Survival in both worlds</h2>")
    sections.append(_figure_svg(survival_pair_plot(shock.survival, marks=dates)))
    sections.append(
        "<p class='note'>Kaplan-Meier estimates over seller-replications with 95% Greenwood bands; "
        "the difference's band resamples whole replications, the same draws in both worlds.</p>"
    )
    if shock.interaction is not None:
        arm = ", ".join(shock.compare_overrides)
        sections.append(f"<h2>Does <code>{_e(arm)}</code> change the shock's effect?</h2>")
        sections.append(
            "<p class='note'>Difference in differences: the shock's effect in the compare arm "
            f"(<code>{_e(arm)}</code>) minus its effect as configured, formed per replication on the same "
            "random streams, with its paired 95% interval.</p>"
        )
        for date in plan.change_dates:
            window = f"after {date}"
            sections.append(f"<h3>From {_e(date)} to the horizon end</h3>")
            sections.append(_effects_table(shock.interaction, window, SHOCK_TABLE_OUTCOMES, "interaction"))
    rows = []
    frame = shock.to_frame() if hasattr(shock, "to_frame") else None
    if frame is not None:
        for record in frame.itertuples(index=False):
            from .effects import format_effect, format_value

            rows.append(
                [
                    _e(record.group),
                    _e(record.outcome),
                    _e(record.window),
                    _e(format_value(record.shocked, record.units)),
                    _e(format_value(record.counterfactual, record.units)),
                    _e(format_effect(record.effect, record.low, record.high, record.units)),
                    _e("n/a" if not np.isfinite(record.variance_ratio) else f"{record.variance_ratio:.3f}"),
                ]
            )
        sections.append(
            "<h2>Every effect</h2><details><summary>All groups, outcomes and windows "
            f"({len(rows)} rows; also in effects.csv)</summary>"
        )
        sections.append(
            _table(
                ["group", "outcome", "window", "shocked", "counterfactual", "effect [95% CI]", "variance ratio"], rows
            )
        )
        sections.append("</details>")
    sections.append("<h2>Provenance</h2>")
    sections.append("<h3>Shocked world</h3>" + _provenance(shocked, "shocked"))
    sections.append("<h3>Counterfactual world</h3>" + _provenance(counterfactual, "counterfactual"))
    return _page(title, sections)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _date(text: str) -> str:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None
    return text


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``report`` command to the main ``cbecsim`` parser's subparsers."""
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of a saved result",
        description="Write one self-contained HTML file (images embedded, no network needed) with the "
        "scenario and its provenance, the seed paper's Table 4 KPIs per strategy, fan charts, "
        "survival curves and, with --compare, paired differences against another result run "
        "with the same seed.",
    )
    parser.add_argument("results", metavar="RESULTS", help="a result saved by `cbecsim run --out` (.nc or .zarr)")
    parser.add_argument(
        "--out", "-o", metavar="PATH.html", help="where to write the report (default: RESULTS with the suffix .html)"
    )
    parser.add_argument(
        "--compare",
        metavar="OTHER",
        help="another result of the same sellers run with the same seed and replications "
        "(common random numbers): adds paired differences RESULTS - OTHER",
    )
    parser.add_argument(
        "--shock-date",
        dest="shock_dates",
        metavar="YYYY-MM-DD",
        action="append",
        type=_date,
        help="date for the exit-hazard table (repeatable; default: the duty-change dates inside the horizon)",
    )
    parser.add_argument(
        "--label",
        dest="labels",
        metavar="NAME",
        action="append",
        default=[],
        help="name of RESULTS in the paired section; give it twice to name --compare too (default: the file names)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.set_defaults(handler=run_command)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Handle ``cbecsim report``; returns the exit code."""
    from ._common import ResultError

    try:
        results_path = Path(args.results)
        result = load_result(results_path, "RESULTS")
        compare = load_result(args.compare, "--compare") if args.compare else None
        out = output_path(results_path, args.out, args.overwrite)
        if compare is not None:
            from .paired import check_paired

            try:
                check_paired(result, compare)
            except ResultError as exc:
                raise ReportError(f"--compare {args.compare}: {exc}") from None
        if len(args.labels) > (2 if compare is not None else 1):
            raise ReportError(
                f"--label: give at most {2 if compare is not None else 1} (RESULTS"
                f"{' and --compare' if compare is not None else ''}), got {len(args.labels)}"
            )
        text = build_report(result, str(results_path), compare, str(args.compare or ""), args.shock_dates, args.labels)
        write_report(text, out)
    except (ReportError, ResultError) as exc:
        for line in str(exc).splitlines() or [""]:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {out}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cbecsim.analysis.report report RESULTS ...`` (the command on its own)."""
    parser = argparse.ArgumentParser(prog="cbecsim")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
