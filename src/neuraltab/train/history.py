"""What a training run records: one dict per epoch, the best epoch, why it stopped and which step trained it.

Its own module because both the loop, which fills it, and the callbacks, which read it at the end, need it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    epochs: list[dict[str, Any]] = field(default_factory=list)  # one dict per epoch, as given to on_epoch_end
    best_epoch: int = 0
    best_score: float | None = None
    stop_reason: str = ""  # early_stopping | max_epochs | time_limit | interrupted | diverged | a callback's reason
    seconds: float = 0.0
    path: str = ""  # the training step that ran: tabm-step | mlp-step (hand-derived, CPU) | autograd
    path_reason: str | None = None  # why autograd trained the run, when it did

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
