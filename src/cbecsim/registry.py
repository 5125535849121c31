"""The one registry of strategies: built-in names and the import of user classes.

Config validation (:mod:`cbecsim.config`), the engine and the API all resolve a
population's ``strategy`` here. Built-ins are named; a user strategy is
``package.module:ClassName``, imported from the working directory or the installed
packages. Standard library only, so validating a config does not load numba.
"""

from __future__ import annotations

import importlib
import re

__all__ = ["BUILTIN_STRATEGIES", "STRATEGY_PATH", "is_builtin", "resolve_strategy_class", "StrategyImportError"]

#: Built-in strategy name -> "module:Class" (see :mod:`cbecsim.strategies`).
BUILTIN_STRATEGIES = {
    "traffic_first": "cbecsim.strategies:TrafficFirst",
    "brand_matrix": "cbecsim.strategies:BrandMatrix",
    "diversified": "cbecsim.strategies:Diversified",
    "staged_roadmap": "cbecsim.strategies:StagedRoadmap",
}

#: What a user strategy name must look like.
STRATEGY_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class StrategyImportError(Exception):
    """A strategy that cannot be imported or does not follow the protocol (``.message``)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def is_builtin(name: str) -> bool:
    return name in BUILTIN_STRATEGIES


def resolve_strategy_class(name: str) -> type:
    """The class of a built-in name or of ``package.module:ClassName``.

    Raises
    ------
    StrategyImportError
        The module cannot be imported, has no such class, or the class lacks
        ``initialise()`` / ``review()``.
    """
    path = BUILTIN_STRATEGIES.get(name, name)
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a config problem
        raise StrategyImportError(
            f"cannot import module {module_name!r}: {exc} ('package.module:Class' is imported from the "
            "working directory or the installed packages)"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise StrategyImportError(f"module {module_name!r} has no attribute {class_name!r}")
    missing = [hook for hook in ("initialise", "review") if not callable(getattr(cls, hook, None))]
    if missing:
        raise StrategyImportError(
            f"{class_name} does not follow the Strategy protocol: missing {', '.join(h + '()' for h in missing)}"
        )
    return cls
