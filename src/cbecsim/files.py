"""Writing outputs so that a reader never sees a half-written, mixed or foreign one.

Used for every output cbecsim writes (results, sweep stores, reports, experiment
summaries). Standard library only, so any layer may import it.

How an output reaches its name
------------------------------
1. It is written under a hidden temporary sibling, ``.NAME.partial-XXXXXXXX`` (same
   folder, so renames are atomic), and every file and folder of it is fsync'ed.
2. :func:`replace` puts it in place. A single file is renamed over the old one
   (``rename(2)`` is atomic). A folder (a Zarr store) is swapped with the old one in one
   step where the kernel can (Linux ``renameat2(RENAME_EXCHANGE)``); elsewhere the old
   one is first moved aside to ``.NAME.old-XXXXXXXX``, the new one renamed in, and the
   old one deleted. Either way the final name holds the complete old output or the
   complete new one, never a mix: if a process dies between the two renames of the
   fallback, the final name is briefly absent and :func:`recover` (run by the next
   writer and by every reader) renames the old one back.
3. The folder is fsync'ed, so the rename survives a power cut.

What counts as a cbecsim output (the marker)
--------------------------------------------
An existing path is replaced only if it is cbecsim's own (see :func:`output_marker`):

* a ``.zarr`` folder whose root attributes (``.zattrs``, Zarr format 2, or
  ``zarr.json``) hold ``cbecsim_version`` -- every run result and sweep store has it;
* a ``.nc`` file whose global attributes hold ``cbecsim_version``;
* an ``.html`` report with ``<meta name="generator" content="cbecsim ...">``.

Anything else under the output name (a folder named ``x.nc``, somebody's own Zarr
store, a text file) is refused with :class:`OutputError`, so ``--overwrite`` never
deletes what cbecsim did not write.

Writer lock
-----------
:class:`WriterLock` holds ``.NAME.lock`` beside the output for as long as it is written
(a run, a sweep and its resumes). A second writer is refused at once with the holder's
PID and host. The lock is an ``flock(2)`` on that file, which the kernel drops when its
holder dies, so a lock left by a killed process is taken over (and said so); the file
also records PID, host and start time for the message. Where ``flock`` is not available
(some network filesystems) the record alone is used: a holder on this host that is no
longer running is stale; one on another host is honoured.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

__all__ = [
    "OutputError",
    "OutputLockedError",
    "MARKER_ATTRIBUTE",
    "folder_problem",
    "free_space_problem",
    "temporary_sibling",
    "replace",
    "remove",
    "recover",
    "write_text_atomically",
    "output_marker",
    "refuse_foreign",
    "WriterLock",
    "remove_stale_partials",
    "format_bytes",
    "fsync_tree",
]

#: The attribute every cbecsim result and sweep store carries (NetCDF global attribute,
#: Zarr root attribute): its presence is what marks a path as cbecsim's own output.
MARKER_ATTRIBUTE = "cbecsim_version"
#: The marker of an HTML report (reports written before it existed have the title).
HTML_MARKERS = (b'<meta name="generator" content="cbecsim', b"<title>cbecsim report: ")

log = logging.getLogger("cbecsim.files")


class OutputError(Exception):
    """An output path that cannot be written (exists, wrong suffix, unwritable, foreign)."""


class OutputLockedError(OutputError):
    """Another process is writing the same output."""

    def __init__(self, message: str, pid: int | None, host: str | None):
        super().__init__(message)
        self.pid = pid
        self.host = host


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


# --------------------------------------------------------------------------------------
# Probes before any work
# --------------------------------------------------------------------------------------


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why nothing can be written next to ``path``, or None.

    The folder must exist, be a folder, and accept a new file: a small probe file is
    created and removed (``os.access`` alone says yes on read-only mounts for root, and
    on ``/proc``).
    """
    path = Path(path)
    folder = path.parent
    if not folder.exists():
        return f"{folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    probe = folder / f".{path.name}.probe-{uuid.uuid4().hex[:8]}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, b"x")
        finally:
            os.close(descriptor)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{folder}: no space left on device ({exc.strerror})"
        return f"{folder} is not writable ({exc.strerror or exc})"
    return None


def free_space_problem(path: str | os.PathLike, needed: int, what: str = "the output") -> str | None:
    """Why ``needed`` bytes will not fit in ``path``'s folder, or None.

    ``needed`` should include what stays on disk while the new output is written (the
    old output being replaced is deleted only after the new one is complete).
    """
    folder = Path(path).parent
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # pragma: no cover - non-POSIX or vanished folder
        return None
    free = stats.f_bavail * stats.f_frsize
    if needed > free:
        return (f"{folder} has {format_bytes(free)} free, but {what} needs about {format_bytes(needed)}; "
                "free some space, choose another folder, or run fewer replications / a coarser --resolution")
    return None


# --------------------------------------------------------------------------------------
# Temporary names, fsync, replace, recover
# --------------------------------------------------------------------------------------


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A hidden, unique name next to ``path`` (same folder, so the rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")


def _aside_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")


def _fsync_path(path: Path, directory: bool) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:  # pragma: no cover - e.g. a directory cannot be opened on this OS
        return
    try:
        os.fsync(descriptor)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)


def fsync_tree(path: str | os.PathLike) -> None:
    """fsync a file, or every file and folder under a folder (deepest first)."""
    path = Path(path)
    if not path.is_dir():
        _fsync_path(path, directory=False)
        return
    for folder, _subfolders, names in os.walk(path, topdown=False):
        for name in names:
            _fsync_path(Path(folder) / name, directory=False)
        _fsync_path(Path(folder), directory=True)


def _fault_point(stage: str, path: Path) -> None:
    """No-op. Fault-injection tests replace it to kill the process at ``stage`` of
    replacing ``path``."""


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def replace(temporary: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the complete ``temporary`` in place of ``path``: old or new, never a mix.

    The caller has checked that an existing ``path`` is cbecsim's own
    (:func:`refuse_foreign`). See the module docstring for the steps.
    """
    temporary, path = Path(temporary), Path(path)
    if os.path.lexists(path) and path.is_dir() != temporary.is_dir():
        raise OutputError(f"{path} is a {'folder' if path.is_dir() else 'file'}; it cannot be replaced by a "
                          f"{'folder' if temporary.is_dir() else 'file'}")
    fsync_tree(temporary)
    _fault_point("synced", path)
    folder = path.parent
    if not os.path.lexists(path) or (not path.is_dir() and not temporary.is_dir()):
        os.replace(temporary, path)  # a single atomic rename, over a file or onto a free name
        _fsync_path(folder, directory=True)
        _fault_point("renamed", path)
        return
    if _exchange(temporary, path):
        # ``path`` is the new output now; ``temporary`` holds the old one.
        _fsync_path(folder, directory=True)
        _fault_point("exchanged", path)
        remove(temporary)
        return
    aside = _aside_name(path)
    os.rename(path, aside)
    _fault_point("aside", path)
    os.rename(temporary, path)
    _fsync_path(folder, directory=True)
    _fault_point("renamed", path)
    remove(aside)


def recover(path: str | os.PathLike) -> list[str]:
    """Finish or undo a replace that a dead process left half-done; return what was done.

    If ``path`` is missing and an old version was moved aside (``.NAME.old-*``), it is
    renamed back (the new output never made it). If ``path`` exists, asides are leftovers
    of a replace that completed, and are removed.
    """
    path = Path(path)
    notes: list[str] = []
    asides = sorted(path.parent.glob(f".{glob_escape(path.name)}.old-*"), key=lambda p: p.stat().st_mtime)
    if not asides:
        return notes
    if not os.path.lexists(path):
        latest = asides.pop()
        os.rename(latest, path)
        _fsync_path(path.parent, directory=True)
        notes.append(f"restored {path} from {latest.name}: replacing it was interrupted, so the previous "
                     "version was kept")
    for leftover in asides:
        remove(leftover)
        notes.append(f"removed {leftover.name}, the previous version of {path.name} left by an interrupted "
                     "replace")
    return notes


def glob_escape(name: str) -> str:
    """Escape glob metacharacters in a file name."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def remove(path: str | os.PathLike) -> None:
    """Remove a file or folder if it exists (cleanup after a failed write)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _tree_size(path: Path) -> int:
    if not path.is_dir():
        return path.stat().st_size if path.exists() else 0
    return sum((Path(folder) / name).stat().st_size for folder, _, names in os.walk(path) for name in names)


def remove_stale_partials(path: str | os.PathLike) -> list[str]:
    """Remove ``.NAME.partial-*`` left by interrupted writes of ``path``; return one line each.

    Call it only while holding the output's :class:`WriterLock`: then no live writer
    owns them.
    """
    path = Path(path)
    notes = []
    for partial in sorted(path.parent.glob(f".{glob_escape(path.name)}.partial-*")):
        try:
            size = _tree_size(partial)
        except OSError:
            size = 0
        remove(partial)
        notes.append(f"removed {partial.name} ({format_bytes(size)}), a partial output of {path.name} left by "
                     "an interrupted run")
    return notes


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` under a temporary name, fsync, then rename over."""
    path = Path(path)
    temporary = temporary_sibling(path)
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise
    return path


# --------------------------------------------------------------------------------------
# The marker: is an existing path cbecsim's own output?
# --------------------------------------------------------------------------------------


def _zarr_root_attributes(path: Path) -> dict | None:
    for name, key in ((".zattrs", None), ("zarr.json", "attributes")):
        candidate = path / name
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            if key is not None:
                data = data.get(key, {}) if isinstance(data, dict) else None
            return data if isinstance(data, dict) else None
    return None


def _file_contains(path: Path, needle: bytes, chunk: int = 1 << 22) -> bool:
    overlap = len(needle) - 1
    tail = b""
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            if needle in tail + block:
                return True
            tail = block[-overlap:]
    return False


def _netcdf_has_marker(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head != b"\x89HDF\r\n\x1a\n" and head[:3] != b"CDF":
        return False
    try:
        import netCDF4

        with netCDF4.Dataset(path, "r") as dataset:
            return MARKER_ATTRIBUTE in dataset.ncattrs()
    except Exception:  # noqa: BLE001 - a damaged file: look for the attribute's name in its bytes
        return _file_contains(path, MARKER_ATTRIBUTE.encode())


def output_marker(path: str | os.PathLike) -> str | None:
    """Why an existing ``path`` is *not* recognisably a cbecsim output, or None if it is."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_symlink():
        return "is a symbolic link"
    if suffix == ".zarr":
        if not path.is_dir():
            return "is a file, not a Zarr store (a folder)"
        attributes = _zarr_root_attributes(path)
        if attributes is None:
            return "is a folder without Zarr root attributes"
        if MARKER_ATTRIBUTE not in attributes:
            return f"is a Zarr store without cbecsim's {MARKER_ATTRIBUTE!r} attribute"
        return None
    if path.is_dir():
        return "is a folder"
    if suffix == ".nc":
        return None if _netcdf_has_marker(path) else f"is not a NetCDF file with a {MARKER_ATTRIBUTE!r} attribute"
    if suffix in (".html", ".htm"):
        with open(path, "rb") as handle:
            head = handle.read(4096)
        return None if any(m in head for m in HTML_MARKERS) else "is not an HTML report written by cbecsim report"
    return "has a suffix cbecsim does not write"


def refuse_foreign(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless ``path`` is missing or cbecsim's own output."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    why = output_marker(path)
    if why is not None:
        raise OutputError(f"{path} {why}: it was not written by cbecsim, so --overwrite will not replace it; "
                          "move or delete it yourself, or choose another name")


# --------------------------------------------------------------------------------------
# Writer lock
# --------------------------------------------------------------------------------------


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), to tell a reused PID."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is not None:
        now = _process_start(pid)
        if now is not None and now != start:
            return False  # the PID was reused by another process
    return True


_held: dict[str, list] = {}  # lock path -> [descriptor, count]; re-entrant within a process
_held_guard = threading.Lock()


class WriterLock:
    """Exclusive right to write ``path`` (a result or a sweep store) for this process.

    Use as a context manager or with :meth:`acquire` / :meth:`release`. Re-entrant
    within one process. :attr:`notes` says whether a stale lock was taken over.
    """

    def __init__(self, path: str | os.PathLike, purpose: str = "writing"):
        self.path = Path(path)
        self.lock = _lock_path(self.path)
        self.purpose = purpose
        self.notes: list[str] = []
        self._acquired = False

    def _record(self) -> bytes:
        return (json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                            "process_start": _process_start(os.getpid()), "purpose": self.purpose,
                            "output": str(self.path)}) + "\n").encode()

    @staticmethod
    def _read(descriptor: int) -> dict:
        os.lseek(descriptor, 0, os.SEEK_SET)
        raw = b""
        while block := os.read(descriptor, 65536):
            raw += block
        try:
            record = json.loads(raw.decode("utf-8") or "{}")
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def _refuse(self, record: dict) -> OutputLockedError:
        pid, host = record.get("pid"), record.get("host")
        since = record.get("started")
        when = (time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since))
                if isinstance(since, (int, float)) else "")
        doing = record.get("purpose") or "writing"
        return OutputLockedError(
            f"{self.path} is being written by another cbecsim process (PID {pid} on host {host}{when}, "
            f"{doing}); wait for it to finish or stop it. If that process is gone on another machine, "
            f"remove {self.lock}",
            pid,
            host,
        )

    def acquire(self) -> "WriterLock":
        import fcntl

        key = str(self.lock.resolve())
        with _held_guard:
            if key in _held:
                _held[key][1] += 1
                self._acquired = True
                return self
        for _attempt in range(20):
            descriptor = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = self._read(descriptor)
                for _wait in range(40):  # the holder may not have written its record yet
                    if record.get("pid"):
                        break
                    time.sleep(0.05)
                    record = self._read(descriptor)
                os.close(descriptor)
                raise self._refuse(record) from None
            except OSError as exc:  # flock not supported here: fall back on the record alone
                os.close(descriptor)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                    return self._acquire_by_record(key)
                raise
            # We hold the flock; make sure it is on the file that still has the lock's name
            # (a releasing holder unlinks it; then start again on the new file).
            try:
                same = os.fstat(descriptor).st_ino == os.stat(self.lock).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(descriptor)
                continue
            previous = self._read(descriptor)
            if previous.get("pid") and previous.get("pid") != os.getpid():
                self.notes.append(
                    f"took over the writer lock of {self.path.name} left by PID {previous.get('pid')} on host "
                    f"{previous.get('host')}, which is no longer running"
                )
            os.ftruncate(descriptor, 0)
            os.lseek(descriptor, 0, os.SEEK_SET)
            os.write(descriptor, self._record())
            os.fsync(descriptor)
            with _held_guard:
                _held[key] = [descriptor, 1]
            self._acquired = True
            return self
        raise OutputError(f"{self.lock}: could not take the writer lock (it kept changing)")  # pragma: no cover

    def _acquire_by_record(self, key: str) -> "WriterLock":  # pragma: no cover - needs a filesystem without flock
        record = {}
        if self.lock.exists():
            try:
                record = json.loads(self.lock.read_text() or "{}")
            except (OSError, ValueError):
                record = {}
            same_host = record.get("host") == socket.gethostname()
            if record.get("pid") and not (same_host and not _alive(int(record["pid"]), record.get("process_start"))):
                raise self._refuse(record)
            stale = self.lock.with_name(f"{self.lock.name}.stale-{uuid.uuid4().hex[:8]}")
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.lock, stale)
                os.unlink(stale)
            if record.get("pid"):
                self.notes.append(
                    f"took over the writer lock of {self.path.name} left by PID {record['pid']} "
                    f"on host {record.get('host')}, which is no longer running"
                )
        try:
            descriptor = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise self._refuse(json.loads(self.lock.read_text() or "{}")) from None
        os.write(descriptor, self._record())
        os.fsync(descriptor)
        with _held_guard:
            _held[key] = [descriptor, 1]
        self._acquired = True
        return self

    def release(self) -> None:
        if not self._acquired:
            return
        self._acquired = False
        key = str(self.lock.resolve())
        with _held_guard:
            entry = _held.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[key]
        descriptor = entry[0]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.lock)  # while still holding the flock (see the inode check in acquire)
        os.close(descriptor)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def held_by_this_process(path: str | os.PathLike) -> bool:
    """Whether this process holds the writer lock of ``path``."""
    lock = _lock_path(Path(path))
    with _held_guard:
        return str(lock.resolve()) in _held
