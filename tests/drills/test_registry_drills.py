"""Registry drills, done for real on the registry behind `registry_url` (one run per backend):
a flipped byte in each artifact kind is refused by promote and alias with the file named; a forced
champion move needs a reason and is recorded; 8 concurrent `labline` processes per registry
command leave versions, aliases and decisions consistent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from labline.registry import Registry
from labline.registry.decisions import DecisionKind
from runner.exit_codes import ExitCode
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli
from tests.test_registry import copy_run

WRITERS = 8
TAMPERED = [("train_sklearn", "pipeline.skops"), ("train_torch", "state_dict.pt")]


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def registered(iris_run, folder: Path, url: str, run_id: str) -> dict[str, int]:
    """A private copy of the Iris run registered at `url`: {step: version}."""
    manifest = copy_run(iris_run, folder, run_id)
    return {v.step: v.version for v in Registry(url).register_run(manifest)}


@pytest.mark.parametrize(("step", "file"), TAMPERED)
def test_a_flipped_byte_is_refused_by_promote_and_alias(iris_run, registry_url, tmp_path, step, file):
    versions = registered(iris_run, tmp_path / "runs", registry_url, "run-tampered")
    model_dir = Path(Registry(registry_url).get(versions[step]).artifact_path)
    flip_byte(model_dir / file)
    version = str(versions[step])

    promote = run_cli("promote", "--version", version, "--alias", "challenger", "--db", registry_url)
    assert promote.returncode == ExitCode.FAILED, promote.stdout + promote.stderr
    assert "refused" in promote.stdout and "FAIL artifact" in promote.stdout
    assert str(model_dir / file) in promote.stdout  # the file is named
    accepted = run_cli("promote", "--version", version, "--accept", "ship it anyway", "--db", registry_url)
    assert accepted.returncode == ExitCode.FAILED and str(model_dir / file) in accepted.stdout
    moved = run_cli("alias", "challenger", version, "--db", registry_url)
    assert moved.returncode == ExitCode.FAILED and str(model_dir / file) in moved.stderr, moved.stderr

    registry = Registry(registry_url)
    assert registry.alias_table() == []  # nothing moved
    refused = registry.decisions()
    assert [(d.kind, d.promoted, d.version) for d in refused] == [(DecisionKind.GATE, False, versions[step])] * 2
    assert all(not d.checks[0].passed and d.checks[0].rule == "artifact" for d in refused)


def test_the_untouched_artifact_still_promotes(iris_run, registry_url, tmp_path):
    """The other kind's artifact of the same run is intact: verification refuses only what changed."""
    versions = registered(iris_run, tmp_path / "runs", registry_url, "run-half-tampered")
    flip_byte(Path(Registry(registry_url).get(versions["train_torch"]).artifact_path) / "state_dict.pt")
    done = run_cli("promote", "--version", str(versions["train_sklearn"]), "--db", registry_url)
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "PASS artifact" in done.stdout
    assert Registry(registry_url).aliases() == {"champion": versions["train_sklearn"]}


def test_forced_champion_move_needs_a_reason_and_is_recorded(iris_run, registry_url, tmp_path):
    versions = registered(iris_run, tmp_path / "runs", registry_url, "run-forced")
    first, second = versions["train_sklearn"], versions["train_torch"]
    assert run_cli("promote", "--version", str(first), "--db", registry_url).returncode == ExitCode.OK

    bare = run_cli("alias", "champion", str(second), "--force", "--db", registry_url)
    assert bare.returncode == ExitCode.USAGE and '--reason "WHY"' in bare.stderr, bare.stderr
    blank = run_cli("alias", "champion", str(second), "--force", "--reason", "  ", "--db", registry_url)
    assert blank.returncode == ExitCode.USAGE
    assert Registry(registry_url).aliases() == {"champion": first} and len(Registry(registry_url).decisions()) == 1

    env = {"LABLINE_USER": "drill-operator"}
    why = "rollback: v-next mislabels setosa in production"
    forced = run_cli("alias", "champion", str(second), "--force", "--reason", why, "--db", registry_url, env=env)
    assert forced.returncode == ExitCode.OK, forced.stderr
    newest = Registry(registry_url).decisions()[0]
    assert (newest.kind, newest.alias, newest.previous, newest.version) == ("forced", "champion", first, second)
    assert (newest.who, newest.why, newest.promoted, newest.scope) == ("drill-operator", why, True, "iris")
    assert newest.created and Registry(registry_url).aliases() == {"champion": second}

    listed = run_cli("decisions", "--db", registry_url)
    assert f"iris@champion: forced v{second} (held by v{first}) by drill-operator" in listed.stdout
    assert f"why: {why}" in listed.stdout


# ---- 8 concurrent writers per registry command ------------------------------------------------------
def _labline(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "labline.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _all_at_once(commands: list[list[str]], env: dict[str, str]) -> list[tuple[int, str]]:
    """Start every command before waiting for any; (exit code, output) of each."""
    started = [_labline(*c, env=env) for c in commands]
    done = [(p.wait(timeout=300), p.stdout.read() + p.stderr.read()) for p in started]
    for p in started:
        p.stdout.close()
        p.stderr.close()
    return done


def _replay(decisions) -> int | None:
    """Apply the decisions in the order they were written; each must have seen the holder the previous left."""
    holder = None
    for d in decisions:
        assert d.previous == holder, f"decision #{d.id} saw v{d.previous} hold {d.alias}, but it was v{holder}"
        if d.kind == DecisionKind.REMOVED:
            holder = None
        elif d.promoted:
            holder = d.version
    return holder


def test_eight_concurrent_writers_per_command_keep_the_registry_consistent(iris_run, registry_url, tmp_path):
    runs = tmp_path / "runs"
    for i in range(WRITERS // 2):
        copy_run(iris_run, runs, f"run-{i}")
    env = {"LABLINE_USER": "drill"}
    db = ["--db", registry_url]

    registered_ = _all_at_once([["register", f"run-{i // 2}", "--runs", str(runs), *db] for i in range(WRITERS)], env)
    assert all(code == ExitCode.OK for code, _ in registered_), registered_
    versions = Registry(registry_url).versions()
    assert len(versions) == WRITERS and len({(v.run_id, v.step) for v in versions}) == WRITERS  # no duplicate
    numbers = [v.version for v in versions]

    promoted = _all_at_once([["promote", "--alias", "champion", *db] for _ in range(WRITERS)], env)
    assert sorted(code for code, _ in promoted) == [ExitCode.OK] + [ExitCode.FAILED] * (WRITERS - 1), promoted
    forced = _all_at_once(
        [["alias", "champion", str(n), "--force", "--reason", f"drill move {n}", *db] for n in numbers], env
    )
    assert all(code == ExitCode.OK for code, _ in forced), forced
    accepted = _all_at_once(
        [
            ["promote", "--version", str(n), "--alias", "challenger", "--margin", "1", "--accept", f"drill {n}", *db]
            for n in numbers
        ],
        env,
    )
    assert all(code == ExitCode.OK for code, _ in accepted), accepted  # a margin of 1: only the first passes

    registry = Registry(registry_url)
    history = list(reversed(registry.decisions()))  # oldest first
    champion = [d for d in history if d.alias == "champion"]
    challenger = [d for d in history if d.alias == "challenger"]
    assert [d.kind for d in champion] == [DecisionKind.GATE] * WRITERS + [DecisionKind.FORCED] * WRITERS
    assert sum(d.promoted for d in champion[:WRITERS]) == 1  # the copies tie: only the first one promotes
    assert {d.why for d in champion[WRITERS:]} == {f"drill move {n}" for n in numbers}
    assert len(challenger) == WRITERS and all(d.promoted for d in challenger)
    assert sum(d.kind == DecisionKind.ACCEPTED for d in challenger) >= WRITERS - 1
    assert all(d.who == "drill" for d in history)
    holders = {"champion": _replay(champion), "challenger": _replay(challenger)}
    assert registry.aliases() == holders and holders["challenger"] == challenger[-1].version
    risks = registry.accepted_risks()
    assert {r.version for r in risks} == {d.version for d in challenger if d.kind == DecisionKind.ACCEPTED}
    assert all(r.reason == f"drill {r.version}" and "metric" in r.failed_rules() for r in risks)
    if registry_url.startswith("sqlite"):
        with registry.engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
    assert json.loads(json.dumps([r.to_dict() for r in risks]))  # the record travels as JSON (GET /model)
