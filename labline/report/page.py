"""The report document: header, summary tiles, navigation and each run's sections in one HTML file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labline.report import sections
from labline.report.accepted import accepted_risks
from labline.report.cleaning import cleaning_section
from labline.report.differences import differences_section
from labline.report.html import badge, esc, fmt, seconds
from labline.report.models import models_section
from labline.report.notebooks import notebook_css, notebooks_section
from labline.report.style import CSP, CSS
from runner.contracts import StepStatus

RUN_SECTIONS = [
    sections.pipeline,
    sections.failures,
    cleaning_section,
    sections.parameters,
    sections.plots,
    sections.model_cards,
    accepted_risks,
    sections.environment,
]
NOTEBOOK_MODES = ("embed", "link", "none")


def _duration(m: dict[str, Any]) -> float | None:
    try:
        start, end = (datetime.fromisoformat(m[k]) for k in ("created", "finished"))
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def tiles(m: dict[str, Any]) -> str:
    steps = m.get("steps", {})
    counts = {
        s: sum(1 for b in steps.values() if b.get("status") == s)
        for s in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.SKIPPED)
    }
    failed = len(steps) - sum(counts.values())
    items = [
        ("status", badge(m.get("status", "?"))),
        ("wall time", seconds(_duration(m))),
        (
            "steps",
            f"{counts['succeeded']} ran · {counts['cached']} cached · {failed} failed · {counts['skipped']} skipped",
        ),
        ("dataset", esc(m.get("dataset", "–"))),
    ]
    for name, body in steps.items():
        scraps = body.get("scraps") or {}
        for metric in ("test_accuracy", "test_r2"):
            if isinstance(scraps.get(metric), (int, float)):
                items.append((f"{scraps.get('model_name', name)} {metric}", f"<b>{fmt(scraps[metric])}</b>"))
    return (
        '<div class="tiles">'
        + "".join(f'<div class="tile"><div class="k">{esc(k)}</div><div class="v">{v}</div></div>' for k, v in items)
        + "</div>"
    )


def run_article(path: Path, m: dict[str, Any], anchor: str, notebooks: str, out: Path | None, with_models: bool) -> str:
    git = (m.get("git") or {}).get("sha") or "?"
    head = (
        f"<h1>Run <code>{esc(m['run_id'])}</code> {badge(m.get('status', '?'))}</h1>"
        f'<p class="sub">pipeline <b>{esc(m.get("pipeline", "?"))}</b> · created {esc(m.get("created", "?"))}'
        f" · git <code>{esc(str(git)[:10])}</code></p>{tiles(m)}"
    )
    body = [sections.pipeline(m, path, anchor)]
    if with_models:
        from labline.commands.common import COMPARE_METRICS

        body.append(models_section([m], COMPARE_METRICS, anchor))
    body += [f(m, path, anchor) for f in RUN_SECTIONS[1:]]
    body.append(notebooks_section(m, anchor, notebooks, out))
    return f'<article id="run-{anchor}">{head}{"".join(body)}</article>'


def _nav(runs: list[tuple[Path, dict[str, Any]]], html: str) -> str:
    """Links to the sections present: each section of one run, or each run of several."""
    if len(runs) > 1:
        targets = [("differences", "differences"), ("models-all", "models")]
        targets += [(f"run-{i}", f"run {m['run_id']}") for i, (_, m) in enumerate(runs)]
    else:
        names = ("pipeline", "models", "failures", "parameters", "plots", "cards", "notebooks", "environment")
        targets = [(f"{name}-0", name.replace("cards", "model cards")) for name in names]
    links = [f'<a href="#{anchor}">{esc(label)}</a>' for anchor, label in targets if f'id="{anchor}"' in html]
    return f"<nav>{''.join(links)}</nav>"


def render_report(runs: list[tuple[Path, dict[str, Any]]], notebooks: str = "embed", out: Path | None = None) -> str:
    """The whole page for one run or several (given as (folder, manifest) pairs, oldest first)."""
    if notebooks not in NOTEBOOK_MODES:
        raise ValueError(f"notebooks={notebooks!r}; expected one of {', '.join(NOTEBOOK_MODES)}")
    if notebooks == "link" and out is None:
        raise ValueError("notebooks='link' writes files beside the page: give the page's path (out)")
    several = len(runs) > 1
    articles = [run_article(path, m, str(i), notebooks, out, not several) for i, (path, m) in enumerate(runs)]
    top = ""
    if several:
        from labline.commands.common import COMPARE_METRICS

        manifests = [m for _, m in runs]
        top = differences_section(manifests) + models_section(manifests, COMPARE_METRICS, "all")
        articles = [f'<div class="side">{"".join(articles)}</div>']
    title = ", ".join(m["run_id"] for _, m in runs)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>labline report: {esc(title)}</title><style>{CSS}{notebook_css() if notebooks == 'embed' else ''}"
        "</style></head><body>"
        f'<header><span class="brand">labline</span> report · {len(runs)} run{"s" if several else ""}</header>'
        f"{_nav(runs, top + ''.join(articles))}"
        f"<main>{top}{''.join(articles)}</main>"
        f"<footer>written by <code>labline report</code> at {esc(stamp)}</footer></body></html>"
    )


def write_report(runs: list[tuple[Path, dict[str, Any]]], out: str | Path, notebooks: str = "embed") -> Path:
    """Render and write the page atomically (a reader never sees half of it); returns its path."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render_report(runs, notebooks, out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
