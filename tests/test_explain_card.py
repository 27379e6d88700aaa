"""The model card explains the model: the train step's explanation of the selected model on the hold-out (mean
|contribution| per column and per view, the shares the registered version carries as tags, worked examples that add up
to the model's own score), on the demo's real run; and a model the explainer cannot read still trains, its card saying why.
`check_card_explanation` is shared with the kinds' tests (tests/test_kinds_train.py, tests/test_train.py), which hold
their own runs."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml


def own_score(model, X: pd.DataFrame, space: str, output=None) -> np.ndarray:
    "The model's own score of rows `X` in the explanation's `space`, computed from the pipeline, for the class `output` (multiclass)."
    k = None if output is None else [str(c) for c in model.classes_].index(str(output))
    pick = lambda s: np.asarray(s, float) if k is None else np.asarray(s, float)[:, k]
    if space == "probability": return pick(model.predict_proba(X)[:, 1] if k is None else model.predict_proba(X))
    if space == "target units": return np.asarray(model.predict(X), float)
    if space == "log of the estimate": return np.log(np.asarray(model.predict(X), float))
    return pick(model.decision_function(X))  # log-odds, of the positive class or of each class


def registered(uri: str, name: str, version: str):
    "(scikit-learn pipeline, version tags) of a registered version."
    import mlflow
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    mv = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(name, version)
    return mlflow.sklearn.load_model(f"models:/{name}/{version}"), mv.tags


def check_card_explanation(card: dict, uri: str, training_set: pd.DataFrame) -> dict:
    "Assert what every explained card holds, against the registered model and its tags; the card's explanation."
    x, kind = card["explanation"], card["label"]["kind"]
    assert x["explainable"] is True and x["method"] in ("tree_shap", "linear") and 0 < x["rows"] <= 2000, x
    model, tags = registered(uri, card["registered"]["name"], card["registered"]["version"])
    columns = list(model.feature_names_in_)
    assert set(x["mean_abs"]["columns"]) == set(columns) and all(v >= 0 for v in x["mean_abs"]["columns"].values())
    assert sum(x["mean_abs"]["views"].values()) == pytest.approx(sum(x["mean_abs"]["columns"].values()))  # a view: its columns' sum
    assert sum(x["shares"]["views"].values()) == pytest.approx(1.0) and len(x["shares"]["columns"]) == min(10, len(columns))
    # the tags monitoring reads: JSON, the card's shares
    assert json.loads(tags["explanation_view_shares"]) == pytest.approx(x["shares"]["views"])
    assert json.loads(tags["explanation_column_shares"]) == pytest.approx(x["shares"]["columns"])
    # the reference case the service explains from: the card's, and its score is the base
    assert json.loads(tags["explanation_reference"]) == x["reference"] and set(x["reference"]) == set(columns)
    # each worked example adds up to the model's own score of its record, and names its largest factors
    assert x["examples"], x
    for e in x["examples"]:
        row = pd.DataFrame([e["values"]])[columns].astype(training_set[columns].dtypes.to_dict())
        score = own_score(model, row, x["space"], e["output"])[0]
        assert e["base"] + sum(e["contributions"].values()) == pytest.approx(score, abs=1e-6), e
        assert e["score"] == pytest.approx(score, abs=1e-6)
        sizes = sorted(map(abs, e["contributions"].values()), reverse=True)[:5]
        assert [abs(f["contribution"]) for f in e["factors"]] == pytest.approx(sizes, abs=1e-6)
        if kind == "binary": assert e["probability"] == pytest.approx(model.predict_proba(row)[0, 1]) and e["flagged"] == (e["probability"] >= e["threshold"])
        if kind == "multiclass": assert e["output"] == e["decision"]  # explained for the class decided
        if kind == "regression": assert e["estimate"] == pytest.approx(float(model.predict(row)[0]))
    return x


def test_the_demo_card_explains_its_model_per_view(demo_week_run):
    "The demo's first week: the card's explanation names the project's feature views, and the model card page shows it."
    assert demo_week_run.code == 0, demo_week_run.out
    folder = demo_week_run.run_dir / "artifacts"
    card = json.loads((folder / "train" / "model_card.json").read_text())
    x = check_card_explanation(card, f"sqlite:///{demo_week_run.root / 'mlflow.db'}", pd.read_parquet(folder / "features" / "training_set.parquet"))
    project = yaml.safe_load((demo_week_run.run_dir / "project.yaml").read_text())
    assert set(x["mean_abs"]["views"]) <= {"request", *project["features"]["views"]} and "weather" in x["mean_abs"]["views"]
    flagged = x["examples"][0]
    ids = json.loads((folder / "features" / "outputs.json").read_text())["outputs"]["training_set.parquet"]["ids"]
    assert flagged["why"] == "flagged, with the highest probability" and flagged["flagged"] and list(flagged["case"]) == ids  # which flight
    assert all(f.get("description") for f in flagged["factors"]), flagged["factors"]  # in the project's words
    html = (demo_week_run.run_dir / "reports" / "model_card.html").read_text()  # the page the run rendered
    assert "Why it decides as it does" in html and "What raised it most" in html and "Not explainable" not in html
    from mlops_nb.config import load_project
    from mlops_nb.explain import describe_columns
    from mlops_nb.reports import esc
    top = max(x["mean_abs"]["columns"], key=x["mean_abs"]["columns"].get)
    assert esc(describe_columns(load_project(demo_week_run.run_dir / "project.yaml").project.features)[top]) in html  # the input in words


def test_a_model_the_explainer_cannot_read_still_trains_and_its_card_says_why(demo_week_run, tmp_path, monkeypatch):
    "The train step, in this process, on a copy of the demo run's features, with a family no explainer reads (nearest neighbours)."
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from mlops_nb import train
    from mlops_nb.config import Step, load_project
    assert demo_week_run.code == 0, demo_week_run.out
    run = tmp_path / "run"
    shutil.copytree(demo_week_run.run_dir / "artifacts" / "features", run / "artifacts" / "features")
    data = yaml.safe_load((demo_week_run.run_dir / "project.yaml").read_text())
    data["root"], data["train"] = str(tmp_path), {"parallel": 1, "experiments": [
        {"name": "neighbours", "family": "random_forest", "hypothesis": "The nearest flights say it.", "params": {}}]}
    (run / "project.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    made = train.make_model
    monkeypatch.setattr(train, "make_model", lambda family, params, numeric, categorical, seed=0, kind="binary": Pipeline(
        [("transforms", made(family, params, numeric, categorical, seed, kind)[0]), ("model", KNeighborsClassifier(15))]))
    card = train.run_step(Step("train", load_project(run / "project.yaml"), run, standalone=True))
    assert card["explanation"] == {"explainable": False, "reason": card["explanation"]["reason"]}
    assert "KNeighborsClassifier cannot be explained" in card["explanation"]["reason"]
    written = json.loads((run / "artifacts" / "train" / "model_card.json").read_text())
    assert written["explanation"] == card["explanation"] and str(written["registered"]["version"]) == "1"
    _, tags = registered(f"sqlite:///{run.resolve() / 'mlflow.db'}", card["registered"]["name"], "1")
    assert "explanation_view_shares" not in tags and "explanation_column_shares" not in tags  # nothing for monitoring to judge by
