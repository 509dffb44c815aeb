"""Contract tests for neuraltab.config: one frozen, validated config; every data-dependent default in resolve()."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from neuraltab.config import SMALL_TABLE, TrainConfig, auto_batch_size, resolve
from neuraltab.errors import ConfigError, UserError


# --- defaults and unknown names ----------------------------------------------------------------------------------
def test_defaults_are_valid_and_frozen():
    cfg = TrainConfig()
    assert cfg.model == "default" and cfg.task == "auto" and cfg.scaling == "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]


def test_config_error_is_a_one_line_user_error():
    with pytest.raises(ConfigError) as info:
        TrainConfig(lr=-1.0)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("batchsize", "batch_size"), ("learning_rate", None), ("dropuot", "dropout"), ("epoch", "epochs")],
)
def test_from_dict_rejects_unknown_keys_with_a_suggestion(key, suggestion):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({key: 1})
    msg = str(info.value)
    assert repr(key) in msg
    if suggestion is not None:
        assert f"did you mean {suggestion!r}" in msg or ("did you mean" in msg and repr(suggestion) in msg)
    else:  # nothing close: the message lists the options that exist, not "columns"
        assert "available options" in msg and "columns" not in msg


# --- the validation table: every rule rejects a bad value, naming the option and the value ------------------------
BAD_VALUES = [
    ("task", "clasification"),
    ("model", "tabm"),
    ("activation", "Relu6"),
    ("optimizer", "lbfgs"),
    ("scaling", "minmax"),
    ("k", 0),
    ("k", 257),
    ("d_block", 0),
    ("d_block", 8193),
    ("n_blocks", 0),
    ("n_blocks", 17),
    ("d_embedding", -1),
    ("d_embedding", 257),
    ("n_bins", 1),
    ("n_bins", 1025),
    ("dropout", 1.0),
    ("dropout", -0.1),
    ("dropout", float("nan")),
    ("lr", 0.0),
    ("lr", 11.0),
    ("lr", "0.01"),
    ("weight_decay", -1e-4),
    ("weight_decay", 10.5),
    ("grad_clip", -1.0),
    ("batch_size", 0),
    ("batch_size", 32.0),
    ("epochs", 0),
    ("epochs", 2.5),
    ("patience", 0),
    ("time_limit", 0),
    ("time_limit", -5.0),
    ("test_size", 0.9),
    ("test_size", -0.1),
    ("valid_size", 0.0),
    ("valid_size", 0.95),
    ("max_categories", 0),
    ("seed", -1),
    ("seed", 2**32),
    ("threads", 0),
    ("layers", (0,)),
    ("momentum", 1.0),
    ("loss", "hinge"),
    ("l1", -0.1),
    ("l2", 11),
    ("layers", (64, 0)),
    ("layers", (64, 32.5)),
    ("device", "gpu"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_each_rule_rejects_a_bad_value_naming_option_and_value(name, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: value})
    msg = str(info.value)
    assert repr(name) in msg, msg
    assert repr(value) in msg or str(value) in msg, msg


@pytest.mark.parametrize("value", ["clasification", "multi"])
def test_choice_error_lists_the_choices(value):
    with pytest.raises(ConfigError) as info:
        TrainConfig(task=value)
    msg = str(info.value)
    for choice in ("binary", "multiclass", "regression"):
        assert choice in msg


@pytest.mark.parametrize(
    "name", ["k", "d_block", "n_blocks", "d_embedding", "n_bins", "batch_size", "epochs", "patience",
             "max_categories", "seed", "threads"]
)
def test_bools_are_rejected_for_integer_options(name):
    # True == 1 passes every "integer >= 1" check unless bools are refused explicitly.
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: True})
    assert repr(name) in str(info.value) and "True" in str(info.value)


@pytest.mark.parametrize("name", ["dropout", "lr", "weight_decay", "grad_clip", "time_limit", "test_size"])
def test_bools_are_rejected_for_number_options(name):
    with pytest.raises(ConfigError):
        TrainConfig(**{name: True})


def test_bool_in_layers_is_rejected():
    with pytest.raises(ConfigError, match="'layers'"):
        TrainConfig(layers=(64, True))


def test_test_and_valid_sizes_must_leave_rows_to_train_on():
    with pytest.raises(ConfigError) as info:
        TrainConfig(test_size=0.8, valid_size=0.8)
    msg = str(info.value)
    assert "test_size=0.8" in msg and "valid_size=0.8" in msg
    TrainConfig(test_size=0.5, valid_size=0.5)  # 25% left: fine


def test_a_column_cannot_be_both_categorical_and_numeric():
    with pytest.raises(ConfigError, match="'zip'"):
        TrainConfig(categorical=("zip", "city"), numeric=("zip",))


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_valid_devices_are_accepted(device):
    assert TrainConfig(device=device).device == device


def test_boundary_values_are_accepted():
    cfg = TrainConfig(k=1, d_block=8192, n_blocks=16, d_embedding=0, n_bins=2, dropout=0.0, lr=10, weight_decay=0,
                      grad_clip=0, test_size=0.0, seed=2**32 - 1, layers=(1,), max_categories=1)
    assert cfg.k == 1 and cfg.seed == 2**32 - 1


# --- resolve: the one place defaults depend on the data and the device --------------------------------------------
# Fields where None is a real setting rather than "choose for me": no time limit, all CPU cores, the memory available
# (read when a run starts, never written into the model: the same seed writes the same bytes on any machine).
_NONE_IS_A_SETTING = {"time_limit", "threads", "memory_budget"}


def _none_fields(cfg: TrainConfig) -> set[str]:
    return {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is None}


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_resolve_fills_every_choice_for_the_default_model(device_type):
    cfg = resolve(TrainConfig(), n_train=1000, device_type=device_type)
    assert _none_fields(cfg) <= _NONE_IS_A_SETTING
    assert cfg.scaling == "quantile"
    assert (cfg.dropout, cfg.lr, cfg.weight_decay, cfg.grad_clip) == (0.1, 2e-3, 3e-4, 1.0)
    assert cfg.batch_size == 32 and cfg.epochs == 1000
    if device_type == "cuda":
        assert (cfg.k, cfg.d_block) == (32, 512)
    else:
        assert (cfg.k, cfg.d_block) == (16, 128)  # 1000 rows: a small table's ensemble


@pytest.mark.parametrize(("n_train", "device_type", "given", "expected"), [
    (SMALL_TABLE - 1, "cpu", None, 16), (SMALL_TABLE, "cpu", None, 8), (100_000, "cpu", None, 8),
    (1000, "cuda", None, 32), (100_000, "cuda", None, 32), (1000, "cpu", 3, 3)])
def test_resolve_sizes_the_ensemble_from_the_rows_on_a_cpu(n_train, device_type, given, expected):
    assert resolve(TrainConfig(k=given), n_train=n_train, device_type=device_type).k == expected
    assert resolve(TrainConfig(model="mlp"), n_train=n_train, device_type=device_type).k is None


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_resolve_fills_every_choice_for_the_plain_mlp(device_type):
    cfg = resolve(TrainConfig(model="mlp"), n_train=50_000, device_type=device_type)
    # k and d_block only shape the default model; the plain MLP never reads them.
    assert _none_fields(cfg) <= _NONE_IS_A_SETTING | {"k", "d_block"}
    assert cfg.scaling == "standard"
    assert (cfg.dropout, cfg.lr, cfg.weight_decay, cfg.grad_clip) == (0.0, 1e-3, 3e-4, 0.0)
    assert cfg.batch_size == 512 and cfg.epochs == 1000


@pytest.mark.parametrize(("optimizer", "expected"), [("adamw", 3e-4), ("adam", 0.0), ("sgd", 0.0)])
def test_resolve_weight_decay_depends_on_the_optimizer(optimizer, expected):
    assert resolve(TrainConfig(optimizer=optimizer), n_train=100, device_type="cpu").weight_decay == expected


def test_resolve_keeps_explicit_values_and_is_idempotent():
    explicit = TrainConfig(k=4, d_block=64, dropout=0.0, lr=0.5, weight_decay=0.0, grad_clip=0.0, batch_size=7,
                           epochs=3, scaling="none", precision="fp32", average_weights=False)
    assert resolve(explicit, n_train=10_000, device_type="cuda") == explicit
    once = resolve(TrainConfig(), n_train=10_000, device_type="cpu")
    assert resolve(once, n_train=10_000, device_type="cuda") == once


@pytest.mark.parametrize(("model", "native", "expected"), [("default", True, "bf16"), ("default", False, "fp32"),
                                                         ("mlp", True, "fp32"), ("mlp", False, "fp32")])
def test_precision_auto_is_bf16_only_for_the_default_model_on_native_bf16_hardware(model, native, expected):
    assert resolve(TrainConfig(model=model), n_train=100, device_type="cpu", native_bf16=native).precision == expected
    assert resolve(TrainConfig(model=model, precision="fp32"), n_train=100, device_type="cpu",
                   native_bf16=native).precision == "fp32"


def test_resolve_returns_a_valid_config_and_leaves_the_input_alone():
    cfg = TrainConfig()
    resolved = resolve(cfg, n_train=500, device_type="cpu")
    assert cfg.lr is None and cfg.k is None  # frozen input unchanged
    assert TrainConfig.from_dict(resolved.to_dict()) == resolved


# --- auto_batch_size ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_train", "expected"),
    [(1, 32), (2_799, 32), (2_800, 64), (4_499, 64), (4_500, 128), (6_399, 128), (6_400, 256), (31_999, 256),
     (32_000, 512), (107_999, 512), (108_000, 1024), (10_000_000, 1024)],
)
def test_auto_batch_size_thresholds(n_train, expected):
    assert auto_batch_size(n_train) == expected


def test_auto_batch_size_never_decreases():
    sizes = [auto_batch_size(n) for n in range(1, 200_000, 97)]
    assert sizes == sorted(sizes)


# --- round trips --------------------------------------------------------------------------------------------------
def test_to_dict_from_dict_round_trip_through_json():
    cfg = TrainConfig(model="mlp", layers=(128, 64, 32), categorical=("city",), numeric=("zip",), drop=("id",),
                      lr=0.01, k=4, time_limit=12.5, device="cpu", seed=7)
    d = cfg.to_dict()
    assert d["layers"] == [128, 64, 32] and d["drop"] == ["id"]
    # the options added later (momentum, loss, l1, l2, preset, folds) are written only when set, so older runs keep
    # their bytes
    later = {"momentum", "loss", "l1", "l2", "preset", "folds"}
    assert set(d) == {f.name for f in dataclasses.fields(TrainConfig)} - later
    back = TrainConfig.from_dict(json.loads(json.dumps(d)))
    assert back == cfg
    assert isinstance(back.layers, tuple) and isinstance(back.categorical, tuple)
    played = cfg.replace(optimizer="sgd", momentum=0.0, loss="squared_error", l2=0.03)
    assert {"momentum", "loss", "l2"} <= set(played.to_dict()) and "l1" not in played.to_dict()
    assert TrainConfig.from_dict(json.loads(json.dumps(played.to_dict()))) == played
    best = cfg.replace(preset="best", folds=3)
    assert {"preset", "folds"} <= set(best.to_dict()) and TrainConfig.from_dict(best.to_dict()) == best


def test_default_config_round_trips():
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_column_lists_are_split_on_commas_against_the_tables_columns():
    from neuraltab.config import column_names

    cfg = TrainConfig.from_dict({"categorical": "a,b", "drop": ["x"]})
    assert cfg.categorical == ("a,b",) and cfg.drop == ("x",)  # a name may hold a comma: the table decides
    assert column_names(cfg.categorical, ["a", "b", "c"]) == ("a", "b")
    assert column_names(("a,b",), ["a,b", "a", "b"]) == ("a,b",)  # a column of that very name wins
    assert column_names(("a,zz",), ["a", "b"]) == ("a,zz",)  # not all names: kept whole, reported as not found


@pytest.mark.parametrize("layers", ["64,32", ["64", "32"]])
def test_from_dict_accepts_layers_written_as_text(layers):
    # The CLI passes --layers 64,32 as a list of strings; the help text and the error message promise "64,64" works.
    assert TrainConfig.from_dict({"model": "mlp", "layers": layers}).layers == (64, 32)


def test_replace_validates():
    with pytest.raises(ConfigError, match="'lr'"):
        TrainConfig().replace(lr=-1.0)


def test_from_dict_takes_numpy_scalars_as_python_values():
    # a scikit-learn grid written with np.arange / np.logspace hands over numpy scalars
    cfg = TrainConfig.from_dict({"k": np.int64(4), "lr": np.float64(0.01), "layers": np.array([32, 16]),
                                 "early_stopping": np.bool_(False), "categorical": np.array(["a", "b"])})
    assert (cfg.k, cfg.lr, cfg.layers, cfg.early_stopping, cfg.categorical) == (4, 0.01, (32, 16), False, ("a", "b"))
    assert type(cfg.k) is int and type(cfg.layers[0]) is int and type(cfg.categorical[0]) is str
    json.dumps(cfg.to_dict())
    with pytest.raises(ConfigError, match="option 'k'"):
        TrainConfig.from_dict({"k": np.bool_(True)})
