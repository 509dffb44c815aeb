"""Training on rows that arrive in blocks (a table streamed from disk): the loop's epoch source.

:func:`~.loop.train` runs the same epochs, validation, early stopping, checkpoints and callbacks as in memory; only
an epoch's rows come from :class:`EpochSource` a block at a time, each block trained in a seeded random order, by
the hand-derived CPU step where it can take its rows block by block (``bind``: the default model's), else autograd.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..data.preprocess import Batch
from ..device import to_tensors
from .autograd import autograd_epoch

__all__ = ["EpochSource", "STREAMED_REASON", "streamed_epoch"]

STREAMED_REASON = "the table is streamed: its rows arrive in blocks, and this model's hand-derived step holds all of them"


@dataclass
class EpochSource:
    """An epoch's training rows, block by block: ``blocks(epoch)`` yields :class:`Batch` objects (``y`` raw, as the
    preprocessor gives it); ``n_rows`` is how many rows an epoch has."""

    blocks: Callable[[int], Iterator[Batch]]
    n_rows: int
    task: str
    y_mean: float = 0.0
    y_std: float = 1.0
    prefetch: int = 1  # blocks read and transformed ahead, on a thread, while the current one trains

    def tensors(self, epoch: int, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The epoch's blocks as (x_num, x_cat, y) tensors on ``device``, regression targets standardised."""
        for batch in _ahead(self.blocks(epoch), self.prefetch):
            yield to_tensors(batch, device, task=self.task, y_mean=self.y_mean, y_std=self.y_std)


def _ahead(items: Iterator[Any], n: int) -> Iterator[Any]:
    """``items``, with up to ``n`` of them made ahead on a thread (reading and transforming release the GIL for
    most of their time); an error there is raised here, where the item would have come."""
    if n <= 0:
        yield from items
        return
    done = object()
    slots: queue.Queue = queue.Queue(maxsize=n)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put(item)
            slots.put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            slots.put(exc)

    worker = threading.Thread(target=fill, daemon=True, name="neuraltab-stream")
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a blocked put finish so the thread sees the stop flag
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def streamed_epoch(source: EpochSource, model: nn.Module, optimizer: torch.optim.Optimizer, *, epoch: int,
                   generator: torch.Generator, device: torch.device, batch_size: int, task: str,
                   grad_clip: float | None, precision: str, should_stop: Any, stepper: Any = None) -> tuple[float, bool]:
    """One epoch over the source's blocks → (mean training loss over the rows seen, whether it finished); each block
    is trained in the order of a permutation drawn from ``generator``, as an in-memory epoch is, by ``stepper`` (a
    hand-derived step with ``bind``) or else autograd."""
    total, seen = 0.0, 0
    for block in source.tensors(epoch, device):
        n = len(block[0])
        perm = torch.randperm(n, generator=generator).to(device)
        steps, stopped = 0, False

        def counted() -> bool:
            nonlocal steps, stopped
            steps += 1
            stopped = should_stop()
            return stopped

        if stepper is not None:
            stepper.bind(*block)
            loss, complete = stepper.run_epoch(perm, counted)
        else:
            loss, complete = autograd_epoch(model, optimizer, block, perm, batch_size=batch_size, task=task,
                                            grad_clip=grad_clip, should_stop=counted, precision=precision)
        rows = n if complete else min(steps * batch_size, n)
        total += loss * rows
        seen += rows
        if stopped or not complete:
            return total / max(seen, 1), False
    return total / max(seen, 1), True
