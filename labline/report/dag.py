"""The pipeline as a picture: steps laid out left to right by topological level, arrows for `needs`."""

from __future__ import annotations

from typing import Any

from labline.report.html import esc, seconds, slug
from runner.contracts import StepStatus

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 58, 56, 18, 12
COLORS = {
    StepStatus.SUCCEEDED: ("#dcfce7", "#16a34a"),
    StepStatus.CACHED: ("#e0f2fe", "#0284c7"),
    StepStatus.SKIPPED: ("#f1f5f9", "#94a3b8"),
    StepStatus.RUNNING: ("#fef9c3", "#ca8a04"),
}
FAILED = ("#fee2e2", "#dc2626")


def levels(steps: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each step's level: 0 without needs, else one more than its deepest need."""
    level: dict[str, int] = {}

    def depth(name: str, seen: tuple = ()) -> int:
        if name not in level:
            needs = [n for n in steps.get(name, {}).get("needs") or [] if n in steps and n not in seen]
            level[name] = 1 + max((depth(n, seen + (name,)) for n in needs), default=-1)
        return level[name]

    for name in steps:
        depth(name)
    return level


def positions(steps: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float]]:
    level = levels(steps)
    columns: dict[int, list[str]] = {}
    for name in steps:
        columns.setdefault(level[name], []).append(name)
    tallest = max(len(c) for c in columns.values())
    where = {}
    for col, names in columns.items():
        offset = (tallest - len(names)) * (NODE_H + GAP_Y) / 2
        for row, name in enumerate(names):
            where[name] = (PAD + col * (NODE_W + GAP_X), PAD + offset + row * (NODE_H + GAP_Y))
    return where


def _subtitle(body: dict[str, Any]) -> str:
    status = body.get("status", "?")
    if status == StepStatus.CACHED:
        return f"cached from {str(body.get('cached_from', ''))[-6:]}"
    if status == StepStatus.SKIPPED:
        return "skipped: upstream failed"
    return f"{status} · {seconds(body.get('seconds'))}"


def _node(name: str, body: dict[str, Any], x: float, y: float) -> str:
    fill, stroke = COLORS.get(body.get("status"), FAILED)
    tip = f"{name}: {body.get('status')}" + (f", from run {body['cached_from']}" if body.get("cached_from") else "")
    return (
        f'<a href="#step-{slug(name)}"><g class="node"><title>{esc(tip)}</title>'
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="9" fill="{fill}" stroke="{stroke}" '
        f'stroke-width="2"/><text x="{x + 12}" y="{y + 23}" font-weight="600" fill="#0f172a">{esc(name)}</text>'
        f'<text x="{x + 12}" y="{y + 43}" fill="{stroke}" font-size="11">{esc(_subtitle(body))}</text></g></a>'
    )


def _edge(a: tuple[float, float], b: tuple[float, float]) -> str:
    x1, y1 = a[0] + NODE_W, a[1] + NODE_H / 2
    x2, y2 = b[0] - 4, b[1] + NODE_H / 2
    mid = (x1 + x2) / 2
    return (
        f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" stroke="#94a3b8" '
        'stroke-width="1.6" marker-end="url(#arrow)"/>'
    )


def dag_svg(steps: dict[str, dict[str, Any]]) -> str:
    """The run's DAG; each node shows status, time or cache source and links to the step's details."""
    if not steps:
        return ""
    where = positions(steps)
    width = max(x for x, _ in where.values()) + NODE_W + PAD
    height = max(y for _, y in where.values()) + NODE_H + PAD
    edges = [
        _edge(where[need], where[name])
        for name, body in steps.items()
        for need in body.get("needs") or []
        if need in where
    ]
    nodes = [_node(name, body, *where[name]) for name, body in steps.items()]
    arrow = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#94a3b8"/></marker></defs>'
    )
    return (
        f'<svg class="dag" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label="pipeline" font-family="system-ui, sans-serif" font-size="13">'
        f"{arrow}{''.join(edges)}{''.join(nodes)}</svg>"
    )
