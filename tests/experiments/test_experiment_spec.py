"""Validation of experiment specs (no simulation)."""

from __future__ import annotations

import pytest

from cbecsim.config import ConfigError
from cbecsim.experiment import load_experiment

_SPEC = """
name: contrast_spec
question: q
replications: 3
check_replications: 2
arms: {{a: {{config: nowhere.yaml}}, b: {{config: nowhere.yaml}}}}
metrics:
  - {{name: m, statistic: cm2_margin, contrast: {contrast}}}
"""


def test_an_empty_contrast_is_refused_before_any_run(tmp_path):
    # An empty contrast summed no arm: run_experiment got the int 0 instead of one value
    # per replication and failed with a TypeError after simulating every arm.
    (tmp_path / "experiment.yaml").write_text(_SPEC.format(contrast="{}"))
    with pytest.raises(ConfigError) as caught:
        load_experiment(tmp_path)
    assert caught.value.problems == [
        (str(tmp_path / "experiment.yaml"),
         "metrics.0.contrast: expected at least one arm with its coefficient, got {}")
    ]


def test_a_contrast_with_arms_is_accepted(tmp_path):
    (tmp_path / "experiment.yaml").write_text(_SPEC.format(contrast="{a: 1, b: -1}"))
    spec, _ = load_experiment(tmp_path)
    assert spec.metrics[0].contrast == {"a": 1.0, "b": -1.0}
