"""`mlops-nb serve` and `mlflow models serve` on the same champion answer the same for the same flights.

Our service takes a flight's raw request fields and looks its features up in the run's online store; MLflow's scoring
server takes the model inputs themselves (the training set's rows) as `dataframe_split`. For the flights of the
training set's last decision time (where the online store holds what the training set held) the two must agree.

What is compared, and why: with MLflow 3.17 the scikit-learn pyfunc of our registered models answers class labels
(`predict_fn: predict`, the flavour's default), and the scoring server's `"params": {"predict_method": "predict_proba"}`
is not honoured: the model's signature has no params schema, so MLflow logs "Ignoring provided params" and
`_SklearnModelWrapper.predict` calls `predict` anyway. So the test compares our probability at MLflow's implicit
threshold, 0.5 (`predict` of a binary `HistGradientBoostingClassifier` is `predict_proba >= 0.5`, ties aside) with
MLflow's labels, record by record; it also pins our probabilities to the registered model's own `predict_proba` on
the same training rows. Should a later MLflow honour `predict_method` (its answer to the request with params is then
numbers), the test compares probabilities instead. Note that our `decision` uses the version's tuned `threshold` tag
(0.5 only by chance), which MLflow's server knows nothing about.
"""
import json, os, signal, socket, subprocess, time
from pathlib import Path

import pandas as pd
import pytest
import requests

from conftest import BIN, ROOT, mlops_nb

pytestmark = pytest.mark.timeout(600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, warehouse):
    "The demo's first week run to a registered model (one HGB experiment), made champion by hand; (project file, tracking uri, run folder)."
    import yaml
    from mlflow import MlflowClient
    root = tmp_path_factory.mktemp("mlflow-serve")
    data = yaml.safe_load((ROOT / "conf" / "project.yaml").read_text())
    data["root"] = str(root)
    data["sources"]["warehouse"]["url"] = f"sqlite:///{warehouse}"
    data["ingest"]["window"] = {"start": "2013-01-01", "end": "2013-01-08"}
    data["quality"]["profile"]["enabled"] = False
    data["train"] = {"parallel": 1, "experiments": [{"name": "trees", "family": "hist_gradient_boosting",
                                                     "hypothesis": "Boosted trees on every view rank late flights.", "params": {}}]}
    f = root / "project.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = mlops_nb("run", "--project", f, "--no-reports")
    assert code == 0, out
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("delay_model", "champion", "1")  # a week rarely passes the gates: promote by hand
    run_dir = next(p for p in (root / "runs").iterdir() if (p / "run.json").exists())
    return f, uri, run_dir


def start(cmd: list, env: dict, cwd: Path, url: str, ready: str, log: Path, timeout: float = 180) -> subprocess.Popen:
    "A server in its own process group (MLflow's CLI runs uvicorn in a child), once `ready` answers 200."
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}{ready}", timeout=1).status_code == 200: return proc
        except requests.ConnectionError: pass
        if proc.poll() is not None: break
        time.sleep(0.3)
    stop(proc)
    pytest.fail(f"{cmd[0]} {cmd[1]} did not become ready in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen):
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: return
        try: proc.wait(timeout=wait); return
        except subprocess.TimeoutExpired: continue


@pytest.fixture(scope="module")
def servers(trained):
    "Both services on free loopback ports, one worker each, `OMP_NUM_THREADS=1`; stopped after the tests."
    f, uri, run_dir = trained
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MLFLOW_TRACKING_URI": uri}
    ours_port, mlflow_port = free_port(), free_port()
    ours_url, mlflow_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{mlflow_port}"
    procs = []
    try:
        procs.append(start([str(BIN / "mlops-nb"), "serve", "--project", str(f), "--port", str(ours_port), "--refresh", "0"],
                           env, f.parent, ours_url, "/ready", f.parent / "ours.log"))
        procs.append(start([str(BIN / "mlflow"), "models", "serve", "-m", "models:/delay_model@champion", "--env-manager", "local",
                            "-p", str(mlflow_port), "-h", "127.0.0.1", "-w", "1"],
                           env, f.parent, mlflow_url, "/ping", f.parent / "mlflow.log"))
        yield {"ours": ours_url, "mlflow": mlflow_url, "uri": uri, "run_dir": run_dir, "project": f}
    finally:
        for p in procs: stop(p)


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
