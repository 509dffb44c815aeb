"""What this process may use of the machine: its CPU cores and the memory it can still allocate."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["available_cores", "available_memory", "compute_threads"]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def compute_threads() -> int:
    """Threads this process should compute with by default: its cores (:func:`available_cores`, lowered to a cgroup's
    CPU quota), less what sibling processes working in parallel take. Siblings are told their share in
    ``OMP_NUM_THREADS``: joblib sets it to cores // n_jobs in each worker it starts (``GridSearchCV(n_jobs=2)``,
    ``cross_val_score``), and a user who sets it asks the same. Two workers that each spun every core would fight
    over them and run slower together than one alone."""
    cores = available_cores()
    quota = _cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, int(quota)))
    try:
        share = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:  # unset, or not a single number ("4,2" lists nested levels): no share stated
        share = 0
    return min(cores, share) if share >= 1 else cores


def _cpu_quota() -> float | None:
    """CPUs a cgroup (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``) lets this process use, or None when unlimited."""
    for path, parse in (("/sys/fs/cgroup/cpu.max", lambda t: t.split()),
                        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", None)):
        try:
            text = Path(path).read_text().strip()
            if parse is not None:
                quota, period = parse(text)
            else:
                quota, period = text, Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
            if quota in ("max", "-1"):
                return None
            return int(quota) / int(period)
        except (OSError, ValueError):
            continue
    return None


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable from /proc/meminfo, lowered to the cgroup's remaining limit
    (containers); None where neither can be read (not Linux)."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = int(Path(limit_file).read_text().strip())  # "max" (no limit) fails here
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if 0 < limit < 1 << 60:
            found.append(max(limit - usage, 0))
        break
    return min(found) if found else None
