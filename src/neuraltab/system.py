"""What this process may use of the machine: its CPU cores and the memory it can still allocate."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["available_cores", "available_memory"]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
