"""Example run folders for the report notebooks' tests (91_reports, 94_reports_data, 95_reports_model,
96_reports_monitoring), written by hand the way the runner and the phase steps write theirs.

Not part of the package: each of those notebooks runs this file in a hidden cell, `%run report_examples.py` (nbdev-test
and Jupyter run a notebook in its own folder; the documentation's processing leaves the cell alone), so that the four
notebooks share one set of examples instead of four copies.
"""
import base64, json, tempfile
from pathlib import Path

from mlops_nb.config import demo_project_file, load_project, write_json

demo_card = load_project(demo_project_file()).project.design.model_dump(mode="json")


def example_run(runs_dir, run_id, started, failed=None, scores=None):
    "Write a run folder like the runner's: `run.json`, the design card, and (unless quality failed) `quality.json`."
    d = Path(runs_dir) / run_id
    steps = []
    for i, name in enumerate(["design", "ingest", "quality"]):
        status = "failed" if name == failed else "succeeded"
        steps.append({"name": name, "notebook": f"nbs/0{i+1}_{name}.ipynb", "status": status,
                      "started": started, "ended": started, "duration_s": 1.5 + 10 * i,
                      "executed_notebook": f"notebooks/0{i+1}_{name}.ipynb", "mlflow_run_id": f"{i}abc{run_id[-4:]}",
                      "error": {"cell": 7, "cell_index": 9, "ename": "QualityGateError",
                                "message": "1 blocking check failed: flights.duplicates"} if status == "failed" else None,
                      "outputs": {}})
    write_json(d / "artifacts/design/design_card.json", demo_card)
    if failed != "quality":
        scores = scores or {"accuracy": 0.99, "completeness": 0.97, "consistency": 1.0, "timeliness": None}
        write_json(d / "artifacts/quality/quality.json", {
            "passed": True, "scores": scores,
            "thresholds": {"accuracy": 0.95, "completeness": 0.95, "consistency": 0.9, "timeliness": 0.9},
            "tables": {"flights": {"rows": 6000, "scores": scores}},
            "checks": [{"table": "flights", "name": "tailnum.pattern", "dimension": "accuracy", "severity": "warn",
                        "rule": "pattern N[0-9A-Z]{1,5}", "failed": 42, "total": 6000, "pass_rate": 0.993,
                        "min_pass_rate": 0.999, "passed": False, "samples": [{"tailnum": "X<1>", "carrier": "UA"}]},
                       {"table": "flights", "name": "origin.allowed", "dimension": "accuracy", "severity": "error",
                        "rule": "in [EWR, JFK, LGA]", "failed": 0, "total": 6000, "pass_rate": 1.0,
                        "min_pass_rate": 1.0, "passed": True, "samples": []}],
            "failures": [], "warnings": ["flights: tailnum.pattern passed 99.3% of rows, needs 99.9%"],
            "profiles": {"flights": {"path": "profile_flights.html", "sample_fraction": 1.0, "rows_profiled": 6000,
                                     "seconds": 3.2}}})
        (d / "artifacts/quality/profile_flights.html").write_text("<html><body><h1>Profile of flights</h1></body></html>")
    write_json(d / "run.json", {
        "run_id": run_id, "status": "failed" if failed else "succeeded", "started": started, "ended": started,
        "duration_s": 25.0, "command": "mlops-nb run", "git_commit": "eeed023",
        "project": {"name": "flights", "file": "conf/project.yaml", "copy": "project.yaml", "digest": "ab12" * 16},
        "mlflow": {"tracking_uri": "sqlite:///mlflow.db", "experiment_id": "1", "parent_run_id": "p" + run_id[-4:]},
        "error": {"step": failed, **steps[2]["error"]} if failed else None, "steps": steps, "reports": {}})
    return d


def example_runs() -> tuple[Path, Path]:
    "Three runs in a new runs folder: a successful older run, one whose quality step failed, the successful latest; (runs folder, latest run)."
    runs_dir = Path(tempfile.mkdtemp()) / "runs"
    example_run(runs_dir, "20130102-080000-aaaa", "2013-01-02T08:00:00+00:00", scores={"accuracy": 0.97, "completeness": 0.99, "consistency": 0.95, "timeliness": 0.92})
    example_run(runs_dir, "20130103-080000-bbbb", "2013-01-03T08:00:00+00:00", failed="quality")
    latest_dir = example_run(runs_dir, "20130104-080000-cccc", "2013-01-04T08:00:00+00:00")
    return runs_dir, latest_dir


def example_explanation() -> dict:
    "The `explanation` of the example model card, as `mlops_nb.train.explain_holdout` writes it: a flagged flight and an unflagged one."
    described = {"sched_hour": ("Hour of scheduled departure.", "request"), "carrier": ("Airline code.", "request"),
                 "origin": ("Origin airport.", "request"), "temp": ("Temperature (F).", "weather"), "wind_speed": ("Wind speed (mph).", "weather")}
    def example(why, case, probability, values, contributions):
        order = sorted(contributions, key=lambda c: -abs(contributions[c]))
        return {"why": why, "case": case, "probability": probability, "threshold": 0.2461, "flagged": probability >= 0.2461, "output": None,
                "base": -1.2, "score": -1.2 + sum(contributions.values()), "values": values, "contributions": contributions,
                "factors": [{"feature": c, "value": values[c], "view": described[c][1], "contribution": contributions[c],
                             "description": described[c][0]} for c in order]}
    mean_abs = {"sched_hour": 0.52, "carrier": 0.31, "temp": 0.22, "wind_speed": 0.14, "origin": 0.06}
    return {"explainable": True, "method": "tree_shap", "space": "log-odds", "rows": 2000, "base": -1.2, "seconds": 0.9,
            "mean_abs": {"columns": mean_abs, "views": {"request": 0.89, "weather": 0.36}},
            "shares": {"columns": {c: v / 1.25 for c, v in mean_abs.items()}, "views": {"request": 0.712, "weather": 0.288}},
            "examples": [example("flagged, with the highest probability", {"carrier": "UA", "flight": 1545, "origin": "EWR", "time_hour": "2013-12-01T22:00:00+00:00"},
                                 0.6063, {"sched_hour": 17, "carrier": "UA", "origin": "EWR", "temp": 28.0, "wind_speed": 24.2},
                                 {"sched_hour": 0.61, "temp": 0.42, "wind_speed": 0.38, "carrier": 0.35, "origin": -0.128}),
                         example("not flagged, with the lowest probability", {"carrier": "DL", "flight": 731, "origin": "LGA", "time_hour": "2013-12-03T11:00:00+00:00"},
                                 0.05, {"sched_hour": 6, "carrier": "DL", "origin": "LGA", "temp": 55.0, "wind_speed": 3.0},
                                 {"sched_hour": -0.82, "carrier": -0.41, "temp": -0.30, "wind_speed": -0.15, "origin": -0.064})]}


def example_train(run_dir, tracking_uri=None, version=3):
    "Write the train step's artifacts into an example run, as `mlops_nb.train.run_step` does, and add the step to its record."
    d = Path(run_dir) / "artifacts" / "train"
    vm = {"currency": "USD", "period": "month", "volume_per_period": 28000.0, "true_positive": 500.0,
          "false_positive": 200.0, "false_negative": 150.0, "true_negative": 0.0}
    def metrics(auc, value, recall=0.45):
        return {"rows": 1000, "positives": 200, "threshold": 0.25, "roc_auc": auc, "average_precision": 0.41, "brier": 0.13,
                "log_loss": 0.43, "ece": 0.035, "precision": 0.32, "recall": recall, "f1": 0.37, "flagged_rate": 0.23,
                "tp": 90, "fp": 190, "fn": 110, "tn": 610, "value_absolute": value - 300000, "value": value}
    feats = ["carrier", "origin", "sched_hour", "temp", "wind_speed"]
    trials = [{"trial": 0, "experiment": "booking", "family": "logistic_regression", "params": {"C": 0.1}, "features": feats[:3],
               "status": "finished", "error": None, "metrics": metrics(0.642, 193429.0), "threshold": 0.30,
               "importance": {"features": {}, "groups": {"request": 0.11}}, "fit_seconds": 1.6, "eval_seconds": 0.2,
               "seconds": 1.8, "tracking_seconds": 1.1, "run_id": "f5ca00"},
              {"trial": 1, "experiment": "weather", "family": "hist_gradient_boosting", "params": {"learning_rate": 0.1},
               "features": feats, "status": "finished", "error": None, "metrics": metrics(0.683, 467094.0, 0.44),
               "threshold": 0.25, "importance": {"features": {}, "groups": {}}, "fit_seconds": 6.2, "eval_seconds": 0.4,
               "seconds": 6.6, "tracking_seconds": 1.3, "run_id": "7f53aa"},
              {"trial": 2, "experiment": "forest", "family": "random_forest", "params": {"min_samples_leaf": 0},
               "features": feats, "status": "failed", "error": "InvalidParameterError: min_samples_leaf must be >= 1",
               "metrics": None, "threshold": None, "importance": None, "fit_seconds": 0.1, "seconds": 0.1,
               "tracking_seconds": 0.4, "run_id": "9d1e00"}]
    experiments = [
        {"experiment": "booking", "hypothesis": "The booking alone ranks late flights better than chance.",
         "family": "logistic_regression", "trials": 1, "failed": 0, "best_trial": 0, "best": 0.642, "held": True,
         "verdict": "roc_auc 0.6420 beats 0.6"},
        {"experiment": "weather", "hypothesis": "Weather at the origin improves late-arrival recall.",
         "family": "hist_gradient_boosting", "trials": 1, "failed": 0, "best_trial": 1, "best": 0.44, "held": False,
         "verdict": "recall 0.4400 vs 0.4500 for booking: not held"},
        {"experiment": "forest", "hypothesis": "A random forest matches the boosted trees.", "family": "random_forest",
         "trials": 1, "failed": 1, "best_trial": None, "best": None, "held": None,
         "verdict": "no trial finished: the hypothesis could not be tested"}]
    importance = {"features": {"sched_hour": 0.067, "carrier": 0.019, "origin": 0.0003, "temp": -0.0006, "wind_speed": 0.0087},
                  "groups": {"request": 0.1005, "weather": 0.0511}}
    hold = {**metrics(0.6872, 534651.55, 0.5433), "rows": 39346, "positives": 11232, "tp": 6102, "fp": 7685, "fn": 5130,
            "tn": 20429, "flagged_rate": 0.3504}
    model_card = {
        "model_name": "delay_model",
        "intended_use": {"problem": demo_card["problem"], "decision": demo_card["decision"], "added_value": demo_card["added_value"],
                         "transparency": "The desk sees the delay probability and the flight's main risk factors."},
        "label": {"name": "late", "definition": "arr_delay > 15", "positive": "True"},
        "selected": {"experiment": "weather", "trial": 1, "family": "hist_gradient_boosting", "params": {"learning_rate": 0.1},
                     "features": feats, "threshold": 0.2461, "run_id": "7f53aa"},
        "selection_metric": "roc_auc", "validation": metrics(0.683, 467094.0, 0.44), "holdout": hold,
        "slices": {"origin": [{"slice": "EWR", "rows": 13788, "positives": 4332, "roc_auc": 0.673, "precision": 0.444,
                               "recall": 0.583, "flagged_rate": 0.412, "value": 173629.2},
                              {"slice": "LGA", "rows": 12616, "positives": 3353, "roc_auc": 0.708, "precision": 0.431,
                               "recall": 0.31, "flagged_rate": 0.343, "value": -8814.0}]},
        "calibration": [{"mean_probability": 0.065, "observed_rate": 0.123, "rows": 3935},
                        {"mean_probability": 0.583, "observed_rate": 0.637, "rows": 3934}],
        "gates": [{"name": "Ranking quality", "kind": "model", "metric": "roc_auc", "owner": "data_scientist", "value": 0.6872,
                   "threshold": 0.7, "direction": "maximize", "passed": False, "reason": "roc_auc = 0.6872, needs >= 0.7"},
                  {"name": "Delays caught", "kind": "customer", "metric": "recall", "owner": "subject_matter_expert",
                   "value": 0.5433, "threshold": 0.5, "direction": "maximize", "passed": True, "reason": "passed"}],
        "importance": importance, "explanation": example_explanation(),
        "split": {"kind": "time", "rows": {"train": 248706, "validation": 39294, "holdout": 39346},
                  "positive_rate": {"train": 0.2402, "validation": 0.1692, "holdout": 0.2855},
                  "period": {"train_start": "2013-01-01T08:00:00+00:00", "train_end": "2013-10-05T08:00:00+00:00",
                             "validation_start": "2013-10-05T09:00:00+00:00", "validation_end": "2013-11-17T10:00:00+00:00",
                             "holdout_start": "2013-11-17T11:00:00+00:00", "holdout_end": "2014-01-01T02:00:00+00:00"}},
        "promotion": {"metric": "value", "margin": 0.0, "champion_version": "2", "champion_on_holdout": {"value": 498000.0},
                      "decision": "challenger", "reasons": ["gate Ranking quality failed: roc_auc = 0.6872, needs >= 0.7"]},
        "limitations": ["Weak on origin = LGA: recall 0.31 against 0.54 overall (12,616 hold-out rows)."],
        "value_model": vm,
        "lineage": {"pipeline_run": Path(run_dir).name, "snapshot": {"flights.parquet": "f762" * 16, "weather.parquet": "aaa9" * 16},
                    "training_set_digest": "a55b" * 16, "holdout_digest": "1918" * 16, "trial_run_id": "7f53aa",
                    "git_commit": "eeed023"},
        "requirements": ["scikit-learn==1.9.1", "skops==0.16.0"], "sign_off_required": False,
        "registered": {"name": "delay_model", "version": version, "decision": "challenger",
                       "reasons": ["gate Ranking quality failed: roc_auc = 0.6872, needs >= 0.7"]}}
    for name, obj in [("trials.json", trials), ("experiments.json", experiments), ("model_card.json", model_card),
                      ("importance.json", {"selected_trial": 1, "metric": "roc_auc", **importance})]:
        write_json(d / name, obj)
    (d / "holdout_evaluation.png").write_bytes(base64.b64decode(  # a 1x1 PNG stands in for the figure
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="))
    rec = json.loads((Path(run_dir) / "run.json").read_text())
    rec["steps"] = [s for s in rec["steps"] if s["name"] != "train"]
    rec["steps"].append({**rec["steps"][-1], "name": "train", "notebook": "nbs/05_train.ipynb", "status": "succeeded",
                         "executed_notebook": "notebooks/05_train.ipynb", "error": None})
    if tracking_uri: rec["mlflow"]["tracking_uri"] = tracking_uri
    write_json(Path(run_dir) / "run.json", rec)
    return d


FEATURES = [("carrier_late_rate", "numeric", "wasserstein"), ("sched_hour", "numeric", "wasserstein"),
            ("carrier", "categorical", "jensenshannon"), ("temp", "numeric", "wasserstein"),
            ("route_flights", "numeric", "wasserstein"), ("wind_gust", "numeric", "wasserstein")]


EXAMPLE_SIZES = {"carrier_late_rate": 0.22, "sched_hour": 0.2, "carrier": 0.15, "route_flights": 0.1, "carrier_flights": 0.1,
                 "distance": 0.05, "temp": 0.6, "wind_gust": 0.25, "visib": 0.15}  # weather's columns: shares of weather's part
EXAMPLE_VIEWS = {"carrier_late_rate": "carrier_history", "carrier_flights": "carrier_history", "route_flights": "route_history",
                 "sched_hour": "request", "carrier": "request", "distance": "request", "temp": "weather", "wind_gust": "weather", "visib": "weather"}


def example_contributions(weather, rows, seed=0):
    "`rows` made-up contributions (signs at random, sizes fixed) whose weather columns carry `weather` of the total."
    import numpy as np, pandas as pd
    g = np.random.default_rng(seed)
    others = sum(s for c, s in EXAMPLE_SIZES.items() if EXAMPLE_VIEWS[c] != "weather")
    size = {c: s * (weather if EXAMPLE_VIEWS[c] == "weather" else (1 - weather) / others) for c, s in EXAMPLE_SIZES.items()}
    return pd.DataFrame({c: s * g.choice([-1.0, 1.0], rows) for c, s in size.items()})


def example_explaining(weather, explained, computational):
    "The `explanations` and `alerts` of `monitoring.json`, made by the monitor step's own functions (the champion's hold-out: weather 18%)."
    from mlops_nb.config import DesignCard, MonitorSpec
    from mlops_nb.explain import contribution_shares
    from mlops_nb.monitor import explanation_shares, window_alerts
    by_column, by_view = contribution_shares(example_contributions(0.18, 1000, seed=1), EXAMPLE_VIEWS)
    reference = {"views": by_view.to_dict(), "columns": by_column.head(10).to_dict()}
    explaining = explanation_shares(example_contributions(weather, explained), EXAMPLE_VIEWS, reference, MonitorSpec())
    return explaining, window_alerts(explaining, computational, DesignCard.model_validate(demo_card))


def example_report(start, end, stats, version="1", roc_auc=0.718, recall=0.655, value=1133316.4, labelled=3932,
                   predictions=5949, refused=0, weeks=(), weather=0.19, explained=5000):
    "A small `monitoring.json` as `mlops_nb.monitor.run_step` writes it: six features, weeks as (period, start, roc_auc, value)."
    table = [{"column": c, "kind": k, "method": m, "statistic": stats[c], "threshold": 0.1, "drifted": stats[c] >= 0.1,
              "rule": "distance >= 0.1", "psi": stats[c] * 1.2, "psi_drifted": stats[c] * 1.2 >= 0.2, "reference_rows": 5118,
              "current_rows": predictions, "reference_missing_share": 0.0, "current_missing_share": 0.16 if c == "wind_gust" else 0.0}
             for c, k, m in FEATURES]
    drifted = [r["column"] for r in table if r["drifted"]]
    judged = labelled >= 200
    metrics = {"rows": labelled, "roc_auc": roc_auc, "recall": recall, "precision": 0.35, "value": value}
    gates = [{"name": k["name"], "metric": k["metric"], "value": metrics[k["metric"]], "threshold": k["threshold"],
              "direction": "maximize", "passed": metrics[k["metric"]] >= k["threshold"],
              "reason": "passed" if metrics[k["metric"]] >= k["threshold"] else f"{k['metric']} = {metrics[k['metric']]:.4g}, needs >= {k['threshold']:g}"}
             for k in demo_card["key_metrics"]] if judged else []
    important = [r for r in table[:5] if r["drifted"]]
    checked = [{"rule": "drift of important features", "fired": bool(important),
                "finding": ", ".join(f"{r['column']} (wasserstein {r['statistic']:.3g})" for r in important) or "none of the 5 most important features drifted"}]
    for k in demo_card["key_metrics"]:
        v = metrics[k["metric"]]
        checked.append({"rule": f"{k['metric']} floor", "fired": judged and v < k["threshold"],
                        "finding": f"{k['metric']} = {v:.4g} on {labelled:,} labelled predictions, floor {k['threshold']:g}" if judged
                                   else f"not judged: {labelled:,} labelled predictions (needs 200)"})
    reasons = [f"{c['rule']}: {c['finding']}" for c in checked if c["fired"]]
    computational = {"predictions": predictions, "requests": 12 + refused, "latency_ms_p50": 6.5, "latency_ms_p95": 31.2,
                     "latency_ms_p99": 48.0 if not refused else 75.3, "served_seconds": 60.0, "predictions_per_second": predictions / 60,
                     "refused": refused, "error_rate": refused / (12 + refused), "refused_by_status": {"422": refused} if refused else {}}
    explaining, alerts = example_explaining(weather, explained, computational)
    return {"model": "delay_model", "version": version, "threshold": 0.1615,
            "window": {"start": start, "end": end, "predictions": predictions, "versions": {version: predictions}},
            "reference": {"run": "20130101-050000-pipe", "rows": 5118, "is_champion_run": True},
            "drift": {"columns": len(table), "drifted": len(drifted), "share": len(drifted) / len(table), "dataset_share": 0.5,
                      "dataset_drift": len(drifted) / len(table) >= 0.5, "drifted_columns": drifted, "columns_table": table, "without_values": []},
            "prediction_drift": {"column": "probability", "kind": "numeric", "method": "wasserstein", "statistic": 0.32 if drifted else 0.04,
                                 "threshold": 0.1, "drifted": bool(drifted), "rule": "distance >= 0.1", "psi": 0.36 if drifted else 0.02},
            "performance": {"predictions": predictions, "labelled": labelled, "label_share": labelled / predictions, "min_labels": 200,
                            "judged": judged, "metrics": metrics, "gates": gates,
                            "by_period": [{"period": p, "start": s, "rows": 1200, "positives": 300, "roc_auc": a, "recall": 0.6,
                                           "precision": 0.35, "value": v} for p, s, a, v in weeks]},
            "computational": computational,
            "request_quality": {"table": "flights", "scores": {"accuracy": 1.0 if not refused else 0.9966, "completeness": 1.0, "consistency": 1.0, "timeliness": None},
                                "checks": [{"table": "flights", "name": "origin.allowed", "dimension": "accuracy", "severity": "error",
                                            "rule": "in [EWR, JFK, LGA]", "failed": 3 if refused else 0, "total": predictions,
                                            "pass_rate": 1 - (3 if refused else 0) / predictions, "min_pass_rate": 1.0, "passed": not refused}],
                                "failed": [f"origin.allowed: 3 of {predictions:,}"] if refused else []},
            "explanations": explaining, "alerts": alerts,
            "decision": {"retrain": bool(reasons), "reasons": reasons, "checked": checked},
            "retrain_window": {"start": "2013-01-01T00:00:00+00:00", "end": end} if reasons else None,
            "thresholds": {"psi": 0.2, "dataset_share": 0.5}}


def example_monitor_run(runs_dir, run_id, started, report=None, retrain=None, failed=False):
    "A monitoring run folder: the pipeline's steps reused, `monitor` succeeded (or failed), `monitoring.json`, the retrain record."
    d = Path(runs_dir) / run_id
    steps = [{"name": n, "status": "reused", "reused_from": "20130101-050000-pipe", "started": started, "ended": started,
              "duration_s": 0.0, "outputs": {}, "error": None} for n in ("design", "ingest", "quality", "features", "train", "deploy")]
    steps.append({"name": "monitor", "notebook": "nbs/07_monitor.ipynb", "status": "failed" if failed else "succeeded",
                  "started": started, "ended": started, "duration_s": 8.5, "executed_notebook": "notebooks/07_monitor.ipynb",
                  "error": {"cell": 12, "ename": "MonitorError", "message": "serving/predictions.db: no prediction log"} if failed else None,
                  "outputs": {}})
    write_json(d / "artifacts/design/design_card.json", demo_card)
    if report is not None: write_json(d / "artifacts/monitor/monitoring.json", report)
    rec = {"run_id": run_id, "status": "failed" if failed else "succeeded", "started": started, "ended": started, "duration_s": 9.0,
           "command": "mlops-nb monitor", "git_commit": "eeed023", "project": {"name": "flights", "file": "conf/project.yaml"},
           "mlflow": {"tracking_uri": "sqlite:////nowhere/mlflow.db", "experiment_id": "1", "parent_run_id": "p1"},
           "error": {"step": "monitor", **steps[-1]["error"]} if failed else None, "steps": steps, "reports": {}}
    if retrain: rec["retrain"] = retrain
    write_json(d / "run.json", rec)
    return d


def example_monitoring_runs() -> tuple[Path, Path, Path, Path, Path]:
    """Three monitoring runs and the pipeline run the second one's retrain started, in a new runs folder:
    (runs folder, the three monitoring runs and the retrain run, in the order m1, m2, retrain, m3)."""
    mon_runs = Path(tempfile.mkdtemp()) / "runs"
    calm = {"carrier_late_rate": 0.03, "sched_hour": 0.02, "carrier": 0.01, "temp": 0.05, "route_flights": 0.04, "wind_gust": 0.12}
    m1 = example_monitor_run(mon_runs, "20130101-060000-m001", "2013-01-01T06:00:00+00:00", example_report(
        "2012-12-01T21:00:00+00:00", "2012-12-31T21:00:00+00:00", calm, weeks=[("2012-12-24/2012-12-30", "2012-12-24T00:00:00+00:00", 0.731, 1402000.0)]))
    m2 = example_monitor_run(mon_runs, "20130108-060000-m002", "2013-01-08T06:00:00+00:00", example_report(
        "2012-12-08T21:00:00+00:00", "2013-01-07T21:00:00+00:00", {**calm, "temp": 0.432, "wind_gust": 0.492}, roc_auc=0.6213, weather=0.41,
        weeks=[("2012-12-31/2013-01-06", "2012-12-31T00:00:00+00:00", 0.6533, 1438095.2), ("2013-01-07/2013-01-13", "2013-01-07T00:00:00+00:00", 0.5793, -736842.1)]),
        retrain={"run_id": "20130108-061500-rtrn", "status": "succeeded",
                 "registered": {"name": "delay_model", "version": "2", "decision": "champion", "reasons": []},
                 "summary": "version 2 registered, champion: "})
    retrain_dir = example_run(mon_runs, "20130108-061500-rtrn", "2013-01-08T06:15:00+00:00")
    m3 = example_monitor_run(mon_runs, "20130115-060000-m003", "2013-01-15T06:00:00+00:00", example_report(
        "2012-12-15T21:00:00+00:00", "2013-01-14T21:00:00+00:00", calm, version="2", labelled=150, refused=3, weather=0.2, explained=150,
        weeks=[("2013-01-07/2013-01-13", "2013-01-07T00:00:00+00:00", 0.6021, 120000.0)]))
    return mon_runs, m1, m2, retrain_dir, m3
