"""Shared helpers for the tests: small, fast scenarios derived from the shipped configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cbecsim

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TESTS = Path(__file__).resolve().parent


def short(config: str = "baseline.yaml", days: int = 60, **overrides) -> cbecsim.Scenario:
    """A shipped config cut to ``days`` days, with extra ``{"a.b": value}`` overrides."""
    scenario = cbecsim.load_scenario(CONFIGS / config)
    end = scenario.horizon.start.toordinal() + days - 1
    import datetime as dt

    values = {"horizon.end": dt.date.fromordinal(end).isoformat()}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return cbecsim.load_scenario(CONFIGS / config, values)


def cli(*args: str, cwd: Path | None = None, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m cbecsim.cli ARGS`` and capture its output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "cbecsim.cli", *args], capture_output=True, text=True, cwd=cwd or ROOT,
        env=env, timeout=600,
    )
