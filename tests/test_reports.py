"""The report pages as stakeholders see them: served by Voila and opened in headless Chromium, and frozen
as static HTML by `render_reports`.

Voila renders outputs in the browser and answers HTTP 200 even when a cell fails (the page then says
"There was an error when executing cell"), so these tests open every page in Chromium, wait until its last
section is rendered, and read the visible text.

Needs the system package `chromium` (/usr/bin/chromium) and the Python package `playwright` (its bundled
browsers are not used). Run: `.venv/bin/python -m pytest tests/test_reports.py`.
"""
from __future__ import annotations

import json, os, re, shutil, socket, subprocess, sys, time
from pathlib import Path
from urllib.request import urlopen

import pytest

from mlops_nb.config import demo_project_file, free_port, load_project, write_json
from mlops_nb.reports import (list_runs, load_run, render_reports, report_url, start_reports, stop_reports)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ERROR_TEXT = re.compile(r"There was an error when executing cell|Traceback|\b\w*Error\b")
SHOTS = Path(os.environ.get("MLOPS_NB_SHOTS", "")) if os.environ.get("MLOPS_NB_SHOTS") else None

from mlops_nb.reports import PAGES  # every page, the monitoring page included
OLD, FAILED, LATEST, CORRUPT = ("20130102-080000-a1a1", "20130103-080000-b2b2", "20130104-080000-c3c3",
                                "20130105-080000-dead")
STEPS = ["design", "ingest", "quality"]
DIMENSIONS = ["Accuracy", "Completeness", "Consistency", "Timeliness"]

pytestmark = pytest.mark.timeout(600)


# --------------------------------------------------------------------------------------------------
# A runs folder written the way the runner and the phase steps write theirs (CONTRACT.md)

def _outputs(step: str, names: list[str]) -> dict:
    return {n: {"path": f"artifacts/{step}/{n}", "digest": "0" * 64, "bytes": 1000} for n in names}

PROFILE_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>Profile of flights</title></head>
<body><h1>Profile of flights</h1><h2>Overview</h2><table><tr><th>Variables</th><td>27</td></tr>
<tr><th>Observations</th><td>6,113</td></tr><tr><th>Missing cells</th><td>1.2%</td></tr></table>
<h2>Variables</h2><p>carrier: categorical, 16 distinct</p><p>dep_delay: numeric, mean 12.6</p>
<script>document.body.insertAdjacentHTML("beforeend", "<p id=js>profile script ran</p>")</script></body></html>"""

def write_run(runs_dir: Path, run_id: str, started: str, *, fail_quality: bool = False, scores=None,
              checks=None, warnings=()) -> Path:
    "A complete run folder: run.json, the design step's card and gates, the quality results and profile."
    from mlops_nb.design import gates_of
    lp = load_project(demo_project_file(), ["ingest.window.end=2013-01-08"])
    card = lp.project.design
    d = runs_dir / run_id
    (d / "notebooks").mkdir(parents=True)
    (d / "project.yaml").write_text(lp.dump())
    write_json(d / "artifacts/design/design_card.json", card.model_dump(mode="json"))
    write_json(d / "artifacts/design/gates.json", gates_of(card))
    steps = []
    for i, name in enumerate(STEPS, 1):
        failed = fail_quality and name == "quality"
        steps.append({"name": name, "notebook": f"nbs/0{i}_{name}.ipynb", "status": "failed" if failed else "succeeded",
                      "started": started, "ended": started, "duration_s": [0.9, 14.2, 75.5][i - 1],
                      "executed_notebook": f"notebooks/0{i}_{name}.ipynb", "mlflow_run_id": f"{i:02d}{run_id[-4:]}" * 4,
                      "error": None, "outputs": {}})
        (d / steps[-1]["executed_notebook"]).write_text("{}")
    steps[0]["outputs"] = _outputs("design", ["design_card.json", "gates.json"])
    steps[1]["outputs"] = _outputs("ingest", ["flights.parquet", "weather.parquet", "snapshot.json"])
    error = None
    if fail_quality:
        steps[2]["error"] = {"cell": 14, "cell_index": 21, "ename": "QualityGateError",
                             "message": "flights: duplicates on [time_hour, carrier, flight, origin]: 12 rows fail, "
                                        "needs 100% (severity error)"}
        error = {"step": "quality", **steps[2]["error"]}
    else:
        scores = scores or {"accuracy": 0.9982, "completeness": 0.9871, "consistency": 0.9995, "timeliness": 0.9412}
        thresholds = {"accuracy": 0.95, "completeness": 0.95, "consistency": 0.9, "timeliness": 0.9}
        sample = {"year": 2013, "month": 1, "day": 3, "carrier": "UA", "flight": 1545, "tailnum": "N14228",
                  "origin": "EWR", "dest": "IAH", "distance": 1400, "air_time": 3.0, "dep_delay": 2.0,
                  "arr_delay": 11.0, "time_hour": "2013-01-03T10:00:00+00:00"}
        checks = checks if checks is not None else [
            {"table": "flights", "name": "plausible_speed", "dimension": "accuracy", "severity": "warn",
             "rule": "(distance / air_time * 60 >= 60) & (distance / air_time * 60 <= 650)", "failed": 9,
             "total": 5950, "pass_rate": 0.99849, "min_pass_rate": 0.999, "passed": False,
             "samples": [sample, {**sample, "flight": 33, "air_time": 1.0, "tailnum": "N0EGMQ"}]},
            {"table": "flights", "name": "tailnum.pattern", "dimension": "accuracy", "severity": "warn",
             "rule": "matches N[0-9A-Z]{1,5}", "failed": 31, "total": 6113, "pass_rate": 0.99493,
             "min_pass_rate": 0.999, "passed": False, "samples": [{**sample, "tailnum": "D942DN"}]},
            {"table": "flights", "name": "origin.allowed", "dimension": "accuracy", "severity": "error",
             "rule": "in [EWR, JFK, LGA]", "failed": 0, "total": 6113, "pass_rate": 1.0, "min_pass_rate": 1.0,
             "passed": True, "samples": []},
            {"table": "weather", "name": "gaps.time_hour", "dimension": "timeliness", "severity": "warn",
             "rule": "one row every 1h per origin", "failed": 4, "total": 504, "pass_rate": 0.99206,
             "min_pass_rate": 0.99, "passed": True, "samples": []}]
        warnings = list(warnings) or ["flights: plausible_speed passed 99.85% of rows, needs 99.9% (9 rows fail)",
                                      "flights: tailnum.pattern passed 99.49% of rows, needs 99.9% (31 rows fail)"]
        write_json(d / "artifacts/quality/quality.json", {
            "passed": True, "scores": scores, "thresholds": thresholds,
            "tables": {"flights": {"rows": 6113, "scores": scores},
                       "weather": {"rows": 504, "scores": {**scores, "consistency": 1.0}}},
            "checks": checks, "failures": [], "warnings": warnings,
            "profiles": {"flights": {"path": "profile_flights.html", "sample_fraction": 1.0, "rows_profiled": 6113,
                                     "seconds": 5.4}}})
        (d / "artifacts/quality/profile_flights.html").write_text(PROFILE_HTML)
        steps[2]["outputs"] = _outputs("quality", ["quality.json", "profile_flights.html"])
    write_json(d / "run.json", {
        "run_id": run_id, "status": "failed" if fail_quality else "succeeded", "started": started,
        "ended": started, "duration_s": sum(s["duration_s"] for s in steps) + 3.1,
        "command": "mlops-nb run --set ingest.window.end=2013-01-08", "git_commit": "eeed023",
        "project": {"name": "flights", "file": str(demo_project_file()), "copy": "project.yaml", "digest": lp.digest},
        "mlflow": {"tracking_uri": "sqlite:////tmp/mlflow.db", "experiment_id": "1", "parent_run_id": "9f" * 16},
        "error": error, "steps": steps, "reports": {}})
    return d


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    "A project root whose runs/ holds an old run, a failed run, the latest run, and a corrupt folder."
    root = tmp_path_factory.mktemp("root")
    runs = root / "runs"
    write_run(runs, OLD, "2013-01-02T08:00:00+00:00",
              scores={"accuracy": 0.9712, "completeness": 0.9633, "consistency": 0.9421, "timeliness": 0.9055})
    write_run(runs, FAILED, "2013-01-03T08:00:00+00:00", fail_quality=True)
    write_run(runs, LATEST, "2013-01-04T08:00:00+00:00")
    (runs / CORRUPT).mkdir()
    (runs / CORRUPT / "run.json").write_text('{"run_id": "20130105-08')  # a run.json cut short
    (runs / ".flights.lock").write_text("")
    return root


def test_fixture_runs_are_read_newest_first(root):
    runs = list_runs(root / "runs")
    assert [r["run_id"] for r in runs] == [LATEST, FAILED, OLD]
    assert len(runs.skipped) == 1 and CORRUPT in runs.skipped[0]
    assert load_run(root / "runs")["run_id"] == LATEST


# --------------------------------------------------------------------------------------------------
# Voila and the browser


@pytest.fixture(scope="module")
def server(root, tmp_path_factory):
    "Voila on the fixture runs, on a free loopback port, started by `start_reports`; stopped at the end."
    port = free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    proc = start_reports(root, port, "127.0.0.1", log=log, ready_timeout=90)
    yield {"port": port, "log": log, "proc": proc}
    stop_reports(proc, timeout=30)
    assert proc.poll() is not None, "Voila did not stop"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists(): pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        yield b
        b.close()


def read_page(browser, url: str, shot: str | None = None) -> str:
    "Open `url`, wait until the page's last section (the footer) is rendered, and return the visible text."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=90_000)
        page.wait_for_selector(".mr-footer", state="attached", timeout=90_000)
        page.wait_for_timeout(300)
        text = page.inner_text("body")
        if SHOTS:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{shot or 'page'}.png"), full_page=True)
        return text
    finally:
        page.close()


def assert_no_error(text: str, allowed: tuple[str, ...] = ()):
    "No Voila cell error, no traceback, no exception name (except the `allowed` ones, shown on purpose)."
    for m in ERROR_TEXT.finditer(text):
        assert m.group(0) in allowed, f"error text {m.group(0)!r} in page: ...{text[max(0, m.start() - 200):m.end() + 200]}..."


@pytest.mark.browser
def test_overview_latest_run(server, browser):
    text = read_page(browser, report_url(server["port"], page="overview"), "overview_latest")
    assert f"Run {LATEST}" in text and "the latest run" in text
    for step in STEPS: assert step in text
    for name in ["Ranking quality", "Delays caught", "Value generated"]: assert name in text
    for s in ["Head of Operations Control", "dep_delay", "Who owns and who signs off each phase",
              "Value per decision", "Break-even probability", "Every step of the run succeeded."]:
        assert s in text, s
    assert OLD in text and FAILED in text, "the run chooser lists the other runs"
    assert "1 run folders could not be read" in text
    assert_no_error(text)


@pytest.mark.browser
def test_quality_latest_run(server, browser):
    text = read_page(browser, report_url(server["port"], page="quality"), "quality_latest")
    assert f"Run {LATEST}" in text
    for dim in DIMENSIONS: assert dim in text
    for s in ["99.8%", "plausible_speed", "tailnum.pattern", "2 of 4 checks passed", "needs 99.9% (9 rows fail)",
              "Rows profiled", "6,113", "Profile of flights", "1 of these runs have no quality results"]:
        assert s in text, s
    assert_no_error(text)


@pytest.mark.browser
def test_profile_is_embedded_live(server, browser):
    page = browser.new_page()
    try:
        page.goto(report_url(server["port"], page="quality"), wait_until="domcontentloaded", timeout=90_000)
        page.wait_for_selector(".mr-footer", state="attached", timeout=90_000)
        frame = page.frame_locator("iframe.profile")
        assert "Observations" in frame.locator("body").inner_text(timeout=30_000)
        assert frame.locator("#js").inner_text(timeout=30_000) == "profile script ran"
    finally:
        page.close()


@pytest.mark.browser
def test_query_string_picks_an_older_run(server, browser):
    for page in ("overview", "quality"):
        text = read_page(browser, report_url(server["port"], page=page, run_id=OLD), f"{page}_old")
        assert f"Run {OLD}" in text and "chosen with ?run=" in text
        assert f"Run {LATEST}" not in text
        assert_no_error(text)
    assert "97.1%" in text and "96.3%" in text, "the quality page shows the older run's scores"


@pytest.mark.browser
def test_failed_run_is_explained_not_crashed(server, browser):
    allowed = ("QualityGateError",)
    text = read_page(browser, report_url(server["port"], page="overview", run_id=FAILED), "overview_failed")
    assert "The run failed." in text and "step quality, cell 14: QualityGateError: flights: duplicates" in text
    assert "What went wrong" in text
    assert_no_error(text, allowed)
    text = read_page(browser, report_url(server["port"], page="quality", run_id=FAILED), "quality_failed")
    assert "No quality results for this run: its quality step failed (cell 14: QualityGateError" in text
    assert_no_error(text, allowed)


@pytest.mark.browser
def test_training_pages_without_training(server, browser):
    "Runs that stopped before training (or predate it): the training pages say why, plainly."
    text = read_page(browser, report_url(server["port"], page="experiments"), "experiments_untrained")
    assert f"Run {LATEST}" in text and "No training results for this run: this run did not include the train step." in text
    assert_no_error(text)
    text = read_page(browser, report_url(server["port"], page="model_card", run_id=FAILED), "model_card_failed")
    assert ("No training results for this run: the run stopped before training: its quality step failed "
            "(cell 14: QualityGateError: flights: duplicates") in text
    assert_no_error(text, ("QualityGateError",))


@pytest.mark.browser
def test_unknown_run_says_so(server, browser):
    text = read_page(browser, report_url(server["port"], page="overview", run_id="20990101-000000-zzzz"))
    assert "No run to show." in text and "run '20990101-000000-zzzz' not found in" in text
    assert LATEST in text, "the chooser still lists the runs"
    assert_no_error(text)
    text = read_page(browser, report_url(server["port"], page="quality") + "?run=../../etc")
    assert "is not a run id" in text
    assert_no_error(text)


@pytest.mark.browser
def test_a_broken_cell_shows_no_traceback(root, browser, tmp_path):
    "A page whose cell raises shows Voila's one-line notice, never the traceback or the message (and we detect it)."
    import nbformat
    pages = tmp_path / "pages"
    pages.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Broken page"),
                                         nbformat.v4.new_code_cell("raise ValueError('secret detail of the server')")],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, pages / "broken.ipynb")
    port = free_port()
    proc = start_reports(root, port, log=tmp_path / "voila.log", pages_folder=pages)
    try:
        page = browser.new_page()
        page.goto(report_url(port, page="broken"), wait_until="domcontentloaded", timeout=90_000)
        page.wait_for_selector("text=There was an error when executing cell", timeout=90_000)
        text = page.inner_text("body")
        page.close()
    finally:
        stop_reports(proc)
    assert "secret detail" not in text and "Traceback" not in text and "ValueError" not in text
    with pytest.raises(AssertionError, match="There was an error when executing cell"):
        assert_no_error(text)


def test_sources_are_stripped(server):
    with urlopen(report_url(server["port"], page="overview"), timeout=90) as r:
        body = r.read().decode()
    assert LATEST in body
    for code in ("select_run", "from mlops_nb.reports import", "run_dir = None"):
        assert code not in body, f"page source leaked: {code!r}"


# --------------------------------------------------------------------------------------------------
# Frozen copies

@pytest.mark.browser
def test_render_reports_writes_standalone_html(root, browser, tmp_path):
    run_dir = tmp_path / "runs" / LATEST
    shutil.copytree(root / "runs" / LATEST, run_dir)
    shutil.copytree(root / "runs" / OLD, tmp_path / "runs" / OLD)
    out = render_reports(run_dir)
    assert out == {p: run_dir / "reports" / f"{p}.html" for p in PAGES}
    html = {p: f.read_text() for p, f in out.items()}
    for p, body in html.items():
        assert "from mlops_nb.reports import" not in body and "select_run(run_dir)" not in body, f"code in {p}"
        assert 'class="jp-CodeMirrorEditor' not in body and "cdnjs" not in body
    assert 'href="../../20130102-080000-a1a1/reports/overview.html"' in html["overview"]
    assert 'href="../artifacts/quality/profile_flights.html"' in html["quality"]
    assert not list((run_dir / "reports").glob("*.failed.ipynb")) and not list((run_dir / "reports").glob(".*"))
    for p, f in out.items():
        text = read_page(browser, f.as_uri(), f"static_{p}")
        assert f"Run {LATEST}" in text and "frozen copy" in text
        assert_no_error(text)
    assert "Ranking quality" in read_page(browser, out["overview"].as_uri())
    q = read_page(browser, out["quality"].as_uri())
    assert all(d in q for d in DIMENSIONS) and "Open the profile of flights" in q
    for p in ("experiments", "model_card"):  # these runs stopped before training: the pages say so, once
        assert html[p].count("No training results for this run: this run did not include the train step.") == 1, p


def test_render_reports_of_a_failed_run(root, tmp_path):
    run_dir = tmp_path / "runs" / FAILED
    shutil.copytree(root / "runs" / FAILED, run_dir)
    out = render_reports(run_dir, ["overview"])
    body = out["overview"].read_text()
    assert "QualityGateError" in body and "There was an error" not in body and "Traceback" not in body


def test_a_broken_page_names_page_and_cell(root, tmp_path):
    run_dir = tmp_path / "runs" / LATEST
    shutil.copytree(root / "runs" / LATEST, run_dir)
    (run_dir / "artifacts" / "design" / "design_card.json").write_text('{"key_metrics": 3}')  # not a list
    from mlops_nb.reports import ReportError
    with pytest.raises(ReportError, match=r"report page 'overview' failed on run 20130104-080000-c3c3 at cell In \[\d+\]"):
        render_reports(run_dir, ["overview"])
    assert (run_dir / "reports" / "overview.failed.ipynb").exists()
    assert not (run_dir / "reports" / "overview.html").exists()


# --------------------------------------------------------------------------------------------------
# The server protects itself: kernel cap and culling

def test_kernels_are_capped_and_culled(root, tmp_path):
    port, log = free_port(), tmp_path / "voila.log"
    proc = start_reports(root, port, log=log, max_kernels=1, cull_idle_timeout=4, cull_interval=1)
    try:
        for _ in range(2):  # plain HTTP requests, as a crawler makes: each starts a kernel that nobody closes
            with urlopen(report_url(port, page="overview"), timeout=90) as r: assert LATEST in r.read().decode()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Culling 'idle' kernel" not in log.read_text():
            time.sleep(0.5)
        text = log.read_text()
        assert "kernels alive (cap 1): shutting down the longest idle" in text, text[-3000:]
        assert "Culling 'idle' kernel" in text, text[-3000:]
    finally:
        stop_reports(proc)


def test_port_in_use_is_refused(root):
    from mlops_nb.config import ProjectError
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen()
        with pytest.raises(ProjectError, match="is in use"):
            start_reports(root, s.getsockname()[1])


# --------------------------------------------------------------------------------------------------
# A real run: `mlops-nb run` renders the frozen copies; `mlops-nb reports` serves the live pages

@pytest.mark.browser
def test_real_run_reports_frozen_and_live(demo_week_run, browser, tmp_path):
    """The demo's first week run for real, its reports read in Chromium, frozen and live (via `mlops-nb reports`).
    The run is shared with test_pipeline's run contract (conftest's `demo_week_run`), which only reads it."""
    import signal
    from conftest import BIN, mlops_nb, running_server
    demo_project, code, out = demo_week_run.project, demo_week_run.code, demo_week_run.out
    assert code == 0, out
    root = demo_project.parent
    (run_dir,) = [p for p in (root / "runs").iterdir() if p.is_dir()]
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["reports"] == {p: f"reports/{p}.html" for p in PAGES}
    card = load_project(demo_project).project.design
    metric_names = [m.name for m in card.key_metrics]
    train = run_dir / "artifacts" / "train"
    experiments = json.loads((train / "experiments.json").read_text())
    model = json.loads((train / "model_card.json").read_text())
    reg = model["registered"]
    for page, rel in rec["reports"].items():
        text = read_page(browser, (run_dir / rel).as_uri(), f"real_static_{page}")
        assert_no_error(text)
        if page == "monitoring":  # a pipeline run, and no monitoring run in this project yet: the page says so
            assert "No monitoring run yet" in text and "mlops-nb monitor" in text, text[:2000]
            continue
        assert f"Run {rec['run_id']}" in text and "succeeded" in text and "took —" not in text
        if page == "overview":
            assert all(s in text for s in STEPS + metric_names), text[:2000]
            assert "The project's own steps" in text and "Delays by hour" in text and "arrive late" in text, text[:3000]
        elif page == "quality": assert all(d in text for d in DIMENSIONS) and "Open the profile of flights" in text
        elif page == "features":
            assert all(s in text for s in ("temp", "route_late_rate", "sched_hour", "delay_model", "6h", "at request")), text[:2000]
            assert "What each view costs and earns" in text and "not trained yet" not in text
            importance = json.loads((train / "importance.json").read_text())
            shown = re.findall(r"^weather\b.*?([+-]\d\.\d{4})\s*$", text, re.M)  # the view's row in the cost/earn table
            assert shown == [f"{importance['groups']['weather']:+.4f}"], shown
        elif page == "experiments":
            for e in experiments:
                assert e["hypothesis"] in text and e["verdict"] in text, e
            assert re.search(r"\b(held|not held|untested)\b", text) and f"{len(experiments)} experiments:" in text
            assert "Value against model quality" in text and "Best trial per model family" in text
        elif page == "model_card":
            assert f"Version {reg['version']} of {reg['name']}" in text, text[:2000]
            assert all(g["reason"] in text for g in model["gates"]), [g["reason"] for g in model["gates"]]
            assert "Nobody has approved this version yet" in text and model["lineage"]["holdout_digest"] in text
            assert f"models:/{reg['name']}/{reg['version']}" in text and "Expected calibration error on the hold-out" in text
    # a sign-off after the run: the live model card reads it from the registry
    code, out = mlops_nb("approve", reg["name"], reg["version"], "--by", "Dana Approver", "--project", demo_project)
    assert code == 0, out
    # live, through the CLI the lead wires to serve_reports; Ctrl-C stops it cleanly
    port, log = free_port(), tmp_path / "reports.log"
    with running_server([BIN / "mlops-nb", "reports", "--project", demo_project, "--port", port], log,
                        url=f"http://127.0.0.1:{port}/", timeout=90) as proc:
        text = read_page(browser, report_url(port, page="overview"), "real_live_overview")
        assert f"Run {rec['run_id']}" in text and "the latest run" in text and all(n in text for n in metric_names)
        assert_no_error(text)
        text = read_page(browser, report_url(port, page="model_card"), "real_live_model_card")
        assert "Approved by Dana Approver on " in text and f"Version {reg['version']} of {reg['name']}" in text
        assert_no_error(text)
        page = browser.new_page()
        page.goto(report_url(port, page="quality", run_id=rec["run_id"]), wait_until="domcontentloaded", timeout=90_000)
        page.wait_for_selector(".mr-footer", state="attached", timeout=90_000)
        text = page.inner_text("body")
        assert all(d in text for d in DIMENSIONS) and "Profile of flights" in text
        assert_no_error(text)
        page.click("text=Profile of flights")
        profile = page.frame_locator("iframe.profile").first.locator("body").inner_text(timeout=30_000)
        assert "Number of observations" in profile, profile[:500]
        page.close()
        proc.send_signal(signal.SIGINT)  # Ctrl-C: Voila gets 20 s to stop its kernels
        try: proc.wait(timeout=60)
        except subprocess.TimeoutExpired: pass  # running_server kills it on leaving, and the exit code below says so
    out = log.read_text()
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/voila/render/overview.ipynb" in out
