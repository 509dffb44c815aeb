"""neuraltab: deep neural networks for tables, from a CSV to a trained, saved, reusable model in one call.

>>> import neuraltab
>>> callable(neuraltab.fit) and callable(neuraltab.load)
True
"""

__version__ = "0.1.0"

from .api import Model, fit, load  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .errors import ArtifactError, ConfigError, DataError, SchemaError, UserError  # noqa: E402
from .training import Callback  # noqa: E402


def __getattr__(name: str):
    # the scikit-learn estimators import sklearn.base & co.; the CLI never needs them, so they load on first use
    if name in ("NeuralTabClassifier", "NeuralTabRegressor"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'neuraltab' has no attribute {name!r}")


__all__ = ["fit", "load", "Model", "TrainConfig", "Callback", "NeuralTabClassifier", "NeuralTabRegressor",
           "UserError", "DataError", "SchemaError", "ConfigError", "ArtifactError", "__version__"]
