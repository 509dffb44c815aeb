"""One playground tab: its settings, its data, its network and the thread that trains it.

Training is ``neuraltab.train.train`` itself, on autograd (the page reads and edits weights between steps), with a
:class:`_Driver` callback that, after every optimizer step, applies the page's commands, renders a frame every
``speed`` steps, and waits while the page is paused. A change of data or network stops the run through
``run.stop`` and the thread starts a new one; closing the tab ends the thread the same way.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any, Callable

import torch

from ..errors import UserError, cli_words, option, render
from ..train import Callback, History, train
from ..train.autograd import ensemble_loss
from . import frames, toy
from .scene import Scene, table_scene, toy_scene
from .teach import Teacher

__all__ = ["Session", "DEFAULTS", "TableSource"]

DEFAULTS: dict[str, Any] = {
    "dataset": "circle", "noise": 0, "ratio": 50, "seed": 1,  # data: noise and ratio in %, as the Playground's sliders
    "lr": 0.03, "optimizer": "sgd", "activation": "tanh", "regularization": "none", "rate": 0.0,
    "dropout": 0.0, "batch": 10, "loss": "squared_error",  # the Playground's training
    "network": [4, 2], "features": ["x1", "x2"], "model": "mlp",
    "speed": 0,  # batches per frame; 0: one epoch per frame, as the Playground
    "teaching": False, "x": None, "y": None,
}
_LIVE = {"lr", "speed"}  # applied between two steps of the same run
_RESTART = {"optimizer", "regularization", "rate", "batch", "loss", "teaching"}  # same weights, a fresh optimizer
_NETWORK = {"activation", "network", "dropout", "model"}  # new weights
_DATA = {"dataset", "noise", "ratio", "seed", "features", "x", "y"}  # new data (or a new slice), then new weights
_TEACHING = {"optimizer": "sgd", "batch": 1, "regularization": "none", "dropout": 0.0}  # plain SGD, one example
MAX_WIDTH = {"toy": 8, "table": 256}
MAX_LAYERS = 6
EPOCHS = 10**9  # a run ends when the page changes something, never by its epoch count


@dataclasses.dataclass
class TableSource:
    """The user's table: the raw frame as read (for the slice's reference row) and how to name it."""

    data: Any  # a path or a DataFrame, as neuraltab.api.prepare takes
    target: str
    name: str


def _check(settings: dict[str, Any], kind: str) -> None:
    """The settings a page may send, checked once (the config checks the training options again)."""
    widths = settings["network"]
    if not (isinstance(widths, list) and len(widths) <= MAX_LAYERS
            and all(isinstance(w, int) and 1 <= w <= MAX_WIDTH[kind] for w in widths)):
        raise UserError(f"the network must have 0 to {MAX_LAYERS} hidden layers of 1 to {MAX_WIDTH[kind]} neurons, "
                        f"got {widths!r}", option="network")
    unknown = [f for f in settings["features"] if f not in toy.FEATURES]
    if unknown:
        raise UserError(f"unknown input feature {unknown[0]!r}: choose from {', '.join(toy.FEATURES)}",
                        option="features")
    for name, lo, hi in (("noise", 0, 80), ("ratio", 10, 90), ("speed", 0, 100_000)):
        if not (isinstance(settings[name], (int, float)) and lo <= settings[name] <= hi):
            raise UserError(f"{name} must be from {lo} to {hi}, got {settings[name]!r}", option=name)


class _Driver(Callback):
    """The training loop's callback that hands each step to the session."""

    def __init__(self, session: "Session") -> None:
        self.session = session

    def on_step_end(self, step: int) -> None:
        self.session._after_step(self.run)


class Session:
    """A tab's training. ``send(message)`` gets each frame (bytes) and each notice (a dict, sent as JSON); it is
    called from the training thread. Commands come in through :meth:`command` from any thread."""

    def __init__(self, send: Callable[[Any], None], *, table: TableSource | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        self.send = send
        self.table = table
        self.settings = dict(DEFAULTS)
        if table is not None:
            self.settings.update(dataset="table", network=[64, 64], activation="relu", optimizer="adam", lr=0.003,
                                 batch=64, loss="cross_entropy", ratio=70, speed=1)
        self.settings.update(settings or {})
        if self.settings["teaching"]:
            self.settings.update(_TEACHING)
        self.cond = threading.Condition()
        self.running = False
        self.closed = False
        self.need: str | None = "data"  # "data" | "network" | "restart" | None: what must be rebuilt
        self.step_budget = 0  # steps still to run before pausing again (Step)
        self.inflight = 0  # frames sent and not yet acknowledged by the page
        self.focus: int | None = None  # the node whose map the page shows enlarged
        self.edits: list[tuple[int, int, int, float]] = []  # weight edits waiting for the next step boundary
        self.message: str | None = None
        self.diverged = False
        self.scene: Scene | None = None
        self.network: torch.nn.Module | None = None
        self.spec: dict[str, Any] | None = None
        self.steps = 0  # optimizer steps on the current weights
        self.since_frame = 0
        self.optimizer: Any = None
        self.teacher = Teacher()
        self.history: list[dict[str, Any]] = []
        self._prepared: tuple[Any, Any, Any] | None = None  # (key, Prepared, raw table) of the user's table
        self.thread = threading.Thread(target=self._work, name="neuraltab-playground", daemon=True)

    # ------------------------------------------------------------------------------------------------ commands
    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """End the training thread (the tab closed); returns once it has."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout=10)

    def command(self, msg: dict[str, Any]) -> None:
        """A command from the page: play, pause, step, reset, ack, focus, edit, set (changes to the settings),
        teach (the weight to explain)."""
        cmd = msg.get("cmd")
        with self.cond:
            if cmd == "ack":
                self.inflight = max(0, self.inflight - 1)
            elif cmd == "play":
                self.running = not self.diverged
                self.step_budget = 0
            elif cmd == "pause":
                self.running = False
            elif cmd == "step":
                self.running = False
                self.step_budget = 1 if self.settings["teaching"] else max(1, self._steps_to_epoch_end())
            elif cmd == "reset":
                self.need = self.need or "network"
                self.diverged, self.message = False, None
            elif cmd == "focus":
                self.focus = msg.get("node")
                self._wake_for_frame()
            elif cmd == "edit":
                self.edits.append((int(msg["layer"]), int(msg["to"]), int(msg["from"]), float(msg["value"])))
                self._wake_for_frame()
            elif cmd == "teach":
                self.teacher.choose(msg.get("weight"))
                self._wake_for_frame()
            elif cmd == "set":
                self._set(msg.get("settings") or {})
            self.cond.notify_all()

    def _set(self, changes: dict[str, Any]) -> None:
        changes = {k: v for k, v in changes.items() if k in DEFAULTS and self.settings.get(k) != v}
        if not changes:
            return
        new = {**self.settings, **changes}
        try:
            _check(new, "table" if self.table is not None else "toy")
        except UserError as exc:
            self._notice(exc, kind="error")
            return
        self.settings = new
        if new["teaching"] and "teaching" in changes:
            self.settings.update(_TEACHING)
            changes.update(_TEACHING)
        if self.table is not None and "model" in changes:  # TabM and the MLP scale numbers differently: re-prepare
            changes["dataset"] = new["dataset"]
        level = ("data" if set(changes) & _DATA else "network" if set(changes) & _NETWORK
                 else "restart" if set(changes) & _RESTART else None)
        order = [None, "restart", "network", "data"]
        if order.index(level) > order.index(self.need):
            self.need = level
        if level in ("data", "network"):
            self.diverged, self.message = False, None
        if "lr" in changes and self.optimizer is not None:
            self.pending_lr = float(new["lr"])

    def _wake_for_frame(self) -> None:
        self.redraw = True

    def _steps_to_epoch_end(self) -> int:
        per = self._steps_per_epoch()
        return per - self.steps % per if per else 1

    def _steps_per_epoch(self) -> int:
        if self.scene is None:
            return 1
        return max(1, math.ceil(len(self.scene.train[0]) / min(self.settings["batch"], len(self.scene.train[0]))))

    # ------------------------------------------------------------------------------------------------ the thread
    def _work(self) -> None:
        torch.set_num_threads(1)  # each tab one core: two tabs on a 2-core machine do not fight over threads
        self.redraw = False
        self.pending_lr: float | None = None
        while not self.closed:
            try:
                self._rebuild()
                self._frame()
                if not self._wait():
                    continue
                self._train()
            except UserError as exc:
                with self.cond:
                    self.running, self.need = False, None
                self._notice(exc, kind="error")
                self._wait()
            except Exception as exc:  # a bug must not kill the tab silently: say so, and wait for a change
                with self.cond:
                    self.running, self.need = False, None
                self.send({"type": "error", "message": f"internal error ({type(exc).__name__}: {exc}); please "
                           "report a bug"})
                self._wait()

    def _rebuild(self) -> None:
        with self.cond:
            need, self.need = self.need, None
        if need == "data" or self.scene is None:
            self.scene = self._scene()
            self.send({"type": "data", **self.scene.describe, "inputs": self.scene.input_names,
                       "settings": self.settings, "command": self.train_command()})
            need = "network"
        if need == "network" or self.network is None:
            prepared = dataclasses.replace(self.scene.prepared, cfg=self._config())
            self.spec, self.network = prepared.new_network()
            self.steps, self.since_frame, self.history = 0, 0, []
            self.diverged, self.message = False, None
            self._send_layout()
        elif need == "restart":
            self._send_layout()

    def _options(self) -> dict[str, Any]:
        """The settings as TrainConfig fields."""
        s = self.settings
        rate = float(s["rate"])
        options = dict(model="mlp" if s["model"] == "mlp" else "default", layers=tuple(s["network"]),
                       activation=s["activation"], optimizer=s["optimizer"], lr=float(s["lr"]),
                       momentum=0.0 if s["optimizer"] == "sgd" else 0.9, batch_size=int(s["batch"]),
                       loss=s["loss"], l1=rate if s["regularization"] == "l1" else 0.0,
                       l2=rate if s["regularization"] == "l2" else 0.0, dropout=float(s["dropout"]),
                       seed=int(s["seed"]), epochs=EPOCHS, early_stopping=False, device="cpu", threads=1,
                       weight_decay=0.0, grad_clip=0.0 if s["model"] == "mlp" else None,
                       average_weights=False)  # the page draws the weights each step moves, not their average
        if self.scene is not None and self.scene.task == "regression" or (
                self.table is None and s["dataset"] in toy.REGRESSION):
            options["loss"] = "squared_error"
        return options

    def _config(self) -> Any:
        from ..config import TrainConfig, resolve

        prepared = self.scene.prepared
        cfg = TrainConfig.from_dict({**self._options(), "task": prepared.cfg.task})
        return resolve(cfg, n_train=len(prepared.batches["train"]), device_type="cpu", task=prepared.schema.task)

    def _scene(self) -> Scene:
        s = self.settings
        options = {k: v for k, v in self._options().items() if k not in ("loss",)}
        if self.table is None:
            return toy_scene(s["dataset"], noise=s["noise"] / 100, train_share=s["ratio"] / 100, seed=int(s["seed"]),
                             feature_names=tuple(f for f in toy.FEATURES if f in s["features"]), options=options)
        from .scene import read_for_playground
        from ..data.read import read_table

        key = (s["ratio"], int(s["seed"]), s["model"])  # what changes the split or the preprocessing
        if self._prepared is None or self._prepared[0] != key:  # a new slice alone reuses them
            prepared = read_for_playground(self.table.data, self.table.target, options, train_share=s["ratio"] / 100)
            # the raw table again for the slice's reference row and the points (splits are its row labels)
            raw = self.table.data if hasattr(self.table.data, "columns") else read_table(
                self.table.data, decimal=prepared.number_format.get("decimal"))
            self._prepared = (key, prepared, raw)
        _, prepared, raw = self._prepared
        return table_scene(prepared, raw, x=s["x"], y=s["y"], source=self.table.name)

    def _wait(self) -> bool:
        """Wait while paused; True when training should go on, False when something must be rebuilt first."""
        with self.cond:
            while not self.closed and self.need is None and not self.running and self.step_budget == 0:
                if self.redraw:
                    self.redraw = False
                    self.cond.release()
                    try:
                        self._apply_edits()
                        self._frame()
                    finally:
                        self.cond.acquire()
                    continue
                self.cond.wait(timeout=0.5)
            return not self.closed and self.need is None

    def _train(self) -> None:
        cfg = self._config()
        scene = self.scene
        self.teacher.attach(self.network, cfg)
        try:
            train(self.network, scene.train, None, task=scene.task, cfg=cfg, callbacks=[_Driver(self)], fast=False)
        except UserError as exc:  # the loop's own divergence check at the end of an epoch
            self._diverge(str(exc))
        finally:
            self.teacher.detach()
            self.optimizer = None

    def _after_step(self, run: Any) -> None:
        self.optimizer = run.optimizer
        self.steps += 1
        self.since_frame += 1
        self.teacher.after_step(self.network, run.optimizer, self.settings)
        with self.cond:
            if self.pending_lr is not None:
                for group in run.optimizer.param_groups:
                    group["lr"] = self.pending_lr
                self.pending_lr = None
            if self.step_budget:
                self.step_budget -= 1
            speed = int(self.settings["speed"]) or self._steps_per_epoch()
            due = self.since_frame >= speed or (not self.running and self.step_budget == 0)
        self._apply_edits()
        if self.teacher.report is not None:  # before the frame, so a page that shows step n has step n's report
            self.send({"type": "teach", "step": self.steps, **self.teacher.report})
            self.teacher.report = None
        if due:
            self.since_frame = 0
            self._frame()
        if not self._wait():
            run.stop("playground")
            return
        self.teacher.arm()

    def _apply_edits(self) -> None:
        with self.cond:
            edits, self.edits = self.edits, []
        if not edits or self.network is None:
            return
        layers = _linears(self.network)
        with torch.no_grad():
            for layer, to, frm, value in edits:
                if not (0 <= layer < len(layers) and 0 <= to < layers[layer].weight.shape[0]
                        and 0 <= frm < layers[layer].weight.shape[1]):
                    continue
                w = layers[layer].weight
                if layer == len(layers) - 1 and w.shape[0] == 2:  # the drawn output weight is logit 1's minus 0's
                    w[1, frm] = w[0, frm] + value
                else:
                    w[to, frm] = value

    # ------------------------------------------------------------------------------------------------ frames
    def _frame(self) -> None:
        """Render and send a frame once the page has room for it (at most two unacknowledged)."""
        with self.cond:
            while self.inflight >= 2 and not self.closed and self.need is None:
                self.cond.wait(timeout=0.5)
            if self.closed:
                return
            self.inflight += 1
        scene, network = self.scene, self.network
        if scene is None or network is None:
            return
        losses, test_pass = self._losses()
        picture = frames.render(network, scene, focus=self.focus, test_pass=test_pass)
        if not (all(math.isfinite(v) for v in losses.values()) and picture.finite):
            self._diverge(f"training diverged at epoch {self.epoch():.0f} (the loss became "
                          f"{losses['trainLoss']}); lower {option('lr')} (now {self.settings['lr']:g}) and reset")
        self.history.append({"epoch": round(self.epoch(), 3), **losses})
        header = {"type": "frame", "epoch": self.epoch(), "step": self.steps, **losses,
                  "running": self.running, "message": self.message, "diverged": self.diverged,
                  "focus": self.focus, "command": self.train_command(), **picture.header}
        self.send(frames.pack(header, picture.blobs))

    def epoch(self) -> float:
        return self.steps / self._steps_per_epoch()

    def _losses(self) -> tuple[dict[str, float], Any]:
        """The train and test losses (the loss trained on, without the penalty) and accuracy or R², and the test
        rows' forward pass (output and hidden activations) for the projections."""
        scene, network = self.scene, self.network
        out: dict[str, float] = {}
        test_pass = None
        with torch.no_grad():
            for name, (x_num, x_cat, y) in (("train", scene.train_eval), ("test", scene.test_eval)):
                if len(y) == 0:
                    out[f"{name}Loss"], out[f"{name}Metric"] = float("nan"), float("nan")
                    continue
                if name == "test":
                    test_pass = frames.forward(network, x_num, x_cat)
                    o = test_pass[0]
                else:
                    o = frames.forward(network, x_num, x_cat, hidden=False)[0]
                out[f"{name}Loss"] = float(ensemble_loss(o, y, task=scene.task, loss=self._options()["loss"]))
                if scene.task == "regression":
                    pred = o.mean(1).squeeze(-1)
                    ss = float(((y - y.mean()) ** 2).sum())
                    out[f"{name}Metric"] = 1 - float(((pred - y) ** 2).sum()) / ss if ss > 0 else float("nan")
                else:
                    out[f"{name}Metric"] = float((o.softmax(-1).mean(1).argmax(1) == y).float().mean())
        return {k: (v if math.isfinite(v) or k.endswith("Metric") else float("inf")) for k, v in out.items()}, test_pass

    def _diverge(self, message: str) -> None:
        with self.cond:
            self.running, self.step_budget, self.diverged = False, 0, True
            self.message = render(message, "python").replace("'lr'", "the learning rate")
        self.send({"type": "notice", "level": "error", "message": self.message})

    def _notice(self, exc: UserError, *, kind: str) -> None:
        self.send({"type": kind, "message": exc.render("cli"), "option": exc.option})

    def _send_layout(self) -> None:
        """The drawn network; ``weights``: whether frames carry its weights (a plain MLP's; TabM's are not drawn)."""
        self.send({"type": "network", "layers": frames.layout(self.network, self.scene),
                   "weights": bool(_linears(self.network)), "command": self.train_command()})

    # ------------------------------------------------------------------------------------------------ play to work
    def train_command(self) -> str:
        """The ``neuraltab train`` command that trains this network on this data (a toy set: its CSV, saved from
        the page)."""
        o = self._options()
        data = self.table.name if self.table is not None else f"{self.settings['dataset']}.csv"
        target = self.table.target if self.table is not None else "label"
        parts = [f"neuraltab train {data} {render(option('target', target), 'cli')}"]
        names = ["model", "layers", "activation", "optimizer", "momentum", "lr", "batch_size", "loss", "l1", "l2",
                 "dropout", "seed"]
        if o["model"] != "mlp":
            names = ["model", "optimizer", "lr", "batch_size", "loss", "l1", "l2", "dropout", "seed"]
        for name in names:
            value = o[name]
            if name in ("l1", "l2") and not value:
                continue
            if name == "momentum" and o["optimizer"] != "sgd":
                continue
            value = list(value) if isinstance(value, tuple) else value
            if name == "layers" and not value:
                value = ""
            parts.append(cli_words(option(name, value)))
        parts.append(cli_words(option("epochs", max(1, round(self.epoch())))))
        parts.append(cli_words(option("early_stopping", False)))
        if o["model"] != "mlp" and self.scene is not None and self.scene.task == "regression":
            parts.append(cli_words(option("average_weights", False)))  # train would average a regression's weights
        if self.table is None:
            parts.append(cli_words(option("test_size", round(min(1 - self.settings["ratio"] / 100, 0.85), 2))))
        return " ".join(parts)

    def model_bytes(self) -> bytes:
        """The current network as a model file (the bytes ``neuraltab.api.Model.save`` writes)."""
        with self.cond:
            scene, network, spec = self.scene, self.network, self.spec
        if scene is None or network is None:
            raise UserError("there is no network to save yet")
        prepared = dataclasses.replace(scene.prepared, cfg=self._config())
        history = History(epochs=[{"epoch": i + 1, "train_loss": h["trainLoss"]}
                                  for i, h in enumerate(self.history)], best_epoch=len(self.history),
                          stop_reason="playground", path="autograd", path_reason="trained in the playground")
        clone = _copy_network(network, spec)
        return prepared.model(clone.eval(), spec, history).to_bytes()

    def data_csv(self) -> bytes:
        """The toy set as a CSV file with the chosen features and the label."""
        scene = self.scene
        if scene is None or self.table is not None:
            raise UserError("only a toy data set can be saved as a CSV from here")
        s = self.settings
        points = toy.generate(s["dataset"], noise=s["noise"] / 100, seed=int(s["seed"]))
        names = tuple(f for f in toy.FEATURES if f in s["features"])
        values = toy.features(points[:, :2], names)
        lines = [",".join(names) + ",label"]
        regression = s["dataset"] in toy.REGRESSION
        for row, label in zip(values, points[:, 2]):
            lab = f"{label:.6g}" if regression else ("positive" if label > 0 else "negative")
            lines.append(",".join(f"{v:.6g}" for v in row) + "," + lab)
        return ("\n".join(lines) + "\n").encode()


def _linears(network: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in getattr(network, "net", []) if isinstance(m, torch.nn.Linear)]


def _copy_network(network: torch.nn.Module, spec: dict[str, Any]) -> torch.nn.Module:
    from ..networks import build

    clone = build(spec)
    clone.load_state_dict(network.state_dict())
    if hasattr(network, "num_embeddings") and network.num_embeddings is not None:
        clone.num_embeddings.load_state_dict(network.num_embeddings.state_dict())
    return clone

