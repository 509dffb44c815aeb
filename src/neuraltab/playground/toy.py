"""The TensorFlow Playground's six data sets and its seven input features, generated as its ``dataset.ts`` does
(uniform and normal draws from one seeded generator; the same seed gives the same points).

>>> points = generate("circle", noise=0.0, seed=1)
>>> points.shape, sorted(set(points[:, 2].tolist()))
((500, 3), [-1.0, 1.0])
>>> generate("plane", noise=0.0, seed=1).shape
(1200, 3)
>>> features(points[:2, :2], ("x1", "x1*x2")).shape
(2, 2)
"""

from __future__ import annotations

import numpy as np

__all__ = ["DATASETS", "CLASSIFICATION", "REGRESSION", "FEATURES", "EXTENT", "generate", "split", "features"]

CLASSIFICATION = ("circle", "xor", "gauss", "spiral")
REGRESSION = ("plane", "multi-gaussian")
DATASETS = CLASSIFICATION + REGRESSION
EXTENT = 6.0  # the maps cover [-6, 6]² as the Playground's do
# the Playground's input features, by the names its URL uses (x1, x2, x1², x2², x1·x2, sin x1, sin x2)
FEATURES = {
    "x1": lambda x, y: x, "x2": lambda x, y: y, "x1^2": lambda x, y: x * x, "x2^2": lambda x, y: y * y,
    "x1*x2": lambda x, y: x * y, "sin(x1)": lambda x, y: np.sin(x), "sin(x2)": lambda x, y: np.sin(y),
}
_REGRESSION_GAUSSIANS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))


def generate(name: str, *, noise: float, seed: int) -> np.ndarray:
    """float64[n, 3]: x, y and the label (±1 for classification, about [-1, 1] for regression); ``noise`` in
    [0, 0.5] is the Playground's slider divided by 100."""
    rng = np.random.default_rng(seed)
    u = rng.uniform
    if name == "circle":  # 250 inside r < 2.5, 250 in 3.5 < r < 5; noise moves the point its label is read from
        inner, outer = u(0, 2.5, 250), u(3.5, 5, 250)
        r = np.concatenate([inner, outer])
        angle = u(0, 2 * np.pi, 500)
        x, y = r * np.sin(angle), r * np.cos(angle)
        nx, ny = u(-5, 5, 500) * noise, u(-5, 5, 500) * noise
        label = np.where(np.hypot(x + nx, y + ny) < 2.5, 1.0, -1.0)
    elif name == "xor":
        x, y = u(-5, 5, 500), u(-5, 5, 500)
        x, y = x + np.where(x > 0, 0.3, -0.3), y + np.where(y > 0, 0.3, -0.3)
        nx, ny = u(-5, 5, 500) * noise, u(-5, 5, 500) * noise
        label = np.where((x + nx) * (y + ny) >= 0, 1.0, -1.0)
    elif name == "gauss":
        sd = np.sqrt(0.5 + 7 * noise)  # variance from 0.5 (no noise) to 4 (50 %)
        x = np.concatenate([rng.normal(2, sd, 250), rng.normal(-2, sd, 250)])
        y = np.concatenate([rng.normal(2, sd, 250), rng.normal(-2, sd, 250)])
        label = np.repeat([1.0, -1.0], 250)
    elif name == "spiral":  # two arms of 250 points, 1.75 turns out to r = 5, jittered by the noise
        i = np.arange(250) / 250
        r, t = np.tile(5 * i, 2), np.concatenate([1.75 * 2 * np.pi * i, 1.75 * 2 * np.pi * i + np.pi])
        x = r * np.sin(t) + u(-1, 1, 500) * noise
        y = r * np.cos(t) + u(-1, 1, 500) * noise
        label = np.repeat([1.0, -1.0], 250)
    elif name in REGRESSION:
        x, y = u(-6, 6, 1200), u(-6, 6, 1200)
        nx, ny = x + u(-6, 6, 1200) * noise, y + u(-6, 6, 1200) * noise
        if name == "plane":
            label = (nx + ny) / 10
        else:  # the bump whose value is largest in size wins
            values = np.stack([s * np.clip(1 - np.hypot(nx - cx, ny - cy) / 2, 0, 1)
                               for cx, cy, s in _REGRESSION_GAUSSIANS])
            label = values[np.abs(values).argmax(0), np.arange(1200)]
    else:
        raise ValueError(f"unknown data set {name!r}")
    return np.stack([x, y, label], axis=1)


def split(points: np.ndarray, *, train_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) indices: the points shuffled, the first ``train_share`` of them to train on."""
    order = np.random.default_rng(seed + 1).permutation(len(points))
    cut = int(round(len(points) * train_share))
    return np.sort(order[:cut]), np.sort(order[cut:])


def features(xy: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """float32[n, len(names)]: the chosen input features of points ``xy`` float[n, 2]."""
    return np.stack([FEATURES[name](xy[:, 0], xy[:, 1]) for name in names], axis=1).astype(np.float32)
