"""Quantile → standard normal scaling, as scikit-learn's ``QuantileTransformer(output_distribution="normal")``.

Fitting is a percentile call in :class:`~neuraltab.data.preprocess.Preprocessor`; this module applies the stored
quantiles to new values quickly (a bucketed search per value instead of two interpolations, in cache-sized chunks
over torch's number of threads) and bit for bit as the straightforward two-``np.interp`` version. The inverse normal
CDF is torch's (Cephes' algorithm, as SciPy's, equal to a few ulps): torch is loaded wherever data is transformed,
while importing scipy.special would slow every start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["quantile_normal_transform", "quantile_normal_rows"]

_BOUNDS = 1e-7  # as scikit-learn's QuantileTransformer: keeps the normal output finite (about ±5.2)


def quantile_normal_transform(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map values to a standard normal through the training quantiles, as scikit-learn's
    ``QuantileTransformer(output_distribution='normal')`` does (ties get the mean of their rank range).

    x: float64[n, d]; quantiles: float64[n_quantiles, d], non-decreasing per column. Returns float64[n, d].

    >>> q = np.linspace(0.0, 1.0, 11)[:, None]
    >>> quantile_normal_transform(np.array([[0.5]]), q).round(6).tolist()
    [[0.0]]
    """
    x = np.asarray(x)
    if x.dtype != np.float64:  # float32 values keep their float32 bounds checks (the reference, column by column)
        out = np.empty_like(x, dtype=np.float64)
        for j in range(x.shape[1]):
            out[:, j] = _normal_scores(_uniform_reference(x[:, j], quantiles[:, j]))
        return out
    rows = np.array(x.T, order="C")  # a copy, overwritten
    return quantile_normal_rows(rows, quantiles, out=rows).T


def quantile_normal_rows(rows: np.ndarray, quantiles: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`quantile_normal_transform` of ``rows``, float64[d, n] (a column per row), as float64[d, n] (``out``,
    which may be ``rows``, else new): in chunks
    that stay in the CPU cache, shared out over torch's number of threads (numpy and torch release the GIL); each
    chunk is computed alone, so the result does not depend on the threads."""
    d, n = rows.shape
    if out is None:
        out = np.empty((d, n), dtype=np.float64)
    # a plan takes about what the reference takes for a few thousand values: made once per quantiles array and
    # kept (a served model transforms a few rows per call), so small batches use it too
    plans = _plans(quantiles)

    def work(j: int, start: int) -> None:
        part = rows[j, start: start + _CHUNK]
        plan = plans[j]
        out[j, start: start + _CHUNK] = (plan.scores(part) if plan is not None else
                                         _normal_scores(_uniform_reference(part, quantiles[:, j])))

    tasks = [(j, start) for j in range(d) for start in range(0, n, _CHUNK)]
    n_threads = min(torch.get_num_threads(), len(tasks)) if d * n >= 4 * _CHUNK else 1
    if n_threads <= 1:
        for task in tasks:
            work(*task)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(lambda task: work(*task), tasks))
    return out


_CHUNK = 1 << 14  # values per piece of work: the temporaries of a chunk fit in the CPU's cache
# id(quantiles) -> (that array, a copy of its values, its columns' plans); holding the array keeps its id unique,
# the copy catches a change in place
_PLAN_CACHE: dict[int, tuple[np.ndarray, np.ndarray, list]] = {}
_PLAN_CACHE_SIZE = 16


def _plans(quantiles: np.ndarray) -> list["_InterpolationPlan | None"]:
    """:meth:`_InterpolationPlan.make` of each column of ``quantiles``, from the cache when these are its values."""
    cached = _PLAN_CACHE.get(id(quantiles))
    if cached is not None and cached[0] is quantiles and np.array_equal(cached[1], quantiles):
        return cached[2]
    plans = [_InterpolationPlan.make(quantiles[:, j]) for j in range(quantiles.shape[1])]
    if len(_PLAN_CACHE) >= _PLAN_CACHE_SIZE:
        _PLAN_CACHE.pop(next(iter(_PLAN_CACHE)))  # the oldest
    _PLAN_CACHE[id(quantiles)] = (quantiles, np.array(quantiles), plans)
    return plans


def _ndtri(u: np.ndarray) -> np.ndarray:
    """The standard normal's inverse CDF, float64."""
    return torch.special.ndtri(torch.from_numpy(np.ascontiguousarray(u, dtype=np.float64))).numpy()


_CLIP = _BOUNDS - np.spacing(1)
_SCORE_LOW, _SCORE_HIGH = _ndtri(np.array([_CLIP, 1 - _CLIP]))


def _normal_scores(u: np.ndarray) -> np.ndarray:
    return np.clip(_ndtri(np.clip(u, _CLIP, 1 - _CLIP)), _SCORE_LOW, _SCORE_HIGH)


def _uniform_reference(col: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The quantile transform's uniform value of each of ``col``'s values: the definition, which
    :class:`_InterpolationPlan` computes faster (and falls back on)."""
    refs = np.linspace(0.0, 1.0, q.shape[0])
    # interpolating forwards and backwards and averaging gives tied values the middle of their range
    with np.errstate(invalid="ignore", over="ignore"):
        u = 0.5 * (np.interp(col, q, refs) - np.interp(-col, -q[::-1], -refs[::-1]))
    bad = ~np.isfinite(u) & np.isfinite(col)
    if bad.any():  # quantiles a few subnormals apart (1e-310) overflow interp's slope: use the rank range instead
        lo, hi = np.searchsorted(q, col[bad], side="left"), np.searchsorted(q, col[bad], side="right")
        u[bad] = np.clip((lo + hi - 1) / 2 / max(len(q) - 1, 1), 0.0, 1.0)
    u[col + _BOUNDS > q[-1]] = 1.0
    u[col - _BOUNDS < q[0]] = 0.0  # second, as scikit-learn: a column constant in training maps to the low end
    return u


@dataclass
class _InterpolationPlan:
    """Tables that give :func:`quantile_normal_transform`'s values bit for bit, with one search instead of two
    ``np.interp`` calls (each a branchy binary search per value).

    With the distinct quantiles ``uq`` and ``g`` = the number of them <= x, x lies on ``uq[g - 1]`` (a tie group, whose
    score is a constant per group) or strictly between ``uq[g - 1]`` and ``uq[g]``, where the forward interpolation is
    ``s * (x - a) + ra`` and the backward one, negated, ``s * (x - c) + rc`` with the same slope (negation is exact in
    floating point, so these are the very operations ``np.interp`` does). ``g`` is found through a grid of buckets
    over the quantiles' range, each knowing the few ``g`` its values can have; values in crowded buckets are searched.
    """

    q: np.ndarray  # float64[m]: the quantiles
    uq: np.ndarray  # float64[U + n_steps]: the distinct quantiles, then NaN (never <= x)
    previous: np.ndarray  # float64[U + 1]: uq[g - 1], NaN for g = 0
    tables: np.ndarray  # float64[5, U + 1]: a, c, s, ra, rc
    on: np.ndarray  # float64[U + 1]: the score of uq[g - 1]
    scale: float  # the grid: bucket k holds x with x * scale + offset in [k, k + 1), clipped to 0..n_buckets + 1
    offset: float
    n_buckets: int
    first: np.ndarray  # int64[n_buckets + 2]: the least g of a bucket's values, -1 for a crowded bucket
    n_steps: int

    @classmethod
    def make(cls, q: np.ndarray) -> "_InterpolationPlan | None":
        """The plan for quantiles ``q``, or None where only the reference applies (unsorted or non-finite)."""
        q = np.ascontiguousarray(q, dtype=np.float64)
        m = len(q)
        if m < 2 or not np.isfinite(q).all() or not (q[1:] >= q[:-1]).all():
            return None
        refs = np.linspace(0.0, 1.0, m)
        starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
        uq = q[starts]
        n_unique = len(uq)
        tables = np.zeros((5, n_unique + 1))
        tables[3, 0] = tables[4, 0] = refs[0]  # below the quantiles: forward refs[0], backward -refs[0]
        tables[3, -1] = tables[4, -1] = refs[-1]  # above: refs[-1] and -refs[-1]
        hi = starts[1:]  # between uq[g - 1] and uq[g], g = 1..U-1: q[hi - 1] < x < q[hi]
        with np.errstate(over="ignore", divide="ignore"):
            slope = (refs[hi] - refs[hi - 1]) / (q[hi] - q[hi - 1])
        tables[:, 1:-1] = q[hi - 1], q[hi], slope, refs[hi - 1], refs[hi]
        on = np.r_[0.0, _normal_scores(_uniform_reference(uq, q))]
        plan = cls(q=q, uq=uq, previous=np.r_[np.nan, uq], tables=tables, on=on, scale=0.0, offset=0.0,
                   n_buckets=0, first=np.zeros(2, dtype=np.int64), n_steps=0)
        with np.errstate(over="ignore"):
            width = float(uq[-1] - uq[0])
        n_buckets = int(min(max(32 * n_unique, 256), 1 << 16))
        # buckets far wider than the rounding of x * scale + offset, whose numbers are all normal (not subnormal)
        if (n_unique > 4 and np.isfinite(width) and width > 1e-9 * max(abs(uq[0]), abs(uq[-1]))
                and width / n_buckets > 1e-300 and np.isfinite(n_buckets / width)):
            k = np.arange(n_buckets + 2, dtype=np.float64)
            step = width / n_buckets
            # the x a bucket can hold, widened by a bucket either way for the rounding
            with np.errstate(over="ignore"):  # ±inf past float64's limit: wider still
                lowest, highest = uq[0] + (k - 2) * step, uq[0] + (k + 1) * step
                edges = uq[0] + k[: n_buckets + 1] * step
            lowest[:2], highest[-2:] = -np.inf, np.inf
            first = np.searchsorted(uq, lowest, side="left")
            span = np.searchsorted(uq, highest, side="right") - first
            # the share of values in each bucket, by the quantiles; a step costs each value about what a search
            # costs 3% of the values: take the number of steps that costs least
            share = np.r_[0.0, np.diff(np.interp(edges, q, refs)), 0.0]
            plan.n_steps = min((1, 2, 3), key=lambda s: s + 30 * share[span > s].sum())
            plan.first = np.where(span > plan.n_steps, -1, first)
            plan.scale = n_buckets / width
            plan.offset, plan.n_buckets = 1.0 - uq[0] * plan.scale, n_buckets
        plan.uq = np.r_[uq, np.full(plan.n_steps, np.nan)]
        return plan

    def count_at_most(self, x: np.ndarray) -> np.ndarray:
        """int64[n]: how many distinct quantiles are <= each value (0 for NaN)."""
        n_unique = len(self.previous) - 1
        if self.n_buckets == 0:
            if n_unique > 4:  # a range the grid cannot split (near float64's limits): search
                return np.searchsorted(self.uq[:n_unique], x, side="right")
            g = np.zeros(len(x), dtype=np.int64)  # a few distinct quantiles: count them
            for v in self.uq[:n_unique]:
                g += x >= v
            return g
        with np.errstate(over="ignore", invalid="ignore"):
            t = np.multiply(x, self.scale)
            t += self.offset
        np.fmax(t, 0.0, out=t)  # also NaN -> 0
        np.fmin(t, self.n_buckets + 1, out=t)
        g = self.first[t.astype(np.int64)]
        for _ in range(self.n_steps):
            g += self.uq[g] <= x
        crowded = g < 0
        if crowded.any():
            g[crowded] = np.searchsorted(self.uq[:n_unique], x[crowded], side="right")
        return g

    def scores(self, x: np.ndarray) -> np.ndarray:
        """:func:`quantile_normal_transform` of ``x``, float64[n], bit for bit."""
        g = self.count_at_most(x)
        hit = self.previous[g] == x
        if not hit.any():
            return self._between(x, g)
        out = self.on[g]
        if not hit.all():
            between = np.flatnonzero(~hit)
            out[between] = self._between(x[between], g[between])
        return out

    def _between(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Scores of values on no quantile."""
        a, c, s, ra, rc = (row[g] for row in self.tables)
        with np.errstate(invalid="ignore", over="ignore"):
            u = 0.5 * ((s * (x - a) + ra) + (s * (x - c) + rc))
        odd = ~np.isfinite(u)  # NaN, infinities, overflowing slopes: the reference for these values
        if odd.any():
            u[odd] = _uniform_reference(x[odd], self.q)
        u[x + _BOUNDS > self.q[-1]] = 1.0
        u[x - _BOUNDS < self.q[0]] = 0.0
        return _normal_scores(u)
