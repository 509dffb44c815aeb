"""Speed: training and prediction against the hardware limit and against other systems, in one run on one machine.

    python benchmarks/speed.py                                  # everything; ~10 minutes on 2 cores
    python benchmarks/speed.py --keras-python ~/kerasenv/bin/python --baseline-epochs 50 --json speed.json
    python benchmarks/speed.py --only hardware,classic          # sections: hardware, classic, default, predict

Sections (each prints a markdown table; --json writes every number):

1. hardware: float32 (and bfloat16) matmul GFLOP/s at the shapes the models use: the ceiling.
2. classic:  the 2017 recipe on hr.csv (one-hot, 70/30 split, Dense 64-64, batch 32, Adam, no early stopping):
             neuraltab (1000 epochs, CLI) vs a Keras 3 port and a plain PyTorch DataLoader loop. The baselines run
             --baseline-epochs epochs and are extrapolated to 1000 (their per-epoch time is flat after the first).
             With a Keras python, --paired-rounds rounds (default 5) then run neuraltab and Keras back to back,
             order alternating, for a ratio the machine's drift over minutes cannot skew: the median round's.
3. default:  `neuraltab train hr.csv --target left`: wall time, training throughput, FLOPs → lower bound.
4. predict:  a 1,000,000-row CSV (hr.csv resampled) → predictions CSV with the CLI, the time split into
             read / transform / forward / write, vs LightGBM's default model on the same file; peak RSS of each.

Every system runs in its own subprocess; peak RSS is that process's own maximum resident set size.
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
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hr.csv"
CLASSIC = ["--model", "mlp", "--layers", "64,64", "--activation", "relu", "--optimizer", "adam", "--batch-size", "32",
           "--no-early-stopping", "--scaling", "none"]
SECTIONS = ("hardware", "classic", "default", "predict")


# --- helpers -------------------------------------------------------------------------------------------------------
def measured(command: list[str], **kwargs: Any) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command → (result, wall seconds, peak RSS in MB of that process alone, from os.wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def pump(stream, sink):
        for line in stream:
            sink.append(line)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks)),
               threading.Thread(target=pump, args=(proc.stderr, err_chunks))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = subprocess.CompletedProcess(command, proc.returncode, "".join(out_chunks), "".join(err_chunks))
    return result, wall, usage.ru_maxrss / 1024


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in output:\n{text[-2000:]}")


def neuraltab_cmd() -> list[str]:
    script = Path(sys.executable).with_name("neuraltab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "neuraltab.cli"]


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "--:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(_fmt(v) for v in row) + " |")
    sys.stdout.flush()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "–"
        return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


# --- 1. hardware ---------------------------------------------------------------------------------------------------
def matmul_gflops(m: int, k: int, n: int, *, dtype: str = "float32", threads: int | None = None,
                  seconds: float = 0.4, device: str | None = None) -> float:
    """Best-of-3 GFLOP/s of torch.mm at [m, k] @ [k, n] (on the GPU when ``device="cuda"``)."""
    import torch

    device = device or "cpu"
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a = torch.randn(m, k, device=device).to(getattr(torch, dtype))
        b = torch.randn(k, n, device=device).to(getattr(torch, dtype))
        out = torch.empty(m, n, dtype=a.dtype, device=device)
        flop = 2.0 * m * k * n
        for _ in range(5):
            torch.mm(a, b, out=out)
        reps = max(5, int(seconds * (50e12 if device != "cpu" else 50e9) / flop))
        best = 0.0
        for _ in range(3):
            sync()
            t = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b, out=out)
            sync()
            best = max(best, flop * reps / (time.perf_counter() - t) / 1e9)
        return best
    finally:
        torch.set_num_threads(previous)


def hardware(n_features: int, results: dict[str, Any]) -> None:
    import torch

    from neuraltab.system import available_cores

    cores = available_cores()
    shapes = {
        "classic fwd layer 2 [32,64]x[64,64]": (32, 64, 64),
        "classic fwd layer 1 [32,d]x[d,64]": (32, n_features, 64),
        "classic grad [64,32]x[32,64]": (64, 32, 64),
        "default block [2048,128]x[128,128]": (2048, 128, 128),
        "predict block [65536,128]x[128,128]": (65536, 128, 128),
        "square [2048,2048]x[2048,2048]": (2048, 2048, 2048),
    }
    rows, out = [], {}
    for name, (m, k, n) in shapes.items():
        row = {"shape": name}
        for threads in sorted({1, cores}):
            row[f"fp32_{threads}t"] = matmul_gflops(m, k, n, threads=threads)
        row["bf16"] = matmul_gflops(m, k, n, dtype="bfloat16", threads=cores) if m >= 2048 else float("nan")
        out[name] = row
        rows.append([name, *[row[f"fp32_{t}t"] for t in sorted({1, cores})], row["bf16"]])
    results["hardware"] = {"cores": cores, "torch": torch.__version__, "gflops": out}
    table("Matmul ceiling, GFLOP/s (torch.mm, best of 3)",
          ["shape", *[f"fp32 {t} thread(s)" for t in sorted({1, cores})], f"bf16 {cores} thread(s)"], rows)


# --- 2. classic recipe ---------------------------------------------------------------------------------------------
def classic_flops(n_features: int, n_classes: int, n_train: int, epochs: int) -> float:
    widths = [n_features, 64, 64, n_classes]
    per_sample = sum(6 * a * b for a, b in zip(widths, widths[1:]))  # forward 2, backward 4 FLOP per weight
    return float(per_sample) * n_train * epochs


def classic(args: argparse.Namespace, tmp: Path, results: dict[str, Any]) -> None:
    sys.path.insert(0, str(HERE / "baselines"))
    from classic_data import load

    x_train, _, y_train, _ = load(str(args.data), args.target)
    n_train, n_features, n_classes = len(x_train), x_train.shape[1], int(y_train.max()) + 1
    rows = []
    model = tmp / "classic.ntab"
    res, wall, rss = measured([*neuraltab_cmd(), "train", str(args.data), "--target", args.target, *CLASSIC,
                               "--epochs", str(args.classic_epochs), "--json", "-q", "--force", "-o", str(model)])
    if res.returncode:
        raise SystemExit(f"neuraltab classic failed:\n{res.stderr}")
    j = json.loads(res.stdout)
    ours = {"system": "neuraltab (dense step)", "epochs": args.classic_epochs,
            "s_per_epoch": j["train_seconds"] / args.classic_epochs, "train_s": j["train_seconds"], "wall_s": wall,
            "accuracy": j["metrics"]["test"]["accuracy"], "peak_rss_mb": rss, "extrapolated": False}
    rows.append(ours)
    baselines = [("torch", [sys.executable, str(HERE / "baselines" / "torch_classic.py")])]
    if args.keras_python:
        baselines.insert(0, ("keras", [args.keras_python, str(HERE / "baselines" / "keras_classic.py")]))
    for name, command in baselines:
        res, wall, rss = measured([*command, str(args.data), args.target, str(args.baseline_epochs)])
        if res.returncode:
            print(f"{name} baseline failed (skipped):\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        b = last_json(res.stdout)
        b.update(peak_rss_mb=rss, extrapolated=args.baseline_epochs < args.classic_epochs,
                 train_s_1000=b["first_epoch_s"] + b["s_per_epoch"] * (args.classic_epochs - 1))
        rows.append(b)
    flops = classic_flops(n_features, n_classes, n_train, args.classic_epochs)
    measured_row = results.get("hardware", {}).get("gflops", {}).get("classic fwd layer 2 [32,64]x[64,64]")
    if measured_row:  # the best float32 rate at the recipe's main shape, over thread counts
        gflops = max(v for k, v in measured_row.items() if k.startswith("fp32_"))
    else:
        gflops = max(matmul_gflops(32, 64, 64, threads=1), matmul_gflops(32, 64, 64))
    bound = flops / (gflops * 1e9)
    results["classic"] = {"rows": rows, "flops": flops, "gflops_ceiling": gflops, "lower_bound_s": bound,
                          "n_train": n_train, "n_features": n_features}
    keras = next((r for r in rows if r["system"].startswith("Keras")), None)
    table(f"Classic recipe on {args.data.name}: {n_train:,} training rows, {n_features} inputs, "
          f"{args.classic_epochs} epochs ({flops / 1e9:,.0f} GFLOP; at {gflops:,.0f} GFLOP/s ≥ {bound:.1f} s)",
          ["system", "epochs run", "s/epoch (median)", f"{args.classic_epochs} epochs, s", "× lower bound",
           "Keras s/epoch ÷ this", "test accuracy", "peak RSS MB"],
          [[r["system"], r["epochs"], r["s_per_epoch"],
            r.get("train_s_1000", r["train_s"]), r.get("train_s_1000", r["train_s"]) / bound,
            keras["s_per_epoch"] / r["s_per_epoch"] if keras else float("nan"),
            r["accuracy"], r["peak_rss_mb"]] for r in rows])
    if any(r.get("extrapolated") for r in rows):
        print(f"\nBaselines ran {args.baseline_epochs} epochs; their {args.classic_epochs}-epoch time is the first epoch "
              f"plus the median epoch × {args.classic_epochs - 1}, and their accuracy is after {args.baseline_epochs} "
              "epochs.")
    if args.keras_python and args.paired_rounds:
        results["classic"]["paired"] = paired_classic(args, tmp)


def paired_classic(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """neuraltab's and Keras' s/epoch measured back to back, a few times, in alternating order.

    The runs above are minutes apart, and a shared machine's speed drifts over minutes, so their
    ratio mixes the two systems with the machine's mood. Here each round runs both within seconds of each other
    (neuraltab ``--paired-epochs`` epochs, Keras a tenth as many: its epochs are far longer), and the verdict is the
    median of the rounds' ratios.
    """
    rounds = []
    keras_epochs = max(args.paired_epochs // 10, 4)
    for r in range(args.paired_rounds):
        times: dict[str, float] = {}
        for name in (("neuraltab", "keras") if r % 2 == 0 else ("keras", "neuraltab")):
            if name == "neuraltab":
                res, _, _ = measured([*neuraltab_cmd(), "train", str(args.data), "--target", args.target, *CLASSIC,
                                      "--epochs", str(args.paired_epochs), "--json", "-q", "--force",
                                      "-o", str(tmp / "paired.ntab")])
                if res.returncode:
                    raise SystemExit(f"neuraltab classic failed:\n{res.stderr}")
                times[name] = json.loads(res.stdout)["train_seconds"] / args.paired_epochs
            else:
                res, _, _ = measured([args.keras_python, str(HERE / "baselines" / "keras_classic.py"), str(args.data),
                                      args.target, str(keras_epochs)])
                if res.returncode:
                    print(f"keras baseline failed (no paired rounds):\n{res.stderr[-2000:]}", file=sys.stderr)
                    return {}
                times[name] = last_json(res.stdout)["s_per_epoch"]
        rounds.append({"round": r + 1, "neuraltab_s_per_epoch": times["neuraltab"],
                       "keras_s_per_epoch": times["keras"], "ratio": times["keras"] / times["neuraltab"]})
    median = statistics.median(r["ratio"] for r in rounds)
    table(f"Classic recipe, paired rounds: neuraltab {args.paired_epochs} epochs (mean s/epoch) and Keras "
          f"{keras_epochs} epochs (median s/epoch after the first) back to back, order alternating",
          ["round", "neuraltab s/epoch", "Keras s/epoch", "Keras ÷ neuraltab"],
          [[r["round"], r["neuraltab_s_per_epoch"], r["keras_s_per_epoch"], r["ratio"]] for r in rounds])
    print(f"\nmedian ratio over {len(rounds)} rounds: {median:.1f}x "
          f"(min {min(r['ratio'] for r in rounds):.1f}, max {max(r['ratio'] for r in rounds):.1f})")
    return {"rounds": rounds, "median_ratio": median, "neuraltab_epochs": args.paired_epochs,
            "keras_epochs": keras_epochs}


# --- 3. default model ----------------------------------------------------------------------------------------------
def default_model(args: argparse.Namespace, tmp: Path, results: dict[str, Any]) -> Path:
    model = tmp / "default.ntab"
    res, wall, rss = measured([*neuraltab_cmd(), "train", str(args.data), "--target", args.target, "--json", "-q",
                               "--force", "-o", str(model)])
    if res.returncode:
        raise SystemExit(f"neuraltab default failed:\n{res.stderr}")
    j = json.loads(res.stdout)
    import neuraltab

    loaded = neuraltab.load(model)
    info = loaded.info()
    cfg = info["config"]
    n_valid, n_test = info["metrics"]["valid"]["n"], info["metrics"]["test"]["n"]
    n_train = info["data"]["rows"] - n_valid - n_test
    epochs = j["epochs_run"]
    fwd_per_row = forward_flops_per_row(loaded)
    flops = fwd_per_row * (3 * n_train + n_valid) * epochs  # training steps (fwd+bwd) + one validation pass an epoch
    dtype = "bfloat16" if cfg.get("precision") == "bf16" else "float32"
    rows_k = min(cfg["batch_size"] * cfg["k"], 65536)
    gflops = matmul_gflops(rows_k, cfg["d_block"], cfg["d_block"], dtype=dtype, device=_device())
    bound = flops / (gflops * 1e9)
    out = {"wall_s": wall, "train_s": j["train_seconds"], "epochs": epochs, "best_epoch": j["best_epoch"],
           "accuracy": j["metrics"]["test"]["accuracy"], "samples_per_s": n_train * epochs / j["train_seconds"],
           "flops": flops, "gflops_ceiling": gflops, "precision": cfg.get("precision"), "lower_bound_s": bound,
           "peak_rss_mb": rss, "k": cfg["k"], "d_block": cfg["d_block"], "batch_size": cfg["batch_size"]}
    results["default"] = out
    table(f"Default model on {args.data.name} (k={cfg['k']}, d_block={cfg['d_block']}, batch {cfg['batch_size']}, "
          f"{cfg.get('precision', 'fp32')})",
          ["wall s", "train s", "epochs (best)", "test accuracy", "rows·epochs/s", "GFLOP", f"{dtype} GFLOP/s ceiling",
           "lower bound s", "× lower bound", "peak RSS MB"],
          [[wall, j["train_seconds"], f"{epochs} ({j['best_epoch']})", out["accuracy"], out["samples_per_s"],
            flops / 1e9, gflops, bound, j["train_seconds"] / bound, rss]])
    return model


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def forward_flops_per_row(model: Any) -> float:
    """FLOPs of one row through a loaded model's network, forward pass (its linear layers' shapes; tests/test_training
    checks this count against torch's FLOP counter)."""
    from neuraltab.device import matmul_flops_per_row

    return float(matmul_flops_per_row(model.network))


# --- 4. prediction -------------------------------------------------------------------------------------------------
def predict(args: argparse.Namespace, tmp: Path, model: Path, results: dict[str, Any]) -> None:
    import pandas as pd

    big = tmp / "big.csv"
    source = pd.read_csv(args.data)
    source.sample(args.rows, replace=True, random_state=0).to_csv(big, index=False)
    size_mb = big.stat().st_size / 1e6
    rows = []
    out = tmp / "pred.csv"
    res, wall, rss = measured([*neuraltab_cmd(), "predict", str(model), str(big), "-o", str(out), "--force"])
    if res.returncode:
        raise SystemExit(f"neuraltab predict failed:\n{res.stderr}")
    import neuraltab

    loaded = neuraltab.load(model, device=_device())
    cold, stages, precision = predict_stages(loaded, big, tmp / "pred2.csv")
    fwd_flops = forward_flops_per_row(loaded) * args.rows
    d_block = loaded.config.d_block
    ceiling = matmul_gflops(65536, d_block, d_block, device=_device(),
                            dtype="bfloat16" if precision == "bf16" else "float32")
    around = args.rows / (stages["read_s"] + stages["transform_s"] + stages["write_s"])
    rows.append({"system": "neuraltab predict (CLI)", "seconds": wall, "rows_per_s": args.rows / wall,
                 "peak_rss_mb": rss, **stages, "first_call": cold, "precision": precision,
                 "forward_gflops": fwd_flops / stages["forward_s"] / 1e9,
                 "forward_ceiling_share": fwd_flops / stages["forward_s"] / 1e9 / ceiling,
                 "around_rows_per_s": around})
    res, _, rss = measured([sys.executable, str(HERE / "baselines" / "lightgbm_predict.py"), str(args.data),
                            args.target, str(big), str(tmp / "lgb.csv")])
    if res.returncode:
        print(f"LightGBM baseline failed (skipped):\n{res.stderr[-2000:]}", file=sys.stderr)
    else:
        lgb = last_json(res.stdout)
        lgb["peak_rss_mb"] = rss
        rows.append(lgb)
    results["predict"] = {"rows": args.rows, "csv_mb": size_mb, "systems": rows, "ceiling_gflops": ceiling}
    table(f"Prediction: {args.rows:,}-row CSV ({size_mb:,.0f} MB) → predictions CSV",
          ["system", "seconds", "rows/s", "peak RSS MB"],
          [[r["system"], r["seconds"], r["rows_per_s"], r["peak_rss_mb"]] for r in rows])
    ours = rows[0]
    around_cold = cold["read_s"] + cold["transform_s"] + cold["write_s"]
    table("neuraltab prediction, stage by stage (in-process, Model.predict_file as the CLI calls it; first call of "
          "the process, then a second, warm one)",
          ["stage", "first call s", "warm s", "warm rows/s", "note"],
          [["read CSV", cold["read_s"], ours["read_s"], args.rows / ours["read_s"], ""],
           ["transform", cold["transform_s"], ours["transform_s"], args.rows / ours["transform_s"], ""],
           ["forward", cold["forward_s"], ours["forward_s"], args.rows / ours["forward_s"],
            f"warm: {ours['forward_gflops']:,.0f} GFLOP/s = {ours['forward_ceiling_share']:.0%} of the "
            f"{ceiling:,.0f} GFLOP/s {precision} ceiling"],
           ["write CSV", cold["write_s"], ours["write_s"], args.rows / ours["write_s"], ""],
           ["read + transform + write", around_cold, ours["read_s"] + ours["transform_s"] + ours["write_s"], around,
            f"first call: {args.rows / around_cold:,.0f} rows/s"]])


def predict_stages(model: Any, big: Path, out: Path) -> tuple[dict[str, float], dict[str, float], str]:
    """Stage timings of Model.predict_file (what the CLI runs): the process's first call, a second (warm) call, and
    the precision the forward pass ran in."""
    from neuraltab.cli.runtime import keep_freed_memory
    from neuraltab.device import native_bf16

    keep_freed_memory()  # as the CLI does for its process
    cold: dict[str, float] = {}
    model.predict_file(str(big), out, force=True, timings=cold)
    warm: dict[str, float] = {}
    model.predict_file(str(big), out, force=True, timings=warm)
    return cold, warm, model.config.precision if native_bf16(model.device) else "fp32"


# --- main ----------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--target", default="left")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--keras-python", default=None,
                        help="a python with keras 3 + tensorflow for the Keras baseline [default: skip it]")
    parser.add_argument("--classic-epochs", type=int, default=1000)
    parser.add_argument("--baseline-epochs", type=int, default=50)
    parser.add_argument("--paired-rounds", type=int, default=5,
                        help="rounds of neuraltab and Keras back to back for the classic ratio (0 = none)")
    parser.add_argument("--paired-epochs", type=int, default=100, help="neuraltab's epochs per paired round")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the prediction benchmark's CSV")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: pass --data")
    only = {s.strip() for s in args.only.split(",")}
    results: dict[str, Any] = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                                           "python": platform.python_version()}}
    print(f"machine: {platform.platform()}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if "hardware" in only:
            sys.path.insert(0, str(HERE / "baselines"))
            from classic_data import load

            hardware(load(str(args.data), args.target)[0].shape[1], results)
        if "classic" in only:
            classic(args, tmp_path, results)
        model = None
        if "default" in only or "predict" in only:
            model = default_model(args, tmp_path, results)
        if "predict" in only and model is not None:
            predict(args, tmp_path, model, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
