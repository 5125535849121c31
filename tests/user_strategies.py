"""User strategies for the tests: named in configs as ``user_strategies:ClassName``."""

import numpy as np


class FixedPrice:
    """Keeps the initial decisions; optionally stops advertising from ``cut_day`` on."""

    def __init__(self, params):
        self.cut_day = params.get("cut_day")

    def initialise(self, view):
        pass

    def review(self, view):
        if self.cut_day is not None and view.day >= self.cut_day:
            view.daily_budget[...] = 0.0
            view.bid[...] = 0.0


class NotAStrategy:
    """Lacks review(): must be refused by validation."""

    def initialise(self, view):
        pass


def sells_everything_everywhere(view):  # pragma: no cover - never a strategy
    view.listed[...] = np.True_
