"""One feedback page per submission: a self-contained HTML file a student can open anywhere.

No script, no external stylesheet or font (JupyterLab shows HTML files in a sandboxed frame and
mail clients strip links): every check with PASS/FAIL and its message, the statement of a failed
check (what it expected), and the errors of the student's own cells with cell and line.
"""

from __future__ import annotations

from html import escape

from labline.exercises.gradebook import Row, Status

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
.meta { color: #59636e; } .score { font-size: 1.2rem; font-weight: 600; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; vertical-align: top;
       padding: .35rem .5rem; border-bottom: 1px solid #d1d9e0; }
.PASS { color: #1a7f37; font-weight: 700; } .FAIL { color: #cf222e; font-weight: 700; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85rem; }
pre { background: #f6f8fa; padding: .4rem .6rem; margin: .3rem 0; white-space: pre-wrap; }
.stopped { background: #fff8c5; padding: .5rem .8rem; border-left: 4px solid #d4a72c; }
"""


def _check_rows(row: Row) -> str:
    lines = []
    for check in row.report.checks:
        mark = "PASS" if check.passed else "FAIL"
        kind = " <span class='meta'>(hidden)</span>" if check.hidden else ""
        detail = ""
        if not check.passed:
            detail = f"<pre>{escape(check.message)}</pre>"
            if check.line:
                detail += f"<div class='meta'>the check: <code>{escape(check.line)}</code></div>"
        lines.append(f"<tr><td class='{mark}'>{mark}</td><td>{escape(check.name)}{kind}{detail}</td></tr>")
    return "\n".join(lines)


def _cell_errors(row: Row) -> str:
    if not row.report.cell_errors:
        return "<p>None of your cells raised an error.</p>"
    items = []
    for error in row.report.cell_errors:
        where = f"cell {error.cell}" + (f", line {error.line}" if error.line else "")
        what = "is not done yet" if error.unfinished else "raised"
        items.append(
            f"<li><b>{where}</b> {what}: <pre>{escape(error.source_line)}</pre><pre>{escape(error.error)}</pre></li>"
        )
    return "<ul>" + "\n".join(items) + "</ul>"


def render_feedback(row: Row) -> str:
    """The whole page for one submission."""
    report = row.report
    stopped = ""
    if row.status not in (Status.GRADED, Status.NOT_DONE):
        stopped = f"<p class='stopped'><b>{escape(row.status.value)}</b>: {escape(report.message)}</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(report.exercise)}: feedback for {escape(row.student)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{escape(report.exercise)}: feedback for {escape(row.student)}</h1>
<p class="meta">{escape(row.notebook)} · {escape(row.status.value)} · {report.seconds:.1f} s</p>
<p class="score">score: {report.score}/{report.total}</p>
{stopped}
<h2>Checks</h2>
<table>{_check_rows(row)}</table>
<h2>Errors in your cells</h2>
{_cell_errors(row)}
</body></html>
"""
