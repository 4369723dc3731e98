"""`labline report`: the page of the default Iris run, of a run with a failed step, of a monitoring
step and of two runs side by side, checked against the values in each manifest."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from labline.report import write_report
from labline.report.facts import wilson
from labline.report.html import fmt, seconds
from tests.fixtures import ROOT, make_project
from tests.fixtures.cli import run_cli


def text_of(page: str) -> str:
    """The page's visible text with tags dropped and entities decoded, to search for values."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def iris_page(iris_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "iris.html"
    done = run_cli("report", str(iris_run.path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    return out.read_text()


@pytest.fixture(scope="module")
def echo_runs(tmp_path_factory):
    """Two cheap runs of a fixture pipeline whose middle step raises; the second with another x."""
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    steps = {
        "echo": {"notebook": "echo.ipynb", "parameters": {"x": "3"}},
        "fails": {"notebook": "fails.ipynb", "needs": ["echo"]},
        "after_fails": {"notebook": "consume.ipynb", "needs": ["fails"]},
    }
    pipeline = make_project(tmp_path_factory.mktemp("failing") / "project", steps)
    spec = load_pipeline(pipeline)
    first = run_pipeline(spec, pipeline.parent / "runs", workers=2)
    second = run_pipeline(spec, pipeline.parent / "runs", workers=2, overrides=["echo.x=5"])
    return first, second


def test_default_run_pipeline_and_parameters(iris_run, iris_page):
    text = text_of(iris_page)
    steps = iris_run.manifest["steps"]
    assert iris_run.manifest["run_id"] in text and iris_run.manifest["git"]["sha"] in text
    for name, body in steps.items():
        node = re.search(rf"<title>{name}: (\w+)</title>.*?</g>", iris_page)
        assert node and node.group(1) == body["status"], name
        assert f"{body['status']} · {seconds(body['seconds'])}" in node.group(0)
        assert f"{body['cells_done']}/{body['cells_total']}" in text
        for key, value in body["parameters"].items():
            shown = fmt(value).replace(str(iris_run.path), "<run>")
            assert shown in text, (name, key, shown)


def test_default_run_models_and_plots(iris_run, iris_page):
    text = text_of(iris_page)
    trained = {n: b["scraps"] for n, b in iris_run.manifest["steps"].items() if "model_name" in b["scraps"]}
    assert set(trained) == {"train_sklearn", "train_torch"}
    models = iris_page[iris_page.index('id="models-0"') : iris_page.index('id="parameters-0"')]
    for scraps in trained.values():
        assert scraps["model_name"] in models and fmt(scraps["test_accuracy"]) in models
        matrix = scraps["confusion_matrix"]["__dataframe__"]
        for i, true in enumerate(matrix["index"]):
            for j, predicted in enumerate(matrix["columns"]):
                assert f"<title>true {true}, predicted {predicted}: {matrix['data'][i][j]}</title>" in iris_page
    curve = trained["train_torch"]["loss_curve"]
    assert f"val_loss: last {curve['val_loss'][-1]:.4g}" in iris_page
    audit = iris_run.manifest["steps"]["audit_torch"]["scraps"]
    frame = audit["slice_metrics"]["__dataframe__"]
    for row in frame["data"]:
        r = dict(zip(frame["columns"], row))
        low, high = wilson(r["accuracy"], r["count"])
        assert f"{r['feature']} = {r['value']}" in text
        assert f"accuracy {r['accuracy']:.4f} (95% {low:.2f}–{high:.2f})" in text
    assert 'fill="#dc2626"' in iris_page  # the worst slice is drawn red


def test_default_run_model_cards_and_notebooks(iris_run, iris_page):
    text = text_of(iris_page)
    for name in ("audit_sklearn", "audit_torch"):
        card = Path(iris_run.manifest["steps"][name]["scraps"]["model_card_path"]).read_text()
        assert card.splitlines()[0].lstrip("# ") in text  # "Model card: iris-..."
        assert "<h2>Quantitative Analyses</h2>" in iris_page or "Quantitative Analyses" in text
    for name, body in iris_run.manifest["steps"].items():
        assert f'id="nb-0-{name}"' in iris_page
        notebook = json.loads(Path(body["output_notebook"]).read_text())
        heading = next(c for c in notebook["cells"] if c["cell_type"] == "markdown")
        first_line = "".join(heading["source"]).splitlines()[0].lstrip("# ").strip()
        assert first_line.replace("**", "").replace("`", "") in text.replace("`", ""), (name, first_line)
    assert "application/scrapbook" not in iris_page


def test_page_is_self_contained(iris_page):
    assert "<script" not in iris_page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', iris_page)
    assert "default-src 'none'" in iris_page  # a CSP forbids any script or remote load


def test_failed_step_shows_its_cell_and_traceback(echo_runs, tmp_path):
    run = echo_runs[0]
    body = run.manifest["steps"]["fails"]
    assert body["status"] == "failed" and run.manifest["steps"]["after_fails"]["status"] == "skipped"
    page = write_report([(run.path, run.manifest)], tmp_path / "r.html").read_text()
    text = text_of(page)
    failure = text[text.index("Failures") :]
    error = body["error"]
    assert f"{error['ename']} : {error['evalue']}" in failure or f"{error['ename']}: {error['evalue']}" in failure
    assert f"cell {error['cell']}, line {error['line']}" in failure and error["source_line"] in failure
    cells = json.loads(Path(body["output_notebook"]).read_text())["cells"]
    raised = next(c for c in cells if any(o["output_type"] == "error" for o in c.get("outputs", [])))
    assert "".join(raised["source"]) in failure
    assert error["traceback"].strip().splitlines()[-1].strip() in failure
    assert run.manifest["steps"]["after_fails"]["reason"] in failure
    assert re.search(r'<title>fails: failed</title><rect [^>]*fill="#fee2e2"', page)
    card = page[page.index('id="step-0-fails"') :]
    card = text_of(card[: card.index("</div>")])
    assert body["scraps"] == {"before_failure": 41}  # glued before the cell that raised: shown with its value
    assert re.search(r"before_failure\s+41", card)


def test_two_runs_side_by_side_mark_the_differences(echo_runs, tmp_path):
    runs = [(r.path, r.manifest) for r in echo_runs]
    page = write_report(runs, tmp_path / "two.html").read_text()
    table = page[page.index('id="differences"') : page.index("</section>", page.index('id="differences"'))]
    rows = {re.sub(r"<[^>]+>", "|", row).replace("||", "|") for row in re.findall(r"<tr>.*?</tr>", table)}

    def row(step, name):
        found = [r for r in re.findall(r"<tr>.*?</tr>", table) if f"<td>{step}</td><td><code>{name}</code>" in r]
        assert found, (step, name, rows)
        return found[0]

    x = [r.manifest["steps"]["echo"]["parameters"]["x"] for r in echo_runs]
    doubled = [r.manifest["steps"]["echo"]["scraps"]["doubled"] for r in echo_runs]
    assert x == [3, 5] and doubled == [6, 10]
    assert row("echo", "x").count('class="diff"') == 2 and f">{x[1]}<" in row("echo", "x")
    assert row("echo", "doubled").count('class="diff"') == 2 and f">{doubled[1]}<" in row("echo", "doubled")
    assert 'class="diff"' not in row("echo", "rate")  # the same in both runs
    assert 'class="diff"' not in row("fails", "status")
    assert "1 parameter(s) and 1 result(s) differ" in page
    assert all(f'id="run-{i}"' in page for i in (0, 1)) and '<div class="side">' in page


def test_linked_notebooks_are_files_beside_the_page(echo_runs, tmp_path):
    run = echo_runs[0]
    out = write_report([(run.path, run.manifest)], tmp_path / "linked.html", notebooks="link")
    page = out.read_text()
    links = re.findall(r'href="(linked_notebooks/[^"]+\.html)"', page)
    assert len(links) == sum(1 for b in run.manifest["steps"].values() if b.get("output_notebook"))
    for link in links:
        target = (out.parent / link).read_text()
        assert "<html" in target and "<script" not in target and "https://" not in target


def test_monitor_step_draws_drift_per_feature(iris_run, tmp_path):
    from runner.pipeline import run_pipeline
    from runner.spec import load_pipeline

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "notebooks" / "monitor.ipynb", project / "monitor.ipynb")
    (project / "pipeline.yaml").write_text(
        json.dumps(
            {
                "name": "watch",
                "steps": {
                    "monitor": {
                        "notebook": "monitor.ipynb",
                        "parameters": {
                            "source": "heldout",
                            "reference": str(iris_run.path),
                            "alert_log": str(tmp_path / "alerts.jsonl"),
                        },
                    }
                },
            }
        )
    )
    run = run_pipeline(load_pipeline(project / "pipeline.yaml"), tmp_path / "runs")
    assert run.manifest["status"] == "succeeded", run.manifest["steps"]["monitor"].get("error")
    page = write_report([(run.path, run.manifest)], tmp_path / "m.html", notebooks="none").read_text()
    result = json.loads(
        Path(run.manifest["steps"]["monitor"]["scraps"]["report_path"]).with_name("result.json").read_text()
    )
    assert "Drift per feature" in page and result["drift"]["features"]
    for feature in result["drift"]["features"]:
        assert f">{feature['feature']}</text>" in page
        assert f"effect {fmt(feature['effect'])}" in page
    assert f"{result['current_rows']} current rows" in text_of(page)


def test_unknown_run_is_a_usage_error(tmp_path):
    done = run_cli("report", "nosuchrun", "--runs", str(tmp_path))
    assert done.returncode == 2 and "nosuchrun" in done.stderr


def test_run_with_report_writes_the_page_and_prints_its_path(tmp_path):
    steps = {"echo": {"notebook": "echo.ipynb", "parameters": {"x": "4"}}, "fails": {"notebook": "fails.ipynb"}}
    pipeline = make_project(tmp_path / "project", steps)
    done = run_cli("run", "--pipeline", str(pipeline), "--runs", str(tmp_path / "runs"), "--report", "--no-register")
    assert done.returncode == 1, done.stderr  # a step failed: the page is written all the same
    printed = re.search(r"report: (\S+report\.html)", done.stderr)
    assert printed, done.stderr
    page = Path(printed.group(1)).read_text()
    manifest = json.loads((Path(printed.group(1)).parent / "manifest.json").read_text())
    assert manifest["run_id"] in page and manifest["steps"]["fails"]["error"]["evalue"] in text_of(page)
    assert manifest["steps"]["echo"]["scraps"]["doubled"] == 8 and re.search(r"doubled\s+8", text_of(page))
