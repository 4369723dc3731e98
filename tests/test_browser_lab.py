"""An instructor's check in a real browser: JupyterLab in headless chromium, Run > Run All Cells.

The page opens a working copy of notebooks/explore.ipynb (work/, where saved outputs stay; the Lab
saves the tracked notebook itself without them) in a fresh copy of the checkout, runs every cell
from the Run menu, waits until the last cell has its execution count, saves, and then reads the
saved notebook back through the server: every code cell ran, none has an error output, the glued
values are there, its files are under the project's runs/. A screenshot of the finished page is
kept (and copied to `$LABLINE_SCREENSHOTS`).
"""

from __future__ import annotations

import json
import re
import shutil

import httpx
import pytest

from tests.fixtures.browser import browser_page, keep_screenshot, skip_reason
from tests.fixtures.lab_server import fresh_copy, lab_server

SOURCE = "notebooks/explore.ipynb"
NOTEBOOK = "work/explore.ipynb"
RUN_TIMEOUT_MS = 240_000
# Render every cell (no virtual scrolling), so the page holds each cell's prompt and output.
NOTEBOOK_SETTINGS = {"windowingMode": "none"}


def all_cells_ran_js() -> str:
    """True in the page when every code cell shows a numbered prompt (`[3]:`, not `[*]:` or `[ ]:`)."""
    return """() => {
        const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
        return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
    }"""


@pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
def test_explore_runs_all_cells_in_jupyterlab_in_a_browser(tmp_path):
    root, state = fresh_copy(tmp_path / "clone"), tmp_path / "state"
    (root / NOTEBOOK).parent.mkdir()
    shutil.copy2(root / SOURCE, root / NOTEBOOK)
    settings = state / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps(NOTEBOOK_SETTINGS))
    with lab_server(root, state) as lab, browser_page() as page:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
        # The status bar names the kernel once it has started and answered: the one the notebook declares.
        page.get_by_text("Python (labline) | Idle").wait_for(timeout=120_000)
        page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook is the current widget
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        page.wait_for_function(all_cells_ran_js(), timeout=RUN_TIMEOUT_MS)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=RUN_TIMEOUT_MS)
        shot = tmp_path / "jupyterlab-explore-run-all.png"
        page.screenshot(path=str(shot), full_page=True)
        keep_screenshot(shot)
        page.keyboard.press("Control+s")
        saved = wait_for_saved_run(lab, page)
        error_text = page.locator(".jp-OutputArea-output", has_text="Traceback").count()
    assert shot.stat().st_size > 10_000
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    assert all(isinstance(c["execution_count"], int) for c in code), [c["execution_count"] for c in code]
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors and error_text == 0, [f"{e['ename']}: {e['evalue']}" for e in errors]
    scraps = {
        payload["name"]: payload["data"]
        for c in code
        for o in c["outputs"]
        for mime, payload in o.get("data", {}).items()
        if mime.startswith("application/scrapbook.scrap.")
    }
    assert scraps["row_count"] == 150 and scraps["checks_passed"] is True
    assert (root / "runs" / "notebook" / "explore" / "snapshot.parquet").is_file()


def wait_for_saved_run(lab, page, attempts: int = 60) -> dict:
    """The notebook as saved by the page, once the save has the execution counts in it.

    jupyter_server's "atomic" save backs the file up and then writes it in place, so a read that
    meets the write half done gets a 500 (unreadable JSON): that read is retried, not failed.
    """
    for _ in range(attempts):
        response = httpx.get(
            f"{lab.url}/api/contents/{NOTEBOOK}?type=notebook&content=1", headers=lab.headers, timeout=60
        )
        if response.status_code == 200:
            content = response.json()["content"]
            if all(c["execution_count"] for c in content["cells"] if c["cell_type"] == "code"):
                return content
        elif response.status_code != 500:
            response.raise_for_status()
        page.wait_for_timeout(500)
    raise AssertionError(f"{NOTEBOOK} was not saved with its outputs after Ctrl+S; server log:\n{lab.log_tail()}")
