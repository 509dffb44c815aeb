"""Tables bigger than memory (issue 19): peak RSS and rows/s training on hr.csv repeated 1x, 10x, 100x (1,000x with
--times), streamed and in memory.

Each run is a fresh process (`neuraltab.fit` on the file, then its peak RSS from getrusage), so the peak is that
run's own: reading, statistics, training, test metrics. Prints a markdown table and writes JSON.

    python benchmarks/scale.py                                  # 1x 10x 100x, both modes, 1 epoch of a 64-64 MLP
    python benchmarks/scale.py --times 1 10 100 1000 --model default --epochs 1
    python benchmarks/scale.py --model default --options '{"k": 2, "d_block": 32}'   # a cheap step: the data path shows
    python benchmarks/scale.py --json benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hr.csv"

CHILD = """
import json, resource, sys, time
import neuraltab
path, mode, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
started = time.perf_counter()
model = neuraltab.fit(path, "left", stream=mode == "stream", **options)
wall = time.perf_counter() - started
epochs = len(model.history["epochs"])
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "wall_s": wall,
                  "train_s": model.train_seconds, "epochs": epochs, "rows": model.data_fingerprint["rows"],
                  "path": model.history["path"], "accuracy": model.metrics["test"]["accuracy"],
                  "stop_reason": model.history["stop_reason"],
                  "test_rows": model.metrics["test"]["n"]}))
"""


def repeated(data: Path, times: int, folder: Path) -> Path:
    """hr.csv's rows ``times`` times under one header, written once per size."""
    out = folder / f"hr-x{times}.csv"
    if not out.exists():
        header, *rows = data.read_text().splitlines(keepends=True)
        body = "".join(rows)
        with open(out, "w") as fh:
            fh.write(header)
            for _ in range(times):
                fh.write(body)
    return out


def run(path: Path, mode: str, options: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, json.dumps(options)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--times", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--modes", nargs="+", default=["memory", "stream"], choices=["memory", "stream"])
    parser.add_argument("--model", default="mlp", choices=["mlp", "default"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds of training per run: big files' peak RSS without the whole epoch")
    parser.add_argument("--options", type=json.loads, default={}, help='more fit options as JSON, e.g. \'{"k": 2}\'')
    parser.add_argument("--memory-budget", default=None, help="the streamed runs' memory_budget (default: available)")
    parser.add_argument("--folder", type=Path, default=None, help="where the repeated files go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: pass --data")
    options = {"model": args.model, "epochs": args.epochs, "seed": 0, "early_stopping": False}
    if args.model == "mlp":
        options |= {"layers": [64, 64], "batch_size": 1024}
    options |= args.options
    if args.time_limit:
        options["time_limit"] = args.time_limit

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for times in args.times:
            path = repeated(args.data, times, folder)
            for mode in args.modes:
                extra = {"memory_budget": args.memory_budget} if mode == "stream" and args.memory_budget else {}
                started = time.perf_counter()
                result = run(path, mode, options | extra)
                rows.append({"times": times, "mode": mode, "file_mib": path.stat().st_size / 2**20,
                             "process_s": time.perf_counter() - started, **result})
                print(rows[-1], file=sys.stderr)

    print(f"machine: {platform.machine()}, python {platform.python_version()}; options {options}")
    print("| hr.csv x | rows | file MiB | mode | path | peak RSS MiB | train rows/s | wall rows/s | wall s | accuracy |")
    print("|--:|--:|--:|---|---|--:|--:|--:|--:|--:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['times']} | | {r['file_mib']:.0f} | {r['mode']} | failed: {r['error'][:80]} | | | | | |")
            continue
        n_train = 0.7 * r["rows"]  # without early stopping every non-test row trains, in both modes
        cut = r.get("stop_reason") == "time_limit"  # training stopped within its first epoch: no epoch rate
        rate = "cut short" if cut or not r["epochs"] else f"{n_train * r['epochs'] / r['train_s']:,.0f}"
        print(f"| {r['times']} | {r['rows']:,} | {r['file_mib']:.0f} | {r['mode']} | {r['path']} | "
              f"{r['peak_rss_mib']:.0f} | {rate} | {r['rows'] / r['wall_s']:,.0f} | {r['wall_s']:.1f} | "
              f"{r['accuracy']:.4f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
