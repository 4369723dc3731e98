"""The model registry on a real database (SQLite, and PostgreSQL where a server starts): registration
and lineage from a real Iris run, the promotion gate passing and refusing for each reason, tamper
detection, migrations, the CLI, and two processes promoting at once."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from labline.registry import Registry, RegistryError
from labline.registry.db import SCHEMA_VERSION, current_version, make_engine, migrate
from labline.registry.gate import Check, GatePolicy, evaluate, higher_is_better
from tests.drills.conftest import *  # noqa: F403  (registry_url and what it needs: one run per registry backend)
from tests.fixtures.cli import run_cli
from tests.fixtures.versions import model_version

FRAME_KEY = "__dataframe__"


def copy_run(record, dest: Path, run_id: str, edit=None) -> dict:
    """Copy a finished run folder under `dest` as `run_id`, paths in its manifest pointing at the copy."""
    target = dest / run_id
    shutil.copytree(record.path, target)
    text = (target / "manifest.json").read_text().replace(str(record.path), str(target))
    manifest = json.loads(text)
    manifest["run_id"] = run_id
    if edit:
        edit(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def db_file(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "reg" / "labline.db"
    return f"sqlite:///{path}", path


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def audit_step_of(manifest: dict, step: str) -> str:
    sha = manifest["steps"][step]["scraps"]["artifact_sha256"]
    return next(
        s
        for s, b in manifest["steps"].items()
        if (b.get("scraps") or {}).get("model_sha256") == sha and "audit_passed" in b["scraps"]
    )


def slice_frame(manifest: dict, audit_step: str) -> dict:
    """The audit's slice table as a DataFrame scrap (read from its CSV)."""
    frame = pd.read_csv(manifest["steps"][audit_step]["scraps"]["slices_path"])
    return {
        FRAME_KEY: {
            "columns": list(frame.columns),
            "index": list(range(len(frame))),
            "data": frame.astype(object).values.tolist(),
        }
    }


# ---- registration and lineage -------------------------------------------------------------------
def stored_versions(url: str) -> list[tuple]:
    """The lineage columns of every stored version, read with SQL (not through Registry), on any backend."""
    from labline.registry.db import model_versions as table

    columns = ("step", "run_id", "artifact_sha256", "data_fingerprint", "git_sha", "dataset", "metrics", "parameters")
    with make_engine(url).connect() as conn:
        query = sa.select(*(table.c[c] for c in columns), table.c.packages).order_by(table.c.version)
        return [tuple(row) for row in conn.execute(query)]


def test_register_run_records_lineage_in_the_database(iris_run, registry_url):  # noqa: F811
    url = registry_url
    manifest = iris_run.manifest
    versions = Registry(url).register_run(manifest)
    trained = [s for s, b in manifest["steps"].items() if "model_dir" in (b.get("scraps") or {})]
    assert sorted(v.step for v in versions) == sorted(trained) and len(trained) == 2

    stored = stored_versions(url)
    assert len(stored) == 2
    for step, run_id, sha, fingerprint, git_sha, dataset, metrics, parameters, packages in stored:
        scraps = manifest["steps"][step]["scraps"]
        assert run_id == manifest["run_id"]
        assert sha == scraps["artifact_sha256"]
        assert fingerprint == manifest["steps"]["explore"]["scraps"]["fingerprint"]
        assert git_sha == manifest["git"]["sha"] and dataset == "iris"
        assert metrics["test_accuracy"] == scraps["test_accuracy"]
        assert packages == manifest["packages"]
        assert "output_dir" not in parameters
    torch = next(v for v in versions if v.step == "train_torch")
    assert torch.parameters["epochs"] == 60  # the run's override, not the pipeline default
    assert torch.checks["validation"]["passed"] is True and torch.checks["audit"]["passed"] is True

    again = Registry(url).register_run(manifest)  # idempotent per (run_id, step)
    assert [v.version for v in again] == [v.version for v in versions]
    assert len(stored_versions(url)) == 2
    with make_engine(url).connect() as conn:
        assert current_version(conn) == SCHEMA_VERSION

    # A later run that reused these steps from the cache holds the same artifacts: no duplicates.
    reused = json.loads(json.dumps(manifest))
    reused["run_id"] = "later-run"
    for step in trained:
        reused["steps"][step]["status"] = "cached"
    assert sorted(v.version for v in Registry(url).register_run(reused)) == sorted(v.version for v in versions)
    assert len(stored_versions(url)) == 2


def test_register_refuses_failed_runs_and_changed_artifacts(iris_run, registry_url):  # noqa: F811
    reg = Registry(registry_url)
    failed = json.loads(json.dumps(iris_run.manifest))
    failed["status"] = "failed"
    with pytest.raises(RegistryError, match="status 'failed'"):
        reg.register_run(failed)
    changed = json.loads(json.dumps(iris_run.manifest))
    changed["steps"]["train_torch"]["scraps"]["artifact_sha256"] = "0" * 64
    with pytest.raises(RegistryError, match=r"manifest.json has SHA-256 .* changed after training"):
        reg.register_run(changed)
    no_model = json.loads(json.dumps(iris_run.manifest))
    no_model["steps"] = {"explore": no_model["steps"]["explore"]}  # `labline run --only explore`
    assert reg.register_run(no_model) == []
    assert reg.versions() == []


def test_default_location_follows_labline_db(monkeypatch, tmp_path):
    target = tmp_path / "elsewhere" / "registry.db"
    monkeypatch.setenv("LABLINE_DB", f"sqlite:///{target}")
    Registry()
    assert target.exists() and rows(target, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


# ---- loading verifies the artifact ------------------------------------------------------------------
def test_load_model_refuses_tampered_or_missing_artifacts(iris_run, tmp_path, registry_url):  # noqa: F811
    manifest = copy_run(iris_run, tmp_path / "runs", "copy-run")
    reg = Registry(registry_url)
    torch = next(v for v in reg.register_run(manifest) if v.step == "train_torch")
    version, model = reg.load_model(str(torch.version))
    assert model.sha256 == torch.artifact_sha256 and model.kind == "torch"
    sample = pd.read_parquet(manifest["steps"]["explore"]["scraps"]["snapshot_path"]).head(5)
    assert len(model.predict(sample)) == 5

    weights = Path(torch.artifact_path) / "state_dict.pt"
    original = weights.read_bytes()
    weights.write_bytes(original + b"\0")
    with pytest.raises(RegistryError, match=r"state_dict\.pt does not match"):
        reg.load_model(str(torch.version))
    weights.write_bytes(original)
    reg.load_model(str(torch.version))  # restored: loads again

    artifact_manifest = Path(torch.artifact_path) / "manifest.json"
    artifact_manifest.write_text(artifact_manifest.read_text().replace('"torch"', '"sklearn"', 1))
    with pytest.raises(RegistryError, match=r"manifest\.json has SHA-256 .* refused"):
        reg.load_model(str(torch.version))
    shutil.rmtree(torch.artifact_path)
    with pytest.raises(RegistryError, match=r"manifest\.json is missing"):
        reg.load_model(f"v{torch.version}")


# ---- the gate -----------------------------------------------------------------------------------
def _registered(iris_run, tmp_path, run_id, edit=None, url=None) -> tuple[Registry, dict, list]:
    manifest = copy_run(iris_run, tmp_path / "runs", run_id, edit)
    reg = Registry(url or db_file(tmp_path)[0])
    return reg, manifest, reg.register_run(manifest)


def _failed_rules(decision) -> dict[str, str]:
    return {c.rule: c.reason for c in decision.checks if not c.passed}


def test_promote_best_eligible_with_no_champion_and_record_decision(iris_run, tmp_path, registry_url):  # noqa: F811
    reg, manifest, versions = _registered(iris_run, tmp_path, "run-a", url=registry_url)
    dry = reg.promote(dry_run=True)
    assert dry.promoted and reg.aliases() == {} and reg.decisions() == []
    decision = reg.promote()
    best = max(versions, key=lambda v: (v.metrics["macro_f1"], v.version))
    assert decision.promoted and decision.candidate.version == best.version
    assert reg.aliases() == {"champion": best.version}
    assert "no champion yet" in next(c.reason for c in decision.checks if c.rule == "metric")
    [stored] = Registry(registry_url).decisions()  # read back from the database
    assert (stored.version, stored.previous, stored.promoted) == (best.version, None, True)
    assert len(stored.checks) == 6  # artifact + 5 rules
    assert reg.resolve("champion").version == best.version


def test_gate_refuses_failed_validation(iris_run, tmp_path):
    def edit(m):
        m["steps"]["explore"]["scraps"]["checks_passed"] = False

    reg, _, versions = _registered(iris_run, tmp_path, "run-bad-data", edit)
    decision = reg.promote(version=versions[0].version)
    assert not decision.promoted and "data validation failed in step 'explore'" in _failed_rules(decision)["validation"]
    assert reg.aliases() == {}
    assert rows(Path(reg.engine.url.database), "SELECT promoted, version FROM decisions") == [(0, versions[0].version)]


def test_gate_refuses_failed_or_missing_audit(iris_run, tmp_path):
    def edit(m):
        m["steps"][audit_step_of(m, "train_torch")]["scraps"]["audit_passed"] = False
        del m["steps"][audit_step_of(m, "train_sklearn")]

    reg, _, versions = _registered(iris_run, tmp_path, "run-bad-audit", edit)
    by_step = {v.step: v for v in versions}
    failed = _failed_rules(reg.promote(version=by_step["train_torch"].version))
    assert "did not pass" in failed["audit"]
    failed = _failed_rules(reg.promote(version=by_step["train_sklearn"].version))
    assert "has no audit step for this model" in failed["audit"]
    assert reg.aliases() == {}


def test_gate_refuses_disparities_out_of_bounds(iris_run, tmp_path):
    def edit(m):
        m["steps"][audit_step_of(m, "train_torch")]["scraps"]["disparities"] = [
            {
                "attribute": "sex",
                "group": "Female",
                "reference_group": "Male",
                "metric": "selection_rate",
                "value": 0.1,
                "reference_value": 0.3,
                "ratio": 0.3333,
                "passed": False,
                "group_size": 40,
            },
            {
                "attribute": "race",
                "group": "Other",
                "reference_group": "White",
                "metric": "selection_rate",
                "value": 0.28,
                "reference_value": 0.3,
                "ratio": 0.9333,
                "passed": True,
                "group_size": 40,
            },
            # Out of bounds, but on a group the audit found too small to judge: reported, not held against it.
            {
                "attribute": "race",
                "group": "Eskimo",
                "reference_group": "White",
                "metric": "selection_rate",
                "value": 0.0,
                "reference_value": 0.3,
                "ratio": 0.0,
                "passed": False,
                "group_size": 4,
                "judged": False,
            },
        ]

    reg, _, versions = _registered(iris_run, tmp_path, "run-unfair", edit)
    torch = next(v for v in versions if v.step == "train_torch")
    failed = _failed_rules(reg.promote(version=torch.version))
    assert set(failed) == {"disparities"}
    assert "1 of 2 judged disparities out of bounds: sex=Female vs Male" in failed["disparities"]
    assert "Eskimo" not in failed["disparities"]


def test_gate_refuses_sensitive_data_without_disparities():
    audit = {
        "step": "audit",
        "status": "succeeded",
        "passed": True,
        "disparities": None,
        "sensitive": ["sex", "race"],
        "slices": None,
    }
    candidate = model_version(
        1,
        {"macro_f1": 0.8},
        dataset="census",
        checks={"validation": {"step": "explore", "passed": True}, "audit": audit},
    )
    checks = {c.rule: c for c in evaluate(candidate, None, "champion", GatePolicy("macro_f1"))}
    assert not checks["disparities"].passed and "['sex', 'race']" in checks["disparities"].reason


def test_metric_direction_and_margin():
    assert higher_is_better("macro_f1") and higher_is_better("test_r2") and not higher_is_better("test_mae")
    champion = model_version(1, {"test_mae": 1.5}, task="regression")
    better = model_version(2, {"test_mae": 1.0}, task="regression")
    worse = model_version(3, {"test_mae": 2.0}, task="regression")

    def metric_check(candidate, margin):
        return next(
            c for c in evaluate(candidate, champion, "champion", GatePolicy("test_mae", margin)) if c.rule == "metric"
        )

    assert metric_check(better, 0.0).passed and metric_check(better, 0.5).passed
    assert not metric_check(better, 0.6).passed
    assert not metric_check(worse, 0.0).passed and "improvement -0.5000" in metric_check(worse, 0.0).reason


def test_gate_compares_slices_and_margin_with_the_champion(iris_run, tmp_path):
    reg, manifest, versions = _registered(iris_run, tmp_path, "run-champion")
    champion = next(v for v in versions if v.step == "train_torch")
    assert reg.promote(version=champion.version).promoted
    champion_audit = audit_step_of(manifest, "train_torch")
    target = next(r for r in champion.checks["audit"]["slices"] if not r["small"])

    def better_but_one_bad_slice(m):
        scraps = m["steps"]["train_torch"]["scraps"]
        scraps["macro_f1"] = champion.metrics["macro_f1"] + 0.01
        frame = slice_frame(m, champion_audit)
        columns = frame[FRAME_KEY]["columns"]
        for row in frame[FRAME_KEY]["data"]:
            if (
                row[columns.index("feature")] == target["feature"]
                and str(row[columns.index("value")]) == target["value"]
            ):
                row[columns.index("f1")] = target["f1"] - 0.2
        m["steps"][champion_audit]["scraps"]["slice_metrics"] = frame

    _, _, second = _registered(iris_run, tmp_path, "run-bad-slice", better_but_one_bad_slice)
    candidate = next(v for v in second if v.step == "train_torch")
    failed = _failed_rules(reg.promote(version=candidate.version))
    assert set(failed) == {"slices"}
    assert f"{target['feature']}={target['value']}" in failed["slices"]
    assert _failed_rules(reg.promote(version=candidate.version, slice_tolerance=0.25)) == {}  # looser bound passes
    assert reg.aliases()["champion"] == candidate.version

    def slightly_better(m):
        m["steps"]["train_torch"]["scraps"]["macro_f1"] = candidate.metrics["macro_f1"] + 0.01

    _, _, third = _registered(iris_run, tmp_path, "run-slightly-better", slightly_better)
    newest = next(v for v in third if v.step == "train_torch")
    failed = _failed_rules(reg.promote(version=newest.version, margin=0.05))
    assert set(failed) == {"metric"} and "margin 0.05" in failed["metric"]
    assert reg.aliases()["champion"] == candidate.version
    assert reg.promote(version=newest.version, margin=0.005).promoted
    assert "already holds" in _failed_rules(reg.promote(version=newest.version))["candidate"]
    history = rows(Path(reg.engine.url.database), "SELECT version, previous, promoted FROM decisions ORDER BY id")
    assert history == [
        (champion.version, None, 1),
        (candidate.version, champion.version, 0),
        (candidate.version, champion.version, 1),
        (newest.version, candidate.version, 0),
        (newest.version, candidate.version, 1),
        (newest.version, newest.version, 0),
    ]


# ---- migrations -----------------------------------------------------------------------------------
def test_newer_labline_opens_older_database(tmp_path):
    url, path = db_file(tmp_path)
    assert migrate(make_engine(url), target=1) == 1
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO model_versions (name, run_id, step, parameters, metrics, artifact_path, "
            "artifact_sha256, packages, created, registered) VALUES ('old', 'r1', 'train', '{}', "
            "'{\"macro_f1\": 0.9}', '/m', 'abc', '{}', 't', 't')"
        )
        conn.execute("INSERT INTO aliases VALUES ('champion', 1, 't')")
    reg = Registry(url)
    assert rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    old = reg.resolve("champion")
    assert (old.name, old.metrics, old.checks, old.aliases) == ("old", {"macro_f1": 0.9}, {}, ["champion"])
    assert reg.decisions() == []
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(RegistryError, match="schema version 99, newer than this labline"):
        Registry(url)


# ---- the command line ---------------------------------------------------------------------------------
def cli(capsys, *args: str) -> tuple[int, str, str]:
    """`labline ARGS` in this process (the subprocess path is exercised once, by `register`)."""
    from labline.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_register_list_show_promote(iris_run, tmp_path, capsys):
    url, path = db_file(tmp_path)
    runs = str(iris_run.path.parent)
    out = run_cli("register", iris_run.run_id, "--runs", runs, "--db", url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("registered v") == 2
    code, listed, _ = cli(capsys, "models", "--db", url, "--format", "json")
    assert [r["step"] for r in json.loads(listed)] == [s for (s,) in rows(path, "SELECT step FROM model_versions")]
    code, shown, _ = cli(capsys, "model", "show", "2", "--db", url)
    sha = rows(path, "SELECT artifact_sha256 FROM model_versions WHERE version = 2")[0][0]
    assert code == 0 and sha in shown and iris_run.run_id in shown
    code, dry, _ = cli(capsys, "promote", "--dry-run", "--db", url)
    assert code == 0 and "would promote" in dry and rows(path, "SELECT * FROM aliases") == []
    code, done, _ = cli(capsys, "promote", "--db", url)
    assert code == 0 and "PASS metric" in done
    champion = rows(path, "SELECT version FROM aliases WHERE alias = 'champion'")[0][0]
    code, again, _ = cli(capsys, "promote", "--version", str(champion), "--db", url)
    assert code == 1 and "already holds 'champion'" in again
    code, _, err = cli(capsys, "alias", "champion", "1", "--db", url)
    assert code == 2 and "labline promote" in err
    code, _, err = cli(capsys, "model", "show", "99", "--db", url)
    assert code == 1 and "no model version 99" in err
    code, history, _ = cli(capsys, "decisions", "--db", url)
    assert code == 0 and history.count("PASS validation") == 2 and "refused" in history
    assert rows(path, "SELECT count(*) FROM decisions") == [(2,)]


# ---- two processes promoting at once ------------------------------------------------------------------
def _promote_in_process(url: str, version: int, barrier) -> None:
    reg = Registry(url)
    barrier.wait()
    reg.promote(version=version)


def test_concurrent_promotions_stay_consistent(iris_run, tmp_path, registry_url):  # noqa: F811
    def lower(m):
        m["steps"]["train_torch"]["scraps"]["macro_f1"] = 0.5

    reg, _, low = _registered(iris_run, tmp_path, "run-low", lower, registry_url)
    _, _, high = _registered(iris_run, tmp_path, "run-high", url=registry_url)
    low_v = next(v for v in low if v.step == "train_torch").version
    high_v = next(v for v in high if v.step == "train_torch").version
    url = registry_url
    context = multiprocessing.get_context("spawn")
    for _ in range(2):
        barrier = context.Barrier(2)
        workers = [context.Process(target=_promote_in_process, args=(url, v, barrier)) for v in (low_v, high_v)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert [w.exitcode for w in workers] == [0, 0]
    # Whatever the order, each decision saw the alias as the one before it left it, and the better model wins.
    history = [(d.version, d.previous, d.promoted) for d in reversed(reg.decisions())]
    assert len(history) == 4
    holder = None
    for version, previous, promoted in history:
        assert previous == holder
        holder = version if promoted else holder
    assert holder == high_v and reg.aliases() == {"champion": high_v}


def test_apply_decision_moves_the_alias_only_from_the_expected_holder(iris_run, tmp_path, registry_url):  # noqa: F811
    reg, _, versions = _registered(iris_run, tmp_path, "run-external", url=registry_url)
    first, second = sorted(v.version for v in versions)
    passed = [Check("metric", True, "better on the retraining holdout")]
    assert reg.apply_decision("champion", first, passed, "macro_f1", expected_holder=None).promoted
    stale = reg.apply_decision("champion", second, passed, "macro_f1", expected_holder=None)  # someone moved it
    assert not stale.promoted and "moved from None to" in _failed_rules(stale)["holder"]
    refused = reg.apply_decision("champion", second, [Check("slices", False, "worse slice")], "macro_f1", first)
    assert not refused.promoted and reg.aliases() == {"champion": first}
    history = [(d.version, d.previous, d.promoted) for d in reversed(reg.decisions())]
    assert history == [(first, None, True), (second, first, False), (second, first, False)]
    assert all(d.kind == "gate" and d.who for d in reg.decisions())
