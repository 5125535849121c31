"""Test-suite setup: the support modules in this folder (``twins``, ``helpers``, the
user strategies the configs name as ``user_strategies:...``) are importable from every
package folder below it."""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
