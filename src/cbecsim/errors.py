"""Errors that reach the user with a context to act on (standard library only)."""

from __future__ import annotations

__all__ = ["UserCodeError"]


class UserCodeError(Exception):
    """User code (a strategy) failed mid-run or made an impossible decision.

    The run stops; the CLI reports it in one line and exits 3, and the partial output is
    removed.

    Attributes
    ----------
    population, strategy : str
        The seller population's label and its strategy name (``package.module:Class``).
    day : int
        Day index from the horizon start of the review (or ``initialise``) that failed.
    replication : str
        The global replication index concerned, or the batch's range ``"r0..r1"`` when
        the failure is not tied to one replication.
    message : str
    """

    def __init__(self, population: str, strategy: str, day: int, replication: str, message: str):
        self.population = population
        self.strategy = strategy
        self.day = day
        self.replication = replication
        self.message = message
        # The fields are the args, so the exception re-raises and pickles whole (SimPy
        # re-raises a process's exception as type(exc)(*exc.args); workers pickle it).
        super().__init__(population, strategy, day, replication, message)

    def __str__(self) -> str:
        return (f"strategy {self.strategy} of population {self.population!r}, day {self.day}, "
                f"replication {self.replication}: {self.message}")
