"""Accepting a risk is a decision: a version the gate refuses (its run's data validation failed)
is refused by `labline promote`, promoted by `promote --accept REASON`, and the registry's
decisions, the model card, the run report and the service's GET /model all say who accepted
what and why. Without --accept nothing changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from labline.registry import Registry
from labline.registry.db import make_engine, migrate
from labline.registry.decisions import DecisionKind
from runner.exit_codes import ExitCode
from tests.fixtures.cli import run_cli
from tests.test_registry import copy_run

REASON = "census course: the women's selection-rate ratio is known and taught; deploy for the API lesson"
USER = "teacher-anna"


def _bad_data(manifest: dict) -> None:
    manifest["steps"]["explore"]["scraps"]["checks_passed"] = False


@pytest.fixture(scope="module")
def accepted(iris_run, tmp_path_factory):
    """A run whose data validation failed, registered; refused by promote, then accepted. Done once."""
    folder = tmp_path_factory.mktemp("accept-risk")
    manifest = copy_run(iris_run, folder / "runs", "run-bad-data", _bad_data)
    url = f"sqlite:///{folder / 'registry.db'}"
    version = next(v for v in Registry(url).register_run(manifest) if v.step == "train_sklearn")
    refused = run_cli("promote", "--version", str(version.version), "--db", url)
    before = (Registry(url).alias_table(), len(Registry(url).decisions()))
    done = run_cli(
        "promote", "--version", str(version.version), "--accept", REASON, "--db", url, env={"LABLINE_USER": USER}
    )
    return {
        "url": url,
        "run_path": folder / "runs" / "run-bad-data",
        "manifest": manifest,
        "version": version,
        "refused": refused,
        "before": before,
        "done": done,
    }


def test_the_gate_refuses_and_nothing_changes_without_accept(accepted):
    refused = accepted["refused"]
    assert refused.returncode == ExitCode.FAILED and "refused" in refused.stdout
    assert "FAIL validation" in refused.stdout and "ACCEPTED" not in refused.stdout
    assert accepted["before"] == ([], 1)  # no alias; one refusal recorded


def test_accept_promotes_and_records_who_when_why_and_the_failed_checks(accepted):
    done, version = accepted["done"], accepted["version"]
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert f"ACCEPTED RISK by {USER}" in done.stdout and REASON in done.stdout
    registry = Registry(accepted["url"])
    assert registry.aliases() == {"champion": version.version}
    newest = registry.decisions()[0]
    assert (newest.kind, newest.who, newest.why, newest.promoted) == (DecisionKind.ACCEPTED, USER, REASON, True)
    risk = newest.accepted_risk
    assert risk.failed_rules() == "validation" and "data validation failed in step 'explore'" in risk.failed[0].reason
    assert registry.accepted_risks(version=version.version) == [risk] and risk.when == newest.created
    assert registry.accepted_risks(run_id="run-bad-data") == [risk] and registry.accepted_risks(run_id="other") == []


def test_the_model_card_says_so(accepted):
    card = Path(accepted["version"].checks["audit"]["card"])
    assert card.is_relative_to(accepted["run_path"])  # the copied run's own card
    text = card.read_text()
    section = text[text.index("## Accepted Risk") : text.index("## Model Details")]
    assert f"- Reason: {REASON}" in section and f"- Accepted by: {USER}" in section
    assert "**validation**: data validation failed" in section and "- When: 20" in section
    assert f"model card {card} records the accepted risk" in accepted["done"].stdout


def test_the_run_report_says_so(accepted, monkeypatch):
    from labline.report import render_report

    monkeypatch.setenv("LABLINE_DB", accepted["url"])
    manifest = accepted["manifest"]
    html = render_report([(accepted["run_path"], manifest)], "none")
    section = html[html.index('id="accepted-') :]
    assert "Accepted risks" in section and "census course: the women&#x27;s selection-rate ratio" in section
    assert USER in section and "validation" in section


def test_get_model_says_so_and_serves_the_accepted_champion(accepted, tmp_path):
    from labline.serve import ServeSettings, create_app

    # `labline serve --dataset iris` asks for iris@champion: the accepted version holds it
    settings = ServeSettings(
        alias="iris@champion", registry_url=accepted["url"], request_log=str(tmp_path / "requests.db")
    )
    with TestClient(create_app(settings)) as client:
        body = client.get("/model").json()
    champion = body["deployments"]["champion"]
    assert champion["version"] == accepted["version"].version
    risk = champion["accepted_risk"]
    assert (risk["reason"], risk["who"], risk["alias"]) == (REASON, USER, "champion")
    assert [c["rule"] for c in risk["failed_checks"]] == ["validation"] and risk["when"]


def test_accept_needs_words_and_never_covers_a_gate_that_passed(iris_run, tmp_path):
    manifest = copy_run(iris_run, tmp_path / "runs", "run-good")
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    version = next(v for v in Registry(url).register_run(manifest) if v.step == "train_sklearn")
    blank = run_cli("promote", "--version", str(version.version), "--accept", " ", "--db", url)
    assert blank.returncode == ExitCode.USAGE and '--accept "WHY"' in blank.stderr
    passed = run_cli("promote", "--version", str(version.version), "--accept", "not needed", "--db", url)
    assert passed.returncode == ExitCode.OK and "nothing to accept: the gate passed" in passed.stdout
    newest = Registry(url).decisions()[0]
    assert (newest.kind, newest.why, newest.accepted_risk) == (DecisionKind.GATE, None, None)


def test_a_registry_from_before_decisions_had_authors_keeps_working(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    assert migrate(engine, target=3) == 3
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO decisions (created, alias, version, previous, metric, promoted, reasons, scope) "
                "VALUES ('2026-11-01T10:00:00+00:00', 'champion', NULL, NULL, 'macro_f1', 0, '[]', 'iris')"
            )
        )
    old = Registry(url).decisions()
    assert [(d.kind, d.who, d.why, d.alias) for d in old] == [(DecisionKind.GATE, None, None, "champion")]
    assert Registry(url).accepted_risks() == []
