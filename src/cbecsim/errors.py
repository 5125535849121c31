"""Exceptions shared across layers (standard library only).

* :class:`UserCodeError` -- a user strategy failed in the middle of a run (raised, or
  returned NaN / infinite / negative prices, budgets or bids). The engine raises it; the
  CLI turns it into exit 3 and removes the partial output.
* :class:`Terminated` -- SIGTERM, handled like Ctrl-C (a :class:`KeyboardInterrupt`), so
  the same cleanup runs and the CLI exits 130.
"""

from __future__ import annotations

import signal

__all__ = ["UserCodeError", "Terminated", "EXIT_USER_CODE"]

#: Exit code of ``cbecsim run`` / ``sweep`` when user strategy code fails mid-run.
EXIT_USER_CODE = 3


class UserCodeError(Exception):
    """A user strategy failed mid-run.

    Attributes
    ----------
    population : str
        The seller population's label (``sellers[].name`` or its strategy).
    strategy : str
        The strategy (``package.module:Class`` or a built-in name).
    day : int or None
        Simulation day index (0 = ``horizon.start``) of the failure.
    replication : int or None
        Replication index of the failure (the first of its batch if not known exactly).
    """

    def __init__(self, message: str, population: str, strategy: str, day: int | None = None,
                 replication: int | None = None):
        self.population = population
        self.strategy = strategy
        self.day = day
        self.replication = replication
        where = []
        if day is not None:
            where.append(f"day {day}")
        if replication is not None:
            where.append(f"replication {replication}")
        at = f" at {', '.join(where)}" if where else ""
        super().__init__(f"strategy {strategy} of population {population!r} failed{at}: {message}")


class Terminated(KeyboardInterrupt):
    """SIGTERM received (a :class:`KeyboardInterrupt`, so interrupt cleanup runs)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return signal.Signals(self.signum).name
