"""The sections of one run's report, each a function of (manifest, run folder) returning HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labline.report import facts, svg
from labline.report.dag import dag_svg
from labline.report.html import badge, esc, fmt, seconds, section, slug, table
from runner.contracts import StepStatus


def pipeline(m: dict[str, Any], path: Path, anchor: str) -> str:
    """The DAG, then one row per step: status, time, cache source, cells, notebook."""
    rows = []
    for name, body in m.get("steps", {}).items():
        source = (
            f"run <code>{esc(body['cached_from'])}</code> (took {seconds(body.get('original_seconds'))})"
            if body.get("cached_from")
            else ("executed" if body.get("attempts") else esc(body.get("reason", "")))
        )
        cells = f"{body['cells_done']}/{body['cells_total']}" if "cells_total" in body else "–"
        notebook = Path(body.get("output_notebook") or body.get("notebook") or "").name
        attempts = len(body.get("attempts") or [])
        rows.append(
            [
                f'<a href="#step-{anchor}-{slug(name)}"><b>{esc(name)}</b></a>',
                badge(body.get("status", "?")),
                seconds(body.get("seconds")),
                source,
                cells,
                str(attempts or "–"),
                f"<code>{esc(notebook)}</code>",
            ]
        )
    steps_table = table(
        ["step", "status", "time", "cache source", "cells", "attempts", "notebook"], rows, numeric={2, 4, 5}
    )
    dag = dag_svg(m.get("steps", {})).replace('href="#step-', f'href="#step-{anchor}-')
    return section(
        f"pipeline-{anchor}", "Pipeline", f'<div class="pipeline"><div class="scroll">{dag}</div>{steps_table}</div>'
    )


def _glued(value: Any, path: Path) -> str:
    """A scrap in one short line: tables by their shape, long values cut (the notebook has them whole)."""
    parts = facts.frame(value)
    if parts:
        return f"table {len(parts[2])}×{len(parts[0])}"
    text = fmt(facts.relative(value, path))
    return text if len(text) <= 90 else text[:87] + "…"


def parameters(m: dict[str, Any], path: Path, anchor: str) -> str:
    """Per step: the parameters papermill injected, and what the notebook glued."""
    blocks = []
    for name, body in m.get("steps", {}).items():
        params, glued = body.get("parameters") or {}, facts.scraps(body)
        if not params and not glued:
            continue
        rows = [
            [f"<code>{esc(k)}</code>", f"<code>{esc(fmt(facts.relative(v, path)))}</code>"] for k, v in params.items()
        ]
        scraps = [[f"<code>{esc(k)}</code>", f"<code>{esc(_glued(v, path))}</code>"] for k, v in glued.items()]
        blocks.append(
            f'<div class="card" id="step-{anchor}-{slug(name)}"><h3>{esc(name)} {badge(body.get("status", "?"))}</h3>'
            + (table(["parameter", "value"], rows, "kv") if rows else "")
            + (table(["glued", "value"], scraps, "kv") if scraps else "")
            + "</div>"
        )
    note = (
        "Each step's parameters as injected by papermill, and the scraps it glued; "
        "<code>&lt;run&gt;</code> is this run's folder."
    )
    body = f'<div class="cards">{"".join(blocks)}</div>'
    return section(f"parameters-{anchor}", "Parameters and results", body, note)


def _confusion(name: str, value: Any) -> str:
    parts = facts.frame(value)
    if not parts:
        return ""
    columns, index, rows = parts
    return svg.confusion_matrix([str(c) for c in columns], rows, name)


def _loss(name: str, value: Any) -> str:
    if not isinstance(value, dict) or not value.get("epoch"):
        return ""
    losses = {k: v for k, v in value.items() if k != "epoch" and "loss" in k}
    others = {k: v for k, v in value.items() if k != "epoch" and "loss" not in k}
    charts = [svg.line_chart(value["epoch"], losses, f"{name}: loss")] if losses else []
    if others:
        charts.append(svg.line_chart(value["epoch"], others, f"{name}: {', '.join(others)}"))
    return "".join(charts)


def _slices(name: str, value: Any, worst: Any) -> str:
    rows = []
    for r in facts.records(value):
        share, count = r.get("accuracy"), int(r.get("count") or 0)
        if not isinstance(share, (int, float)):
            continue
        low, high = facts.wilson(share, count)
        is_worst = (
            isinstance(worst, dict)
            and worst.get("feature") == r.get("feature")
            and worst.get("value") == r.get("value")
        )
        rows.append(
            {
                "label": f"{r.get('feature')} = {r.get('value')}",
                "value": share,
                "low": low,
                "high": high,
                "muted": bool(r.get("small")),
                "bad": is_worst,
                "note": f"n={count}",
                "tip": f"accuracy {share:.4f} (95% {low:.2f}–{high:.2f}), f1 {fmt(r.get('f1'))}",
            }
        )
    if not rows:
        return ""
    return svg.interval_chart(rows, f"{name}: accuracy per slice, 95% Wilson interval (worst slice in red)")


def _disparities(name: str, value: Any) -> str:
    rows = []
    for r in facts.records(value):
        if not isinstance(r.get("ratio"), (int, float)):
            continue
        rows.append(
            {
                "label": f"{r.get('attribute')}={r.get('group')} {r.get('metric')}",
                "value": r["ratio"],
                "low": r.get("ci_low"),
                "high": r.get("ci_high"),
                "bad": r.get("passed") is False,
                "muted": r.get("judged") is False,
                "note": f"{r['ratio']:.2f}",
                "tip": f"ratio {r['ratio']:.4f} vs {r.get('reference_group')}",
            }
        )
    if not rows:
        return ""
    high = max(2.0, max((r["high"] or r["value"]) for r in rows) * 1.05)
    return svg.interval_chart(
        rows, f"{name}: group disparity ratios (green: accepted range)", 0.0, high, band=(0.8, 1.25)
    )


def _drift(name: str, result: dict[str, Any]) -> str:
    features = (result.get("drift") or {}).get("features") or []
    rows = [
        {
            "label": f["feature"],
            "value": f.get("effect"),
            "threshold": f.get("threshold"),
            "bad": f.get("status") in ("drift", "missing column"),
            "note": f"{f.get('status')}" + (f" p={f['p_value']:.3g}" if f.get("p_value") is not None else ""),
            "tip": f"{f.get('method')}: effect {fmt(f.get('effect'))}, {f.get('detail', '')}",
        }
        for f in features
    ]
    if not rows:
        return ""
    head = (
        f"<p>{badge(result.get('status', '?'))} {esc(result.get('current_rows'))} current rows against "
        f"{esc(result.get('reference_rows'))} reference rows; drifted share "
        f"{fmt((result.get('drift') or {}).get('drifted_share'))}</p>"
    )
    return head + svg.bar_chart(rows, f"{name}: drift effect per feature (dashed: threshold)")


def plots(m: dict[str, Any], path: Path, anchor: str) -> str:
    groups: dict[str, list[str]] = {
        "Confusion matrices": [],
        "Loss curves": [],
        "Slice metrics": [],
        "Group disparities": [],
        "Drift per feature": [],
    }
    for name, body in m.get("steps", {}).items():
        s = facts.scraps(body)
        label = s.get("model_name") or name
        groups["Confusion matrices"].append(_confusion(f"{label} ({name})", s.get("confusion_matrix")))
        groups["Loss curves"].append(_loss(label, s.get("loss_curve")))
        groups["Slice metrics"].append(_slices(name, s.get("slice_metrics"), s.get("worst_slice")))
        groups["Group disparities"].append(_disparities(name, s.get("disparities")))
        result = facts.monitor_result(body)
        groups["Drift per feature"].append(_drift(name, result) if result else "")
    body = "".join(
        f'<h3>{esc(title)}</h3><div class="plots">{"".join(c)}</div>'
        for title, charts in groups.items()
        if (c := [x for x in charts if x])
    )
    return section(f"plots-{anchor}", "Plots", body) if body else ""


def model_cards(m: dict[str, Any], path: Path, anchor: str) -> str:
    import mistune  # nbconvert's Markdown parser, already installed with it

    render = mistune.create_markdown(escape=True, plugins=["table"])
    cards = []
    for name, body in m.get("steps", {}).items():
        text = facts.text_file(facts.scraps(body).get("model_card_path"))
        if text:
            passed = facts.scraps(body).get("audit_passed")
            verdict = badge("audit passed" if passed else "audit failed") if passed is not None else ""
            cards.append(
                f'<details class="card-md"><summary><b>{esc(name)}</b> {verdict}</summary>'
                f'<div class="markdown">{render(text)}</div></details>'
            )
    return section(f"cards-{anchor}", "Model cards", "".join(cards)) if cards else ""


def failures(m: dict[str, Any], path: Path, anchor: str) -> str:
    blocks = []
    for name, body in facts.failed_steps(m).items():
        error = body.get("error") or {}
        where = f"cell {error['cell']}" if error.get("cell") is not None else "before any cell"
        where += f", line {error['line']}" if error.get("line") else ""
        cell = facts.failing_cell(body)
        cell_html = f'<h4>failing cell</h4><pre class="code">{esc(cell)}</pre>' if cell else ""
        trace = error.get("traceback") or ""
        log = error.get("kernel_log")
        blocks.append(
            f'<div class="failure" id="failure-{anchor}-{slug(name)}"><h3>{esc(name)} {badge(body.get("status"))}</h3>'
            f'<p class="error"><b>{esc(error.get("ename", "Error"))}</b>: {esc(error.get("evalue", ""))}</p>'
            f"<p>at {esc(where)}"
            + (f": <code>{esc(error['source_line'])}</code>" if error.get("source_line") else "")
            + f'</p>{cell_html}<h4>traceback</h4><pre class="trace">{esc(trace)}</pre>'
            + (f'<h4>kernel log</h4><pre class="trace">{esc(log)}</pre>' if log else "")
            + f'<p class="note">partly executed notebook: <code>{esc(body.get("output_notebook", ""))}</code></p>'
            "</div>"
        )
    skipped = [
        f"<li><b>{esc(n)}</b>: {esc(b.get('reason', ''))}</li>"
        for n, b in m.get("steps", {}).items()
        if b.get("status") == StepStatus.SKIPPED
    ]
    if skipped:
        blocks.append(f"<h3>Skipped</h3><ul>{''.join(skipped)}</ul>")
    return section(f"failures-{anchor}", "Failures", "".join(blocks)) if blocks else ""


def environment(m: dict[str, Any], path: Path, anchor: str) -> str:
    git = m.get("git") or {}
    rows = [
        ["run folder", f"<code>{esc(path)}</code>"],
        ["git", f"<code>{esc(fmt(git.get('sha')))}</code>" + (" (uncommitted changes)" if git.get("dirty") else "")],
        ["python", esc(m.get("python", "–"))],
        ["platform", esc(m.get("platform", "–"))],
        ["device", esc(m.get("device", "–"))],
    ]
    rows += [[esc(k), f"<code>{esc(v)}</code>"] for k, v in (m.get("packages") or {}).items()]
    return section(f"environment-{anchor}", "Environment", table(["", ""], rows, "kv"))
