"""The report of the default Iris run in a real browser (headless chromium from disk, file://):
its sections are visible, charts are drawn, nothing asked for the network; a screenshot is kept."""

from __future__ import annotations

import pytest

from labline.report import write_report
from labline.report.html import fmt
from tests.fixtures.browser import browser_page, keep_screenshot, skip_reason


@pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
def test_report_renders_in_chromium(iris_run, tmp_path):
    out = write_report([(iris_run.path, iris_run.manifest)], tmp_path / "report.html")
    requests, errors = [], []
    with browser_page(1400, 900) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(out.as_uri())
        for title in ("Pipeline", "Models", "Parameters and results", "Plots", "Model cards", "Notebooks"):
            assert page.get_by_role("heading", name=title, exact=True).first.is_visible(), title
        models = page.locator("table.models").inner_text()
        for body in iris_run.manifest["steps"].values():
            if "model_name" in body["scraps"]:
                assert body["scraps"]["model_name"] in models and fmt(body["scraps"]["test_accuracy"]) in models
        assert page.locator("svg.dag g.node").count() == len(iris_run.manifest["steps"])
        box = page.locator("svg.dag").bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100  # laid out, not collapsed
        page.locator("details.notebook summary").first.click()  # opens without any script
        assert page.locator("details.notebook .nbv").first.is_visible()
        page.locator("details.notebook summary").first.click()
        shot = tmp_path / "labline-report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert errors == []
    assert shot.stat().st_size > 50_000
    keep_screenshot(shot)
