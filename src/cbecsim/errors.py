"""Exceptions shared across layers (standard library only).

* :class:`UserCodeError` -- a user strategy failed in the middle of a run (raised, wrote
  to a read-only observation, or decided NaN / infinite / non-positive prices, negative
  budgets or bids, an unknown mode, a lever outside 0..1). The engine raises it; the CLI
  turns it into exit 3 and removes the partial output.
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
    message : str
        What went wrong.
    population : str
        The seller population's label (``sellers[].name`` or its strategy).
    strategy : str
        The strategy (``package.module:Class`` or a built-in name).
    day : int or None
        Simulation day index (0 = ``horizon.start``) of the failure.
    replication : int, str or None
        Global replication index of the failure, or the batch's range ``"r0..r1"`` when
        the failure is not tied to one replication.
    """

    def __init__(self, message: str, population: str, strategy: str, day: int | None = None,
                 replication: int | str | None = None):
        self.message = message
        self.population = population
        self.strategy = strategy
        self.day = day
        self.replication = replication
        # The fields are the args, so the exception re-raises and pickles whole (SimPy
        # re-raises a process's exception as type(exc)(*exc.args); workers pickle it).
        super().__init__(message, population, strategy, day, replication)

    def __str__(self) -> str:
        where = []
        if self.day is not None:
            where.append(f"day {self.day}")
        if self.replication is not None:
            where.append(f"replication {self.replication}")
        at = f" at {', '.join(where)}" if where else ""
        return f"strategy {self.strategy} of population {self.population!r} failed{at}: {self.message}"


class Terminated(KeyboardInterrupt):
    """SIGTERM received (a :class:`KeyboardInterrupt`, so interrupt cleanup runs)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return signal.Signals(self.signum).name
