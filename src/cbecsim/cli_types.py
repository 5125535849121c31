"""Pieces shared by the ``cbecsim`` command lines: argument types, error lines, the console."""

from __future__ import annotations

import argparse
import sys

__all__ = ["positive_int", "print_problems", "console"]


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1, with a clear message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def print_problems(problems, stream=None) -> None:
    """One ``error: <path>: <message>`` line per ``(path, message)`` (no path: no prefix)."""
    stream = sys.stderr if stream is None else stream
    for path, message in problems:
        print(f"error: {path}: {message}" if path else f"error: {message}", file=stream)


def console(width: int = 160):
    """A rich Console: the terminal's width, or ``width`` columns when output is not a terminal."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=width)
