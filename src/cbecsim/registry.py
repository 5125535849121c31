"""The one registry of strategies: built-in names and the import of user classes.

Config validation (:mod:`cbecsim.config`), the engine and the API all resolve a
population's ``strategy`` here. Built-ins are named; a user strategy is
``package.module:ClassName``, imported from the working directory or the installed
packages. Standard library only, so validating a config does not load numba.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys

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


_IMPORT_HINT = ("'package.module:Class' is imported from the working directory ({cwd}) or the installed "
                "packages (sys.path); run cbecsim from the folder that holds the package, or pip install it")


def _import_from_working_directory(module_name: str):
    """Import a module, with the working directory on the path as ``python -m`` has it
    (the ``cbecsim`` console script does not put it there)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError:
            importlib.invalidate_caches()  # the folder's listing may be cached from before it changed
            return importlib.import_module(module_name)
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


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
        module = _import_from_working_directory(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a config problem
        hint = _IMPORT_HINT.format(cwd=os.getcwd()) if isinstance(exc, ModuleNotFoundError) else \
            "the module raised while it was imported"
        raise StrategyImportError(f"cannot import module {module_name!r} for class {class_name!r} "
                                  f"({type(exc).__name__}: {exc}); {hint}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise StrategyImportError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no class "
                                  f"{class_name!r}")
    missing = [hook for hook in ("initialise", "review") if not callable(getattr(cls, hook, None))]
    if missing:
        raise StrategyImportError(
            f"{class_name} does not follow the Strategy protocol: missing {', '.join(h + '()' for h in missing)}"
        )
    return cls
