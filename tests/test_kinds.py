"""Every kind of target through `mlops-nb`: the demo's two new questions on the flights (minutes late, a delay band) and
scikit-learn's bundled tables (diabetes: a number; wine: three classes), from the design card to a served champion,
batch scoring, labels posted back and monitoring judging them. One test per stage: the card and the data to the
quality gate, then the whole way."""
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, mlops_nb
from mlops_nb.config import load_project

QUESTIONS = {"regression": "delay_minutes.yaml", "multiclass": "delay_band.yaml"}  # conf/project.yaml is the binary one
WEEK1, WEEK2 = ("2013-01-01", "2013-01-08"), ("2013-01-08", "2013-01-15")
NO_PROFILE = ("--set", "quality.profile.enabled=false")  # the profile is tested elsewhere


def only_run(root: Path) -> Path:
    runs = [p for p in (root / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def newest_run(root: Path) -> Path:
    return max((p for p in (root / "runs").iterdir() if (p / "run.json").exists()), key=lambda p: p.name)


def week_question(root: Path, warehouse: Path, kind: str) -> Path:
    "The demo's question of `kind` on its first week, rooted in `root` (its own runs, registry, log), extending the file in conf/."
    data = {"extends": str(ROOT / "conf" / QUESTIONS[kind]), "root": str(root),
            "sources": {"warehouse": {"url": f"sqlite:///{warehouse}"}},
            "ingest": {"window": {"start": WEEK1[0], "end": WEEK1[1]}},
            "quality": {"profile": {"max_rows": 2000}},
            "train": {"parallel": 1}}  # worker processes take longer to start than a week of flights takes to train
    f = root / "project.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


def bundled_csv(folder: Path, name: str) -> Path:
    "scikit-learn's bundled table `name` (it ships with the package: nothing is downloaded) as `<name>.csv` in `folder`."
    import sklearn.datasets
    f = folder / f"{name}.csv"
    getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame.to_csv(f, index=False)
    return f


@pytest.fixture
def diabetes_csv(tmp_path):
    "The diabetes table: 442 patients; the target, disease progression after a year, a number."
    return bundled_csv(tmp_path, "diabetes")


@pytest.fixture
def wine_csv(tmp_path):
    "The wine table: 178 wines; the target, the cultivar, 0, 1 or 2."
    return bundled_csv(tmp_path, "wine")


# --- before training: the card, the data, the gate -------------------------------------------------

@pytest.mark.parametrize("kind", list(QUESTIONS))
def test_question_until_quality(kind, tmp_path, warehouse):
    "Each new question validates, ingests the demo's week and passes the demo's quality gate, with its own card in the run."
    f = week_question(tmp_path, warehouse, kind)
    code, out = mlops_nb("run", "--project", f, "--until", "quality", "--no-reports", *NO_PROFILE, cwd=tmp_path)
    assert code == 0, out
    run_dir = only_run(tmp_path)
    card = json.loads((run_dir / "artifacts/design/design_card.json").read_text())
    assert card["target"]["kind"] == kind
    assert {m["metric"] for m in card["key_metrics"]} == {"regression": {"mae", "r2", "value"},
                                                         "multiclass": {"roc_auc", "accuracy", "f1", "value"}}[kind]
    gates = {m["metric"]: (m["threshold"], m["strict"]) for m in card["key_metrics"]}
    assert gates["value"] == (0, True)  # a served model must make money, whatever the kind
    saved = load_project(run_dir / "project.yaml")  # the run's copy stands on its own (no `extends`)
    assert saved.design.target == load_project(f).design.target and "extends" not in (run_dir / "project.yaml").read_text()
    assert [s["name"] for s in json.loads((run_dir / "run.json").read_text())["steps"]] == ["design", "ingest", "quality"]


def test_diabetes_is_a_number(diabetes_csv):
    "--data diabetes.csv: inferred as regression, the reason saved in the run's project; the card gates R² and value."
    root = diabetes_csv.parent
    code, out = mlops_nb("run", "--data", diabetes_csv, "--target", "target", "--until", "quality", "--no-reports", *NO_PROFILE, cwd=root)
    assert code == 0, out
    run_dir = only_run(root)
    target = yaml.safe_load((run_dir / "project.yaml").read_text())["design"]["target"]
    assert target["kind"] == "regression" and target["kind_reason"] == "numbers: 214 distinct values from 25.0 to 346.0", target
    assert "a regression target (numbers: 214 distinct values" in out and "the service answers an estimate of target" in out
    assert "label, the number observed" in out


def test_wine_needs_its_kind_said(wine_csv):
    "--data wine.csv: three whole numbers could be classes or a quantity: the run asks, exit 2, nothing in runs/."
    root = wine_csv.parent
    code, out = mlops_nb("run", "--data", wine_csv, "--target", "target", "--no-reports", cwd=root)
    assert code == 2 and "Traceback" not in out, out
    assert "holds 3 whole numbers (0, 1, 2)" in out and "--kind multiclass" in out and "--kind regression" in out, out
    assert not (root / "runs").exists() or not [p for p in (root / "runs").iterdir() if p.is_dir()]


def test_wine_as_classes(wine_csv):
    "--data wine.csv --kind multiclass: the classes written out as strings, sorted; the value matrix over them; the reason is the option."
    root = wine_csv.parent
    code, out = mlops_nb("run", "--data", wine_csv, "--target", "target", "--kind", "multiclass", "--until", "quality",
                         "--no-reports", *NO_PROFILE, cwd=root)
    assert code == 0, out
    saved = load_project(only_run(root) / "project.yaml")
    assert (saved.design.target.kind, saved.design.target.kind_reason, saved.design.target.classes) == ("multiclass", "--kind multiclass", ["0", "1", "2"])
    assert saved.design.value_model.matrix == {t: {d: 1 if d == t else -1 for d in "012"} for t in "012"}
    assert "--kind multiclass: edit and reuse" in saved.description
    assert "a probability per class (0, 1, 2) and the class decided" in out


# --- from training on: a served model, batch scoring, labels, monitoring ---------------------------

BATCH_ROWS = 20  # rows `mlops-nb score` scores again, as a batch
CHECKS = {  # per kind: the metric monitoring must report from the labels; the answer's decided field, and its type
    "regression": ("mae", "prediction", (int, float)), "multiclass": ("accuracy", "class", str)}


def champion_by_hand(lp, version: str) -> None:
    "Promote `version`: a week of flights (or a small table) rarely passes the card's gates, and these tests are about what comes after."
    from mlops_nb.registry import model_name, registry_client
    registry_client(lp.tracking_uri).set_registered_model_alias(model_name(lp.project), "champion", str(version))


def assert_registered_for(lp, run_dir: Path) -> str:
    "The run's registered version carries its kind and decision rule (contract 2); its version."
    from mlops_nb.registry import model_name, registry_client
    card = json.loads((run_dir / "artifacts/train/model_card.json").read_text())
    version = str(card["registered"]["version"])
    tags = registry_client(lp.tracking_uri).get_model_version(model_name(lp.project), version).tags
    rule = json.loads(tags["decision_rule"])
    assert tags["kind"] == lp.design.target.kind, tags
    if lp.design.target.kind == "regression": assert set(rule) == {"offset"} and rule["offset"] >= 0  # under-predicting is dearer
    else: assert rule["classes"] == lp.design.target.classes and len(rule["matrix"]) == len(lp.design.target.classes)
    return version


def serve_label_monitor(f: Path, run_dir: Path, rows: pd.DataFrame, labels: pd.Series, folder: Path, *monitor_args) -> dict:
    """`rows` scored by the champion (in-process, as the service scores them) with their `labels` posted back, a few of
    them scored by `mlops-nb score` too, then `mlops-nb monitor`: the monitoring report."""
    from mlops_nb.deploy import Scorer
    lp = load_project(f)
    kind = lp.design.target.kind
    scorer = Scorer(lp, run_dir=run_dir, point_in_time=lp.features is not None)
    try:
        records = json.loads(rows[scorer.columns].to_json(orient="records", date_format="iso"))
        posted = 0
        for i in range(0, len(records), 500):
            body = scorer.score(records[i:i + 500])
            for p in body["predictions"]: assert isinstance(p[CHECKS[kind][1]], CHECKS[kind][2]), p
            if kind == "multiclass": assert list(p["probabilities"]) == lp.design.target.classes, p
            items = [(body["request_id"], j, labels.iloc[i + j]) for j in range(len(body["predictions"])) if not pd.isna(labels.iloc[i + j])]
            posted += scorer.log.feedback(items)["new"]
    finally: scorer.log.close()
    assert posted > 0
    rows[scorer.columns].head(BATCH_ROWS).to_csv(folder / "requests.csv", index=False)
    code, out = mlops_nb("score", "--project", f, "--input", folder / "requests.csv", "--output", folder / "scored.parquet", cwd=folder)
    assert code == 0 and f"scored {BATCH_ROWS} rows" in out, out
    scored = pd.read_parquet(folder / "scored.parquet")
    assert all(isinstance(d, CHECKS[kind][2]) for d in scored[CHECKS[kind][1]].tolist()), scored.columns
    code, out = mlops_nb("monitor", "--project", f, "--no-retrain", "--no-reports", *monitor_args, cwd=folder)
    assert code == 0, out
    mon = max(p for p in (lp.runs_dir).iterdir() if (p / "artifacts/monitor/monitoring.json").exists())
    rep = json.loads((mon / "artifacts/monitor/monitoring.json").read_text())
    assert rep["performance"]["labelled"] == posted and CHECKS[kind][0] in rep["performance"]["metrics"], rep["performance"]
    return rep


@pytest.mark.parametrize("kind", list(QUESTIONS))
def test_question_end_to_end(kind, tmp_path, warehouse):
    """A new question's whole run on the demo's first week (labels typed for its kind, a version registered with its
    decision rule), its champion serving the second week, labels posted back, and monitoring judging them."""
    from mlops_nb.features import label_of
    f = week_question(tmp_path, warehouse, kind)
    code, out = mlops_nb("run", "--project", f, "--no-reports", *NO_PROFILE, cwd=tmp_path)
    assert code == 0, out
    run_dir, lp = only_run(tmp_path), load_project(f)
    label = pd.read_parquet(run_dir / "artifacts/features/training_set.parquet")[lp.design.target.name]
    if kind == "regression": assert label.dtype == "float64" and label.notna().all()
    else: assert label.dtype == object and set(label) == set(lp.design.target.classes)  # a week has flights in every band
    champion_by_hand(lp, assert_registered_for(lp, run_dir))
    # the feature store over both weeks (a daily feature job would keep it current); the second week is served from it
    code, out = mlops_nb("run", "--project", f, "--until", "features", "--set", f"ingest.window.end={WEEK2[1]}", "--no-reports",
                         *NO_PROFILE, cwd=tmp_path)
    assert code == 0, out
    features_run = newest_run(tmp_path)
    flights = pd.read_parquet(features_run / "artifacts/ingest/flights.parquet")
    decided = flights.time_hour + pd.Timedelta(lp.features.decision_offset)  # monitoring's window is cut by decision time
    week2 = flights[(decided >= pd.Timestamp(WEEK2[0], tz="UTC")) & (decided < pd.Timestamp(WEEK2[1], tz="UTC"))].reset_index(drop=True)
    rep = serve_label_monitor(f, features_run, week2, label_of(lp.project, week2), tmp_path, "--start", WEEK2[0], "--end", WEEK2[1])
    assert rep["window"]["predictions"] == len(week2) + BATCH_ROWS  # batch scoring is logged too


@pytest.mark.parametrize("table, kind", [("diabetes", "regression"), ("wine", "multiclass")])
def test_bundled_table_end_to_end(table, kind, tmp_path):
    "`mlops-nb run --data` on a bundled table to a served, smoke-tested champion, then its rows scored, labelled and monitored."
    f = bundled_csv(tmp_path, table)
    code, out = mlops_nb("run", "--data", f, "--target", "target", "--kind", kind, "--no-reports", cwd=tmp_path)
    assert code == 0, out
    run_dir = only_run(tmp_path)
    saved = run_dir / "project.yaml"
    lp = load_project(saved)
    assert_registered_for(lp, run_dir)
    assert json.loads((run_dir / "artifacts/deploy/smoke.json").read_text())["deployed"]  # the champion served and smoke-tested
    assert f"serve it: mlops-nb serve --project {saved}" in out
    rows = pd.read_csv(f)
    labels = rows["target"].astype(str) if kind == "multiclass" else rows["target"].astype(float)
    serve_label_monitor(saved, run_dir, rows, labels, tmp_path)
