"""Temperature scaling: one number, fitted on the validation rows after training, that makes the probabilities'
log-loss lower without changing which class any row is given.

The members' averaged probabilities ``p`` become ``softmax(log(p) / T)`` (:func:`neuraltab.networks.temper`): a
monotone map of every row's probabilities, so each row's most probable class is unchanged. ``1 / T`` is the
minimiser of the validation log-loss, which is convex in it, found by bisection on its derivative.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import TrainConfig
from ..networks.predict import predict_output

__all__ = ["calibrated_log_loss", "fit_temperature", "is_tempered", "temperature_for", "LOWEST", "HIGHEST"]

# the temperatures allowed: a few hundred validation rows all classified right would otherwise ask for T -> 0,
# probabilities of 0 and 1 that a wrong test row pays for without bound
LOWEST, HIGHEST = 0.2, 5.0
_FLOOR = 1e-12  # the smallest probability whose log is taken, as in the loop's validation loss


def _arrays(proba: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 probabilities and int64 class codes, in numpy whatever they came as."""
    p = np.asarray(proba.to("cpu", torch.float64) if isinstance(proba, torch.Tensor) else proba, dtype=np.float64)
    return p, np.asarray(y.to("cpu") if isinstance(y, torch.Tensor) else y, dtype=np.int64)


def fit_temperature(proba: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """The temperature in [LOWEST, HIGHEST] with the lowest log-loss of ``softmax(log(proba) / T)`` on labels ``y``
    (class codes); 1.0 with no rows. Float64 arithmetic in numpy: the same inputs give the same temperature."""
    p, codes = _arrays(proba, y)
    return 1.0 if len(codes) == 0 else _temperature(np.log(np.maximum(p, _FLOOR)), codes)


def _temperature(s: np.ndarray, codes: np.ndarray) -> float:
    """:func:`fit_temperature` on the log-probabilities ``s`` of at least one row."""
    chosen = s[np.arange(len(codes)), codes]

    def slope(b: float) -> float:  # d/db of mean(logsumexp(b s) - b s_y): the expected minus the true class's log p
        z = b * s
        q = np.exp(z - z.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        return float(((q * s).sum(axis=1) - chosen).mean())

    lo, hi = math.log(1 / HIGHEST), math.log(1 / LOWEST)  # over log(1/T)
    if slope(math.exp(lo)) >= 0:
        return HIGHEST
    if slope(math.exp(hi)) <= 0:
        return LOWEST
    for _ in range(60):
        mid = (lo + hi) / 2
        if slope(math.exp(mid)) > 0:
            hi = mid
        else:
            lo = mid
    return float(1 / math.exp((lo + hi) / 2))


def is_tempered(task: str, cfg: TrainConfig) -> bool:
    """Whether this run's probabilities are temperature-scaled: the default model's classification only (the plain
    MLP reproduces the classic recipe, which predicts as Keras does)."""
    return task != "regression" and cfg.model == "default"


def temperature_for(network: torch.nn.Module, valid: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, *,
                    task: str, cfg: TrainConfig) -> float | None:
    """The temperature a freshly trained default model's probabilities get, fitted on its validation rows; None for
    regression, for the plain MLP (the classic recipe predicts as Keras does) and without validation rows."""
    if not is_tempered(task, cfg) or valid is None or len(valid[2]) == 0:
        return None
    proba = predict_output(network, valid[0], valid[1], task=task, precision=cfg.precision)
    return fit_temperature(proba, valid[2])


def calibrated_log_loss(proba: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """The log-loss of ``proba`` on labels ``y`` after temperature scaling with :func:`fit_temperature`'s T."""
    p, codes = _arrays(proba, y)
    if len(codes) == 0:
        return 0.0
    s = np.log(np.maximum(p, _FLOOR))
    z = s / _temperature(s, codes)
    z -= z.max(axis=1, keepdims=True)
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_q[np.arange(len(codes)), codes].mean())
