"""A user strategy for the sweep tests: fails on purpose, always or once."""

import os
import signal
from pathlib import Path


class Faulty:
    """Does nothing, except: ``mode: broken`` raises at every review; ``mode: flaky``
    raises at the first review of the first execution (it leaves ``marker`` behind) and
    works when retried; ``mode: die`` kills its own process (SIGKILL, as an OOM killer or
    a lost node would) at the first review of the first execution."""

    def __init__(self, params):
        self.mode = params.get("mode", "ok")
        self.marker = params.get("marker")

    def initialise(self, view):
        pass

    def review(self, view):
        if self.mode == "broken":
            raise RuntimeError("broken on purpose")
        if self.mode == "die":
            marker = Path(self.marker)
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        if self.mode == "flaky":
            marker = Path(self.marker)
            if not marker.exists():
                marker.write_text("failed once")
                raise RuntimeError("flaky on purpose (first try)")
