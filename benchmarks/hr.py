"""The "Core" reference run: `neuraltab train hr.csv --target left` for seeds 0, 1, 2.

Runs the real CLI in a subprocess per seed (so wall time includes start-up, reading, training, evaluating and
writing the model file), prints a markdown table and writes JSON.

    python benchmarks/hr.py                      # default model, seeds 0 1 2
    python benchmarks/hr.py --classic            # also the 2017 recipe (64-64 MLP, 1000 epochs): minutes
    python benchmarks/hr.py --data PATH --seeds 0 1 2 3 4 --json results.json
    python benchmarks/hr.py --preset fast default best   # each preset (`train --preset`), seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hr.csv"
CLASSIC = ["--model", "mlp", "--layers", "64,64", "--activation", "relu", "--optimizer", "adam", "--epochs", "1000",
           "--batch-size", "32", "--no-early-stopping"]


def run(data: Path, seed: int, extra: list[str], workdir: Path) -> dict:
    out = workdir / f"model-{seed}-{abs(hash(tuple(extra)))}.ntab"
    cmd = [sys.executable, "-m", "neuraltab.cli", "train", str(data), "--target", "left", "--seed", str(seed),
           "--output", str(out), "--force", "--json", "--quiet", *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    result = json.loads(proc.stdout)
    members = result.get("members")  # a bag: its fold models' epochs
    epochs = sum(m["epochs_run"] for m in members) if members else result["epochs_run"]
    best = "/".join(str(m["best_epoch"]) for m in members) if members else result["best_epoch"]
    return {"seed": seed, "wall_s": wall, "train_s": result["train_seconds"], "epochs": epochs,
            "best_epoch": best, "valid_accuracy": result["metrics"].get("valid", {}).get("accuracy"), "accuracy": result["metrics"]["test"]["accuracy"],
            "roc_auc": result["metrics"]["test"]["roc_auc"], "log_loss": result["metrics"]["test"]["log_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classic", action="store_true", help="also run the 2017 recipe once (seed 0)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--preset", nargs="+", default=None, choices=["fast", "default", "best"],
                        help="run `train --preset P` for each (seeds in turn, presets interleaved per seed)")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: pass --data")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            if args.preset is None:
                rows.append({"system": "neuraltab default", **run(args.data, seed, [], Path(tmp))})
                print(f"seed {seed}: {rows[-1]}", file=sys.stderr)
                continue
            for preset in args.preset:  # interleaved, so that a change in the machine's load hits every preset
                rows.append({"system": f"neuraltab --preset {preset}",
                             **run(args.data, seed, ["--preset", preset], Path(tmp))})
                print(f"seed {seed}: {rows[-1]}", file=sys.stderr)
        if args.classic:
            rows.append({"system": "2017 recipe (mlp 64-64, 1000 epochs)", **run(args.data, 0, CLASSIC, Path(tmp))})

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print("| system | seed | test accuracy | ROC AUC | log-loss | epochs (best) | train s | ms/epoch | wall s |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:  # ms/epoch: training seconds over epochs, validation included (the VM's speed drifts by run)
        print(f"| {r['system']} | {r['seed']} | {r['accuracy']:.4f} | {r['roc_auc']:.4f} | {r['log_loss']:.4f} | "
              f"{r['epochs']} ({r['best_epoch']}) | {r['train_s']:.1f} | {1e3 * r['train_s'] / r['epochs']:.0f} | "
              f"{r['wall_s']:.1f} |")
    if args.preset is not None:
        print("\n| preset | mean test accuracy | min | mean out-of-fold / valid accuracy | median train s | "
              "train s / default's (median of per-seed ratios) |")
        print("|---|--:|--:|--:|--:|--:|")
        base = {r["seed"]: r["train_s"] for r in rows if r["system"] == "neuraltab --preset default"}
        for preset in args.preset:
            mine = [r for r in rows if r["system"] == f"neuraltab --preset {preset}"]
            ratio = (f"{statistics.median(r['train_s'] / base[r['seed']] for r in mine):.2f}"
                     if len(base) == len(mine) else "-")
            print(f"| {preset} | {statistics.mean(r['accuracy'] for r in mine):.4f} | "
                  f"{min(r['accuracy'] for r in mine):.4f} | "
                  f"{statistics.mean(r['valid_accuracy'] for r in mine):.4f} | "
                  f"{statistics.median(r['train_s'] for r in mine):.1f} | {ratio} |")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return
    default = [r for r in rows if r["system"] == "neuraltab default"]
    print(f"\ndefault: mean accuracy {statistics.mean(r['accuracy'] for r in default):.4f}, "
          f"min {min(r['accuracy'] for r in default):.4f}; median wall {statistics.median(r['wall_s'] for r in default):.1f}s, "
          f"max {max(r['wall_s'] for r in default):.1f}s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
