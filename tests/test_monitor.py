"""`labline monitor` end to end on NYC Airbnb: healthy and drifted batch files, the request log
with feedback labels, alerts recorded and posted to a local webhook, exit codes, the notebook;
and on Census: one feature drifting a lot alerts by its own rule."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from labline.data.airbnb import derive_features, in_scope
from labline.data.datasets import read_table
from labline.data.perturb import perturb
from labline.models.artifact import load_model
from labline.monitor.alerts import AlertRule, read_alerts
from labline.monitor.run import monitor_once
from runner.exit_codes import ExitCode
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli
from tests.fixtures.finished_run import write_finished_run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A finished run folder (snapshot, spec, ridge model, glued test_mae) on 4,000 listings, and
    raw in-scope listings it never saw (the "production" pool)."""
    base = tmp_path_factory.mktemp("monitor")
    done = write_finished_run(base / "runs" / "run-1", "airbnb", 4000, "ridge")
    raw = read_table(ROOT / "data" / "nyc_airbnb_2019_sample.csv.gz")
    pool = raw[in_scope(derive_features(raw)).to_numpy() & ~raw["id"].isin(done.seen_ids).to_numpy()]
    return {"base": base, "run": done.run, "pool": pool.reset_index(drop=True), "spec": done.spec, "mae": done.test_mae}


def _batch(world, name, rows):
    path = world["base"] / name
    rows.to_csv(path, index=False)
    return path


class Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", Hook.received
    server.shutdown()
    server.server_close()


def test_healthy_batch_exits_0_with_a_report(world, tmp_path):
    batch = _batch(world, "clean.csv", world["pool"].sample(600, random_state=1))
    done = run_cli(
        "monitor",
        "--source",
        str(batch),
        "--reference",
        str(world["run"]),
        "--out",
        str(tmp_path),
        "--no-notebook",
        env={"LABLINE_ALERTS": str(tmp_path / "alerts.jsonl")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "healthy" and result["alerts"] == [] and result["current_rows"] == 600
    assert result["drift"]["drifted_share"] < 0.25
    assert (tmp_path / "report.md").read_text().startswith("# Monitoring report: HEALTHY")
    assert not (tmp_path / "alerts.jsonl").exists()


def test_drifted_batch_alerts_records_and_posts_to_the_webhook(world, tmp_path, webhook):
    url, received = webhook
    shifted = perturb(
        world["pool"].sample(600, random_state=2),
        ["latitude=+0.5sd", "availability_365=+0.5sd", "minimum_nights=*3", "room_type=mix:Shared room:0.3"],
        seed=2,
    )
    batch = _batch(world, "drifted.csv", shifted)
    alerts = tmp_path / "alerts.jsonl"
    done = run_cli(
        "monitor",
        "--source",
        str(batch),
        "--reference",
        str(world["run"]),
        "--out",
        str(tmp_path),
        "--no-notebook",
        "--webhook",
        url,
        env={"LABLINE_ALERTS": str(alerts)},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"alerts sent to {url}" in done.stdout
    assert len(received) == 1 and received[0]["status"] == "alert"
    kinds = [a["kind"] for a in received[0]["alerts"]]
    assert "dataset_drift" in kinds and "prediction_drift" in kinds
    drifted = next(a for a in received[0]["alerts"] if a["kind"] == "dataset_drift")["details"]["drifted"]
    assert {"latitude", "availability_365", "minimum_nights", "room_type"} <= set(drifted)
    assert [a.kind for a in read_alerts(alerts)] == kinds


def test_unreachable_webhook_is_reported_and_the_alerts_are_still_recorded(world, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    batch = _batch(
        world, "oob.csv", perturb(world["pool"].sample(300, random_state=3), ["longitude=set:-75.2@0.1"], seed=3)
    )
    outcome = monitor_once(
        str(batch),
        str(world["run"]),
        out_dir=tmp_path,
        webhook=f"http://127.0.0.1:{port}/x",
        alert_log=tmp_path / "alerts.jsonl",
    )
    assert outcome.result.status == "alert" and "data_quality" in [a.kind for a in outcome.result.alerts]
    assert outcome.delivery is not None and not outcome.delivery.ok and outcome.delivery.error
    assert [a.kind for a in read_alerts(tmp_path / "alerts.jsonl")] == [a.kind for a in outcome.result.alerts]


def test_request_log_window_and_feedback_labels_find_performance_decay(world, tmp_path):
    from labline.serve.request_log import COLUMNS, INSERT, connect, dumps

    spec, pool = world["spec"], world["pool"]
    model = load_model(world["run"] / "train_sklearn" / "model")
    rows = derive_features(pool.sample(400, random_state=4)).reset_index(drop=True)
    predictions = model.predict(rows)
    now = datetime.now(UTC)
    log = tmp_path / "requests.db"
    conn = connect(log)
    records, feedback = [], []
    for i, row in rows.iterrows():
        old = i < 100  # a month ago: outside the 7-day window
        when = (now - timedelta(days=30 if old else 1)).isoformat(timespec="microseconds")
        payload = {c: (None if isinstance(row[c], float) and np.isnan(row[c]) else row[c]) for c in spec.features}
        values = dict(
            request_id=f"r{i}",
            time=when,
            client_key="test",
            payload=dumps(payload),
            prediction=dumps(float(predictions[i])),
            probabilities=None,
            model_version=1,
            artifact_sha256=model.sha256,
            arm="champion",
            latency_ms=1.0,
            shadow=0,
            error=None,
            batch_id=None,
            score_batch=None,
            score_index=None,
        )
        records.append(tuple(values[c] for c in COLUMNS))
        # Prices went up by half since training: the labels that come back say so.
        feedback.append((f"r{i}", str(float(row["price"]) * 1.5), when))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT, records)
    conn.executemany("INSERT INTO feedback VALUES (?, ?, ?)", feedback)
    conn.execute("COMMIT")
    conn.close()
    outcome = monitor_once(
        "requests",
        str(world["run"]),
        window="7d",
        out_dir=tmp_path / "report",
        request_log=log,
        alert_log=tmp_path / "alerts.jsonl",
    )
    result = outcome.result
    assert result.current_rows == 300  # the 100 older requests are outside the window
    assert result.performance["rows"] == 300 and result.performance["decayed"]
    truth = rows["price"].to_numpy()[100:] * 1.5
    assert result.performance["current"] == pytest.approx(float(np.mean(np.abs(truth - predictions[100:]))))
    assert result.performance["reference"] == pytest.approx(world["mae"])
    assert "performance_decay" in [a.kind for a in result.alerts]
    assert not result.drift.dataset_drift  # the inputs themselves did not move


def test_too_few_rows_is_not_enough_data_and_exits_0(world, tmp_path):
    batch = _batch(world, "tiny.csv", world["pool"].head(20))
    done = run_cli(
        "monitor", "--source", str(batch), "--reference", str(world["run"]), "--out", str(tmp_path), "--no-notebook"
    )
    assert done.returncode == 0, done.stderr
    assert "monitor: not enough data" in done.stdout


def test_bad_source_and_window_are_usage_errors(world, tmp_path):
    missing = run_cli("monitor", "--source", str(tmp_path / "nope.csv"), "--reference", str(world["run"]))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    window = run_cli(
        "monitor",
        "--source",
        "requests",
        "--window",
        "7 days",
        "--reference",
        str(world["run"]),
        "--request-log",
        str(tmp_path / "r.db"),
        "--out",
        str(tmp_path),
        "--no-notebook",
    )
    assert window.returncode == 2 and "window '7 days'" in window.stderr


def test_monitor_notebook_runs_through_the_cli(world, tmp_path):
    done = run_cli("monitor", "--source", "heldout", "--reference", str(world["run"]), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "monitor.ipynb").exists() and (tmp_path / "features.png").exists()
    from runner.scraps import read_scraps

    scraps = read_scraps(tmp_path / "monitor.ipynb")
    assert scraps["status"] == "healthy" and scraps["current_rows"] == 800 and scraps["webhook"] == "not sent"


@pytest.fixture(scope="module")
def census_run(tmp_path_factory):
    """A finished Census run folder (snapshot of 6,000 rows, a logistic regression), and the rows it never saw."""
    base = tmp_path_factory.mktemp("census-monitor")
    done = write_finished_run(base / "runs" / "census-1", "census", 6000, "logreg")
    return {"base": base, "run": done.run, "pool": done.unseen[done.spec.features]}


def test_census_ages_plus_15_years_alone_alert_and_exit_1(census_run, tmp_path):
    pool, run = census_run["pool"], census_run["run"]
    clean = monitor_once(
        str(_batch(census_run, "census-clean.csv", pool.sample(2000, random_state=7))),
        str(run),
        out_dir=tmp_path / "clean",
        alert_log=tmp_path / "alerts.jsonl",
    )
    assert clean.result.status == "healthy" and clean.result.rules == []
    older = perturb(pool.sample(2000, random_state=8), ["age=+15"], seed=8)
    done = run_cli(
        "monitor",
        "--source",
        str(_batch(census_run, "census-older.csv", older)),
        "--reference",
        str(run),
        "--out",
        str(tmp_path / "older"),
        "--no-notebook",
        env={"LABLINE_ALERTS": str(tmp_path / "alerts.jsonl")},
    )
    assert done.returncode == ExitCode.FAILED, done.stdout + done.stderr
    assert "rule feature_effect: age" in done.stdout
    result = json.loads((tmp_path / "older" / "result.json").read_text())
    assert result["status"] == "alert" and not result["drift"]["dataset_drift"]  # 1 of 14 features
    by_rule = {a["rule"]: a for a in result["alerts"]}
    assert by_rule[AlertRule.FEATURE_EFFECT]["details"]["features"] == ["age"]
    age = next(f for f in result["drift"]["features"] if f["feature"] == "age")
    assert age["method"] == "ks" and age["adjusted_p"] < 1e-6 and age["effect"] > 1.0  # 15 years > 1 std
    assert age["adjusted_p"] >= age["p_value"]
    assert sum(result["importance"].values()) == pytest.approx(1.0)
    report = (tmp_path / "older" / "report.md").read_text()
    assert "- **feature_effect** (dataset_drift): large drift: age (effect" in report and "| adjusted p |" in report
