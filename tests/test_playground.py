"""The playground's server side: toy sets as the TensorFlow Playground makes them, frames, sessions that train
exactly as ``neuraltab.train`` does, teaching mode's arithmetic, divergence, the WebSocket protocol, uploads, the
model file it saves and the command line. The page itself is tested in test_playground_browser.py."""

from __future__ import annotations

import dataclasses

import json
import threading
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import neuraltab
from neuraltab import api
from neuraltab.cli import app as cli_app
from neuraltab.playground import frames, toy
from neuraltab.playground.scene import GRID, NODE_GRID
from neuraltab.playground.session import Session, TableSource
from neuraltab.train import train

from conftest import HR_CSV, make_table

pytest.importorskip("fastapi")


# ======================================================================================================================
# toy sets
# ======================================================================================================================


@pytest.mark.parametrize("name", toy.DATASETS)
def test_each_toy_set_has_the_playgrounds_size_and_labels_and_is_seeded(name):
    a, b, c = (toy.generate(name, noise=0.2, seed=s) for s in (3, 3, 4))
    assert a.shape == ((1200, 3) if name in toy.REGRESSION else (500, 3))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    if name in toy.CLASSIFICATION:
        assert set(np.unique(a[:, 2])) == {-1.0, 1.0}
    else:
        assert np.abs(a[:, 2]).max() <= 1.5 and a[:, 2].std() > 0.1


def test_circle_noise_flips_labels_and_spiral_noise_moves_points():
    clean, noisy = toy.generate("circle", noise=0.0, seed=1), toy.generate("circle", noise=0.5, seed=1)
    r = np.hypot(clean[:, 0], clean[:, 1])
    assert np.array_equal(clean[:, 2], np.where(r < 2.5, 1.0, -1.0))  # no noise: inside is +1, outside -1
    assert np.allclose(noisy[:, :2], clean[:, :2]) and (noisy[:, 2] != clean[:, 2]).mean() > 0.05
    s0, s1 = toy.generate("spiral", noise=0.0, seed=1), toy.generate("spiral", noise=0.5, seed=1)
    assert np.array_equal(s0[:, 2], s1[:, 2]) and 0.1 < np.abs(s1[:, :2] - s0[:, :2]).max() <= 0.5
    assert np.hypot(s0[:, 0], s0[:, 1]).max() < 5


def test_split_follows_the_ratio_and_features_are_the_playgrounds():
    points = toy.generate("xor", noise=0, seed=2)
    train_rows, test_rows = toy.split(points, train_share=0.3, seed=2)
    assert len(train_rows) == 150 and len(test_rows) == 350 and not set(train_rows) & set(test_rows)
    xy = np.array([[2.0, -3.0]])
    got = toy.features(xy, tuple(toy.FEATURES))
    assert np.allclose(got, [[2, -3, 4, 9, -6, np.sin(2), np.sin(-3)]])


# ======================================================================================================================
# sessions
# ======================================================================================================================


class Tab:
    """A session with the page's side played by the test: frames acknowledged as they come."""

    def __init__(self, **kwargs):
        self.messages: list = []
        self.lock = threading.Lock()
        self.session = Session(self._send, **kwargs)
        self.session.start()

    def _send(self, message):
        with self.lock:
            self.messages.append(message)
        if isinstance(message, bytes):
            self.session.command({"cmd": "ack"})

    def frames(self):
        with self.lock:
            return [frames.unpack(m) for m in self.messages if isinstance(m, bytes)]

    def json(self, kind):
        with self.lock:
            return [m for m in self.messages if isinstance(m, dict) and m["type"] == kind]

    def wait(self, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.01)
        raise AssertionError(f"timed out; last messages: {[m if isinstance(m, dict) else 'frame' for m in self.messages[-5:]]}")

    def last(self):
        return self.frames()[-1]

    def close(self):
        self.session.close()
        assert not self.session.thread.is_alive()


@pytest.fixture
def tab():
    made = []

    def make(**kwargs):
        t = Tab(**kwargs)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_a_frame_has_the_100x100_map_and_every_neurons_map(tab):
    t = tab(settings={"dataset": "spiral", "features": list(toy.FEATURES), "network": [8, 8]})
    t.wait(lambda t: t.frames())
    header, blobs = t.last()
    assert blobs["output"].shape == (GRID * GRID,) and blobs["output"].dtype == np.uint8
    n_nodes = 7 + 8 + 8 + 1
    assert header["nodeCount"] == n_nodes and blobs["nodes"].shape == (n_nodes * NODE_GRID * NODE_GRID,)
    assert [len(w) for w in header["weights"]] == [8, 8, 1] and len(header["weights"][0][0]) == 7
    assert header["epoch"] == 0 and header["step"] == 0 and 0 < header["trainLoss"] < 2
    assert len(np.unique(blobs["output"])) > 10  # an untrained network's map is not flat


def test_session_steps_are_the_training_loops_steps_bit_for_bit(tab):
    """One Step (= one epoch) in a tab gives the weights neuraltab.train gives after one epoch on the same data."""
    t = tab(settings={"dataset": "gauss", "noise": 20})
    t.wait(lambda t: t.frames())
    t.session.command({"cmd": "step"})
    t.wait(lambda t: t.last()[0]["step"] == 25)  # 250 training points, batches of 10
    assert t.last()[0]["epoch"] == 1
    session = t.session
    with session.cond:
        got = {k: v.clone() for k, v in session.network.state_dict().items()}
        prepared = dataclasses.replace(session.scene.prepared, cfg=session._config().replace(epochs=1))
    _, network = prepared.new_network()
    train(network, prepared.tensors("train"), None, task="binary", cfg=prepared.cfg, fast=False)
    for name, value in network.state_dict().items():
        assert torch.equal(value, got[name]), name


def test_lr_changes_live_without_new_weights_and_a_network_change_starts_again(tab):
    t = tab(settings={"dataset": "circle", "speed": 1})
    t.wait(lambda t: t.frames())
    t.session.command({"cmd": "play"})
    t.wait(lambda t: t.last()[0]["step"] >= 5)
    t.session.command({"cmd": "set", "settings": {"lr": 0.1}})
    t.wait(lambda t: t.session.optimizer is not None and t.session.optimizer.param_groups[0]["lr"] == 0.1)
    assert t.last()[0]["step"] >= 5  # the same run went on
    t.session.command({"cmd": "set", "settings": {"network": [3]}})
    t.wait(lambda t: t.json("network")[-1]["layers"][1]["size"] == 3)
    t.session.command({"cmd": "pause"})


def test_a_learning_rate_of_10_pauses_on_divergence_and_says_so(tab):
    t = tab(settings={"dataset": "plane", "lr": 10, "speed": 1})
    t.wait(lambda t: t.frames())
    t.session.command({"cmd": "play"})
    t.wait(lambda t: t.json("notice"), timeout=60)
    assert "diverged" in t.json("notice")[0]["message"] and "learning rate" in t.json("notice")[0]["message"]
    assert not t.session.running and t.last()[0]["diverged"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_teaching_mode_explains_the_chosen_weights_change(tab, optimizer):
    t = tab(settings={"dataset": "circle", "teaching": True, "network": [4, 2]})
    t.wait(lambda t: t.frames())
    if optimizer == "adam":
        t.session.command({"cmd": "set", "settings": {"optimizer": "adam"}})
    t.session.command({"cmd": "teach", "weight": {"layer": 1, "to": 1, "from": 2}})
    for _ in range(3):
        n = len(t.json("teach"))
        t.session.command({"cmd": "step"})
        t.wait(lambda t: len(t.json("teach")) > n)
    r = t.json("teach")[-1]
    steps = [m["step"] for m in t.json("teach")]
    assert steps == sorted(set(steps)) and len(steps) >= 3  # one report per step, each naming its step
    assert r["batch"] == 1 and r["actualChange"] != 0
    assert r["product"] == pytest.approx(-r["lr"] * r["error"] * r["slope"] * r["input"])
    if optimizer == "sgd":
        assert r["exact"] and r["agrees"] and r["sgdChange"] == pytest.approx(r["actualChange"], rel=1e-4, abs=1e-7)
        assert r["product"] == pytest.approx(r["actualChange"], rel=1e-4, abs=1e-7)
    else:  # Adam's step is not the plain-SGD change: both are shown
        assert not r["exact"] and r["sgdChange"] != pytest.approx(r["actualChange"], rel=1e-3)


def test_the_saved_model_file_is_one_that_load_evaluate_and_predict_read(tab, tmp_path):
    t = tab(settings={"dataset": "xor", "features": list(toy.FEATURES)})
    t.wait(lambda t: t.frames())
    t.session.command({"cmd": "step"})
    t.wait(lambda t: t.last()[0]["step"] > 0)
    path = tmp_path / "xor.ntab"
    path.write_bytes(t.session.model_bytes())
    csv = tmp_path / "xor.csv"
    csv.write_bytes(t.session.data_csv())
    model = api.load(path)
    assert model.task == "binary" and model.evaluate(str(csv))["n"] == 500
    assert set(model.predict(str(csv)).unique()) <= {"positive", "negative"}
    assert "--optimizer sgd --momentum 0.0" in t.session.train_command()


def test_closing_a_session_ends_its_thread_even_while_playing(tab):
    t = tab(settings={"dataset": "spiral"})
    t.wait(lambda t: t.frames())
    t.session.command({"cmd": "play"})
    t.wait(lambda t: len(t.frames()) > 3)
    t.close()


def test_a_table_trains_on_a_slice_through_its_two_most_telling_columns(tab):
    df = make_table(400)
    t = tab(table=TableSource(data=df, target="label", name="made.csv"))
    t.wait(lambda t: t.frames())
    data = t.json("data")[0]
    assert data["kind"] == "table" and {data["x"]["name"], data["y"]["name"]} <= {"x1", "x2", "color", "size"}
    assert data["x"]["name"] == data["ranked"][0]
    x1 = df["x1"][t.session.scene.prepared.splits["train"]]
    if data["x"]["name"] == "x1":
        assert data["x"]["min"] == pytest.approx(np.percentile(x1, 5))
    first = t.last()[1]["output"].copy()
    t.session.command({"cmd": "play"})
    t.wait(lambda t: t.last()[0]["epoch"] >= 3)
    t.session.command({"cmd": "pause"})
    header, blobs = t.last()
    assert not np.array_equal(first, blobs["output"])
    assert blobs["pcaInputs"].shape == blobs["pcaHidden"].shape == (2 * len(t.session.scene.test_eval[0]),)
    assert header["testMetric"] > 0.6


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_multiclass_and_regression_tables_train_and_draw(tab, task):
    t = tab(table=TableSource(data=make_table(300, task=task), target="label", name="made.csv"),
            settings={"speed": 5})
    t.wait(lambda t: t.frames())
    assert t.json("data")[0]["task"] == task
    t.session.command({"cmd": "play"})
    t.wait(lambda t: t.last()[0]["step"] >= 10)
    t.session.command({"cmd": "pause"})
    header, blobs = t.last()
    assert ("classes" in blobs and blobs["classes"].max() <= 2) if task == "multiclass" else "classes" not in blobs
    assert np.isfinite(header["testMetric"]) and len(np.unique(blobs["output"])) > 3


def test_a_table_can_train_the_default_tabm(tab):
    t = tab(table=TableSource(data=make_table(300), target="label", name="made.csv"), settings={"model": "default"})
    t.wait(lambda t: t.frames())
    assert t.session.spec["kind"] == "tabm" and t.session.scene.prepared.cfg.scaling == "quantile"
    t.session.command({"cmd": "step"})
    t.wait(lambda t: t.last()[0]["epoch"] >= 1)
    header, blobs = t.last()
    assert header["weights"] is None and blobs["nodes"].size == header["nodeCount"] * NODE_GRID ** 2
    assert "--model default" in header["command"] and "average-weights" not in header["command"]


def test_a_regression_table_on_the_tabm_shows_the_steps_weights_and_says_so_in_the_command(tab):
    t = tab(table=TableSource(data=make_table(300, task="regression"), target="label", name="made.csv"),
            settings={"model": "default"})
    t.wait(lambda t: t.frames())
    # train would average a regression's weights; the page draws the weights the steps move, and its command says so
    assert t.session.scene.task == "regression" and t.session._config().average_weights is False
    assert "--no-average-weights" in t.last()[0]["command"]


def test_hr_table_grid_is_in_the_columns_units(tab):
    if not HR_CSV.exists():
        pytest.skip(f"the shared benchmark data ({HR_CSV}) is not on this machine; it exists only in development and CI")
    t = tab(table=TableSource(data=str(HR_CSV), target="left", name="hr.csv"),
            settings={"x": "satisfaction_level", "y": "average_montly_hours"})
    t.wait(lambda t: t.frames())
    data = t.json("data")[0]
    assert data["x"]["name"] == "satisfaction_level" and 0.05 < data["x"]["min"] < data["x"]["max"] <= 1
    assert 100 < data["y"]["min"] < data["y"]["max"] < 320
    assert data["reference"]["salary"] == "low"


# ======================================================================================================================
# the web app
# ======================================================================================================================


def _client(**kwargs):
    from fastapi.testclient import TestClient

    from neuraltab.playground.app import create_app

    return TestClient(create_app(**kwargs))


def test_websocket_protocol_hello_frames_commands_and_close():
    with _client() as client, client.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"cmd": "hello", "settings": {"dataset": "gauss"}, "play": True}))
        kinds, frame = [], None
        while frame is None or frame[0]["step"] == 0:
            message = ws.receive()
            if message.get("bytes"):
                frame = frames.unpack(message["bytes"])
                ws.send_text(json.dumps({"cmd": "ack"}))
            else:
                kinds.append(json.loads(message["text"])["type"])
        assert kinds[:3] == ["session", "data", "network"] and frame[0]["epoch"] > 0
        sessions = client.app.state.sessions
        (session,) = sessions.values()
    session.thread.join(10)
    assert not session.thread.is_alive() and not sessions  # the tab closed: its thread ended


def test_the_page_and_its_assets_are_served_without_a_cdn():
    with _client() as client:
        page = client.get("/").text
        assert "static/playground.js" in page and "http" not in page.replace("http-equiv", "")
        js = client.get("/static/playground.js").text
        assert "window.playground" in js and "cdn" not in js.lower()
        assert client.get("/static/../app.py").status_code == 404


def test_a_token_guards_every_door():
    with _client(token="s3cret") as client:
        assert client.get("/").status_code == 403
        assert client.get("/?token=s3cret").status_code == 200
        assert client.post("/upload?name=a.csv", content=b"a,b\n1,2\n").status_code == 403


def test_a_malformed_upload_gets_the_clis_one_line_message_and_the_server_keeps_running():
    with _client() as client:
        r = client.post("/upload?name=broken.csv&target=y", content=b"a,b\n1,2,3,4\n\x00\x01\x02")
        assert r.json()["status"] == 400
        message = r.json()["error"]
        assert "\n" not in message and "broken.csv" in message
        r = client.post("/upload?name=good.csv&target=nope", content=b"a,b\n1,2\n3,4\n")
        assert r.json()["status"] == 400 and "'nope' not found" in r.json()["error"]
        r = client.post("/upload?name=good.csv", content=b"a,b\n1,2\n3,4\n")
        assert "error" not in r.json() and r.json()["columns"] == ["a", "b"] and r.json()["target"] == "b"
    with _client(max_upload_bytes=1000) as client:
        r = client.post("/upload?name=big.csv", content=b"a,b\n" + b"1,2\n" * 1000)
        assert r.json()["status"] == 413 and "upload limit of 1,000 bytes" in r.json()["error"]


# ======================================================================================================================
# command line and Python
# ======================================================================================================================


def test_cli_refuses_to_listen_beyond_loopback_without_a_token():
    result = CliRunner().invoke(cli_app, ["playground", "--host", "0.0.0.0", "--no-browser"])
    assert result.exit_code == 2 and "--token" in result.output and "Traceback" not in result.output


def test_cli_says_in_one_line_when_the_table_or_target_is_wrong(tmp_path):
    data = tmp_path / "t.csv"
    make_table(60).to_csv(data, index=False)
    result = CliRunner().invoke(cli_app, ["playground", str(data), "--target", "lable", "--no-browser"])
    assert result.exit_code == 2 and "did you mean 'label'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(cli_app, ["playground", str(data), "--no-browser"])
    assert result.exit_code == 2 and "--target" in result.output


def test_neuraltab_playground_is_callable_and_serves_until_stopped():
    import urllib.request

    from neuraltab.playground.server import start

    assert callable(neuraltab.playground)
    server, thread, url = start(make_table(80), "label")
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.status == 200
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()


def test_ctrl_c_stops_the_command_cleanly():
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "neuraltab.cli", "playground", "--no-browser"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_frames_pack_and_unpack_round_trip():
    blobs = {"a": np.arange(7, dtype=np.uint8), "b": np.linspace(0, 1, 5, dtype=np.float32)}
    header, back = frames.unpack(frames.pack({"x": float("nan"), "y": [1, 2]}, blobs))
    assert header["x"] is None and header["y"] == [1, 2]
    assert np.array_equal(back["a"], blobs["a"]) and np.array_equal(back["b"], blobs["b"])



def test_editing_a_drawn_weight_sets_it(tab):
    t = tab(settings={"dataset": "circle"})
    t.wait(lambda t: t.frames())
    n = len(t.frames())
    t.session.command({"cmd": "edit", "layer": 0, "to": 1, "from": 0, "value": 1.25})
    t.session.command({"cmd": "edit", "layer": 2, "to": 0, "from": 1, "value": -0.5})  # the drawn output line
    t.wait(lambda t: len(t.frames()) > n and abs(t.last()[0]["weights"][2][0][1] + 0.5) < 1e-4)
    assert t.last()[0]["weights"][0][1][0] == 1.25
