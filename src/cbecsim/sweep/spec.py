"""Sweep specs: YAML read with the safe loader, validated with pydantic, checked in full.

A spec names a base scenario (a YAML path relative to the spec file, plus optional
``set:`` overrides), the ``factors`` to vary (each a config field by dotted path, with
``levels`` or a ``{min, max}`` range), the ``design`` (grid, lhs, sobol), the number of
``points`` (lhs, sobol), ``replications`` per point and the ``seed``. Every factor is
checked against the base scenario before any work: each level, or each end of a range,
is applied and the scenario validated, so an unknown path, an empty level list or
``min > max`` is refused with :class:`~cbecsim.config.ConfigError` before a store exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..compile import RESOLUTIONS, compile_scenario
from ..config import ConfigError, Scenario, _did_you_mean, apply_overrides, load_scenario, read_scenario_file, read_yaml

__all__ = ["Factor", "ClusterOptions", "SweepSpec", "LoadedSweep", "load_sweep_spec", "factor_problems"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Names a factor coordinate may not take: dims, coords and variables of a result.
RESERVED_NAMES = frozenset(
    {"scenario", "replication", "time", "seller", "market", "period_end", "strategy", "population", "origin",
     "home_market", "region", "category", "served", "exit_day", "initial_cash", "design_unit"}
)
#: Config paths a factor may not vary, and why.
_FORBIDDEN_PATHS = {
    "seed": "the sweep's seed is the spec's 'seed' (common random numbers need one seed for all points)",
    "replications": "replications per point are the spec's 'replications'",
    "horizon": "the horizon sets the time dim, which all points share: set it in the spec's 'set:'",
    "name": "the scenario name is not a model parameter",
    "description": "the description is not a model parameter",
}


class _Strict(BaseModel):
    """Unknown keys are errors; no number field accepts NaN or +-infinity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Factor(_Strict):
    """One varied config field: ``levels`` (any YAML values) or a numeric range."""

    path: str = Field(min_length=1, description="dotted config path, list items by index or name")
    name: str | None = Field(default=None, description="coordinate name; default: the path with _ for . and /")
    levels: list[Any] | None = Field(default=None, description="the values to use")
    min: float | None = None
    max: float | None = None
    distribution: Literal["uniform", "loguniform", "integer"] | None = Field(
        default=None, description="how a range is sampled (default uniform); not for levels"
    )

    @field_validator("path")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if any(not part for part in value.split(".")):
            raise ValueError(f"expected a dotted path like sellers.0.count, got {value!r}")
        root = value.split(".", 1)[0]
        if root in _FORBIDDEN_PATHS:
            raise ValueError(f"{value!r} cannot be a factor: {_FORBIDDEN_PATHS[root]}")
        return value

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _NAME.match(value):
            raise ValueError(f"expected letters, digits and _ (not starting with a digit), got {value!r}")
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is a dim, coordinate or variable of the results; choose another name")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "Factor":
        has_range = self.min is not None or self.max is not None
        if self.levels is not None and has_range:
            raise ValueError("give either levels or a range {min, max}, not both")
        if self.levels is None and not has_range:
            raise ValueError("give levels: [...] or a range with min and max")
        if self.levels is not None:
            if len(self.levels) == 0:
                raise ValueError("levels is empty: give at least one value")
            if self.distribution is not None:
                raise ValueError("distribution applies to a range {min, max}, not to levels")
            return self
        if self.min is None or self.max is None:
            raise ValueError("a range needs both min and max")
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError("min and max must be finite numbers")
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        if self.distribution == "loguniform" and self.min <= 0:
            raise ValueError(f"a loguniform range needs min > 0, got {self.min:g}")
        if self.distribution == "integer" and (self.min != int(self.min) or self.max != int(self.max)):
            raise ValueError("an integer range needs whole-number min and max")
        return self

    @property
    def label(self) -> str:
        return self.name or re.sub(r"\W", "_", self.path)

    @property
    def is_range(self) -> bool:
        return self.levels is None

    def extremes(self) -> list[Any]:
        """The values checked against the base scenario before any work."""
        if self.levels is not None:
            return list(self.levels)
        assert self.min is not None and self.max is not None  # _one_kind: a range has both
        if self.distribution == "integer":
            return [int(self.min), int(self.max)]
        return [float(self.min), float(self.max)]


class ClusterOptions(_Strict):
    """dask-jobqueue job options for ``--cluster slurm|pbs`` (CLI flags override them)."""

    queue: str | None = Field(default=None, description="partition (SLURM) or queue (PBS)")
    account: str | None = None
    cores: int = Field(default=1, ge=1, description="cores per job; one single-threaded worker process each")
    memory: str = Field(default="2GB", description="memory per job, e.g. 4GB")
    walltime: str = Field(default="01:00:00", description="per job, HH:MM:SS")
    jobs: int = Field(default=1, ge=1, description="jobs to start")
    job_extra: list[str] = Field(default_factory=list, description="extra #SBATCH / #PBS directives")
    local_directory: str | None = Field(default=None, description="worker scratch directory")
    log_directory: str | None = Field(default=None, description="where job stdout/stderr go")
    startup_timeout: float = Field(default=600.0, gt=0, description="seconds to wait for the first worker")


class SweepSpec(_Strict):
    """A parameter sweep over one base scenario."""

    name: str = "sweep"
    description: str = ""
    base: str = Field(min_length=1, description="scenario YAML, relative to the spec file")
    set: dict[str, Any] = Field(default_factory=dict, description="overrides applied to the base first")
    factors: list[Factor] = Field(min_length=1)
    design: Literal["grid", "lhs", "sobol"] = "grid"
    points: int | None = Field(default=None, ge=1, description="lhs: points; sobol: base samples N (a power of 2)")
    second_order: bool = Field(default=False, description="sobol: sample for second-order indices too")
    replications: int | None = Field(default=None, ge=1, description="per point (default: the base scenario's)")
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="default: the base scenario's")
    resolution: Literal["day", "week", "month"] = "day"
    batch_size: int | None = Field(default=None, ge=1, description="replications simulated together")
    points_per_task: int | None = Field(default=None, ge=1, description="default: chosen from memory and count")
    replications_per_task: int | None = Field(default=None, ge=1, description="default: all, or by memory")
    cluster: ClusterOptions = Field(default_factory=ClusterOptions)

    @model_validator(mode="after")
    def _design(self) -> "SweepSpec":
        labels = [f.label for f in self.factors]
        duplicated = sorted({n for n in labels if labels.count(n) > 1})
        if duplicated:
            raise ValueError(f"factors: names must be unique ({', '.join(duplicated)} repeated)")
        if self.design == "grid":
            ranged = [i for i, f in enumerate(self.factors) if f.is_range]
            if ranged:
                raise ValueError(
                    "factors: a grid needs levels for every factor (factors "
                    f"{', '.join(map(str, ranged))} are ranges); use design: lhs or sobol for ranges"
                )
            if self.points is not None:
                raise ValueError("points: a grid has one point per combination of levels; drop 'points'")
        else:
            if self.points is None:
                raise ValueError(f"points: design {self.design} needs 'points'")
            if self.design == "sobol" and self.points & (self.points - 1):
                raise ValueError(
                    f"points: Sobol' sampling needs a power of 2 base samples (got {self.points}; "
                    f"try {1 << (self.points - 1).bit_length()})"
                )
        if self.second_order and self.design != "sobol":
            raise ValueError("second_order: only for design: sobol")
        return self


def _format_validation(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        loc = [str(p) for p in item["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        path = ".".join(([prefix] if prefix else []) + loc)
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if item["type"] == "extra_forbidden":
            message = "unknown key (not a field of this section)" + _did_you_mean(SweepSpec, loc)
        problems.append((path, message))
    return problems


@dataclasses.dataclass(frozen=True)
class LoadedSweep:
    """A validated spec with its resolved base scenario.

    ``base_data`` is the raw base mapping with the spec's ``set:`` already applied; a
    point's scenario is ``load_scenario(base_data, point_overrides)``.
    """

    spec: SweepSpec
    spec_path: Path | None
    base_path: Path | None
    base_data: dict
    base: Scenario
    structural: tuple[int, ...]  # factors whose levels change seller/market coordinates

    @property
    def seed(self) -> int:
        return self.base.seed if self.spec.seed is None else self.spec.seed

    @property
    def replications(self) -> int:
        return self.base.replications if self.spec.replications is None else self.spec.replications

    def fingerprint(self) -> str:
        """Hash of everything that determines the store's contents."""
        from .. import __version__

        content = {
            "base": self.base.model_dump(mode="json"),
            "spec": self.spec.model_dump(mode="json", exclude={"cluster", "description", "name", "base"}),
            "seed": self.seed,
            "replications": self.replications,
            "version": __version__,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _structure(scenario: Scenario, resolution: str) -> tuple:
    compiled = compile_scenario(scenario, resolution)
    dims = (compiled.n_periods, compiled.n_sellers, tuple(compiled.market_names), compiled.dates[0])
    coords = (
        tuple(compiled.population_strategies[p] for p in compiled.seller_population),
        tuple(compiled.population_labels[p] for p in compiled.seller_population),
        tuple(compiled.origins[o] for o in compiled.seller_origin),
        compiled.seller_served.tobytes(),
        tuple(m.region for m in scenario.markets),
        tuple(m.category for m in scenario.markets),
    )
    return dims, coords


def factor_problems(spec: SweepSpec, base_data: dict, base: Scenario) -> tuple[list[tuple[str, str]], tuple[int, ...]]:
    """Apply each level (or range end) of every factor to the base and validate it.

    Returns the problems, one ``(path, message)`` each, and the indices of the factors
    whose levels change seller or market coordinates (strategy, population, origin,
    served markets) without changing dims.
    """
    from ..api import make_strategies

    problems: list[tuple[str, str]] = []
    structural = []
    base_dims, base_coords = _structure(base, spec.resolution)
    for i, factor in enumerate(spec.factors):
        changes_coords = False
        where = "levels" if factor.levels is not None else "range"
        for j, value in enumerate(factor.extremes()):
            at = f"factors.{i}.{where}.{j}" if factor.levels is not None else f"factors.{i}.{('min', 'max')[j]}"
            try:
                scenario = load_scenario(base_data, {factor.path: value})
                make_strategies(scenario)
            except ConfigError as exc:
                for path, message in exc.problems:
                    problems.append((at, f"{factor.path} = {value!r}: {path}: {message}" if path else message))
                continue
            except ValueError as exc:  # strategy_params refused by a strategy
                for path, message in getattr(exc, "problems", [("", str(exc))]):
                    problems.append((at, f"{factor.path} = {value!r}: {path + ': ' if path else ''}{message}"))
                continue
            dims, coords = _structure(scenario, spec.resolution)
            if dims != base_dims:
                what = []
                if dims[1] != base_dims[1]:
                    what.append(f"{dims[1]} sellers instead of {base_dims[1]}")
                if dims[2] != base_dims[2]:
                    what.append(f"markets {', '.join(dims[2])} instead of {', '.join(base_dims[2])}")
                if dims[0] != base_dims[0] or dims[3] != base_dims[3]:
                    what.append("a different time axis")
                problems.append((
                    at,
                    f"{factor.path} = {value!r} gives {'; '.join(what)}: every point of a sweep must share "
                    "the time, seller and market dims (vary a population's strategy or parameters, "
                    "not seller counts or markets)",
                ))
                continue
            changes_coords |= coords != base_coords
        if changes_coords:
            structural.append(i)
    return problems, tuple(structural)


def load_sweep_spec(source: str | os.PathLike | Mapping[str, Any], base_dir: str | Path | None = None) -> LoadedSweep:
    """Read, validate and check a sweep spec before any work.

    Parameters
    ----------
    source : path to a YAML spec, or a mapping
    base_dir : folder that a relative ``base`` is resolved against (default: the spec
        file's folder, or the current directory for a mapping)

    Raises
    ------
    ConfigError
        One ``(path, message)`` per problem.
    """
    spec_path: Path | None = None
    if isinstance(source, Mapping):
        data = dict(source)
        folder = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        spec_path = Path(source)
        data = read_yaml(spec_path)
        folder = Path(base_dir) if base_dir is not None else spec_path.parent
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc)) from None
    if spec.resolution not in RESOLUTIONS:  # pragma: no cover - Literal already checks
        raise ConfigError([("resolution", f"must be one of {', '.join(RESOLUTIONS)}")])

    base_path = Path(spec.base) if Path(spec.base).is_absolute() else folder / spec.base
    try:
        raw = read_scenario_file(base_path)  # the base may `extends:` another, as for `cbecsim run`
    except ConfigError as exc:
        problems = [("base", message if not path else f"{path}: {message}") for path, message in exc.problems]
        raise ConfigError(problems) from None
    try:
        base = load_scenario(raw, spec.set)
    except ConfigError as exc:
        raise ConfigError([("set" if spec.set else "base", f"{p}: {m}" if p else m) for p, m in exc.problems]) from None
    base_data = apply_overrides(raw, spec.set)
    problems, structural = factor_problems(spec, base_data, base)
    if problems:
        raise ConfigError(problems)
    return LoadedSweep(spec, spec_path, base_path, base_data, base, structural)
