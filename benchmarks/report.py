"""`neuraltab report` (issue 16): how long a report takes beyond training, and how big it is.

Trains each table's model once with the real CLI (not timed), then runs `neuraltab report MODEL DATA` in a fresh
process per run (so the time includes start-up and every import: matplotlib, scikit-learn, LightGBM), and once more
in-process for the time per stage. Prints a markdown table and writes JSON.

    python benchmarks/report.py                                # hr.csv, 3 runs
    python benchmarks/report.py --public letter concrete       # also tables of ../shared/data/public (30 epochs)
    python benchmarks/report.py --runs 5 --json report.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
STAGES = """
import json, sys, time
from neuraltab.report import build_report
timings = {}
started = time.perf_counter()
build_report(sys.argv[1], sys.argv[2], timings=timings)
print(json.dumps({**timings, "total_s": time.perf_counter() - started}))
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "neuraltab.cli", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): neuraltab {' '.join(args)}\n{proc.stderr}")
    return proc


def bench(name: str, data: Path, target: str, extra: list[str], runs: int, workdir: Path) -> dict:
    model = workdir / f"{name}.ntab"
    started = time.perf_counter()
    _cli("train", str(data), "--target", target, "--output", str(model), "--force", "--quiet", *extra)
    train_wall = time.perf_counter() - started
    walls, cpus, digests = [], [], set()
    for run in range(runs):
        out = workdir / f"{name}-{run}.html"
        cpu, started = _children_cpu(), time.perf_counter()
        _cli("report", str(model), str(data), "--output", str(out), "--force", "--quiet")
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu() - cpu)
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    stages = json.loads(subprocess.run([sys.executable, "-c", STAGES, str(model), str(data)], capture_output=True,
                                       text=True, check=True).stdout)
    return {"table": name, "train_wall_s": train_wall, "report_wall_s": walls, "report_cpu_s": cpus,
            "size_bytes": out.stat().st_size, "identical": len(digests) == 1, "stages_s": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "hr.csv")
    parser.add_argument("--target", default="left")
    parser.add_argument("--public", nargs="*", default=[], help="names from ../shared/data/public/manifest.json")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found (the shared benchmark data); pass --data")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(bench(args.data.stem, args.data, args.target, [], args.runs, Path(tmp)))
        if args.public:
            manifest = json.loads((SHARED / "public" / "manifest.json").read_text())
            known = {d["name"]: d for d in manifest["datasets"]}
            for name in args.public:
                d = known[name]
                results.append(bench(name, SHARED / "public" / d["file"], d["target"],
                                     ["--task", d["task"], "--epochs", "30"], args.runs, Path(tmp)))
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}\n")
    print("| table | train (s, not counted) | report wall (s), median [min-max] | report CPU (s), median | size (MB) "
          "| identical runs |")
    print("|---|---|---|---|---|---|")
    for r in results:
        walls = r["report_wall_s"]
        print(f"| {r['table']} | {r['train_wall_s']:.1f} | {statistics.median(walls):.2f} [{min(walls):.2f}-"
              f"{max(walls):.2f}] | {statistics.median(r['report_cpu_s']):.2f} | {r['size_bytes'] / 1e6:.3f} | "
              f"{'yes' if r['identical'] else 'NO'} |")
    print("\nstages (one in-process run, seconds since the start of build_report, imports included):")
    for r in results:
        print(f"- {r['table']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["stages_s"].items()))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
