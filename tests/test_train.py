"Training and the model registry over real runs, on a table the project has never seen (scikit-learn's breast-cancer data)."
import json

import pandas as pd
import pytest
import yaml

from conftest import mlops_nb
from mlops_nb.config import Split
from mlops_nb.train import HoldoutError, check_holdout, split_frame

WEAK = {"name": "one_column", "family": "logistic_regression", "params": {"C": [1.0]},
        "hypothesis": "One measurement (mean radius) is enough to rank the tumours."}
ALL_COLUMNS = {"name": "all_columns", "family": "logistic_regression", "params": {"C": [1.0]},
               "hypothesis": "Every measurement together ranks the tumours better than one."}
BROKEN = {"name": "broken", "family": "hist_gradient_boosting", "params": {"learning_rate": [-1.0]},
          "hypothesis": "A trial with an impossible parameter fails, and the search goes on."}


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    "A project inferred from the breast-cancer CSV, with its steps up to the features run once; (folder, project dict)."
    from sklearn.datasets import load_breast_cancer
    d = tmp_path_factory.mktemp("cancer")
    load_breast_cancer(as_frame=True).frame.to_csv(d / "cancer.csv", index=False)
    code, out = mlops_nb("run", "--data", d / "cancer.csv", "--target", "target", "--until", "features", "--no-reports", cwd=d)
    assert code == 0, out
    run_dir = next(p for p in (d / "runs").iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    return d, yaml.safe_load((run_dir / "project.yaml").read_text())


def train(cancer, name, experiments=None, **design):
    """Run the train step alone (earlier steps reused) with these experiments; return (exit code, output, model card).
    What these tests check is the card and the registry, which deploy only reads (test_pipeline's --data run deploys
    a cancer champion)."""
    d, data = cancer
    data = json.loads(json.dumps(data))
    data["train"] = {"experiments": experiments} if experiments else {}
    data["design"].update(design)
    f = d / f"{name}.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = mlops_nb("run", "--project", f, "--from", "train", "--until", "train", "--no-reports", cwd=d)
    runs = sorted(p for p in (d / "runs").iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    card = runs[-1] / "artifacts" / "train" / "model_card.json"
    return code, out, json.loads(card.read_text()) if card.exists() else None


def registry(cancer):
    from mlflow import MlflowClient
    uri = f"sqlite:///{cancer[0] / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def champion(cancer) -> str:
    return registry(cancer)[0].get_model_version_by_alias("cancer", "champion").version


def test_champion_moves_only_for_a_better_model(cancer):
    features = pd.read_parquet(next((cancer[0] / "runs").glob("*/artifacts/features/training_set.parquet"))).columns
    weak = {**WEAK, "drop": [c for c in features if c not in ("mean radius", "target")]}
    # 1. a weak model and a broken trial: the broken trial is tracked as failed, the weak model becomes the first champion
    code, out, card = train(cancer, "weak", [weak, BROKEN])
    assert code == 0, out
    assert "FAILED" in out and "learning_rate" in out  # progress names the failed trial
    v1 = card["registered"]["version"]
    assert card["registered"]["decision"] == "champion" and champion(cancer) == v1
    client, _ = registry(cancer)
    trials = {t["experiment"]: t for t in json.loads(next(cancer[0].glob("runs/*/artifacts/train/trials.json")).read_text())}
    failed_run = client.get_run(trials["broken"]["run_id"])
    assert failed_run.info.status == "FAILED" and "learning_rate" in failed_run.data.tags["error"]
    assert all(v.run_id != failed_run.info.run_id for v in client.search_model_versions("name='cancer'"))
    # 2. a model on every column beats it on the same hold-out: the champion moves
    code, out, strong = train(cancer, "strong", [ALL_COLUMNS])
    assert code == 0, out
    assert strong["lineage"]["holdout_digest"] == card["lineage"]["holdout_digest"]
    assert strong["promotion"]["champion_version"] == v1 and strong["registered"]["decision"] == "champion", strong["promotion"]
    assert champion(cancer) == strong["registered"]["version"]
    assert strong["promotion"]["champion_on_holdout"]["value"] < strong["holdout"]["value"]
    # 3. the weak model again: it becomes the challenger, the champion stays, and the reason is on the version
    code, out, again = train(cancer, "weak_again", [weak])
    assert code == 0, out
    assert again["registered"]["decision"] == "challenger" and champion(cancer) == strong["registered"]["version"]
    mv = client.get_model_version("cancer", again["registered"]["version"])
    assert "does not beat the champion" in mv.tags["reason"] and mv.aliases == ["challenger"]
    # 4. a card that requires a sign-off: promotion waits for `mlops-nb approve`
    data = json.loads(json.dumps(cancer[1]))
    data["design"]["sign_off_required"] = True
    data["train"] = {"experiments": [ALL_COLUMNS], "promotion": {"margin": -1e9}}  # the same model ties: accept a tie
    f = cancer[0] / "tie.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = mlops_nb("run", "--project", f, "--from", "train", "--until", "train", "--no-reports", cwd=cancer[0])
    assert code == 0, out
    waiting = max(client.search_model_versions("name='cancer'"), key=lambda v: int(v.version))
    assert waiting.tags["decision"] == "awaiting_approval" and champion(cancer) == strong["registered"]["version"]
    code, out = mlops_nb("approve", "cancer", waiting.version, "--by", "Dr. Sign-off", "--project", f, cwd=cancer[0])
    assert code == 0 and "promoted to champion" in out, out
    assert champion(cancer) == waiting.version
    assert client.get_model_version("cancer", waiting.version).tags["approved_by"] == "Dr. Sign-off"
    code, out = mlops_nb("approve", "cancer", "999", "--by", "x", "--project", f, cwd=cancer[0])
    assert code == 2 and "no version 999" in out


def test_champion_loads_with_pyfunc_and_predicts_its_example(cancer):
    import mlflow
    if not any(True for _ in (cancer[0] / "runs").glob("*/artifacts/train")):
        code, out, _ = train(cancer, "first")
        assert code == 0, out
    _, uri = registry(cancer)
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)  # `models:/` URIs resolve against the process-wide stores
    model = mlflow.pyfunc.load_model("models:/cancer@champion")
    example = model.input_example
    assert example is not None and len(example) == 5
    assert len(model.predict(example)) == 5
    meta = model.metadata.metadata
    assert 0 < meta["threshold"] < 1 and meta["label"] == "target" and "mean radius" in meta["features"]
    sk = mlflow.sklearn.load_model("models:/cancer@champion")  # skops, with the trusted types recorded in MLmodel
    assert sk.predict_proba(example).shape == (5, 2)


def test_a_holdout_that_overlaps_training_is_refused():
    df = pd.DataFrame({"t": pd.date_range("2013-01-01", periods=200, freq="h", tz="UTC"), "x": range(200), "y": [True, False] * 100})
    parts = split_frame(df, Split(), "y", "t")
    check_holdout(parts, "t")
    with pytest.raises(HoldoutError, match="shares 2 row"):
        check_holdout({**parts, "validation": pd.concat([parts["validation"], parts["holdout"].tail(2)])})
    with pytest.raises(HoldoutError, match="strictly later"):
        late = parts["holdout"].head(1).assign(x=-1)  # a new row, but inside the hold-out's period
        check_holdout({**parts, "train": pd.concat([parts["train"], late])}, "t")


def test_parallel_search_agrees_with_serial():
    import numpy as np
    from sklearn.datasets import make_classification
    from mlops_nb.config import Experiment, demo_project_file, load_project
    from mlops_nb.train import expand, search
    X, y = make_classification(n_samples=1500, n_features=5, random_state=1)
    df = pd.DataFrame(X, columns=list("abcde")).assign(y=y.astype(bool))
    parts = split_frame(df, Split(), "y")
    exps = [Experiment(name="lin", hypothesis="h", family="logistic_regression", params={"C": [0.1, 1.0]}),
            Experiment(name="gbt", hypothesis="h", family="hist_gradient_boosting", params={"learning_rate": [0.1]})]
    vm = load_project(demo_project_file()).design.value_model
    groups = {c: [c] for c in "abcde"}
    run = lambda n: search(expand(exps), {"lin": list("abcde"), "gbt": list("abcde")}, parts, "y", "roc_auc", vm, groups,
                           parallel=n, say=lambda m: None)
    serial, parallel = run(1), run(2)
    assert [r["trial"] for r in parallel] == [0, 1, 2]
    for a, b in zip(serial, parallel):
        assert a["status"] == b["status"] == "finished"
        np.testing.assert_allclose(a["metrics"]["roc_auc"], b["metrics"]["roc_auc"])
        assert a["importance"]["groups"].keys() == b["importance"]["groups"].keys()


def test_the_model_card_explains_a_binary_model(cancer):
    "The latest registered model of the cancer table (a run of the tests above, or one of its own) is explained on its card."
    from test_explain_card import check_card_explanation
    cards = sorted(cancer[0].glob("runs/*/artifacts/train/model_card.json"))
    card = json.loads(cards[-1].read_text()) if cards else train(cancer, "explained", [ALL_COLUMNS])[2]
    training_set = pd.read_parquet(next((cancer[0] / "runs").glob("*/artifacts/features/training_set.parquet")))
    x = check_card_explanation(card, f"sqlite:///{cancer[0] / 'mlflow.db'}", training_set)
    assert x["method"] == ("linear" if card["selected"]["family"] == "logistic_regression" else "tree_shap")
    assert x["examples"][0]["why"] == "flagged, with the highest probability" and x["examples"][1]["why"] == "not flagged, with the lowest probability"
    assert x["examples"][0]["probability"] >= x["examples"][0]["threshold"] > x["examples"][1]["probability"]
