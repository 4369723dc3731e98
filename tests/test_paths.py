"""labline.paths: each `LABLINE_*` variable overrides its default; unset or empty, the default holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from labline import paths
from labline.monitor.alerts import default_alert_log
from labline.registry.db import default_url
from labline.retrain import default_state_dir
from labline.serve.settings import ServeSettings, default_request_log

VARIABLES = [
    "LABLINE_RUNS",
    "LABLINE_DB",
    "LABLINE_REQUEST_LOG",
    "LABLINE_ALERTS",
    "LABLINE_RETRAIN_STATE",
    "LABLINE_ADMIN_TOKEN",
    "LABLINE_SERVE_SETTINGS",
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "pipeline.yaml").write_text("name: p\nsteps: {}\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path.resolve()


def test_defaults_are_under_the_project_root(project, monkeypatch):
    monkeypatch.setenv("LABLINE_DB", "")  # empty means unset
    assert paths.runs_root() == project / "runs"
    assert default_url() == f"sqlite:///{project / '.labline' / 'labline.db'}"
    assert default_request_log() == project / ".labline" / "requests.db"
    assert default_alert_log() == project / ".labline" / "alerts.jsonl"
    assert default_state_dir() == project / ".labline" / "retrain"
    settings = ServeSettings.from_env()
    assert settings.admin_token is None and settings.request_log == str(project / ".labline" / "requests.db")


def test_each_variable_overrides_its_default(project, monkeypatch, tmp_path):
    monkeypatch.setenv("LABLINE_RUNS", str(tmp_path / "r"))
    monkeypatch.setenv("LABLINE_DB", "sqlite:////elsewhere/x.db")
    monkeypatch.setenv("LABLINE_REQUEST_LOG", str(tmp_path / "req.db"))
    monkeypatch.setenv("LABLINE_ALERTS", str(tmp_path / "a.jsonl"))
    monkeypatch.setenv("LABLINE_RETRAIN_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("LABLINE_ADMIN_TOKEN", "t0ken")
    assert paths.runs_root() == tmp_path / "r"
    assert default_url() == "sqlite:////elsewhere/x.db"
    assert default_request_log() == tmp_path / "req.db"
    assert default_alert_log() == tmp_path / "a.jsonl"
    assert default_state_dir() == tmp_path / "state"
    assert ServeSettings().admin_token == "t0ken"
    monkeypatch.setenv("LABLINE_SERVE_SETTINGS", ServeSettings(alias="7", split=0.5).to_json())
    handed = ServeSettings.from_env()
    assert (handed.alias, handed.split) == ("7", 0.5)
    assert Path(paths.request_log()) == tmp_path / "req.db"
