"""Training: the loop, its callbacks, checkpoints, and the steps that train (autograd, or a hand-derived CPU step)."""

from .callbacks import Callback, EarlyStopping, Run, TimeLimit
from .loop import History, train

__all__ = ["Callback", "EarlyStopping", "History", "Run", "TimeLimit", "train"]
