"""Where tensors live and how they multiply: the device, bf16 support, autocast, CPU threads, Batch -> tensors.

Both training and the inference path need these, so they sit below both: a server or an exporter can place a model
on a device without importing the training loop.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, option

if TYPE_CHECKING:  # the data package is not imported at run time: a Batch is anything with these arrays
    from .data.preprocess import Batch

__all__ = ["resolve_device", "native_bf16", "autocast", "to_tensors", "threads_for", "matmul_flops_per_row",
           "flush_denormals"]


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; an explicit ``cuda`` that is not there is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{option('device', name)}: no CUDA GPU is available here; use {option('device', 'cpu')} "
                              f"or {option('device', 'auto')}")
        index = torch.device(name).index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{option('device', name)}: only {torch.cuda.device_count()} CUDA device(s) are present")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"{option('device', 'mps')}: Apple's MPS backend is not available here; use "
                          f"{option('device', 'cpu')} or {option('device', 'auto')}")
    return torch.device(name)


def to_tensors(batch: Batch, device: torch.device, *, task: str, y_mean: float = 0.0,
               y_std: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Move a Batch to ``device``; regression targets are standardised with the training mean and std."""
    x_num = torch.from_numpy(batch.x_num).to(device)
    x_cat = torch.from_numpy(batch.x_cat).to(device)
    y = None
    if batch.y is not None:
        if task == "regression":
            y = torch.from_numpy(((batch.y - y_mean) / y_std).astype(np.float32)).to(device)
        else:
            y = torch.from_numpy(np.array(batch.y, dtype=np.int64)).to(device)
    return x_num, x_cat, y


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (else bf16 is emulated, slower than float32)."""
    try:
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported(including_emulation=False)
        if device.type == "cpu":
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError, TypeError):  # older or partial builds
        pass
    return False


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"`` on CPU or CUDA (matmuls in bf16, weights and losses float32)."""
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def threads_for(model: nn.Module, *, batch_size: int, cores: int) -> int:
    """CPU threads for training: 1 when a step is too small to share out, else ``cores``.

    Below a few MFLOP a step, OpenMP's hand-offs cost more than the second core saves, and a busy neighbour process
    makes them far worse (``benchmarks/README.md`` has the timings behind the cut). Deterministic: the choice
    depends only on the model's FLOP count, never on a timing, so a seed still gives the same result.
    """
    if cores <= 1:
        return max(cores, 1)
    step_flops = 3 * matmul_flops_per_row(model) * batch_size  # backward ≈ 2× forward
    return 1 if step_flops < 4e6 else cores


def matmul_flops_per_row(model: nn.Module) -> int:
    """Forward multiply-add FLOPs of one input row through the model's linear layers, counted from their shapes.

    A TabM's ``k`` members each run the backbone and their own head. (Counted by hand: torch's FLOP counter imports
    torch._dynamo, which slows start-up.)
    """
    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    head = getattr(model, "head_weight", None)
    members = getattr(model, "k", 1)
    return 2 * (macs * members + (head.numel() if head is not None else 0))


@contextlib.contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
    """Weights that stop moving let Adam's second moments decay into subnormal floats, which x86 handles far more
    slowly (the classic recipe on raw, unscaled inputs slows several-fold). Flush them to zero."""
    flushing = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushing:
            torch.set_flush_denormal(False)
