"""The 2017 script's data preparation, shared by the baseline ports: one-hot encode, 70/30 split, no scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


def load(path: str, target: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    df = pd.read_csv(path)
    y = df.pop(target)
    y = pd.factorize(y, sort=True)[0].astype(np.int64)
    x = pd.get_dummies(df).to_numpy(dtype=np.float32)
    return tuple(train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y))  # type: ignore[return-value]
