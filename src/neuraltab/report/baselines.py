"""Quick models on the network's own split and inputs, to answer "did deep learning help?".

They learn from the rows the network learned from (its training and validation rows: the network chose its epoch
on the latter, the baselines have nothing to choose) and are scored on the same held-out rows. Their inputs are the
model's own preprocessing of those rows (``Model.preprocessor``): the same medians, scaling and vocabularies, the
categories one-hot encoded for the linear model and given as categories to LightGBM.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ..data.preprocess import Batch

__all__ = ["fit_baselines", "lightgbm_available"]


def lightgbm_available() -> bool:
    return importlib.util.find_spec("lightgbm") is not None


def _one_hot(batch: Batch, cardinalities: list[int]) -> np.ndarray:
    blocks = [batch.x_num.astype(np.float64)]
    for j, n in enumerate(cardinalities):
        blocks.append(np.eye(n)[batch.x_cat[:, j]])
    return np.hstack(blocks)


def _full_proba(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over every class from a model that saw only the classes ``seen`` (codes) in training."""
    out = np.zeros((len(proba), n_classes))
    out[:, np.asarray(seen, dtype=np.int64)] = proba
    return out


def fit_baselines(task: str, n_classes: int, cardinalities: list[int], train: Batch, test: Batch, *, seed: int,
                  threads: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Outputs on ``test`` (probabilities [n, C] or values [n]) of each baseline fitted on ``train``, by name, and
    the baselines that could not run, with the reason."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LinearRegression, LogisticRegression

    outputs: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    y = train.y
    if task == "regression":
        outputs["mean"] = np.full(len(test), float(np.mean(y.astype(np.float64))))
        linear = LinearRegression().fit(_one_hot(train, cardinalities), y.astype(np.float64))
        outputs["linear regression"] = linear.predict(_one_hot(test, cardinalities))
    else:
        prior = np.bincount(y, minlength=n_classes) / len(y)
        outputs["majority class"] = np.tile(prior, (len(test), 1))
        with warnings.catch_warnings():  # an unconverged fit is still a fair, quick baseline
            warnings.simplefilter("ignore", ConvergenceWarning)
            logistic = LogisticRegression(max_iter=500).fit(_one_hot(train, cardinalities), y)
        outputs["logistic regression"] = _full_proba(logistic.predict_proba(_one_hot(test, cardinalities)),
                                                     logistic.classes_, n_classes)
    if not lightgbm_available():
        skipped["LightGBM"] = "not installed, so not compared (pip install 'neuraltab[baselines]')"
        return outputs, skipped
    import lightgbm

    X_train = np.hstack([train.x_num.astype(np.float64), train.x_cat.astype(np.float64)])
    X_test = np.hstack([test.x_num.astype(np.float64), test.x_cat.astype(np.float64)])
    categorical = list(range(train.x_num.shape[1], X_train.shape[1]))
    options = {"random_state": seed, "n_jobs": threads, "verbose": -1, "deterministic": True, "force_row_wise": True}
    if task == "regression":
        booster = lightgbm.LGBMRegressor(**options).fit(X_train, y.astype(np.float64),
                                                        categorical_feature=categorical or "auto")
        outputs["LightGBM"] = booster.predict(X_test)
    else:
        booster = lightgbm.LGBMClassifier(**options).fit(X_train, y, categorical_feature=categorical or "auto")
        outputs["LightGBM"] = _full_proba(booster.predict_proba(X_test), booster.classes_, n_classes)
    return outputs, skipped
