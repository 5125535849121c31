"""Optimisation specs: YAML read with the safe loader, validated with pydantic, checked in full.

A spec names a base scenario (a YAML path relative to the spec file, plus optional
``set:`` overrides), the ``focal`` seller population whose levers are searched, the
``levers`` (config fields by dotted path, each a ``{min, max}`` range -- continuous or,
with ``type: integer``, whole numbers -- or a list of ``choices``), the ``objectives``
and ``constraints`` (outcomes of :data:`cbecsim.optimize.objectives.OUTCOMES`), the
``futures`` (named sets of overrides: duty schedule, FX, markets; optional weights), the
``robustness`` criterion across futures, ``replications`` per evaluation and, optionally,
``racing`` (successive halving that grows the replications of leading candidates).

A lever path may start with ``focal.``, which stands for ``sellers.<focal index>.``.
Every lever level (each choice, each end of a range) and every future is applied to the
base scenario and validated before any work, as sweeps do, so an unknown path, an empty
choice list or a future that changes the seller/market dims is refused with
:class:`~cbecsim.config.ConfigError` (one ``(path, message)`` per problem) before
anything is written.
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

from ..config import (
    BUILTIN_STRATEGIES,
    ConfigError,
    Scenario,
    apply_overrides,
    load_scenario,
    read_scenario_file,
    read_yaml,
)
from ..sweep.spec import ClusterOptions
from .objectives import OUTCOMES
from .robust import Direction

__all__ = ["Lever", "Objective", "Constraint", "Future", "Robustness", "Racing", "Compare", "OptimizeSpec",
           "LoadedOptimize", "load_optimize_spec"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Config paths a lever or future may not set, and why.
_FORBIDDEN_PATHS = {
    "seed": "the search's seed is the spec's 'seed' (common random numbers need one seed for every candidate)",
    "replications": "replications per evaluation are the spec's 'replications'",
    "horizon": "the horizon sets the time dim, which every evaluation shares: set it in the spec's 'set:'",
    "name": "the scenario name is not a model parameter",
    "description": "the description is not a model parameter",
}
_SCALAR = (type(None), bool, int, float, str)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_path(value: str) -> str:
    if any(not part for part in value.split(".")):
        raise ValueError(f"expected a dotted path like focal.localisation, got {value!r}")
    root = value.split(".", 1)[0]
    if root in _FORBIDDEN_PATHS:
        raise ValueError(f"{value!r} cannot be set here: {_FORBIDDEN_PATHS[root]}")
    return value


class Lever(_Strict):
    """One searched config field: a range ``{min, max}`` or a list of ``choices``."""

    path: str = Field(min_length=1, description="dotted config path; 'focal.' = the focal population")
    name: str | None = Field(default=None, description="column name; default: the path with _ for . and /")
    type: Literal["continuous", "integer", "categorical"] | None = Field(
        default=None, description="default: categorical with choices, continuous with a range")
    min: float | None = None
    max: float | None = None
    log: bool = Field(default=False, description="sample a range on a log scale (min > 0)")
    step: float | None = Field(default=None, gt=0, description="discretisation step of a range")
    choices: list[Any] | None = Field(default=None, description="the values to choose from (any YAML values)")

    @field_validator("path")
    @classmethod
    def _dotted(cls, value: str) -> str:
        return _check_path(value)

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"expected letters, digits and _ (not starting with a digit), got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "Lever":
        has_range = self.min is not None or self.max is not None
        if self.choices is not None:
            if has_range:
                raise ValueError("give either choices or a range {min, max}, not both")
            if len(self.choices) == 0:
                raise ValueError("choices is empty: give at least one value")
            if self.type not in (None, "categorical"):
                raise ValueError(f"type {self.type} takes a range {{min, max}}, not choices")
            if self.log or self.step is not None:
                raise ValueError("log and step apply to a range, not to choices")
            encoded = [json.dumps(c, sort_keys=True, default=str) for c in self.choices]
            if len(set(encoded)) < len(encoded):
                raise ValueError("choices must be distinct")
            self.type = "categorical"
            return self
        if not has_range:
            raise ValueError("give choices: [...] or a range with min and max")
        if self.min is None or self.max is None:
            raise ValueError("a range needs both min and max")
        if self.type == "categorical":
            raise ValueError("type categorical takes choices, not a range")
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError("min and max must be finite numbers")
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        if self.log and self.min <= 0:
            raise ValueError(f"a log range needs min > 0, got {self.min:g}")
        if self.log and self.step is not None:
            raise ValueError("give either log or step, not both")
        self.type = self.type or "continuous"
        if self.type == "integer" and (self.min != int(self.min) or self.max != int(self.max)):
            raise ValueError("an integer range needs whole-number min and max")
        return self

    @property
    def label(self) -> str:
        return self.name or re.sub(r"\W", "_", self.path)

    @property
    def scalar_choices(self) -> bool:
        """Whether the choices can be handed to Optuna as they are (else as JSON strings)."""
        return all(isinstance(c, _SCALAR) for c in self.choices or [])

    def extremes(self) -> list[Any]:
        """The values checked against the base scenario before any work."""
        if self.choices is not None:
            return list(self.choices)
        assert self.min is not None and self.max is not None  # _one_kind: a range has both
        if self.type == "integer":
            return [int(self.min), int(self.max)]
        return [float(self.min), float(self.max)]


_DIRECTIONS: dict[str, Direction] = {
    "maximise": "maximize", "maximize": "maximize", "minimise": "minimize", "minimize": "minimize",
}


class Objective(_Strict):
    outcome: str = Field(description="an outcome of cbecsim.optimize.OUTCOMES")
    direction: Literal["maximise", "minimise", "maximize", "minimize"] = "maximise"

    @property
    def optuna_direction(self) -> Direction:
        return _DIRECTIONS[self.direction]

    @property
    def sign(self) -> float:
        """+1 to maximise, -1 to minimise: ``sign * value`` is a utility (higher is better)."""
        return 1.0 if self.optuna_direction == "maximize" else -1.0


class Constraint(_Strict):
    """A bound on an outcome's mean that must hold in every future."""

    outcome: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> "Constraint":
        if self.min is None and self.max is None:
            raise ValueError("give min and/or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        return self

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{self.outcome} >= {self.min:g}")
        if self.max is not None:
            parts.append(f"{self.outcome} <= {self.max:g}")
        return " and ".join(parts)


class Future(_Strict):
    """A named policy future: overrides applied on top of the base (and the levers)."""

    description: str = ""
    weight: float = Field(default=1.0, gt=0, description="relative weight (expected value, percentile)")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted path -> value, as --set")

    @field_validator("set")
    @classmethod
    def _paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            _check_path(path)
        return value


class Robustness(_Strict):
    criterion: Literal["expected", "worst_case", "percentile", "minimax_regret"] = "expected"
    percentile: float | None = Field(default=None, gt=0, lt=100,
                                     description="criterion percentile: the q-th percentile of the utility")

    @model_validator(mode="after")
    def _percentile(self) -> "Robustness":
        if self.criterion == "percentile" and self.percentile is None:
            raise ValueError("criterion percentile needs 'percentile' (e.g. 10 for a 10%-worst future)")
        if self.criterion != "percentile" and self.percentile is not None:
            raise ValueError(f"'percentile' applies to criterion percentile, not {self.criterion}")
        return self


class Racing(_Strict):
    """Successive halving: a candidate in the top 1/eta of its rung gets eta times the replications."""

    eta: int = Field(default=3, ge=2, description="replication multiplier and promotion ratio")
    rungs: int = Field(default=1, ge=0, le=4, description="promotions above the first evaluation (0 = off)")


class Compare(_Strict):
    replications: int = Field(default=30, ge=2, description="fresh replications of the final comparison")
    strategies: list[str] = Field(default_factory=lambda: list(BUILTIN_STRATEGIES),
                                  description="built-in strategies the recommendation is compared with")

    @field_validator("strategies")
    @classmethod
    def _builtin(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in BUILTIN_STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r} (expected built-ins: {', '.join(BUILTIN_STRATEGIES)})")
        return value


class OptimizeSpec(_Strict):
    """A strategy optimisation under policy uncertainty."""

    name: str = Field(default="optimize", pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    base: str = Field(min_length=1, description="scenario YAML, relative to the spec file")
    set: dict[str, Any] = Field(default_factory=dict, description="overrides applied to the base first")
    focal: str | int = Field(description="the population whose levers are searched: name/label or index")
    levers: list[Lever] = Field(min_length=1)
    objectives: list[Objective] = Field(min_length=1)
    constraints: list[Constraint] = Field(default_factory=list)
    futures: dict[str, Future] = Field(min_length=1)
    robustness: Robustness = Field(default_factory=Robustness)
    replications: int = Field(default=10, ge=2, description="replications per evaluation (the first rung)")
    racing: Racing | None = Field(default=None, description="grow replications for leading candidates")
    trials: int = Field(default=50, ge=1, description="default for --trials")
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="default: the base scenario's")
    sampler_seed: int = Field(default=0, ge=0, lt=2**32, description="seed of the Optuna sampler")
    startup_trials: int = Field(default=10, ge=1, description="random trials before TPE models the results")
    population_size: int | None = Field(default=None, ge=2, description="NSGA-II population (default from trials)")
    resolution: Literal["day", "week", "month"] = "month"
    batch_size: int | None = Field(default=None, ge=1)
    compare: Compare = Field(default_factory=Compare)
    cluster: ClusterOptions = Field(default_factory=ClusterOptions)

    @field_validator("futures")
    @classmethod
    def _future_names(cls, value: dict[str, Future]) -> dict[str, Future]:
        bad = [name for name in value if not _NAME.match(name)]
        if bad:
            raise ValueError(f"future names must be letters, digits and _ ({bad[0]!r} is not)")
        return value

    @model_validator(mode="after")
    def _cross(self) -> "OptimizeSpec":
        problems = []
        labels = [lever.label for lever in self.levers]
        duplicated = sorted({n for n in labels if labels.count(n) > 1})
        if duplicated:
            problems.append(f"levers: names must be unique ({', '.join(duplicated)} repeated)")
        paths = [lever.path for lever in self.levers]
        if len(set(paths)) < len(paths):
            problems.append("levers: a path is searched twice")
        names = [o.outcome for o in self.objectives]
        if len(set(names)) < len(names):
            problems.append("objectives: an outcome is listed twice")
        if self.racing is not None and self.racing.rungs > 0 and len(self.objectives) > 1:
            problems.append("racing: successive halving ranks candidates on one objective; with several "
                            "objectives drop 'racing' (or set rungs: 0)")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _format_validation(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        loc = [str(p) for p in item["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        path = ".".join(loc)
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if item["type"] == "extra_forbidden":
            message = "unknown key (not a field of this section)"
        for line in message.split("\n"):
            if not path and ": " in line:
                sub, msg = line.split(": ", 1)
                problems.append((sub, msg))
            else:
                problems.append((path, line))
    return problems


def _dims(scenario: Scenario) -> tuple:
    """What every evaluation must share: seller count, markets, the horizon."""
    return (sum(p.count for p in scenario.sellers), tuple(scenario.market_names),
            scenario.horizon.start, scenario.horizon.end)


def _dims_problem(dims: tuple, base: tuple) -> str | None:
    if dims == base:
        return None
    what = []
    if dims[0] != base[0]:
        what.append(f"{dims[0]} sellers instead of {base[0]}")
    if dims[1] != base[1]:
        what.append(f"markets {', '.join(dims[1])} instead of {', '.join(base[1])}")
    if dims[2:] != base[2:]:
        what.append("a different time axis")
    return "; ".join(what)


@dataclasses.dataclass(frozen=True)
class LoadedOptimize:
    """A validated spec with its resolved base scenario and focal population.

    ``base_data`` is the raw base mapping (``extends`` resolved) with the spec's ``set:``
    applied; a candidate's scenario in future ``f`` is
    ``load_scenario(base_data, {**candidate_overrides, **future_overrides(f)})``.
    """

    spec: OptimizeSpec
    spec_path: Path | None
    base_path: Path
    base_data: dict
    base: Scenario
    focal_index: int

    @property
    def seed(self) -> int:
        return self.base.seed if self.spec.seed is None else self.spec.seed

    @property
    def focal_label(self) -> str:
        return self.base.sellers[self.focal_index].label

    @property
    def future_names(self) -> list[str]:
        return list(self.spec.futures)

    @property
    def weights(self) -> list[float]:
        total = sum(f.weight for f in self.spec.futures.values())
        return [f.weight / total for f in self.spec.futures.values()]

    def resolve(self, path: str) -> str:
        """A lever/future path with ``focal.`` expanded to ``sellers.<index>.``."""
        if path == "focal" or path.startswith("focal."):
            return f"sellers.{self.focal_index}" + path[len("focal"):]
        return path

    def future_overrides(self, name: str) -> dict[str, Any]:
        return {self.resolve(k): v for k, v in self.spec.futures[name].set.items()}

    def lever_overrides(self, levers: Mapping[str, Any]) -> dict[str, Any]:
        """``{lever label: value}`` -> ``{resolved config path: value}``."""
        by_label = {lever.label: lever for lever in self.spec.levers}
        return {self.resolve(by_label[label].path): value for label, value in levers.items()}

    @property
    def rung_replications(self) -> list[int]:
        """Replications a candidate has after each rung (the first is ``replications``)."""
        racing = self.spec.racing
        rungs = racing.rungs if racing is not None else 0
        eta = racing.eta if racing is not None else 1
        return [self.spec.replications * eta**k for k in range(rungs + 1)]

    @property
    def search_replications(self) -> int:
        """Replication indices the search may use: ``0 .. search_replications - 1``."""
        return self.rung_replications[-1]

    @property
    def outcomes(self) -> list[str]:
        """Outcomes evaluated: the objectives, then the constraints' (each once)."""
        names = [o.outcome for o in self.spec.objectives]
        return list(dict.fromkeys(names + [c.outcome for c in self.spec.constraints]))

    def fingerprint(self) -> str:
        """Hash of everything that determines the trials' values."""
        from .. import __version__

        content = {
            "base": self.base.model_dump(mode="json"),
            "spec": self.spec.model_dump(mode="json", exclude={"cluster", "description", "compare", "trials"}),
            "seed": self.seed,
            "version": __version__,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _focal_index(spec: OptimizeSpec, base: Scenario) -> tuple[int | None, str | None]:
    focal = spec.focal
    labels = [p.label for p in base.sellers]
    if isinstance(focal, int) or (isinstance(focal, str) and focal.isdigit()):
        index = int(focal)
        if 0 <= index < len(base.sellers):
            return index, None
        return None, f"population index {index} out of range (the base has {len(base.sellers)} populations)"
    matches = [i for i, label in enumerate(labels) if label == focal]
    if len(matches) == 1:
        return matches[0], None
    if len(matches) > 1:
        return None, f"{focal!r} names {len(matches)} populations; give each a 'name' or use an index"
    return None, f"no population {focal!r} in the base (populations: {', '.join(labels)})"


def _scenario_problems(base_data: dict, overrides: dict, check_strategies: bool = True) -> list[tuple[str, str]]:
    from ..api import make_strategies

    try:
        scenario = load_scenario(base_data, overrides)
        if check_strategies:
            make_strategies(scenario)
    except ConfigError as exc:
        return list(exc.problems)
    except ValueError as exc:  # strategy_params refused by a strategy
        return list(getattr(exc, "problems", [("", str(exc))]))
    return []


def check_spec(loaded: LoadedOptimize) -> list[tuple[str, str]]:
    """Apply every lever level and every future to the base and validate; return the problems."""
    spec = loaded.spec
    problems: list[tuple[str, str]] = []
    for i, objective in enumerate(spec.objectives):
        if objective.outcome not in OUTCOMES:
            problems.append((f"objectives.{i}.outcome",
                             f"unknown outcome {objective.outcome!r} (known: {', '.join(OUTCOMES)})"))
    for i, constraint in enumerate(spec.constraints):
        if constraint.outcome not in OUTCOMES:
            problems.append((f"constraints.{i}.outcome",
                             f"unknown outcome {constraint.outcome!r} (known: {', '.join(OUTCOMES)})"))
    base_dims = _dims(loaded.base)
    lever_paths = {loaded.resolve(lever.path) for lever in spec.levers}
    for i, lever in enumerate(spec.levers):
        path = loaded.resolve(lever.path)
        seen: set[str] = set()
        for value in lever.extremes():
            found = _scenario_problems(loaded.base_data, {path: value})
            if not found:
                scenario = load_scenario(loaded.base_data, {path: value})
                changed = _dims_problem(_dims(scenario), base_dims)
                if changed:
                    found = [("", f"gives {changed}: every candidate must share the time, seller and market "
                                  "dims (search a population's strategy, parameters or markets, not seller "
                                  "counts or the scenario's markets)")]
            for where, message in found:
                key = f"{where}: {message}"
                if key in seen:
                    continue
                seen.add(key)
                detail = f"{where}: {message}" if where else message
                problems.append((f"levers.{i}", f"{lever.path} = {value!r}: {detail}"))
    for name in spec.futures:
        overrides = loaded.future_overrides(name)
        clash = sorted(set(overrides) & lever_paths)
        if clash:
            problems.append((f"futures.{name}.set", f"sets {', '.join(clash)}, which is a lever: a future states "
                                                    "what the world does, the levers what the seller chooses"))
            continue
        found = _scenario_problems(loaded.base_data, overrides, check_strategies=False)
        for where, message in found:
            problems.append((f"futures.{name}.set", f"{where}: {message}" if where else message))
        if not found:
            changed = _dims_problem(_dims(load_scenario(loaded.base_data, overrides)), base_dims)
            if changed:
                problems.append((f"futures.{name}.set",
                                 f"changes the seller/market dims ({changed}): a future may change duty "
                                 "schedules, FX and market parameters, not which sellers or markets exist"))
    return problems


def load_optimize_spec(source: str | os.PathLike | Mapping[str, Any], base_dir: str | Path | None = None
                       ) -> LoadedOptimize:
    """Read, validate and check an optimisation spec before any work.

    Parameters
    ----------
    source : path to a YAML spec, or a mapping
    base_dir : folder a relative ``base`` is resolved against (default: the spec file's
        folder, or the current directory for a mapping)

    Raises
    ------
    ConfigError
        One ``(path, message)`` per problem; nothing has been run or written.
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
        spec = OptimizeSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc)) from None
    base_path = Path(spec.base) if Path(spec.base).is_absolute() else folder / spec.base
    try:
        raw = read_scenario_file(base_path)
    except ConfigError as exc:
        raise ConfigError([("base", f"{p}: {m}" if p else m) for p, m in exc.problems]) from None
    try:
        base = load_scenario(raw, spec.set)
    except ConfigError as exc:
        raise ConfigError([("set" if spec.set else "base", f"{p}: {m}" if p else m) for p, m in exc.problems]) from None
    index, problem = _focal_index(spec, base)
    if problem:
        raise ConfigError([("focal", problem)])
    assert index is not None  # _focal_index gives an index whenever it gives no problem
    loaded = LoadedOptimize(spec, spec_path, base_path, apply_overrides(raw, spec.set), base, index)
    problems = check_spec(loaded)
    if problems:
        raise ConfigError(problems)
    return loaded
