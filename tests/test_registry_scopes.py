"""Aliases scoped by data set on a real SQLite registry: a Census promotion leaves the Iris champion
untouched, candidates come from the promoted data set alone, an ambiguous alias is named, an old
database's global aliases are migrated in place, and the CLI and `labline serve` name the data set."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from labline.registry import Registry, RegistryError
from labline.registry.db import SCHEMA_VERSION, make_engine, migrate
from labline.registry.scope import dataset_scope, split_ref
from tests.fixtures import ROOT

CENSUS = [
    "dataset=census",
    "explore.sample_rows=1500",
    "train_sklearn.cv_folds=2",
    'train_sklearn.param_grid={"C": [1.0]}',
    "min_slice_count=20",
    "n_boot=50",
]


@pytest.fixture(scope="module")
def census_run(tmp_path_factory):
    """A real small Census run: explore, the scikit-learn model and its audit."""
    from labline.env import run_metadata
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    record = run_pipeline(
        load_pipeline(ROOT / "pipeline.yaml"),
        tmp_path_factory.mktemp("census-runs"),
        overrides=CENSUS,
        only=["audit_sklearn"],
        workers=2,
        metadata={"dataset": "census", **run_metadata(ROOT)},
    )
    assert record.manifest["status"] == "succeeded", record.manifest
    return record


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def fair(manifest: dict) -> dict:
    """The run's manifest with every judged disparity in bounds: this test is about scopes, not the
    bias gate (tests/test_registry.py refuses disparities), and a 1,500-row Census sample may fail it."""
    manifest = json.loads(json.dumps(manifest))
    for body in manifest["steps"].values():
        scraps = body.get("scraps") or {}
        if "audit_passed" in scraps:
            scraps["audit_passed"] = True
            for row in scraps.get("disparities") or []:
                row["passed"] = True
    return manifest


def test_scope_names():
    assert dataset_scope("iris") == "iris" and dataset_scope("census:/data/batch.csv") == "census"
    assert dataset_scope("/x/houses.csv.gz") == "houses" and dataset_scope("iris_synth:1000") == "iris_synth"
    assert dataset_scope(None) == "default"
    assert split_ref("iris@champion") == ("iris", "champion") and split_ref("champion") == (None, "champion")


def test_a_census_promotion_leaves_the_iris_champion_untouched(iris_run, census_run, tmp_path):
    path = tmp_path / "labline.db"
    reg = Registry(f"sqlite:///{path}")
    iris = reg.register_run(iris_run.manifest)
    assert {v.scope for v in iris} == {"iris"}
    first = reg.promote()  # one data set in the registry: no --dataset needed, as before scopes
    assert first.promoted and first.scope == "iris"
    iris_champion = first.candidate.version
    iris_alias_row = rows(path, "SELECT scope, alias, version, updated FROM aliases")
    assert [r[:3] for r in iris_alias_row] == [("iris", "champion", iris_champion)]

    census = reg.register_run(fair(census_run.manifest))
    assert [v.scope for v in census] == ["census"] and census[0].task == "classification"
    with pytest.raises(RegistryError, match=r"several data sets \(census, iris\).*--dataset"):
        reg.promote()
    decision = reg.promote(scope="census")
    # Candidates came from Census alone, and the holder compared with was Census's (nobody), not Iris's.
    assert decision.promoted, [(c.rule, c.reason) for c in decision.checks]
    assert decision.candidate.version == census[0].version and decision.incumbent is None
    assert [v.scope for v, _ in decision.considered] == ["census"]

    assert rows(path, "SELECT scope, alias, version, updated FROM aliases ORDER BY scope") == [
        (
            "census",
            "champion",
            census[0].version,
            rows(path, "SELECT updated FROM aliases WHERE scope = 'census'")[0][0],
        ),
        iris_alias_row[0],  # the Iris row, time of its last move included, exactly as it was
    ]
    assert rows(path, "SELECT scope, version, previous, promoted FROM decisions ORDER BY id") == [
        ("iris", iris_champion, None, 1),
        ("census", census[0].version, None, 1),
    ]
    assert reg.resolve("iris@champion").version == iris_champion
    assert reg.resolve("champion", scope="census").version == census[0].version
    with pytest.raises(RegistryError, match=r"held in several data sets: census@champion .*iris@champion"):
        reg.resolve("champion")
    with pytest.raises(RegistryError, match="belongs to data set 'census', not 'iris'"):
        reg.promote(version=census[0].version, scope="iris")
    assert reg.aliases("iris") == {"champion": iris_champion}


def test_old_global_aliases_are_migrated_in_place(tmp_path):
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    assert migrate(make_engine(url), target=2) == 2
    with sqlite3.connect(path) as conn:
        for version, dataset in ((1, "iris"), (2, "census:/data/batch.csv"), (3, None)):
            conn.execute(
                "INSERT INTO model_versions (version, name, run_id, step, dataset, parameters, metrics, "
                "artifact_path, artifact_sha256, packages, created, registered) VALUES "
                f"({version}, 'm', 'r{version}', 'train', ?, '{{}}', '{{}}', '/m', 'abc', '{{}}', 't', 't')",
                (dataset,),
            )
        conn.execute("INSERT INTO aliases VALUES ('champion', 2, 't1')")
        conn.execute("INSERT INTO aliases VALUES ('challenger', 1, 't2')")
        conn.execute(
            "INSERT INTO decisions (created, alias, version, previous, metric, promoted, reasons) "
            "VALUES ('t', 'champion', 2, NULL, 'macro_f1', 1, '[]')"
        )
    reg = Registry(url)
    assert rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert rows(path, "SELECT version, scope FROM model_versions ORDER BY version") == [
        (1, "iris"),
        (2, "census"),
        (3, "default"),
    ]
    assert rows(path, "SELECT scope, alias, version, updated FROM aliases ORDER BY alias") == [
        ("iris", "challenger", 1, "t2"),
        ("census", "champion", 2, "t1"),
    ]
    assert rows(path, "SELECT alias, version, scope FROM decisions") == [("champion", 2, None)]
    assert reg.resolve("champion").version == 2 and reg.resolve("challenger").aliases == ["challenger"]


def test_cli_promote_alias_and_serve_name_the_data_set(iris_run, census_run, tmp_path, capsys):
    from labline.cli import main
    from labline.commands.serve import _scoped, _served
    from labline.serve.settings import ServeSettings

    url = f"sqlite:///{tmp_path / 'labline.db'}"
    reg = Registry(url)
    reg.register_run(iris_run.manifest)
    census = reg.register_run(fair(census_run.manifest))[0]
    assert main(["promote", "--db", url]) == 1
    assert "several data sets (census, iris)" in capsys.readouterr().err
    assert main(["promote", "--dataset", "census", "--db", url]) == 0
    assert f"promoted: {census.label} as 'champion' of census" in capsys.readouterr().out
    assert main(["alias", "challenger", str(census.version), "--db", url]) == 0
    assert capsys.readouterr().out.strip() == f"census@challenger -> {census.label}"
    assert main(["alias", "--db", url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"census@challenger -> v{census.version}",
        f"census@champion -> v{census.version}",
    ]
    assert main(["alias", "champion", "--dataset", "iris", "--db", url]) == 1
    assert "neither a version number nor an alias for data set 'iris'" in capsys.readouterr().err

    assert _scoped("champion", "iris") == "iris@champion" and _scoped("3", "iris") == "3"
    assert _scoped("census@champion", "iris") == "census@champion" and _scoped("champion", None) == "champion"
    settings = ServeSettings(alias=_scoped("champion", "census"), registry_url=url, request_log=str(tmp_path / "r.db"))
    assert _served(settings) == f"the census model (census@champion, {census.label})"
