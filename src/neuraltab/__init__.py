"""neuraltab: deep neural networks for tables, from a CSV to a trained, saved, reusable model in one call.

>>> import neuraltab
>>> callable(neuraltab.fit) and callable(neuraltab.load)
True
"""

__version__ = "0.1.0"

# Names load on first use (PEP 562): importing the package does not import torch, so the CLI can choose how
# OpenMP's threads wait before torch starts them (see contention.py), and `neuraltab --help` starts quickly.
_LAZY = {
    "fit": "api", "load": "api", "Model": "api", "TrainConfig": "config", "Callback": "train",
    "NeuralTabClassifier": "estimators", "NeuralTabRegressor": "estimators",
    "UserError": "errors", "DataError": "errors", "SchemaError": "errors", "ConfigError": "errors",
    "ArtifactError": "errors",
}


def __getattr__(name: str):
    if name == "playground":  # the subpackage, callable: neuraltab.playground(df, target=...)
        from importlib import import_module

        return import_module(".playground", __name__)
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'neuraltab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "playground"])


__all__ = ["fit", "load", "playground", "Model", "TrainConfig", "Callback", "NeuralTabClassifier", "NeuralTabRegressor",
           "UserError", "DataError", "SchemaError", "ConfigError", "ArtifactError", "__version__"]
