"""Hand-drawn inline SVG charts: a report renders in milliseconds without importing matplotlib.

Each function takes plain numbers (what the notebooks glued) and returns an `<svg>` string.
"""

from __future__ import annotations

import math

from labline.report.html import esc

PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2"]
FONT = 'font-family="system-ui, sans-serif"'


def _svg(width: float, height: float, body: str, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label="{esc(label)}" {FONT} font-size="12">{body}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{esc(text)}</text>'


def confusion_matrix(labels: list[str], rows: list[list[int]], title: str) -> str:
    """Rows are true classes, columns predictions; shade by share of the true class, errors in orange."""
    cell, left, top = 62, 92, 46
    n = len(labels)
    width, height = max(left + cell * n + 16, 7.2 * len(title) + 16), top + cell * n + 40
    parts = [
        _text(left + cell * n / 2, 16, title, "middle", 'font-weight="600"'),
        _text(left + cell * n / 2, 34, "predicted", "middle", 'fill="#64748b"'),
    ]
    for i, row in enumerate(rows):
        total = sum(row) or 1
        parts.append(_text(left - 6, top + cell * i + cell / 2 + 4, labels[i], "end"))
        for j, count in enumerate(row):
            share = count / total
            hue = "37,99,235" if i == j else "234,88,12"
            x, y = left + cell * j, top + cell * i
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="4" '
                f'fill="rgba({hue},{0.08 + 0.85 * share:.2f})"><title>true {esc(labels[i])}, predicted '
                f"{esc(labels[j])}: {count}</title></rect>"
            )
            color = "#fff" if share > 0.55 else "#0f172a"
            parts.append(
                _text(x + cell / 2 - 1, y + cell / 2 + 4, str(count), "middle", f'fill="{color}" font-weight="600"')
            )
    for j, label in enumerate(labels):
        parts.append(
            _text(
                left + cell * j + cell / 2, top + cell * n + 14, label[:11], "middle", 'fill="#334155" font-size="11"'
            )
        )
    parts.append(
        _text(
            12,
            top + cell * n / 2,
            "true",
            "middle",
            f'fill="#64748b" transform="rotate(-90 12 {top + cell * n / 2:.0f})"',
        )
    )
    return _svg(width, height, "".join(parts), title)


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    span = high - low or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if span / (step * m) <= count + 1)
    first = math.ceil(low / step) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def line_chart(x: list[float], series: dict[str, list[float]], title: str, y_label: str = "") -> str:
    """Several series over one x axis (loss curves over epochs)."""
    width, height, left, right, top, bottom = 420, 240, 48, 110, 28, 34
    values = [v for ys in series.values() for v in ys if v is not None]
    if not x or not values:
        return ""
    y_low, y_high = min(0.0, min(values)), max(values) * 1.05 or 1.0
    x_low, x_high = min(x), max(x) if max(x) > min(x) else min(x) + 1

    def px(v):
        return left + (v - x_low) / (x_high - x_low) * (width - left - right)

    def py(v):
        return height - bottom - (v - y_low) / (y_high - y_low) * (height - top - bottom)

    parts = [_text(left, 16, title, "start", 'font-weight="600"')]
    for t in _ticks(y_low, y_high):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e2e8f0"/>')
        parts.append(_text(left - 6, py(t) + 4, f"{t:g}", "end", 'fill="#64748b"'))
    for t in _ticks(x_low, x_high, 5):
        parts.append(_text(px(t), height - bottom + 16, f"{t:g}", "middle", 'fill="#64748b"'))
    parts.append(_text((left + width - right) / 2, height - 4, y_label or "epoch", "middle", 'fill="#64748b"'))
    for k, (name, ys) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, ys) if b is not None)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2">'
            f"<title>{esc(name)}: last {ys[-1]:.4g}</title></polyline>"
        )
        parts.append(f'<rect x="{width - right + 10}" y="{top + 18 * k}" width="12" height="3" fill="{color}"/>')
        parts.append(_text(width - right + 26, top + 18 * k + 5, name))
    return _svg(width, height, "".join(parts), title)


def interval_chart(
    rows: list[dict], title: str, low: float = 0.0, high: float = 1.0, band: tuple[float, float] | None = None
) -> str:
    """One line per row: a dot at `value`, a bar from `low` to `high`; rows flagged `muted` in grey,
    `bad` in red. `band` shades the acceptable range (fairness bounds)."""
    row_h, left, right, top = 22, 210, 70, 30
    width, height = 640, top + row_h * len(rows) + 30

    def px(v):
        return left + (min(max(v, low), high) - low) / (high - low) * (width - left - right)

    parts = [_text(8, 16, title, "start", 'font-weight="600"')]
    if band:
        parts.append(
            f'<rect x="{px(band[0]):.1f}" y="{top - 6}" width="{px(band[1]) - px(band[0]):.1f}" '
            f'height="{row_h * len(rows) + 6}" fill="#dcfce7"/>'
        )
    for t in _ticks(low, high, 5):
        parts.append(
            f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top - 6}" y2="{top + row_h * len(rows)}" stroke="#e2e8f0"/>'
        )
        parts.append(_text(px(t), top + row_h * len(rows) + 16, f"{t:g}", "middle", 'fill="#64748b"'))
    for i, row in enumerate(rows):
        y = top + row_h * i + row_h / 2
        color = "#dc2626" if row.get("bad") else ("#94a3b8" if row.get("muted") else "#2563eb")
        parts.append(_text(left - 8, y + 4, row["label"], "end", 'fill="#334155"'))
        if row.get("low") is not None and row.get("high") is not None:
            parts.append(
                f'<line x1="{px(row["low"]):.1f}" x2="{px(row["high"]):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{color}" stroke-width="3" stroke-linecap="round" opacity="0.45"/>'
            )
        if row.get("value") is not None:
            parts.append(
                f'<circle cx="{px(row["value"]):.1f}" cy="{y:.1f}" r="5" fill="{color}">'
                f"<title>{esc(row.get('tip', row['label']))}</title></circle>"
            )
        parts.append(_text(width - right + 8, y + 4, row.get("note", ""), "start", 'fill="#64748b"'))
    return _svg(width, height, "".join(parts), title)


def bar_chart(rows: list[dict], title: str) -> str:
    """Horizontal bars of `value` with a tick at each row's `threshold` (drift effect per feature)."""
    row_h, left, right, top = 24, 170, 110, 30
    width = 640
    height = top + row_h * len(rows) + 24
    high = max([r.get("value") or 0 for r in rows] + [r.get("threshold") or 0 for r in rows] + [1e-9]) * 1.1

    def px(v):
        return left + v / high * (width - left - right)

    parts = [_text(8, 16, title, "start", 'font-weight="600"')]
    for i, row in enumerate(rows):
        y = top + row_h * i
        color = "#dc2626" if row.get("bad") else "#2563eb"
        value = row.get("value") or 0.0
        parts.append(_text(left - 8, y + row_h / 2 + 4, row["label"], "end", 'fill="#334155"'))
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{max(px(value) - left, 1):.1f}" height="{row_h - 8}" '
            f'rx="3" fill="{color}" opacity="0.8"><title>{esc(row.get("tip", ""))}</title></rect>'
        )
        if row.get("threshold") is not None:
            tx = px(row["threshold"])
            parts.append(
                f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y + 1}" y2="{y + row_h - 1}" stroke="#0f172a" '
                'stroke-width="2" stroke-dasharray="3 2"/>'
            )
        parts.append(_text(width - right + 8, y + row_h / 2 + 4, row.get("note", ""), "start", 'fill="#64748b"'))
    return _svg(width, height, "".join(parts), title)
