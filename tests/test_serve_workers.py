"""`labline serve --workers 2` as users run it: a real server process whose uvicorn workers
share one request log and one set of Prometheus metric files, so that `/metrics` from any
worker counts the requests of all of them."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from labline.cli import main
from labline.serve.request_log import read_requests
from tests.fixtures.serve import Server, free_port, iris_records, model_dir

ROUND = 100  # /predict requests per round
MAX_ROUNDS = 10  # a worker that never answers fails the test instead of looping


def _post_fresh(url: str, record: dict) -> httpx.Response:
    """One request on a connection of its own: each connection goes to whichever worker accepts it."""
    return httpx.post(f"{url}/predict", json=record, timeout=30)


def _predict_counts_by_worker(folder: Path) -> dict[int, float]:
    """`labline_requests_total{endpoint="/predict",status="200"}` as each worker's own file holds it."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        counts[pid] = sum(
            sample.value
            for family in MultiProcessCollector.merge([str(path)])
            for sample in family.samples
            if sample.name == "labline_requests_total" and sample.labels == {"endpoint": "/predict", "status": "200"}
        )
    return counts


def _scrape(url: str) -> dict[str, float]:
    """Totals of the metrics this test checks, from `/metrics` on a fresh connection."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    totals = {"predict": 0.0, "batch": 0.0, "log_rows": 0.0, "predictions": 0.0, "latency_count": 0.0}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "labline_requests_total" and sample.labels.get("status") == "200":
                if sample.labels["endpoint"] == "/predict":
                    totals["predict"] += sample.value
                elif sample.labels["endpoint"] == "/predict/batch":
                    totals["batch"] += sample.value
            elif sample.name == "labline_request_log_rows_total":
                totals["log_rows"] += sample.value
            elif sample.name == "labline_predictions_total":
                totals["predictions"] += sample.value
            elif sample.name == "labline_request_latency_seconds_count" and sample.labels["endpoint"] == "/predict":
                totals["latency_count"] += sample.value
    return totals


def test_two_workers_share_the_log_and_metrics_add_up_across_them(iris_run, tmp_path):
    temp = tmp_path / "tmp"  # the server's TMPDIR: where its metrics folder must appear, then vanish
    temp.mkdir()
    log = tmp_path / "requests.db"
    server = Server(
        ["--workers", "2", "--model-dir", str(model_dir(iris_run)), "--log", str(log)], env={"TMPDIR": str(temp)}
    )
    records, _ = iris_records()
    answers: list[httpx.Response] = []
    try:
        folders = list(temp.glob("labline-metrics-*"))
        assert len(folders) == 1, folders
        folder = folders[0]
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        workers = {child.pid for child in psutil.Process(server.proc.pid).children()}

        # The second worker may still be loading when /ready first answers, so send rounds of
        # concurrent fresh connections until each worker's own file shows answers of its own.
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(MAX_ROUNDS):
                start = len(answers)
                answers += pool.map(lambda i: _post_fresh(server.url, records[i % 150]), range(start, start + ROUND))
                by_worker = _predict_counts_by_worker(folder)
                if len(answers) >= 2 * ROUND and len([n for n in by_worker.values() if n > 0]) == 2:
                    break
        batch = httpx.post(f"{server.url}/predict/batch", json={"records": records}, timeout=30)

        assert [r.status_code for r in answers if r.status_code != 200] == []
        assert batch.status_code == 200, batch.text
        sent = len(answers)
        by_worker = _predict_counts_by_worker(folder)
        assert len(by_worker) == 2 and all(n > 0 for n in by_worker.values()), by_worker
        assert set(by_worker) <= workers, (by_worker, workers)  # the files are the server's workers'
        assert sum(by_worker.values()) <= sent

        # A worker counts a request just after sending its answer, so the first scrape may come
        # an instant early; once it shows the totals, every later scrape, whichever worker takes
        # its fresh connection, must report exactly the totals of both.
        expected = {
            "predict": sent,
            "batch": 1,
            "log_rows": sent + 150,
            "predictions": sent + 150,
            "latency_count": sent,
        }
        deadline = time.monotonic() + 5
        while _scrape(server.url) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        scrapes = [_scrape(server.url) for _ in range(8)]
        assert scrapes == [expected] * 8
        assert sum(_predict_counts_by_worker(folder).values()) == sent
    finally:
        server.stop()

    assert server.proc.returncode == 0, server.proc.stdout.read().decode()
    assert not folder.exists()
    assert list(temp.iterdir()) == []
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in by_worker)

    # One log for both workers: exactly one row per answered request id, none lost or doubled.
    answered = [r.json()["request_id"] for r in answers] + [a["request_id"] for a in batch.json()["answers"]]
    assert len(set(answered)) == sent + 150
    logged = read_requests(log)
    assert len(logged) == sent + 150
    assert sorted(logged["request_id"]) == sorted(answered)
    with closing(sqlite3.connect(log)) as conn:
        deployed = [row[0] for row in conn.execute("SELECT deployed_at FROM deployments WHERE arm = 'champion'")]
    assert len(set(deployed)) == 2  # each worker loaded and recorded the champion itself


def test_a_model_that_does_not_load_stops_the_server_with_the_reason(tmp_path):
    """A worker whose app cannot be built must stop the server, not be restarted forever."""
    temp, empty = tmp_path / "tmp", tmp_path / "not-a-model"
    temp.mkdir()
    empty.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "labline.cli",
            "serve",
            "--workers",
            "2",
            "--port",
            str(free_port()),
            "--model-dir",
            str(empty),
            "--log",
            str(tmp_path / "requests.db"),
        ],
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("labline serve: the workers could not start: ") and str(empty) in last, done.stderr
    assert list(temp.iterdir()) == []


def test_workers_below_one_is_refused(capsys):
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err


def test_multiprocess_metrics_refuse_a_setup_that_would_export_nothing(tmp_path, monkeypatch):
    """In-process, so prometheus_client was imported without the variable: both mistakes are named."""
    from labline.serve.metrics import ServiceMetrics

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match="is not a folder"):
        ServiceMetrics()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="set after prometheus_client was imported"):
        ServiceMetrics()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    # Without the variable each instance keeps its own registry: apps built in one process
    # (as the other serve tests do) count apart.
    first, second = ServiceMetrics(), ServiceMetrics()
    first.observe("/predict", 200, 0.001)
    assert b'labline_requests_total{endpoint="/predict",status="200"} 1.0' in first.render()
    assert b"labline_requests_total{endpoint=" not in second.render()
