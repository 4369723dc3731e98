"""The run and glue contracts: the runner writes only what runner/contracts.py declares, every
notebook a glue contract names glues what the contract requires (read from the notebooks' code),
and an audit notebook that stops gluing `audit_passed` makes registration fail naming that glue
(a copy of notebooks/audit.ipynb executed for real with papermill), not the gate say "no audit"."""

from __future__ import annotations

import json
import shutil

import pytest

from labline.glue import (
    AuditGlue,
    CleaningGlue,
    MissingGlue,
    ModelGlue,
    MonitorGlue,
    SnapshotGlue,
    TrainedModelGlue,
    ValidationGlue,
)
from runner.contracts import RunManifest, StepError, StepRecord, StepStatus
from runner.records import RunRecord
from tests.fixtures import ROOT, literal_glues

CONTRACTS = [ModelGlue, TrainedModelGlue, ValidationGlue, SnapshotGlue, CleaningGlue, AuditGlue, MonitorGlue]


def glued_names(notebook: dict) -> set[str]:
    return literal_glues(notebook)


def missing_glue(contract, notebook: dict) -> list[str]:
    return sorted(set(contract.required()) - glued_names(notebook))


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.__name__)
def test_every_notebook_a_contract_names_glues_what_it_requires(contract):
    assert contract.NOTEBOOKS and contract.required()
    for name in contract.NOTEBOOKS:
        notebook = json.loads((ROOT / "notebooks" / name).read_text())
        assert missing_glue(contract, notebook) == [], f"notebooks/{name} vs {contract.__name__}"


def test_the_static_check_finds_a_glue_removed_from_audit():
    notebook = json.loads((ROOT / "notebooks" / "audit.ipynb").read_text())
    assert missing_glue(AuditGlue, notebook) == []
    for cell in notebook["cells"]:
        cell["source"] = [line for line in cell["source"] if 'sb.glue("audit_passed"' not in line]
    assert missing_glue(AuditGlue, notebook) == ["audit_passed"]


def test_the_record_writes_only_contract_fields_and_status_words(tmp_path):
    record = RunRecord.create(tmp_path, "p", {"dataset": "iris"})
    record.add_step("a", "a.ipynb", [])
    record.update_step("a", status=StepStatus.CACHED, cached_from="r0", scraps={"x": 1})
    with pytest.raises(ValueError, match=r"step field\(s\) \['cachd_from'\] are not part of the run contract"):
        record.update_step("a", cachd_from="r0")
    with pytest.raises(ValueError, match="step status 'done' is not one of"):
        record.update_step("a", status="done")
    record.finish("succeeded")
    on_disk = json.loads((record.path / "manifest.json").read_text())
    assert on_disk["steps"]["a"] == {
        "status": "cached",
        "notebook": "a.ipynb",
        "needs": [],
        "cached_from": "r0",
        "scraps": {"x": 1},
    }
    assert list(on_disk) == ["run_id", "pipeline", "created", "finished", "status", "process", "dataset", "steps"]
    typed = RunManifest.from_dict(on_disk)
    assert typed.steps["a"].status is StepStatus.CACHED and typed.steps["a"].status.ok
    assert typed.metadata == {"dataset": "iris"} and typed.to_dict() == on_disk


def test_a_notebook_error_is_matched_by_type_not_by_name():
    from labline.data.datasets import DatasetError
    from labline.monitor.sources import SourceError

    error = StepError.from_dict({"ename": "SourceError", "evalue": "no such run"})
    assert error.raised(SourceError) and error.raised(ValueError)  # SourceError(ValueError)
    assert not error.raised(DatasetError) and not error.raised(KeyError)
    assert StepError(ename="FileNotFoundError").raised(OSError)
    assert not StepError(ename="DeadKernelError").raised(ValueError, OSError)


def test_a_step_that_provides_a_contract_but_glued_too_little_is_an_error():
    step = StepRecord(StepStatus.SUCCEEDED, "/x/notebooks/train_torch.ipynb", scraps={"model_dir": "/m"})
    assert TrainedModelGlue.provided_by(step)
    with pytest.raises(
        MissingGlue, match=r"step 'train' \(/x/notebooks/train_torch.ipynb\) glued no 'artifact_sha256'"
    ):
        TrainedModelGlue.read("train", step)
    assert ModelGlue.read("train", step).model_dir == "/m"


def test_audit_copy_without_audit_passed_fails_registration_naming_the_glue(tmp_path):
    """A copy of audit.ipynb, one glue removed, executed for real: registration names what is missing."""
    from labline.registry.lineage import IncompleteGlue, versions_in_run
    from runner.execute import execute_step

    source = json.loads((ROOT / "notebooks" / "audit.ipynb").read_text())
    for cell in source["cells"]:
        cell["source"] = [line for line in cell["source"] if 'sb.glue("audit_passed"' not in line]
    copy = tmp_path / "copy" / "audit.ipynb"
    copy.parent.mkdir()
    copy.write_text(json.dumps(source))
    out = tmp_path / "audit"
    params = {"model_dir": str(tmp_path / "no-model"), "output_dir": str(out), "n_boot": 10}
    outcome = execute_step(copy, out / "audit.ipynb", params, cwd=ROOT)
    assert outcome.status == "succeeded", outcome.error
    scraps = outcome.scraps
    assert "audit_passed" not in scraps and "model_sha256" in scraps

    with pytest.raises(
        MissingGlue, match=r"glued no 'audit_passed'.*add sb.glue\('audit_passed', \.\.\.\) to audit.ipynb"
    ):
        AuditGlue.from_scraps(scraps, "audit", str(copy))

    shutil.copytree(out / "quick_model", tmp_path / "model")
    trained = {"model_dir": str(tmp_path / "model"), "artifact_sha256": scraps["model_sha256"]}
    manifest = {
        "run_id": "r1",
        "status": "succeeded",
        "steps": {
            "train_sklearn": {"status": "succeeded", "notebook": "notebooks/train_sklearn.ipynb", "scraps": trained},
            "audit": {"status": "succeeded", "notebook": str(copy), "needs": ["train_sklearn"], "scraps": scraps},
        },
    }
    with pytest.raises(IncompleteGlue, match=r"step 'audit' \(.*audit.ipynb\) glued no 'audit_passed'"):
        versions_in_run(manifest)
    # The same run with the glue put back registers, and the gate's evidence is the audit's.
    manifest["steps"]["audit"]["scraps"] = {**scraps, "audit_passed": True}
    (row,) = versions_in_run(manifest)
    audit = row["checks"]["audit"]
    assert audit["step"] == "audit" and audit["passed"] is True and audit["slices"]
