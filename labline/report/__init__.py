"""`labline report`: one self-contained HTML page per run (or several runs side by side).

The page needs no network and no JavaScript: charts are inline SVG drawn from the manifest's
scraps, executed notebooks are rendered by nbconvert, and a Content-Security-Policy forbids
every script and remote load.
"""

from labline.report.page import render_report, write_report

__all__ = ["render_report", "write_report"]
