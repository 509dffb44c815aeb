"""``neuraltab train --nproc N``: the same command in N processes on this machine, started by torchrun's launcher
(``torch.distributed.run``'s API: torchrun in its standalone mode, N processes per node, running
``-m neuraltab train ...``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid

__all__ = ["launch_local", "without_nproc"]


def without_nproc(args: list[str]) -> list[str]:
    """The command's arguments less ``--nproc N`` (or ``--nproc=N``): what each process is given.

    >>> without_nproc(["train", "a.csv", "--nproc", "2", "-t", "y", "--nproc=3"])
    ['train', 'a.csv', '-t', 'y']
    """
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch_local(nproc: int, args: list[str]) -> int:
    """Run ``neuraltab`` with ``args`` (less ``--nproc``) in ``nproc`` processes of one group on this machine and
    return the exit status: 0, or the first failed rank's (128 + N for a signal N), after one line saying which rank
    failed. Each rank prints its own error line; torchrun's launcher stops the others when one fails."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from ..system import compute_threads

    # torchrun's own rule: the cores shared out among the processes unless the user set it
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, compute_threads() // nproc)))
    for name in list(logging.root.manager.loggerDict):  # the launcher's own log lines, each module its logger
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", "neuraltab", *without_nproc(args))
    except ChildFailedError as exc:
        # a rank a signal ended is the cause; the others then failed their collectives, each saying so in one line
        # (SIGTERM is how the launcher stops the rest, so another signal is the cause where there is one)
        ended = sorted((f.exitcode == -signal.SIGTERM, f.timestamp, r, f) for r, f in exc.failures.items()
                       if f.exitcode < 0)
        rank, failure = ended[0][2:] if ended else exc.get_first_failure()
        code = failure.exitcode
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
            print(f"error: rank {rank} of {nproc} was ended by {name}; the other ranks were stopped", file=sys.stderr)
            return 128 - code
        if code != 2:  # 2 is a rank's own one-line error, printed above
            print(f"error: rank {rank} of {nproc} exited with status {code}; the other ranks were stopped",
                  file=sys.stderr)
        return code
    except SignalException as exc:  # Ctrl-C or SIGTERM to the launcher, passed on to every rank
        return 128 + int(exc.sigval)
    return 0
