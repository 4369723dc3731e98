"""The service in-process (TestClient): every endpoint, answers equal to the artifact's own,
every answer in the request log, metrics, the admin token and reload."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from labline.registry import Registry
from labline.serve import ServeSettings, create_app
from labline.serve.metrics import PrometheusText
from labline.serve.request_log import read_requests
from tests.fixtures.serve import FEATURES, copy_registry, iris_records, model_dir


@pytest.fixture
def service(served_registry, tmp_path):
    url, versions = served_registry
    settings = ServeSettings(registry_url=url, request_log=str(tmp_path / "requests.db"))
    with TestClient(create_app(settings)) as client:
        yield client, settings, versions, url


def test_welcome_health_ready_and_lineage(service):
    client, settings, versions, url = service
    welcome = client.get("/").json()
    assert welcome["model"] == "sklearn-logreg" and welcome["model_version"] == versions["train_sklearn"]
    assert client.get("/health").json() == {"status": "alive"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["models"] == {"champion": str(versions["train_sklearn"])}
    champion = client.get("/model").json()["deployments"]["champion"]
    registered = Registry(url=url).get(versions["train_sklearn"])
    assert champion["artifact_sha256"] == registered.artifact_sha256
    assert champion["lineage"]["run_id"] == registered.run_id
    assert champion["lineage"]["data_fingerprint"] == registered.data_fingerprint
    assert champion["deployed_at"].startswith("20")


def test_predict_answers_with_the_artifact_and_logs_it(service):
    client, settings, versions, url = service
    _, model = Registry(url=url).load_model("champion")
    records, _ = iris_records()
    record = records[77]
    response = client.post("/predict", json=record, headers={"X-Client-Id": "alice"})
    assert response.status_code == 200
    body = response.json()
    assert response.headers["X-Model-Version"] == str(versions["train_sklearn"])
    expected = model.predict_proba(pd.DataFrame([record]))[0]
    assert body["probabilities"] == dict(zip(model.labels, expected.tolist()))
    assert body["prediction"] == model.labels[int(np.argmax(expected))]
    assert body["arm"] == "champion" and body["model_version"] == versions["train_sklearn"]
    row = read_requests(settings.request_log).set_index("request_id").loc[body["request_id"]]
    assert row["payload"] == record and row["client_key"] == "alice"
    assert row["probabilities"] == body["probabilities"] and row["prediction"] == body["prediction"]
    assert row["artifact_sha256"] == model.sha256 and row["latency_ms"] > 0


def test_client_key_defaults_to_the_request_id(service):
    client, settings, _, _ = service
    body = client.post("/predict", json=iris_records()[0][0]).json()
    row = read_requests(settings.request_log).set_index("request_id").loc[body["request_id"]]
    assert row["client_key"] == body["request_id"]


def test_batch_gives_one_answer_and_one_row_per_record(service):
    client, settings, versions, url = service
    _, model = Registry(url=url).load_model("champion")
    records, _ = iris_records()
    response = client.post("/predict/batch", json={"records": records})
    assert response.status_code == 200
    answers = response.json()["answers"]
    assert [a["prediction"] for a in answers] == list(model.predict(pd.DataFrame(records)))
    logged = read_requests(settings.request_log)
    assert len(logged) == len(records)
    assert list(logged["payload"]) == records
    assert set(logged["batch_id"]) == {response.json()["batch_id"]}
    assert list(logged["request_id"]) == [a["request_id"] for a in answers]
    body = response.json()  # one model answered the whole batch: said once, logged on every row
    assert (body["model_version"], body["arm"], body["artifact_sha256"]) == (
        versions["train_sklearn"],
        "champion",
        model.sha256,
    )
    assert set(logged["artifact_sha256"]) == {model.sha256} and set(logged["arm"]) == {"champion"}
    assert response.headers["X-Model-Version"] == str(versions["train_sklearn"])


def test_metrics_count_predictions_by_label_version_and_arm(service):
    client, _, versions, _ = service
    records, _ = iris_records()
    predictions = [client.post("/predict", json=r).json()["prediction"] for r in records[::10]]
    client.post("/predict", json={"sepal_length": "x"})
    text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    for label in set(predictions):
        key = (
            "labline_predictions_total",
            (("arm", "champion"), ("label", label), ("model_version", str(versions["train_sklearn"]))),
        )
        assert samples[key] == predictions.count(label)
    assert samples[("labline_requests_total", (("endpoint", "/predict"), ("status", "200")))] == len(predictions)
    assert samples[("labline_requests_total", (("endpoint", "/predict"), ("status", "422")))] == 1
    assert samples[("labline_request_latency_seconds_count", (("endpoint", "/predict"),))] == len(predictions) + 1


def test_openapi_has_the_generated_schema_with_an_example(service):
    client, *_ = service
    schema = client.get("/openapi.json").json()
    record = schema["components"]["schemas"]["IrisRecord"]
    assert record["required"] == FEATURES and record["additionalProperties"] is False
    assert set(record["examples"][0]) == set(FEATURES)
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/IrisRecord")


def test_admin_reload_needs_the_token_and_switches_models(served_registry, tmp_path):
    url, versions = copy_registry(served_registry, tmp_path)
    settings = ServeSettings(registry_url=url, request_log=str(tmp_path / "requests.db"), admin_token="s3cret")
    record = iris_records()[0][0]
    with TestClient(create_app(settings)) as client:
        assert client.post("/predict", json=record).json()["model_version"] == versions["train_sklearn"]
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        Registry(url=url).set_alias("champion", versions["train_torch"])
        reloaded = client.post("/admin/reload", headers={"Authorization": "Bearer s3cret"})
        assert reloaded.status_code == 200, reloaded.text
        response = client.post("/predict", json=record)
        assert response.json()["model_version"] == versions["train_torch"]
        assert response.headers["X-Model-Version"] == str(versions["train_torch"])
        assert client.get("/model").json()["reloads"] == 1
    logged = read_requests(settings.request_log)
    assert list(logged["model_version"]) == [versions["train_sklearn"], versions["train_torch"]]


def test_admin_endpoints_are_off_without_a_token_and_answer_the_documented_401(iris_run, tmp_path):
    """Off or wrong token: the same 401 (the route is in the document, so never a 404)."""
    settings = ServeSettings(model_dir=str(model_dir(iris_run)), request_log=str(tmp_path / "r.db"), admin_token=None)
    with TestClient(create_app(settings)) as client:
        answers = [client.post("/admin/reload", headers=h) for h in ({"Authorization": "Bearer anything"}, {})]
        documented = client.get("/openapi.json").json()["paths"]["/admin/reload"]["post"]["responses"]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json() == answers[1].json() and "LABLINE_ADMIN_TOKEN" in answers[0].json()["error"]
    assert answers[0].headers["WWW-Authenticate"] == "Bearer" and "401" in documented


def test_model_dir_is_served_and_hash_checked(iris_run, tmp_path):
    import shutil

    from labline.serve.deployments import DeploymentError

    copy = tmp_path / "model"
    shutil.copytree(model_dir(iris_run), copy)
    settings = ServeSettings(model_dir=str(copy), request_log=str(tmp_path / "r.db"))
    with TestClient(create_app(settings)) as client:
        response = client.post("/predict", json=iris_records()[0][0])
    assert response.json()["model_version"] is None
    assert response.headers["X-Model-Version"] == f"sha256:{response.json()['artifact_sha256'][:12]}"
    with open(copy / "pipeline.skops", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(DeploymentError, match="SHA-256"):
        create_app(settings)


def test_a_regression_model_answers_values_without_probabilities(tmp_path):
    """Airbnb prices: numbers, categories, free text with commas and quotes, missing values; the
    batch answers and the log carry values and null probabilities, and replay reproduces them."""
    from labline.cli import main
    from labline.data.datasets import load_dataset
    from labline.models.artifact import save_sklearn_model
    from labline.models.sklearn_models import build_training_pipeline

    frame, spec = load_dataset("airbnb")
    train = frame.iloc[:1500]
    model = build_training_pipeline(spec, "ridge").fit(train[spec.features], train[spec.target])
    save_sklearn_model(tmp_path / "model", model, spec)
    rows = frame.iloc[1500:1540][spec.features]
    records = [
        {c: (None if isinstance(v, float) and np.isnan(v) else v) for c, v in r.items()}
        for r in rows.to_dict("records")
    ]
    assert any(None in r.values() for r in records) and any("," in r["name"] for r in records)
    log = tmp_path / "requests.db"
    with TestClient(create_app(ServeSettings(model_dir=str(tmp_path / "model"), request_log=str(log)))) as client:
        batch = client.post("/predict/batch", json={"records": records})
        single = client.post("/predict", json=records[0])
    assert batch.status_code == 200 and single.status_code == 200
    answers = batch.json()["answers"]
    expected = model.predict(rows)
    assert [a["prediction"] for a in answers] == pytest.approx(list(expected), rel=1e-12)
    assert all(a["probabilities"] is None for a in answers) and single.json()["probabilities"] is None
    logged = read_requests(log)
    assert list(logged["payload"][:40]) == records
    assert logged["probabilities"].isna().all()
    assert list(logged["prediction"][:40]) == [a["prediction"] for a in answers]  # the same text, read back
    assert main(["replay", answers[7]["request_id"], "--log", str(log)]) == 0


def test_a_registry_without_a_champion_says_how_to_get_one(iris_run, tmp_path):
    """`labline run` registers versions but promotes none: serving the champion then names the way out."""
    from labline.serve.deployments import DeploymentError

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    Registry(url=url).register_run(copy.deepcopy(iris_run.manifest))
    with pytest.raises(
        DeploymentError, match=r"aliases are none yet\. Promote a registered version first \(`labline promote`"
    ):
        create_app(ServeSettings(registry_url=url, request_log=str(tmp_path / "r.db")))


def test_every_route_of_the_app_is_its_own_metrics_endpoint_and_any_other_path_is_other(iris_run, tmp_path):
    settings = ServeSettings(model_dir=str(model_dir(iris_run)), request_log=str(tmp_path / "r.db"), admin_token="t")
    with TestClient(create_app(settings)) as client:
        paths = client.get("/openapi.json").json()["paths"]
        for path, operations in paths.items():
            for method in operations:
                client.request(method, path)
        assert client.get("/no/such/path").status_code == 404
        assert client.get("/redoc").status_code == 200
        text = client.get("/metrics").text
    assert set(paths) == {"/", "/health", "/ready", "/model", "/metrics", "/predict", "/predict/batch", "/admin/reload"}
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == [PrometheusText.media_type]  # not JSON
    assert PrometheusText.media_type.startswith("text/plain; version=0.0.4")
    endpoints = {sample.labels["endpoint"] for family in text_string_to_metric_families(text)
                 for sample in family.samples if sample.name == "labline_requests_total"}  # fmt: skip
    assert endpoints == set(paths) | {"/openapi.json", "/redoc", "other"}
