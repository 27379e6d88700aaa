"The model service over real HTTP on 127.0.0.1: answers equal in-process scoring, bad requests get a 4xx naming the field, an alias switch under load fails no request."
import json, sqlite3, threading, time

import pandas as pd
import pytest
import requests

from conftest import BIN, free_port, mlops_nb, running_server

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def trained(week_champion):
    "The demo's first week with a champion (shared with the other service tests): (project file, tracking uri, run folder)."
    return week_champion


@pytest.fixture(scope="module")
def service(trained):
    "`mlops-nb serve` on a free loopback port, checking the alias every 0.5 s; stopped after the tests."
    f, uri, run_dir = trained
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_server([BIN / "mlops-nb", "serve", "--project", f, "--port", port, "--refresh", "0.5"], f.parent / "serve.log",
                        url=f"{url}/ready", timeout=120) as proc:
        yield {"url": url, "proc": proc, "project": f, "uri": uri, "run_dir": run_dir}


def test_health_ready_metadata_docs(service):
    url = service["url"]
    assert requests.get(f"{url}/health").json() == {"status": "alive"}
    assert requests.get(f"{url}/ready").json()["version"] == "1"
    meta = requests.get(f"{url}/metadata").json()
    assert meta["model"] == "delay_model" and 0 < meta["threshold"] < 1
    assert meta["inference"].startswith("lean: treelite"), meta["inference"]  # boosted trees take the lean path, proven at load
    assert set(meta["request_fields"]) >= {"carrier", "origin", "dest", "tailnum", "time_hour", "hour", "distance"}
    assert requests.get(f"{url}/docs").status_code == 200
    doc = requests.get(f"{url}/openapi.json").json()  # the request schema is published: fields, types, known categories
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"} and body["example"] == meta["example"]
    record = doc["components"]["schemas"]["Record"]
    assert set(record["required"]) == set(meta["request_fields"])
    # a carrier the model never saw is scored (`deploy.unseen_categories: score`): any text, of bounded length
    assert record["properties"]["carrier"]["anyOf"][0] == {"type": "string", "maxLength": 1000}
    feedback = doc["paths"]["/feedback"]["post"]
    assert feedback["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/FeedbackRequest"}
    assert set(feedback["responses"]) == set(doc["paths"]["/predict"]["post"]["responses"]) == {"200", "400", "413", "422"}


def test_predictions_equal_in_process_scoring(service):
    "The last hour of the snapshot, over HTTP, against the model's own prediction on the training set's rows."
    import mlflow
    run_dir, url = service["run_dir"], service["url"]
    train = pd.read_parquet(run_dir / "artifacts/features/training_set.parquet")
    flights = pd.read_parquet(run_dir / "artifacts/ingest/flights.parquet")
    ids = ["time_hour", "carrier", "flight", "origin"]
    last = train[train.event_timestamp == train.event_timestamp.max()]
    fields = requests.get(f"{url}/metadata").json()["request_fields"]
    raw = flights.merge(last[ids], on=ids)
    records = json.loads(raw[list(fields)].to_json(orient="records", date_format="iso"))
    got = requests.post(f"{url}/predict", json={"records": records}).json()
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=service["uri"], registry_uri=service["uri"])
    version = client.get_model_version_by_alias("delay_model", "champion").version
    model = mlflow.sklearn.load_model(client.get_model_version_download_uri("delay_model", version))
    expected = model.predict_proba(raw[ids].merge(train, on=ids)[list(model.feature_names_in_)])[:, 1]
    assert [p["probability"] for p in got["predictions"]] == pytest.approx(list(expected), abs=1e-9)
    assert got["version"] == "1" and got["request_id"]
    assert all(p["decision"] == (p["probability"] >= got["threshold"]) for p in got["predictions"])


@pytest.mark.parametrize("case, body, status, where, words", [
    ("malformed JSON", b'{"records": [', 400, "body", "not valid JSON"),
    ("empty batch", {"records": []}, 422, "records", "no records"),
    ("missing field", "drop:carrier", 422, "records[0].carrier", "field required"),
    ("wrong type", "set:distance=far", 422, "records[0].distance", "is not a number"),
    ("naive time", "set:time_hour=2013-01-07T10:00:00", 422, "records[0].time_hour", "no time zone"),
    ("not an object", {"records": [3]}, 422, "records[0]", "expected an object"),
    # what a fuzzer found or would: a 4xx naming the field, never a 500
    ("time pandas cannot hold", "set:time_hour=0094-07-20T04:07:54-14:40", 422, "records[0].time_hour", "outside the years 1678 to 2261"),
    ("day out of range", "set:time_hour=2013-02-30T10:00:00Z", 422, "records[0].time_hour", "is not a time"),
    ("huge whole number", "num:hour=100000000000000000000", 422, "records[0].hour", "out of range"),
    ("NaN", b'{"records": [{"hour": NaN}]}', 400, "body", "NaN is not a JSON number"),
    ("Infinity", b'{"records": [{"distance": -Infinity}]}', 400, "body", "-Infinity is not a JSON number"),
    ("deep nesting", b"[" * 50_000 + b"]" * 50_000, 400, "body", "nested deeper"),
    ("long text", "set:tailnum=" + "N" * 100_000, 422, "records[0].tailnum", "100,000 characters"),
    ("half a surrogate pair", "raw:tailnum=\\ud800", 422, "records[0].tailnum", "not Unicode text"),
    ("a number as text", "num:carrier=7", 422, "records[0].carrier", "is not a string"),
])
def test_bad_requests_name_the_problem(service, case, body, status, where, words):
    url = service["url"]
    example = requests.get(f"{url}/metadata").json()["example"]["records"][0]
    if isinstance(body, str):
        op, arg = body.split(":", 1)
        rec = dict(example)
        k, v = arg.split("=", 1) if "=" in arg else (arg, None)
        if op == "drop": rec.pop(k)
        else: rec[k] = json.loads(v) if op == "num" else "\x00raw" if op == "raw" else v
        body = json.dumps({"records": [rec]}).replace(json.dumps("\x00raw"), f'"{v}"')  # raw: the JSON text as a client sends it
    r = requests.post(f"{url}/predict", data=body if isinstance(body, (bytes, str)) else json.dumps(body),
                      headers={"content-type": "application/json"})
    assert r.status_code == status, (case, r.text)
    detail = r.json()["detail"][0]
    assert detail["loc"] == where and words in detail["msg"], (case, detail)


def test_oversized_payload_is_refused(service):
    example = requests.get(f"{service['url']}/metadata").json()["example"]["records"][0]
    r = requests.post(f"{service['url']}/predict", json={"records": [example] * 1001})
    assert r.status_code == 413 and "mlops-nb score" in r.json()["detail"][0]["msg"]


def test_prediction_log_and_feedback(service):
    from mlops_nb.predictions import PredictionLog
    url = service["url"]
    example = requests.get(f"{url}/metadata").json()["example"]
    rid = requests.post(f"{url}/predict", json=example).json()["request_id"]
    labels = {"labels": [{"request_id": rid, "record": 0, "label": True}]}
    assert requests.post(f"{url}/feedback", json=labels).json()["new"] == 1
    assert requests.post(f"{url}/feedback", json=labels).json()["duplicates"] == 1  # twice: stored once
    assert requests.post(f"{url}/feedback", json={"labels": [{"label": 1}]}).status_code == 422
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = PredictionLog(service["project"].parent / "serving" / "predictions.db").read()
        if rid in set(log.request_id): break
        time.sleep(0.2)
    row = log[log.request_id == rid].iloc[0]
    assert row.label == 1 and row.version == "1" and json.loads(row.inputs)["carrier"] == example["records"][0]["carrier"]
    assert "temp" in json.loads(row.features) and row.latency_ms > 0
    metrics = requests.get(f"{url}/metrics").text
    assert 'mlops_nb_requests_total{status="200"}' in metrics and "mlops_nb_request_seconds_bucket" in metrics


def test_a_flight_without_a_key_is_scored_without_its_features(service):
    "A null tail number (the data has such flights) is answered, with the plane's features missing as training saw them, in a pass with a full record."
    from mlops_nb.predictions import PredictionLog
    url = service["url"]
    example = requests.get(f"{url}/metadata").json()["example"]["records"][0]
    r = requests.post(f"{url}/predict", json={"records": [example, {**example, "tailnum": None}]})
    assert r.status_code == 200, r.text
    rid = r.json()["request_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = PredictionLog(service["project"].parent / "serving" / "predictions.db").read()
        if (log.request_id == rid).sum() == 2: break
        time.sleep(0.2)
    full, keyless = (json.loads(f) for f in log[log.request_id == rid].sort_values("record").features)
    assert full["plane_seats"] is not None and keyless["plane_seats"] is None and keyless["temp"] == full["temp"]


def test_unseen_category_is_scored_as_training_scores_it(service, tmp_path):
    """A flight to a destination the model never saw (TVC) is answered with a warning naming the field; its probability is the
    pipeline's own (the lean path and scikit-learn agree on it), and monitoring counts it; `refuse` keeps the 422."""
    import mlflow
    from mlflow import MlflowClient
    from mlops_nb.config import load_project
    from mlops_nb.deploy import RequestError, Scorer
    from mlops_nb.monitor import json_columns, unseen_categories
    from mlops_nb.predictions import PredictionLog
    url = service["url"]
    meta = requests.get(f"{url}/metadata").json()
    assert "TVC" not in meta["known_categories"]["dest"]
    example = meta["example"]["records"][0]
    r = requests.post(f"{url}/predict", json={"records": [example, {**example, "dest": "TVC"}]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert [(w["record"], w["loc"]) for w in got["warnings"]] == [(1, "records[1].dest")] and "'TVC'" in got["warnings"][0]["msg"]
    scorer = Scorer(load_project(service["project"]), tracking_uri=service["uri"], run_dir=service["run_dir"], log_path=tmp_path / "log.db")
    try:
        assert scorer.model.lean is not None, scorer.model.inference
        X = scorer.model_inputs(scorer.check([{**example, "dest": "TVC"}]))[1]
        client = MlflowClient(tracking_uri=service["uri"], registry_uri=service["uri"])
        pipeline = mlflow.sklearn.load_model(client.get_model_version_download_uri("delay_model", got["version"]))
        by_pipeline = pipeline.predict_proba(pd.DataFrame({c: X[c] for c in pipeline.feature_names_in_}))[:, 1]
        assert scorer.model.lean.predict(X) == pytest.approx(by_pipeline, abs=1e-12)
        assert got["predictions"][1]["probability"] == pytest.approx(by_pipeline[0], abs=1e-12)
        assert got["predictions"][1]["probability"] != got["predictions"][0]["probability"]  # the destination counts
    finally: scorer.log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = PredictionLog(service["project"].parent / "serving" / "predictions.db").read()
        if (log.request_id == got["request_id"]).sum() == 2: break
        time.sleep(0.2)
    fitted = pd.read_parquet(service["run_dir"] / "artifacts/features/training_set.parquet")
    counted = unseen_categories(json_columns(log[log.request_id == got["request_id"]].features), fitted)
    assert counted["predictions"] == 1 and counted["columns"] == {"dest": {"TVC": 1}}
    strict = Scorer(load_project(service["project"], ["deploy.unseen_categories=refuse"]), tracking_uri=service["uri"],
                    run_dir=service["run_dir"], log_path=tmp_path / "strict.db")
    try:
        with pytest.raises(RequestError, match="not a value the model knows") as refused: strict.check([{**example, "dest": "TVC"}])
        assert refused.value.where == "records[0].dest"
    finally: strict.log.close()


def test_a_bad_record_fails_alone_among_good_ones(service):
    """Eight clients send good requests while others send records the service cannot score, all in the same passes: every
    good request is answered, every bad one gets a 4xx naming its field, and the service stays ready."""
    url = service["url"]
    example = requests.get(f"{url}/metadata").json()["example"]["records"][0]
    bad = {"time_hour": ({**example, "time_hour": "0094-07-20T04:07:54-14:40"}, 422),
           "tailnum": ('{"records": [%s]}' % json.dumps({**example, "tailnum": "\x00raw"}).replace(json.dumps("\x00raw"), '"\\udc80"'), 422),
           "body": ('{"records": [{"hour": NaN}]}', 400)}
    answers, lock = [], threading.Lock()

    def client_loop(n, body, field):
        with requests.Session() as s:
            for _ in range(n):
                r = s.post(f"{url}/predict", data=body if isinstance(body, str) else json.dumps({"records": [body, body]}),
                           headers={"content-type": "application/json"}, timeout=30)
                with lock: answers.append((field, r.status_code, r.json()))

    threads = [threading.Thread(target=client_loop, args=(25, example, None)) for _ in range(6)]
    threads += [threading.Thread(target=client_loop, args=(10, body, field)) for field, (body, _) in bad.items()]
    for t in threads: t.start()
    for t in threads: t.join(timeout=120)
    good = [a for a in answers if a[0] is None]
    assert len(good) == 150 and {s for _, s, _ in good} == {200}, {s for _, s, _ in good}
    assert all(len(body["predictions"]) == 2 for _, _, body in good)
    for field, (_, status) in bad.items():
        mine = [(s, b["detail"][0]["loc"]) for f, s, b in answers if f == field]
        assert len(mine) == 10 and set(mine) == {(status, "body" if field == "body" else f"records[0].{field}")}, (field, set(mine))
    assert requests.get(f"{url}/ready").json()["ready"] is True


def test_alias_switch_under_load_fails_no_request(service):
    "Eight clients send 300 requests while the champion moves to a new version and back: every answer is a 200."
    from mlflow import MlflowClient
    url, uri = service["url"], service["uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    v2 = client.copy_model_version("models:/delay_model/1", "delay_model").version  # the same model as a new version
    body = requests.get(f"{url}/metadata").json()["example"]
    statuses, versions, lock = [], set(), threading.Lock()

    def client_loop(n):
        with requests.Session() as s:
            for _ in range(n):
                r = s.post(f"{url}/predict", json=body, timeout=30)
                with lock:
                    statuses.append(r.status_code)
                    if r.ok: versions.add(r.json()["version"])

    threads = [threading.Thread(target=client_loop, args=(38,)) for _ in range(8)]
    for t in threads: t.start()
    time.sleep(0.5)
    client.set_registered_model_alias("delay_model", "champion", str(v2))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and requests.post(f"{url}/predict", json=body).json()["version"] != str(v2): time.sleep(0.2)
    for t in threads: t.join(timeout=120)
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert requests.get(f"{url}/ready").json()["version"] == str(v2)
    # rollback moves the alias back; the service follows
    client.set_model_version_tag("delay_model", "1", "decision", "champion")
    code, out = mlops_nb("rollback", "delay_model", "--project", service["project"])
    assert code == 0 and f"from version {v2} to version 1" in out, out
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and requests.get(f"{url}/ready").json()["version"] != "1": time.sleep(0.2)
    assert requests.get(f"{url}/ready").json()["version"] == "1"


@pytest.mark.parametrize("strategy", ["shadow", "canary"])
def test_rollouts_log_what_they_should(trained, tmp_path, strategy):
    "Shadow: the challenger scores every record, logged and never returned. Canary: a sticky share answered by the challenger."
    from mlflow import MlflowClient
    from mlops_nb.config import load_project
    from mlops_nb.deploy import Scorer
    f, uri, run_dir = trained
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    challenger = client.copy_model_version("models:/delay_model/1", "delay_model").version
    client.set_registered_model_alias("delay_model", "challenger", str(challenger))
    lp = load_project(f, [f"deploy.strategy={strategy}", "deploy.canary_share=0.5", "deploy.sticky_key=[tailnum]"])
    scorer = Scorer(lp, tracking_uri=uri, run_dir=run_dir, log_path=tmp_path / "log.db")
    champion = scorer.model.version
    assert scorer.challenger.version == str(challenger) != champion
    flights = pd.read_parquet(run_dir / "artifacts/ingest/flights.parquet").dropna(subset=["tailnum"]).tail(60)
    records = json.loads(flights[list(scorer.types)].to_json(orient="records", date_format="iso"))
    first, again = scorer.score(records), scorer.score(records)
    scorer.shadow_pool.shutdown(wait=True); scorer.log.flush()
    log = scorer.log.read()
    answered = [p["version"] for p in first["predictions"]]
    if strategy == "shadow":
        assert set(answered) == {champion}  # the challenger never answers
        assert (log.variant == "shadow").sum() == 2 * len(records) and set(log[log.variant == "shadow"].version) == {str(challenger)}
        assert (log.variant == "champion").sum() == 2 * len(records)
    else:
        assert set(answered) == {champion, str(challenger)}
        assert answered == [p["version"] for p in again["predictions"]]  # sticky: the same tail number, the same model
        canary = log[log.variant == "canary"]
        assert len(canary) == 2 * answered.count(str(challenger)) and set(canary.version) == {str(challenger)}
    scorer.log.close()


def test_batch_scoring_command(service, tmp_path):
    "`mlops-nb score` on a file of requests: the same answers as the service; a bad row is named by its line, nothing written."
    url, run_dir = service["url"], service["run_dir"]
    fields = list(requests.get(f"{url}/metadata").json()["request_fields"])
    flights = pd.read_parquet(run_dir / "artifacts/ingest/flights.parquet").tail(50)[fields]
    flights.to_csv(tmp_path / "requests.csv", index=False)
    code, out = mlops_nb("score", "--project", service["project"], "--input", tmp_path / "requests.csv", "--output", tmp_path / "scored.csv")
    assert code == 0 and "scored 50 rows" in out, out
    scored = pd.read_csv(tmp_path / "scored.csv")
    records = json.loads(flights.to_json(orient="records", date_format="iso"))
    served = requests.post(f"{url}/predict", json={"records": records}).json()
    assert scored.probability.tolist() == pytest.approx([p["probability"] for p in served["predictions"]], abs=1e-9)
    bad = flights.astype({"distance": object})
    bad.iloc[7, bad.columns.get_loc("distance")] = "far"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    code, out = mlops_nb("score", "--project", service["project"], "--input", tmp_path / "bad.csv", "--output", tmp_path / "bad_scored.csv")
    assert code == 2 and "bad.csv, line 9: distance: 'far' is not a number" in out and "Traceback" not in out, out
    assert not (tmp_path / "bad_scored.csv").exists()
    code, out = mlops_nb("score", "--project", service["project"], "--input", tmp_path / "missing.csv", "--output", tmp_path / "x.csv")
    assert code == 2 and "--input: file not found" in out and "Traceback" not in out, out


def test_feedback_command(service, tmp_path):
    "`mlops-nb feedback --file`: labels from a file join their predictions; a bad line or a file that matches nothing records nothing."
    url = service["url"]
    log_path = service["project"].parent / "serving" / "predictions.db"
    def query(sql):
        with sqlite3.connect(log_path) as db: return db.execute(sql).fetchall()
    example = requests.get(f"{url}/metadata").json()["example"]
    rids = [requests.post(f"{url}/predict", json=example).json()["request_id"] for _ in range(3)]
    deadline = time.monotonic() + 10  # the log is written in the background
    while not set(rids) <= {r for r, in query("select request_id from predictions")} and time.monotonic() < deadline: time.sleep(0.2)
    pd.DataFrame({"request_id": rids + ["never-served"], "label": [True, False, True, False]}).to_csv(tmp_path / "labels.csv", index=False)
    code, out = mlops_nb("feedback", "--project", service["project"], "--file", tmp_path / "labels.csv")
    assert code == 0 and "4 labels" in out and "4 new" in out and "1 matching no logged prediction" in out, out
    labels = dict(query("select request_id, label from feedback"))
    assert [labels[r] for r in rids] == [1, 0, 1]
    code, out = mlops_nb("feedback", "--project", service["project"], "--file", tmp_path / "labels.csv")
    assert code == 0 and "0 new, 4 already recorded" in out, out  # twice: stored once
    pd.DataFrame({"request_id": ["a", "b"], "label": ["yes", "no"]}).to_csv(tmp_path / "bad.csv", index=False)
    code, out = mlops_nb("feedback", "--project", service["project"], "--file", tmp_path / "bad.csv")
    assert code == 2 and "bad.csv, line 2: label: 'yes' is not a label" in out and "Traceback" not in out, out
    pd.DataFrame({"request_id": ["x1", "x2"], "label": [1, 0]}).to_csv(tmp_path / "strangers.csv", index=False)
    code, out = mlops_nb("feedback", "--project", service["project"], "--file", tmp_path / "strangers.csv")
    assert code == 2 and "none of the 2 labels matches a logged prediction" in out, out
    assert not {"a", "x1", "x2"} & {r for r, in query("select request_id from feedback")}  # refused files record nothing
    code, out = mlops_nb("feedback", "--project", service["project"], "--file", tmp_path / "missing.csv")
    assert code == 2 and "--file: file not found" in out and "Traceback" not in out, out


@pytest.mark.parametrize("family", ["logistic_regression", "hist_gradient_boosting", "random_forest"])
def test_categories_keep_their_column_when_one_is_empty_in_training(family):
    "A categorical column with no value in training keeps its place: each column's known categories are its own."
    import numpy as np
    from mlops_nb.deploy import category_codes, known_categories
    from mlops_nb.train import make_model
    df = pd.DataFrame({"empty": [None] * 40, "shop": ["north", "south"] * 20, "x": np.arange(40.0)})
    model = make_model(family, {}, ["x"], ["empty", "shop"]).fit(df, [0, 1] * 20)
    assert known_categories(model) == {"empty": [], "shop": ["north", "south"]}
    if family != "logistic_regression":
        cat = model.named_steps["transforms"].named_transformers_["categorical"]
        assert set(category_codes(cat, ["empty", "shop"])[1][0]) == {"north", "south"}
