"""One frozen configuration per training run, validated once at the edge.

:class:`TrainConfig` is flat on purpose: the same names are CLI options (``--batch-size``), keyword arguments of
:func:`neuraltab.fit` and scikit-learn parameters. ``None`` means "choose from the data"; every such choice is made
in one visible place, :func:`resolve`, and the resolved config is what the model file records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, closest_names

__all__ = ["TrainConfig", "resolve", "MODELS", "TASKS", "ACTIVATIONS", "OPTIMIZERS", "SCALINGS", "PRECISIONS"]

MODELS = ("default", "mlp")
TASKS = ("auto", "binary", "multiclass", "regression")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "selu")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCALINGS = ("auto", "quantile", "standard", "none")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    # --- what to learn ---------------------------------------------------------------------------------------
    task: str = "auto"  # binary | multiclass | regression; auto = inferred from the target column
    model: str = "default"  # default = TabM-style ensemble with numeric embeddings; mlp = plain Sequential MLP
    # --- plain MLP (model="mlp") --------------------------------------------------------------------------------
    layers: tuple[int, ...] = (256, 256)  # hidden widths of the plain MLP
    activation: str = "relu"  # activation between the plain MLP's layers
    # --- default model (model="default") ------------------------------------------------------------------------
    k: int | None = None  # ensemble members sharing the backbone; None = sized for the device
    d_block: int | None = None  # width of each backbone block; None = sized for the device
    n_blocks: int = 2  # backbone depth
    d_embedding: int = 16  # size of each numeric feature's piecewise-linear embedding; 0 = raw numbers
    n_bins: int = 48  # quantile bins per numeric feature for the embeddings (capped by the data)
    dropout: float | None = None  # None = 0.1 for the default model, 0 for the plain MLP; the default model's CPU
    # steps draw 8-bit uniforms, so there the rate is rounded to a multiple of 1/256 (0.1 -> 0.1016)
    # --- optimisation -------------------------------------------------------------------------------------------
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float | None = None  # None = 2e-3 (default model) or 1e-3 (plain MLP, as Keras' Adam)
    weight_decay: float | None = None  # None = 3e-4 with adamw, 0 otherwise
    grad_clip: float | None = None  # max gradient norm; None = 1.0 (default model) or off (plain MLP); 0 = off
    batch_size: int | None = None  # None = chosen from the number of training rows
    epochs: int | None = None  # maximum epochs; None = 1000 with early stopping
    early_stopping: bool = True  # stop when the validation score stops improving and restore the best weights
    patience: int = 16  # epochs without improvement before stopping
    time_limit: float | None = None  # seconds; training stops then and keeps the best model so far
    # --- data ---------------------------------------------------------------------------------------------------
    scaling: str = "auto"  # numeric scaling: quantile (default model) or standard (plain MLP)
    test_size: float = 0.3  # share of rows held out for the final test metrics (0 = no test split)
    valid_size: float = 0.2  # share of the remaining rows used for early stopping
    categorical: tuple[str, ...] = ()  # columns to treat as categorical whatever their type
    numeric: tuple[str, ...] = ()  # columns to treat as numeric whatever their type
    drop: tuple[str, ...] = ()  # columns to ignore
    max_categories: int = 1000  # most frequent categories kept per column; the rest share the unknown slot
    # --- run ----------------------------------------------------------------------------------------------------
    seed: int = 0  # one seed for split, initialisation and batch order
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU threads for torch; None = 1 for tiny steps, else all cores
    precision: str = "auto"  # auto = bf16 matmuls for the default model where the device does them natively; fp32

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build a config from plain values, rejecting unknown names with a suggestion.

        >>> TrainConfig.from_dict({"batch_size": 64}).batch_size
        64
        >>> TrainConfig.from_dict({"batchsize": 64})
        Traceback (most recent call last):
        ...
        neuraltab.errors.ConfigError: unknown option 'batchsize': did you mean 'batch_size'?
        """
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                raise ConfigError(f"unknown option {key!r}: {closest_names(key, names, what='options')}")
        cleaned = {}
        for key, value in values.items():
            value = _python_scalar(value)
            if key in _TUPLE_FIELDS and value is not None:
                value = tuple(value) if not isinstance(value, str) else tuple(v.strip() for v in value.split(",") if v.strip())
                value = tuple(_python_scalar(v) for v in value)
                if key == "layers":
                    value = tuple(_as_int(v, key) for v in value)
            cleaned[key] = value
        return cls(**cleaned)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v, tuple) else v) for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


_TUPLE_FIELDS = {"layers", "categorical", "numeric", "drop"}


def _python_scalar(value: Any) -> Any:
    """numpy scalars (as a scikit-learn grid built with np.arange or np.logspace gives) as the Python ones."""
    return value.item() if isinstance(value, np.generic) else value


def _as_int(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"option {name!r} must be a list of positive integers, e.g. 64,64, got {value!r}") from None
    return value

# name -> (check, what must hold). One table, one message format for every option.
_CHOICES = {"task": TASKS, "model": MODELS, "activation": ACTIVATIONS, "optimizer": OPTIMIZERS, "scaling": SCALINGS,
            "precision": PRECISIONS}
_RULES: dict[str, tuple[Any, str]] = {
    "k": (lambda v: v is None or (isinstance(v, int) and 1 <= v <= 256), "an integer from 1 to 256"),
    "d_block": (lambda v: v is None or (isinstance(v, int) and 1 <= v <= 8192), "an integer from 1 to 8192"),
    "n_blocks": (lambda v: isinstance(v, int) and 1 <= v <= 16, "an integer from 1 to 16"),
    "d_embedding": (lambda v: isinstance(v, int) and 0 <= v <= 256, "an integer from 0 to 256"),
    "n_bins": (lambda v: isinstance(v, int) and 2 <= v <= 1024, "an integer from 2 to 1024"),
    "dropout": (lambda v: v is None or (_is_num(v) and 0 <= v < 1), "a number in [0, 1)"),
    "lr": (lambda v: v is None or (_is_num(v) and 0 < v <= 10), "a number in (0, 10]"),
    "weight_decay": (lambda v: v is None or (_is_num(v) and 0 <= v <= 10), "a number in [0, 10]"),
    "grad_clip": (lambda v: v is None or (_is_num(v) and v >= 0), "a number >= 0 (0 = no clipping)"),
    "batch_size": (lambda v: v is None or (isinstance(v, int) and v >= 1), "a positive integer"),
    "epochs": (lambda v: v is None or (isinstance(v, int) and v >= 1), "a positive integer"),
    "patience": (lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    "time_limit": (lambda v: v is None or (_is_num(v) and v > 0), "a positive number of seconds"),
    "test_size": (lambda v: _is_num(v) and 0 <= v < 0.9, "a number in [0, 0.9)"),
    "valid_size": (lambda v: _is_num(v) and 0 < v < 0.9, "a number in (0, 0.9)"),
    "max_categories": (lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    "seed": (lambda v: isinstance(v, int) and 0 <= v < 2**32, "an integer in [0, 2**32)"),
    "threads": (lambda v: v is None or (isinstance(v, int) and v >= 1), "a positive integer"),
    "layers": (lambda v: isinstance(v, tuple) and len(v) >= 1 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v),
               "a non-empty list of positive integers, e.g. 64,64"),
}


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _validate(cfg: TrainConfig) -> None:
    for name, choices in _CHOICES.items():
        value = getattr(cfg, name)
        if value not in choices:
            hint = closest_names(str(value), list(choices)).replace("available columns", "choose one of")
            raise ConfigError(f"option {name!r} must be one of {', '.join(choices)}, got {value!r}: {hint}")
    for name, (check, rule) in _RULES.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not check(value):
            raise ConfigError(f"option {name!r} must be {rule}, got {value!r}")
    if not isinstance(cfg.device, str) or not (cfg.device in ("auto", "cpu", "mps") or cfg.device.startswith("cuda")):
        raise ConfigError(f"option 'device' must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    if cfg.test_size + cfg.valid_size * (1 - cfg.test_size) >= 0.95:
        raise ConfigError(f"test_size={cfg.test_size} and valid_size={cfg.valid_size} leave under 5% of rows to train on")
    overlap = set(cfg.categorical) & set(cfg.numeric)
    if overlap:
        raise ConfigError(f"column {sorted(overlap)[0]!r} is listed as both categorical and numeric: keep one")


def auto_batch_size(n_train: int) -> int:
    """Batch size from the number of training rows (the TabM recipe's schedule).

    >>> [auto_batch_size(n) for n in (1000, 4000, 10000, 50000, 200000)]
    [32, 64, 256, 512, 1024]
    """
    for limit, size in ((2_800, 32), (4_500, 64), (6_400, 128), (32_000, 256), (108_000, 512)):
        if n_train < limit:
            return size
    return 1024


def resolve(cfg: TrainConfig, *, n_train: int, device_type: str, native_bf16: bool = False) -> TrainConfig:
    """Fill every ``None`` with the value chosen for this data and device. The one place defaults depend on data.

    ``native_bf16``: the device multiplies bfloat16 matrices in hardware (a CPU with AVX512-BF16 or AMX, a GPU
    from Ampere on); elsewhere bf16 is emulated and slower than float32.
    """
    is_default = cfg.model == "default"
    changes: dict[str, Any] = {}
    if cfg.precision == "auto":
        # bf16 autocast halves the matmul time of the default model (2-core AVX512-BF16 CPU: 190 -> 400 GFLOP/s);
        # weights, optimizer and loss stay float32. The plain MLP keeps float32: it reproduces the classic recipe.
        changes["precision"] = "bf16" if is_default and native_bf16 else "fp32"
    if cfg.scaling == "auto":
        changes["scaling"] = "quantile" if is_default else "standard"
    if cfg.dropout is None:
        changes["dropout"] = 0.1 if is_default else 0.0
    if cfg.lr is None:
        changes["lr"] = 2e-3 if is_default else 1e-3
    if cfg.weight_decay is None:
        changes["weight_decay"] = 3e-4 if cfg.optimizer == "adamw" else 0.0
    if cfg.grad_clip is None:
        changes["grad_clip"] = 1.0 if is_default else 0.0
    if cfg.batch_size is None:
        changes["batch_size"] = auto_batch_size(n_train)
    if cfg.epochs is None:
        changes["epochs"] = 1000
    if is_default:
        on_gpu = device_type == "cuda"
        # On a CPU the ensemble is the cost: k members multiply every matmul. The paper's k=32, d_block=512 is
        # affordable on a GPU; on a 2-core CPU it is ~150 ms a step. k=8, d_block=128 is ~10 ms a step and, on
        # hr.csv, as accurate within seed noise (mean test accuracy 0.984 vs 0.983 for d_block=256, seeds 0-2).
        if cfg.k is None:
            changes["k"] = 32 if on_gpu else 8
        if cfg.d_block is None:
            changes["d_block"] = 512 if on_gpu else 128
    return cfg.replace(**changes) if changes else cfg
