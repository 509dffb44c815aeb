"""Frames per second of `neuraltab playground`, as a WebSocket client sees them (issue 14).

Starts the playground's server in this process (uvicorn on 127.0.0.1, a free port), connects one WebSocket client,
says hello with a scene's settings and play=1, acknowledges every frame as soon as it has unpacked it (the page
acknowledges after drawing), and counts frames over a measured window after a warm-up. Each frame carries the
100x100 output map and every drawn neuron's map (and, for a table, the two projections).

    python benchmarks/playground.py                       # the three scenes, 10 s each
    python benchmarks/playground.py --seconds 20 --json benchmarks/results/playground.json
    python benchmarks/playground.py --data PATH/hr.csv    # where hr.csv lives elsewhere

Scenes: the toy default (circle, 2 inputs, 4-2 tanh, SGD, one epoch of 25 batches a frame, as the Playground); hr.csv
with a 2x64 ReLU MLP (Adam, batches of 64, one batch a frame); hr.csv with the default TabM (k=8, d_block 128, one
batch a frame). The page's default speeds are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hr.csv"

SCENES = {
    "toy default (circle, 4-2 tanh)": (None, {"dataset": "circle"}),
    "hr.csv, 2x64 MLP": ("hr", {"dataset": "table", "model": "mlp", "network": [64, 64]}),
    "hr.csv, default TabM": ("hr", {"dataset": "table", "model": "default"}),
}


def measure(data: Path | None, settings: dict, seconds: float, warmup: float) -> dict:
    from websockets.sync.client import connect

    from neuraltab.playground import frames
    from neuraltab.playground.server import start

    server, thread, url = start(str(data) if data else None, "left" if data else None)
    try:
        with connect(url.replace("http://", "ws://") + "ws", max_size=2**26) as ws:
            ws.send(json.dumps({"cmd": "hello", "settings": settings, "play": True}))
            t0 = time.perf_counter()
            count, sizes, epochs, started = 0, [], [], None
            latencies = []
            while True:
                message = ws.recv(timeout=120)
                if isinstance(message, str):
                    continue
                header, blobs = frames.unpack(message)
                ws.send('{"cmd":"ack"}')
                now = time.perf_counter()
                if started is None and now - t0 >= warmup and header["step"] > 0:
                    started, count, first_epoch = now, 0, header["epoch"]
                    continue
                if started is not None:
                    count += 1
                    sizes.append(len(message))
                    epochs.append(header["epoch"])
                    if now - started >= seconds:
                        break
            elapsed = time.perf_counter() - started
            # how long a command waits while training: a pause is answered by the frames stopping
            sent = time.perf_counter()
            ws.send('{"cmd":"pause"}')
            while True:
                message = ws.recv(timeout=30)
                if isinstance(message, bytes):
                    header, _ = frames.unpack(message)
                    ws.send('{"cmd":"ack"}')
                    if not header["running"]:
                        latencies.append(time.perf_counter() - sent)
                        break
    finally:
        server.should_exit = True
        thread.join(10)
    return {"frames": count, "seconds": round(elapsed, 2), "fps": round(count / elapsed, 1),
            "median_frame_kb": round(statistics.median(sizes) / 1024, 1),
            "epochs_per_s": round((epochs[-1] - first_epoch) / elapsed, 2),
            "pause_answered_ms": round(latencies[0] * 1000, 1) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="hr.csv")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scene")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results = {}
    for name, (needs, settings) in SCENES.items():
        data = args.data if needs == "hr" else None
        if needs == "hr" and not data.exists():
            print(f"skip {name}: {data} not found", file=sys.stderr)
            continue
        results[name] = measure(data, settings, args.seconds, args.warmup)
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    print(f"\nload average before the last scene ended: {os.getloadavg()[0]:.1f}")
    print("| scene | frames/s | epochs/s | frame KiB | pause answered (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['fps']} | {r['epochs_per_s']} | {r['median_frame_kb']} | {r['pause_answered_ms']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "python": platform.python_version(),
                                         "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
