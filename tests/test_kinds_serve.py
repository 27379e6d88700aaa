"""Serving every kind of target: regression and multiclass versions, registered as training registers them, served over
real HTTP, scored in batch, logged (SQLite and PostgreSQL) and labelled; binary is tests/test_deploy.py's.

The models are small and real: scikit-learn's bundled diabetes (regression) and wine (multiclass) tables, with a
categorical column and missing values added so that every part of the lean path is exercised."""
import json, os, sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from conftest import BIN, free_port, mlops_nb, running_server, start_server, stop, wait_ready

pytestmark = pytest.mark.timeout(600)

WINES = {0: "barolo", 1: "grignolino", 2: "barbera"}


def kind_table(kind: str) -> tuple:
    "(table, target column) of a bundled scikit-learn data set, with a categorical column and missing values."
    from sklearn.datasets import load_diabetes, load_wine
    if kind == "regression":
        df = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
        df["sex"] = np.where(df.sex > 0, "f", "m").astype(object)
        target, category = "progression", "sex"
    else:
        df = load_wine(as_frame=True).frame.rename(columns={"od280/od315_of_diluted_wines": "od_ratio"})
        df["cultivar"] = df.pop("target").map(WINES)
        df["shade"] = pd.cut(df.color_intensity, [0, 3, 6, 20], labels=["pale", "ruby", "deep"]).astype(object)
        target, category = "cultivar", "shade"
    df.loc[::11, category] = None
    df.loc[::7, df.columns[0]] = np.nan
    return df, target


PARAMS = {"hist_gradient_boosting": {"max_iter": 40}, "random_forest": {"n_estimators": 20, "min_samples_leaf": 5}, "ridge": {},
          "logistic_regression": {"max_iter": 2000}}  # small: the models are the serving path's material, not the point


def fitted(kind: str, family: str) -> tuple:
    "(fitted pipeline, table, target, feature columns, decision rule) for `kind`: the rule as `design.decision_rule` chooses it."
    from mlops_nb.config import ValueModel
    from mlops_nb.design import decision_rule, model_outputs
    from mlops_nb.train import make_model
    df, target = kind_table(kind)
    features = [c for c in df.columns if c != target]
    categorical = [c for c in features if df[c].dtype == object]
    model = make_model(family, PARAMS[family], [c for c in features if c not in categorical], categorical, kind=kind)  # as training builds it
    model.fit(df[features], df[target])  # multiclass: str labels, as the features step writes them
    if kind == "regression":  # running short costs three times a surplus: the rule decides above the estimate
        vm = ValueModel(volume_per_period=100, under_prediction=3.0, over_prediction=1.0)
        rule = decision_rule(kind, df[target], model_outputs(model, df[features], kind), vm)
    else:  # missing a grignolino is dear: the matrix moves some decisions away from the most probable class
        names = sorted(WINES.values())
        vm = ValueModel(volume_per_period=100, matrix={t: {d: (5.0 if t == d else -1000.0 if t == "grignolino" else -1.0) for d in names} for t in names})
        rule = decision_rule(kind, df[target], None, vm, names)
    return model, df, target, features, rule


def register(uri: str, artifacts: Path, name: str, model, X: pd.DataFrame, tags: dict) -> str:
    "Log `model` as `train.register` does (skops, its trusted types, pinned requirements) into `artifacts`, register it with `tags`; the version."
    import mlflow, mlflow.sklearn
    from mlflow import MlflowClient
    from mlops_nb.registry import requirements
    from mlops_nb.train import trusted_types
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)  # conftest resets them after the test
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_experiment_by_name("kinds")
    experiment = found.experiment_id if found else client.create_experiment("kinds", artifact_location=artifacts.as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(5), serialization_format="skops",
                                        skops_trusted_types=trusted_types(model), pip_requirements=requirements(),
                                        registered_model_name=name)
    version = str(info.registered_model_version)
    for k, v in tags.items(): client.set_model_version_tag(name, version, k, v)
    return version


def kind_project(root: Path, kind: str, family: str = "hist_gradient_boosting") -> SimpleNamespace:
    """A project of `kind` (the file `mlops-nb run --data` infers), a successful run with the snapshot and training set
    serving reads, and a registered champion of `family` tagged with contract 2's `kind` and `decision_rule`."""
    from mlops_nb.cli import infer_project
    from mlops_nb.config import load_project
    from mlops_nb.registry import model_name
    root.mkdir(parents=True, exist_ok=True)
    model, df, target, features, rule = fitted(kind, family)
    df.to_csv(root / "wines.csv" if kind == "multiclass" else root / "diabetes.csv", index=False)
    data = infer_project(root / ("wines.csv" if kind == "multiclass" else "diabetes.csv"), target, kind=kind)
    data["root"] = str(root)
    f = root / "project.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    lp = load_project(f)
    run_dir = lp.runs_dir / "20260101T000000-kinds"
    (run_dir / "artifacts" / "ingest").mkdir(parents=True)
    (run_dir / "artifacts" / "features").mkdir(parents=True)
    df.to_parquet(run_dir / "artifacts" / "ingest" / f"{lp.design.target.table}.parquet")
    df.to_parquet(run_dir / "artifacts" / "features" / "training_set.parquet")
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name, "status": "succeeded"}))
    name = model_name(lp.project)
    version = register(lp.tracking_uri, root / "mlartifacts", name, model, df[features], {"kind": kind, "decision_rule": json.dumps(rule)})
    from mlflow import MlflowClient
    MlflowClient(tracking_uri=lp.tracking_uri, registry_uri=lp.tracking_uri).set_registered_model_alias(name, "champion", version)
    return SimpleNamespace(file=f, lp=lp, root=root, run_dir=run_dir, uri=lp.tracking_uri, name=name, kind=kind, model=model, df=df,
                           target=target, features=features, rule=rule, version=version)


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict:
    "A regression and a multiclass project, each with its champion (boosted trees): {kind: namespace}."
    root = tmp_path_factory.mktemp("kinds")
    return {kind: kind_project(root / kind, kind) for kind in ("regression", "multiclass")}


@pytest.fixture(scope="module")
def services(projects) -> dict:
    "`mlops-nb serve` of each project on a free loopback port: {kind: url}."
    urls, procs = {}, []
    try:
        for kind, p in projects.items():
            port = free_port()
            procs.append(start_server([BIN / "mlops-nb", "serve", "--project", p.file, "--port", port, "--refresh", "0"], p.root / "serve.log",
                                      env={"OMP_NUM_THREADS": "1"}))
            urls[kind] = (procs[-1], f"http://127.0.0.1:{port}")
        for proc, url in urls.values(): wait_ready(proc, url=f"{url}/ready", timeout=120)
        yield {kind: url for kind, (_, url) in urls.items()}
    finally:
        for proc in procs: stop(proc)


def expected_answers(p, rows: pd.DataFrame) -> list[dict]:
    "What the version must answer for `rows`: the registered pipeline's own output, decided by `design.decide`."
    from mlops_nb.design import model_outputs
    from mlops_nb.design import decide
    out = model_outputs(p.model, rows[p.features], p.kind)
    decided = decide(p.kind, out, p.rule)
    if p.kind == "regression": return [{"prediction": d, "estimate": e} for d, e in zip(decided.tolist(), out.tolist())]
    return [{"class": d, "probabilities": dict(zip(p.rule["classes"], row))} for d, row in zip(decided.tolist(), out.tolist())]


def records_of(rows: pd.DataFrame, features: list) -> list[dict]:
    "Request records of `rows`: numbers exact (JSON's shortest repr, not pandas' 10 digits), missing values null."
    return rows[features].astype(object).where(rows[features].notna(), None).to_dict("records")


@pytest.mark.parametrize("kind,family,lean", [("regression", "hist_gradient_boosting", True), ("regression", "random_forest", True),
                                              ("regression", "ridge", False), ("multiclass", "hist_gradient_boosting", True),
                                              ("multiclass", "random_forest", True), ("multiclass", "logistic_regression", False)])
def test_lean_path_equals_the_pipeline(kind, family, lean):
    "Trees take the lean path, proven at load; its outputs equal the pipeline's for rows with missing, unseen and known values."
    from mlops_nb.deploy import ServingModel
    from mlops_nb.design import model_outputs
    model, df, target, features, rule = fitted(kind, family)
    served = ServingModel("m", "1", model, kind, rule, features, {}, reference=df)
    assert (served.lean is not None) == lean, served.inference
    probe = df[features].copy()
    probe.iloc[::3, probe.columns.get_loc(features[0])] = np.nan
    category = next(c for c in features if df[c].dtype == object)
    probe.iloc[1::3, probe.columns.get_loc(category)] = "never seen"
    expected = model_outputs(model, probe, kind)
    for rows in (slice(0, 5), slice(None)):  # a few rows go through treelite, many through scikit-learn
        got = served.predict({c: probe[c].to_numpy()[rows] for c in features})
        assert got.shape == expected[rows].shape
        np.testing.assert_allclose(got, expected[rows], rtol=1e-9, atol=1e-9)


def test_multiclass_columns_follow_the_rule_order():
    "A rule listing the classes in its own order gets the probabilities in that order, and decides by name."
    from mlops_nb.deploy import ServingModel
    model, df, target, features, rule = fitted("multiclass", "random_forest")
    reordered = {"classes": ["grignolino", "barolo", "barbera"], "matrix": None}
    served = ServingModel("m", "1", model, "multiclass", reordered, features, {}, reference=df)
    P = served.predict(df[features])
    fitted_order = list(model.classes_)
    np.testing.assert_allclose(P, model.predict_proba(df[features])[:, [fitted_order.index(c) for c in reordered["classes"]]], atol=1e-12)
    assert served.decide(P).tolist() == model.predict(df[features]).tolist()


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
def test_service_answers_per_kind(projects, services, kind):
    "/metadata says the kind and rule; /predict answers the pipeline's outputs, decided by the rule; the schema says so."
    import jsonschema
    p, url = projects[kind], services[kind]
    meta = requests.get(f"{url}/metadata").json()
    assert meta["kind"] == kind and meta["decision_rule"] == p.rule and meta["threshold"] is None
    assert meta["inference"].startswith("lean: treelite"), meta["inference"]
    rows = p.df.tail(30)
    got = requests.post(f"{url}/predict", json={"records": records_of(rows, p.features)})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["kind"] == kind and body["version"] == p.version
    want = expected_answers(p, rows)
    if kind == "regression":
        assert body["offset"] == p.rule["offset"] != 0
        assert [a["estimate"] for a in body["predictions"]] == pytest.approx([w["estimate"] for w in want], rel=1e-9)
        assert [a["prediction"] for a in body["predictions"]] == pytest.approx([w["prediction"] for w in want], rel=1e-9)
    else:
        assert body["classes"] == p.rule["classes"]
        assert [a["class"] for a in body["predictions"]] == [w["class"] for w in want]
        for a, w in zip(body["predictions"], want):
            assert a["probabilities"] == pytest.approx(w["probabilities"], abs=1e-9)
            assert a["probability"] == pytest.approx(w["probabilities"][a["class"]], abs=1e-12)
        # the value matrix, not the largest probability, decides: some answers are not the most probable class
        assert any(a["class"] != max(a["probabilities"], key=a["probabilities"].get) for a in body["predictions"])
    doc = requests.get(f"{url}/openapi.json").json()
    schema = {**doc["components"]["schemas"]["Predictions"], "components": doc["components"]}
    jsonschema.validate(body, schema)
    assert doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"] == meta["example"]
    assert requests.post(f"{url}/predict", json=meta["example"]).status_code == 200


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
def test_bad_requests_and_labels_are_refused_by_name(projects, services, kind):
    "A bad field, a label of the wrong kind, a class the prediction never had: 422 naming it, never a 500; good labels join."
    p, url = projects[kind], services[kind]
    record = records_of(p.df.head(1), p.features)[0]
    number = next(c for c in p.features if p.df[c].dtype != object)
    bad = requests.post(f"{url}/predict", json={"records": [{**record, number: "lots"}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == f"records[0].{number}", bad.text
    rid = requests.post(f"{url}/predict", json={"records": [record, record]}).json()["request_id"]
    wrong, right = (("very high", 151.5) if kind == "regression" else (1.5, "barbera"))
    refused = requests.post(f"{url}/feedback", json={"labels": [{"request_id": rid, "label": wrong}]})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == "labels[0].label", refused.text
    if kind == "multiclass":  # a name, but of no class of the prediction it joins: the log refuses it, naming the request
        stranger = requests.post(f"{url}/feedback", json={"labels": [{"request_id": rid, "record": 1, "label": "merlot"}]})
        assert stranger.status_code == 422, stranger.text
        assert rid in stranger.json()["detail"][0]["msg"] and "'merlot'" in stranger.json()["detail"][0]["msg"], stranger.text
    ok = requests.post(f"{url}/feedback", json={"labels": [{"request_id": rid, "label": right}, {"request_id": rid, "record": 1, "label": right}]})
    assert ok.status_code == 200 and ok.json() == {"received": 2, "new": 2, "duplicates": 0, "unmatched": 0}, ok.text
    from mlops_nb.predictions import read_window
    log = p.lp.path(p.lp.deploy.prediction_log)
    w = read_window(log, pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
    mine = w[w.request_id == rid]
    assert set(mine.kind) == {kind} and mine.label.tolist() == [right, right]
    if kind == "regression":
        assert mine.probability.isna().all() and mine.probabilities.isna().all() and mine.decision.dtype == float
        assert (mine.decision - mine.estimate).to_numpy() == pytest.approx([p.rule["offset"]] * 2)
    else:
        assert all(json.loads(ps)[d] == pytest.approx(pr) for ps, d, pr in zip(mine.probabilities, mine.decision, mine.probability))


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
def test_batch_scoring_and_label_files_per_kind(projects, services, kind, tmp_path):
    "`mlops-nb score` writes the kind's columns, as the service answers; `mlops-nb feedback` takes the kind's labels."
    p, url = projects[kind], services[kind]
    rows = p.df.sample(40, random_state=1)
    rows[p.features].to_csv(tmp_path / "requests.csv", index=False)
    code, out = mlops_nb("score", "--project", p.file, "--input", tmp_path / "requests.csv", "--output", tmp_path / "scored.csv")
    assert code == 0 and "scored 40 rows" in out, out
    scored = pd.read_csv(tmp_path / "scored.csv")
    want = expected_answers(p, rows)
    if kind == "regression":
        assert "prediction mean" in out
        assert scored.prediction.tolist() == pytest.approx([w["prediction"] for w in want], rel=1e-9)
        assert scored.estimate.tolist() == pytest.approx([w["estimate"] for w in want], rel=1e-9)
    else:
        assert scored["class"].tolist() == [w["class"] for w in want]
        for c in p.rule["classes"]:
            assert scored[f"probability_{c}"].tolist() == pytest.approx([w["probabilities"][c] for w in want], abs=1e-9)
    assert set(scored.version.astype(str)) == {p.version}
    answered = requests.post(f"{url}/predict", json={"records": records_of(rows.head(3), p.features)}).json()
    labels = rows.head(3)[p.target].tolist()
    pd.DataFrame({"request_id": [answered["request_id"]] * 3, "record": [0, 1, 2], "label": labels}).to_csv(tmp_path / "labels.csv", index=False)
    code, out = mlops_nb("feedback", "--project", p.file, "--file", tmp_path / "labels.csv")
    assert code == 0 and "3 new" in out, out
    pd.DataFrame({"request_id": [answered["request_id"]], "label": ["unknown" if kind == "regression" else 2.5]}).to_csv(tmp_path / "bad.csv", index=False)
    code, out = mlops_nb("feedback", "--project", p.file, "--file", tmp_path / "bad.csv")
    assert code == 2 and "bad.csv, line 2: label:" in out and "is not a label" in out and "Traceback" not in out, out


@pytest.mark.parametrize("strategy", ["shadow", "canary"])
def test_rollouts_per_kind(projects, strategy, tmp_path):
    "Shadow and canary with a multiclass and a regression challenger: the variants' answers logged, typed per kind."
    from mlflow import MlflowClient
    from mlops_nb.config import load_project
    from mlops_nb.deploy import Scorer
    for kind, p in projects.items():
        client = MlflowClient(tracking_uri=p.uri, registry_uri=p.uri)
        challenger = client.copy_model_version(f"models:/{p.name}/{p.version}", p.name).version
        for k, v in client.get_model_version(p.name, p.version).tags.items(): client.set_model_version_tag(p.name, challenger, k, v)
        client.set_registered_model_alias(p.name, "challenger", str(challenger))
        lp = load_project(p.file, [f"deploy.strategy={strategy}", "deploy.canary_share=0.5"])
        scorer = Scorer(lp, run_dir=p.run_dir, log_path=tmp_path / f"{kind}.db")
        assert scorer.challenger.version == str(challenger) and scorer.challenger.kind == kind
        records = records_of(p.df.tail(40), p.features)
        body = scorer.score(records)
        scorer.shadow_pool.shutdown(wait=True)
        log = scorer.log.read()
        variants = log.groupby("variant").size().to_dict()
        if strategy == "shadow": assert variants == {"champion": 40, "shadow": 40}, variants
        else: assert set(variants) == {"champion", "canary"} and sum(variants.values()) == 40, variants
        assert set(log.kind) == {kind} and log.decision.notna().all()
        answered = {a["version"] for a in body["predictions"]}
        assert answered == ({p.version} if strategy == "shadow" else {p.version, str(challenger)})
        scorer.log.close()
        client.delete_registered_model_alias(p.name, "challenger")


def test_a_regression_never_fails_a_request(tmp_path):
    """A linear regression (its own pipeline: no lean path) fed numbers far outside training answers; an estimate no
    JSON can carry (weights that overflow float64 on them) is refused naming the record, 422, not a 500."""
    from fastapi.testclient import TestClient
    from mlops_nb.deploy import Scorer, make_app
    p = kind_project(tmp_path / "ridge", "regression", family="ridge")
    scorer = Scorer(p.lp)
    assert scorer.model.lean is None and "OneHotEncoder" in scorer.model.inference, scorer.model.inference
    good = records_of(p.df.head(2), p.features)
    huge = {**good[1], "bmi": 3e38, "bp": 3e38, "s1": -3e38, "s2": 3e38}
    with TestClient(make_app(scorer, refresh_seconds=0)) as client:
        answer = client.post("/predict", json={"records": [good[0], huge]})
        assert answer.status_code == 200 and abs(answer.json()["predictions"][1]["estimate"]) > 1e38, answer.text
        scorer.model.model[-1].coef_[:] = 1e308
        answer = client.post("/predict", json={"records": [good[0], huge]})
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == "records[0]", answer.text
        assert "not a finite number" in answer.json()["detail"][0]["msg"]
    refused = pd.read_sql("select status, location from refused", sqlite3.connect(p.lp.path(p.lp.deploy.prediction_log)))
    assert refused.values.tolist() == [[422, "records[0]"]]


def test_prediction_log_per_kind_on_postgres(projects, postgres, monkeypatch):
    "The same answers, labels and refusals on a real PostgreSQL log; an older log's tables are brought up to date."
    from sqlalchemy import create_engine, text
    from mlops_nb.deploy import Scorer
    from mlops_nb.predictions import LabelError, PostgresLog, read_window
    admin = postgres.create_database("kinds_log")
    url = admin.replace(f"postgres:{postgres.password}@", "")  # the user from the environment, as a project names its log
    monkeypatch.setenv("PGUSER", "postgres"); monkeypatch.setenv("PGPASSWORD", postgres.password)
    with create_engine(admin).begin() as db:  # the tables as the log created them before other kinds, with a binary row and its label
        db.execute(text("create table predictions (request_id text collate \"C\" not null, record integer not null, ts text collate \"C\" not null, "
                        "model text collate \"C\" not null, version text collate \"C\" not null, variant text collate \"C\" not null, inputs text, features text, "
                        "probability double precision, decision integer, latency_ms double precision, event_time text, primary key (request_id, record, variant))"))
        db.execute(text("create table feedback (request_id text collate \"C\" not null, record integer not null, label integer not null, "
                        "ts text collate \"C\" not null, primary key (request_id, record))"))
        db.execute(text("insert into predictions values ('old', 0, '2026-01-01T00:00:00+00:00', 'm', '1', 'champion', '{}', '{}', 0.8, 1, 1.0, "
                        "'2026-01-01T00:00:00+00:00')"))
        db.execute(text("insert into feedback values ('old', 0, 1, '2026-01-01T00:00:00+00:00')"))
    rids = {}
    for kind, p in projects.items():
        scorer = Scorer(p.lp, run_dir=p.run_dir, log_path=url)
        assert isinstance(scorer.log, PostgresLog)
        rids[kind] = scorer.score(records_of(p.df.head(2), p.features))["request_id"]
        right, wrong = (140.5, True) if kind == "regression" else ("barolo", "merlot")
        with pytest.raises(LabelError, match=f"request '{rids[kind]}'"): scorer.log.feedback([(rids[kind], 0, wrong)])
        assert scorer.log.feedback([(rids[kind], 0, right)]) == {"received": 1, "new": 1, "duplicates": 0, "unmatched": 0}
        scorer.log.close()
    w = read_window(url, pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC")).set_index(["request_id", "record"])
    assert w.loc[("old", 0), "kind"] == "binary" and w.loc[("old", 0), "decision"] == 1 and w.loc[("old", 0), "label"] == 1
    assert w.loc[(rids["regression"], 0), "label"] == 140.5 and isinstance(w.loc[(rids["regression"], 1), "decision"], float)
    assert w.loc[(rids["multiclass"], 0), "label"] == "barolo" and w.loc[(rids["multiclass"], 1), "decision"] in WINES.values()
    assert pd.isna(w.loc[(rids["multiclass"], 1), "label"])


def test_an_older_sqlite_log_is_upgraded_and_reads_as_before(projects, tmp_path):
    "A log written by the binary-only schema: opened by a multiclass service, its old rows read as they did, new rows typed."
    from mlops_nb.deploy import Scorer
    from mlops_nb.predictions import read_window
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            create table predictions (request_id text not null, record integer not null, ts text not null, model text not null,
              version text not null, variant text not null, inputs text, features text, probability real, decision integer,
              latency_ms real, event_time text, primary key (request_id, record, variant));
            create table feedback (request_id text not null, record integer not null, label integer not null, ts text not null,
              primary key (request_id, record));
            create table refused (ts text not null, status integer not null, location text, message text);
            insert into predictions values ('old', 0, '2026-01-01T00:00:00+00:00', 'm', '1', 'champion', '{}', '{}', 0.8, 1, 1.0, null);
            insert into predictions values ('old', 1, '2026-01-01T00:00:00+00:00', 'm', '1', 'champion', '{}', '{}', 0.1, 0, 1.0, null);
            insert into feedback values ('old', 0, 1, '2026-01-01T00:00:00+00:00');""")
    db.close()
    window = lambda: read_window(path, pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
    p = projects["multiclass"]
    scorer = Scorer(p.lp, run_dir=p.run_dir, log_path=path)
    old = window()
    assert old.decision.tolist() == [1, 0] and old.label.tolist()[0] == 1 and pd.isna(old.label.tolist()[1])
    rid = scorer.score(records_of(p.df.head(1), p.features))["request_id"]
    assert scorer.log.feedback([("old", 1, 0), (rid, 0, "barbera")])["new"] == 2
    scorer.log.close()
    w = window().set_index(["request_id", "record"])
    assert w.loc[("old", 1), "label"] == 0 and w.loc[("old", 0), "decision"] == 1 and w.loc[(rid, 0), "label"] == "barbera"
    with sqlite3.connect(path) as db: assert db.execute("select count(*) from feedback").fetchone()[0] == 3


def test_mlflow_loads_and_serves_every_kind(projects):
    "`mlflow.pyfunc.load_model` of the champion predicts as the pipeline; `mlflow models serve` on it answers the same."
    import mlflow
    servers = {}
    try:
        for kind, p in projects.items():
            port = free_port()
            servers[kind] = (start_server([BIN / "mlflow", "models", "serve", "-m", f"models:/{p.name}@champion", "--env-manager", "local",
                                           "-p", port, "-h", "127.0.0.1", "-w", "1"], p.root / "mlflow.log",
                                          env={"MLFLOW_TRACKING_URI": p.uri, "MLFLOW_REGISTRY_URI": p.uri, "OMP_NUM_THREADS": "1",
                                               "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}, cwd=p.root), f"http://127.0.0.1:{port}")
        for kind, p in projects.items():
            mlflow.set_tracking_uri(p.uri); mlflow.set_registry_uri(p.uri)
            X = p.df.tail(20)[p.features]
            got = mlflow.pyfunc.load_model(f"models:/{p.name}@champion").predict(X)
            want = p.model.predict(X)
            if kind == "regression": np.testing.assert_allclose(got, want, rtol=1e-12)
            else: assert list(got) == list(want)
            proc, url = servers[kind]
            wait_ready(proc, url=f"{url}/ping", timeout=180)
            answer = requests.post(f"{url}/invocations", json={"dataframe_split": {"columns": list(X.columns), "data": [list(r.values()) for r in records_of(X, p.features)]}}, timeout=60)
            assert answer.status_code == 200, answer.text
            if kind == "regression": assert answer.json()["predictions"] == pytest.approx(list(want), rel=1e-9)
            else: assert answer.json()["predictions"] == list(want)
    finally:
        for proc, _ in servers.values(): stop(proc)
