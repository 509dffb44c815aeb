"""scikit-learn compatible estimators: :class:`NeuralTabClassifier` and :class:`NeuralTabRegressor`.

They are thin on purpose. ``fit`` validates ``X`` and ``y`` the way scikit-learn does (shapes, feature names, labels),
puts them in one DataFrame and calls :func:`neuraltab.api.fit` -- the path the CLI takes -- with no test split;
``predict`` goes through the fitted :class:`neuraltab.api.Model`. Their parameters are the :class:`TrainConfig` fields,
under the same names and with the same defaults.

Pickling (joblib, ``GridSearchCV(n_jobs=2)``, ``copy.deepcopy``) carries the fitted model as the bytes of the safe
model file; :meth:`save` and :meth:`load` write and read that file on disk.

>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
>>> clf = NeuralTabClassifier(k=1, d_block=8, n_blocks=1, epochs=2, threads=1).fit(X, y)
>>> clf.classes_.tolist(), clf.predict_proba(X[:2]).shape
([0, 1], (2, 2))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import assert_all_finite, check_consistent_length, column_or_1d
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import api
from .config import TrainConfig
from .errors import ArtifactError, ConfigError, closest_names
from .data.schema import label_key

__all__ = ["NeuralTabClassifier", "NeuralTabRegressor"]


class _NeuralTabEstimator(BaseEstimator):
    """Shared by both estimators. Parameters: see :class:`neuraltab.TrainConfig` (same names, same defaults)."""

    _task: str  # "classification" or "regression"

    def __init__(self, *, model: str = "default", layers: tuple[int, ...] = (256, 256), activation: str = "relu",
                 k: int | None = None, d_block: int | None = None, n_blocks: int = 2, d_embedding: int = 16,
                 n_bins: int = 48, dropout: float | None = None, optimizer: str = "adamw", momentum: float = 0.9,
                 loss: str = "auto", l1: float = 0.0, l2: float = 0.0, lr: float | None = None,
                 weight_decay: float | None = None, grad_clip: float | None = None, batch_size: int | None = None,
                 epochs: int | None = None, early_stopping: bool = True, patience: int = 16,
                 time_limit: float | None = None, average_weights: bool | None = None, keep_diverged: bool = False,
                 scaling: str = "auto", valid_size: float = 0.2,
                 categorical: tuple[str, ...] = (), numeric: tuple[str, ...] = (), drop: tuple[str, ...] = (),
                 max_categories: int = 1000, seed: int = 0, device: str = "auto", threads: int | None = None,
                 stream: bool = False, memory_budget: str | int | None = None, precision: str = "auto",
                 preset: str = "default", folds: int = 5) -> None:
        self.model = model
        self.layers = layers
        self.activation = activation
        self.k = k
        self.d_block = d_block
        self.n_blocks = n_blocks
        self.d_embedding = d_embedding
        self.n_bins = n_bins
        self.dropout = dropout
        self.optimizer = optimizer
        self.momentum = momentum
        self.loss = loss
        self.l1 = l1
        self.l2 = l2
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.patience = patience
        self.time_limit = time_limit
        self.average_weights = average_weights
        self.keep_diverged = keep_diverged
        self.scaling = scaling
        self.valid_size = valid_size
        self.categorical = categorical
        self.numeric = numeric
        self.drop = drop
        self.max_categories = max_categories
        self.seed = seed
        self.device = device
        self.threads = threads
        self.stream = stream
        self.memory_budget = memory_budget
        self.precision = precision
        self.preset = preset
        self.folds = folds

    # --------------------------------------------------------------------------------------------------- sklearn
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are imputed, with a missing-indicator column
        tags.input_tags.string = True  # text columns are categories
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def set_params(self, **params: Any) -> _NeuralTabEstimator:
        valid = self._get_param_names()
        for key in params:
            name = key.split("__", 1)[0]
            if name not in valid:
                raise ConfigError(f"invalid parameter {name!r} for {type(self).__name__}: "
                                  f"{closest_names(name, valid, what='parameters')}")
        return super().set_params(**params)

    # --------------------------------------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any) -> _NeuralTabEstimator:
        """Train on ``X`` (array or DataFrame, n_samples x n_features) and ``y`` (n_samples labels or values).

        Every row is used for training and validation (early stopping); there is no test split.
        """
        frame = self._frame(X, reset=True)
        target_name = _target_name(y, frame.columns)
        y = self._check_y(y, frame)
        classes = np.unique(y) if self._task == "classification" else None
        # the estimator's type decides the task: float labels 0.0/1.0 are classes here, two values a number there
        task = "regression" if classes is None else "binary" if len(classes) <= 2 else "multiclass"
        self.model_ = api.fit(frame.assign(**{target_name: y}), target_name, task=task, test_size=0.0,
                              **self.get_params(deep=False))
        if classes is not None:
            self.classes_ = classes
            self._proba_order()  # the labels the model learned must be exactly classes_
        self.history_ = self.model_.history
        self.model_.estimator = self._state()
        return self

    def _frame(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """``X`` as a DataFrame whose columns are the feature names (``x0``, ``x1``, ... when ``X`` has none)."""
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, skip_check_array=True, reset=reset)  # feature names and counts, as scikit-learn
            n_min = 2 if reset else 1
            if len(X) < n_min or X.shape[1] < 1:
                raise ValueError(f"Found array with {len(X)} sample(s) and {X.shape[1]} feature(s) "
                                 f"(shape={X.shape}) while a minimum of {n_min} sample(s) and 1 feature is required "
                                 f"by {type(self).__name__}.")
            frame = X
        else:
            array = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False,
                                  ensure_min_samples=2 if reset else 1)
            frame = pd.DataFrame(array, copy=False).infer_objects()
        names = self.feature_names_in_ if hasattr(self, "feature_names_in_") else [f"x{i}" for i in range(frame.shape[1])]
        return frame.set_axis([str(c) for c in names], axis=1)

    def _check_y(self, y: Any, frame: pd.DataFrame) -> np.ndarray:
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        check_consistent_length(frame, y)
        n_missing = int(pd.isna(y).sum())
        if n_missing:
            raise ValueError(f"Input y contains NaN: {n_missing} missing value(s); drop those rows or fill them in.")
        if y.dtype.kind in "fc":
            assert_all_finite(y, input_name="y")
        if self._task == "regression":
            return y.astype(np.float64)
        check_classification_targets(y)
        if y.dtype == object or y.dtype.kind == "U":  # as the model reads them: " no" and "no" are one class
            y = np.array([v.strip() if isinstance(v, str) else v for v in y], dtype=y.dtype)
        return y

    # --------------------------------------------------------------------------------------------------- predict
    def _output(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        frame = self._frame(X, reset=False)
        if self._task == "regression":
            return self.model_.predict(frame).to_numpy(dtype=np.float64)
        return self.model_.predict_proba(frame).to_numpy(dtype=np.float64)[:, self._proba_order()]

    def _proba_order(self) -> list[int]:
        """Column of the model's probabilities for each entry of ``classes_``."""
        learned = {label_key(c): j for j, c in enumerate(self.model_.classes)}
        order = [learned.get(label_key(c)) for c in self.classes_]
        if None in order or len(set(order)) != len(learned):
            raise ValueError(f"labels {self.classes_.tolist()[:10]} do not map one-to-one onto the classes the model "
                             f"learned, {list(self.model_.classes)[:10]}: labels such as 1 and '1' name the same class")
        return order  # type: ignore[return-value]

    # --------------------------------------------------------------------------------------------------- files
    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the fitted estimator as one safe model file (safetensors + JSON, no pickle); see :meth:`load`."""
        check_is_fitted(self)
        return self.model_.save(path, force=force)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> _NeuralTabEstimator:
        """Rebuild a fitted estimator from a file written by :meth:`save`. Never runs code from the file."""
        model = api.load(path, device=device)
        state = model.estimator
        if not state:
            raise ArtifactError(f"{path}: was written by `neuraltab train` or neuraltab.fit, not by an estimator's "
                                "save(); load it with neuraltab.load(path)")
        if state["class"] != cls.__name__:
            raise ArtifactError(f"{path}: holds a {state['class']}, not a {cls.__name__}; "
                                f"load it with {state['class']}.load(path)")
        estimator = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["params"].items()})
        estimator.model_ = model
        estimator.history_ = model.history
        estimator.n_features_in_ = state["n_features_in"]
        if state["feature_names_in"] is not None:
            estimator.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        if state["classes"] is not None:
            estimator.classes_ = np.asarray(state["classes"])
        return estimator

    def _state(self) -> dict[str, Any]:
        """What :meth:`load` needs besides the model, as JSON."""
        names = getattr(self, "feature_names_in_", None)
        classes = getattr(self, "classes_", None)
        return {
            "class": type(self).__name__,
            "params": {k: v for k, v in TrainConfig.from_dict(self.get_params(deep=False)).to_dict().items()
                       if k in self._get_param_names()},
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "classes": None if classes is None else [_json_label(c) for c in classes],
        }

    # --------------------------------------------------------------------------------------------------- pickle
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the live __dict__
        if "model_" in state:  # the model travels as the bytes of its safe file, not as pickled torch objects
            state["model_"] = {"bundle": self.model_.to_bytes(), "device": self.model_.device.type}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.get("model_")
        if isinstance(packed, dict) and "bundle" in packed:
            on_gpu = packed["device"] == "cuda" and torch.cuda.is_available()
            state = {**state, "model_": api.load_bytes(packed["bundle"], device="cuda" if on_gpu else "cpu")}
        super().__setstate__(state)


class NeuralTabClassifier(ClassifierMixin, _NeuralTabEstimator):
    """A neuraltab network as a scikit-learn classifier (binary or multiclass).

    Parameters are those of :class:`neuraltab.TrainConfig`, with the same defaults: the default TabM-style ensemble
    (``model``, ``k``, ``d_block``, ...), the plain MLP (``model="mlp"``, ``layers``, ``activation``), optimisation
    (``lr``, ``epochs``, ``early_stopping``, ...), columns (``categorical``, ``numeric``, ``drop``) and ``seed``.
    ``preset`` ("fast", "default" or "best", with ``folds``) chooses the parameters left at None, as ``neuraltab
    train --preset`` does; "best" trains ``folds`` cross-validated fold models on the rows given and averages them.
    ``X`` may be an array or a DataFrame with numeric, text (categorical), boolean and date columns and missing values.

    Attributes: ``classes_`` (sorted labels; ``predict_proba`` columns follow them), ``n_features_in_``,
    ``feature_names_in_`` (when ``X`` had string column names), ``history_`` (per-epoch losses and scores, best epoch,
    stop reason) and ``model_`` (the :class:`neuraltab.Model`, with its schema, preprocessing and ``notices``: the
    run's remarks, such as columns dropped as constant or ID-like).
    """

    _task = "classification"

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label for each row, as in ``classes_``: shape (n_samples,)."""
        proba = self._output(X)  # first: it raises NotFittedError before classes_ is looked up
        return self.classes_[proba.argmax(axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, float64 of shape (n_samples, n_classes), columns in the order of ``classes_``."""
        return self._output(X)


class NeuralTabRegressor(RegressorMixin, _NeuralTabEstimator):
    """A neuraltab network as a scikit-learn regressor (one numeric target).

    Parameters are those of :class:`neuraltab.TrainConfig`, with the same defaults (see :class:`NeuralTabClassifier`).
    Attributes: ``n_features_in_``, ``feature_names_in_`` (when ``X`` had string column names), ``history_`` and
    ``model_``. The target is standardised for training; predictions are in its own units.
    """

    _task = "regression"

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, float64 of shape (n_samples,)."""
        return self._output(X)


def _target_name(y: Any, columns: pd.Index) -> str:
    """The target's column name inside neuraltab: a Series' own name, else "target" (made unique among the features)."""
    name = y.name if isinstance(y, pd.Series) and isinstance(y.name, str) and y.name.strip() else "target"
    while name in columns:
        name += "_"
    return name


def _json_label(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, (str, int, float, bool)) else str(value)
