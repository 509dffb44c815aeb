"""Prediction speed of the exported ONNX graph under ONNX Runtime against ``Model.predict`` (issue 18).

For 1, 1,000 and 100,000 rows (drawn with replacement from the table), the median over repeats of:

- ``Model.predict``: a DataFrame in, labels out (neuraltab's whole path: preprocessing, network, labels);
- ``Model.predict fp32``: the same with the model's precision set to fp32 (the graph's), where it was bf16;
- ``onnxruntime``: ``session.run`` on the graph's inputs, already numpy arrays (how a service that holds arrays, or a
  C#/Java/browser caller, runs it); it returns labels and probabilities;
- ``onnxruntime + arrays``: the same plus turning the DataFrame's columns into those arrays, for a like-for-like
  comparison with a DataFrame in.

Both sides use every core (torch's and ONNX Runtime's default thread counts). It also prints the largest
difference in probability between the two at each size: the graph is float32; ``Model.predict`` multiplies in bf16
where the model was trained in bf16 and the CPU does it natively (``precision`` in the table's title).

    python benchmarks/onnx_speed.py                        # trains the default model on hr.csv (5 epochs) first
    python benchmarks/onnx_speed.py --model hr.ntab --json benchmarks/results/onnx-speed.json
    python benchmarks/onnx_speed.py --quick                # fewer repeats
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hr.csv"
SIZES = (1, 1_000, 100_000)


def feeds_for(model: Any, X: pd.DataFrame) -> dict[str, np.ndarray]:
    """The graph's inputs: float32 [N, 1] numbers and booleans, strings [N, 1] for categories ('' missing)."""
    feeds = {}
    for col in model.schema.features:
        s = X[col.name]
        if col.kind == "categorical":
            feeds[col.name] = s.astype(object).where(s.notna(), "").astype(str).to_numpy(dtype=object).reshape(-1, 1)
        else:
            feeds[col.name] = s.to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1)
    return feeds


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: first-call allocations and plan building are not what a service pays per request
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a model file; default: train the default model on --data")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--target", default="left")
    parser.add_argument("--epochs", type=int, default=5, help="epochs when training (speed does not depend on them)")
    parser.add_argument("--quick", action="store_true", help="a few repeats only")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    import neuraltab
    from neuraltab.device import native_bf16

    df = pd.read_csv(args.data)
    model = neuraltab.load(args.model) if args.model else neuraltab.fit(df, target=args.target, epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        path = model.to_onnx(Path(tmp) / "model.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    precision = model.config.precision if native_bf16(torch.device("cpu")) else "fp32"
    X_all = df.drop(columns=[args.target], errors="ignore")
    repeats = {1: 20, 1_000: 5, 100_000: 2} if args.quick else {1: 300, 1_000: 30, 100_000: 5}

    rows = []
    for n in SIZES:
        X = X_all.sample(n, replace=True, random_state=n).reset_index(drop=True)
        feeds = feeds_for(model, X)
        t_model = median_seconds(lambda: model.predict(X), repeats[n])
        t_model32 = t_model
        if precision != "fp32":  # the graph's own precision, for a like-for-like figure
            config, model.config = model.config, model.config.replace(precision="fp32")
            t_model32 = median_seconds(lambda: model.predict(X), repeats[n])
            model.config = config
        t_ort = median_seconds(lambda: session.run(None, feeds), repeats[n])
        t_ort_df = median_seconds(lambda: session.run(None, feeds_for(model, X)), repeats[n])
        outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        if model.task == "regression":
            diff = float(np.max(np.abs(outputs["value"] - model.predict(X).to_numpy())))
        else:
            diff = float(np.max(np.abs(outputs["probabilities"] - model.predict_proba(X).to_numpy())))
        rows.append({"rows": n, "model_predict_s": t_model, "model_predict_fp32_s": t_model32, "onnxruntime_s": t_ort,
                     "onnxruntime_with_arrays_s": t_ort_df,
                     "max_abs_difference": diff, "repeats": repeats[n]})

    print(f"\n{model.spec['kind']} model of {args.target!r} ({model.task}), Model.predict in {precision}; "
          f"torch {torch.get_num_threads()} threads, onnxruntime {ort.__version__}; median of the repeats")
    print("| rows | Model.predict | Model.predict fp32 | onnxruntime | onnxruntime + arrays | speed-up | "
          "speed-up on fp32 | max abs difference |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        def cell(seconds: float) -> str:
            return f"{seconds * 1e3:,.3f} ms ({r['rows'] / seconds:,.0f} rows/s)"

        print(f"| {r['rows']:,} | {cell(r['model_predict_s'])} | {cell(r['model_predict_fp32_s'])} | "
              f"{cell(r['onnxruntime_s'])} | {cell(r['onnxruntime_with_arrays_s'])} | "
              f"{r['model_predict_s'] / r['onnxruntime_s']:,.1f}x | "
              f"{r['model_predict_fp32_s'] / r['onnxruntime_s']:,.1f}x | "
              f"{r['max_abs_difference']:.2g} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"precision": precision, "results": rows}, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
