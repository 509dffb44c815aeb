"""The README's grid search with GridSearchCV(n_jobs=1) against n_jobs=2: wall time, and the threads each fit used.

Each row fits the same 4-point grid with 3-fold cross-validation (12 fits and a refit) on the same synthetic table,
in a fresh process, so every row pays the same start-up. "threads=all cores" gives every fit all of the machine's
cores whatever n_jobs is: what the estimators did before they took their share from joblib (issue 20), for
comparison. Prints a markdown table and writes JSON.

    python benchmarks/gridsearch.py                       # n_jobs 1 and 2, default threads; then threads=all cores
    python benchmarks/gridsearch.py --rows 4000 --repeats 3 --json benchmarks/results/gridsearch.json
    python benchmarks/gridsearch.py --cases 1:auto 2:auto     # only those rows (n_jobs:threads)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

# one run, in its own process: print the seconds and the threads the fits computed with
_RUN = """
import json, sys, time
import numpy as np, pandas as pd, torch
from sklearn.model_selection import GridSearchCV
from neuraltab import NeuralTabClassifier
rows, n_jobs, threads = int(sys.argv[1]), int(sys.argv[2]), (None if sys.argv[3] == "auto" else int(sys.argv[3]))
device = sys.argv[4]
rng = np.random.default_rng(0)
X = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(8)})
X["city"] = rng.choice(["paris", "lyon", "nice", "lille"], rows)
y = ((X["x0"] + X["x1"] * X["x2"] + (X["city"] == "paris")) > 0.5).astype(int)


class Recording(NeuralTabClassifier):  # the threads torch computed with during fit (in whichever worker ran it)
    def fit(self, X, y):
        super().fit(X, y)
        self.threads_used_ = torch.get_num_threads()
        return self


start = time.perf_counter()
search = GridSearchCV(Recording(epochs=20, threads=threads, device=device), {"lr": [1e-3, 3e-3], "k": [4, 8]}, cv=3,
                      n_jobs=n_jobs)
search.fit(X, y)
print(json.dumps({"seconds": time.perf_counter() - start, "best_score": search.best_score_,
                  "refit_threads": search.best_estimator_.threads_used_}))
"""


def run(rows: int, n_jobs: int, threads: str, device: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _RUN, str(rows), str(n_jobs), threads, device], capture_output=True,
                          text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=1, help="runs per row of the table (the median is shown)")
    parser.add_argument("--device", default="cpu", help="the estimators' device (the CPU threads are the question)")
    parser.add_argument("--cases", nargs="*", help="n_jobs:threads pairs, e.g. 1:auto 2:auto 2:16")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cases = [(1, "auto"), (2, "auto"), (1, str(cores)), (2, str(cores))]
    if args.cases:
        cases = [(int(c.split(":")[0]), c.split(":")[1]) for c in args.cases]
    results = []
    for n_jobs, threads in cases:
        runs = [run(args.rows, n_jobs, threads, args.device) for _ in range(args.repeats)]
        seconds = statistics.median(r["seconds"] for r in runs)
        results.append({"n_jobs": n_jobs, "threads": threads, "seconds": seconds, "runs": runs})
        print(f"n_jobs={n_jobs} threads={threads}: {seconds:.1f} s", file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"\nGridSearchCV, 4 candidates x 3 folds + refit, {args.rows:,} rows, {cores} cores, "
          f"load average {load:.1f} at the end\n" if load is not None else "")
    print("| n_jobs | threads | seconds | vs n_jobs=1 (same threads) |")
    print("|---:|---|---:|---:|")
    for r in results:
        base = next((b for b in results if b["n_jobs"] == 1 and b["threads"] == r["threads"]), r)
        label = "default" if r["threads"] == "auto" else f"{r['threads']} (all cores, as before)"
        print(f"| {r['n_jobs']} | {label} | {r['seconds']:.1f} | {r['seconds'] / base['seconds']:.2f}x |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": platform.platform(), "cores": cores, "rows": args.rows, "load": load,
                       "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
