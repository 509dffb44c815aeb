"""Paired A/B of the training step between two commits: ``benchmarks/step.py`` of each, run alternately.

Each round runs the base commit's step.py and this checkout's, one after the other (order alternating), so a machine
that drifts slows both alike; the verdict is the median over rounds of the hand-derived step's ms/step, base over
this checkout (> 1: this checkout is faster).

    python benchmarks/ab_step.py --base 36f7f6a                  # the default model (bf16 where native), 6 rounds
    python benchmarks/ab_step.py --base 36f7f6a --classic        # the classic recipe's MLP step
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROW = re.compile(r"^\| (bf16|fp32) \| [\d.]+, [\d.]+ \| ([\d.]+), ([\d.]+) \|", re.MULTILINE)


def step_ms(tree: Path, args: list[str]) -> dict[str, float]:
    """{precision: median hand-derived ms/step} from one run of ``tree``'s step.py on ``tree``'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run([sys.executable, str(tree / "benchmarks" / "step.py"), *args], capture_output=True, text=True,
                         env=env, check=True, timeout=1800).stdout
    return {precision: float(median) for precision, median, _ in ROW.findall(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per path in each step.py run")
    parser.add_argument("--classic", action="store_true", help="the classic recipe's MLP step")
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "hr.csv")
    args = parser.parse_args()
    step_args = ["--epochs", str(args.epochs), "--data", str(args.data.resolve()),
                 *(["--classic"] if args.classic else [])]
    here = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", str(base), args.base], check=True,
                       capture_output=True)
        try:
            ratios: dict[str, list[float]] = {}
            print(f"base {args.base} against this checkout, {args.rounds} rounds of `step.py {' '.join(step_args)}`")
            print("| round | precision | base ms/step | this ms/step | base / this |")
            print("|--:|---|--:|--:|--:|")
            for r in range(args.rounds):
                order = [("base", base), ("this", here)] if r % 2 == 0 else [("this", here), ("base", base)]
                got = {name: step_ms(tree, step_args) for name, tree in order}
                for precision in got["base"]:
                    ratio = got["base"][precision] / got["this"][precision]
                    ratios.setdefault(precision, []).append(ratio)
                    print(f"| {r + 1} | {precision} | {got['base'][precision]:.3f} | {got['this'][precision]:.3f} | "
                          f"{ratio:.3f} |", flush=True)
            for precision, values in ratios.items():
                print(f"{precision}: median base/this {statistics.median(values):.3f} "
                      f"(range {min(values):.3f}-{max(values):.3f})")
        finally:
            subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(base)], capture_output=True)


if __name__ == "__main__":
    main()
