"""Training: the loop, its callbacks, checkpoints, and the steps that train (autograd, or a hand-derived CPU step)."""

from .loop import Callback, History, train

__all__ = ["Callback", "History", "train"]
