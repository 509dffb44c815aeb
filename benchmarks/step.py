"""Training step time: the hand-derived CPU step against autograd + torch.optim, epoch by epoch in one process.

Both train the same network (the one `neuraltab.fit` builds for the table, with its tensors and resolved options)
on the same shuffles; their epochs alternate, so a noisy machine slows both alike. Prints ms a step (median and
fastest epoch) and the ratio of the medians, for bf16 (where the CPU has it natively) and float32.

    python benchmarks/step.py                                   # hr.csv, 12 epochs each
    python benchmarks/step.py --data PATH --target COL --epochs 20 --option k=16 d_block=256
    python benchmarks/step.py --classic --epochs 30             # the 2017 recipe's MLP: the dense step (float32)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hr.csv"
# the 2017 recipe as fit options: speed.py's CLASSIC command-line flags, spelled as keyword arguments
CLASSIC = {"model": "mlp", "layers": (64, 64), "activation": "relu", "optimizer": "adam", "batch_size": 32,
           "early_stopping": False, "scaling": "none"}


def capture(data: Path, target: str, options: dict) -> dict:
    """The network, tensors and resolved config that `neuraltab.fit` hands to `training.train` (which is skipped)."""
    from neuraltab import api, train as training

    seen: dict = {}

    def instead_of_train(model, train_data, valid_data, *, task, cfg, **_):
        seen.update(model=copy.deepcopy(model), train=train_data, task=task, cfg=cfg, threads=torch.get_num_threads())
        return training.History()

    original, training.train = training.train, instead_of_train  # fit_prepared looks it up when it trains
    try:
        api.fit(str(data), target, **options)
    finally:
        training.train = original
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--target", default="left")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per path (the first two are not counted)")
    parser.add_argument("--option", nargs="*", default=[], metavar="KEY=VALUE", help="fit options, e.g. k=16")
    parser.add_argument("--classic", action="store_true",
                        help="the classic recipe (64-64 ReLU MLP, Adam, batch 32, raw inputs): the dense step")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: pass --data")
    from neuraltab.cli.runtime import keep_freed_memory
    from neuraltab.train.fast.mlp_step import make_dense_stepper
    from neuraltab.train.fast.tabm_step import make_tabm_stepper
    from neuraltab.device import native_bf16
    from neuraltab.train.autograd import autograd_epoch as _autograd_epoch, make_optimizer as _make_optimizer

    keep_freed_memory()  # as the CLI does: freed blocks stay in the heap instead of faulting in again every step

    options = {k: int(v) if v.isdigit() else v for k, v in (o.split("=", 1) for o in args.option)}
    if args.classic:
        options = {**CLASSIC, **options}
    seen = capture(args.data, args.target, options)
    torch.set_num_threads(seen["threads"])
    torch.set_flush_denormal(True)
    x_num, x_cat, y = seen["train"]
    cfg, task = seen["cfg"], seen["task"]
    dense = cfg.model == "mlp"
    precisions = ["bf16", "fp32"] if native_bf16(torch.device("cpu")) and not dense else ["fp32"]
    shape = f"layers {cfg.layers}" if dense else f"k={cfg.k}, d_block={cfg.d_block}"
    print(f"{args.data.name}: {len(y):,} training rows, batch {cfg.batch_size}, {shape}, "
          f"{seen['threads']} thread(s), {args.epochs} epochs each (first two not counted)")
    print("| precision | autograd ms/step (median, fastest) | hand-derived ms/step (median, fastest) | ratio of medians |")
    print("|---|--:|--:|--:|")
    for precision in precisions:
        run_cfg = cfg.replace(precision=precision)
        ref = copy.deepcopy(seen["model"])
        optimizer = _make_optimizer(ref, run_cfg, torch.device("cpu"))
        make = make_dense_stepper if dense else make_tabm_stepper
        stepper = make(copy.deepcopy(seen["model"]), task=task, cfg=run_cfg, x_num=x_num, x_cat=x_cat, y=y)
        if stepper is None:
            raise SystemExit("this model and these options train through autograd only (the hand-derived steps cover "
                             "the default model, and the MLP without dropout or clipping, on a CPU with Adam/AdamW)")
        steps = -(-len(y) // min(run_cfg.batch_size, len(y)))
        times: dict[str, list[float]] = {"autograd": [], "step": []}
        shuffle = torch.Generator().manual_seed(0)
        for epoch in range(args.epochs):
            perm = torch.randperm(len(y), generator=shuffle)
            for name in (("autograd", "step") if epoch % 2 else ("step", "autograd")):
                started = time.perf_counter()
                if name == "step":
                    stepper.run_epoch(perm, lambda: False)
                else:
                    _autograd_epoch(ref, optimizer, (x_num, x_cat, y), perm, batch_size=run_cfg.batch_size, task=task,
                                    grad_clip=run_cfg.grad_clip, should_stop=lambda: False, precision=precision)
                times[name].append((time.perf_counter() - started) / steps * 1e3)
        a, s = times["autograd"][2:], times["step"][2:]
        print(f"| {precision} | {statistics.median(a):.3f}, {min(a):.3f} | {statistics.median(s):.3f}, {min(s):.3f} | "
              f"{statistics.median(a) / statistics.median(s):.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
