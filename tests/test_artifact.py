"""Model artifacts: saved with hashes, verified before anything is deserialised."""

from __future__ import annotations

import shutil

import pytest

from labline.data import load_dataset
from labline.data.snapshot import assign_split, split_frames
from labline.models.artifact import ArtifactError, load_model, save_sklearn_model
from labline.models.sklearn_models import build_training_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    frame, spec = load_dataset("iris")
    train, test = split_frames(assign_split(frame, spec, 0.2, 0))
    pipeline = build_training_pipeline(spec, "logreg").fit(train[spec.features], train[spec.target])
    out = tmp_path_factory.mktemp("model") / "m"
    sha = save_sklearn_model(out, pipeline, spec, metadata={"seed": 0})
    return out, sha, pipeline, test


def test_round_trip_predicts_like_the_fitted_pipeline(saved):
    out, sha, pipeline, test = saved
    model = load_model(out)
    assert model.sha256 == sha and model.kind == "sklearn"
    assert list(model.predict(test)) == list(pipeline.predict(test[model.spec.features]))
    assert model.labels == ["setosa", "versicolor", "virginica"]


def test_tampered_file_is_refused_with_its_name(saved, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(saved[0], out)
    with open(out / "pipeline.skops", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="pipeline.skops.*SHA-256"):
        load_model(out)


def test_missing_file_is_refused_with_its_name(saved, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(saved[0], out)
    (out / "pipeline.skops").unlink()
    with pytest.raises(ArtifactError, match="pipeline.skops is missing"):
        load_model(out)


def test_missing_columns_name_what_is_expected(saved):
    model = load_model(saved[0])
    with pytest.raises(ValueError, match="missing feature columns.*petal_width"):
        model.predict(saved[3].drop(columns=["petal_width"]))


def save_airbnb_like(out) -> str:
    """A ridge pipeline on 60 Airbnb-shaped rows, text feature included, saved to `out`; its hash."""
    import numpy as np
    import pandas as pd

    from labline.data.airbnb import SPEC as spec

    rng = np.random.default_rng(0)
    rows = pd.DataFrame({c: rng.uniform(0, 100, 60) for c in spec.numeric})
    rows["neighbourhood_group"] = rng.choice(["Bronx", "Queens", None], 60)
    rows["room_type"] = rng.choice(["Private room", "Shared room"], 60)
    rows["name"] = rng.choice(["sunny loft", "quiet room near park", "big loft", ""], 60)
    rows["price"] = rng.uniform(10, 350, 60)
    pipeline = build_training_pipeline(spec, "ridge").fit(rows[spec.features], rows[spec.target])
    return save_sklearn_model(out, pipeline, spec, metadata={"seed": 0})


def test_the_same_weights_give_the_same_bytes_across_processes(tmp_path):
    """Another interpreter with another string-hash seed saves the same pipeline byte for byte
    (Airbnb's text feature is a TfidfVectorizer, which keeps an object id): skops's ids and zip
    entry times are fixed."""
    import os
    import subprocess
    import sys

    from tests.fixtures import ROOT

    here = save_airbnb_like(tmp_path / "here")
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    code = f"from tests.test_artifact import save_airbnb_like; print(save_airbnb_like({str(tmp_path / 'there')!r}))"
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == here
    for name in ("pipeline.skops", "manifest.json"):
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes()


def test_torch_artifacts_of_the_same_weights_are_identical(tmp_path):
    import numpy as np
    import torch

    from labline.models.artifact import save_torch_model
    from labline.models.preprocess import build_preprocessor
    from labline.models.torch_train import build_model

    frame, spec = load_dataset("iris")
    hashes, bytes_ = [], []
    for run in ("a", "b"):
        preprocess = build_preprocessor(spec).fit(frame[spec.features])
        net, _ = build_model(4, [8], 3, torch.device("cpu"), seed=7)
        out = tmp_path / run
        hashes.append(
            save_torch_model(
                out,
                net,
                preprocess,
                {"n_features": 4, "hidden_sizes": [8], "n_outputs": 3},
                spec,
                spec.labels,
                metadata={"seed": 7},
            )
        )
        bytes_.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert hashes[0] == hashes[1] and bytes_[0] == bytes_[1]
    loaded = load_model(tmp_path / "a")
    assert np.isfinite(loaded.predict_proba(frame.head(5))).all()


def test_identical_runs_register_two_versions_with_the_same_artifact_hash(iris_run, tmp_path):
    """The Iris run's explore and train_sklearn steps, run again with the recorded parameters:
    reproduce says "identical artifact", and the registry holds two versions with one hash."""
    import json

    from labline.registry import Registry
    from labline.registry.reproduce import reproduce_run
    from runner.spec import load_pipeline
    from tests.fixtures import ROOT

    old = json.loads(json.dumps(iris_run.manifest))
    old["steps"] = {step: old["steps"][step] for step in ("explore", "train_sklearn")}
    (tmp_path / "runs" / old["run_id"]).mkdir(parents=True)
    (tmp_path / "runs" / old["run_id"] / "manifest.json").write_text(json.dumps(old))
    result = reproduce_run(old, load_pipeline(ROOT / "pipeline.yaml"), tmp_path / "runs", workers=1)
    assert result.status == "succeeded"
    recorded = old["steps"]["train_sklearn"]["scraps"]["artifact_sha256"]
    assert [a.line() for a in result.artifacts] == [f"identical artifact: train_sklearn {recorded} in both runs"]

    new = json.loads((tmp_path / "runs" / result.new_run_id / "manifest.json").read_text())
    registry = Registry(url=f"sqlite:///{tmp_path / 'registry.db'}")
    first, second = registry.register_run(old)[0], registry.register_run(new)[0]
    assert first.version != second.version and first.run_id != second.run_id
    assert first.artifact_sha256 == second.artifact_sha256 == recorded
