"""One monitoring pass, end to end: find the model and its training data, read production
input, assess, write the report, record the alerts, deliver them to a webhook.

`monitor_once` is what `notebooks/monitor.ipynb` and `labline monitor` both call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labline.monitor.alerts import Delivery, record_alerts, send_webhook
from labline.monitor.health import MonitorConfig, MonitorResult, assess
from labline.monitor.report import write_report
from labline.monitor.sources import (
    Current,
    Reference,
    current_from_file,
    current_from_heldout,
    current_from_requests,
    parse_window,
    reference_from_model,
    reference_from_registry,
    reference_from_run,
)


@dataclass
class MonitorOutcome:
    result: MonitorResult
    reference: Reference
    current: Current
    report_path: Path
    alert_log: Path | None
    delivery: Delivery | None


def find_reference(
    reference: str = "",
    registry_url: str | None = None,
    runs_root: str | Path | None = None,
    model_dir: str = "",
    dataset: str = "",
) -> Reference:
    """`reference`: a run id/prefix/folder, `registry:REF` (alias or version), or empty for the
    champion (or, with `model_dir` and `dataset`, that model folder and its data set's split)."""
    from labline.paths import runs_root as default_runs_root

    root = Path(runs_root or default_runs_root())
    if not reference and model_dir:
        return reference_from_model(model_dir, dataset)
    if not reference:
        return reference_from_registry("champion", registry_url, root)
    if reference.startswith("registry:"):
        return reference_from_registry(reference.removeprefix("registry:"), registry_url, root)
    return reference_from_run(reference, root)


def read_current(
    source: str,
    reference: Reference,
    window: str = "7d",
    request_log: str | Path | None = None,
    version: int | None = None,
) -> Current:
    """`source` is `requests` (the request log over `window`; `all` for no limit), `heldout` (the
    reference's own held-out rows) or a batch file."""
    spec = reference.spec
    if source == "heldout":
        return current_from_heldout(reference)
    if source == "requests":
        from labline.serve.settings import default_request_log

        span = None if window in ("", "all") else parse_window(window)
        return current_from_requests(request_log or default_request_log(), spec, span, version=version)
    return current_from_file(source, spec)


def holdout_metrics(model, reference: Reference) -> dict:
    """The model's error on its held-out rows, when the trainer's glued metrics are not at hand."""
    import numpy as np

    test, spec = reference.test, reference.spec
    if spec.target not in test.columns or test.empty:
        return {}
    predicted = np.asarray(model.predict(test))
    if spec.task == "regression":
        return {"test_mae": float(np.mean(np.abs(test[spec.target].to_numpy(float) - predicted.astype(float))))}
    return {"test_accuracy": float(np.mean(test[spec.target].astype(str).to_numpy() == predicted.astype(str)))}


def reference_outputs(model, reference: Reference, min_rows: int):
    """The model's answers to compare production's with: on its held-out rows, which it did not
    train on (a forest's answers on its own training rows are more spread than on new rows, which
    would read as prediction drift); on the training rows when too few are held out."""
    test, spec = reference.test, reference.spec
    rows = test if len(test) >= min_rows and all(c in test.columns for c in spec.features) else reference.train
    return np.asarray(model.predict(rows))


def monitor_once(
    source: str = "requests",
    reference: str = "",
    window: str = "7d",
    out_dir: str | Path = "runs/monitor",
    webhook: str = "",
    registry_url: str | None = None,
    runs_root: str | Path | None = None,
    request_log: str | Path | None = None,
    alert_log: str | Path | None = None,
    config: MonitorConfig | None = None,
    model_dir: str = "",
    dataset: str = "",
) -> MonitorOutcome:
    """Run every check once; the outcome's `result.status` is healthy, alert or not enough data."""
    from labline.models.artifact import load_model

    ref = find_reference(reference, registry_url, runs_root, model_dir, dataset)
    current = read_current(source, ref, window, request_log)
    model = load_model(ref.model_dir)
    config = config or MonitorConfig()
    result = assess(
        ref.train,
        current.features,
        ref.spec,
        model=model,
        current_predictions=current.predictions,
        labels=current.labels,
        reference_metrics=ref.metrics or holdout_metrics(model, ref),
        config=config,
        source=current.detail or current.source,
        model_label=ref.label,
        reference_predictions=reference_outputs(model, ref, config.drift.min_rows),
    )
    report_path = write_report(result, ref.train, current.features, out_dir)
    log, delivery = None, None
    if result.alerts:
        log = record_alerts(result.alerts, alert_log)
        if webhook:
            delivery = send_webhook(webhook, result.alerts, result.status, result.source, str(report_path))
    return MonitorOutcome(result, ref, current, report_path, log, delivery)
