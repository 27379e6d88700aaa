"""`mlops-nb serve` and `mlflow models serve` on the same champion answer the same for the same flights.

Our service takes a flight's raw request fields and looks its features up in the run's online store; MLflow's scoring
server takes the model inputs themselves (the training set's rows) as `dataframe_split`. For the flights of the
training set's last decision time (where the online store holds what the training set held) the two must agree.

What is compared, and why. With MLflow 3.17 the scikit-learn pyfunc of our registered models answers class labels
(`predict_fn: predict`, the flavour's default), and the scoring server's `"params": {"predict_method": "predict_proba"}`
is not honoured: the model's signature has no params schema, so MLflow logs "Ignoring provided params" and
`_SklearnModelWrapper.predict` calls `predict` anyway (the test asserts that the answer with params is labels again;
should a later MLflow honour it, the test compares those probabilities instead). So, for
`mlflow models serve -m models:/delay_model@champion`, the test compares our probability at MLflow's implicit threshold,
0.5 (`predict` of a binary `HistGradientBoostingClassifier` is `predict_proba >= 0.5`), with MLflow's labels, record by
record. On a week of data hardly any flight reaches 0.5, so that comparison alone is weak: the test also serves the
champion's very pipeline, saved with `pyfunc_predict_fn="predict_proba"` and the champion's signature, with a second
`mlflow models serve`, and requires its probabilities (MLflow's JSON parsing and schema enforcement included) to equal
ours to 1e-9; and it pins ours to the registered model's own `predict_proba` on the same training rows. Note that our
`decision` uses the version's tuned `threshold` tag, which MLflow's server knows nothing about.
"""
import json, os
from pathlib import Path

import pandas as pd
import pytest
import requests

from conftest import BIN, free_port, start_server, stop, wait_ready

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def trained(week_champion):
    "The demo's first week with a champion (shared with the other service tests): (project file, tracking uri, run folder)."
    return week_champion


def proba_copy(uri: str, folder: Path) -> Path:
    "The champion's pipeline saved as an MLflow model whose pyfunc answers `predict_proba` (same signature, same skops types)."
    import mlflow
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("delay_model", "champion")
    local = mlflow.artifacts.download_artifacts(artifact_uri=client.get_model_version_download_uri("delay_model", mv.version))
    info = mlflow.models.Model.load(local)
    model = mlflow.sklearn.load_model(local)
    sk = info.flavors["sklearn"]
    mlflow.sklearn.save_model(model, folder, signature=info.signature, pyfunc_predict_fn="predict_proba",
                              serialization_format=sk["serialization_format"], skops_trusted_types=sk.get("skops_trusted_types"))
    return folder


@pytest.fixture(scope="module")
def servers(trained):
    "Our service, MLflow's on the champion and MLflow's on a predict_proba copy, on free loopback ports, one worker each."
    f, uri, run_dir = trained
    env = {"OMP_NUM_THREADS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MLFLOW_TRACKING_URI": uri}
    ports = {k: free_port() for k in ("ours", "mlflow", "mlflow_proba")}
    urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    mlflow_cmd = lambda model, port: [BIN / "mlflow", "models", "serve", "-m", model, "--env-manager", "local",
                                      "-p", port, "-h", "127.0.0.1", "-w", "1"]
    procs = {}
    try:  # the three start at once (each is mostly imports): the fixture waits for the slowest, not for the sum
        procs["ours"] = start_server([BIN / "mlops-nb", "serve", "--project", f, "--port", ports["ours"], "--refresh", "0"],
                                     f.parent / "ours.log", env=env, cwd=f.parent)
        procs["mlflow"] = start_server(mlflow_cmd("models:/delay_model@champion", ports["mlflow"]), f.parent / "mlflow.log",
                                       env=env, cwd=f.parent)
        copy = proba_copy(uri, f.parent / "champion_proba")  # while the first two start
        procs["mlflow_proba"] = start_server(mlflow_cmd(copy, ports["mlflow_proba"]), f.parent / "mlflow_proba.log",
                                             env=env, cwd=f.parent)
        for name, ready in (("ours", "/ready"), ("mlflow", "/ping"), ("mlflow_proba", "/ping")):
            wait_ready(procs[name], url=urls[name] + ready, timeout=180)
        yield {**urls, "uri": uri, "run_dir": run_dir, "project": f}
    finally:
        for p in procs.values(): stop(p)


def test_both_services_answer_the_same(servers):
    import mlflow, yaml
    run_dir, ours, theirs = servers["run_dir"], servers["ours"], servers["mlflow"]
    ids = yaml.safe_load(servers["project"].read_text())["features"]["row_id"]
    train = pd.read_parquet(run_dir / "artifacts/features/training_set.parquet")
    flights = pd.read_parquet(run_dir / "artifacts/ingest/flights.parquet")
    last = train[train.event_timestamp == train.event_timestamp.max()].sort_values(ids).reset_index(drop=True)
    assert len(last) >= 5, len(last)
    raw = last[ids].merge(flights, on=ids, how="left", validate="one_to_one")

    meta = requests.get(f"{ours}/metadata", timeout=30).json()
    records = json.loads(raw[list(meta["request_fields"])].to_json(orient="records", date_format="iso"))
    got = requests.post(f"{ours}/predict", json={"records": records}, timeout=60)
    assert got.status_code == 200, got.text
    p = [r["probability"] for r in got.json()["predictions"]]

    mlflow.set_tracking_uri(servers["uri"]); mlflow.set_registry_uri(servers["uri"])  # conftest resets them after the test
    model = mlflow.sklearn.load_model("models:/delay_model@champion")
    X = last[list(model.feature_names_in_)]
    assert p == pytest.approx(list(model.predict_proba(X)[:, 1]), abs=1e-9)  # our online features = the training set's

    body = {"dataframe_split": json.loads(X.to_json(orient="split", index=False))}
    labels = requests.post(f"{theirs}/invocations", json=body, timeout=60)
    assert labels.status_code == 200, labels.text
    labels = labels.json()["predictions"]
    assert len(labels) == len(p)
    assert labels == [bool(x) for x in model.predict(X)]  # MLflow answers `predict`: labels

    asked = requests.post(f"{theirs}/invocations", json={**body, "params": {"predict_method": "predict_proba"}}, timeout=60)
    assert asked.status_code == 200, asked.text
    answer = asked.json()["predictions"]
    if all(isinstance(a, bool) for a in answer):  # MLflow 3.17: params ignored, labels again
        assert answer == labels
        assert [bool(a) for a in labels] == [x >= 0.5 for x in p], list(zip(labels, p))
    else:  # a later MLflow honouring predict_method: [[p0, p1], ...] or [p1, ...]
        theirs_p = [a[1] if isinstance(a, list) else a for a in answer]
        assert theirs_p == pytest.approx(p, abs=1e-9)

    proba = requests.post(f"{servers['mlflow_proba']}/invocations", json=body, timeout=60)
    assert proba.status_code == 200, proba.text
    assert [row[1] for row in proba.json()["predictions"]] == pytest.approx(p, abs=1e-9)
