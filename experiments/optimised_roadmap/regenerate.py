"""Regenerate experiments/optimised_roadmap in one command: search, then the committed summary.

    python experiments/optimised_roadmap/regenerate.py [--workers N]

1. ``cbecsim optimize optimize.yaml`` in a temporary folder (the study, trials, report);
2. its ``best.yaml`` is copied here as ``optimised.yaml``, its ``trials.csv`` as
   ``search_trials.csv`` and its ``compare.csv`` as ``search_compare.csv``;
3. ``cbecsim experiment experiments/optimised_roadmap --write`` refreshes ``summary.csv``
   and the README table (the experiment's own seed: fresh replications).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    import cbecsim
    from cbecsim.cli import main as cli

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="local worker processes for the search")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "study"
        result = cbecsim.optimize(HERE / "optimize.yaml", out, workers=args.workers)
        print(f"search: {len(result.trials)} trials; recommended trial {int(result.best['trial'])}: {result.why}")
        shutil.copyfile(out / "best.yaml", HERE / "optimised.yaml")
        shutil.copyfile(out / "trials.csv", HERE / "search_trials.csv")
        shutil.copyfile(out / "compare.csv", HERE / "search_compare.csv")
    return cli(["experiment", str(HERE), "--write"])


if __name__ == "__main__":
    sys.exit(main())
