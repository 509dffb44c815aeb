"""OpenMP's waiting policy is chosen from how busy the machine is, before torch loads, and never over the user's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neuraltab.cli.runtime import busy_cores_elsewhere, choose_wait_policy


def _stat(ticks: dict[str, tuple[int, int]]) -> str:
    """A /proc/stat with the given (busy, idle) ticks per CPU (busy as user time)."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"{cpu} {busy} 0 0 {idle} 0 0 0 0 0 0" for cpu, (busy, idle) in ticks.items()]
    return "\n".join(lines + ["intr 1 2 3", "ctxt 99"]) + "\n"


def _sample(tmp_path, before, after, cpus):
    path = tmp_path / "stat"
    path.write_text(_stat(before))
    return busy_cores_elsewhere(0.0, stat_path=str(path), cpus=cpus, meanwhile=lambda: path.write_text(_stat(after)),
                                own_cpu_seconds=lambda: 0.0)


def test_busy_cores_count_only_the_cpus_this_process_may_use(tmp_path):
    before = {"cpu0": (100, 100), "cpu1": (100, 100), "cpu2": (100, 100)}
    after = {"cpu0": (110, 100), "cpu1": (100, 110), "cpu2": (110, 100)}  # cpu0 and cpu2 busy, cpu1 idle
    assert _sample(tmp_path, before, after, {0, 1}) == pytest.approx(1.0)
    assert _sample(tmp_path, before, after, {1}) == pytest.approx(0.0)
    assert _sample(tmp_path, before, after, {0, 1, 2}) == pytest.approx(2.0)
    half = {"cpu0": (105, 105), "cpu1": (100, 110), "cpu2": (100, 100)}
    assert _sample(tmp_path, before, half, {0, 1}) == pytest.approx(0.5)


def test_this_processs_own_cpu_time_meanwhile_is_not_counted_as_others(tmp_path):
    path = tmp_path / "stat"
    before = {"cpu0": (100, 100), "cpu1": (100, 100)}
    path.write_text(_stat(before))
    clock = iter([5.0, 5.3])  # this process used 0.3 s of CPU (30 ticks) while it imported
    after = {"cpu0": (130, 100), "cpu1": (120, 110)}  # 50 busy ticks of 60: 30 ours, 20 another process's

    def work():
        path.write_text(_stat(after))

    slept = []
    busy = busy_cores_elsewhere(0.0, stat_path=str(path), cpus={0, 1}, meanwhile=work,
                                own_cpu_seconds=lambda: next(clock), sleep=slept.append)
    assert busy == pytest.approx(20 / 60 * 2)
    assert slept == []  # the work took longer than the interval: no extra wait


def test_busy_cores_is_none_where_proc_stat_cannot_be_read(tmp_path):
    ran, slept = [], []
    assert busy_cores_elsewhere(0.1, stat_path=str(tmp_path / "missing"), cpus={0}, meanwhile=lambda: ran.append(1),
                                sleep=slept.append) is None
    assert ran == [1] and slept == []  # the work to overlap still runs; nothing to wait for
    still = {"cpu0": (100, 100)}
    assert _sample(tmp_path, still, still, {0}) is None  # no ticks passed


@pytest.mark.parametrize("busy,environ,modules,expected", [
    (1.0, {}, {}, "PASSIVE"),
    (0.5, {}, {}, "PASSIVE"),
    (0.3, {}, {}, None),  # an idle machine keeps OpenMP's spinning: fastest there
    (None, {}, {}, None),  # no /proc/stat
    (1.0, {"OMP_WAIT_POLICY": "ACTIVE"}, {}, None),  # the user's choice wins
    (1.0, {"GOMP_SPINCOUNT": "10000"}, {}, None),
    (1.0, {}, {"torch": object()}, None),  # too late: OpenMP already started
])
def test_passive_waiting_only_when_others_keep_the_cpu_busy(busy, environ, modules, expected):
    env = dict(environ)
    sampled = []
    imported = []
    result = choose_wait_policy(environ=env, modules=modules, meanwhile=lambda: imported.append(1),
                                sample=lambda meanwhile: sampled.append(1) or meanwhile() or busy)
    assert result == expected and imported == [1]  # the work to overlap with the sample runs once, sampled or not
    assert env.get("OMP_WAIT_POLICY") == (expected or environ.get("OMP_WAIT_POLICY"))
    assert env.keys() - environ.keys() <= {"OMP_WAIT_POLICY"}
    if environ or modules:
        assert not sampled  # no 0.1 s sample when the answer is already known


def test_importing_the_package_does_not_load_torch_and_its_names_still_resolve():
    code = ("import sys, neuraltab; before = 'torch' in sys.modules; "
            "names = [getattr(neuraltab, n) for n in neuraltab.__all__]; "
            "print(before, 'torch' in sys.modules, sorted(set(neuraltab.__all__) - set(dir(neuraltab))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "[]"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import neuraltab

        neuraltab.nope  # noqa: B018


def test_the_cli_waits_passively_beside_a_busy_process_unless_told_otherwise(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    data = tmp_path / "t.csv"
    pd.DataFrame({"a": rng.normal(size=200), "y": rng.integers(0, 2, 200)}).to_csv(data, index=False)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        def train(*env: str) -> str:
            cmd = [sys.executable, "-m", "neuraltab.cli", "train", str(data), "--target", "y", "--epochs", "1",
                   "--output", str(tmp_path / "m.ntab"), "--force"]
            import os

            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **dict(e.split("=") for e in env)})
            assert proc.returncode == 0, proc.stderr
            return proc.stdout + proc.stderr

        assert "threads wait passively" in train()
        assert "threads wait passively" not in train("OMP_WAIT_POLICY=ACTIVE")
    finally:
        busy.kill()
        busy.wait()
