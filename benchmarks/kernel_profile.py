"""Where the kernel's time goes: a sampling profile of the compiled numba code, by line.

cProfile sees the kernel as one call (``advance``: 87% of a bench_core run), and ``perf``
alone sees numba's JIT code as bare addresses. This script joins the two ends:

1. a child process compiles the kernels afresh (into a temporary cache) with DWARF line
   tables but the same optimisation as a normal build -- numba's debug mode would also
   turn on bounds checks, extended variable lifetimes and ``noinline``, which run the
   kernel 2.5x slower, so those are switched back off -- and with each statement's real
   source file kept (numba marks the statements it inlines at IR level, ``inline="always"``,
   with the caller's file; the file is folded into the line number here and unfolded
   below);
2. it writes the object code of every kernel library and its load address, then runs the config
   under ``perf record`` (user-space samples, ~5 kHz);
3. each sample inside the kernel is mapped with ``addr2line`` (binutils) to its inline
   chain and source line, and the shares are printed by compiled function, by source
   function and by source line.

The figures are shares of the samples that fall inside the kernel (the child also prints
the timed run's ns per seller-market-day, for scale). Usage::

    python benchmarks/kernel_profile.py                       # configs/bench_core.yaml
    python benchmarks/kernel_profile.py configs/baseline.yaml -n 64 --resolution day

Needs Linux ``perf`` (``kernel.perf_event_paranoid`` <= 2 allows a user's own process)
and ``addr2line``; the compile takes about a minute.
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import linecache
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A statement's line is stored as ``file_tag * LINE_BASE + line`` (DWARF lines are 32-bit).
LINE_BASE = 100_000
FILE_TAGS = 40_000


def file_tag(path: str) -> int:
    return 1 + zlib.crc32(os.path.abspath(path).encode()) % (FILE_TAGS - 1)


# --------------------------------------------------------------------------------------
# Child: compile with line tables, dump the object code, run.
# --------------------------------------------------------------------------------------


def patch_numba_for_line_tables(files: dict[int, str]) -> None:
    """Line tables without debug mode's slowdowns, and each statement's own file."""
    import numba.core.cpu as cpu
    import numba.core.debuginfo as debuginfo
    import numba.core.lowering as lowering

    finalize = cpu.CPUTargetOptions.finalize

    def line_tables_only(self, flags, options):
        finalize(self, flags, options)
        if flags.debuginfo:
            flags.boundscheck = False
            flags.dbg_extend_lifetimes = False

    cpu.CPUTargetOptions.finalize = line_tables_only

    pre_lower = lowering.BaseLower.pre_lower

    def keep_inlining(self):
        pre_lower(self)
        self.builder.function.attributes.discard("noinline")

    lowering.BaseLower.pre_lower = keep_inlining

    lower_inst = lowering.Lower.lower_inst

    def note_file(self, inst):
        self.debuginfo.statement_file = self.loc.filename
        return lower_inst(self, inst)

    lowering.Lower.lower_inst = note_file

    def mark_location(self, builder, line):
        path = getattr(self, "statement_file", None) or self.filepath
        tag = file_tag(path)
        files[tag] = os.path.abspath(path)
        builder.debug_metadata = self._add_location(tag * LINE_BASE + line)

    debuginfo.DIBuilder.mark_location = mark_location


def child(args: argparse.Namespace) -> None:
    files: dict[int, str] = {}
    patch_numba_for_line_tables(files)
    import cbecsim

    cbecsim.run(args.config, replications=2, resolution=args.resolution, threads=1)
    # Every compiled library: a call may land in a callee's own library (numba links
    # callees as weak symbols, and the first loaded copy is the one that runs).
    out = Path(args.workdir)
    libraries = []
    seen = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("cbecsim.kernels"):
            continue
        for value in vars(module).values():
            for overload in getattr(value, "overloads", {}).values():
                library = getattr(overload, "library", None)
                if library is None or id(library) in seen:
                    continue
                seen.add(id(library))
                try:
                    code = library._get_compiled_object()
                except RuntimeError:  # loaded from a cache: no object code kept
                    continue
                path = out / f"library{len(libraries)}.o"
                path.write_bytes(code)
                symbol = overload.fndesc.llvm_func_name
                libraries.append({"object": path.name, "symbol": symbol,
                                  "address": library.get_pointer_to_function(symbol)})
    (out / "libraries.json").write_text(json.dumps({"libraries": libraries, "files": files}))
    start = time.perf_counter()
    cbecsim.run(args.config, replications=args.replications, resolution=args.resolution, threads=1)
    seconds = time.perf_counter() - start
    print(f"timed run: {args.replications} replications in {seconds:.2f} s", flush=True)


# --------------------------------------------------------------------------------------
# Parent: perf, addr2line, tables.
# --------------------------------------------------------------------------------------


def code_section(obj: Path, symbol: str) -> tuple[str, int, int]:
    """(name, size, offset of ``symbol`` in it) of the object's code section (numba
    compiles with the large code model: ``.ltext``)."""
    sections = subprocess.run(["readelf", "-SW", str(obj)], capture_output=True, text=True, check=True).stdout
    symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    offset = next(int(line.split()[0], 16) for line in symbols.splitlines() if line.endswith(" " + symbol))
    for line in sections.splitlines():
        match = re.search(r"\]\s+(\.l?text)\s+PROGBITS\s+\S+\s+\S+\s+([0-9a-f]+)", line)
        if match and int(match.group(2), 16) > 0:
            return match.group(1), int(match.group(2), 16), offset
    raise SystemExit("no code section in the kernel's object file")


def function_name(dwarf_name: str) -> str:
    """``module.function`` from a numba symbol (mangled or demangled)."""
    if dwarf_name.startswith("_ZN"):
        parts, i = [], 3
        while i < len(dwarf_name) and dwarf_name[i].isdigit():
            j = i
            while dwarf_name[j].isdigit():
                j += 1
            n = int(dwarf_name[i:j])
            parts.append(dwarf_name[j : j + n])
            i = j + n
        return ".".join(parts[-2:]) if parts else dwarf_name
    return ".".join(dwarf_name.split("[")[0].split("::")[-2:])


def source_functions(path: str) -> list[tuple[int, int, str]]:
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError):
        return []
    return sorted(((n.lineno, n.end_lineno or n.lineno, n.name) for n in ast.walk(tree)
                   if isinstance(n, ast.FunctionDef)), key=lambda r: r[0])


def enclosing(ranges: list[tuple[int, int, str]], line: int) -> str:
    name = "?"
    for first, last, function in ranges:  # sorted by start: the innermost match wins
        if first <= line <= last:
            name = function
    return name


def inline_chains(obj: Path, section: str, offsets: list[int]) -> dict[int, list[tuple[str, str]]]:
    """offset -> [(function, file:line), ...] from the innermost inline frame out."""
    lines = subprocess.run(["addr2line", "-f", "-i", "-a", "-e", str(obj), "-j", section]
                           + [hex(o) for o in offsets], capture_output=True, text=True, check=True).stdout.splitlines()
    chains: dict[int, list[tuple[str, str]]] = {}
    current = -1
    i = 0
    while i < len(lines):
        if lines[i].startswith("0x"):
            current = int(lines[i], 16)
            chains[current] = []
            i += 1
        else:
            chains[current].append((lines[i], lines[i + 1]))
            i += 2
    return chains


def report(workdir: Path, top: int) -> None:
    meta = json.loads((workdir / "libraries.json").read_text())
    files = {int(k): v for k, v in meta["files"].items()}
    loaded = []  # (start, end, object, section) of each library's code as loaded
    for library in meta["libraries"]:
        obj = workdir / library["object"]
        section, size, offset = code_section(obj, library["symbol"])
        start = library["address"] - offset
        loaded.append((start, start + size, obj, section))
    ips = [int(ip, 16) for ip in subprocess.run(["perf", "script", "-i", str(workdir / "perf.data"), "-F", "ip"],
                                                capture_output=True, text=True, check=True).stdout.split()]
    per_library: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for ip in ips:
        for k, (start, end, _, _) in enumerate(loaded):
            if start <= ip < end:
                per_library[k][ip - start] += 1
                break
    inside = sum(sum(c.values()) for c in per_library.values())
    if not inside:
        raise SystemExit("no samples inside the kernel")
    chains: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for k, offsets in per_library.items():
        _, _, obj, section = loaded[k]
        chains.update(((k, o), c) for o, c in inline_chains(obj, section, sorted(offsets)).items())
    by_compiled: collections.Counter[str] = collections.Counter()
    by_source: collections.Counter[str] = collections.Counter()
    by_line: collections.Counter[tuple[str, int]] = collections.Counter()
    ranges: dict[str, list[tuple[int, int, str]]] = {}
    for k, offsets in per_library.items():
        for offset, count in offsets.items():
            chain = chains.get((k, offset)) or [("?", "?:0")]
            by_compiled[function_name(chain[0][0])] += count
            match = re.search(r":(\d+)", chain[0][1])
            encoded = int(match.group(1)) if match else 0
            path = files.get(encoded // LINE_BASE)
            line = encoded % LINE_BASE
            if path is None or line == 0:
                by_source["(no line)"] += count
                continue
            if path not in ranges:
                ranges[path] = source_functions(path)
            inside_src = path.startswith(str(ROOT / "src"))
            short = os.path.relpath(path, ROOT / "src") if inside_src else os.path.basename(path)
            by_source[f"{short}:{enclosing(ranges[path], line)}"] += count
            by_line[(path, line)] += count
    print(f"\n{inside} samples inside the kernel, {inside / len(ips):.0%} of the process's (the compile included)")
    for title, counter in (("compiled function (innermost inline frame)", by_compiled),
                           ("source function", by_source)):
        print(f"\n== by {title}")
        for key, count in counter.most_common(top):
            print(f"{count / inside:6.1%}  {key}")
    print("\n== by source line")
    for (path, line), count in by_line.most_common(top):
        short = os.path.basename(path)
        text = linecache.getline(path, line).strip()[:96]
        print(f"{count / inside:6.1%}  {short}:{line:<5} {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "bench_core.yaml"),
                        help="experiment config to profile (default: configs/bench_core.yaml)")
    parser.add_argument("-n", "--replications", type=int, default=600, help="replications of the sampled run")
    parser.add_argument("--resolution", default="month", choices=["day", "week", "month", "year"],
                        help="output resolution of the run (default month)")
    parser.add_argument("--top", type=int, default=40, help="rows per table (default 40)")
    parser.add_argument("--keep", metavar="DIR", help="keep the object code, samples and cache in DIR")
    parser.add_argument("--report", metavar="DIR", help="print the tables of a run kept with --keep")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not Path(args.config).is_file():
        parser.error(f"no config file {args.config}")
    if args.replications < 1:
        parser.error(f"--replications must be at least 1, got {args.replications}")
    for tool in ("perf", "addr2line", "readelf", "nm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"kernel_profile needs `{tool}` on PATH (Linux perf, binutils)")
    if args.report:  # tables again from a kept run, without profiling anew
        if not (Path(args.report) / "libraries.json").is_file():
            parser.error(f"{args.report} holds no run kept with --keep")
        report(Path(args.report), args.top)
        return
    with tempfile.TemporaryDirectory(prefix="cbecsim-kprof-") as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, NUMBA_DEBUGINFO="1", NUMBA_CACHE_DIR=str(workdir / "cache"))
        command = ["perf", "record", "-q", "-F", "4999", "-o", str(workdir / "perf.data"), "--",
                   sys.executable, __file__, "--child", "--workdir", str(workdir), args.config,
                   "-n", str(args.replications), "--resolution", args.resolution]
        print("compiling the kernels with line tables (about a minute), then sampling the run ...", flush=True)
        if subprocess.run(command, env=env).returncode != 0:
            raise SystemExit("the profiled run failed (see above); is perf allowed (perf_event_paranoid <= 2)?")
        report(workdir, args.top)


if __name__ == "__main__":
    main()
