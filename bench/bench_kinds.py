#!/usr/bin/env python
"""Every kind of target: the champion a zero-config run trains, against a plain baseline measured in the same run.

For each table, in a scratch folder: `mlops-nb run --data FILE --target COL [--kind K] --until train` (the command a
new user types), then the champion's metrics on its frozen hold-out, read from the run's model card. The peer is
the baseline anyone would write first: a linear model (`Ridge` for a regression, `LogisticRegression` for classes)
on one-hot categories and standardised numbers, measured two ways in the same run: scikit-learn's
`cross_validate` in 5 folds over the whole table (what the baseline usually reports), and fitted on the run's
train and validation parts and scored on the very same hold-out as the champion (the like-for-like comparison).
Ratios are champion / baseline on the same hold-out: above 1 is better for R² and ROC AUC and accuracy, below 1
for RMSE, MAE and log loss.

    .venv/bin/python bench/bench_kinds.py                                        # diabetes and wine (bundled with scikit-learn)
    .venv/bin/python bench/bench_kinds.py --data F.csv --target COL --kind K     # another table, added as a row
    .venv/bin/python bench/bench_kinds.py --project conf/delay_minutes.yaml --project conf/delay_band.yaml
                                                                                 # the demo's questions, trained on January 2013

A project is run in a scratch folder on the demo warehouse (`--set root=...`), its window cut to January; its
5-fold figure is over the run's training set (the features the champion uses), since its table is the
warehouse's join, not a file.

Writes bench/results/kinds.md and kinds.json (rows of other tables are kept: each table is one row, replaced when
measured again).
"""
import argparse, json, platform, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
METRICS = {"regression": ("r2", "rmse", "mae"), "multiclass": ("roc_auc", "accuracy", "log_loss"),
           "binary": ("roc_auc", "log_loss", "f1")}
LOWER = {"rmse", "mae", "log_loss"}


def bundled(name: str) -> pd.DataFrame:
    from sklearn.datasets import load_diabetes, load_wine
    return {"diabetes": load_diabetes, "wine": load_wine}[name](as_frame=True).frame


def baseline(kind: str):
    "The plain peer: one-hot categories and standardised numbers in front of a linear model."
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    prep = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), make_column_selector(dtype_include=object)),
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), make_column_selector(dtype_include=np.number)))
    return make_pipeline(prep, Ridge() if kind == "regression" else LogisticRegression(max_iter=2000))


def baseline_scores(kind: str, y, model, X) -> dict:
    "The baseline's metrics of `kind` on rows X with truth y."
    from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score
    if kind == "regression":
        e = model.predict(X)
        return {"r2": r2_score(y, e), "rmse": float(np.sqrt(((y - e) ** 2).mean())), "mae": mean_absolute_error(y, e)}
    P = model.predict_proba(X)
    if kind == "binary":
        return {"roc_auc": roc_auc_score(y, P[:, 1]), "log_loss": log_loss(y, P, labels=model.classes_),
                "f1": f1_score(y, model.predict(X), pos_label=model.classes_[1])}
    return {"roc_auc": roc_auc_score(y, P, multi_class="ovr", labels=model.classes_), "accuracy": accuracy_score(y, model.predict(X)),
            "log_loss": log_loss(y, P, labels=model.classes_)}


def cross_validated(kind: str, df: pd.DataFrame, target: str) -> tuple:
    "5-fold cross-validated baseline metrics over the whole table, and the seconds it took."
    from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
    X, y = df.drop(columns=target), df[target]
    if kind != "regression": y = y.astype(str)
    scoring = {"regression": {"r2": "r2", "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error"},
               "multiclass": {"roc_auc": "roc_auc_ovr", "accuracy": "accuracy", "log_loss": "neg_log_loss"},
               "binary": {"roc_auc": "roc_auc", "log_loss": "neg_log_loss", "f1": "f1_macro"}}[kind]
    folds = KFold(5, shuffle=True, random_state=0) if kind == "regression" else StratifiedKFold(5, shuffle=True, random_state=0)
    t0 = time.perf_counter()
    got = cross_validate(baseline(kind), X, y, cv=folds, scoring=scoring)
    return {m: float(abs(got[f"test_{m}"].mean())) for m in scoring}, time.perf_counter() - t0


def run_until_train(name: str, args: list, cwd: Path) -> tuple:
    "`mlops-nb run ARGS --until train --no-reports` in `cwd`: (its run folder, the seconds it took)."
    t0 = time.perf_counter()
    p = subprocess.run([str(BIN / "mlops-nb"), "run", *map(str, args), "--until", "train", "--no-reports"], cwd=cwd,
                       capture_output=True, text=True, timeout=3600)
    if p.returncode != 0: raise SystemExit(f"{name}: the run failed:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return next(r for r in (cwd / "runs").iterdir() if r.is_dir() and not r.name.startswith(("_", "."))), time.perf_counter() - t0


def measure_table(name: str, df: pd.DataFrame, target: str, kind: str) -> dict:
    "Run the zero-config pipeline up to train on `df`; the champion's hold-out metrics and the baseline's, side by side."
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        df.to_csv(d / "data.csv", index=False)
        run, seconds = run_until_train(name, ["--data", "data.csv", "--target", target, "--kind", kind], d)
        return measure_run(name, run, target, kind, df, seconds)


def measure_project(file: Path) -> dict:
    "Run a project of the demo (trained on January 2013) up to train in a scratch folder; champion against baseline."
    from mlops_nb.config import load_project
    design = load_project(file).design
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        run, seconds = run_until_train(file.name, ["--project", file.resolve(), "--set", f"root={d}",
                                                   "--set", f"sources.warehouse.url=sqlite:///{HERE.parent / 'data' / 'warehouse.db'}",
                                                   "--set", "ingest.window.end=2013-02-01"], d)
        return measure_run(f"{file.name} (flights, January 2013)", run, design.target.name, design.target.kind, None, seconds)


def measure_run(name: str, run: Path, target: str, kind: str, table: pd.DataFrame, run_seconds: float) -> dict:
    "The run's champion on its hold-out, and the baseline on the same parts and in 5 folds (over `table`, or the training set)."
    from mlops_nb.config import Split
    from mlops_nb.train import check_holdout, split_frame
    card = json.loads((run / "artifacts" / "train" / "model_card.json").read_text())
    project = yaml.safe_load((run / "project.yaml").read_text())
    train = pd.read_parquet(run / "artifacts" / "features" / "training_set.parquet")
    meta = json.loads((run / "artifacts" / "features" / "outputs.json").read_text())["outputs"]["training_set.parquet"]
    time_column, ids = meta.get("time_column"), meta.get("ids") or []
    parts = split_frame(train, Split(**(project.get("train") or {}).get("split", {})), target, time_column, ids, kind)
    assert check_holdout(parts, time_column, ids) == card["lineage"]["holdout_digest"], "the hold-out split again differs from the run's"
    fit = pd.concat([parts["train"], parts["validation"]], ignore_index=True)
    features = [c for c in card["selected"]["features"]]
    cast = (lambda s: s.astype(str)) if kind != "regression" else (lambda s: s.astype(float))
    peer = baseline(kind).fit(fit[features], cast(fit[target]))
    same = baseline_scores(kind, cast(parts["holdout"][target]).to_numpy(), peer, parts["holdout"][features])
    df = table if table is not None else train[[*features, target]]
    cv, cv_seconds = cross_validated(kind, df, target)
    champ = {m: card["holdout"][m] for m in METRICS[kind]}
    return {"table": name, "kind": kind, "rows": len(df), "holdout_rows": len(parts["holdout"]),
            "champion": {"experiment": card["selected"]["experiment"], "family": card["selected"]["family"], **champ},
            "baseline_same_holdout": same, "baseline_cv5": cv,
            "ratio": {m: champ[m] / same[m] if same[m] else None for m in METRICS[kind]},
            "decision": card["registered"]["decision"], "run_seconds": run_seconds, "baseline_cv_seconds": cv_seconds}


def markdown(rows: list[dict], meta: dict) -> str:
    L = ["# Every kind of target: the zero-config champion against a linear baseline", "",
         f"Measured {meta['when']} on {meta['machine']} (Python {meta['python']}), `{meta['command']}`.", "",
         "Champion: the model `mlops-nb run --data FILE --target COL --kind K --until train` selects and registers, on its "
         "frozen hold-out. Baseline: one-hot + standardised inputs into `Ridge` / `LogisticRegression`, fitted on the run's "
         "train and validation parts and scored on the same hold-out (ratio = champion / baseline), and in 5-fold "
         "cross-validation over the whole table (scikit-learn's `cross_validate`). Lower is better for RMSE, MAE and log loss.", "",
         "| table | kind | rows (hold-out) | selected | metric | champion | baseline, same hold-out | ratio | baseline, 5-fold CV |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for i, m in enumerate(METRICS[r["kind"]]):
            head = (f"| {r['table']} | {r['kind']} | {r['rows']:,} ({r['holdout_rows']:,}) | {r['champion']['experiment']} "
                    f"({r['champion']['family']}), {r['decision']} |") if i == 0 else "| | | | |"
            ratio = r["ratio"][m]
            L.append(f"{head} {m}{' (lower is better)' if m in LOWER else ''} | {r['champion'][m]:.4f} | "
                     f"{r['baseline_same_holdout'][m]:.4f} | {'—' if ratio is None else f'{ratio:.2f}x'} | {r['baseline_cv5'][m]:.4f} |")
    L += ["", "A hold-out of a small table holds few rows: its metrics move by several hundredths with the split; the "
          "5-fold figure is the baseline's mean over the whole table, for scale."]
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="a CSV to measure instead of the bundled tables")
    ap.add_argument("--target", help="with --data: the target column")
    ap.add_argument("--kind", choices=["binary", "multiclass", "regression"], help="with --data: the kind of target")
    ap.add_argument("--name", help="with --data: the table's name in the results (default: the file's name)")
    ap.add_argument("--project", action="append", type=Path, default=[], help="a project of the demo (repeatable), trained on January 2013")
    a = ap.parse_args(argv)
    if a.data and not (a.target and a.kind): ap.error("--data needs --target and --kind")
    tables = ([(a.name or Path(a.data).name, pd.read_csv(a.data), a.target, a.kind)] if a.data else [] if a.project else
              [("diabetes (scikit-learn)", bundled("diabetes"), "target", "regression"),
               ("wine (scikit-learn)", bundled("wine"), "target", "multiclass")])
    out_json = HERE / "results" / "kinds.json"
    kept = {r["table"]: r for r in (json.loads(out_json.read_text())["rows"] if out_json.exists() else [])}
    for name, df, target, kind in tables:
        print(f"measuring {name} ({kind}) ...", flush=True)
        kept[name] = measure_table(name, df, target, kind)
    for file in a.project:
        print(f"measuring {file} ...", flush=True)
        row = measure_project(file)
        kept[row["table"]] = row
    meta = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, 2 cores shared",
            "python": platform.python_version(), "command": "python bench/bench_kinds.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    rows = list(kept.values())
    out_json.parent.mkdir(exist_ok=True)
    out_json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=float) + "\n")
    (HERE / "results" / "kinds.md").write_text(text := markdown(rows, meta))
    print(text)


if __name__ == "__main__":
    main()
