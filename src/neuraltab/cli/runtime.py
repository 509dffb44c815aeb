"""The process around a command, set up from the entry point (never at import): how OpenMP's threads wait, how
glibc keeps freed memory, and an exit without the interpreter's teardown.

How threads wait is chosen from how busy the machine is, before torch loads. Between two parallel regions,
PyTorch's OpenMP threads spin by default. On an idle machine that is fastest, but when another process keeps a core
busy, a spinning thread and that process share the core and every parallel region waits for the slower of them
(``benchmarks/README.md`` has the figures). So the commands that compute sample, for 0.1 s, how much of the cores
this process may run on other processes keep busy, and ask for passive waiting when that is half a core or more.
They import pandas meanwhile (pandas does not start OpenMP, and they need it anyway) and take their own CPU time off
the busy time. The policy decides only how threads wait, never what they compute, so results are the same either
way. It is left alone when the user set any OpenMP waiting variable, and it has no effect once torch is loaded (the
OpenMP runtime reads it when it starts).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Mapping, MutableMapping

__all__ = ["busy_cores_elsewhere", "choose_wait_policy", "exit_after", "keep_freed_memory", "prepare", "WAIT_VARIABLES"]

WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")  # a user's own choice wins
BUSY_THRESHOLD = 0.5  # cores kept busy by other processes
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc/stat's unit


def _read_stat(path: str) -> dict[str, tuple[int, int]]:
    """Per CPU ("cpu0", ...): (busy ticks, all ticks) since boot, from /proc/stat."""
    out = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            idle = ticks[3] + ticks[4]
            out[name] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_cores_elsewhere(interval: float = 0.1, *, stat_path: str = "/proc/stat",
                         cpus: set[int] | None = None, sleep: Callable[[float], None] = time.sleep,
                         meanwhile: Callable[[], object] | None = None,
                         own_cpu_seconds: Callable[[], float] = time.process_time) -> float | None:
    """How many of the CPUs this process may run on other processes keep busy, averaged over at least ``interval``
    seconds. None where /proc/stat cannot be read.

    ``meanwhile``: work for this process to do during the interval, which then only sleeps what is left of it (the
    CLI imports pandas, which it needs anyway); it runs even where there is nothing to sample. The CPU time this
    process spends meanwhile (``own_cpu_seconds``, all its threads) is taken off the busy time, so what remains is
    other processes'.
    """
    if cpus is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    try:
        before = _read_stat(stat_path)
    except (OSError, ValueError, IndexError):
        before = None
    started, own_before = time.monotonic(), own_cpu_seconds()
    if meanwhile is not None:
        meanwhile()
    if before is None:
        return None
    remaining = interval - (time.monotonic() - started)
    if remaining > 0:
        sleep(remaining)
    own = own_cpu_seconds() - own_before
    try:
        after = _read_stat(stat_path)
    except (OSError, ValueError, IndexError):
        return None
    names = [f"cpu{i}" for i in sorted(cpus)] or list(after)
    busy = total = 0
    for name in names:
        if name in before and name in after:
            busy += after[name][0] - before[name][0]
            total += after[name][1] - before[name][1]
    if total <= 0:
        return None
    busy_elsewhere = max(busy - own * _TICKS_PER_SECOND, 0.0)
    return busy_elsewhere / total * len(names)


def choose_wait_policy(*, environ: MutableMapping[str, str] = os.environ, modules: Mapping[str, object] = sys.modules,
                       sample: Callable[..., float | None] = busy_cores_elsewhere,
                       meanwhile: Callable[[], object] | None = None) -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` when other processes keep half a core or more busy; return
    the value set, or None when nothing was changed (idle machine, the user's own setting, torch already loaded).
    ``meanwhile`` runs once either way: during the sample (``sample(meanwhile=...)``) when there is one."""
    if any(name in environ for name in WAIT_VARIABLES) or "torch" in modules:
        if meanwhile is not None:
            meanwhile()
        return None
    busy = sample(meanwhile=meanwhile)
    if busy is None or busy < BUSY_THRESHOLD:
        return None
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"


# the commands that compute, for which the 0.1 s sample pays off (not `info` or `--help`)
COMPUTING_COMMANDS = ("train", "evaluate", "predict", "demo", "report")
WAIT_POLICY: str | None = None  # what prepare() set, for the progress line to say


def _import_table_libraries() -> None:
    """What the 0.1 s CPU sample overlaps with: pandas and pyarrow's CSV reader, which the commands import anyway and
    which do not start OpenMP."""
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401


def prepare(argv: list[str]) -> str | None:
    """Before torch loads, for the commands that compute: OpenMP's threads wait passively when other processes keep
    the CPU busy. Returns the policy set (also kept in :data:`WAIT_POLICY`), or None."""
    global WAIT_POLICY
    if argv[1:2] and argv[1] in COMPUTING_COMMANDS:
        WAIT_POLICY = choose_wait_policy(meanwhile=_import_table_libraries)
    return WAIT_POLICY


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks of up to 64 MiB in the heap instead of returning them to the system.

    By default blocks over 128 KiB are mapped fresh each time and every page faults in again on first use, which
    costs a large prediction a good part of its forward pass. This does what ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` would; it is left alone when either is set, and elsewhere than glibc it does nothing.
    The CLI owns its process, so it sets this; a program using the library decides for itself.
    """
    if not sys.platform.startswith("linux") or any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_",
                                                                             "MALLOC_TRIM_THRESHOLD_")):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another libc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 64 << 20)) and bool(mallopt(m_trim_threshold, 256 << 20))


def exit_after(main: Callable[[], object]) -> None:
    """Run ``main``, then end the process without the interpreter's teardown.

    With torch loaded, Python's teardown (freeing the objects of some 2,000 modules) is a large share of a short
    command (``benchmarks/README.md``). When main returns, every output has been written atomically and closed; this
    flushes stdout and stderr and exits with main's status. An unexpected exception still ends the process the usual
    way, with its traceback.
    """
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or a closed stream: nothing more to deliver
            pass
    os._exit(code)
