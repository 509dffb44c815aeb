"""``neuraltab serve`` end to end: the real command, uvicorn on 127.0.0.1 and a free port, real HTTP.

A short load test (bounded in requests and in time, loopback only) sees no failed request; SIGTERM lets the request
in progress finish and then exits with status 0; two worker processes share the port and their metrics.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve,test]'")
import httpx2  # noqa: E402

from serving import features, records, trained  # noqa: E402

DEADLINE = 60.0  # seconds any wait here may take before the test fails instead of hanging


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``neuraltab serve`` process (``script``: Python run instead of the command, for a slowed-down model)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, script: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = ["serve", *args, "--port", str(self.port)]
        command = [sys.executable, "-c", script, *argv] if script else [sys.executable, "-m", "neuraltab.cli", *argv]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})})
        self.client = httpx2.Client(base_url=self.url, timeout=10)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()
            try:
                if self.client.get("/v2/health/ready").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server was not ready in time")

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.client.close()
        return self.process.returncode, err


@pytest.fixture
def server(request):
    started: list[Server] = []

    def start(*args: str, **kwargs) -> Server:
        s = Server(*args, **kwargs)
        started.append(s)
        s.wait_ready()
        return s

    yield start
    for s in started:
        if s.process.poll() is None:
            s.process.kill()
            s.process.wait()


def rows(n: int) -> list[dict]:
    return records(pd.read_csv(trained("binary")[1]), features("binary"))[:n]


def load(url: str, payloads: list[dict], *, clients: int, headers: dict | None = None) -> list[int]:
    """Send every payload to /predict from ``clients`` threads, each on its own keep-alive connection; the status
    codes (0 for a request that failed without an answer). Bounded: each request 10 s, all of them DEADLINE."""
    local = threading.local()
    deadline = time.monotonic() + DEADLINE

    def send(payload: dict) -> int:
        if time.monotonic() > deadline:
            return 0
        if not hasattr(local, "client"):
            local.client = httpx2.Client(base_url=url, timeout=10, headers=headers)
        try:
            return local.client.post("/predict", json=payload).status_code
        except httpx2.HTTPError:
            return 0

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(send, payloads))


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_short_load_test_on_the_real_server_sees_no_failed_request(server):
    s = server(str(trained("binary")[0]), "--name", "churn", env={"NEURALTAB_API_KEY": "k"})
    key = {"Authorization": "Bearer k"}
    assert s.client.post("/predict", json={"instances": rows(1)}).status_code == 401  # the key from the variable
    payloads = [{"instances": rows(1 if i % 10 else 100)} for i in range(400)]  # single rows, every tenth 100 rows
    statuses = load(s.url, payloads, clients=8, headers=key)
    assert statuses == [200] * len(payloads)
    text = s.client.get("/metrics", headers=key).text
    assert metric(text, 'neuraltab_requests_total{endpoint="/predict",status="200"}') == 400
    assert metric(text, 'neuraltab_rows_predicted_total{model="churn"}') == 360 + 40 * 100
    code, err = s.stop()
    assert code == 0, err
    assert "serving churn (binary) at http://127.0.0.1" in err


SLOW_MODEL = """
import sys, time
import neuraltab.api as api
predict_table = api.Model.predict_table
def slow(self, data, **kwargs):
    if len(data) == 7:  # the test's request: slow enough to be in progress when SIGTERM comes
        time.sleep(2)
    return predict_table(self, data, **kwargs)
api.Model.predict_table = slow
sys.argv = ["neuraltab", *sys.argv[1:]]
from neuraltab.cli import run
run()
"""


def test_sigterm_lets_the_request_in_progress_finish_then_exits_0(server):
    s = server(str(trained("binary")[0]), script=SLOW_MODEL)
    answer: list = []
    thread = threading.Thread(target=lambda: answer.append(httpx2.post(f"{s.url}/predict", json={"instances": rows(7)},
                                                                       timeout=DEADLINE)))
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while metric(s.client.get("/metrics").text, "neuraltab_requests_in_progress") < 1:
        assert time.monotonic() < deadline and thread.is_alive(), "the request never showed as in progress"
        time.sleep(0.05)
    s.process.send_signal(signal.SIGTERM)
    thread.join(DEADLINE)
    # that one SIGTERM must end it: stop() would send a second to a process still exiting, which the default handler
    # (restored once serving ends) answers with -15
    s.process.wait(DEADLINE)
    code, err = s.stop()
    assert answer and answer[0].status_code == 200 and len(answer[0].json()["predictions"]) == 7
    assert code == 0, err
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{s.url}/v2/health/live", timeout=2)


def test_two_workers_share_the_port_and_add_up_their_metrics(server):
    s = server(str(trained("binary")[0]), str(trained("regression")[0]), "--workers", "2", "--threads", "1")
    payloads = [{"instances": rows(1)} for _ in range(120)]
    assert load(s.url, payloads, clients=4) == [200] * len(payloads)
    assert s.client.get("/v2").json()["models"] == ["binary", "regression"]
    text = s.client.get("/metrics").text  # answered by one worker, counting both
    assert metric(text, 'neuraltab_rows_predicted_total{model="binary"}') == 120
    assert metric(text, 'neuraltab_requests_total{endpoint="/predict",status="200"}') == 120
    code, err = s.stop()
    assert code == 0, err
    assert "(2 worker(s), 1 thread(s) each)" in err
    assert not any(Path(p).exists() for p in err.split() if "neuraltab-metrics-" in p)
