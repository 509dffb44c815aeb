"""The seeded train/valid/test split, and the fingerprint that records which table a model was trained on."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, Notify, no_notice, option

__all__ = ["fingerprint", "split"]


def fingerprint(source: Any, df: pd.DataFrame) -> dict[str, Any]:
    """What the model was trained on: sha256 of the file (or of the DataFrame's content), rows and columns."""
    if isinstance(source, (str, Path)):
        digest = hashlib.sha256()
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        kind, name = "file", Path(source).name
    else:
        digest = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
        digest.update("\x1f".join(map(str, df.columns)).encode())
        kind, name = "dataframe", None
    return {"kind": kind, "name": name, "sha256": digest.hexdigest(), "rows": int(len(df)), "columns": int(df.shape[1])}


def split(
    n_rows: int, *, y: np.ndarray | None, test_size: float, valid_size: float, seed: int, notify: Notify = no_notice,
    source: str = "the table",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/valid/test row positions; stratified by ``y`` (class codes) when given and possible.

    >>> tr, va, te = split(100, y=None, test_size=0.3, valid_size=0.2, seed=0)
    >>> len(tr), len(va), len(te)
    (56, 14, 30)
    """
    index = np.arange(n_rows)
    min_rows = 2 if test_size == 0 else 4
    if n_rows < min_rows:
        raise DataError(f"{source}: has {n_rows} usable row(s); training needs at least {min_rows} "
                        "(some for training, validation and testing): add rows")
    if test_size == 0 and n_rows < 3:  # one row to train on and one to validate on would only be noise
        notify(f"{source}: only {n_rows} rows, too few to hold some out for validation: training uses all of them, "
               "without early stopping")
        return index, index[:0], index[:0]

    def _cut(idx: np.ndarray, size: float, what: str) -> tuple[np.ndarray, np.ndarray]:
        n_held = math.ceil(size * len(idx))  # as _shuffle_split (and scikit-learn) count it
        if n_held >= len(idx):
            name = "test_size" if what == "test" else "valid_size"
            raise DataError(f"{source}: holding out {size:g} of {len(idx)} rows for the {what} split leaves none to "
                            f"train on: add rows or lower {option(name)}")
        strat = y[idx] if y is not None else None
        if strat is not None:
            counts = np.bincount(strat)
            if counts[counts > 0].min() < 2 or n_held < (counts > 0).sum() or len(idx) - n_held < (counts > 0).sum():
                notify(f"{source}: some classes are too rare to stratify the {what} split; it is random instead")
                strat = None
        return _shuffle_split(idx, size, seed=seed, strata=strat)

    if test_size > 0:
        rest, test = _cut(index, test_size, "test")
    else:
        rest, test = index, index[:0]
    train, valid = _cut(rest, valid_size, "validation")
    return np.sort(train), np.sort(valid), np.sort(test)


def _shuffle_split(idx: np.ndarray, size: float, *, seed: int, strata: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``idx`` → (kept, held out), ``ceil(size * len(idx))`` held out, in shuffled order.

    These are the draws of scikit-learn's ``train_test_split(idx, test_size=size, random_state=seed,
    stratify=strata)`` (tests/test_schema.py checks that they are equal), made here because importing scikit-learn
    slows every start. A seed therefore splits a table as it did when neuraltab called scikit-learn.
    With ``strata`` (class codes), each class is held out in proportion: the counts are apportioned by largest
    remainder (ties broken at random), then each class's rows are shuffled and cut.
    """
    rng = np.random.RandomState(seed)
    n_held = math.ceil(size * len(idx))
    n_kept = len(idx) - n_held
    if strata is None:
        order = rng.permutation(len(idx))
        return idx[order[n_held:]], idx[order[:n_held]]
    _, group, counts = np.unique(strata, return_inverse=True, return_counts=True)
    members = np.split(np.argsort(group, kind="stable"), np.cumsum(counts)[:-1])
    kept_per = _apportion(counts, n_kept, rng)
    held_per = _apportion(counts - kept_per, n_held, rng)
    kept, held = [], []
    for rows, count, n_k, n_h in zip(members, counts, kept_per, held_per):
        rows = rows[rng.permutation(count)]
        kept.append(rows[:n_k])
        held.append(rows[n_k:n_k + n_h])
    return idx[rng.permutation(np.concatenate(kept))], idx[rng.permutation(np.concatenate(held))]


def _apportion(counts: np.ndarray, total: int, rng: np.random.RandomState) -> np.ndarray:
    """``total`` draws shared out in proportion to ``counts``: floors first, then one more for the largest
    remainders, ties broken at random."""
    share = counts / counts.sum() * total
    out = np.floor(share)
    missing = int(total - out.sum())
    if missing > 0:
        remainder = share - out
        for value in np.unique(remainder)[::-1]:
            tied = np.flatnonzero(remainder == value)
            take = min(len(tied), missing)
            out[rng.choice(tied, size=take, replace=False)] += 1
            missing -= take
            if missing == 0:
                break
    return out.astype(int)
