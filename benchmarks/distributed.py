"""One process against two (gloo, DistributedDataParallel) on this machine, the same global batch (issue 19): seconds
per epoch, the whole run's wall time and the test accuracy, training on hr.csv (or it repeated --times k).

Each run is a fresh process running the same child, which calls `neuraltab.fit`'s two stages; the two-process run
is that child under `python -m torch.distributed.run --standalone --nproc-per-node 2` (rank 0 reports). One process
runs four ways: in memory (the default path, the hand-derived step where it applies), streamed (the same step, block
by block), and streamed through autograd (what the two-process run trains with, so the ratio shows what splitting
the rows buys apart from the step), with its default threads and with one (each of the two ranks gets one of the two
cores: torchrun sets OMP_NUM_THREADS=1). Each child first sets up its process as the ``neuraltab`` command does (how
OpenMP's threads wait on a busy machine). Prints a markdown table and writes JSON.

    python benchmarks/distributed.py                         # hr.csv, 10 epochs, 3 repeats (medians)
    python benchmarks/distributed.py --times 10 --epochs 3 --repeat 1
    python benchmarks/distributed.py --json benchmarks/results/distributed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scale import DEFAULT_DATA, repeated  # noqa: E402  (the same repeated file as scale.py)

CHILD = """
import json, os, sys, time
from neuraltab.cli import runtime
runtime.keep_freed_memory()
runtime.prepare(["neuraltab", "train"])  # as the command does, before torch loads: how OpenMP's threads wait
import neuraltab
from neuraltab.api import fit_prepared, prepare
path, mode, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
started = time.perf_counter()
if mode == "autograd-1":
    mode, options = "autograd", {**options, "threads": 1}
prepared = prepare(path, "left", stream=mode != "memory", **options)
model = fit_prepared(prepared, fast=mode != "autograd")
wall = time.perf_counter() - started
if int(os.environ.get("RANK", "0")) == 0:
    epochs = len(model.history["epochs"])
    print(json.dumps({"wall_s": wall, "epoch_s": model.train_seconds / max(epochs, 1), "epochs": epochs,
                      "batch": model.config.batch_size, "path": model.history["path"],
                      "accuracy": model.metrics["test"]["accuracy"], "test_rows": model.metrics["test"]["n"]}))
"""


def run(path: Path, mode: str, nproc: int, options: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    with tempfile.TemporaryDirectory(prefix="neuraltab-dist-child-") as folder:
        child = Path(folder) / "child.py"  # torchrun runs a script file
        child.write_text(CHILD)
        command = [sys.executable, str(child)] if nproc == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), str(child)]
        proc = subprocess.run([*command, str(path), mode, json.dumps(options)], capture_output=True, text=True,
                              env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()
        return {"error": tail[-1] if tail else f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--times", type=int, default=1, help="hr.csv's rows repeated this many times")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row of the table (medians)")
    parser.add_argument("--options", default="{}", help="more neuraltab.fit options, as JSON")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    options = {"epochs": args.epochs, "early_stopping": False, "seed": 0, **json.loads(args.options)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="neuraltab-dist-") as folder:
        path = args.data if args.times == 1 else repeated(args.data, args.times, Path(folder))
        for label, mode, nproc in (("1 process, in memory", "memory", 1), ("1 process, streamed", "stream", 1),
                                   ("1 process, streamed, autograd", "autograd", 1),
                                   ("1 process, streamed, autograd, 1 thread", "autograd-1", 1),
                                   ("2 processes (gloo), streamed", "stream", 2)):
            results = [run(path, mode, nproc, options) for _ in range(args.repeat)]
            good = [r for r in results if "error" not in r]
            if not good:
                rows.append({"run": label, "error": results[0]["error"]})
                continue
            rows.append({"run": label, "processes": nproc, "path": good[0]["path"], "batch": good[0]["batch"],
                         "epochs": good[0]["epochs"],
                         "epoch_s": statistics.median(r["epoch_s"] for r in good),
                         "wall_s": statistics.median(r["wall_s"] for r in good),
                         "accuracy": statistics.median(r["accuracy"] for r in good),
                         "accuracies": [round(r["accuracy"], 4) for r in good]})
            print(f"# {label}: {rows[-1]}", file=sys.stderr)
    base = next((r for r in rows if r["run"] == "1 process, streamed, autograd" and "error" not in r), None)
    load = os.getloadavg()
    print(f"\n{args.data.name} x{args.times}, {args.epochs} epochs, medians of {args.repeat}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs, {platform.python_version()}")
    print("\n| run | path | global batch | s/epoch | vs 1-process autograd | wall s | test accuracy (each run) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['run']} | error: {r['error']} | | | | | |")
            continue
        ratio = f"{base['epoch_s'] / r['epoch_s']:.2f}x" if base else ""
        print(f"| {r['run']} | {r['path']} | {r['batch']} | {r['epoch_s']:.3f} | {ratio} | {r['wall_s']:.1f} | "
              f"{r['accuracy']:.4f} ({', '.join(str(a) for a in r['accuracies'])}) |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "times": args.times, "epochs": args.epochs,
                                         "load_average": load}, indent=2))


if __name__ == "__main__":
    main()
