"""The server's contract through FastAPI's TestClient: every endpoint, predictions identical to ``neuraltab predict``
for classification and regression (and every column kind), and every bad request answered with a 4xx and a JSON
``{"error"}`` that names the column or field and the fix."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve,test]'")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import neuraltab  # noqa: E402
from neuraltab.cli import app as cli_app  # noqa: E402
from neuraltab.serve import create_app  # noqa: E402
from serving import body, features, infer_request, records, trained  # noqa: E402

KINDS = ("binary", "regression", "mixed")


@pytest.fixture(scope="module")
def clients():
    """One client per model kind, and one app serving all three (under their stems) for the multi-model tests."""
    apps = {kind: create_app([trained(kind)[0]], warm_up=True) for kind in KINDS}
    with TestClient(apps["binary"]) as b, TestClient(apps["regression"]) as r, TestClient(apps["mixed"]) as m:
        yield {"binary": b, "regression": r, "mixed": m}


def cli_predictions(kind: str, tmp_path) -> pd.DataFrame:
    model, csv = trained(kind)
    out = tmp_path / f"{kind}-predictions.csv"
    result = CliRunner().invoke(cli_app, ["predict", str(model), str(csv), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out)


def assert_same_predictions(kind: str, payload: dict, reference: pd.DataFrame) -> None:
    """Labels exactly; probabilities (or values) equal to the float32 (float64) the CLI wrote."""
    model = neuraltab.load(trained(kind)[0])
    if model.task == "regression":
        np.testing.assert_array_equal(np.array(payload["predictions"]), reference["prediction"].to_numpy())
        assert "probabilities" not in payload
        return
    assert payload["predictions"] == reference["prediction"].tolist()
    served = np.array([[row[str(c)] for c in model.classes] for row in payload["probabilities"]], dtype=np.float32)
    written = reference[[f"proba_{c}" for c in model.classes]].to_numpy().astype(np.float32)
    np.testing.assert_array_equal(served, written)


# ======================================================================================================================
# Parity with `neuraltab predict`
# ======================================================================================================================


@pytest.mark.parametrize("kind", KINDS)
def test_instances_predict_exactly_what_neuraltab_predict_writes(kind, clients, tmp_path):
    reference = cli_predictions(kind, tmp_path)
    table = pd.read_csv(trained(kind)[1])
    response = clients[kind].post(f"/v2/models/{kind}/predict", json={"instances": records(table, features(kind))})
    assert response.status_code == 200, response.text
    assert_same_predictions(kind, response.json(), reference)


@pytest.mark.parametrize("kind", KINDS)
def test_a_csv_body_predicts_exactly_what_neuraltab_predict_writes(kind, clients, tmp_path):
    reference = cli_predictions(kind, tmp_path)
    csv = trained(kind)[1].read_bytes()  # the training file itself, target column included (ignored)
    response = clients[kind].post("/predict", content=csv, headers={"content-type": "text/csv; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert_same_predictions(kind, response.json(), reference)


@pytest.mark.parametrize("kind", KINDS)
def test_infer_predicts_exactly_what_neuraltab_predict_writes(kind, clients, tmp_path):
    reference = cli_predictions(kind, tmp_path)
    client = clients[kind]
    datatypes = {i["name"]: i["datatype"] for i in client.get(f"/v2/models/{kind}").json()["inputs"]}
    table = pd.read_csv(trained(kind)[1])
    response = client.post(f"/v2/models/{kind}/infer", json=infer_request(table, features(kind), datatypes) | {"id": "7"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["model_name"] == kind and result["id"] == "7"
    outputs = {o["name"]: o for o in result["outputs"]}
    n = len(table)
    if kind == "regression":
        assert list(outputs) == ["value"] and outputs["value"]["shape"] == [n]
        np.testing.assert_array_equal(outputs["value"]["data"], reference["prediction"].to_numpy())
        return
    classes = outputs["probabilities"]["parameters"]["classes"]
    assert outputs["label"]["shape"] == [n] and outputs["probabilities"]["shape"] == [n, len(classes)]
    assert outputs["label"]["data"] == [type(outputs["label"]["data"][0])(v) for v in reference["prediction"]]
    proba = np.array(outputs["probabilities"]["data"], dtype=np.float32).reshape(n, len(classes))
    np.testing.assert_array_equal(proba, reference[[f"proba_{c}" for c in classes]].to_numpy().astype(np.float32))


def test_one_row_at_a_time_gives_the_same_labels_and_probabilities(clients, tmp_path):
    reference = cli_predictions("mixed", tmp_path)
    rows = records(pd.read_csv(trained("mixed")[1]), features("mixed"))[:25]
    answers = [clients["mixed"].post("/predict", json={"instances": [row]}).json() for row in rows]
    assert [a["predictions"][0] for a in answers] == reference["prediction"].tolist()[:25]
    served = np.array([[a["probabilities"][0][k] for k in ("0", "1", "2")] for a in answers])
    np.testing.assert_allclose(served, reference[["proba_0", "proba_1", "proba_2"]].to_numpy()[:25], rtol=1e-6)


def test_infer_takes_columns_of_shape_n_by_1_and_only_the_outputs_asked_for(clients):
    row = records(pd.read_csv(trained("binary")[1]), features("binary"))[0]
    datatypes = {"x1": "FP64", "x2": "FP64", "color": "BYTES", "size": "BYTES"}
    inputs = [{"name": c, "datatype": datatypes[c], "shape": [1, 1], "data": [[row[c]]]} for c in datatypes]
    flat = clients["binary"].post("/v2/models/binary/infer", json={"inputs": [dict(i, shape=[1], data=[row[i["name"]]])
                                                                            for i in inputs]}).json()
    nested = clients["binary"].post("/v2/models/binary/infer", json={"inputs": inputs,
                                                                     "outputs": [{"name": "label"}]}).json()
    assert [o["name"] for o in nested["outputs"]] == ["label"]
    assert nested["outputs"][0] == flat["outputs"][0]
    assert "id" not in nested and nested["parameters"] == {"content_type": "pd"}


# ======================================================================================================================
# Endpoints
# ======================================================================================================================


def test_health_and_server_metadata(clients):
    client = clients["binary"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/binary/ready").json() == {"name": "binary", "ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "neuraltab" and meta["version"] == neuraltab.__version__ and meta["models"] == ["binary"]


def test_model_metadata_lists_each_column_with_its_datatype_and_the_outputs(clients):
    meta = clients["mixed"].get("/v2/models/mixed").json()
    inputs = {i["name"]: (i["datatype"], i["parameters"]["kind"], i["shape"]) for i in meta["inputs"]}
    assert inputs == {"num": ("FP64", "numeric", [-1]), "flag": ("BOOL", "boolean", [-1]),
                      "when": ("BYTES", "datetime", [-1]), "code": ("INT64", "categorical", [-1]),
                      "city": ("BYTES", "categorical", [-1])}
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3],
                                "parameters": {"classes": [0, 1, 2]}}]
    assert meta["parameters"] == {"task": "multiclass", "target": "label", "content_type": "pd"}
    regression = clients["regression"].get("/v2/models/regression").json()
    assert regression["outputs"] == [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    binary = clients["binary"].get("/v2/models/binary").json()
    assert binary["outputs"][0]["datatype"] == "BYTES"  # labels "no" / "yes"


def test_several_models_each_under_its_name_and_predict_serves_the_first(tmp_path):
    paths = {"churn": trained("binary")[0], "spend": trained("regression")[0]}
    with TestClient(create_app(paths, warm_up=True)) as client:
        assert client.get("/v2").json()["models"] == ["churn", "spend"]
        row = records(pd.read_csv(trained("regression")[1]), features("regression"))[0]
        spend = client.post("/v2/models/spend/predict", json={"instances": [row]}).json()
        assert isinstance(spend["predictions"][0], float) and "probabilities" not in spend
        churn = client.post("/predict", json={"instances": [row]}).json()
        assert churn["predictions"][0] in ("no", "yes")
        missing = client.get("/v2/models/chrun")
        assert missing.status_code == 404 and "did you mean 'churn'" in missing.json()["error"]


def test_docs_and_the_openapi_schema_describe_each_model(clients):
    client = clients["mixed"]
    assert client.get("/docs").status_code == 200 and "swagger" in client.get("/docs").text.lower()
    schema = client.get("/openapi.json").json()
    assert {"/v2/models/mixed/infer", "/v2/models/mixed/predict", "/predict", "/metrics"} <= set(schema["paths"])
    predict = schema["paths"]["/v2/models/mixed/predict"]["post"]
    instance = predict["requestBody"]["content"]["application/json"]["schema"]["properties"]["instances"]["items"]
    assert instance["required"] == ["num", "flag", "when", "code", "city"]
    assert instance["properties"]["flag"] == {"type": ["boolean", "null"]}
    example = predict["requestBody"]["content"]["application/json"]["example"]
    assert client.post("/v2/models/mixed/predict", json=example).status_code == 200  # /docs' example works as is
    csv_example = predict["requestBody"]["content"]["text/csv"]["example"]
    assert client.post("/predict", content=csv_example, headers={"content-type": "text/csv"}).status_code == 200
    infer_example = schema["paths"]["/v2/models/mixed/infer"]["post"]["requestBody"]["content"]["application/json"]
    assert client.post("/v2/models/mixed/infer", json=infer_example["example"]).status_code == 200
    assert {"400", "413", "503", "504"} <= set(predict["responses"])


# ======================================================================================================================
# Bad requests: a 4xx and one line naming the problem and the fix
# ======================================================================================================================

ROW = {"x1": 0.5, "x2": 3.0, "color": "red", "size": "M"}
CASES = [  # (path, body bytes, content type, status, words the error must contain)
    ("/predict", b"", "application/json", 400, ["body is empty"]),
    ("/predict", b"   ", "text/csv", 400, ["body is empty", "CSV"]),
    ("/predict", b'{"instances": [', "application/json", 400, ["not valid JSON", "line 1"]),
    ("/predict", b"\xff\xfe{", "application/json", 400, ["not UTF-8"]),
    ("/predict", b"[1, 2]", "application/json", 400, ["JSON list", '"instances"']),
    ("/predict", body({"rows": [ROW]}), "application/json", 400, ["'rows'", '"instances"']),
    ("/predict", body({"instances": ROW}), "application/json", 400, ["JSON object", "list of objects"]),
    ("/predict", body({"instances": []}), "application/json", 400, ["no rows"]),
    ("/predict", body({"instances": [[0.5, 3.0, "red", "M"]]}), "application/json", 400, ["instance 0", "object"]),
    ("/predict", body({"instances": [ROW, {"x1": 1.0, "color": "red", "size": "M"}]}), "application/json", 400,
     ["instance 1", "missing 1 feature column", "'x2'", "null"]),
    ("/predict", body({"instances": [dict(ROW, colour="red")]}), "application/json", 400,
     ["'colour'", "did you mean 'color'", "remove"]),
    ("/predict", body({"instances": [dict(ROW, x1="high")]}), "application/json", 400,
     ["column 'x1'", "should hold numbers", "'high'", "JSON number"]),
    ("/predict", body({"instances": [dict(ROW, x1=True)]}), "application/json", 400, ["should hold numbers"]),
    ("/predict", b'{"instances": [{"x1": 1e400, "x2": 2, "color": "red", "size": "M"}]}', "application/json", 400,
     ["not valid JSON", "infinity"]),
    ("/predict", body({"instances": [dict(ROW, color=["red"])]}), "application/json", 400,
     ["column 'color'", "one value"]),
    ("/predict", b'{"instances": [{"x1": 1, "x2": 2, "color": "\\ud800", "size": "M"}]}', "application/json", 400,
     ["not valid JSON", "surrogate"]),
    ("/predict", b"x1,x2,color\n1,2,red\n", "text/csv", 400, ["the CSV body", "missing 1 feature column", "'size'"]),
    ("/predict", b"x1,x2,color,size,extra\n1,2,red,M,9\n", "text/csv", 400, ["the CSV body", "'extra'", "remove"]),
    ("/predict", b"x1,x2,color,size\n1,2,red,M\n1,2,red,M,9\n", "text/csv", 400,
     ["the CSV body", "line 3", "ragged"]),
    ("/predict", b"x1,x2,color,size\nlow,2,red,M\nhigh,2,red,M\n", "text/csv", 400,
     ["the CSV body", "column 'x1'", "should hold numbers"]),
    ("/v2/models/binary/infer", b"{}", "application/json", 400, ['"inputs"', "one input per column"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x1", "datatype": "FP64", "shape": [1], "data": [1.0]}]}),
     "application/json", 400, ["missing 3 feature column", "'x2'"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x1", "datatype": "BYTES", "shape": [1], "data": ["1"]}]}),
     "application/json", 400, ["numeric column", "FP64"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x1", "datatype": "FP64", "shape": [1], "data": ["a"]}]}),
     "application/json", 400, ["input 'x1' (FP64)", "item 0", "not numbers"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x1", "datatype": "FP64", "shape": [2, 3], "data": [1]}]}),
     "application/json", 400, ["shape", "[n] or [n, 1]"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x1", "datatype": "FP64", "shape": [2], "data": [1.0]}]}),
     "application/json", 400, ["2 rows", "1 values"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x1", "datatype": "FP128", "shape": [1], "data": [1]}]}),
     "application/json", 400, ['"datatype"', "FP64"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}]}),
     "application/json", 400, ["'x'", "does not use"]),
    ("/v2/models/binary/infer", body({"parameters": {"content_type": "np"}, "inputs": [{}]}), "application/json", 400,
     ["content_type", "pd"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x1", "datatype": "FP64", "shape": [1], "data": [1]},
                                                 {"name": "x1", "datatype": "FP64", "shape": [1], "data": [1]}]}),
     "application/json", 400, ["given twice"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": "x1", "datatype": "FP64", "shape": [1], "data": [1]},
                                                 {"name": "x2", "datatype": "FP64", "shape": [2], "data": [1, 2]}]}),
     "application/json", 400, ["input 'x2' has 2 rows", "have 1"]),
    ("/v2/models/binary/infer", body({"inputs": [{"name": c, "datatype": "BYTES" if c in ("color", "size") else "FP64",
                                                  "shape": [1], "data": [v]} for c, v in ROW.items()],
                                      "outputs": [{"name": "labels"}]}), "application/json", 400,
     ["output 'labels'", "did you mean 'label'"]),
]


@pytest.mark.parametrize("path, content, content_type, status, words", CASES,
                         ids=[f"{i}-{c[4][0][:24]}" for i, c in enumerate(CASES)])
def test_a_bad_request_gets_a_4xx_naming_the_problem(clients, path, content, content_type, status, words):
    response = clients["binary"].post(path, content=content, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message and "/tmp" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("kind, column, value, words", [
    ("mixed", "flag", 1, ["column 'flag'", "true or false"]),
    ("mixed", "when", "not a date", ["column 'when'", "should hold dates", "'not a date'"]),
    ("mixed", "when", 20240131, ["column 'when'", "dates as text"]),
])
def test_each_column_kind_refuses_values_of_another_type(clients, kind, column, value, words):
    row = records(pd.read_csv(trained(kind)[1]), features(kind))[0] | {column: value}
    response = clients[kind].post("/predict", json={"instances": [row]})
    assert response.status_code == 400
    for word in words:
        assert word in response.json()["error"]


def test_missing_values_are_null_or_the_markers_and_unseen_categories_are_unknown(clients):
    row = {"x1": None, "x2": None, "color": None, "size": "XXL"}  # "XXL" was never seen: the unknown slot
    response = clients["binary"].post("/predict", json={"instances": [row]})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1
    mixed = {"num": None, "flag": None, "when": "N/A", "code": 999, "city": None}
    assert clients["mixed"].post("/predict", json={"instances": [mixed]}).status_code == 200


def test_unknown_endpoints_and_methods_get_json_errors(clients):
    client = clients["binary"]
    assert client.get("/v3/whatever").json()["error"].startswith("no endpoint GET /v3/whatever")
    response = client.get("/predict")
    assert response.status_code == 405 and "does not take GET" in response.json()["error"]
    assert client.post("/v2/models/nope/infer", json={}).status_code == 404


def test_importing_neuraltab_loads_no_server_package():
    code = ("import sys, neuraltab, neuraltab.cli.commands; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'prometheus_client')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_the_server_loads_no_training_code():
    code = "import sys, neuraltab.serve.app; print(sorted(m for m in sys.modules if m.startswith('neuraltab.train')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serving_a_model_loads_no_training_code():
    code = ("import sys; from neuraltab.serve import create_app; create_app([sys.argv[1]]); "
            "print(sorted(m for m in sys.modules if m.startswith('neuraltab.train')))")
    out = subprocess.run([sys.executable, "-c", code, str(trained("binary")[0])], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_request_works_as_written(tmp_path):
    """The README's curl body, sent to a model of a table with hr.csv's columns (synthetic: hr.csv is not copied)."""
    import re
    from pathlib import Path

    from conftest import FAST

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### `neuraltab serve MODEL [MODEL ...]`", 1)[1].split("\n### ", 1)[0]
    payload = json.loads(re.search(r"-d '(\{.*?\})'", section, flags=re.DOTALL).group(1).replace("\n", " "))
    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame({"satisfaction_level": rng.random(n).round(2), "last_evaluation": rng.random(n).round(2),
                          "number_project": rng.integers(2, 8, n), "average_montly_hours": rng.integers(96, 310, n),
                          "time_spend_company": rng.integers(2, 11, n), "Work_accident": rng.integers(0, 2, n),
                          "promotion_last_5years": rng.integers(0, 2, n),
                          "sales": rng.choice(["sales", "technical", "support", "IT"], n),
                          "salary": rng.choice(["low", "medium", "high"], n)})
    table["left"] = (table["satisfaction_level"] < 0.4).astype(int)
    model = neuraltab.fit(table, target="left", **FAST)
    with TestClient(create_app({"hr": model}, warm_up=True)) as client:
        response = client.post("/predict", json=payload)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] in ([0], [1]) and set(response.json()["probabilities"][0]) == {"0", "1"}
