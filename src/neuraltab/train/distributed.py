"""Training across processes: PyTorch's DistributedDataParallel in a process group that ``torchrun`` (or Ray's
TorchTrainer, Spark's TorchDistributor) started, gloo on CPU and NCCL on GPU.

The process group is found from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``), or is the one the caller already initialised. Each rank trains on its shard of the training rows
(:func:`neuraltab.data.stream.shard_of`); every rank runs the same number of steps per epoch, the ranks with fewer
rows cycling through theirs, and a rank without rows steps with a zero-weight batch, so that no collective waits on
a rank that has finished. Stop requests (time limit, Ctrl-C, early stopping) are agreed on by all ranks before any
acts on one, rank 0's validation result is everyone's, and only rank 0 writes checkpoints. A collective that fails
(a rank died, or did not answer within the timeout) ends the run with a :class:`DistributedError`.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ..config import TrainConfig
from ..device import autocast
from ..errors import UserError, option
from .autograd import ensemble_loss, penalty

__all__ = ["DISTRIBUTED_REASON", "TIMEOUT_VARIABLE", "Context", "DistributedError", "Plan", "current",
           "distributed_epoch", "failures", "join", "leave", "plan", "requested"]

TIMEOUT_VARIABLE = "NEURALTAB_DIST_TIMEOUT"  # seconds a collective waits for the other ranks
_DEFAULT_TIMEOUT_S = 300.0
DISTRIBUTED_REASON = ("a distributed run: the hand-derived CPU steps do not all-reduce gradients, so autograd trains "
                      "through DistributedDataParallel")

_CONTEXT: "Context | None" = None  # the group this process joined, for the rest of its run
_CREATED = False  # whether neuraltab initialised the process group (and so destroys it)


class DistributedError(UserError):
    """The process group failed: a rank died, or did not answer within the timeout."""


@dataclass(frozen=True)
class Context:
    """This process's place in the group: its rank, the group's size, its rank on its machine, the backend and the
    device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size

    @property
    def is_writer(self) -> bool:
        """Rank 0 writes the checkpoints and the model, and renders progress."""
        return self.rank == 0

    # --------------------------------------------------------------------------------------------- collectives
    def _tensor(self, values: list[float], dtype: torch.dtype = torch.float64) -> torch.Tensor:
        # NCCL moves only tensors on the GPU; gloo those on the CPU
        return torch.tensor(values, dtype=dtype, device=self.device if self.backend == "nccl" else "cpu")

    def sum(self, values: list[float]) -> list[float]:
        import torch.distributed as dist

        t = self._tensor(values)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    def max(self, value: int) -> int:
        import torch.distributed as dist

        t = self._tensor([value], torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, value: int) -> list[int]:
        """Every rank's ``value``, in rank order."""
        import torch.distributed as dist

        t = self._tensor([0] * self.world_size, torch.int64)
        t[self.rank] = value
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [int(v) for v in t.cpu().tolist()]

    def broadcast(self, values: list[float]) -> list[float]:
        """Rank 0's ``values``, bit for bit, on every rank."""
        import torch.distributed as dist

        t = self._tensor(values)
        dist.broadcast(t, src=0)
        return t.cpu().tolist()

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (pickled in memory between the ranks of one job, never to a file)."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        import torch.distributed as dist

        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def on_rank_zero(self, fn: Any) -> Any:
        """``fn()`` run on rank 0 only, its result (or the :class:`UserError` it raised) handed to every rank, so a
        bad table fails every rank with rank 0's one line instead of leaving the others waiting."""
        result: Any = None
        if self.rank == 0:
            try:
                result = ("ok", fn())
            except UserError as exc:
                result = ("error", exc)
        kind, value = self.broadcast_object(result)
        if kind == "error":
            if self.rank != 0:
                value.from_rank_zero = True  # rank 0 says it; the command line prints it once
            raise value
        return value


# ======================================================================================================================
# Joining the group
# ======================================================================================================================


def requested(environ: Any = os.environ) -> bool:
    """Whether this process trains as a rank of a process group: torchrun's ``WORLD_SIZE`` above 1, or a group the
    caller initialised (Ray's TorchTrainer does, even for one worker)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return True
    try:
        return int(environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def timeout_seconds(environ: Any = os.environ) -> float:
    value = environ.get(TIMEOUT_VARIABLE, "")
    try:
        seconds = float(value) if value else _DEFAULT_TIMEOUT_S
    except ValueError:
        raise UserError(f"{TIMEOUT_VARIABLE}={value!r}: must be a number of seconds, such as 300") from None
    if not seconds > 0:
        raise UserError(f"{TIMEOUT_VARIABLE}={value!r}: must be more than 0 seconds")
    return seconds


def current() -> Context | None:
    """The group this process joined (:func:`join`), or None for a run of one process."""
    return _CONTEXT


def join(device: torch.device) -> tuple[Context | None, torch.device]:
    """(this process's :class:`Context`, the device it trains on), initialising the process group from torchrun's
    environment unless the caller did; (None, ``device``) for a run of one process. On a GPU each rank takes the
    device of its ``LOCAL_RANK`` and the backend is NCCL; on the CPU it is gloo."""
    global _CONTEXT, _CREATED
    import torch.distributed as dist

    if _CONTEXT is not None:
        return _CONTEXT, _CONTEXT.device
    if not requested():
        return None, device
    if not dist.is_available():
        raise UserError("WORLD_SIZE asks for a distributed run, but this build of torch has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise UserError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} asks for a distributed run, but "
                            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; launch it with "
                            f"torchrun (or with {option('nproc')} N)")
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds()),
                                    **({"device_id": device} if device.type == "cuda" else {}))
        except Exception as exc:  # a rendezvous that never completed: one line, not torch's traceback
            raise DistributedError(f"rank {os.environ.get('RANK')}: could not join the process group at "
                                   f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
                                   f"({_first_line(exc)})") from None
        _CREATED = True
    backend = str(dist.get_backend())
    if backend == "nccl" and device.type != "cuda":
        raise UserError(f"the process group uses NCCL, which needs a GPU, but this run trains on the CPU; pass "
                        f"{option('device', 'cuda')}, or start the group with the gloo backend")
    _share_cores(int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())))
    _CONTEXT = Context(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                       backend=backend, device=device)
    return _CONTEXT, device


def _share_cores(local_world: int) -> None:
    """Tell :func:`~neuraltab.system.compute_threads` this process's share of the machine's cores, as torchrun does
    (several ranks each spinning every core run slower together than apart); a user's own setting wins."""
    if local_world > 1 and "OMP_NUM_THREADS" not in os.environ:
        from ..system import compute_threads

        os.environ["OMP_NUM_THREADS"] = str(max(1, compute_threads() // local_world))


def leave() -> None:
    """Leave the group: destroyed if neuraltab created it (a caller's own group is theirs to end)."""
    global _CONTEXT, _CREATED
    import torch.distributed as dist

    if _CREATED and dist.is_initialized():
        with contextlib.suppress(Exception):  # the other ranks may be gone already
            dist.destroy_process_group()
    _CONTEXT, _CREATED = None, False


def _first_line(exc: BaseException) -> str:
    """The gist of a torch.distributed error: its first line, less the source location and gloo's advice."""
    import re

    text = str(exc).strip().splitlines()
    line = re.sub(r"^\[[^\]]*\]\s*", "", text[0] if text else type(exc).__name__)
    return line.split(" This is typically caused", 1)[0].rstrip(". ")[:300]


@contextlib.contextmanager
def failures(ctx: Context | None) -> Iterator[None]:
    """A failed collective (a rank died, or another did not answer within the timeout) as one
    :class:`DistributedError` line, not torch's traceback."""
    if ctx is None:
        yield
        return
    import torch.distributed as dist

    try:
        yield
    except UserError:
        raise
    except (dist.DistError, RuntimeError) as exc:
        text = str(exc)
        words = ("gloo", "Gloo", "NCCL", "Connection", "connection", "timed out", "Timed out", "Timeout", "peer",
                 "Socket")
        if not isinstance(exc, dist.DistError) and not any(word in text for word in words):
            raise  # not the group's failure: a bug, with its traceback
        raise DistributedError(f"rank {ctx.rank} of {ctx.world_size}: the process group failed, so training stopped "
                               f"(another rank died or did not answer within {timeout_seconds():g} s, "
                               f"{TIMEOUT_VARIABLE} sets it): {_first_line(exc)}") from None


# ======================================================================================================================
# Steps
# ======================================================================================================================


@dataclass(frozen=True)
class Plan:
    """How an epoch's steps are shared: rows per step on each rank (the global batch over the ranks), the steps
    every rank runs, how many ranks have rows, and the rows of every rank together."""

    local_batch: int
    steps: int
    active: int
    n_global: int


def plan(ctx: Context, n_local: int, global_batch: int) -> Plan:
    """The same :class:`Plan` on every rank: steps for the rank with the most rows; the others cycle theirs."""
    counts = ctx.gather(n_local)
    n_global = sum(counts)
    local_batch = max(1, math.ceil(min(global_batch, max(n_global, 1)) / ctx.world_size))
    steps = max(math.ceil(n / local_batch) for n in counts)
    return Plan(local_batch=local_batch, steps=steps, active=sum(1 for n in counts if n), n_global=n_global)


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    """``model`` in DistributedDataParallel (which starts every rank from rank 0's weights)."""
    from torch.nn.parallel import DistributedDataParallel

    if ctx.device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[ctx.device.index], output_device=ctx.device.index)
    return DistributedDataParallel(model)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A generator seed per (seed, epoch, rank): each epoch's batch order and dropout start from it, so a resumed run
    needs no other rank's generator state."""
    return ((seed * 1_000_003 + epoch) * 1_009 + rank) % (1 << 63)


def _fixed_batches(source: Any, epoch: int, size: int, device: torch.device,
                   generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
    """The source's rows for ``epoch`` in batches of exactly ``size`` rows, each block in a random order, without
    end: once the blocks run out, rows of the last block again (the shard's rows are short of the plan's steps)."""
    def blocks() -> Iterator[tuple[torch.Tensor, ...]]:
        last = None
        for block in source.tensors(epoch, device):
            if len(block[0]):
                last = block
                yield block
        while last is not None:  # the shard ran out before the plan's steps did
            yield last

    carry: tuple[torch.Tensor, ...] | None = None
    for block in blocks():
        perm = torch.randperm(len(block[0]), generator=generator).to(device)
        rows = tuple(t[perm] for t in block)
        if carry is not None:
            rows = tuple(torch.cat([a, b]) for a, b in zip(carry, rows))
        i = 0
        while len(rows[0]) - i >= size:
            yield tuple(t[i:i + size] for t in rows)
            i += size
        carry = tuple(t[i:] for t in rows)


def distributed_epoch(ctx: Context, source: Any, net: nn.Module, optimizer: torch.optim.Optimizer, *, epoch: int,
                      plan: Plan, device: torch.device, task: str, cfg: TrainConfig, generator: torch.Generator,
                      shapes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                      should_stop: Any) -> tuple[float, bool]:
    """One epoch of ``plan.steps`` DistributedDataParallel steps → (mean training loss over every rank's rows, whether
    it finished). Each rank's loss is weighted so that the gradients DDP averages are those of the mean over all the
    rows of the step; a rank without rows steps on zeros with weight 0. ``should_stop()`` (agreed by all ranks) is
    asked after every step."""
    size = plan.local_batch
    has_rows = source.n_rows > 0
    weight = ctx.world_size / plan.active if has_rows else 0.0
    batches = _fixed_batches(source, epoch, size, device, generator) if has_rows else None
    if batches is None:  # zeros of the inputs' shapes: category 0 exists in every vocabulary
        x_num, x_cat, y = shapes
        blank = (torch.zeros((size, x_num.shape[1]), dtype=x_num.dtype, device=device),
                 torch.zeros((size, x_cat.shape[1]), dtype=x_cat.dtype, device=device),
                 torch.zeros((size,), dtype=y.dtype, device=device))
    total = torch.zeros((), dtype=torch.float64, device=device)
    seen, complete = 0, True
    module = net.module if hasattr(net, "module") else net
    for step in range(plan.steps):
        xb_num, xb_cat, yb = next(batches) if batches is not None else blank
        with autocast(device, cfg.precision):
            out = net(xb_num, xb_cat)
        loss = ensemble_loss(out.float(), yb, task=task, loss=cfg.loss)
        extra = penalty(module, l1=cfg.l1, l2=cfg.l2)
        optimizer.zero_grad(set_to_none=True)
        objective = loss * weight
        (objective if extra is None else objective + extra).backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip, foreach=True)
        optimizer.step()
        if has_rows:
            total += loss.detach().double() * size
            seen += size
        if should_stop():
            complete = step + 1 == plan.steps
            break
    if batches is not None:
        batches.close()  # ends the blocks' read-ahead thread
    loss_sum, rows = ctx.sum([float(total), float(seen)])
    return loss_sum / max(rows, 1.0), complete


def agree_stop(ctx: Context, run: Any) -> bool:
    """Whether any rank asked to stop (0 none, 1 stop after this epoch, 2 stop and discard it), applied on every rank
    alike, so no rank goes on into a collective the others left."""
    code = 0 if not run.stop_training else 2 if run.discard_epoch else 1
    agreed = ctx.max(code)
    if agreed and not run.stop_training:
        run.stop("stopped on another rank", discard_epoch=agreed == 2)
    elif agreed == 2:
        run.discard_epoch = True
    return bool(agreed)
