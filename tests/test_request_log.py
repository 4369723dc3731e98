"""The request log's layout: a batch logged compactly but read back one row per record, lookups
of request ids that are not stored, the upgrade of a version-1 log, and the answer texts that
are encoded once for both the log and the client."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from labline.serve.request_log import (
    COLUMNS,
    RequestLog,
    Scoring,
    connect,
    dumps,
    find_requests,
    read_requests,
    write_feedback,
)
from labline.serve.scoring import Scored

SHA = "a" * 64
BATCH = "0123456789abcdef0123456789abcdef"


def _append(log: RequestLog, scorings: list[Scoring]) -> None:
    async def run():
        await log.append(scorings)

    asyncio.run(run())


def test_a_batch_is_one_row_per_record_with_ids_it_does_not_store(tmp_path):
    path = tmp_path / "requests.db"
    log = RequestLog(path)
    payloads = [{"x": float(i), "name": f"rec {i}"} for i in range(300)]
    records = (
        [dumps(p) for p in payloads],
        [dumps("yes" if i % 3 else "no") for i in range(300)],
        [dumps({"no": 0.25, "yes": 0.75})] * 300,
    )
    single = ("r-single", 0, "client-7", dumps({"x": 1.5, "name": "one"}), dumps("no"), None, 1.25, 0, None)
    _append(
        log,
        [
            Scoring(
                "s-batch",
                "2026-11-23T10:00:00+00:00",
                3,
                SHA,
                "challenger",
                records=records,
                batch_id=BATCH,
                client_key="client-9",
                latency_ms=12.5,
            ),
            Scoring("s-one", "2026-11-23T10:00:01+00:00", None, SHA, "champion", answers=[single]),
        ],
    )
    log.close()

    stored = (
        sqlite3.connect(path).execute("SELECT count(*), count(request_id), count(client_key) FROM answers").fetchone()
    )
    assert stored == (301, 1, 1)  # only the single request stores its id and key
    rows = read_requests(path)
    assert len(rows) == 301
    assert list(rows["request_id"][:300]) == [f"{BATCH}-{i}" for i in range(300)]
    assert list(rows["payload"][:300]) == payloads
    assert set(rows["client_key"][:300]) == {"client-9"} and set(rows["latency_ms"][:300]) == {12.5}
    assert set(rows["model_version"][:300]) == {3} and set(rows["arm"][:300]) == {"challenger"}
    assert rows["request_id"].iloc[300] == "r-single" and rows["client_key"].iloc[300] == "client-7"

    found = find_requests(path, [f"{BATCH}-7", "r-single", f"{BATCH}-299", f"{BATCH}-300", "missing"])
    assert list(found["request_id"]) == [f"{BATCH}-7", f"{BATCH}-299", "r-single"]
    assert found["payload"].iloc[0] == payloads[7] and found["prediction"].iloc[0] == "yes"
    assert found["probabilities"].iloc[1] == {"no": 0.25, "yes": 0.75}

    stored_labels, unknown = write_feedback(path, {f"{BATCH}-3": "no", "r-single": "yes", f"{BATCH}-301": "no"})
    assert (stored_labels, unknown) == (2, [f"{BATCH}-301"])


def test_micro_batched_requests_share_one_scoring_across_commits(tmp_path):
    path = tmp_path / "requests.db"
    log = RequestLog(path)
    for index in range(3):  # three requests scored together, logged by three separate commits
        row = (f"r{index}", index, None, dumps({"x": index}), dumps("a"), dumps({"a": 1.0}), 2.0, 0, None)
        log.submit([Scoring("shared", f"2026-11-23T10:00:0{index}+00:00", 1, SHA, "champion", answers=[row])])
    log.close()
    rows = read_requests(path)
    assert list(rows["score_batch"]) == ["shared"] * 3 and list(rows["score_index"]) == [0, 1, 2]
    assert rows["time"].nunique() == 1  # the model call's time, from the first commit
    assert list(rows["client_key"]) == ["r0", "r1", "r2"]  # no key given: the request id
    assert sqlite3.connect(path).execute("SELECT count(*) FROM scorings").fetchone() == (1,)


V1_SCHEMA = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL, time TEXT NOT NULL,
    client_key TEXT NOT NULL, payload TEXT NOT NULL, prediction TEXT, probabilities TEXT,
    model_version INTEGER, artifact_sha256 TEXT NOT NULL, arm TEXT NOT NULL, latency_ms REAL,
    shadow INTEGER NOT NULL DEFAULT 0, error TEXT, batch_id TEXT, score_batch TEXT, score_index INTEGER,
    UNIQUE (request_id, shadow));
CREATE INDEX requests_time ON requests (time);
CREATE INDEX requests_score_batch ON requests (score_batch);
CREATE TABLE deployments (artifact_sha256 TEXT NOT NULL, model_version INTEGER, ref TEXT NOT NULL, arm TEXT NOT NULL,
    artifact_path TEXT NOT NULL, deployed_at TEXT NOT NULL, lineage TEXT NOT NULL,
    PRIMARY KEY (artifact_sha256, deployed_at, arm));
CREATE TABLE feedback (request_id TEXT PRIMARY KEY, label TEXT NOT NULL, time TEXT NOT NULL);
"""


def test_a_version_1_log_is_upgraded_without_losing_a_request(tmp_path):
    path = tmp_path / "requests.db"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    # fmt: off
    history = [  # two requests scored together, a shadow copy, a batch of two, a row without a group
        ("r1", "2026-01-01T00:00:00+00:00", "k1", '{"x":1.0}', '"a"', '{"a":0.9,"b":0.1}', 4, SHA, "champion",
         1.5, 0, None, None, "g1", 0),
        ("r2", "2026-01-01T00:00:00+00:00", "r2", '{"x":2.0}', '"b"', '{"a":0.2,"b":0.8}', 4, SHA, "champion",
         1.7, 0, None, None, "g1", 1),
        ("r1", "2026-01-01T00:00:01+00:00", "k1", '{"x":1.0}', None, None, 5, SHA, "shadow",
         3.0, 1, "boom", None, "g2", 0),
        (f"{BATCH}-0", "2026-01-02T00:00:00+00:00", f"{BATCH}-0", '{"x":3.0}', '"a"', '{"a":1.0,"b":0.0}', 4, SHA,
         "champion", 9.0, 0, None, BATCH, "g3", 0),
        (f"{BATCH}-1", "2026-01-02T00:00:00+00:00", f"{BATCH}-1", '{"x":4.0}', '"b"', '{"a":0.0,"b":1.0}', 4, SHA,
         "champion", 9.0, 0, None, BATCH, "g3", 1),
        ("r9", "2026-01-03T00:00:00+00:00", "r9", '{"x":5.0}', '"a"', None, None, SHA, "champion",
         0.5, 0, None, None, None, None),
    ]
    # fmt: on
    old.executemany(f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", history)
    old.execute("INSERT INTO feedback VALUES ('r2', 'b', '2026-01-05T00:00:00+00:00')")
    old.commit()
    old.close()

    connect(path).close()
    connect(path).close()  # a second open finds it upgraded already
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'requests'").fetchone() == ("view",)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'requests_v1'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM scorings").fetchone() == (4,)  # g1, g2, g3 and one of its own
    assert conn.execute("SELECT * FROM feedback").fetchall() == [("r2", "b", "2026-01-05T00:00:00+00:00")]
    upgraded = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM requests ORDER BY id").fetchall()
    conn.close()
    expected = [tuple(0 if c == "score_index" and v is None else v for c, v in zip(COLUMNS, row)) for row in history]
    assert upgraded == expected
    assert list(find_requests(path, ["r1"], shadow=True)["error"]) == ["boom"]


@pytest.mark.parametrize("labels", [["setosa", "versicolor", "virginica"], [0, 1], ['say "hi"', "{braces}", "ünï"]])
def test_answer_texts_are_what_the_encoder_writes_and_read_back_bit_for_bit(labels):
    rng = np.random.default_rng(3)
    matrix = rng.dirichlet(np.ones(len(labels)), 50)
    matrix[0, :2] = [5e-324, 1.0 - 5e-324]
    matrix[1, :2] = [0.1 + 0.2, 1e-300]
    predictions = [labels[i] for i in matrix.argmax(axis=1)]
    scored = Scored(predictions, matrix, labels)
    prediction_texts, probability_texts = scored.texts()
    dicts = scored.probability_dicts()
    assert probability_texts == [dumps(d) for d in dicts]
    assert prediction_texts == [dumps(p) for p in predictions]
    assert [json.loads(t) for t in probability_texts] == [{str(k): v for k, v in d.items()} for d in dicts]
    assert all(json.loads(t)[str(labels[0])] == row[0] for t, row in zip(probability_texts, matrix.tolist()))


def test_regression_texts_have_no_probabilities():
    scored = Scored([1.5, 2.25], None, [])
    assert scored.texts() == (["1.5", "2.25"], [None, None])


@pytest.fixture(scope="module")
def census_schema():
    from labline.data.datasets import get_spec
    from labline.serve.schemas import RecordSchema

    return RecordSchema(get_spec("census"), max_batch_records=20)


def _valid_value(spec, column):
    if column in spec.numeric:
        low, high = spec.ranges[column]
        return st.one_of(st.floats(low, high), st.integers(int(low), int(high)), st.none())
    return st.one_of(st.sampled_from(list(spec.categories[column])), st.none())


ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 3_000_000),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=1),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_fast_batch_path_accepts_exactly_what_the_batch_model_accepts(census_schema, data):
    """The TypedDict fast path must never accept what the documented batch model refuses, and
    must give the same payloads when both accept."""
    spec = census_schema.spec
    record = {c: data.draw(_valid_value(spec, c), label=c) for c in spec.features}
    if data.draw(st.booleans(), label="spoil a field"):
        record[data.draw(st.sampled_from(spec.features), label="spoiled")] = data.draw(ANY_VALUE, label="value")
    if data.draw(st.booleans(), label="use Python names"):
        record = {census_schema.names[c]: v for c, v in record.items()}
    if data.draw(st.booleans(), label="extra field"):
        record["extra"] = 1
    body = json.dumps({"records": [record] * data.draw(st.integers(0, 2), label="copies")}).encode()
    try:
        model_payloads = [census_schema.payload(r) for r in census_schema.batch_model.model_validate_json(body).records]
    except ValidationError:
        model_payloads = None
    try:
        fast_payloads = census_schema.batch_payloads(body)
    except ValidationError:
        fast_payloads = None
    assert fast_payloads == model_payloads
    if fast_payloads:
        assert all(type(v) in (float, str, type(None)) for v in fast_payloads[0].values())


def test_windows_and_lookups_read_through_indexes_not_the_whole_log(tmp_path):
    """A monitoring window, a replay group and a request id lookup must not scan the answers
    table: on a log of millions of records that is the difference between milliseconds and minutes."""
    from labline.serve.request_log import _BATCH_RECORDS, _ONE_BY_ONE

    path = tmp_path / "requests.db"
    connect(path).close()
    conn = sqlite3.connect(path)
    columns = ", ".join(COLUMNS)
    queries = [
        f"SELECT {columns} FROM requests WHERE shadow = 0 AND time >= '2026-11-23' ORDER BY id",
        f"SELECT {columns} FROM requests WHERE score_batch = 'x' AND shadow = 0 AND artifact_sha256 = 'y' ORDER BY id",
        f"{_ONE_BY_ONE} AND a.request_id IN ('a', 'b') AND a.shadow = 0",
        f"{_BATCH_RECORDS} AND s.batch_id = 'x' AND a.id IN (1, 2)",
    ]
    for sql in queries:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        assert not [step for step in plan if step.startswith("SCAN a") or "AUTOMATIC" in step], (sql, plan)
        assert not [step for step in plan if step.startswith("SCAN s")], (sql, plan)


def _deployment(version: int, deployed_at: str, path: str):
    from types import SimpleNamespace

    return SimpleNamespace(
        sha256=SHA,
        version=version,
        ref=f"v{version}",
        model=SimpleNamespace(path=path),
        deployed_at=deployed_at,
        lineage={"run_id": f"run-{version}"},
    )


def test_the_reader_api_answers_what_replay_ab_report_and_monitoring_ask(tmp_path):
    from labline.serve.request_log import count_requests, feedback_labels, latest_deployment, scoring_group

    path = tmp_path / "requests.db"
    log = RequestLog(path)
    log.record_deployment("champion", _deployment(1, "2026-11-20T00:00:00+00:00", "/models/one"))
    log.record_deployment("champion", _deployment(2, "2026-11-22T00:00:00+00:00", "/models/two"))
    for index in (2, 0, 1):  # a model call's three requests, committed out of their order in the call
        row = (f"r{index}", index, None, dumps({"x": index}), dumps("a"), None, 1.0, 0, None)
        log.submit([Scoring("call", "2026-11-23T10:00:00+00:00", 2, SHA, "champion", answers=[row])])
    shadow = ("r0", 0, None, dumps({"x": 0}), None, None, 3.0, 1, "boom")
    log.submit([Scoring("shadow-call", "2026-11-23T10:00:01+00:00", 5, SHA, "shadow", answers=[shadow])])
    log.close()

    group = scoring_group(path, "call", SHA, shadow=False)
    assert list(group["request_id"]) == ["r0", "r1", "r2"] and list(group["score_index"]) == [0, 1, 2]
    assert list(group["payload"]) == [{"x": 0}, {"x": 1}, {"x": 2}]
    assert list(scoring_group(path, "shadow-call", SHA, shadow=True)["error"]) == ["boom"]
    assert scoring_group(path, "call", "b" * 64, shadow=False).empty
    assert (count_requests(path), count_requests(path, include_shadow=True)) == (3, 4)

    latest = latest_deployment(path, SHA)
    assert (latest["artifact_path"], latest["model_version"], latest["lineage"]) == (
        "/models/two",
        2,
        {"run_id": "run-2"},
    )
    assert latest_deployment(path, SHA, before="2026-11-21T00:00:00+00:00")["artifact_path"] == "/models/one"
    assert latest_deployment(path, SHA, before="2026-11-19T00:00:00+00:00") == {}

    assert feedback_labels(path) == {}
    assert write_feedback(path, {"r1": "b", "r9": "a"}) == (1, ["r9"])
    assert feedback_labels(path) == {"r1": "b"}
    with pytest.raises(FileNotFoundError, match="no request log at"):
        feedback_labels(tmp_path / "missing.db")


def test_a_log_without_a_feedback_table_has_no_labels(tmp_path):
    from labline.serve.request_log import feedback_labels

    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("CREATE TABLE requests (id INTEGER)").connection.close()
    assert feedback_labels(path) == {}


def test_only_the_request_log_package_reads_or_writes_its_tables():
    """Replay, the A/B report, monitoring and the benchmarks go through the reader API."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    package = root / "labline" / "serve" / "request_log"
    tables = r"(requests|answers|scorings|feedback|deployments)\b"
    raw = re.compile(rf"\b(FROM|INTO|UPDATE|JOIN)\s+{tables}|^\s*(import sqlite3|from sqlite3 )", re.MULTILINE)
    files = [*(root / "labline").rglob("*.py"), *(root / "benchmarks").glob("*.py")]
    offenders = [str(f.relative_to(root)) for f in files if package not in f.parents and raw.search(f.read_text())]
    assert offenders == []
    assert len([f for f in package.glob("*.py") if raw.search(f.read_text())]) >= 4  # the check does find SQL
