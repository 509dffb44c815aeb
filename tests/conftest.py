"""Shared fixtures: small synthetic tables with learnable signal, and the path to the shared benchmark data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HR_CSV = SHARED_DATA / "hr.csv"

# Small, fast settings for tests that train: seconds, not minutes.
FAST = {"k": 2, "d_block": 32, "n_blocks": 1, "epochs": 8, "n_bins": 8, "d_embedding": 4, "threads": 1}


def make_table(n: int = 300, *, task: str = "binary", seed: int = 0) -> pd.DataFrame:
    """Numeric + categorical + missing values, with a target that depends on them."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 10, size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    signal = x1 + (x2 > 5) + (color == "red") * 1.5
    df = pd.DataFrame({"x1": x1, "x2": x2, "color": color, "size": rng.choice(["S", "M", "L"], size=n)})
    df.loc[rng.choice(n, size=n // 20, replace=False), "x2"] = np.nan
    if task == "binary":
        df["label"] = np.where(signal > np.median(signal), "yes", "no")
    elif task == "multiclass":
        df["label"] = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3])).astype(np.int64)
    else:
        df["label"] = 3.0 * signal + rng.normal(scale=0.1, size=n) + 100.0
    return df


@pytest.fixture
def hr_csv() -> Path:
    if not HR_CSV.exists():
        pytest.skip(f"the shared benchmark data ({HR_CSV}) is not on this machine; it exists only in development and CI")
    return HR_CSV
