"""The request log: one SQLite row per answered record, committed before the answer is sent.

- `schema`: the tables, the `requests` view every reader sees, opening and upgrading a log;
- `rows`: what the writer is handed per model call (`Scoring`) and how values become text;
- `writer`: `RequestLog`, group commit and background checkpoints;
- `readers`: the reader API (requests by time window, by id, a model call's group, deployments);
- `feedback`: ground-truth labels by request id.

Everything other modules use is importable from `labline.serve.request_log` itself.
"""

from labline.serve.request_log.feedback import feedback_labels, write_feedback
from labline.serve.request_log.readers import (
    count_requests,
    expand_payloads,
    find_requests,
    latest_deployment,
    read_requests,
    scoring_group,
)
from labline.serve.request_log.rows import ANSWER_COLUMNS, Scoring, dumps, utc_now
from labline.serve.request_log.schema import (
    BATCH_RECORDS,
    COLUMNS,
    INSERT,
    JSON_COLUMNS,
    ONE_BY_ONE,
    SCHEMA,
    SCHEMA_VERSION,
    connect,
    db_path,
)
from labline.serve.request_log.writer import CHECKPOINT_ROWS, THREAD_COMMIT_ROWS, RequestLog

# The view's two halves under the names they had when the log was one module.
_ONE_BY_ONE, _BATCH_RECORDS = ONE_BY_ONE, BATCH_RECORDS

__all__ = [
    "ANSWER_COLUMNS", "BATCH_RECORDS", "CHECKPOINT_ROWS", "COLUMNS", "INSERT", "JSON_COLUMNS", "ONE_BY_ONE",
    "SCHEMA", "SCHEMA_VERSION", "THREAD_COMMIT_ROWS", "RequestLog", "Scoring", "connect", "count_requests",
    "db_path", "dumps", "expand_payloads", "feedback_labels", "find_requests", "latest_deployment",
    "read_requests", "scoring_group", "utc_now", "write_feedback",
]  # fmt: skip
