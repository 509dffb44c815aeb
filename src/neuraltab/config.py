"""One frozen configuration per training run, validated once at the edge.

:class:`TrainConfig` is flat on purpose: the same names are CLI options (``--batch-size``), keyword arguments of
:func:`neuraltab.fit` and scikit-learn parameters. ``None`` means "choose from the data"; every such choice is made
in one visible place, :func:`resolve`, and the resolved config is what the model file records.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import ConfigError, closest_names, option

__all__ = ["SMALL_TABLE", "PRESETS", "PRESET_VALUES", "COLUMN_FIELDS", "TrainConfig", "column_names", "ignored_options", "resolve", "describe_options", "parse_bytes", "MODELS", "TASKS", "ACTIVATIONS", "OPTIMIZERS", "SCALINGS", "PRECISIONS", "LOSSES"]

MODELS = ("default", "mlp")
TASKS = ("auto", "binary", "multiclass", "regression")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "selu", "linear")
LOSSES = ("auto", "cross_entropy", "squared_error")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCALINGS = ("auto", "quantile", "standard", "none")
PRECISIONS = ("auto", "fp32", "bf16")
PRESETS = ("fast", "default", "best")
# what each preset chooses for the options left unset (None), before resolve chooses the rest: a preset never
# overrides an option the user gave; "best" trains the default network as `folds` cross-validated fold models
PRESET_VALUES: dict[str, dict[str, Any]] = {
    "fast": {"k": 4, "d_block": 64, "epochs": 40, "batch_size": 512},
    "default": {},
    "best": {},
}


def _option(default: Any, help: str, *, rule: tuple[Callable[[Any], bool], str] | None = None,
            choices: tuple[str, ...] | None = None, chosen: str | None = None) -> Any:
    """A :class:`TrainConfig` field: its default, its help (shown by ``neuraltab train --help``, the estimators and
    :func:`neuraltab.fit`), what must hold (a ``rule``: check and words, or ``choices``) and, for a default of None,
    how the value is ``chosen`` (see :func:`resolve`)."""
    return dataclasses.field(default=default, metadata={"help": help, "rule": rule, "choices": choices,
                                                        "chosen": chosen})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _int_in(lo: int, hi: int | None = None, *, optional: bool = False) -> tuple[Callable[[Any], bool], str]:
    words = f"an integer from {lo} to {hi}" if hi is not None else "a positive integer" if lo == 1 else f"an integer >= {lo}"
    return (lambda v: (optional and v is None) or (_is_int(v) and lo <= v and (hi is None or v <= hi))), words


def _names(v: Any) -> bool:
    return isinstance(v, tuple) and all(isinstance(x, str) for x in v)


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run, once: its default, its help and what must hold (``dataclasses.fields``
    metadata). ``neuraltab train``'s flags are made from these fields, and the estimators' parameters are tested
    against them."""

    # --- what to learn ---------------------------------------------------------------------------------------
    task: str = _option("auto", "What to predict: binary, multiclass or regression; auto infers it from the target.",
                        choices=TASKS)
    model: str = _option("default", "default: the TabM-style ensemble with numeric embeddings; mlp: a plain "
                         "Sequential MLP.", choices=MODELS)
    # --- plain MLP (model="mlp") --------------------------------------------------------------------------------
    layers: tuple[int, ...] = _option((256, 256), "Hidden widths of the plain MLP, e.g. 64,64 (empty: no hidden "
                                      "layer, a linear model).",
                                      rule=(lambda v: isinstance(v, tuple) and all(_is_int(x) and x >= 1 for x in v),
                                            "a list of positive integers, e.g. 64,64"))
    activation: str = _option("relu", "Activation between the plain MLP's layers.", choices=ACTIVATIONS)
    # --- default model (model="default") ------------------------------------------------------------------------
    k: int | None = _option(None, "Ensemble members of the default model, sharing its backbone.",
                            rule=_int_in(1, 256, optional=True), chosen="8 on a CPU (16 under 5,000 training rows), 32 on a GPU")
    d_block: int | None = _option(None, "Width of the default model's blocks.", rule=_int_in(1, 8192, optional=True),
                                  chosen="128 on a CPU, 512 on a GPU")
    n_blocks: int = _option(2, "Depth of the default model, in blocks.", rule=_int_in(1, 16))
    d_embedding: int = _option(16, "Size of each numeric column's piecewise-linear embedding; 0 feeds raw numbers.",
                               rule=_int_in(0, 256))
    n_bins: int = _option(48, "Quantile bins per numeric column for the embeddings (capped by the data).",
                          rule=_int_in(2, 1024))
    # the default model's CPU step draws 8-bit uniforms, so there the rate is rounded to a multiple of 1/256
    dropout: float | None = _option(None, "Dropout rate.", rule=(lambda v: v is None or (_is_num(v) and 0 <= v < 1),
                                                                 "a number in [0, 1)"),
                                    chosen="0.1 for the default model, 0 for the plain MLP")
    # --- optimisation -------------------------------------------------------------------------------------------
    optimizer: str = _option("adamw", "adamw, adam, or sgd (with the momentum option).", choices=OPTIMIZERS)
    momentum: float = _option(0.9, "Momentum of sgd (0: plain SGD, as the TensorFlow Playground trains).",
                              rule=(lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"))
    loss: str = _option("auto", "Training loss: cross_entropy, or squared_error (on the class probabilities for "
                        "classification, as the TensorFlow Playground trains); auto is cross_entropy for "
                        "classification and squared_error for regression.", choices=LOSSES)
    l1: float = _option(0.0, "L1 penalty rate on the weight matrices (not biases), added to the loss.",
                        rule=(lambda v: _is_num(v) and 0 <= v <= 10, "a number in [0, 10]"))
    l2: float = _option(0.0, "L2 penalty rate on the weight matrices (not biases): adds rate * w**2 / 2 to the loss.",
                        rule=(lambda v: _is_num(v) and 0 <= v <= 10, "a number in [0, 10]"))
    lr: float | None = _option(None, "Learning rate.", rule=(lambda v: v is None or (_is_num(v) and 0 < v <= 10),
                                                             "a number in (0, 10]"),
                               chosen="2e-3 for the default model, 1e-3 for the plain MLP (Keras' Adam)")
    weight_decay: float | None = _option(None, "Weight decay.", rule=(lambda v: v is None or (_is_num(v) and 0 <= v <= 10),
                                                                      "a number in [0, 10]"),
                                         chosen="3e-4 with adamw, else 0")
    grad_clip: float | None = _option(None, "Largest gradient norm; 0 turns clipping off.",
                                      rule=(lambda v: v is None or (_is_num(v) and v >= 0),
                                            "a number >= 0 (0 = no clipping)"),
                                      chosen="1.0 for the default model, off for the plain MLP")
    batch_size: int | None = _option(None, "Rows per step.", rule=_int_in(1, optional=True),
                                     chosen="from the number of training rows")
    epochs: int | None = _option(None, "Most epochs to train.", rule=_int_in(1, optional=True),
                                 chosen="1000; early stopping usually ends sooner")
    early_stopping: bool = _option(True, "Stop when the validation loss stops improving, and keep the best epoch's "
                                   "weights.", rule=(lambda v: isinstance(v, bool), "True or False"))
    patience: int = _option(16, "Epochs without improvement before early stopping.", rule=_int_in(1))
    time_limit: float | None = _option(None, "Seconds of training at most; the best model so far is kept.",
                                       rule=(lambda v: v is None or (_is_num(v) and v > 0),
                                             "a positive number of seconds"), chosen="no limit")
    average_weights: bool | None = _option(None, "Validate and keep a moving average of the weights over about an "
                                           "epoch's steps instead of the last step's.",
                                           rule=(lambda v: v is None or isinstance(v, bool), "True or False"),
                                           chosen="on for regression with the default model, else off")
    keep_diverged: bool = _option(False, "When the loss explodes or becomes NaN, keep the best epoch before it (or, "
                                  "without one, the last finite weights) instead of stopping with an error.",
                                  rule=(lambda v: isinstance(v, bool), "True or False"))
    # --- data ---------------------------------------------------------------------------------------------------
    scaling: str = _option("auto", "Numeric scaling: quantile, standard or none; auto is quantile for the default "
                           "model and standard for the plain MLP.", choices=SCALINGS)
    test_size: float = _option(0.3, "Share of rows held out for the test metrics (0: none).",
                               rule=(lambda v: _is_num(v) and 0 <= v < 0.9, "a number in [0, 0.9)"))
    valid_size: float = _option(0.2, "Share of the other rows used for validation (early stopping).",
                                rule=(lambda v: _is_num(v) and 0 < v < 0.9, "a number in (0, 0.9)"))
    categorical: tuple[str, ...] = _option((), "Columns to treat as categorical whatever their type.",
                                           rule=(_names, "a list of column names"))
    numeric: tuple[str, ...] = _option((), "Columns to treat as numeric whatever their type.",
                                       rule=(_names, "a list of column names"))
    drop: tuple[str, ...] = _option((), "Columns to ignore.", rule=(_names, "a list of column names"))
    max_categories: int = _option(1000, "Most frequent categories kept per column; the rest share the unknown slot.",
                                  rule=_int_in(1))
    # --- run ----------------------------------------------------------------------------------------------------
    seed: int = _option(0, "One seed for the split, the initialisation and the batch order.",
                        rule=(lambda v: _is_int(v) and 0 <= v < 2**32, "an integer in [0, 2**32)"))
    device: str = _option("auto", "auto, cpu, cuda or cuda:N; auto takes a GPU when there is one.",
                          rule=(lambda v: isinstance(v, str) and (v in ("auto", "cpu", "mps") or v.startswith("cuda")),
                                "auto, cpu, cuda or cuda:N"))
    threads: int | None = _option(None, "CPU threads for torch.", rule=_int_in(1, optional=True),
                                  chosen="1 for models whose step is tiny, else the cores this process may use (a "
                                  "share of them in a joblib worker)")
    stream: bool = _option(False, "Read the table from disk in chunks, for tables larger than memory; without it, "
                           "streaming starts by itself when the table would not fit in memory_budget.",
                           rule=(lambda v: isinstance(v, bool), "True or False"))
    memory_budget: str | int | None = _option(None, "Memory the table may take, in bytes or as text such as 2GB or "
                                              "512MiB; a larger table is streamed.",
                                              rule=(lambda v: v is None or parse_bytes(v) is not None,
                                                    "a number of bytes of at least 1MB, or text such as 2GB or "
                                                    "512MiB"),
                                              chosen="the memory available when training starts")
    precision: str = _option("auto", "Matmul precision: fp32 or bf16; auto is bf16 for the default model where the "
                             "CPU or GPU multiplies bf16 natively, else fp32.", choices=PRECISIONS)
    # --- presets ------------------------------------------------------------------------------------------------
    preset: str = _option("default", "fast: a small network and few epochs, for quick looks; default: the default "
                          "network; best: `folds` cross-validated fold models of it, their predictions averaged. A "
                          "preset only chooses the options left unset.", choices=PRESETS)
    folds: int = _option(5, "Fold models of the best preset: each trains on all but one fold of the training rows "
                         "and early-stops on that one.", rule=_int_in(2, 20))

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
            if key in COLUMN_FIELDS and isinstance(value, str):  # "a,b" or "Amount, EUR": see column_names
                value = (value,)
            if key in _TUPLE_FIELDS and value is not None:
                value = tuple(value) if not isinstance(value, str) else tuple(v.strip() for v in value.split(",") if v.strip())
                value = tuple(_python_scalar(v) for v in value)
                if key == "layers":
                    value = tuple(_as_int(v, key) for v in value)
            cleaned[key] = value
        return cls(**cleaned)

    def to_dict(self) -> dict[str, Any]:
        """Plain values; the options added after model files were first written are left out at their defaults, so
        that a run that does not use them writes the same bytes as before they existed."""
        return {f.name: (list(v) if isinstance(v, tuple) else v) for f in dataclasses.fields(self)
                for v in [getattr(self, f.name)] if not (f.name in _LATER_OPTIONS and v == f.default)}

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


_LATER_OPTIONS = ("momentum", "loss", "l1", "l2", "preset", "folds")
_TUPLE_FIELDS = {f.name for f in dataclasses.fields(TrainConfig) if isinstance(f.default, tuple)}
# the options each model alone reads
MODEL_OPTIONS = {"mlp": ("layers", "activation"), "default": ("k", "d_block", "n_blocks", "d_embedding", "n_bins")}


def ignored_options(cfg: TrainConfig) -> list[str]:
    """The options set to something other than their default that ``cfg.model`` does not read (``layers`` with the
    default model, ``k`` with the plain MLP): a run that silently ignored them would not be the one asked for."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return [name for model, names in MODEL_OPTIONS.items() if model != cfg.model for name in names
            if getattr(cfg, name) != defaults[name]]
# options that name columns: an entry is a column's name, or a comma list of names (split by column_names)
COLUMN_FIELDS = ("categorical", "numeric", "drop")


def column_names(given: tuple[str, ...], columns: list[str]) -> tuple[str, ...]:
    """The columns ``given`` names: each entry is a column's own name (which may contain commas, "Amount, EUR"), or
    else a comma list of names ("a,b"). An entry that is neither is kept whole, for the caller to report.

    >>> column_names(("Amount, EUR", "id,age"), ["Amount, EUR", "id", "age"])
    ('Amount, EUR', 'id', 'age')
    """
    names: list[str] = []
    for entry in given:
        parts = [p.strip() for p in entry.split(",") if p.strip()]
        if entry in columns or not all(p in columns for p in parts):
            names.append(entry)
        else:
            names.extend(parts)
    return tuple(dict.fromkeys(names))


def _python_scalar(value: Any) -> Any:
    """numpy scalars (as a scikit-learn grid built with np.arange or np.logspace gives) as the Python ones."""
    return value.item() if isinstance(value, np.generic) else value


def _as_int(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"option {option(name)} must be a list of positive integers, e.g. 64,64, got "
                              f"{value!r}") from None
    return value

def _validate(cfg: TrainConfig) -> None:
    """One message format for every option, from the fields' own rules."""
    for f in dataclasses.fields(cfg):
        value, choices, rule = getattr(cfg, f.name), f.metadata["choices"], f.metadata["rule"]
        if choices is not None and value not in choices:
            hint = closest_names(str(value), list(choices)).replace("available columns", "choose one of")
            raise ConfigError(f"option {option(f.name)} must be one of {', '.join(choices)}, got {value!r}: {hint}")
        if rule is not None and not rule[0](value):
            raise ConfigError(f"option {option(f.name)} must be {rule[1]}, got {value!r}")
    if cfg.test_size + cfg.valid_size * (1 - cfg.test_size) >= 0.95:
        raise ConfigError(f"{option('test_size', cfg.test_size)} and {option('valid_size', cfg.valid_size)} leave under 5% "
                          "of rows to train on")
    if cfg.loss == "cross_entropy" and cfg.task == "regression":
        raise ConfigError(f"{option('loss', 'cross_entropy')} is for classification, and the task is regression: use "
                          f"{option('loss', 'squared_error')}")
    overlap = set(cfg.categorical) & set(cfg.numeric)
    if overlap:
        raise ConfigError(f"column {sorted(overlap)[0]!r} is listed as both {option('categorical')} and "
                          f"{option('numeric')}: keep one")


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_bytes(value: Any) -> int | None:
    """Bytes from an integer or text such as "2GB", "1.5 GiB" or "512MiB"; None when it is neither, or under 1 MB.

    >>> parse_bytes("2GB"), parse_bytes("512MiB"), parse_bytes(10**9), parse_bytes("lots")
    (2000000000, 536870912, 1000000000, None)
    """
    if _is_int(value):
        n = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if match is None or match.group(2).lower() not in _UNITS:
            return None
        n = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    else:
        return None
    return n if n >= 10**6 else None


def describe_options() -> str:
    """The options as a docstring section: name, default (or how it is chosen) and help, one line each."""
    lines = []
    for f in dataclasses.fields(TrainConfig):
        default = f.metadata["chosen"] if f.default is None else repr(f.default)
        lines.append(f"- ``{f.name}`` (default: {default}): {f.metadata['help']}")
    return "\n".join(lines)


# Training rows under which the default model on a CPU doubles its ensemble (k=16): more members pay off most where
# the rows are few and each epoch is cheap.
SMALL_TABLE = 5_000


def auto_batch_size(n_train: int) -> int:
    """Batch size from the number of training rows (the TabM recipe's schedule).

    >>> [auto_batch_size(n) for n in (1000, 4000, 10000, 50000, 200000)]
    [32, 64, 256, 512, 1024]
    """
    for limit, size in ((2_800, 32), (4_500, 64), (6_400, 128), (32_000, 256), (108_000, 512)):
        if n_train < limit:
            return size
    return 1024


def resolve(cfg: TrainConfig, *, n_train: int, device_type: str, native_bf16: bool = False,
            task: str | None = None) -> TrainConfig:
    """Fill every ``None`` with the value chosen for this data and device. The one place defaults depend on data.

    ``native_bf16``: the device multiplies bfloat16 matrices in hardware (a CPU with AVX512-BF16 or AMX, a GPU
    from Ampere on); elsewhere bf16 is emulated and slower than float32. ``task``: the task inferred from the
    target, when ``cfg.task`` is still ``auto``.
    """
    cfg = preset_choices(cfg)
    is_default = cfg.model == "default"
    changes: dict[str, Any] = {}
    if cfg.precision == "auto":
        # bf16 autocast where the hardware has it: its matmuls run much faster than float32's;
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
    if cfg.average_weights is None:
        # the average lowered the regression tables' RMSE and did not help classification (benchmarks/README.md)
        changes["average_weights"] = is_default and (task or cfg.task) == "regression"
    if is_default:
        on_gpu = device_type == "cuda"
        # On a CPU the ensemble is the cost: k members multiply every matmul. The paper's k=32, d_block=512 is
        # affordable on a GPU but far too slow a step on a small CPU; k=8, d_block=128 is much cheaper and, on hr.csv,
        # as accurate within seed noise (benchmarks/README.md). Under SMALL_TABLE rows an epoch is short, so twice the
        # members cost seconds and average away more of a small table's noise.
        if cfg.k is None:
            changes["k"] = 32 if on_gpu else 16 if n_train < SMALL_TABLE else 8
        if cfg.d_block is None:
            changes["d_block"] = 512 if on_gpu else 128
    return cfg.replace(**changes) if changes else cfg


def preset_choices(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the options it leaves unset (None) set as its preset chooses them (:data:`PRESET_VALUES`).

    >>> preset_choices(TrainConfig(preset="fast", k=16)).k, preset_choices(TrainConfig(preset="fast")).k
    (16, 4)
    """
    other = {name for model, names in MODEL_OPTIONS.items() if model != cfg.model for name in names}
    values = {name: value for name, value in PRESET_VALUES[cfg.preset].items()
              if getattr(cfg, name) is None and name not in other}  # the other model's options stay unset
    return cfg.replace(**values) if values else cfg
