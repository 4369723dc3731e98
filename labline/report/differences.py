"""Several runs side by side: every parameter and metric in one table, the ones that differ marked."""

from __future__ import annotations

from typing import Any

from labline.report.html import RUN_ID, esc, fmt, section, table

# Timings and throughput differ between any two runs; shown, but not marked as a difference.
NOISY = ("seconds", "per_second", "memory_mb", "started", "finished")


def comparable(value: Any) -> Any:
    """Paths into run folders compare equal when only the run id differs."""
    if isinstance(value, str):
        return RUN_ID.sub("<run>", value)
    if isinstance(value, (list, dict)):
        return RUN_ID.sub("<run>", fmt(value))
    return value


def parameter_rows(m: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {
        (step, k): v
        for step, body in m.get("steps", {}).items()
        for k, v in (body.get("parameters") or {}).items()
        if k not in ("output_dir", "run_id")
    }


def metric_rows(m: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """Numeric scraps of each step, and the audit's metrics one by one."""
    rows = {}
    for step, body in m.get("steps", {}).items():
        for key, value in (body.get("scraps") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows[(step, key)] = value
            elif key == "audit_metrics" and isinstance(value, dict):
                rows.update({(step, f"audit {k}"): v for k, v in value.items() if isinstance(v, (int, float))})
        rows[(step, "status")] = body.get("status")
    return rows


def _diff_table(manifests: list[dict[str, Any]], extract) -> tuple[str, int]:
    per_run = [extract(m) for m in manifests]
    keys = list(dict.fromkeys(k for rows in per_run for k in rows))
    body, classes, differing = [], [], 0
    for key in keys:
        shown = [fmt(comparable(rows.get(key))) for rows in per_run]
        differs = len(set(shown)) > 1
        noisy = key[1].endswith(NOISY)
        differing += differs and not noisy
        mark = ("noisy" if noisy else "diff") if differs else ""
        body.append([esc(key[0]), f"<code>{esc(key[1])}</code>"] + [esc(v) for v in shown])
        # the baseline cell is marked with the row, the others where they differ from it
        classes.append(["", ""] + [mark if i == 0 or v != shown[0] else "" for i, v in enumerate(shown)])
    columns = ["step", "name"] + [m["run_id"] for m in manifests]
    return table(columns, body, "diff-table", classes), differing


def differences_section(manifests: list[dict[str, Any]]) -> str:
    params, n_params = _diff_table(manifests, parameter_rows)
    metrics, n_metrics = _diff_table(manifests, metric_rows)
    note = (
        f"{n_params} parameter(s) and {n_metrics} result(s) differ (marked); the first run is the baseline. "
        "Timings are shown in grey: they differ between any two runs."
    )
    body = f"<h3>Parameters</h3>{params}<h3>Results</h3>{metrics}"
    return section("differences", "Differences between the runs", body, note)
