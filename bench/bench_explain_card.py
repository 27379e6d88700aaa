#!/usr/bin/env python
"""What explaining the model card adds to the train step: `mlops_nb.train.explain_holdout` on the demo's hold-out,
against fitting the same model and measuring its permutation importance, in the same process and on the same parts.

The data is the demo year's training set as the features step wrote it (the newest
`runs/*/artifacts/features/training_set.parquet`; run `make pipeline` first, or pass `--training-set PATH`). It is
split as the train step splits it (the demo's `train.split`, by time, the frozen hold-out last). For each family the
demo's search can select (boosted trees with the defaults and with the `all_views` search's largest leaves, the
random forest, the linear baseline), with every feature the features step recorded (its `outputs.json`):

- `fit`: fitting the pipeline on the train part (`make_model`, single-threaded, as trials below 50,000 rows run);
- `importance`: `trial_importance` on 5,000 validation rows, per column and per view, as every trial measures it;
- `explain`: `explain_holdout`, what the step adds once, for the selected model (at most 2,000 hold-out rows,
  the walk of `explain` is cheap enough for every tree family), with the rows it explained.

The ratios are `explain / fit` and `explain / importance`: what the card's explanation costs against what training
that one model costs anyway.

    .venv/bin/python bench/bench_explain_card.py
    .venv/bin/python bench/bench_explain_card.py --training-set runs/<run>/artifacts/features/training_set.parquet

Writes bench/results/explain_card.md and explain_card.json.
"""
import argparse, json, os, platform, sys, time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the step's trials run on a busy machine
import pandas as pd

HERE = Path(__file__).resolve().parent
CANDIDATES = [("hist_gradient_boosting", {"learning_rate": 0.1}),
              ("hist_gradient_boosting", {"learning_rate": 0.1, "max_leaf_nodes": 63, "l2_regularization": 1.0}),
              ("random_forest", {"min_samples_leaf": 20}), ("logistic_regression", {"C": 1.0})]


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def main():
    from mlops_nb.config import demo_project_file, load_project
    from mlops_nb.train import (EXPLAIN_ROWS, explain_holdout, feature_groups, feature_kinds, make_model, split_frame, trial_importance,
                                truth)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--training-set", type=Path, help="a features step's training_set.parquet (default: the newest under runs/)")
    args = ap.parse_args()
    path = args.training_set or max((HERE.parent / "runs").glob("*/artifacts/features/training_set.parquet"), key=lambda p: p.stat().st_mtime)
    project = load_project(demo_project_file()).project
    frame = pd.read_parquet(path)
    views = json.loads((path.parent / "feature_views.json").read_text()) if (path.parent / "feature_views.json").exists() else {}
    label, ids = project.design.target.name, project.features.row_id
    recorded = json.loads((path.parent / "outputs.json").read_text())["outputs"]["training_set.parquet"]["features"]
    features = [c for c in recorded if c in frame.columns and not feature_kinds(frame, [c])["skipped"]]  # as `TrainingSet.features`
    kinds = feature_kinds(frame, features)
    columns = kinds["categorical"] + kinds["numeric"]
    parts = split_frame(frame, project.train.split, label, "event_timestamp")
    groups = feature_groups(views, columns)
    valid = parts["validation"].sample(min(len(parts["validation"]), 5000), random_state=0)
    rows = []
    for family, params in CANDIDATES:
        model, fit = timed(lambda: make_model(family, params, kinds["numeric"], kinds["categorical"]).fit(parts["train"][columns], truth(parts["train"], label, "binary")))
        rule = {"threshold": 0.25}
        _, importance = timed(lambda: trial_importance(model, valid, columns, label, "roc_auc", project.design.value_model, rule, groups))
        x, explain = timed(lambda: explain_holdout(model, columns, parts["holdout"], parts["train"], "binary", rule, project.features, ids))
        rows.append({"family": family, "params": params, "rows_explained": x["rows"], "fit_s": round(fit, 2), "importance_s": round(importance, 2),
                     "explain_s": round(explain, 2), "explain_per_fit": round(explain / fit, 3), "explain_per_importance": round(explain / importance, 3),
                     "view_shares": {v: round(s, 3) for v, s in x["shares"]["views"].items()}})
        print(json.dumps(rows[-1]), flush=True)
    out = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
           "training_set": str(path), "rows": {k: len(v) for k, v in parts.items()}, "columns": len(columns), "at_most": EXPLAIN_ROWS, "results": rows}
    (HERE / "results" / "explain_card.json").write_text(json.dumps(out, indent=1))
    lines = ["# What the model card's explanation adds to the train step", "",
             f"{out['when']}, {out['machine']}; the demo's training set ({out['rows']['train']:,} train, {out['rows']['validation']:,} validation, "
             f"{out['rows']['holdout']:,} hold-out rows, {len(columns)} columns). `explain_holdout` explains at most {EXPLAIN_ROWS:,} hold-out rows "
             "(fewer for a deep forest); `fit` and `importance` (5,000 validation rows) are what training that model costs anyway, in the same process.", "",
             "| model | rows explained | fit s | importance s | explain s | explain / fit | explain / importance |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['family']} {r['params']} | {r['rows_explained']:,} | {r['fit_s']} | {r['importance_s']} | {r['explain_s']} | {r['explain_per_fit']} | "
              f"{r['explain_per_importance']} |" for r in rows]
    (HERE / "results" / "explain_card.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
