"""Writing files so that a reader never sees a half-written one: temporary name, then rename.

Used for every output cbecsim writes (results, sweep stores, reports, experiment
summaries). Standard library only, so any layer may import it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

__all__ = ["folder_problem", "temporary_sibling", "replace", "remove", "write_text_atomically"]


def folder_problem(path: Path) -> str | None:
    """Why nothing can be written at ``path`` (its folder is missing or read-only), or None."""
    if not path.parent.exists():
        return f"{path.parent} does not exist"
    if not os.access(path.parent, os.W_OK):
        return f"{path.parent} is not writable"
    return None


def temporary_sibling(path: Path) -> Path:
    """A hidden, unique name next to ``path`` (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")


def replace(temporary: Path, path: Path) -> None:
    """Move ``temporary`` to ``path``, removing whatever file or folder was there."""
    if path.exists():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    os.replace(temporary, path)


def remove(path: Path) -> None:
    """Remove a file or folder if it exists (cleanup after a failed write)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` under a temporary name, then rename."""
    path = Path(path)
    temporary = temporary_sibling(path)
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise
    return path
