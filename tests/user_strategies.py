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


class WritesCash:
    """Tries to give itself cash by writing to an observation: must be refused."""

    def __init__(self, params):
        self.day = params.get("day", 7)

    def initialise(self, view):
        pass

    def review(self, view):
        if view.day >= self.day:
            view.cash[...] = 1e9


class NanPrice:
    """Sets a NaN price in one replication's first seller from ``day`` on."""

    def __init__(self, params):
        self.day = params.get("day", 14)
        self.replication = params.get("replication_in_batch", 1)

    def initialise(self, view):
        pass

    def review(self, view):
        if view.day >= self.day:
            view.price[self.replication, 0, :] = float("nan")


class ReturnsDecisions:
    """Acts only through its return value: no ads from ``cut_day`` on."""

    def __init__(self, params):
        self.cut_day = params.get("cut_day", 0)

    def initialise(self, view):
        return None

    def review(self, view):
        if view.day >= self.cut_day:
            return {"daily_budget": 0.0, "bid": 0.0}
        return None



class RecordsCosts:
    """Keeps the initial decisions and records, at each review, the landed cost per unit
    of its sellers' listings under every mode (``view.landed_cost_by_mode``, (B, n, M, F)
    [USD]) by day, in the class attribute ``records[key][day]`` (in-process runs only):
    what the engine charges a unit of new stock."""

    records: dict = {}

    def __init__(self, params):
        self.key = params["key"]
        RecordsCosts.records[self.key] = {}

    def initialise(self, view):
        self.review(view)

    def review(self, view):
        RecordsCosts.records[self.key][int(view.day)] = np.array(view.landed_cost_by_mode, copy=True)


class MovesTo:
    """Asks at every review to move production to origin index ``params['origin']``, and
    from day ``params['back_day']`` (if given) to ``params['back']``."""

    def __init__(self, params):
        self.origin = params["origin"]
        self.back_day = params.get("back_day")
        self.back = params.get("back")

    def initialise(self, view):
        pass

    def review(self, view):
        back = self.back_day is not None and view.day >= self.back_day
        view.move_origin_to[...] = self.back if back else self.origin
