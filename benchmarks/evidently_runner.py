"""Evidently's DataDriftPreset on windows written by benchmarks/drift_alerts.py.

Runs in its own virtual environment (benchmarks/.venvs/evidently: Evidently 0.7 needs pandas 2,
labline runs on pandas 3), so it imports nothing from labline. Reads FOLDER/columns.json
({"numerical": [...], "categorical": [...]}), FOLDER/reference.parquet and every
FOLDER/windows/*.parquet; writes FOLDER/evidently.json: per window, the preset's dataset drift
verdict (share of drifted columns >= its default 0.5) and the columns it flagged.

    benchmarks/.venvs/evidently/bin/python benchmarks/evidently_runner.py FOLDER
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def column_drifted(metric: dict) -> tuple[str, bool] | None:
    """(column, drifted) of one ValueDrift metric: p-value methods drift below their threshold,
    distances at or above it; None for other metrics."""
    config = metric["config"]
    if not config["type"].endswith("ValueDrift"):
        return None
    value, threshold = float(metric["value"]), float(config["threshold"])
    drifted = value < threshold if "p_value" in config["method"] else value >= threshold
    return config["column"], drifted


def assess(reference: pd.DataFrame, current: pd.DataFrame, definition: DataDefinition) -> dict:
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    metrics = snapshot.dict()["metrics"]
    count = next(m for m in metrics if m["config"]["type"].endswith("DriftedColumnsCount"))
    columns = [c for c in (column_drifted(m) for m in metrics) if c is not None]
    methods = sorted({m["config"]["method"] for m in metrics if "method" in m["config"]})
    return {
        "dataset_drift": bool(count["value"]["share"] >= count["config"]["drift_share"]),
        "share": float(count["value"]["share"]),
        "drifted": [name for name, drifted in columns if drifted],
        "methods": methods,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: evidently_runner.py FOLDER (with columns.json, reference.parquet, windows/)", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    columns = json.loads((folder / "columns.json").read_text())
    definition = DataDefinition(numerical_columns=columns["numerical"], categorical_columns=columns["categorical"])
    reference = pd.read_parquet(folder / "reference.parquet")
    results = {
        path.stem: assess(reference, pd.read_parquet(path), definition)
        for path in sorted((folder / "windows").glob("*.parquet"))
    }
    (folder / "evidently.json").write_text(json.dumps(results, indent=1))
    print(f"evidently: {len(results)} windows assessed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
