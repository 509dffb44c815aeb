"""Requests for one model, run on the inference thread one prediction at a time, optionally gathered into batches.

Every request becomes a :class:`Job`: reading its body into a DataFrame and writing its response both run on the
inference thread, never on the event loop. The :class:`Batcher` hands the thread one job at a time, or, with
batching on (``max_rows`` > 1), every job that queued while the thread was busy, predicted as one DataFrame of at
most ``max_rows`` rows and split back into one response each. A job that arrives while the model is idle starts at
once: a lone request never waits. Jobs that queued behind a running prediction may wait for companions until
``max_wait`` seconds after the first of them arrived, and no longer.

Batching never changes an answer beyond float32 rounding (a matrix product over one row and over several may add in
another order, by the CPU's BLAS kernels; a label is the same unless two classes tie to the last bit). JSON rows are
checked in full before they are batched, so the model's own checks have nothing left to object to in them; CSV
bodies, which the model checks as whole files, are never batched. And one bad request never fails its neighbours: a
batch whose prediction raises a user error all the same is predicted again one request at a time, so each gets its
own answer.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import UserError

__all__ = ["Job", "Batcher"]


@dataclass(eq=False)  # jobs are compared by identity (queue.remove)
class Job:
    """One request: ``prepare`` reads its body into the rows to predict for (a DataFrame, or columns: a dict of
    equal-length arrays, which batch together without a DataFrame each), ``finish`` turns its rows of the predictions
    into the response. Both run on the inference thread."""

    prepare: Callable[[], pd.DataFrame | dict[str, np.ndarray]]
    finish: Callable[[Any], Any]
    source: str = "the request"  # what messages about its rows call them
    # False for a CSV body: the model's type checks judge a file's columns as a whole (a few stray words are missing
    # values, many are an error), so its rows are predicted alone, as `neuraltab predict` would read that file
    batchable: bool = True
    arrived: float = field(default_factory=time.monotonic)
    future: asyncio.Future | None = None
    frame: pd.DataFrame | dict[str, np.ndarray] | None = None
    result: Any = None
    error: BaseException | None = None


class Batcher:
    """Runs one model's jobs on ``executor``, one prediction at a time (see the module's docstring).

    ``predict`` takes a DataFrame and returns predictions for its rows, which slicing (``result[start:stop]``) splits
    into each job's; ``on_batch(rows)`` is told the size of every prediction.
    """

    def __init__(self, predict: Callable[[pd.DataFrame], Any], executor: Executor, *, max_rows: int = 0,
                 max_wait: float = 0.0, on_batch: Callable[[int], None] = lambda rows: None) -> None:
        self.predict = predict
        self.executor = executor
        self.max_rows = max(int(max_rows), 1)
        self.max_wait = max_wait
        self.on_batch = on_batch
        self.queue: list[Job] = []
        self.busy = False
        self._arrival: asyncio.Event | None = None

    async def run(self, job: Job) -> Any:
        """The job's result (its response), or its error raised."""
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        self.queue.append(job)
        if self._arrival is None:
            self._arrival = asyncio.Event()
        self._arrival.set()
        if not self.busy:
            self.busy = True
            loop.create_task(self._drain())
        try:
            return await job.future
        finally:
            if job in self.queue:  # cancelled (a timeout) before it started: it never runs
                self.queue.remove(job)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        started_idle = True
        try:
            while self.queue:
                if not started_idle and self.max_rows > 1 and self.max_wait > 0:
                    await self._gather(loop)
                started_idle = False
                jobs, self.queue = self.queue[: self.max_rows], self.queue[self.max_rows:]
                try:
                    await loop.run_in_executor(self.executor, self._run, jobs)
                except BaseException as exc:  # the executor is shut down: the jobs cannot run
                    for job in jobs:
                        job.error = job.error or exc
                for job in jobs:
                    if not job.future.done():
                        if job.error is not None:
                            job.future.set_exception(job.error)
                        else:
                            job.future.set_result(job.result)
        finally:
            self.busy = False

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for more jobs while the batch is short, until ``max_wait`` after its oldest job arrived."""
        deadline = self.queue[0].arrived + self.max_wait
        while len(self.queue) < self.max_rows:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except TimeoutError:
                return

    # ------------------------------------------------------------------------------------------ inference thread
    def _run(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.future.cancelled():
                continue
            try:
                job.frame = job.prepare()
            except BaseException as exc:  # a bad body (UserError) or a bug: that job's answer, not its neighbours'
                job.error = exc
        ready = [job for job in jobs if job.frame is not None and job.error is None]
        chunk: list[Job] = []
        rows = 0
        for job in ready:  # consecutive jobs up to max_rows rows a prediction; a bigger job goes alone
            if chunk and (rows + _rows(job.frame) > self.max_rows or not job.batchable or not chunk[-1].batchable):
                self._predict(chunk)
                chunk, rows = [], 0
            chunk.append(job)
            rows += _rows(job.frame)
        if chunk:
            self._predict(chunk)

    def _predict(self, chunk: list[Job]) -> None:
        frame = combine([job.frame for job in chunk])
        try:
            result = self.predict(frame)
        except UserError as exc:
            if len(chunk) == 1:
                chunk[0].error = exc
            else:
                for job in chunk:
                    self._predict([job])
            return
        except BaseException as exc:
            for job in chunk:
                job.error = exc
            return
        self.on_batch(len(frame))
        start = 0
        for job in chunk:
            stop = start + _rows(job.frame)
            try:
                job.result = job.finish(result[start:stop] if len(chunk) > 1 else result)
            except BaseException as exc:
                job.error = exc
            start = stop


def _rows(part: pd.DataFrame | dict[str, np.ndarray]) -> int:
    return len(part) if isinstance(part, pd.DataFrame) else len(next(iter(part.values())))


def combine(parts: list[pd.DataFrame | dict[str, np.ndarray]]) -> pd.DataFrame:
    """One DataFrame of the parts' rows, in order: columns are joined as arrays, then made a DataFrame once (a
    DataFrame per request and ``pd.concat`` cost more than the prediction of a few rows)."""
    if all(isinstance(p, dict) for p in parts):
        columns = parts[0] if len(parts) == 1 else {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
        return pd.DataFrame(columns, copy=False)
    frames = [p if isinstance(p, pd.DataFrame) else pd.DataFrame(p, copy=False) for p in parts]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
