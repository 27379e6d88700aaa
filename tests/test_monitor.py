"""Maintenance over real runs: the demo's first week trains the champion, the second week is served (features as of
each decision), labelled, monitored; monitoring retrains on rules, promotes only a better model, and a failed retrain
leaves the champion and the service as they were."""
import json, sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, demo_data, mlops_nb

WEEK2 = ("2013-01-08", "2013-01-15")


@pytest.fixture(scope="module")
def served(tmp_path_factory, warehouse):
    """A project whose first week trained `delay_model` version 1 (made champion by hand: a week rarely passes the
    card's gates), whose second week was scored by the service's scorer into the prediction log, and labelled,
    half of the labels sent twice; (project file, tracking uri, log path, labels sent once)."""
    from mlflow import MlflowClient
    from mlops_nb.config import load_project
    from mlops_nb.deploy import Scorer
    from mlops_nb.features import label_of
    root = tmp_path_factory.mktemp("monitor")
    data = demo_data(root, warehouse)
    data["ingest"]["window"] = {"start": "2013-01-01", "end": WEEK2[0]}
    data["quality"]["profile"]["enabled"] = False
    # gates a fortnight of flights can pass, so that promotion is decided by the champion comparison alone
    for m in data["design"]["key_metrics"]: m["threshold"] = {"roc_auc": 0.5, "recall": 0.0, "value": -1e12}[m["metric"]]
    data["train"] = {"parallel": 1, "experiments": [{"name": "trees", "family": "hist_gradient_boosting", "params": {},
                                                     "hypothesis": "Boosted trees on every view rank late flights."}]}
    data["monitor"] = {"min_rows": 100, "retrain": {"min_labels": 100}}
    f = root / "project.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = mlops_nb("run", "--project", f, "--no-reports")
    assert code == 0, out
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias("delay_model", "champion", "1")
    # the feature store over both weeks (a daily feature job would keep it current); the service replays week 2 through it
    code, out = mlops_nb("run", "--project", f, "--until", "features", "--set", f"ingest.window.end={WEEK2[1]}", "--no-reports")
    assert code == 0, out
    features_run = max((p for p in (root / "runs").iterdir() if (p / "run.json").exists()), key=lambda p: p.name)
    lp = load_project(f)
    scorer = Scorer(lp, tracking_uri=uri, run_dir=features_run, point_in_time=True)
    flights = pd.read_parquet(features_run / "artifacts" / "ingest" / "flights.parquet")
    flights = flights[flights.time_hour >= pd.Timestamp(WEEK2[0], tz="UTC")].reset_index(drop=True)
    records = json.loads(flights[scorer.columns].to_json(orient="records", date_format="iso"))
    labels = label_of(lp.project, flights)
    sent = 0
    for i in range(0, len(records), 1000):
        body = scorer.score(records[i:i + 1000])
        items = [(body["request_id"], j, int(bool(labels[i + j]))) for j in range(len(body["predictions"])) if not pd.isna(labels[i + j])]
        sent += scorer.log.feedback(items)["new"]
        assert scorer.log.feedback(items[::2])["duplicates"] == len(items[::2])  # a label arriving twice is stored once
    scorer.log.close()
    return f, uri, lp.path(lp.deploy.prediction_log), sent


def monitoring(root: Path) -> tuple:
    "The newest monitoring run's folder and report."
    runs = sorted(p for p in (root / "runs").iterdir() if (p / "artifacts" / "monitor" / "monitoring.json").exists())
    return runs[-1], json.loads((runs[-1] / "artifacts" / "monitor" / "monitoring.json").read_text())


def test_monitor_reports_and_decides_without_retraining(served):
    from mlflow import MlflowClient
    f, uri, log, sent = served
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    tags = client.get_model_version("delay_model", "1").tags
    # the champion's hold-out shares of the explaining, as if the request's own fields had done all of it
    client.set_model_version_tag("delay_model", "1", "explanation_view_shares", json.dumps({"request": 1.0}))
    client.set_model_version_tag("delay_model", "1", "explanation_column_shares", json.dumps({"sched_hour": 1.0}))
    try: code, out = mlops_nb("monitor", "--project", f, "--start", WEEK2[0], "--end", WEEK2[1], "--no-retrain", "--no-reports")
    finally:
        for t in ("explanation_view_shares", "explanation_column_shares"):
            if t in tags: client.set_model_version_tag("delay_model", "1", t, tags[t])
            else: client.delete_model_version_tag("delay_model", "1", t)
    assert code == 0, out
    run_dir, rep = monitoring(f.parent)
    assert rep["version"] == "1" and rep["window"]["start"].startswith(WEEK2[0])
    with sqlite3.connect(log) as db:  # windows are cut by decision time (two hours before departure)
        scored, labelled = db.execute("select count(*), count(f.label) from predictions p left join feedback f using (request_id, record) "
                                      "where event_time >= ? and event_time < ?", (rep["window"]["start"], rep["window"]["end"])).fetchone()
    assert rep["window"]["predictions"] == scored > 5000
    assert rep["performance"]["labelled"] == labelled <= sent  # labels sent twice are counted once
    assert rep["drift"]["columns"] >= 20 and {r["column"] for r in rep["drift"]["columns_table"]} >= {"temp", "carrier", "sched_hour"}
    assert rep["prediction_drift"]["column"] == "probability"
    assert 0.5 < rep["performance"]["metrics"]["roc_auc"] < 1 and rep["performance"]["gates"]
    assert rep["request_quality"]["scores"] and rep["computational"]["latency_ms_p99"] > 0
    assert {c["rule"] for c in rep["decision"]["checked"]} >= {"drift of important features", "roc_auc floor"}
    with sqlite3.connect(log) as db:  # what drives the decisions: the explained predictions of the window, and the card's answer time
        logged = pd.read_sql("select contributions from predictions where event_time >= ? and event_time < ? and contributions is not null",
                             db, params=(rep["window"]["start"], rep["window"]["end"]))
    assert rep["explanations"]["explained"] == len(logged) == scored, "deploy.explain: always (the default) explains every answer"
    from mlops_nb.config import load_project
    from mlops_nb.explain import contribution_shares, feature_views
    _, views = contribution_shares(pd.DataFrame([json.loads(c) for c in logged.contributions]), feature_views(load_project(f).project.features))
    assert rep["explanations"]["views"] == pytest.approx(views.to_dict(), abs=1e-5) and rep["explanations"]["judged"]
    assert rep["explanations"]["reference"]["views"] == {"request": 1.0}
    assert rep["alerts"][0] == {"kind": "explanation_shift", "message": f"request drives {views['request']:.0%} of the explaining (reference 100%), "
                                f"on {scored:,} explained predictions; monitor.explanation_shift = 0.15"}
    assert ("latency" in {a["kind"] for a in rep["alerts"]}) == (rep["computational"]["latency_ms_p99"] > 50)  # the demo card's max_latency_ms
    assert all(f"alert: {a['message']}" in out for a in rep["alerts"])
    assert "[monitor]" in out and ("retrain asked for" in out or "no retrain" in out)
    rec = json.loads((run_dir / "run.json").read_text())
    statuses = [s["status"] for s in rec["steps"]]  # the latest run's steps, linked for monitoring to read, then monitoring
    assert statuses[-1] == "succeeded" and set(statuses[:-1]) == {"reused"} and len(statuses) > 6 and "retrain" not in rec


def test_a_failed_retrain_leaves_the_champion_and_the_service(served):
    from mlops_nb.config import load_project
    from mlops_nb.deploy import Scorer
    from mlops_nb.registry import alias_version, registry_client
    f, uri, log, _ = served
    client = registry_client(uri)
    before = alias_version(client, "delay_model")
    scorer = Scorer(load_project(f), tracking_uri=uri, log_path=f.parent / "scratch.db")
    broken = '[{name: broken, family: hist_gradient_boosting, params: {learning_rate: [-1.0]}, hypothesis: "fails"}]'
    code, out = mlops_nb("monitor", "--project", f, "--start", WEEK2[0], "--end", WEEK2[1], "--no-reports",
                         "--set", "monitor.retrain.floors={roc_auc: 0.999}", "--set", f"train.experiments={broken}")
    assert code == 1, out
    assert "retraining on" in out and "roc_auc floor" in out and "failed" in out
    run_dir, rep = monitoring(f.parent)
    retrain = json.loads((run_dir / "run.json").read_text())["retrain"]
    assert retrain["status"] == "failed" and retrain["registered"] is None
    assert alias_version(client, "delay_model") == before and scorer.refresh() is None and scorer.model.version == before
    scorer.log.close()


def test_a_triggered_retrain_promotes_only_a_better_model(served):
    from mlops_nb.registry import alias_version, registry_client
    f, uri, _, _ = served
    client = registry_client(uri)
    before = alias_version(client, "delay_model")
    code, out = mlops_nb("monitor", "--project", f, "--start", WEEK2[0], "--end", WEEK2[1], "--no-reports",
                         "--set", "monitor.retrain.floors={roc_auc: 0.999}")
    assert code == 0, out
    run_dir, rep = monitoring(f.parent)
    assert rep["decision"]["retrain"] and any("roc_auc floor" in r for r in rep["decision"]["reasons"])
    assert rep["retrain_window"]["end"].startswith(WEEK2[1]) and rep["retrain_window"]["start"].startswith("2013-01-01")
    retrain = json.loads((run_dir / "run.json").read_text())["retrain"]
    assert retrain["status"] == "succeeded", retrain
    card = json.loads((f.parent / "runs" / retrain["run_id"] / "artifacts" / "train" / "model_card.json").read_text())
    snapshot = json.loads((f.parent / "runs" / retrain["run_id"] / "artifacts" / "ingest" / "snapshot.json").read_text())
    assert snapshot["tables"]["flights"]["window"]["end"].startswith(WEEK2[1])  # trained on the expanded window
    promo, new = card["promotion"], card["holdout"]["value"]
    champion_value = promo["champion_on_holdout"]["value"]  # the champion re-scored on the retrain's hold-out
    better = new > champion_value + promo["margin"]
    assert (retrain["registered"]["decision"] == "champion") == better, (promo, new)
    assert alias_version(client, "delay_model") == (retrain["registered"]["version"] if better else before)
    assert str(retrain["registered"]["version"]) == str(card["registered"]["version"])


def test_schedule_lines(tmp_path):
    f = tmp_path / "crontab"
    code, out = mlops_nb("schedule", "--dry-run")
    assert code == 0 and " run --project " in out and " monitor --project " in out and "--wait 3600" in out, out
    for _ in range(2):
        code, out = mlops_nb("schedule", "--file", f)
        assert code == 0, out
    text = f.read_text()
    assert text.count("# mlops-nb schedule: project flights") == 1 and len(text.splitlines()) == 3
    code, out = mlops_nb("schedule", "--dry-run", "--project", ROOT / "conf" / "project.yaml")
    assert code == 0
