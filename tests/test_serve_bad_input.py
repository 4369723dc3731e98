"""Bad input: every kind gets a 4xx whose message names the field, nothing is logged for it,
and a fuzz test of generated requests never sees a 5xx."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labline.serve import ServeSettings, create_app
from labline.serve.request_log import read_requests
from tests.fixtures.serve import FEATURES, iris_records, model_dir

GOOD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def strict_service(iris_run, tmp_path_factory):
    log = tmp_path_factory.mktemp("bad-input") / "requests.db"
    settings = ServeSettings(
        model_dir=str(model_dir(iris_run)), request_log=str(log), max_body_bytes=4096, max_batch_records=5
    )
    with TestClient(create_app(settings)) as client:
        yield client, log


def _with(**changes):
    record = dict(GOOD)
    for key, value in changes.items():
        if value is _with:
            record.pop(key)
        else:
            record[key] = value
    return record


JSON_HEADERS = {"Content-Type": "application/json"}
CASES = [
    # (name, path, raw body, status, text the error must contain)
    ("malformed JSON", "/predict", b'{"sepal_length": 5.1,', 422, "body: malformed JSON at character 21"),
    ("malformed JSON batch", "/predict/batch", b'{"records": [', 422, "body: malformed JSON"),
    ("non-UTF-8 bytes", "/predict", b'{"sepal_length": "\xff"}', 400, "body: "),
    ("non-UTF-8 bytes in a batch", "/predict/batch", b'{"records": ["\xff"]}', 422, "body: "),
    ("not an object", "/predict", b"[1, 2, 3]", 422, "body"),
    ("missing field", "/predict", json.dumps(_with(petal_width=_with)).encode(), 422, "petal_width: Field required"),
    ("extra field", "/predict", json.dumps(_with(colour="blue")).encode(), 422, "colour: Extra inputs"),
    ("wrong type", "/predict", json.dumps(_with(sepal_width="wide")).encode(), 422, "sepal_width"),
    ("number as text", "/predict", json.dumps(_with(sepal_width="3.5")).encode(), 422, "sepal_width"),
    ("boolean", "/predict", json.dumps(_with(sepal_width=True)).encode(), 422, "sepal_width"),
    ("null", "/predict", json.dumps(_with(petal_length=None)).encode(), 422, "petal_length"),
    (
        "NaN",
        "/predict",
        b'{"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
        422,
        "sepal_length: Input should be a finite number",
    ),
    (
        "Infinity",
        "/predict",
        b'{"sepal_length": 1, "sepal_width": -Infinity, "petal_length": 1.4, "petal_width": 0.2}',
        422,
        "sepal_width: Input should be a finite number",
    ),
    (
        "overflowing number",
        "/predict",
        b'{"sepal_length": 1e400, "sepal_width": 3, "petal_length": 1.4, "petal_width": 0.2}',
        422,
        "sepal_length",
    ),
    (
        "outside the declared range",
        "/predict",
        json.dumps(_with(petal_length=7.8e307)).encode(),
        422,
        "petal_length: Input should be less than or equal to 30",
    ),
    (
        "negative length",
        "/predict",
        json.dumps(_with(petal_length=-1)).encode(),
        422,
        "petal_length: Input should be greater than or equal to 0",
    ),
    ("empty batch", "/predict/batch", b'{"records": []}', 422, "records: List should have at least 1 item"),
    (
        "batch over the record limit",
        "/predict/batch",
        json.dumps({"records": [GOOD] * 6}).encode(),
        422,
        "records: List should have at most 5 items",
    ),
    (
        "bad record in a batch",
        "/predict/batch",
        json.dumps({"records": [GOOD, _with(sepal_length="x")]}).encode(),
        422,
        "records[1].sepal_length",
    ),
    ("batch without records", "/predict/batch", json.dumps({"rows": [GOOD]}).encode(), 422, "records: Field required"),
    ("body over the size limit", "/predict/batch", json.dumps({"records": [GOOD] * 60}).encode(), 413, "body"),
]


@pytest.mark.parametrize("name,path,body,status,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_4xx_naming_the_field(strict_service, name, path, body, status, message):
    client, log = strict_service
    before = len(read_requests(log))
    response = client.post(path, content=body, headers=JSON_HEADERS)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert len(read_requests(log)) == before  # a refused request is not an answered one
    documented = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    assert str(status) in documented, f"{status} is not in the OpenAPI document of {path}"


def test_body_without_content_length_is_bounded_too(strict_service):
    client, _ = strict_service

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    response = client.post("/predict", content=chunks(), headers=JSON_HEADERS)
    assert response.status_code == 413 and "limit of 4096 bytes" in response.json()["error"]


def test_unknown_category_is_refused_with_the_allowed_values(tmp_path):
    """A data set with a hyphenated categorical column, trained here with the shared preprocessing."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from labline.data.spec import DatasetSpec
    from labline.models.artifact import save_sklearn_model
    from labline.models.preprocess import build_preprocessor

    spec = DatasetSpec(
        name="census-mini",
        target="income",
        numeric=["age"],
        categorical=["marital-status"],
        labels=["<=50K", ">50K"],
        categories={"marital-status": ["Married", "Never-married"]},
    )
    frame = pd.DataFrame(
        {
            "age": [25, 50, 33, 61, 45, 22],
            "marital-status": ["Never-married", "Married"] * 3,
            "income": ["<=50K", ">50K", "<=50K", ">50K", ">50K", "<=50K"],
        }
    )
    pipeline = Pipeline([("pre", build_preprocessor(spec)), ("model", LogisticRegression())])
    pipeline.fit(frame[spec.features], frame["income"])
    save_sklearn_model(tmp_path / "model", pipeline, spec)
    settings = ServeSettings(model_dir=str(tmp_path / "model"), request_log=str(tmp_path / "r.db"))
    with TestClient(create_app(settings)) as client:
        good = client.post("/predict", json={"age": 40, "marital-status": "Married"})
        assert good.status_code == 200 and good.json()["prediction"] in spec.labels
        bad = client.post("/predict", json={"age": 40, "marital-status": "Divorced"})
        assert bad.status_code == 422
        assert "marital-status: Input should be 'Married' or 'Never-married'" in bad.json()["error"]
        schema = client.get("/openapi.json").json()["components"]["schemas"]["CensusMiniRecord"]
        assert "marital-status" in schema["properties"]
    assert read_requests(tmp_path / "r.db")["payload"].tolist() == [{"age": 40.0, "marital-status": "Married"}]


# Fuzzing: values of every JSON type, records with some fields right and some wrong, and raw bytes.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
field_values = st.floats(allow_nan=True, allow_infinity=True) | json_values
records = st.fixed_dictionaries({}, optional={f: field_values for f in FEATURES}) | st.dictionaries(
    st.sampled_from([*FEATURES, "extra", "sepal-length", ""]), field_values, max_size=6
)
bodies = st.one_of(
    records.map(lambda r: ("/predict", json.dumps(r).encode())),
    st.lists(records, max_size=7).map(lambda rs: ("/predict/batch", json.dumps({"records": rs}).encode())),
    json_values.map(lambda v: ("/predict", json.dumps(v).encode())),
    st.binary(max_size=300).map(lambda b: ("/predict", b)),
    st.binary(max_size=300).map(lambda b: ("/predict/batch", b)),
)


@settings(
    max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=bodies)
def test_fuzzed_requests_never_get_a_5xx(strict_service, case):
    client, _ = strict_service
    path, body = case
    response = client.post(path, content=body, headers=JSON_HEADERS)
    assert response.status_code < 500, (path, body, response.text)
    if response.status_code != 200:
        assert response.json()["error"]
    else:
        answers = response.json()["answers"] if path.endswith("batch") else [response.json()]
        assert all(a["prediction"] in ("setosa", "versicolor", "virginica") for a in answers)


def test_valid_iris_records_all_pass(strict_service):
    client, _ = strict_service
    records, _ = iris_records()
    assert all(client.post("/predict", json=r).status_code == 200 for r in records[::15])
