"""Load benchmark of ``neuraltab serve`` on loopback, beside a bare FastAPI endpoint calling ``model.predict``.

For one worker process and then two, each system is started on 127.0.0.1, warmed up, and loaded with ``hey``
(a compiled HTTP load generator; ``apt-get install hey``), bounded in requests and in time:

- single-row requests at 1, 8 and 32 concurrent clients: requests/s, p50 and p99 latency, failed requests;
- 1,000-row requests (JSON instances; for neuraltab also Open Inference Protocol columns and CSV): rows/s.

Systems, in the same run and in turn for each worker count:

- ``neuraltab``: ``neuraltab serve MODEL`` (batching off, its default);
- ``neuraltab-batch``: the same with ``--batch-max-rows 256`` (no wait: requests that queue behind a prediction
  are predicted together);
- ``bare``: a FastAPI endpoint that parses the body with pydantic, builds ``pd.DataFrame(instances)`` and returns
  ``model.predict(df)`` (labels only: it does less than the others, which return probabilities too).

With one worker the server runs on CPU 0 and ``hey`` on CPU 1 (``taskset``; ``--no-pin`` turns it off); with two
workers they share both CPUs. Before the load runs, the in-process stage profile says where a request's time goes:
JSON parsing, building the DataFrame, preprocessing, the forward pass, the prediction table and the response.

    python benchmarks/serve_load.py                  # trains hr.ntab from --data if --model is not given
    python benchmarks/serve_load.py --quick          # a dry run: few requests, every step once
    python benchmarks/serve_load.py --model hr.ntab --json benchmarks/results/serve.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "hr.csv"
TARGET = "left"


# ======================================================================================================================
# The bare FastAPI endpoint (what a user would write in ten lines)
# ======================================================================================================================


def bare_app() -> Any:
    """uvicorn factory: ``POST /predict`` → ``model.predict(pd.DataFrame(instances))``; ``GET /health``."""
    import pandas as pd
    import torch
    from fastapi import Body, FastAPI

    import neuraltab

    torch.set_num_threads(int(os.environ["BARE_THREADS"]))
    model = neuraltab.load(os.environ["BARE_MODEL"])
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.post("/predict")
    def predict(payload: dict = Body(...)) -> dict:
        return {"predictions": model.predict(pd.DataFrame(payload["instances"])).tolist()}

    return app


# ======================================================================================================================
# Where the time goes, in process
# ======================================================================================================================


def _times_ms(fn: Any, repeat: int) -> tuple[float, float]:
    """(median, fastest) milliseconds: on a busy machine the fastest run is the step's own cost, the median what it
    took between other processes (a step longer than a scheduler time slice is interrupted more often)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def profile(model_path: Path, rows: list[dict], repeat: int) -> list[dict]:
    """Milliseconds of each step of a request's path (median and fastest), for 1 row and for 1,000 rows."""
    import pandas as pd
    import torch

    import neuraltab
    from neuraltab.serve.codec import InputSpec, Predictions, decode_json, encode_json, instances_columns, predict_payload

    torch.set_num_threads(1)
    model = neuraltab.load(model_path)
    spec = InputSpec.of(model)
    out = []
    for n in (1, 1000):
        body = json.dumps({"instances": rows[:n]}).encode()
        payload = decode_json(body, expected="")
        columns = instances_columns(payload, spec, max_rows=10**6)
        frame = pd.DataFrame(columns, copy=False)
        batch = model.preprocessor.transform(frame)
        table = model.predict_table(frame)
        reps = max(repeat // (10 if n > 1 else 1), 5)
        steps = {
            "JSON parsing": lambda: decode_json(body, expected=""),
            "columns (JSON types checked)": lambda: instances_columns(payload, spec, max_rows=10**6),
            "DataFrame building": lambda: pd.DataFrame(columns, copy=False),
            "preprocessing (Preprocessor.transform)": lambda: model.preprocessor.transform(frame),
            "forward pass": lambda: model._output(batch),  # the network's part of predict_table, timed alone
            "predict_table (preprocessing + forward + table)": lambda: model.predict_table(frame),
            "response (payload + JSON)": lambda: encode_json(predict_payload(Predictions.of(table, spec.task), spec)),
        }
        for step, fn in steps.items():
            median, fastest = _times_ms(fn, reps)
            out.append({"rows": n, "step": step, "ms": median, "fastest_ms": fastest})
    return out


# ======================================================================================================================
# Servers and load
# ======================================================================================================================


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except OSError:
        return 0


class Running:
    """A server process under test, on a free loopback port."""

    def __init__(self, system: str, model: Path, workers: int, pin: bool) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        prefix = ["taskset", "-c", "0"] if pin else []
        threads = "1" if pin else str(max(1, (os.cpu_count() or 1) // workers))
        env = dict(os.environ)
        if system == "bare":
            env.update(BARE_MODEL=str(model), BARE_THREADS=threads)
            command = [sys.executable, "-m", "uvicorn", "serve_load:bare_app", "--factory", "--app-dir", str(HERE),
                       "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
                       "--log-level", "warning"]
            self.ready = f"{self.url}/health"
        else:
            command = [sys.executable, "-m", "neuraltab.cli", "serve", str(model), "--port", str(self.port),
                       "--workers", str(workers), "--threads", threads]
            if system == "neuraltab-batch":
                command += ["--batch-max-rows", "256"]
            self.ready = f"{self.url}/v2/health/ready"
        self.process = subprocess.Popen(prefix + command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)
        deadline = time.monotonic() + 120
        while _get(self.ready) != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{system} did not start: {self.process.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def hey(url: str, body: Path, *, content_type: str, requests: int, clients: int, pin: bool) -> dict:
    """One bounded hey run: requests/s, latency percentiles (ms) and failures, from its per-request CSV."""
    command = ["hey", "-n", str(requests), "-c", str(clients), "-m", "POST", "-T", content_type, "-D", str(body),
               "-t", "20", "-o", "csv", url]
    if pin:
        command = ["taskset", "-c", "1"] + command
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    latencies = sorted(float(r["response-time"]) for r in rows)
    ends = [float(r["offset"]) + float(r["response-time"]) for r in rows]
    expected = requests // clients * clients  # hey gives each client requests // clients and drops the rest
    failed = sum(r["status-code"] != "200" for r in rows) + max(expected - len(rows), 0)
    if not latencies:
        return {"req_s": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "failed": failed}

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3

    return {"req_s": len(rows) / max(ends), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "failed": failed}


def bodies(rows: list[dict], folder: Path, datatypes: dict[str, str], header: list[str]) -> dict[str, Path]:
    def write(name: str, text: str) -> Path:
        path = folder / name
        path.write_text(text)
        return path

    thousand = rows[:1000]
    columns = {c: [r[c] for r in thousand] for c in header}
    infer = {"parameters": {"content_type": "pd"},
             "inputs": [{"name": c, "datatype": datatypes[c], "shape": [len(thousand)], "data": columns[c]}
                        for c in header]}
    csv_text = ",".join(header) + "\n" + "\n".join(",".join(str(r[c]) for c in header) for r in thousand) + "\n"
    return {"one": write("one.json", json.dumps({"instances": rows[:1]})),
            "thousand": write("thousand.json", json.dumps({"instances": thousand})),
            "thousand-infer": write("thousand-infer.json", json.dumps(infer)),
            "thousand-csv": write("thousand.csv", csv_text)}


def load_runs(model: Path, files: dict[str, Path], *, quick: bool, pin: bool, name: str,
              worker_counts: tuple[int, ...] = (1, 2)) -> list[dict]:
    single = {1: 300, 8: 1504, 32: 1504} if not quick else {1: 40, 8: 80, 32: 96}
    big = 60 if not quick else 4
    results = []
    for workers in worker_counts:
        for system in ("neuraltab", "bare", "neuraltab-batch"):
            pinned = pin and workers == 1
            server = Running(system, model, workers, pinned)
            try:
                predict = f"{server.url}/predict"
                hey(predict, files["one"], content_type="application/json", requests=100, clients=4, pin=pinned)
                for clients, n in single.items():
                    r = hey(predict, files["one"], content_type="application/json", requests=n, clients=clients,
                            pin=pinned)
                    results.append({"workers": workers, "system": system, "load": "1 row", "clients": clients, **r})
                cases = [("1000 rows JSON", predict, files["thousand"], "application/json")]
                if system == "neuraltab":
                    cases += [("1000 rows OIP", f"{server.url}/v2/models/{name}/infer", files["thousand-infer"],
                               "application/json"),
                              ("1000 rows CSV", predict, files["thousand-csv"], "text/csv")]
                for load, url, body, content_type in cases:
                    for clients in sorted({1, workers}):
                        r = hey(url, body, content_type=content_type, requests=big, clients=clients, pin=pinned)
                        results.append({"workers": workers, "system": system, "load": load, "clients": clients,
                                        **r, "rows_s": r["req_s"] * 1000})
            finally:
                server.stop()
    return results


# ======================================================================================================================
# Tables
# ======================================================================================================================


def print_profile(steps: list[dict]) -> None:
    print("\nWhere a request's time goes, in process (1 thread; ms, median / fastest)\n")
    print("| step | 1 row | 1,000 rows |\n|---|--:|--:|")
    for step in dict.fromkeys(s["step"] for s in steps):
        one, thousand = (next(s for s in steps if s["step"] == step and s["rows"] == n) for n in (1, 1000))
        print(f"| {step} | {one['ms']:.3f} / {one['fastest_ms']:.3f} | {thousand['ms']:.2f} / "
              f"{thousand['fastest_ms']:.2f} |")


def print_load(results: list[dict]) -> None:
    print("\nSingle-row requests: req/s, p50 / p99 ms (failed)\n")
    print("| workers | system | 1 client | 8 clients | 32 clients |\n|--:|---|---|---|---|")
    worker_counts = sorted({r["workers"] for r in results})
    for workers in worker_counts:
        for system in ("neuraltab", "neuraltab-batch", "bare"):
            cells = []
            for clients in (1, 8, 32):
                r = next((r for r in results if (r["workers"], r["system"], r["load"], r["clients"]) ==
                          (workers, system, "1 row", clients)), None)
                cells.append("-" if r is None else
                             f"{r['req_s']:,.0f} req/s, {r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms ({r['failed']})")
            print(f"| {workers} | {system} | " + " | ".join(cells) + " |")
    print("\n1,000-row requests: rows/s (p50 ms, failed)\n")
    print("| workers | system | body | clients | rows/s | p50 ms | failed |\n|--:|---|---|--:|--:|--:|--:|")
    for r in results:
        if r["load"] != "1 row":
            print(f"| {r['workers']} | {r['system']} | {r['load'][10:]} | {r['clients']} | {r['rows_s']:,.0f} | "
                  f"{r['p50_ms']:.1f} | {r['failed']} |")
    print("\nRatios, neuraltab ÷ bare (single-row req/s; 1,000-row JSON rows/s)\n")
    for workers in worker_counts:
        for load, clients in (("1 row", 1), ("1 row", 8), ("1 row", 32), ("1000 rows JSON", workers)):
            pair = {r["system"]: r["req_s"] for r in results if (r["workers"], r["load"], r["clients"]) ==
                    (workers, load, clients)}
            if pair.get("bare"):
                extra = f", batching {pair['neuraltab-batch'] / pair['bare']:.2f}" if "neuraltab-batch" in pair else ""
                print(f"- {workers} worker(s), {load}, {clients} client(s): {pair['neuraltab'] / pair['bare']:.2f}"
                      f"{extra}")


# ======================================================================================================================


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a model file; default: train one on --data")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="hr.csv (the reference table)")
    parser.add_argument("--quick", action="store_true", help="a dry run: every step, few requests")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server and hey to CPUs")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--workers", default="1,2", help="the worker counts to load, comma-separated (default 1,2)")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("serve_load.py needs the hey load generator: apt-get install hey")
    pin = args.pin and shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2
    import pandas as pd

    import neuraltab

    folder = Path(tempfile.mkdtemp(prefix="neuraltab-serve-bench-"))
    try:
        model_path = args.model
        if model_path is None:
            if not args.data.exists():
                sys.exit(f"{args.data}: not found; pass --data hr.csv or --model MODEL")
            model_path = folder / "hr.ntab"
            extra = {"epochs": 3} if args.quick else {}
            neuraltab.fit(str(args.data), target=TARGET, **extra).save(model_path)
        model = neuraltab.load(model_path)
        header = model.schema.feature_names()
        table = pd.read_csv(args.data) if args.data.exists() else None
        if table is None:
            sys.exit(f"{args.data}: not found; the requests are rows of it")
        rows = json.loads(table[header].head(1000).to_json(orient="records"))
        from neuraltab.serve.codec import InputSpec

        files = bodies(rows, folder, InputSpec.of(model).datatypes, header)
        steps = profile(model_path, rows, repeat=50 if args.quick else 300)
        print_profile(steps)
        results = load_runs(model_path, files, quick=args.quick, pin=pin, name=model_path.stem,
                            worker_counts=tuple(int(w) for w in args.workers.split(",")))
        print_load(results)
        print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; pinned: {pin}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"profile": steps, "load": results, "pinned": pin}, indent=1))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
