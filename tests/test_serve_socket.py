"""The service as users run it: `labline serve` in its own process on a loopback port. Every
endpoint over HTTP, reload under load, replay of logged answers, and no answered request lost
when the server is killed with SIGKILL under load."""

from __future__ import annotations

import json
import shutil
import threading
import time

import httpx

from labline.cli import main
from labline.serve.request_log import read_requests
from tests.fixtures.serve import Server, copy_registry, iris_records, model_dir


def _hammer(url: str, stop: threading.Event, answered: list, failures: list, client_id: str | None = None) -> None:
    records, _ = iris_records()
    with httpx.Client(base_url=url, timeout=10) as client:
        i = 0
        while not stop.is_set():
            headers = {"X-Client-Id": f"{client_id}-{i}"} if client_id else {}
            try:
                response = client.post("/predict", json=records[i % 150], headers=headers)
            except httpx.TransportError:
                failures.append("transport")
                if stop.is_set():
                    return
                continue
            if response.status_code == 200:
                answered.append(response.json())
            else:
                failures.append(response.status_code)
            i += 1


def test_every_endpoint_reload_under_load_and_replay(served_registry, tmp_path, capsys):
    url, versions = copy_registry(served_registry, tmp_path)
    log = tmp_path / "requests.db"
    env = {"LABLINE_DB": url, "LABLINE_ADMIN_TOKEN": "t0ken"}
    server = Server(
        ["--challenger", "challenger", "--split", "0.5", "--shadow", "challenger", "--log", str(log)], env=env
    )
    records, _ = iris_records()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/").json()["model_version"] == versions["train_sklearn"]
            assert client.get("/health").json() == {"status": "alive"}
            assert set(client.get("/ready").json()["models"]) == {"champion", "challenger", "shadow"}
            lineage = client.get("/model").json()["deployments"]
            assert lineage["challenger"]["version"] == versions["train_torch"]
            one = client.post("/predict", json=records[60], headers={"X-Client-Id": "bob"})
            assert one.headers["X-Model-Version"] == str(one.json()["model_version"])
            batch = client.post("/predict/batch", json={"records": records})
            assert len(batch.json()["answers"]) == 150
            assert (
                client.post("/predict", content=b"{", headers={"Content-Type": "application/json"}).status_code == 422
            )
            assert "labline_predictions_total" in client.get("/metrics").text
            assert client.post("/admin/reload").status_code == 401

            stop, answered, failures = threading.Event(), [], []
            threads = [
                threading.Thread(target=_hammer, args=(server.url, stop, answered, failures, f"t{n}")) for n in range(4)
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            from labline.registry import Registry

            Registry(url=url).set_alias("champion", versions["train_torch"])
            reload = client.post("/admin/reload", headers={"Authorization": "Bearer t0ken"})
            time.sleep(0.5)
            stop.set()
            for thread in threads:
                thread.join()
            assert reload.status_code == 200, reload.text
            assert failures == [] and len(answered) > 10
            assert client.get("/").json()["model_version"] == versions["train_torch"]
    finally:
        server.stop()
    logged = read_requests(log)
    assert set(a["request_id"] for a in answered) <= set(logged["request_id"])
    assert one.json()["request_id"] in set(logged["request_id"])

    # The commands run in-process (labline.cli.main): the same code path without paying an
    # interpreter start per call on a shared machine.
    assert main(["requests", "--log", str(log), "--format", "json", "--version", str(versions["train_torch"])]) == 0
    assert {r["model_version"] for r in json.loads(capsys.readouterr().out)} == {versions["train_torch"]}
    for answer in (one.json(), batch.json()["answers"][100], answered[-1]):
        assert main(["replay", answer["request_id"], "--log", str(log), "--json", "--db", url]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["identical"] is True
        assert result["replayed"]["probabilities"] == answer["probabilities"]
        assert result["deployment"]["lineage"]["run_id"]
    assert main(["replay", one.json()["request_id"], "--shadow", "--log", str(log), "--db", url]) == 0
    assert "bit for bit" in capsys.readouterr().out


def test_sigkill_under_load_loses_no_answered_request(iris_run, tmp_path):
    log = tmp_path / "requests.db"
    server = Server(["--model-dir", str(model_dir(iris_run)), "--log", str(log)])
    stop, answered, failures = threading.Event(), [], []
    threads = [threading.Thread(target=_hammer, args=(server.url, stop, answered, failures)) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join()
    assert len(answered) > 50
    logged = read_requests(log)
    missing = {a["request_id"] for a in answered} - set(logged["request_id"])
    assert missing == set()
    by_id = logged.set_index("request_id")
    for answer in answered[-20:]:
        assert by_id.loc[answer["request_id"], "probabilities"] == answer["probabilities"]


def test_replay_says_why_when_the_artifact_is_tampered_or_gone(iris_run, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from labline.serve import ServeSettings, create_app

    artifact = tmp_path / "model"
    shutil.copytree(model_dir(iris_run), artifact)
    log = tmp_path / "requests.db"
    with TestClient(create_app(ServeSettings(model_dir=str(artifact), request_log=str(log)))) as client:
        request_id = client.post("/predict", json=iris_records()[0][120]).json()["request_id"]
    assert main(["replay", request_id, "--log", str(log)]) == 0
    assert "bit for bit" in capsys.readouterr().out
    with open(artifact / "pipeline.skops", "ab") as handle:
        handle.write(b"tampered")
    assert main(["replay", request_id, "--log", str(log)]) == 1
    assert "does not match its recorded SHA-256" in capsys.readouterr().out
    shutil.rmtree(artifact)
    assert main(["replay", request_id, "--log", str(log)]) == 1
    assert "missing" in capsys.readouterr().out
    assert main(["replay", "no-such-request", "--log", str(log)]) == 1
    assert "no request with id 'no-such-request'" in capsys.readouterr().err
