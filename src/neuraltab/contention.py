"""How OpenMP's threads wait, chosen from how busy the machine is, before torch loads (the CLI calls this first).

Between two parallel regions, PyTorch's OpenMP threads spin by default. On an idle machine that is fastest, but
when another process keeps a core busy, a spinning thread and that process share the core and every parallel region
waits for the slower of them. Measured on 2 cores, one step of the default model (benchmarks/README.md):

==========================================  ============  ===================
setting                                     idle machine  one busy neighbour
==========================================  ============  ===================
spinning (OpenMP's default)                 2.9-3.1 ms    11.5-17.0 ms
``OMP_WAIT_POLICY=PASSIVE``                 5.0 ms        5.1 ms
==========================================  ============  ===================

So the CLI samples, for 0.1 s, how much of the cores it may run on other processes keep busy, and asks for passive
waiting when that is half a core or more. It imports pandas meanwhile (pandas does not start OpenMP; the import takes
~0.25 s, longer than the sample) and takes its own CPU time off the busy time. The policy decides only how threads
wait, never what they compute, so results are the same either way. It is left alone when the user set any OpenMP waiting variable, and it has no
effect once torch is loaded (the OpenMP runtime reads it when it starts).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Mapping, MutableMapping

__all__ = ["busy_cores_elsewhere", "choose_wait_policy", "WAIT_VARIABLES"]

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
