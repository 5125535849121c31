"""Config validation, overrides and the CLI's refusal of bad input (exit 2, no output)."""

import pytest

import cbecsim
from cbecsim.config import ConfigError, apply_overrides, parse_override
from helpers import CONFIGS, cli


@pytest.mark.parametrize("name", ["baseline.yaml", "us_de_minimis_2025.yaml", "eu_fixed_duty_2026.yaml"])
def test_shipped_configs_validate(name):
    scenario = cbecsim.load_scenario(CONFIGS / name)
    assert scenario.horizon.days >= 365
    assert sum(p.count for p in scenario.sellers) == 60
    assert len(scenario.markets) == 3


def _problems(data):
    with pytest.raises(ConfigError) as info:
        cbecsim.load_scenario(data)
    return dict(info.value.problems)


def _minimal():
    return {
        "horizon": {"start": "2025-01-01", "end": "2025-01-31"},
        "markets": [{"region": "US", "category": "charging", "shoppers_per_day": 100, "reference_price": 20}],
        "sellers": [{"strategy": "traffic_first", "count": 2, "markets": ["US/charging"]}],
    }


def test_minimal_config_is_valid():
    scenario = cbecsim.load_scenario(_minimal())
    assert scenario.markets[0].name == "US/charging"


@pytest.mark.parametrize(
    "override, path, fragment",
    [
        ({"markets.0.colour": "red"}, "markets.0.colour", "unknown key"),
        ({"markets.0.shoppers_per_day": "many"}, "markets.0.shoppers_per_day", "valid number"),
        ({"markets.0.shoppers_per_day": -5}, "markets.0.shoppers_per_day", "greater than or equal to 0"),
        ({"horizon.end": "2024-12-31"}, "horizon", "before start"),
        ({"sellers.0.strategy": "growth_hacker"}, "sellers.0.strategy", "unknown strategy"),
        ({"sellers.0.markets": ["US/toys"]}, "sellers.0.markets.0", "unknown market"),
        ({"sellers.0.params.unit_cost": {"dist": "lognormal", "median": -1, "sigma": 0.1}},
         "sellers.0.params.unit_cost.median", "greater than 0"),
        ({"sellers.0.strategy": "user_strategies:NotAStrategy"}, "sellers.0.strategy", "missing review()"),
        ({"sellers.0.strategy": "no_such_module_xyz:Thing"}, "sellers.0.strategy", "cannot import module"),
    ],
)
def test_bad_config_names_the_field(override, path, fragment):
    problems = _problems(apply_overrides(_minimal(), override))
    assert path in problems, problems
    assert fragment in problems[path]


def test_every_problem_reported_at_once():
    data = apply_overrides(_minimal(), {"markets.0.shoppers_per_day": -1, "sellers.0.count": -2, "seed": "x"})
    problems = _problems(data)
    assert {"markets.0.shoppers_per_day", "sellers.0.count", "seed"} <= set(problems)


def test_overrides_address_lists_by_index_and_name():
    data = apply_overrides(
        _minimal(),
        ["markets.US/charging.shoppers_per_day=250", "sellers.traffic_first.count=7", "replications=3"],
    )
    assert data["markets"][0]["shoppers_per_day"] == 250
    assert data["sellers"][0]["count"] == 7
    assert data["replications"] == 3
    with pytest.raises(ConfigError):
        apply_overrides(_minimal(), ["markets.9.shoppers_per_day=1"])
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


def test_strategy_params_are_validated():
    from cbecsim.api import make_strategies

    scenario = cbecsim.load_scenario(apply_overrides(_minimal(), {"sellers.0.strategy_params": {"ad_shares": 1}}))
    with pytest.raises(ValueError, match="ad_shares"):
        make_strategies(scenario)


def test_cli_refuses_bad_config_with_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "result.nc"
    result = cli(
        "run", str(CONFIGS / "baseline.yaml"), "--out", str(out),
        "--set", "markets.0.shoppers_per_day=-3", "--set", "horizon.end=2024-01-01",
        "--set", "sellers.0.strategy=nope", "--set", "colour=blue",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 4, result.stderr
    assert any(line.startswith("error: markets.0.shoppers_per_day:") for line in lines)
    assert any(line.startswith("error: horizon:") for line in lines)
    assert any(line.startswith("error: sellers.0.strategy:") for line in lines)
    assert any(line.startswith("error: colour:") for line in lines)
    assert list(tmp_path.iterdir()) == []


def test_cli_validate_and_missing_file():
    ok = cli("validate", str(CONFIGS / "us_de_minimis_2025.yaml"))
    assert ok.returncode == 0 and ok.stdout.startswith("ok: us_de_minimis_2025")
    missing = cli("validate", "no/such/file.yaml")
    assert missing.returncode == 2 and "file not found" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_help_explains_every_option():
    text = cli("run", "--help").stdout
    for option in ("--replications", "--seed", "--out", "--set", "--threads", "--batch-size",
                   "--resolution", "--overwrite"):
        assert option in text
    assert cli("validate", "--help").returncode == 0


def test_cli_help_shows_percent_signs_once():
    """argparse %-formats argument help but not descriptions: a doubled %% in a
    description is printed as is."""
    for command in ("run", "validate", "experiment", "sweep", "report", "policies"):
        text = cli(command, "--help").stdout
        assert text and "%%" not in text, command
    for command in ("list", "show", "duty"):
        text = cli("policies", command, "--help").stdout
        assert text and "%%" not in text, command
