"""A/B and shadow: sticky arms, the split ratio over many keys, a shadow that is logged but
never returned and whose failure never fails a request, feedback and the A/B report."""

from __future__ import annotations

import json
import math
import time

import pytest
from fastapi.testclient import TestClient

from labline.cli import main
from labline.registry import Registry
from labline.serve import ServeSettings, create_app
from labline.serve.abtest import ab_report, two_proportion_z
from labline.serve.request_log import read_requests
from labline.serve.routing import choose_arm
from tests.fixtures.serve import iris_records, model_dir


def test_arm_is_a_function_of_the_key_and_the_split_holds():
    keys = [f"client-{i}" for i in range(20_000)]
    arms = [choose_arm(k, 0.1) for k in keys]
    assert arms == [choose_arm(k, 0.1) for k in keys]  # sticky
    share = arms.count("challenger") / len(keys)
    sigma = math.sqrt(0.1 * 0.9 / len(keys))
    assert abs(share - 0.1) < 4 * sigma
    assert {choose_arm(k, 0.0) for k in keys[:500]} == {"champion"}
    assert {choose_arm(k, 1.0) for k in keys[:500]} == {"challenger"}


def _service(served_registry, tmp_path, **options):
    url, versions = served_registry
    settings = ServeSettings(registry_url=url, request_log=str(tmp_path / "requests.db"), **options)
    return TestClient(create_app(settings)), settings, versions, url


@pytest.fixture
def ab_service(served_registry, tmp_path):
    client, *rest = _service(served_registry, tmp_path, challenger="challenger", split=0.3)
    with client:
        yield client, *rest


def _wait_for_shadow(log, n, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = read_requests(log, include_shadow=True)
        if int(rows["shadow"].sum()) >= n:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} shadow rows after {timeout}s")


def test_same_client_same_arm_and_ratio_over_the_service(ab_service):
    client, settings, versions, _ = ab_service
    records, _ = iris_records()
    first = {}
    for i in range(240):
        body = client.post("/predict", json=records[i % 150], headers={"X-Client-Id": f"user-{i}"}).json()
        first[f"user-{i}"] = (body["arm"], body["model_version"])
    for key in list(first)[:40]:
        body = client.post("/predict", json=records[3], headers={"X-Client-Id": key}).json()
        assert (body["arm"], body["model_version"]) == first[key]
    share = sum(arm == "challenger" for arm, _ in first.values()) / len(first)
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(first))
    assert {v for a, v in first.values() if a == "challenger"} == {versions["train_torch"]}
    assert {v for a, v in first.values() if a == "champion"} == {versions["train_sklearn"]}


def test_a_batch_takes_its_clients_arm_whole(ab_service):
    """A batch is one client's request: all its records reach one arm, the client's (or, without
    X-Client-Id, the batch id's), and each record can be replayed by its own request id."""
    client, settings, versions, _ = ab_service
    records, _ = iris_records()
    arms = []
    for i in range(40):
        body = client.post("/predict/batch", json={"records": records[i : i + 4]}).json()
        assert [a["request_id"] for a in body["answers"]] == [f"{body['batch_id']}-{j}" for j in range(4)]
        assert body["arm"] == choose_arm(body["batch_id"], 0.3)
        assert body["model_version"] == versions["train_torch" if body["arm"] == "challenger" else "train_sklearn"]
        arms.append(body["arm"])
    assert set(arms) == {"champion", "challenger"}
    for key in ("user-1", "user-2", "user-3", "user-4"):
        single = client.post("/predict", json=records[0], headers={"X-Client-Id": key}).json()
        batch = client.post("/predict/batch", json={"records": records[:3]}, headers={"X-Client-Id": key}).json()
        assert (batch["arm"], batch["model_version"]) == (single["arm"], single["model_version"])
    logged = read_requests(settings.request_log)
    assert len(logged) == 40 * 4 + 4 * 4
    keyed = logged[logged["batch_id"].notna() & logged["client_key"].str.startswith("user-")]
    assert len(keyed) == 12
    unkeyed = logged[logged["batch_id"].notna() & ~logged["client_key"].str.startswith("user-")]
    assert (unkeyed["client_key"] == unkeyed["batch_id"]).all()


def test_shadow_is_logged_never_returned(served_registry, tmp_path):
    client, settings, versions, url = _service(served_registry, tmp_path, shadow="challenger")
    _, shadow_model = Registry(url=url).load_model("challenger")
    records, _ = iris_records()
    with client:
        answers = [client.post("/predict", json=r).json() for r in records[:20]]
    assert all(
        set(a) == {"request_id", "prediction", "probabilities", "model_version", "artifact_sha256", "arm"}
        for a in answers
    )
    rows = _wait_for_shadow(settings.request_log, 20)
    shadow = rows[rows["shadow"]].set_index("request_id")
    import pandas as pd

    expected = shadow_model.predict(pd.DataFrame(records[:20]))
    for answer, label in zip(answers, expected):
        assert shadow.loc[answer["request_id"], "prediction"] == label
        assert shadow.loc[answer["request_id"], "model_version"] == versions["train_torch"]
        assert shadow.loc[answer["request_id"], "arm"] == "shadow"
    assert len(read_requests(settings.request_log)) == 20  # shadow rows are not answers


def test_a_failing_shadow_never_fails_the_request(iris_run, tmp_path):
    """The shadow is a real model built for another schema (one more feature): every scoring fails."""
    import shutil

    broken = tmp_path / "other-schema"
    shutil.copytree(model_dir(iris_run), broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["spec"]["numeric"].append("stem_length")
    (broken / "manifest.json").write_text(json.dumps(manifest))
    settings = ServeSettings(
        model_dir=str(model_dir(iris_run)), shadow=str(broken), request_log=str(tmp_path / "requests.db")
    )
    records, _ = iris_records()
    with TestClient(create_app(settings)) as client:
        single = [client.post("/predict", json=r) for r in records[:5]]
        batch = client.post("/predict/batch", json={"records": records[5:10]})
    assert all(r.status_code == 200 for r in single) and batch.status_code == 200
    rows = _wait_for_shadow(settings.request_log, 10)
    shadow = rows[rows["shadow"]]
    assert shadow["error"].str.contains("stem_length").all() and shadow["prediction"].isna().all()
    assert len(rows[~rows["shadow"]]) == 10 and rows[~rows["shadow"]]["error"].isna().all()


def test_two_proportion_z_matches_the_textbook():
    z, p = two_proportion_z(45, 100, 60, 100)  # pooled 0.525: z = 0.15 / sqrt(0.525 * 0.475 * 0.02)
    assert z == pytest.approx(2.1239, abs=1e-4) and p == pytest.approx(0.03368, abs=1e-4)
    assert two_proportion_z(0, 0, 3, 5) == (0.0, 1.0)


def test_feedback_and_ab_report(ab_service, tmp_path, capsys):
    client, settings, versions, url = ab_service
    records, truth = iris_records()
    sent = []
    for i, (record, label) in enumerate(zip(records, truth)):
        body = client.post("/predict", json=record, headers={"X-Client-Id": f"flower-{i}"}).json()
        sent.append((body, label))
    feedback = tmp_path / "labels.csv"
    feedback.write_text(
        "request_id,label\n" + "".join(f"{b['request_id']},{t}\n" for b, t in sent) + "unknown-id,setosa\n"
    )
    assert main(["feedback", str(feedback), "--log", settings.request_log]) == 0
    assert "stored 150 labels; 1 request ids not in the log" in capsys.readouterr().out
    result = ab_report(settings.request_log, min_samples=30, registry_url=url).to_dict()
    for arm in ("champion", "challenger"):
        mine = [(b, t) for b, t in sent if b["arm"] == arm]
        stats = result["arms"][arm]
        assert stats["requests"] == len(mine) and stats["labelled"] == len(mine)
        assert stats["correct"] == sum(b["prediction"] == t for b, t in mine)
        assert 0.5 <= stats["agreement"] <= 1.0
    a, b = result["arms"]["champion"], result["arms"]["challenger"]
    z, p = two_proportion_z(a["correct"], a["labelled"], b["correct"], b["labelled"])
    assert result["z"] == pytest.approx(z) and result["p_value"] == pytest.approx(p)
    assert result["winner"] is None  # two good Iris models are not distinguishable on 150 flowers
    assert main(["ab-report", "--min-samples", "1000", "--log", settings.request_log, "--db", url]) == 0
    printed = capsys.readouterr().out
    assert "no winner called" in printed and f"champion {a['labelled']}, challenger {b['labelled']}" in printed
