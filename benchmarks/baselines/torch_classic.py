"""The classic recipe as a straightforward PyTorch loop: TensorDataset + DataLoader(batch 32, shuffle), Adam.

    python torch_classic.py DATA TARGET EPOCHS      # prints one JSON line: s/epoch, test accuracy, peak RSS

What a tutorial writes; the reference for how much per-step overhead a plain loop carries.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from classic_data import load  # noqa: E402


def main() -> None:
    path, target, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    x_train, x_test, y_train, y_test = load(path, target)
    torch.manual_seed(0)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    model = nn.Sequential(nn.Linear(x_train.shape[1], 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, n_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)), batch_size=32,
                        shuffle=True)
    times = []
    started = time.perf_counter()
    for _ in range(epochs):
        t = time.perf_counter()
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    print(json.dumps({"system": f"PyTorch {torch.__version__.split('+')[0]} DataLoader loop", "epochs": epochs,
                      "s_per_epoch": sorted(times)[len(times) // 2], "first_epoch_s": times[0], "train_s": total,
                      "accuracy": accuracy, "threads": torch.get_num_threads(),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
