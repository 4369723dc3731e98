"""The same row gets the same answer on every path (issue 25), as a property over the data set's
declaration.

For Iris, Census and Airbnb, a scikit-learn pipeline and a PyTorch network trained on a small
sample are served by one real `labline serve` per data set (champion and challenger, each client
id routed to one of them). Hypothesis draws rows from the declaration
(numbers inside and at the ends of each declared range, every declared category, so the rare and
the ones the sample never saw, missing values where the data set allows them, free text); each
row's answer must be the same through the library (LoadedModel), `/predict` alone,
`/predict/batch`, `/predict` from concurrent clients (micro-batched), batch inference as the
infer notebook calls it (predict_file on a Parquet file) and replay of the logged requests: to
1e-12 for the float64 pipeline and 1e-6 for the float32 network (relative for regression). The
last bit may differ with the number of rows scored together (BLAS kernels), hence a tolerance.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labline.data.datasets import load_dataset
from labline.data.spec import DatasetSpec
from labline.models.artifact import LoadedModel, load_model, save_sklearn_model, save_torch_model
from labline.models.batch_infer import predict_file
from labline.models.preprocess import build_preprocessor
from labline.models.sklearn_models import build_training_pipeline
from labline.models.torch_train import NetworkTargets, build_model, loss_function
from tests.fixtures.serve import Server

DATASETS = ["iris", "census", "airbnb"]
KINDS = ["sklearn", "torch"]
TOLERANCE = {"sklearn": 1e-12, "torch": 1e-6}
ARMS = {"sklearn": "champion", "torch": "challenger"}  # the registry aliases the server answers with
SAMPLE_ROWS = 600
EXAMPLES = settings(
    max_examples=4, derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def train_sklearn(spec: DatasetSpec, rows: pd.DataFrame, out) -> None:
    estimator = "logreg" if spec.task == "classification" else "ridge"
    pipeline = build_training_pipeline(spec, estimator, 0).fit(rows[spec.features], rows[spec.target])
    save_sklearn_model(out, pipeline, spec)


def train_torch(spec: DatasetSpec, rows: pd.DataFrame, out) -> None:
    """A small network, 60 full-batch Adam steps: enough to be a model, cheap on two cores."""
    preprocess = build_preprocessor(spec).fit(rows[spec.features])
    targets = NetworkTargets.fit(spec.task, rows[spec.target], list(spec.labels) or None)
    x = torch.from_numpy(np.asarray(preprocess.transform(rows[spec.features]), dtype=np.float32))
    y = torch.from_numpy(targets.encode(rows[spec.target]))
    net, _ = build_model(x.shape[1], [8], targets.n_outputs, torch.device("cpu"), seed=0)
    optimizer, criterion = torch.optim.Adam(net.parameters(), lr=0.02), loss_function(spec.task)
    for _ in range(60):
        optimizer.zero_grad()
        criterion(net(x), y).backward()
        optimizer.step()
    config = {"n_features": int(x.shape[1]), "hidden_sizes": [8], "n_outputs": targets.n_outputs}
    save_torch_model(out, net.eval(), preprocess, config, spec, targets.labels, metadata=targets.metadata())


def register(folder, spec: DatasetSpec) -> str:
    """A registry holding the two models: champion the pipeline, challenger the network."""
    from labline.models.artifact import artifact_sha256
    from labline.registry import Registry

    steps = {
        kind: {
            "status": "succeeded",
            "notebook": f"train_{kind}.ipynb",
            "parameters": {},
            "scraps": {"model_dir": str(folder / kind), "artifact_sha256": artifact_sha256(folder / kind)},
        }
        for kind in KINDS
    }
    url = f"sqlite:///{folder / 'registry.db'}"
    registry = Registry(url=url)
    manifest = {"run_id": f"paths-{spec.name}", "status": "succeeded", "dataset": spec.name, "steps": steps}
    versions = {v.step: v.version for v in registry.register_run(manifest)}
    for kind, arm in ARMS.items():
        registry.set_alias(arm, versions[kind])
    return url


def client_key(arm: str) -> str:
    """A client id that A/B routing sends to `arm` (routing is a pure function of the key)."""
    from labline.serve.routing import choose_arm

    return next(key for key in (f"client-{i}" for i in range(1000)) if choose_arm(key, 0.5) == arm)


@pytest.fixture(scope="module", params=DATASETS)
def served(request, tmp_path_factory):
    """The data set's two models behind one `labline serve`: the pipeline as champion, the network
    as challenger, each reached through a client id routed to its arm."""
    folder = tmp_path_factory.mktemp(f"paths-{request.param}")
    frame, spec = load_dataset(request.param)
    rows = frame.sample(n=min(SAMPLE_ROWS, len(frame)), random_state=0)
    train_sklearn(spec, rows, folder / "sklearn")
    train_torch(spec, rows, folder / "torch")
    url = register(folder, spec)
    log = folder / "requests.db"
    server = Server(["--db", url, "--challenger", "challenger", "--split", "0.5", "--log", str(log)], timeout=240)
    try:
        yield {
            "spec": spec,
            "models": {kind: load_model(folder / kind) for kind in KINDS},
            "url": server.url,
            "registry": url,
            "log": log,
            "headers": {kind: {"X-Client-Id": client_key(arm)} for kind, arm in ARMS.items()},
        }
    finally:
        server.stop()


def value(spec: DatasetSpec, column: str) -> st.SearchStrategy:
    """A valid value of one column, as the declaration allows it."""
    if column in spec.numeric:
        low, high = spec.ranges[column]
        kind = st.one_of(st.floats(low, high, allow_nan=False, allow_infinity=False), st.sampled_from([low, high]))
        kind = kind.map(float)
    elif column in spec.categorical:
        kind = st.sampled_from(spec.categories[column])
    else:
        kind = st.text(st.sampled_from("abcdefgh loftroomsunny"), max_size=30)
    return st.one_of(st.none(), kind) if spec.max_missing_rate > 0 else kind


def rows_of(spec: DatasetSpec) -> st.SearchStrategy:
    row = st.fixed_dictionaries({column: value(spec, column) for column in spec.features})
    return st.lists(row, min_size=1, max_size=5)


def answers(model: LoadedModel, served_answers: list) -> np.ndarray:
    """Answers from the service (prediction or probability dicts) as an array like the library's."""
    if model.spec.task == "classification":
        return np.array([[a["probabilities"][label] for label in model.labels] for a in served_answers])
    return np.array([a["prediction"] for a in served_answers], dtype=np.float64)


def library(model: LoadedModel, rows: list[dict]) -> np.ndarray:
    if model.spec.task == "classification":
        return np.asarray(model.predict_proba(rows), dtype=np.float64)
    return np.asarray(model.predict(rows), dtype=np.float64)


def same(actual, expected, kind: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=TOLERANCE[kind], atol=TOLERANCE[kind])


def infer_file(model: LoadedModel, rows: list[dict], folder) -> np.ndarray:
    """Batch inference as notebooks/infer.ipynb runs it: predict_file on a Parquet file of the rows."""
    source, target = folder / "rows.parquet", folder / "predictions.parquet"
    pd.DataFrame(rows, columns=model.spec.features).to_parquet(source, index=False)
    predict_file(model, source, target)
    written = pd.read_parquet(target)
    if model.spec.task == "classification":
        return written[[f"proba_{label}" for label in model.labels]].to_numpy(dtype=np.float64)
    return written["prediction"].to_numpy(dtype=np.float64)


def replayed(model: LoadedModel, request_id: str, log, registry: str) -> np.ndarray:
    from labline.serve.replay import replay

    result = replay(request_id, log, registry_url=registry)
    assert result.identical, result.reason
    if model.spec.task == "classification":
        return np.array([result.replayed["probabilities"][label] for label in model.labels])
    return np.float64(result.replayed["prediction"])


@pytest.mark.parametrize("kind", KINDS)
def test_every_path_gives_the_library_answer(served, kind, tmp_path_factory):
    spec, model, url, log = served["spec"], served["models"][kind], served["url"], served["log"]
    headers, registry = served["headers"][kind], served["registry"]
    scratch = tmp_path_factory.mktemp(f"infer-{spec.name}-{kind}")

    @EXAMPLES
    @given(rows=rows_of(spec))
    def check(rows: list[dict]) -> None:
        expected = library(model, rows)
        alone = np.array([library(model, [row])[0] for row in rows])
        with httpx.Client(timeout=60, headers=headers) as http:
            singles = [http.post(f"{url}/predict", json=row).json() for row in rows]
            batch = http.post(f"{url}/predict/batch", json={"records": rows}).json()
            with ThreadPoolExecutor(8) as pool:
                concurrent = list(pool.map(lambda row: http.post(f"{url}/predict", json=row).json(), rows * 3))
        assert {a["artifact_sha256"] for a in [*singles, batch, *concurrent]} == {model.sha256}
        same(answers(model, singles), alone, kind)
        same(answers(model, batch["answers"]), expected, kind)
        same(answers(model, concurrent), np.concatenate([alone] * 3), kind)
        same(infer_file(model, rows, scratch), expected, kind)
        same(replayed(model, singles[0]["request_id"], log, registry), alone[0], kind)
        same(replayed(model, concurrent[-1]["request_id"], log, registry), alone[-1], kind)

    check()


def test_the_served_frame_is_the_training_frame(served):
    """A training row sent as a request becomes the frame the model was trained on, dtype by dtype."""
    from labline.data.frame import model_frame
    from labline.serve.schemas import features_frame

    spec = served["spec"]
    frame, _ = load_dataset(spec.name)
    training = frame[spec.features].head(50).reset_index(drop=True)
    requests = [
        {c: None if pd.isna(v) else (float(v) if c in spec.numeric else v) for c, v in row.items()}
        for row in training.to_dict(orient="records")
    ]
    served_frame = features_frame(spec, requests)
    pd.testing.assert_frame_equal(served_frame, training)
    pd.testing.assert_frame_equal(model_frame(spec, training), training)


def test_a_missing_category_is_nan_whatever_the_batch_holds():
    """Alone, beside complete records, or spelled as Census's "?": the same typed value."""
    from labline.data.census import SPEC
    from labline.data.frame import model_frame

    record = {c: 30.0 if c in SPEC.numeric else SPEC.categories[c][0] for c in SPEC.features}
    missing = {**record, "workclass": None}
    alone = model_frame(SPEC, [missing])
    beside = model_frame(SPEC, [record, missing, {**record, "workclass": "?"}])
    assert alone["workclass"].isna().all() and beside["workclass"].isna().tolist() == [False, True, True]
    assert alone.dtypes.equals(beside.dtypes)
    pd.testing.assert_frame_equal(alone, beside.iloc[[1]].reset_index(drop=True))


def test_model_frame_names_what_it_cannot_type():
    from labline.data.census import SPEC
    from labline.data.frame import model_frame

    record = {c: 30.0 if c in SPEC.numeric else SPEC.categories[c][0] for c in SPEC.features}
    without = {c: v for c, v in record.items() if c != "age"}
    with pytest.raises(ValueError, match=r"missing feature columns \['age'\]; the model expects"):
        model_frame(SPEC, [record, without])
    with pytest.raises(ValueError, match="numeric feature 'age' holds 'thirty'; expected a number"):
        model_frame(SPEC, [{**record, "age": "thirty"}])
    with pytest.raises(ValueError, match=r"missing feature columns \['age'\]"):
        model_frame(SPEC, pd.DataFrame([without]))
