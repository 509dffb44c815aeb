"""Shared fixtures: small synthetic tables with learnable signal, the path to the shared benchmark data, and a file
that fills the disk."""

from __future__ import annotations

import errno
import os
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


class FillingFile:
    """What ``os.fdopen`` gives for a file on a disk that fills up during the write: part of the bytes land, then
    ENOSPC, as on a real full disk. ``seen`` records the files in ``folder`` at that moment (the partial temp file)."""

    def __init__(self, fh, folder: Path | None = None, seen: list[list[str]] | None = None) -> None:
        self.fh, self.folder, self.seen = fh, folder, seen

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()

    def write(self, data) -> int:
        self.fh.write(bytes(data)[: len(data) // 2])
        self.fh.flush()
        if self.seen is not None:
            self.seen.append(sorted(p.name for p in self.folder.iterdir()))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        self.fh.flush()

    def fileno(self) -> int:
        return self.fh.fileno()


class Notices(list):
    """Collects notices; ``notices.text`` is everything said, for substring checks."""

    def __call__(self, message: str) -> None:
        from neuraltab.errors import Message

        assert "\n" not in message
        self.append(Message(message))  # as a Python caller sees it

    @property
    def text(self) -> str:
        return " | ".join(self)


def write_file(tmp_path, name: str, content: str | bytes, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def assert_matches_torch_optim(ref, ref_opt, fast, fast_state: dict, *, steps: int, param_rtol: float,
                               exp_avg_atol: float) -> None:
    """A hand-derived step's model and optimizer state (``fast``, ``fast_state`` in torch.optim's format) against
    the autograd path's (``ref``, ``ref_opt``) after ``steps`` steps: hyperparameters equal, weights and both Adam
    moments close, step counts exact."""
    import torch

    assert fast_state["param_groups"] == ref_opt.state_dict()["param_groups"]
    for i, ((name, p_ref), p_fast) in enumerate(zip(ref.named_parameters(), fast.parameters())):
        torch.testing.assert_close(p_fast, p_ref, rtol=param_rtol, atol=1e-5, msg=name)
        s_ref, s_fast = ref_opt.state[p_ref], fast_state["state"][i]
        assert float(s_fast["step"]) == float(s_ref["step"]) == steps
        torch.testing.assert_close(s_fast["exp_avg"], s_ref["exp_avg"], rtol=1e-4, atol=exp_avg_atol, msg=name)
        torch.testing.assert_close(s_fast["exp_avg_sq"], s_ref["exp_avg_sq"], rtol=1e-4, atol=1e-9, msg=name)
