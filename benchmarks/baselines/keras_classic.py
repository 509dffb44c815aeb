"""The classic recipe as a faithful Keras 3 port: Dense(64)-relu-Dense(64)-relu-Dense(C, softmax), batch 32, Adam.

    python keras_classic.py DATA TARGET EPOCHS      # prints one JSON line: s/epoch, test accuracy, peak RSS

Needs keras>=3 with the TensorFlow backend (``pip install tensorflow-cpu``), kept out of neuraltab's own environment.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

from classic_data import load  # noqa: E402


class _EpochTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def main() -> None:
    path, target, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    x_train, x_test, y_train, y_test = load(path, target)
    keras.utils.set_random_seed(0)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    model = keras.Sequential([keras.Input((x_train.shape[1],)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(n_classes, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = _EpochTimes()
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0, callbacks=[timer])
    total = time.perf_counter() - started
    accuracy = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
    steady = timer.times[1:] or timer.times  # the first epoch also builds the graph
    print(json.dumps({"system": f"Keras {keras.__version__} ({keras.backend.backend()})", "epochs": epochs,
                      "s_per_epoch": sorted(steady)[len(steady) // 2], "first_epoch_s": timer.times[0],
                      "train_s": total, "accuracy": accuracy,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
