"""Sourced calibration targets: the fitted set and the held-out checks, read from data.

The targets live in ``calibration_targets.yaml`` beside this module (issue 13, item 6):

* ``fitted`` - aggregates the calibration tunes the baseline to reproduce (site conversion,
  CPC with its year, ad click conversion, ACoS, seller TACoS by strategy, brand gross
  margin);
* ``held_out`` - checks the fit does not use, reported with pass/fail (own- and cross-price
  elasticity, ad incrementality, return rates by category, seller exit rate, unit session
  percentage).

Each target states the quantity in the model's terms, its pass band ``[low, high]``, an
optional point value, units, the population and year its sources describe, the sources
themselves (what each says and when it was read), a FACTS.md confidence grade and how the
simulation should measure it. This module only reads and validates the file; computing the
quantities from simulation results is the calibration report's job.

Example::

    from cbecsim.calibration_targets import load_calibration_targets

    fitted, held_out = load_calibration_targets()
    band = {t.name: (t.low, t.high) for t in held_out}["ad_incrementality"]
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import math
from pathlib import Path
from typing import NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "REQUIRED_HELD_OUT",
    "TARGETS_FILE",
    "CalibrationTargetsError",
    "TargetSource",
    "CalibrationTarget",
    "CalibrationTargets",
    "load_calibration_targets",
]

#: The shipped data file, in the ``cbecsim`` package.
TARGETS_FILE = "calibration_targets.yaml"

#: Held-out checks issue 13 names; ``cbecsim validate --calibration`` reports them by these names.
REQUIRED_HELD_OUT = ("own_price_elasticity", "cross_price_elasticity", "ad_incrementality")

# H = two or more consistent reputable sources, M = one, L = vendor or blog (FACTS.md);
# a range such as "L-M" where the sources are mixed.
_CONFIDENCE = r"^[HML](-[HML])?$"
_NAME = r"^[a-z][a-z0-9_]*$"


class CalibrationTargetsError(ValueError):
    """The calibration targets file is missing, not YAML, or does not match the schema.

    The message is one line per problem, each naming the file and the entry/field.
    """


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSource(_Frozen):
    """One source behind a target.

    Attributes
    ----------
    citation : str
        Authors, title, venue (or publisher) and date, as read.
    url : str or None
        Where it was read; None for a figure taken from /work/shared/FACTS.md.
    figure : str
        What the source says, in words and numbers (derived numbers say "computed here").
    figure_year : str
        Year (or range) the figure refers to; the publication year where the source does not
        say; "n.d." where it gives none.
    read : datetime.date
        Date the source was read.
    """

    citation: str = Field(min_length=1)
    url: str | None = None
    figure: str = Field(min_length=1)
    figure_year: str = Field(pattern=r"^(\d{4}(-\d{4})?|n\.d\.)$")
    read: dt.date


class CalibrationTarget(_Frozen):
    """An observed quantity the baseline should reproduce, with its pass band and sources.

    Attributes
    ----------
    name : str
        Key in the calibration report (snake_case, unique across both sets).
    quantity : str
        What is measured, defined in the model's terms.
    low, high : float
        Pass band; the estimate passes when ``low <= estimate <= high``.
    point : float or None
        A central published value, where the sources give one; inside the band.
    units : str
        Units of the quantity (for example "fraction", "USD per click").
    population : str
        Market, population and period the sources describe.
    confidence : str
        FACTS.md grade: H, M, L or a range such as "L-M".
    sources : tuple of TargetSource
        At least one.
    measure : str
        How the simulation should compute the quantity.
    note : str or None
        Caveats; band edges that no source gives are called assumptions here.
    year : int or None
        The year the target's figure is for, where it moves with time (CPC).
    strategy : str or None
        Built-in strategy whose sellers the quantity is measured on, if any.
    model_categories : tuple of str or None
        Config categories the check applies to; empty means no shipped config has such a
        category (report "not applicable"); None means all categories.
    """

    name: str = Field(pattern=_NAME)
    quantity: str = Field(min_length=1)
    low: float
    high: float
    point: float | None = None
    units: str = Field(min_length=1)
    population: str = Field(min_length=1)
    confidence: str = Field(pattern=_CONFIDENCE)
    sources: tuple[TargetSource, ...] = Field(min_length=1)
    measure: str = Field(min_length=1)
    note: str | None = None
    year: int | None = Field(default=None, ge=1990, le=2100)
    strategy: str | None = None
    model_categories: tuple[str, ...] | None = None

    @field_validator("low", "high", "point")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        return value

    @model_validator(mode="after")
    def _band(self) -> "CalibrationTarget":
        if self.low > self.high:
            raise ValueError(f"band is reversed: low {self.low} > high {self.high}")
        if self.point is not None and not self.low <= self.point <= self.high:
            raise ValueError(f"point {self.point} lies outside the band [{self.low}, {self.high}]")
        return self

    def passes(self, estimate: float) -> bool:
        """True when ``estimate`` is finite and inside ``[low, high]``."""
        return math.isfinite(estimate) and self.low <= estimate <= self.high


class _TargetsFile(_Frozen):
    fitted: tuple[CalibrationTarget, ...] = Field(min_length=1)
    held_out: tuple[CalibrationTarget, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> "_TargetsFile":
        names = [t.name for t in self.fitted + self.held_out]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError("target names must be unique across fitted and held_out; repeated: "
                             + ", ".join(duplicates))
        held = {t.name for t in self.held_out}
        missing = [n for n in REQUIRED_HELD_OUT if n not in held]
        if missing:
            raise ValueError(f"held_out must contain {', '.join(REQUIRED_HELD_OUT)}; missing: {', '.join(missing)}")
        return self


class CalibrationTargets(NamedTuple):
    """The two target sets; unpacks as ``fitted, held_out``."""

    fitted: tuple[CalibrationTarget, ...]
    held_out: tuple[CalibrationTarget, ...]

    def get(self, name: str) -> CalibrationTarget:
        """The target called ``name`` from either set (KeyError naming the known ones)."""
        for target in self.fitted + self.held_out:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.fitted + self.held_out)
        raise KeyError(f"no calibration target {name!r}; known: {known}")


def _describe(error: ValidationError, label: str, raw: dict) -> str:
    lines = []
    for problem in error.errors():
        loc = list(problem["loc"])
        # Name the entry by its `name` where the location is inside a list entry.
        if len(loc) >= 2 and loc[0] in ("fitted", "held_out") and isinstance(loc[1], int):
            try:
                entry = raw[loc[0]][loc[1]].get("name", loc[1])
            except (AttributeError, IndexError, KeyError, TypeError):
                entry = loc[1]
            loc[1] = entry
        where = ".".join(str(part) for part in loc) or "(top level)"
        lines.append(f"{label}: {where}: {problem['msg']}")
    return "\n".join(lines)


def load_calibration_targets(path: str | Path | None = None) -> CalibrationTargets:
    """Read and validate the calibration targets.

    Parameters
    ----------
    path : str or Path, optional
        A targets file; by default the shipped ``calibration_targets.yaml``.

    Returns
    -------
    CalibrationTargets
        ``(fitted, held_out)``, each a tuple of :class:`CalibrationTarget` in file order.

    Raises
    ------
    CalibrationTargetsError
        The file cannot be read, is not YAML, or does not match the schema (bands ordered,
        points inside bands, every entry sourced, names unique, the held-out checks of
        :data:`REQUIRED_HELD_OUT` present); the message names the file and each bad field.
    """
    if path is None:
        resource = importlib.resources.files("cbecsim") / TARGETS_FILE
        label = f"cbecsim/{TARGETS_FILE}"
        try:
            text = resource.read_text(encoding="utf-8")
        except OSError as exc:
            raise CalibrationTargetsError(f"{label}: cannot be read ({exc.strerror or exc})") from exc
    else:
        label = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CalibrationTargetsError(f"{label}: cannot be read ({exc.strerror or exc})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise CalibrationTargetsError(f"{label}: not valid YAML{at}") from exc
    if not isinstance(raw, dict):
        raise CalibrationTargetsError(
            f"{label}: expected a mapping with 'fitted' and 'held_out', got {type(raw).__name__}"
        )
    try:
        data = _TargetsFile.model_validate(raw)
    except ValidationError as exc:
        raise CalibrationTargetsError(_describe(exc, label, raw)) from None
    return CalibrationTargets(fitted=data.fitted, held_out=data.held_out)
