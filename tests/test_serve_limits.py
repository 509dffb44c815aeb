"""The server under pressure and at its edges, in process: the readiness gate, the API key, body and row limits,
the timeout (504), overload (503), micro-batching, the metrics, and the ``neuraltab serve`` command's own errors.

Slow or blocked predictions come from wrapping a loaded model's ``predict_table``; concurrency from an async client
on the app itself (no socket)."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve,test]'")
import httpx2  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import neuraltab  # noqa: E402
from neuraltab.cli import app as cli_app  # noqa: E402
from neuraltab.errors import ConfigError  # noqa: E402
from neuraltab.serve import Settings, create_app  # noqa: E402
from neuraltab.serve.app import model_names  # noqa: E402
from neuraltab.serve.server import exposure_warning  # noqa: E402
from serving import features, records, trained  # noqa: E402

ROW = {"x1": 0.5, "x2": 3.0, "color": "red", "size": "M"}


def model_that(wait=None, *, skip: int = 0, fail: Exception | None = None, sizes: list | None = None,
               kind: str = "binary"):
    """A test model (binary unless ``kind`` says), whose predictions after the first ``skip`` wait for ``wait`` (an
    Event or seconds), or raise ``fail``; ``sizes`` records how many rows each prediction had."""
    model = neuraltab.load(trained(kind)[0])
    original = model.predict_table
    calls = [0]

    def predict_table(frame, **kwargs):
        calls[0] += 1
        if sizes is not None:
            sizes.append(len(frame))
        if calls[0] > skip:
            if fail is not None:
                raise fail
            if isinstance(wait, threading.Event):
                assert wait.wait(30), "the test never released the prediction"
            elif wait:
                time.sleep(wait)
        return original(frame, **kwargs)

    model.predict_table = predict_table
    return model


def post_all(app, requests: list[tuple[str, dict]], *, release: threading.Event | None = None,
             after: float = 0.3) -> list[httpx2.Response]:
    """Send the requests concurrently to ``app``; ``release`` is set ``after`` seconds, once they have queued."""
    async def go():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            tasks = []
            for path, kwargs in requests:
                tasks.append(asyncio.create_task(client.post(path, **kwargs)))
                await asyncio.sleep(0.02)  # in this order
            if release is not None:
                await asyncio.sleep(after)
                release.set()
            return await asyncio.gather(*tasks)
    return asyncio.run(go())


# ======================================================================================================================
# Readiness
# ======================================================================================================================


def test_ready_answers_503_until_the_warm_up_prediction_has_run():
    release = threading.Event()
    app = create_app({"m": model_that(release)})  # the warm-up is its first prediction: it waits
    with TestClient(app) as client:
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False and ready.headers["retry-after"] == "1"
        assert client.get("/v2/models/m/ready").status_code == 503
        early = client.post("/predict", json={"instances": [ROW]})
        assert early.status_code == 503 and "warming up" in early.json()["error"]
        release.set()
        for _ in range(200):
            if client.get("/v2/health/ready").status_code == 200:
                break
            time.sleep(0.05)
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.post("/predict", json={"instances": [ROW]}).status_code == 200


def test_a_model_whose_warm_up_fails_is_never_ready_and_says_why():
    app = create_app({"m": model_that(fail=RuntimeError("no memory left"))})
    with TestClient(app) as client:
        for _ in range(100):
            answer = client.get("/v2/health/ready").json()
            if answer.get("error", "").startswith("the warm-up prediction failed"):
                break
            time.sleep(0.05)
        assert answer == {"ready": False, "error": "the warm-up prediction failed (RuntimeError: no memory left)"}


# ======================================================================================================================
# API key
# ======================================================================================================================


def test_with_an_api_key_everything_but_the_health_probes_needs_the_bearer_token():
    app = create_app([trained("binary")[0]], settings=Settings(api_key="s3cret"), warm_up=True)
    good = {"Authorization": "Bearer s3cret"}
    with TestClient(app) as client:
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert client.get(path).status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"},
                        {"Authorization": "s3cret"}):
            refused = client.post("/predict", json={"instances": [ROW]}, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in refused.json()["error"]
        for path in ("/v2", "/v2/models/binary", "/metrics", "/openapi.json", "/docs"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=good).status_code == 200, path
        assert client.post("/predict", json={"instances": [ROW]}, headers=good).status_code == 200
        schema = client.get("/openapi.json", headers=good).json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert schema["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
        assert "security" not in schema["paths"]["/v2/health/ready"]["get"]


def test_the_key_is_compared_in_constant_time(monkeypatch):
    import neuraltab.serve.limits as limits

    compared = []
    real = limits.hmac.compare_digest
    monkeypatch.setattr(limits.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    app = create_app([trained("binary")[0]], settings=Settings(api_key="k"), warm_up=True)
    with TestClient(app) as client:
        client.get("/v2", headers={"Authorization": "Bearer guess"})
    assert compared == [(b"guess", b"k")]


def test_binding_beyond_loopback_without_a_key_warns():
    assert exposure_warning("127.0.0.1", Settings()) is None
    assert exposure_warning("localhost", Settings()) is None
    assert exposure_warning("0.0.0.0", Settings(api_key="k")) is None
    assert "without an API key" in exposure_warning("0.0.0.0", Settings())


# ======================================================================================================================
# Limits
# ======================================================================================================================


def test_a_body_over_the_limit_gets_413_with_or_without_a_content_length():
    app = create_app([trained("binary")[0]], settings=Settings(max_body_bytes=1000), warm_up=True)
    big = b'{"instances": [' + b",".join([b'{"x1": 1, "x2": 2, "color": "red", "size": "M"}'] * 40) + b"]}"
    with TestClient(app) as client:
        declared = client.post("/predict", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413 and "--max-body-bytes" in declared.json()["error"]
        streamed = client.post("/predict", content=iter([big[:600], big[600:]]),
                               headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "over" in streamed.json()["error"]
        small = client.post("/predict", json={"instances": [ROW]})
        assert small.status_code == 200


def test_more_rows_than_the_limit_get_413_in_every_format():
    app = create_app([trained("binary")[0]], settings=Settings(max_rows=3), warm_up=True)
    with TestClient(app) as client:
        rows = client.post("/predict", json={"instances": [ROW] * 4})
        assert rows.status_code == 413 and "4 rows" in rows.json()["error"] and "--max-rows" in rows.json()["error"]
        csv = "x1,x2,color,size\n" + "1,2,red,M\n" * 4
        assert client.post("/predict", content=csv, headers={"content-type": "text/csv"}).status_code == 413
        infer = {"inputs": [{"name": "x1", "datatype": "FP64", "shape": [4], "data": [1, 2, 3, 4]}]}
        assert client.post("/v2/models/binary/infer", json=infer).status_code == 413
        assert client.post("/predict", json={"instances": [ROW] * 3}).status_code == 200


def test_a_request_slower_than_the_timeout_gets_504_and_the_server_goes_on():
    app = create_app({"m": model_that(2.0, skip=1)}, settings=Settings(timeout=0.3), warm_up=True)
    with TestClient(app) as client:
        slow = client.post("/predict", json={"instances": [ROW]})
        assert slow.status_code == 504 and "--timeout" in slow.json()["error"]
        assert client.get("/v2/health/live").status_code == 200


def test_overload_gets_503_at_once_while_the_probes_still_answer():
    release = threading.Event()
    app = create_app({"m": model_that(release, skip=1)}, settings=Settings(max_concurrency=2), warm_up=True)
    payload = {"json": {"instances": [ROW]}}

    async def go():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            busy = [asyncio.create_task(client.post("/predict", **payload)) for _ in range(2)]
            await asyncio.sleep(0.3)
            refused = await client.post("/predict", **payload)
            probe = await client.get("/v2/health/ready")
            metrics = (await client.get("/metrics")).text
            release.set()
            return refused, probe, metrics, await asyncio.gather(*busy)

    refused, probe, metrics, answered = asyncio.run(go())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "--max-concurrency" in refused.json()["error"]
    assert probe.status_code == 200
    assert "neuraltab_requests_in_progress 2.0" in metrics
    assert [r.status_code for r in answered] == [200, 200]


def test_settings_are_checked_with_the_option_names():
    with pytest.raises(ConfigError, match="--max-rows must be a number above 0"):
        Settings(max_rows=0)
    with pytest.raises(ConfigError, match="--batch-max-wait-ms must be 0 or more"):
        Settings(batch_max_wait_ms=-1)
    with pytest.raises(ConfigError, match="--api-key is empty"):
        Settings(api_key=" ")


# ======================================================================================================================
# Micro-batching
# ======================================================================================================================


def _rows(n: int, kind: str = "binary") -> list[dict]:
    return records(pd.read_csv(trained(kind)[1]), features(kind))[:n]


@pytest.mark.parametrize("kind", ["binary", "mixed"])
def test_requests_queued_behind_a_prediction_are_predicted_together_each_answered_as_alone(kind):
    release, sizes = threading.Event(), []
    app = create_app({"m": model_that(release, skip=1, sizes=sizes, kind=kind)},
                     settings=Settings(batch_max_rows=64), warm_up=True)
    rows = _rows(6, kind)
    if kind == "mixed":  # columns of one kind, typed differently from one request to the next
        rows[2] = rows[2] | {"flag": None, "code": str(rows[2]["code"]), "num": None}
        rows[3] = rows[3] | {"when": None, "code": float(rows[3]["code"])}
    answers = post_all(app, [("/predict", {"json": {"instances": [row]}}) for row in rows], release=release)
    assert sizes == [1, 1, 5]  # the warm-up, the first request (the model was idle), then the five that queued
    with TestClient(create_app([trained(kind)[0]], warm_up=True)) as alone:
        for row, answer in zip(rows, answers):
            assert answer.status_code == 200
            assert_same_answer(answer.json(), alone.post("/predict", json={"instances": [row]}).json())


def assert_same_answer(batched, alone):
    """The same labels, keys and structure; numbers equal to float32 rounding (one row's matrix product and five's
    may add in another order, by the CPU's BLAS kernels)."""
    if isinstance(alone, dict):
        assert isinstance(batched, dict) and batched.keys() == alone.keys()
        for key in alone:
            assert_same_answer(batched[key], alone[key])
    elif isinstance(alone, list):
        assert isinstance(batched, list) and len(batched) == len(alone)
        for b, a in zip(batched, alone):
            assert_same_answer(b, a)
    elif isinstance(alone, float):
        assert batched == pytest.approx(alone, rel=1e-5, abs=1e-6)
    else:
        assert batched == alone


def test_a_bad_request_in_a_batch_gets_its_own_error_and_the_others_their_predictions():
    release, sizes = threading.Event(), []
    app = create_app({"m": model_that(release, skip=1, sizes=sizes)}, settings=Settings(batch_max_rows=64),
                     warm_up=True)
    bad_csv = {"content": "x1,x2,color,size\nlow,2,red,M\nhigh,2,red,M\n", "headers": {"content-type": "text/csv"}}
    requests = [("/predict", {"json": {"instances": [ROW]}}),
                ("/predict", {"json": {"instances": [ROW]}}),
                ("/predict", {"json": {"instances": [dict(ROW, colour="red")]}}),  # fails when read
                ("/predict", {"json": {"instances": [ROW, ROW]}}),
                ("/predict", bad_csv),  # the model's type check fails it as a file: never batched
                ("/predict", {"json": {"instances": [ROW]}})]
    answers = post_all(app, requests, release=release)
    assert [a.status_code for a in answers] == [200, 200, 400, 200, 400, 200]
    assert "'colour'" in answers[2].json()["error"]
    assert "the CSV body: column 'x1' should hold numbers" in answers[4].json()["error"]
    assert len(answers[3].json()["predictions"]) == 2
    assert sizes == [1, 1, 3, 2, 1]  # warm-up, the first; then 1 + 2 rows together, the CSV alone, the last


def test_batches_stop_at_the_row_limit():
    release, sizes = threading.Event(), []
    app = create_app({"m": model_that(release, skip=1, sizes=sizes)}, settings=Settings(batch_max_rows=3),
                     warm_up=True)
    answers = post_all(app, [("/predict", {"json": {"instances": [ROW]}})] * 5, release=release)
    assert [a.status_code for a in answers] == [200] * 5
    assert sizes == [1, 1, 3, 1]


def test_without_batching_every_request_is_predicted_alone():
    release, sizes = threading.Event(), []
    app = create_app({"m": model_that(release, skip=1, sizes=sizes)}, warm_up=True)
    answers = post_all(app, [("/predict", {"json": {"instances": [ROW]}})] * 4, release=release)
    assert [a.status_code for a in answers] == [200] * 4 and sizes == [1] * 5


def test_a_lone_request_never_waits_for_companions():
    # a minute of waiting allowed, five seconds of timeout: a request that waited would get 504
    app = create_app([trained("binary")[0]], settings=Settings(batch_max_rows=64, batch_max_wait_ms=60_000,
                                                               timeout=5), warm_up=True)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/predict", json={"instances": [ROW]}).status_code == 200


# ======================================================================================================================
# Metrics
# ======================================================================================================================


def test_metrics_count_requests_by_endpoint_and_status_latency_in_flight_and_rows():
    with TestClient(create_app([trained("binary")[0]], warm_up=True)) as client:
        for n in (1, 3, 5):
            client.post("/predict", json={"instances": [ROW] * n})
        client.post("/predict", json={"instances": []})
        client.get("/no/such/path")
        text = client.get("/metrics").text
    assert 'neuraltab_requests_total{endpoint="/predict",status="200"} 3.0' in text
    assert 'neuraltab_requests_total{endpoint="/predict",status="400"} 1.0' in text
    assert 'neuraltab_requests_total{endpoint="unmatched",status="404"} 1.0' in text
    assert 'neuraltab_request_duration_seconds_count{endpoint="/predict"} 4.0' in text
    assert 'neuraltab_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"} 4.0' in text
    assert "neuraltab_requests_in_progress 0.0" in text
    assert 'neuraltab_rows_predicted_total{model="binary"} 9.0' in text  # the warm-up is not counted
    assert 'neuraltab_batch_rows_count{model="binary"} 3.0' in text


# ======================================================================================================================
# The command's own errors: one line, exit status 2
# ======================================================================================================================


def _serve(*args: str, **kwargs):
    return CliRunner().invoke(cli_app, ["serve", *args], **kwargs)


def test_without_the_serve_extra_the_command_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` now fails, as when it is not installed
    result = _serve(str(trained("binary")[0]))
    assert result.exit_code == 2
    assert result.output.strip() == "error: neuraltab serve needs FastAPI: pip install 'neuraltab[serve]'"


def test_a_bad_model_file_a_busy_port_and_a_wrong_name_count_are_one_line_each(tmp_path):
    broken = tmp_path / "broken.ntab"
    broken.write_bytes(b"not a model")
    result = _serve(str(broken))
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "broken.ntab" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(str(trained("binary")[0]), "--port", str(port))
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}: it is already in use" in result.output
    result = _serve(str(trained("binary")[0]), "--name", "a", "--name", "b")
    assert result.exit_code == 2 and "--name was given 2 time(s) for 1 model(s)" in result.output


def test_the_command_warns_before_serving_beyond_loopback_without_a_key(monkeypatch):
    import neuraltab.serve as serving

    calls = []
    monkeypatch.setattr(serving, "run", lambda paths, **kwargs: calls.append((paths, kwargs)), raising=False)
    result = _serve(str(trained("binary")[0]), "--host", "0.0.0.0", "--name", "churn", "--batch-max-rows", "32")
    assert result.exit_code == 0, result.output
    assert "warning: serving on 0.0.0.0 without an API key" in result.output
    (paths, kwargs), = calls
    assert kwargs["names"] == ["churn"] and kwargs["settings"].batch_max_rows == 32 and kwargs["host"] == "0.0.0.0"
    monkeypatch.setenv("NEURALTAB_API_KEY", "k")
    result = _serve(str(trained("binary")[0]), "--host", "0.0.0.0")
    assert "warning" not in result.output and calls[-1][1]["settings"].api_key == "k"


def test_model_names_come_from_the_file_stems_or_name_and_must_fit_in_a_url():
    assert model_names(["a/churn.ntab", "b/spend.ntab"]) == ["churn", "spend"]
    assert model_names(["a/churn.ntab"], ["v2-churn"]) == ["v2-churn"]
    with pytest.raises(ConfigError, match="two models would be served as 'churn'"):
        model_names(["a/churn.ntab", "b/churn.ntab"])
    with pytest.raises(ConfigError, match="cannot be a model name in a URL"):
        model_names(["my model.ntab"])
