"""Analysis of outcome distributions: statistics, survival, paired comparisons, KPIs,
sensitivity, plots and the HTML report.

Works on result Datasets from :func:`cbecsim.run` / ``cbecsim run --out`` and on sweep
stores (the same variables with a leading ``scenario`` dim and one coordinate per
factor along it). The replication is the independent unit throughout: intervals
resample or vary whole replications, never seller-replications one by one.

Quick tour::

    import cbecsim
    from cbecsim import analysis as ca

    result = cbecsim.open_results("us_2025.nc")
    ca.describe(result, "cm2_margin")                   # mean, quantiles, bootstrap CIs per strategy
    curves = ca.kaplan_meier(result)                    # survival per strategy, Greenwood CIs
    ca.median_survival(curves)
    ca.hazard_around(result, ["2025-05-02"])            # exits per seller-day before / after
    ca.paired_difference(shocked, baseline, "final_cash")   # common random numbers
    ca.kpi_table(result)                                # the seed paper's Table 4
    ca.shock_effects(shocked, counterfactual, ["2026-07-01"])  # effects per group, outcome, window
    ca.fan_chart(result, "cash").savefig("cash.png")

This package does not import the engine: it only reads results.
"""

from .._lazy import lazy_attributes

#: public name -> submodule; imported on first use so that ``cbecsim --help`` and the
#: CLI's registration of ``cbecsim report`` do not pay for matplotlib, scipy and SALib.
_WHERE = {
    "ResultError": "_common",
    "DERIVED_OUTCOMES": "_common",
    "check_result": "_common",
    "outcome": "_common",
    "replication_values": "_common",
    "combine_runs": "_common",
    "factor_names": "_common",
    "scenario_config": "_common",
    "describe": "stats",
    "bootstrap_ci": "stats",
    "mean_ci": "stats",
    "replications_needed": "stats",
    "kaplan_meier": "survival",
    "kaplan_meier_estimate": "survival",
    "median_survival": "survival",
    "hazard_around": "survival",
    "paired_difference": "paired",
    "paired_statistics": "paired",
    "check_paired": "paired",
    "kpi_table": "kpi",
    "KPIS": "kpi",
    "shock_effects": "effects",
    "interaction_effects": "effects",
    "effect_paths": "effects",
    "survival_difference": "effects",
    "window_values": "effects",
    "effects_frame": "effects",
    "OUTCOMES": "effects",
    "sobol_indices": "sensitivity",
    "scenario_discovery": "sensitivity",
    "DiscoveredBox": "sensitivity",
    "fan_chart": "plots",
    "survival_plot": "plots",
    "difference_fan_chart": "plots",
    "survival_pair_plot": "plots",
    "distribution_plot": "plots",
    "sensitivity_plot": "plots",
    "build_report": "report",
}


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())


__all__ = [
    "ResultError",
    "DERIVED_OUTCOMES",
    "KPIS",
    "check_result",
    "outcome",
    "replication_values",
    "combine_runs",
    "factor_names",
    "scenario_config",
    "describe",
    "bootstrap_ci",
    "mean_ci",
    "replications_needed",
    "kaplan_meier",
    "kaplan_meier_estimate",
    "median_survival",
    "hazard_around",
    "paired_difference",
    "paired_statistics",
    "check_paired",
    "kpi_table",
    "OUTCOMES",
    "shock_effects",
    "interaction_effects",
    "effect_paths",
    "survival_difference",
    "window_values",
    "effects_frame",
    "sobol_indices",
    "scenario_discovery",
    "DiscoveredBox",
    "fan_chart",
    "survival_plot",
    "difference_fan_chart",
    "survival_pair_plot",
    "distribution_plot",
    "sensitivity_plot",
    "build_report",
]
