#!/usr/bin/env python
"""Benchmark tracking on a team's server: `train.log_trial` into the embedded store (SQLite, artifacts in a local
folder) against the same calls into `mlflow server` on PostgreSQL with basic auth, proxying its artifacts (the
team setting, as `mlops-nb team up` starts it), in the same process, rounds alternated.

A trial is what the demo's search logs: a nested run under a parent, its parameters, metrics and importances in one
`log_batch`, two dataset inputs (the train and validation parts, with digests and schemas), the evaluation figure
(a PNG drawn once by `train.evaluation_figure`), the run ended. Both stores get the same trials; each is warmed
up with one trial first. PostgreSQL (Debian's package) and the server run on free loopback ports, in a temporary
folder, and are stopped at the end.

    .venv/bin/python bench/bench_team_tracking.py            # writes bench/results/team_tracking.md (about 1 minute)
    .venv/bin/python bench/bench_team_tracking.py --quick    # fewer trials, prints only
"""
import argparse, json, os, platform, secrets, statistics, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def demo_like_trial(rows: int = 2000) -> tuple[dict, dict]:
    "(a trial's result as `run_trial` returns it, the frames its dataset inputs describe), on made-up data of the demo's shape."
    from mlops_nb.train import evaluation_figure
    rng = np.random.default_rng(0)
    features = [f"feature_{i}" for i in range(24)]
    frame = pd.DataFrame(rng.normal(size=(rows, len(features))), columns=features).assign(late=rng.random(rows) < 0.2)
    y, p = frame["late"].to_numpy(), rng.random(rows)
    importance = {f: float(v) for f, v in zip(features, rng.random(len(features)))}
    result = {"experiment": "boosted_trees", "trial": 0, "family": "hist_gradient_boosting", "features": features,
              "params": {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31, "l2_regularization": 0.0, "min_samples_leaf": 20},
              "status": "finished", "error": None,
              "metrics": {"roc_auc": 0.71, "pr_auc": 0.42, "precision": 0.5, "recall": 0.4, "f1": 0.44, "net_value": 1234.5,
                          "net_value_per_decision": 0.61, "flagged_share": 0.1, "brier": 0.14, "log_loss": 0.45},
              "importance": {"features": importance, "groups": {"schedule": 0.02, "weather": 0.01, "carrier_rate": 0.005, "request": 0.001}},
              "fit_seconds": 1.0, "eval_seconds": 0.5, "seconds": 1.6,
              "figure": evaluation_figure(y, p, 0.5, None, importance, "boosted_trees #0 (validation)")}
    return result, {"train": frame.iloc[: rows // 2], "validation": frame.iloc[rows // 2:]}


def timed_trials(client, exp_id: str, parent: str, result: dict, inputs: list, n: int) -> list[float]:
    "Seconds of each of `n` `log_trial` calls."
    from mlops_nb.train import log_trial
    out = []
    for i in range(n):
        t = time.perf_counter()
        log_trial(client, exp_id, parent, {**result, "trial": i}, inputs, {"git_commit": "bench"}, None)
        out.append(time.perf_counter() - t)
    return out


def store(uri: str, artifacts: str | None):
    "(client, experiment id, parent run id) of a fresh experiment in the store at `uri`."
    from mlops_nb.registry import registry_client
    client = registry_client(uri)
    exp_id = client.create_experiment(f"bench-{secrets.token_hex(4)}", artifact_location=artifacts)
    return client, exp_id, client.create_run(exp_id, run_name="train").info.run_id


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="trials per store and round (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds (default 3)")
    ap.add_argument("--quick", action="store_true", help="5 trials, 1 round; prints only")
    args = ap.parse_args()
    if args.quick: args.trials, args.rounds = 5, 1
    from mlops_nb import team
    from mlops_nb.config import free_port, wait_for_server
    from mlops_nb.train import dataset_inputs
    result, frames = demo_like_trial()
    inputs = dataset_inputs(frames, "bench")
    d = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-"))
    os.chmod(d, 0o755)  # PostgreSQL runs as its own user, who enters it
    pg = team.Postgres(d / "postgres", free_port(), secrets.token_hex(8))
    password, port = secrets.token_hex(8), free_port()
    try:
        pg.start()
        cmd, env = team.mlflow_server(pg, d / "mlflow", port, admin_password=password)
        proc = team.start_daemon(d, "mlflow", cmd, env)
        team.check_ready("mlflow", proc, d / "logs" / "mlflow.log", wait_for_server(f"http://127.0.0.1:{port}/health", proc, 180))
        with patch.dict(os.environ, {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}):
            stores = {"embedded (SQLite, local artifacts)": store(f"sqlite:///{d / 'mlflow.db'}", (d / "mlartifacts").as_uri()),
                      "team (mlflow server on PostgreSQL, basic auth, proxied artifacts)": store(f"http://127.0.0.1:{port}", None)}
            seconds = {k: [] for k in stores}
            for k, (c, e, p) in stores.items(): timed_trials(c, e, p, result, inputs, 1)  # warm-up
            for _ in range(args.rounds):
                for k, (c, e, p) in stores.items(): seconds[k] += timed_trials(c, e, p, result, inputs, args.trials)
    finally:
        team.stop_daemon(d, "mlflow"); pg.stop()
        import shutil; shutil.rmtree(d, ignore_errors=True)
    rows = {k: {"trials": len(v), "median_ms": 1000 * statistics.median(v), "p90_ms": 1000 * float(np.percentile(v, 90)),
                "trials_per_second": len(v) / sum(v)} for k, v in seconds.items()}
    base = next(iter(rows.values()))["median_ms"]
    lines = [f"# `log_trial`: the embedded store against a team's MLflow server ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"`.venv/bin/python bench/bench_team_tracking.py` on {platform.machine()}, Python {platform.python_version()}, "
             f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; {args.trials} trials per store and round, {args.rounds} round(s) alternated, after one warm-up trial each.", "",
             "| store | trials | median ms | p90 ms | trials/s | median vs embedded |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {k} | {r['trials']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['trials_per_second']:.1f} | {r['median_ms'] / base:.2f}x |"
              for k, r in rows.items()]
    lines += ["", "A trial's logging is a handful of calls (create the run, one batch, the inputs, the figure, end the run). Embedded, "
              "each is a SQLite transaction committed to disk by this process (and the figure a file copy); on the server, each is an "
              "HTTP request checked against basic auth, committed by PostgreSQL, the figure sent through the server's artifact proxy. "
              "A trial of the demo trains for seconds (bench/results/train.md): either way, logging is a small share of a search."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        (HERE / "results" / "team_tracking.md").write_text(text)
        (HERE / "results" / "team_tracking.json").write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "args": vars(args), "stores": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
