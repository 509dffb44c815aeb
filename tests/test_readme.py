"""The README's scikit-learn examples run as written, on a small hr.csv and with tiny network settings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from conftest import make_table
from neuraltab import NeuralTabClassifier

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = "k=1, d_block=8, n_blocks=1, d_embedding=4, n_bins=8, epochs=3, threads=1"


def _section_code(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"### {title}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 2, "the section shows the five-line script and the grid search"
    return "\n".join(blocks)


def test_scikit_learn_examples_run(tmp_path, monkeypatch):
    df = make_table(300, seed=3).rename(columns={"label": "left"})
    df["left"] = (df["left"] == "yes").astype(int)
    df.to_csv(tmp_path / "hr.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code = _section_code("scikit-learn estimators")
    # the only change: a network small enough for a test (the README trains the real default)
    assert code.count("NeuralTabClassifier()") == 2
    namespace: dict = {}
    exec(compile(code.replace("NeuralTabClassifier()", f"NeuralTabClassifier({TINY})"), str(README), "exec"),  # noqa: S102
         namespace)

    assert namespace["clf"].classes_.tolist() == [0, 1]
    assert len(namespace["predictions"]) == len(namespace["X_test"]) == 90
    assert set(np.unique(namespace["predictions"])) <= {0, 1}
    search = namespace["search"]
    assert len(search.cv_results_["params"]) == 4 and np.isfinite(search.cv_results_["mean_test_score"]).all()
    loaded = NeuralTabClassifier.load(tmp_path / "hr-best.ntab")
    np.testing.assert_array_equal(loaded.predict(namespace["X_test"]), search.predict(namespace["X_test"]))
    assert loaded.get_params()["k"] == search.best_params_["k"]


def test_ci_runs_the_readme_test_command_verbatim():
    root = Path(__file__).resolve().parents[1]
    ci_command = (root / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command.endswith("python -m pytest")
    assert ci_command in (root / "README.md").read_text()
