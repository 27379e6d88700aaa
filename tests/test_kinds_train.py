"""Every kind of target through real runs: a regression (scikit-learn's diabetes table) and a multiclass target (its
wine table), each inferred by `mlops-nb run --data ... --until train`, trained, registered, and loaded back."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import mlops_nb
from mlops_nb.config import Split
from mlops_nb.design import measure
from mlops_nb.train import check_holdout, split_frame


def inferred_run(folder, frame: pd.DataFrame, name: str, *kind) -> dict:
    "Write `frame` as `name`.csv, run its inferred project up to train; the run's folder, project, model card and registry URI."
    frame.to_csv(folder / f"{name}.csv", index=False)
    code, out = mlops_nb("run", "--data", folder / f"{name}.csv", "--target", "target", *kind, "--until", "train", "--no-reports", cwd=folder)
    assert code == 0, out
    run = next(p for p in (folder / "runs").iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    return {"folder": folder, "run": run, "name": name, "out": out, "project": yaml.safe_load((run / "project.yaml").read_text()),
            "card": json.loads((run / "artifacts" / "train" / "model_card.json").read_text()),
            "uri": f"sqlite:///{folder / 'mlflow.db'}"}


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    from sklearn.datasets import load_diabetes
    return inferred_run(tmp_path_factory.mktemp("diabetes"), load_diabetes(as_frame=True).frame, "diabetes")


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    from sklearn.datasets import load_wine
    return inferred_run(tmp_path_factory.mktemp("wine"), load_wine(as_frame=True).frame, "wine", "--kind", "multiclass")


def retrain(r: dict, name: str, edit) -> tuple:
    "The train step alone on `r`'s project changed by `edit(project dict)`: (exit code, output, model card or None)."
    data = json.loads(json.dumps(r["project"]))
    edit(data)
    f = r["folder"] / f"{name}.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = mlops_nb("run", "--project", f, "--from", "train", "--until", "train", "--no-reports", cwd=r["folder"])
    runs = sorted(p for p in (r["folder"] / "runs").iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    card = runs[-1] / "artifacts" / "train" / "model_card.json"
    return code, out, json.loads(card.read_text()) if code == 0 and card.exists() else None


def champion(r: dict):
    "(pyfunc model, scikit-learn pipeline, registry version) of `r`'s champion, loaded from the registry."
    import mlflow
    mlflow.set_tracking_uri(r["uri"]); mlflow.set_registry_uri(r["uri"])
    mv = mlflow.MlflowClient(tracking_uri=r["uri"], registry_uri=r["uri"]).get_model_version_by_alias(r["name"], "champion")
    uri = f"models:/{r['name']}@champion"
    return mlflow.pyfunc.load_model(uri), mlflow.sklearn.load_model(uri), mv


def holdout_of(r: dict, kind: str) -> pd.DataFrame:
    "The run's hold-out, split again from its training set as training split it; its digest is the card's."
    train = pd.read_parquet(r["run"] / "artifacts" / "features" / "training_set.parquet")
    parts = split_frame(train, Split(**(r["project"].get("train") or {}).get("split", {})), "target", kind=kind)
    assert check_holdout(parts) == r["card"]["lineage"]["holdout_digest"]
    return parts["holdout"]


def test_a_regression_is_trained_registered_and_served_as_numbers(diabetes):
    card = diabetes["card"]
    assert card["label"]["kind"] == "regression" and card["selection_metric"] == "r2"
    assert card["selected"]["family"] in ("ridge", "hist_gradient_boosting", "random_forest")
    assert set(card["selected"]["rule"]) == {"offset"} and card["selected"]["threshold"] is None
    assert card["holdout"]["r2"] > 0.2 and card["holdout"]["rmse"] < card["split"]["target_mean"]["holdout"]
    assert {g["metric"] for g in card["gates"]} == {"r2", "mae", "value"}
    pyfunc, pipeline, mv = champion(diabetes)
    assert mv.tags["kind"] == "regression" and json.loads(mv.tags["decision_rule"]) == card["selected"]["rule"]
    assert "threshold" not in mv.tags and mv.version == card["registered"]["version"]
    holdout = holdout_of(diabetes, "regression")
    said = np.asarray(pyfunc.predict(holdout[list(pipeline.feature_names_in_)]), float)
    assert said.shape == (len(holdout),) and np.isfinite(said).all()
    again = measure("regression", holdout["target"].to_numpy(float), said, json.loads(mv.tags["decision_rule"]), None)
    assert again["rmse"] == pytest.approx(card["holdout"]["rmse"]) and again["r2"] == pytest.approx(card["holdout"]["r2"])
    assert pyfunc.metadata.metadata["kind"] == "regression"


def test_a_multiclass_target_is_trained_registered_and_served_as_class_names(wine):
    card = wine["card"]
    assert card["label"]["kind"] == "multiclass" and card["label"]["classes"] == ["0", "1", "2"]
    assert card["selected"]["rule"]["classes"] == ["0", "1", "2"] and len(card["selected"]["rule"]["matrix"]) == 3
    assert card["holdout"]["roc_auc"] > 0.9 and card["holdout"]["accuracy"] > 0.8
    assert set(card["split"]["class_shares"]["holdout"]) == {"0", "1", "2"}
    pyfunc, pipeline, mv = champion(wine)
    assert mv.tags["kind"] == "multiclass" and json.loads(mv.tags["decision_rule"]) == card["selected"]["rule"]
    assert list(pipeline.classes_) == ["0", "1", "2"]  # trained on the class names, as the features step wrote them
    holdout = holdout_of(wine, "multiclass")
    assert holdout["target"].map(type).eq(str).all()
    said = np.asarray(pyfunc.predict(holdout[list(pipeline.feature_names_in_)]))
    assert set(said) <= {"0", "1", "2"} and len(said) == len(holdout)
    P = pipeline.predict_proba(holdout[list(pipeline.feature_names_in_)])
    again = measure("multiclass", holdout["target"].to_numpy(str), P, json.loads(mv.tags["decision_rule"]), None)
    assert again["log_loss"] == pytest.approx(card["holdout"]["log_loss"]) and again["roc_auc"] == pytest.approx(card["holdout"]["roc_auc"])


def test_a_worse_regression_on_an_error_metric_stays_challenger(diabetes):
    "The promotion metric's direction comes from LOWER_IS_BETTER: a higher RMSE does not beat the champion."
    weak = {"name": "bmi_only", "family": "ridge", "params": {"alpha": [1.0]}, "hypothesis": "Body mass index alone predicts progression.",
            "drop": [c for c in diabetes["card"]["selected"]["features"] if c != "bmi"], "expect": {"metric": "rmse", "above": 100}}
    before = champion(diabetes)[2].version
    code, out, card = retrain(diabetes, "weak", lambda d: d.update(train={"experiments": [weak], "promotion": {"metric": "rmse"}}))
    assert code == 0, out
    assert card["selected"]["features"] == ["bmi"] and card["promotion"]["metric"] == "rmse"
    assert card["holdout"]["rmse"] > card["promotion"]["champion_on_holdout"]["rmse"]
    assert card["registered"]["decision"] == "challenger" and "does not beat the champion" in card["registered"]["reasons"][-1]
    assert champion(diabetes)[2].version == before


@pytest.mark.parametrize("edit, says", [
    (lambda d: d.update(train={"metric": "recall"}), "`train.metric` is 'recall', not measured for a regression target"),
    (lambda d: d.update(train={"promotion": {"metric": "roc_auc"}}), "one of rmse, mae, r2, mape, bias, value, value_absolute"),
    (lambda d: d.update(train={"experiments": [{"name": "lin", "family": "logistic_regression", "hypothesis": "h"}]}),
     "`train.experiments.lin.family` is 'logistic_regression', which does not fit a regression target"),
])
def test_a_setting_that_does_not_fit_the_kind_is_refused_at_load(diabetes, edit, says):
    code, out, _ = retrain(diabetes, "misfit", edit)
    assert code == 2 and says in out, out


def test_card_classes_that_the_labels_lack_are_refused(wine):
    code, out, _ = retrain(wine, "four", lambda d: d["design"]["target"].update(classes=["0", "1", "2", "3"]))
    assert code != 0 and "design.target.classes lists ['3'], which no row of the training set's `target` holds" in out, out


@pytest.fixture(scope="module")
def wine_parts():
    "The wine table split as training splits a multiclass target; (parts, feature columns, classes)."
    from sklearn.datasets import load_wine
    df = load_wine(as_frame=True).frame.rename(columns=lambda c: c.replace("/", "_"))
    df["target"] = df["target"].map(str)
    return split_frame(df, Split(by="random", seed=1), "target", kind="multiclass"), [c for c in df.columns if c != "target"], ["0", "1", "2"]


@pytest.mark.parametrize("kind, families", [("multiclass", ("hist_gradient_boosting", "random_forest", "logistic_regression")),
                                            ("regression", ("hist_gradient_boosting", "random_forest", "ridge"))])
def test_every_family_of_every_kind_saves_and_loads_with_skops(kind, families):
    "The types skops is told to trust rebuild each kind's estimators, and the loaded pipeline predicts as the fitted one."
    import skops.io
    from sklearn.datasets import load_diabetes, load_wine
    from mlops_nb.train import make_model, trusted_types
    table = (load_wine if kind == "multiclass" else load_diabetes)(as_frame=True).frame
    X, y = table.drop(columns="target").assign(group=np.where(table.index % 3, "a", "b")), table["target"]
    y = y.map(str) if kind == "multiclass" else y.astype(float)
    for family in families:
        model = make_model(family, {}, [c for c in X.columns if c != "group"], ["group"], kind=kind).fit(X, y)
        loaded = skops.io.loads(skops.io.dumps(model), trusted=trusted_types(model))
        np.testing.assert_array_equal(loaded.predict(X.head(20)), model.predict(X.head(20)))


def test_a_multiclass_search_on_dask_is_the_local_search(wine_parts):
    "The trials on a Dask cluster get the kind and classes too: the same results as in this process."
    from distributed import Client, LocalCluster
    from mlops_nb.config import Experiment
    from mlops_nb.train import expand, search
    parts, features, classes = wine_parts
    trials = expand([Experiment(name="lin", hypothesis="h", family="logistic_regression", params={"C": [0.1, 1.0]}),
                     Experiment(name="gbt", hypothesis="h", family="hist_gradient_boosting", params={"max_iter": [30]})])
    kw = dict(label="target", metric="roc_auc", vm=None, groups={c: [c] for c in features}, kind="multiclass", classes=classes, say=lambda m: None)
    here = search(trials, {"lin": features, "gbt": features}, parts, **kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc, Client(lc, set_as_default=False) as c:
        there = search(trials, {"lin": features, "gbt": features}, parts, cluster=c, **kw)
    same = ["trial", "status", "metrics", "rule", "importance"]
    assert [{k: r.get(k) for k in same} for r in there] == [{k: r.get(k) for k in same} for r in here]
    assert all(r["status"] == "finished" and r["rule"]["classes"] == classes and r["metrics"]["roc_auc"] > 0.9 for r in here)


@pytest.mark.parametrize("which", ["diabetes", "wine"])
def test_each_kind_s_model_card_explains_its_model(which, request):
    "The card's explanation of a regression and of a multiclass model: every example adds up to the model's own score (`check_card_explanation`)."
    from test_explain_card import check_card_explanation
    r = request.getfixturevalue(which)
    x = check_card_explanation(r["card"], r["uri"], pd.read_parquet(r["run"] / "artifacts" / "features" / "training_set.parquet"))
    assert set(x["mean_abs"]["views"]) == {"request"}  # an inferred project has no feature store: every column is the request's
    if which == "diabetes":
        assert [e["why"] for e in x["examples"]] == ["the highest estimate", "the lowest estimate"]
        assert x["examples"][0]["estimate"] > x["examples"][1]["estimate"] and isinstance(x["base"], float)
    else:
        assert set(x["base"]) == {"0", "1", "2"}  # one base per class: each example starts from its decided class's
        decided = [e["decision"] for e in x["examples"]]
        assert len(set(decided)) == len(decided) >= 2 and all(e["why"] == f"decided {e['decision']}, the surest" for e in x["examples"])
