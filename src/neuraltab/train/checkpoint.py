"""Training checkpoints: the complete state of a run between two epochs, so that ``--resume`` continues it exactly.

A checkpoint is a safetensors file written with :func:`neuraltab.artifacts.save_bundle` (atomic, checksummed, no
pickle): current, best and averaged weights, the optimizer's moments, both random generators (batch order and
dropout), the per-epoch history and the early-stopping counters. Resuming from it gives the same final model, bit
for bit, as a run that was never interrupted (same machine, CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import load_bundle, save_bundle
from ..errors import ArtifactError, option

__all__ = ["Snapshot", "Checkpoint"]


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


@dataclass
class Snapshot:
    """Everything that decides how training continues after ``epochs_done`` complete epochs."""

    epochs_done: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng_dropout: torch.Tensor
    rng_shuffle: torch.Tensor
    best: dict[str, torch.Tensor] | None
    counters: dict[str, Any] = field(default_factory=dict)  # best_key, since_best, history epochs/best
    average: dict[str, torch.Tensor] | None = None  # the weight average (average_weights), by parameter name

    @classmethod
    def take(cls, *, epochs_done: int, model: torch.nn.Module, optimizer: Any,
             shuffle: torch.Generator, best: dict[str, torch.Tensor] | None, counters: dict[str, Any],
             average: dict[str, torch.Tensor] | None = None) -> "Snapshot":
        opt = optimizer.state_dict()
        return cls(
            epochs_done=epochs_done,
            model=_clone(model.state_dict()),
            optimizer={"state": {i: _clone(s) for i, s in opt["state"].items()}, "param_groups": opt["param_groups"]},
            rng_dropout=_dropout_generator(model).get_state(),
            rng_shuffle=shuffle.get_state(),
            best=best,  # already a private copy, replaced (never mutated) on improvement
            counters={**counters, "epochs": list(counters.get("epochs", []))},
            average=average,  # already a private copy (WeightAverage.state)
        )

    def restore(self, *, model: torch.nn.Module, optimizer: Any, shuffle: torch.Generator) -> None:
        model.load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)
        _dropout_generator(model).set_state(self.rng_dropout)
        shuffle.set_state(self.rng_shuffle)


def _dropout_generator(model: torch.nn.Module) -> torch.Generator:
    """What the network's dropout draws from: its own generator, or torch's global one for a network built without."""
    return getattr(model, "dropout_generator", None) or torch.default_generator


class Checkpoint:
    """Where and how often a run saves its :class:`Snapshot`, and the identity of the run it belongs to.

    ``identity`` (data fingerprint + resolved config) must match on resume, so a checkpoint is never applied to
    another table or other options.
    """

    def __init__(self, path: str | Path, *, every: int = 1, identity: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.every = max(1, int(every))
        self.identity = identity or {}

    def save(self, snap: Snapshot) -> None:
        tensors = {f"model.{k}": v for k, v in snap.model.items()}
        if snap.best is not None:
            tensors.update({f"best.{k}": v for k, v in snap.best.items()})
        if snap.average is not None:
            tensors.update({f"average.{k}": v for k, v in snap.average.items()})
        scalars: dict[str, dict[str, Any]] = {}
        for i, state in snap.optimizer["state"].items():
            for name, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"opt.{i}.{name}"] = value
                else:
                    scalars.setdefault(str(i), {})[name] = value
        tensors["rng.dropout"] = snap.rng_dropout
        tensors["rng.shuffle"] = snap.rng_shuffle
        meta = {"kind": "checkpoint", "identity": self.identity, "epochs_done": snap.epochs_done,
                "param_groups": snap.optimizer["param_groups"], "optimizer_scalars": scalars,
                "has_best": snap.best is not None, "has_average": snap.average is not None,
                "counters": snap.counters}
        kept = self.path.exists()
        try:
            save_bundle(self.path, tensors, meta, force=True)
        except ArtifactError as exc:  # a full disk, typically: the write needs room for a second copy
            if not kept:
                raise
            raise ArtifactError(f"{exc.template}; the previous checkpoint is kept as it was, so the same command with "
                                f"{option('resume', True)} "
                                "continues from it once there is room") from None

    def load(self) -> Snapshot:
        tensors, meta = load_bundle(self.path)
        if meta.get("kind") != "checkpoint":
            raise ArtifactError(f"{self.path}: is a model file, not a training checkpoint")
        if meta.get("identity") != self.identity:
            raise ArtifactError(f"{self.path}: this checkpoint belongs to a run on other data or with other options; "
                                f"rerun with the same data and options, or delete it and train without {option('resume', True)}")
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                state.setdefault(int(i), {})[name] = value
        for i, values in meta["optimizer_scalars"].items():
            state.setdefault(int(i), {}).update(values)

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        return Snapshot(
            epochs_done=int(meta["epochs_done"]),
            model=part("model."),
            optimizer={"state": state, "param_groups": meta["param_groups"]},
            rng_dropout=tensors["rng.dropout"],
            rng_shuffle=tensors["rng.shuffle"],
            best=part("best.") if meta["has_best"] else None,
            counters=meta["counters"],
            average=part("average.") if meta.get("has_average") else None,
        )
