"""The monitoring report page (`nbs/reports/monitoring.ipynb`), read in headless Chromium: frozen copies rendered by
`render_reports`, and the live page served by Voila.

The fixture runs are built from a real `monitoring.json` written by the monitor step (`mlops_nb.monitor.run_step`,
on the demo's traffic; ten of its 24 drift rows kept), copied and varied into three windows: one that asked for
a retrain and ran with `--no-retrain`, the real one, which retrained into version 2 (the champion), and a quiet
window watching version 2. Pipeline runs sit between them, as `mlops-nb monitor` and the weekly pipeline leave them.

Needs /usr/bin/chromium and the Python package playwright. Run:
`IN_TEST=1 .venv/bin/python -m pytest tests/test_monitoring_report.py -q`.
"""
from __future__ import annotations

import copy, re, time
from pathlib import Path

import pytest

from mlops_nb.config import demo_project_file, free_port, load_project, write_json
from mlops_nb.reports import render_reports, report_url, select_monitoring, start_reports, stop_reports
from mlops_nb.reports_monitoring import monitoring_history

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ERROR_TEXT = re.compile(r"There was an error when executing cell|Traceback|\b\w*Error\b")

PIPE, MON0, MON1, RETRAIN, MON2, WEEKLY = ("20130101-050000-pipe", "20130101-060000-mon0", "20130108-060000-mon1",
                                           "20130108-062000-rtrn", "20130115-060000-mon2", "20130116-030000-week")

pytestmark = pytest.mark.timeout(300)


# --------------------------------------------------------------------------------------------------
# A real monitoring.json (trimmed), and its variations

DRIFT_KEYS = ('column', 'kind', 'method', 'statistic', 'threshold', 'drifted', 'rule', 'psi', 'psi_drifted', 'reference_rows', 'current_rows', 'reference_missing_share', 'current_missing_share')
DRIFT_ROWS = [  # the real drift table, ten of its 24 features (in the model's order of importance)
    ('carrier', 'categorical', 'jensenshannon', 0.00862813, 0.1, False, 'distance >= 0.1', 0.000595663, False, 5118, 5949, 0.0, 0.0),
    ('plane_manufacturer', 'categorical', 'jensenshannon', 0.00817069, 0.1, False, 'distance >= 0.1', 0.000534325, False, 5118, 5949, 0.159633, 0.161708),
    ('carrier_late_rate', 'numeric', 'wasserstein', 0.252581, 0.1, True, 'distance >= 0.1', 2.16241, True, 5118, 5949, 0.512114, 0.0),
    ('carrier_flights', 'numeric', 'wasserstein', 1.86973, 0.1, True, 'distance >= 0.1', 4.00169, True, 5118, 5949, 0.33646, 0.0),
    ('origin', 'categorical', 'jensenshannon', 0.00585323, 0.1, False, 'distance >= 0.1', 0.000274087, False, 5118, 5949, 0.0, 0.0),
    ('route_late_rate', 'numeric', 'wasserstein', 0.2102, 0.1, True, 'distance >= 0.1', 0.275688, True, 5118, 5949, 0.517585, 0.00100857),
    ('temp', 'numeric', 'wasserstein', 0.432279, 0.1, True, 'distance >= 0.1', 2.73817, True, 5118, 5949, 0.0, 0.0),
    ('sched_hour', 'numeric', 'wasserstein', 0.0366976, 0.1, False, 'distance >= 0.1', 0.00332214, False, 5118, 5949, 0.0, 0.0),
    ('wind_gust', 'numeric', 'wasserstein', 0.492096, 0.1, True, 'distance >= 0.1', 4.55062, True, 5118, 5949, 0.702618, 0.812237),
    ('day_of_week', 'categorical', 'jensenshannon', 0.21402, 0.1, True, 'distance >= 0.1', 0.666184, True, 5118, 5949, 0.0, 0.0),
]
SAMPLE = {'model': 'delay_model',
     'version': '1',
     'threshold': 0.161473,
     'window': {'start': '2012-12-08T21:00:00.000001+00:00',
                'end': '2013-01-07T21:00:00.000001+00:00',
                'predictions': 5949,
                'versions': {'1': 5949}},
     'reference': {'run': '_dev', 'rows': 5118, 'is_champion_run': True},
     'drift': {'columns': 10,
               'drifted': 6,
               'share': 0.6,
               'dataset_share': 0.5,
               'dataset_drift': True,
               'drifted_columns': ['carrier_late_rate', 'carrier_flights', 'route_late_rate', 'temp', 'wind_gust',
                                   'day_of_week'],
               'psi_drifted_columns': ['carrier_late_rate', 'carrier_flights', 'route_late_rate', 'temp', 'wind_gust',
                                       'day_of_week'],
               'without_values': []},
     'prediction_drift': {'column': 'probability',
                          'kind': 'numeric',
                          'method': 'wasserstein',
                          'statistic': 0.319633,
                          'threshold': 0.1,
                          'drifted': True,
                          'rule': 'distance >= 0.1',
                          'psi': 0.363159,
                          'psi_drifted': True,
                          'reference_rows': 5118,
                          'current_rows': 5949,
                          'reference_missing_share': 0.0,
                          'current_missing_share': 0.0},
     'performance': {'predictions': 5949,
                     'labelled': 3932,
                     'label_share': 0.660951,
                     'min_labels': 200,
                     'judged': True,
                     'metrics': {'rows': 3932,
                                 'positives': 865,
                                 'threshold': 0.161473,
                                 'roc_auc': 0.718022,
                                 'average_precision': 0.415426,
                                 'brier': 0.158195,
                                 'log_loss': 0.486663,
                                 'ece': 0.0577376,
                                 'precision': 0.351301,
                                 'recall': 0.655491,
                                 'flagged_rate': 0.410478,
                                 'tp': 567,
                                 'fp': 1047,
                                 'fn': 298,
                                 'tn': 2020,
                                 'f1': 0.457443,
                                 'value_absolute': 209359.0,
                                 'value': 1133320.0},
                     'gates': [{'name': 'Ranking quality',
                                'kind': 'model',
                                'metric': 'roc_auc',
                                'owner': 'data_scientist',
                                'value': 0.718022,
                                'threshold': 0.65,
                                'direction': 'maximize',
                                'passed': True,
                                'reason': 'passed'},
                               {'name': 'Delays caught',
                                'kind': 'customer',
                                'metric': 'recall',
                                'owner': 'subject_matter_expert',
                                'value': 0.655491,
                                'threshold': 0.5,
                                'direction': 'maximize',
                                'passed': True,
                                'reason': 'passed'},
                               {'name': 'Value generated',
                                'kind': 'value',
                                'metric': 'value',
                                'owner': 'business_stakeholder',
                                'value': 1133320.0,
                                'threshold': 50000.0,
                                'direction': 'maximize',
                                'passed': True,
                                'reason': 'passed'}],
                     'by_period': [{'period': '2012-12-31/2013-01-06',
                                    'start': '2012-12-31T00:00:00+00:00',
                                    'rows': 3381,
                                    'roc_auc': 0.732569,
                                    'recall': 0.666247,
                                    'precision': 0.383333,
                                    'value': 1438100.0,
                                    'positives': 794},
                                   {'period': '2013-01-07/2013-01-13',
                                    'start': '2013-01-07T00:00:00+00:00',
                                    'rows': 551,
                                    'roc_auc': 0.579328,
                                    'recall': 0.535211,
                                    'precision': 0.162393,
                                    'value': -736842.0,
                                    'positives': 71}]},
     'computational': {'predictions': 5949,
                       'requests': 12,
                       'latency_ms_p50': 65.3807,
                       'latency_ms_p95': 253.688,
                       'latency_ms_p99': 253.688,
                       'served_seconds': 1.0,
                       'predictions_per_second': 5949.0,
                       'refused': 0,
                       'error_rate': 0.0,
                       'refused_by_status': {}},
     'request_quality': {'table': 'flights',
                         'scores': {'accuracy': 1.0, 'completeness': 1.0, 'consistency': 1.0, 'timeliness': None},
                         'failed': []},
     'decision': {'retrain': True,
                  'reasons': ['drift of important features: carrier_late_rate (wasserstein 0.253), carrier_flights '
                              '(wasserstein 1.87)'],
                  'checked': [{'rule': 'drift of important features',
                               'fired': True,
                               'finding': 'carrier_late_rate (wasserstein 0.253), carrier_flights (wasserstein 1.87)'},
                              {'rule': 'roc_auc floor',
                               'fired': False,
                               'finding': 'roc_auc = 0.718 on 3,932 labelled predictions, floor 0.65'},
                              {'rule': 'recall floor',
                               'fired': False,
                               'finding': 'recall = 0.6555 on 3,932 labelled predictions, floor 0.5'},
                              {'rule': 'value floor',
                               'fired': False,
                               'finding': 'value = 1.133e+06 on 3,932 labelled predictions, floor 50000'}]},
     'retrain_window': {'start': '2013-01-01T00:00:00+00:00', 'end': '2013-01-07T21:00:00.000001+00:00'},
     'thresholds': {'small_reference_rows': 1000,
                    'ks_p_value': 0.05,
                    'chi_square_p_value': 0.05,
                    'wasserstein': 0.1,
                    'jensen_shannon': 0.1,
                    'discrete_values': 5,
                    'integer_categories': 10,
                    'psi': 0.2,
                    'psi_bins': 10,
                    'psi_epsilon': 0.0001,
                    'dataset_share': 0.5}}
SAMPLE_CHECKS = [{'table': 'flights',
      'name': 'carrier.schema',
      'column': 'carrier',
      'dimension': 'consistency',
      'severity': 'error',
      'rule': 'carrier: present, dtype str',
      'failed': 0,
      'total': 5949,
      'pass_rate': 1.0,
      'min_pass_rate': 1.0,
      'passed': True,
      'score': 1.0,
      'detail': None,
      'samples': []},
     {'table': 'flights',
      'name': 'carrier.not_null',
      'column': 'carrier',
      'dimension': 'completeness',
      'severity': 'error',
      'rule': 'carrier has no nulls',
      'failed': 0,
      'total': 5949,
      'pass_rate': 1.0,
      'min_pass_rate': 1.0,
      'passed': True,
      'score': 1.0,
      'detail': None,
      'samples': []},
     {'table': 'flights',
      'name': 'origin.schema',
      'column': 'origin',
      'dimension': 'consistency',
      'severity': 'error',
      'rule': 'origin: present, dtype str',
      'failed': 0,
      'total': 5949,
      'pass_rate': 1.0,
      'min_pass_rate': 1.0,
      'passed': True,
      'score': 1.0,
      'detail': None,
      'samples': []}]


def report_from_sample(days: int = 0, scale: float = 1.0, stats: dict | None = None, **changes) -> dict:
    "The sample, its window moved by `days`, drift statistics times `scale` (or set by `stats`), verdicts and summary recomputed."
    import pandas as pd
    m = copy.deepcopy(SAMPLE)
    m["request_quality"]["checks"] = copy.deepcopy(SAMPLE_CHECKS)
    table = [dict(zip(DRIFT_KEYS, r)) for r in DRIFT_ROWS]
    for c in table:
        c["statistic"] = (stats or {}).get(c["column"], c["statistic"] * scale)
        c["drifted"] = c["statistic"] >= c["threshold"]
    drifted = [c["column"] for c in table if c["drifted"]]
    m["drift"].update(columns_table=table, drifted=len(drifted), share=len(drifted) / len(table), drifted_columns=drifted,
                      dataset_drift=len(drifted) / len(table) >= 0.5)
    for k in ("start", "end"):
        m["window"][k] = (pd.Timestamp(m["window"][k]) + pd.Timedelta(days=days)).isoformat()
    for k, v in changes.items():
        m[k] = {**m[k], **v} if isinstance(v, dict) and isinstance(m.get(k), dict) else v
    return m


def report_no_retrain() -> dict:
    "The run that asked for a retrain on drift and on a recall below its floor, and ran with --no-retrain."
    m = report_from_sample(days=-7, scale=0.3)
    perf = m["performance"]
    perf["metrics"] = {**perf["metrics"], "recall": 0.4812}
    perf["gates"] = [{**g, "value": 0.4812, "passed": False, "reason": "recall = 0.4812, needs >= 0.5"} if g["metric"] == "recall" else g
                     for g in perf["gates"]]
    perf["by_period"] = [{**perf["by_period"][0], "period": "2012-12-24/2012-12-30", "start": "2012-12-24T00:00:00+00:00",
                          "roc_auc": 0.7012, "recall": 0.4812}]
    checked = [{"rule": "drift of important features", "fired": True, "finding": "carrier_flights (wasserstein 0.561)"},
               {"rule": "roc_auc floor", "fired": False, "finding": "roc_auc = 0.718 on 3,932 labelled predictions, floor 0.65"},
               {"rule": "recall floor", "fired": True, "finding": "recall = 0.4812 on 3,932 labelled predictions, floor 0.5"},
               {"rule": "value floor", "fired": False, "finding": "value = 1.133e+06 on 3,932 labelled predictions, floor 50000"}]
    m["decision"] = {"retrain": True, "checked": checked, "reasons": [f"{c['rule']}: {c['finding']}" for c in checked if c["fired"]]}
    return m


def report_quiet() -> dict:
    "Version 2's first window: no important feature drifted, every gate held, two requests refused, slow answers."
    m = report_from_sample(days=7, scale=0.2, stats={"carrier_flights": 0.08, "wind_gust": 0.1532}, version="2")
    m["window"]["versions"] = {"2": m["window"]["predictions"]}
    perf = m["performance"]
    perf["metrics"] = {**perf["metrics"], "roc_auc": 0.7044, "recall": 0.6121, "value": 910234.0}
    perf["gates"] = [{**g, "value": perf["metrics"][g["metric"]]} for g in perf["gates"]]
    perf["by_period"] = [{**perf["by_period"][0], "period": "2013-01-07/2013-01-13", "start": "2013-01-07T00:00:00+00:00",
                          "rows": 2900, "roc_auc": 0.7011},
                         {**perf["by_period"][1], "period": "2013-01-14/2013-01-20", "start": "2013-01-14T00:00:00+00:00",
                          "rows": 800, "roc_auc": 0.6902, "value": 402000.0}]
    m["computational"] = {**m["computational"], "latency_ms_p50": 5.1, "latency_ms_p95": 31.0, "latency_ms_p99": 62.4, "refused": 2, "error_rate": 2 / 14,
                          "refused_by_status": {"422": 2}}
    m["prediction_drift"] = {**m["prediction_drift"], "statistic": 0.0412, "drifted": False, "psi": 0.021, "psi_drifted": False}
    m["decision"] = {"retrain": False, "reasons": [], "checked": [
        {"rule": "drift of important features", "fired": False,
         "finding": "none of the 5 most important features drifted (carrier, plane_manufacturer, carrier_late_rate, carrier_flights, origin)"},
        {"rule": "roc_auc floor", "fired": False, "finding": "roc_auc = 0.7044 on 3,932 labelled predictions, floor 0.65"}]}
    m["retrain_window"] = None
    m["explanations"], m["alerts"] = explaining(m["computational"])
    return m


def explaining(health: dict) -> tuple:
    "What the monitor step records of a window whose weather does four times its hold-out share of the explaining: (explanations, alerts)."
    import numpy as np
    import pandas as pd
    from mlops_nb.config import MonitorSpec
    from mlops_nb.explain import contribution_shares, feature_views
    from mlops_nb.monitor import explanation_shares, window_alerts
    project = load_project(demo_project_file()).project
    views = feature_views(project.features)
    sizes = pd.Series({"sched_hour": 0.3, "carrier_late_rate": 0.25, "route_late_rate": 0.15, "temp": 0.1, "wind_gust": 0.1, "plane_year": 0.1})
    weather = sizes.index.map(lambda c: views[c] == "weather")
    g = np.random.default_rng(5)
    def rows(n, size): return pd.DataFrame(np.outer(g.choice([-1.0, 1.0], n), size.to_numpy()), columns=size.index)
    by_column, by_view = contribution_shares(rows(1000, sizes), views)
    reference = {"views": by_view.to_dict(), "columns": by_column.head(10).to_dict()}
    e = explanation_shares(rows(3000, sizes.where(~weather, sizes * 4)), views, reference, MonitorSpec())
    return e, window_alerts(e, health, project.design)


# --------------------------------------------------------------------------------------------------
# Run folders as the runner, the monitor step and `mlops-nb monitor` write them

def _step(name: str, status: str, started: str, **more) -> dict:
    return {"name": name, "notebook": f"nbs/{name}.ipynb", "status": status, "started": started, "ended": started,
            "duration_s": 2.0, "executed_notebook": f"notebooks/{name}.ipynb", "mlflow_run_id": "ab" * 16,
            "error": None, "outputs": {}, **more}


def write_run(runs: Path, run_id: str, started: str, monitoring: dict | None = None, retrain: dict | None = None) -> Path:
    "A pipeline run (design to deploy), or with `monitoring` a monitoring run (the pipeline's steps reused, monitor succeeded)."
    lp = load_project(demo_project_file())
    d = runs / run_id
    d.mkdir(parents=True)
    (d / "project.yaml").write_text(lp.dump())
    write_json(d / "artifacts/design/design_card.json", lp.project.design.model_dump(mode="json"))
    names = ["design", "ingest", "quality", "features", "train", "deploy"]
    if monitoring is None:
        steps = [_step(n, "succeeded", started) for n in names]
    else:
        steps = [_step(n, "reused", started, reused_from=PIPE) for n in names] + [_step("monitor", "succeeded", started)]
        write_json(d / "artifacts/monitor/monitoring.json", monitoring)
    rec = {"run_id": run_id, "status": "succeeded", "started": started, "ended": started, "duration_s": 12.0,
           "command": "mlops-nb monitor" if monitoring else "mlops-nb run", "git_commit": "eeed023",
           "project": {"name": "flights", "file": str(demo_project_file()), "copy": "project.yaml", "digest": lp.digest},
           "mlflow": {"tracking_uri": "sqlite:////nowhere/mlflow.db", "experiment_id": "1", "parent_run_id": "9f" * 16},
           "error": None, "steps": steps, "reports": {}}
    if retrain: rec["retrain"] = retrain
    write_json(d / "run.json", rec)
    return d


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    "Three monitoring runs, the retrain that the second one started, and pipeline runs before and after."
    root = tmp_path_factory.mktemp("monitoring-root")
    runs = root / "runs"
    write_run(runs, PIPE, "2013-01-01T05:00:00+00:00")
    write_run(runs, MON0, "2013-01-01T06:00:00+00:00", report_no_retrain())
    write_run(runs, MON1, "2013-01-08T06:00:00+00:00", report_from_sample(),
              retrain={"run_id": RETRAIN, "status": "succeeded",
                       "registered": {"name": "delay_model", "version": "2", "decision": "champion", "reasons": []},
                       "summary": "version 2 registered, champion: "})
    write_run(runs, RETRAIN, "2013-01-08T06:20:00+00:00")
    write_run(runs, MON2, "2013-01-15T06:00:00+00:00", report_quiet())
    write_run(runs, WEEKLY, "2013-01-16T03:00:00+00:00")
    return root


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists(): pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        yield b
        b.close()


def read_page(browser, url: str) -> str:
    "Open `url`, wait until the page's footer is rendered, and return the visible text."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=90_000)
        page.wait_for_selector(".mr-footer", state="attached", timeout=90_000)
        page.wait_for_timeout(200)
        return page.inner_text("body")
    finally:
        page.close()


def assert_no_error(text: str):
    "No Voila cell error, no traceback, no exception name."
    m = ERROR_TEXT.search(text)
    assert m is None, f"error text {m.group(0)!r} in page: ...{text[max(0, m.start() - 200):m.end() + 200]}..."


def static_page(root: Path, run_id: str) -> Path:
    "The run's frozen monitoring page, rendered by `render_reports` (once per run)."
    f = root / "runs" / run_id / "reports" / "monitoring.html"
    if not f.exists():
        out = render_reports(root / "runs" / run_id, ["monitoring"])
        assert out == {"monitoring": f}
    return f


# --------------------------------------------------------------------------------------------------
# Which runs, in which order

def test_history_is_the_monitoring_runs_by_window(root):
    live = select_monitoring(query="", root=root)
    assert [r["run_id"] for r in live["monitoring"]] == [MON2, MON1, MON0], "pipeline runs are not monitoring runs"
    assert live["run"]["run_id"] == MON2 and live["how"] == "the latest monitoring run", "live: the latest monitoring run"
    assert [h["run_id"] for h in monitoring_history(live)] == [MON0, MON1, MON2]
    frozen = select_monitoring(root / "runs" / MON1)
    assert [h["run_id"] for h in monitoring_history(frozen)] == [MON0, MON1], "a frozen copy shows the history up to its run"
    assert select_monitoring(root / "runs" / RETRAIN)["report"] is None
    asked = select_monitoring(query=f"run={MON1}", root=root)
    assert asked["run"]["run_id"] == MON1 and "how" not in asked, "?run= picks the run, as on the other pages"


# --------------------------------------------------------------------------------------------------
# Frozen copies, read in Chromium

@pytest.mark.browser
def test_latest_monitoring_run_frozen(root, browser):
    html = static_page(root, MON2).read_text()
    assert "select_monitoring" not in html and "from mlops_nb.reports import" not in html, "code in the page"
    text = read_page(browser, static_page(root, MON2).as_uri())
    assert_no_error(text)
    for s in [f"Run {MON2}", "frozen copy",
              # the headline: model, version, window, labels, decision and every rule
              "Retrain: no.", "delay_model version 2", "2012-12-15 21:00 to 2013-01-14 21:00 UTC", "3,932 of 5,949 (66.1%)",
              "none of the 5 most important features drifted", "quiet",
              # alerts
              "2 requests refused (error rate 14.29%; HTTP 422: 2)",
              "p99 latency 62.4 ms over 5,949 predictions exceeds the design card's requirements.end_user.max_latency_ms = 50 ms",
              "What drives the decisions moved: weather drives 50% of the explaining (reference 20%), on 3,000 explained predictions",
              # what drives the decisions, beside the reference
              "Reference (version 2's hold-out)", "50.0% ▲", "20.0%", "The largest columns of this window", "Predictions explained",
              "1 other features drifted: wind_gust",
              # drift over time and this window's table
              "carrier_late_rate ★", "0.253 ▲", "0.153 ▲", "predictions (probability)", "0.32 ▲", "jensenshannon",
              "16.0% → 16.2%", "to 2012-12-31 21:00", "to 2013-01-07 21:00", "to 2013-01-14 21:00",
              # performance against the card, per window and per week
              "Ranking quality (ROC AUC ≥ 0.6500)", "Delays caught (Recall ≥ 50.0%)", "Value generated (Value ≥ 50,000 USD per month)",
              "0.7044", "48.1% ▼", "2013-01-14/2013-01-20", "2012-12-24/2012-12-30", "Value (USD/month)",
              # latency, errors, request quality
              "within 50 ms", "5.1 ms", "62.4 ms ▼", "254 ms ▼", "422: 2", "Share refused", "All 3 checks passed",
              # retrains
              "3 monitoring runs; 2 asked for a retrain; 1 retrains recorded.", RETRAIN, "champion",
              "version 2 registered, champion", "not recorded"]:
        assert s in text, s
    assert text.index("2013-01-14/2013-01-20") < text.index("2013-01-07/2013-01-13") < text.index("2012-12-24/2012-12-30")
    assert WEEKLY not in text and PIPE not in text.split("Other monitoring runs")[1], "the chooser lists monitoring runs only"


@pytest.mark.browser
def test_retraining_window_frozen(root, browser):
    text = read_page(browser, static_page(root, MON1).as_uri())
    assert_no_error(text)
    for s in ["Retrain: yes.", "drift of important features: carrier_late_rate (wasserstein 0.253), carrier_flights (wasserstein 1.87)",
              f"Retrain run {RETRAIN} succeeded: version 2 registered, champion",
              "2 of the 5 most important features drifted: carrier_late_rate (wasserstein 0.253), carrier_flights (wasserstein 1.87)",
              "delay_model version 1", "2012-12-08 21:00 to 2013-01-07 21:00 UTC", "fired",
              "The predictions drifted", "0.5793 ▼",
              "99% of scoring passes took up to 254 ms; the design card allows 50 ms",  # a window monitored before alerts were recorded
              "No prediction of these windows was explained", "2 monitoring runs; 2 asked for a retrain; 1 retrains recorded."]:
        assert s in text, s
    assert MON2 not in text.split("Other monitoring runs")[0], "the history of a frozen copy ends with its run"


@pytest.mark.browser
def test_pipeline_run_says_it_is_no_monitoring_run(root, browser):
    t0 = time.monotonic()
    f = static_page(root, RETRAIN)
    took = time.monotonic() - t0
    text = read_page(browser, f.as_uri())
    assert_no_error(text)
    assert (f"No monitoring results for this run: run {RETRAIN} is a pipeline run, not a monitoring run (it has no monitor step). "
            f"The latest monitoring run before it: {MON1}.") in text
    assert "Drift per feature over time" in text and "Retrain: " not in text
    assert took < 30, f"the page took {took:.0f} s for a run without monitoring"


@pytest.mark.browser
def test_no_monitoring_run_yet(browser, tmp_path):
    write_run(tmp_path / "runs", PIPE, "2013-01-01T05:00:00+00:00")
    text = read_page(browser, static_page(tmp_path, PIPE).as_uri())
    assert_no_error(text)
    assert "No monitoring run yet: mlops-nb monitor starts one." in text
    assert "There is no monitoring run yet: mlops-nb monitor starts one." in text


# --------------------------------------------------------------------------------------------------
# Live: Voila shows the latest monitoring run, although the latest run is a pipeline run


@pytest.mark.browser
def test_live_page_shows_the_latest_monitoring_run(root, browser, tmp_path):
    port = free_port()
    proc = start_reports(root, port, log=tmp_path / "voila.log", ready_timeout=90)
    try:
        text = read_page(browser, report_url(port, page="monitoring"))
        assert_no_error(text)
        assert f"Run {MON2}" in text and "the latest monitoring run" in text and "Retrain: no." in text
    finally:
        stop_reports(proc, timeout=30)

