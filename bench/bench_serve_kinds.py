#!/usr/bin/env python
"""Benchmark serving every kind of target: `mlops-nb serve` against `mlflow models serve` on the same regression and
multiclass champions, same machine, same load generator (`bench_serve.load`), one worker each.

The models are those of tests/test_kinds_serve.py, built the same way (`kind_project`): boosted trees on scikit-learn's
bundled diabetes (regression) and wine (multiclass) tables, with a categorical column and missing values, registered
with the tags training writes (`kind`, `decision_rule`). There is no feature store: a request is the model's inputs,
so both servers get the same rows, ours as `{"records": [...]}` (validated, scored through the lean path, decided by
the version's rule, logged to a scratch SQLite log), MLflow's as `dataframe_split` (`predict`: the estimate, or the most
probable class; no decision rule, no log). Binary, with online features, is `bench/bench_serve.py`'s.

The two servers of a kind run at once, with `OMP_NUM_THREADS=1`, each warmed up; the cases alternate between them (ours,
then MLflow's, for each case), so a change in the machine's load touches both. rps = answered requests / wall time.

    .venv/bin/python bench/bench_serve_kinds.py           # writes bench/results/serve_kinds.md and .json (about 2 minutes)
    .venv/bin/python bench/bench_serve_kinds.py --quick   # fewer requests (writes bench/results/serve_kinds.quick.tmp)
"""
import argparse, json, os, platform, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
from bench_serve import BIN, load, start, stop  # noqa: E402  (one load generator and server handling for both benchmarks)

CASES = ((1, 1), (1, 8), (100, 2))  # (records per request, concurrency)


def bodies(p, size: int) -> tuple:
    "(our bodies, MLflow's bodies) of `size` consecutive rows each, the same rows for both, exact numbers."
    from test_kinds_serve import records_of
    rows = records_of(p.df, p.features)
    chunks = [rows[i:i + size] for i in range(0, len(rows) - size + 1, max(1, size // 4))]
    ours = [json.dumps({"records": c}).encode() for c in chunks]
    theirs = [json.dumps({"dataframe_split": {"columns": p.features, "data": [list(r.values()) for r in c]}}).encode() for c in chunks]
    return ours, theirs


def bench_kind(root: Path, kind: str, n1: int, n100: int) -> dict:
    "Start both servers on the `kind` champion, warm them up, run the cases alternately; {case: {server: result}} and facts."
    from mlops_nb.config import free_port
    from test_kinds_serve import kind_project
    p = kind_project(root / kind, kind)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": p.uri, "MLFLOW_REGISTRY_URI": p.uri}
    ports = {"ours": free_port(), "mlflow": free_port()}
    procs = {
        "ours": start("mlops-nb serve", [str(BIN / "mlops-nb"), "serve", "--project", str(p.file), "--port", str(ports["ours"]), "--refresh", "0",
                                         "--prediction-log", str(root / f"{kind}_predictions.db")], env, ports["ours"], "/ready", root / f"{kind}_ours.log"),
        "mlflow": start("mlflow models serve", [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{p.name}@champion", "--env-manager", "local",
                                                "-p", str(ports["mlflow"]), "-h", "127.0.0.1", "-w", "1"], env, ports["mlflow"], "/ping",
                        root / f"{kind}_mlflow.log"),
    }
    try:
        import requests
        inference = requests.get(f"http://127.0.0.1:{ports['ours']}/metadata", timeout=10).json()["inference"]
        paths = {"ours": "/predict", "mlflow": "/invocations"}
        results = {}
        for size, conc in CASES:
            ours, theirs = bodies(p, size)
            sent = {"ours": ours, "mlflow": theirs}
            n = n1 if size == 1 else n100
            for name in ("ours", "mlflow"):  # warm-up, then the measured case, alternating the servers
                load(ports[name], paths[name], sent[name], max(20, n // 10), conc, size)
            results[f"{size}x{conc}"] = {name: load(ports[name], paths[name], sent[name], n, conc, size) for name in ("ours", "mlflow")}
        return {"kind": kind, "model": f"models:/{p.name}@champion", "rows": len(p.df), "features": len(p.features), "inference": inference,
                "rule": p.rule, "start_seconds": {k: v.start_seconds for k, v in procs.items()}, "cases": results}
    finally:
        for proc in procs.values(): stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests: a smoke run")
    args = ap.parse_args()
    n1, n100 = (100, 20) if args.quick else (1500, 150)
    started, load0 = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        runs = [bench_kind(Path(d), kind, n1, n100) for kind in ("regression", "multiclass")]
    load1 = os.getloadavg()
    import mlflow, sklearn, treelite
    cmd = "python bench/bench_serve_kinds.py" + (" --quick" if args.quick else "")
    lines = ["# Serving every kind of target: `mlops-nb serve` vs `mlflow models serve`, one worker each", "",
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"
             f" · mlflow {mlflow.__version__} · scikit-learn {sklearn.__version__} · treelite {treelite.__version__}", "",
             f"Command: `{cmd}` ({time.time() - started:.0f} s in all; load average {load0[0]:.2f} before, {load1[0]:.2f} after, 1-minute, "
             f"on {os.cpu_count()} cores shared with the load generator and anything else on the machine).", "",
             "Models: boosted trees (`HistGradientBoostingRegressor` on diabetes, `HistGradientBoostingClassifier` on wine's three "
             "cultivars), as tests/test_kinds_serve.py builds and registers them. Ours validates each record, scores it (lean path "
             "below), decides by the version's rule (the estimate plus the value-optimal offset; the class of best expected value) and "
             "commits each pass's rows to a scratch SQLite log before answering; MLflow's answers `predict` (the estimate; the most "
             "probable class), no rule, no log. Same rows to both.", "",
             "| kind | our inference | records / request | concurrency | ours req/s | MLflow req/s | **ours / MLflow** | ours p50 / p99 ms | MLflow p50 / p99 ms | errors (ours, MLflow) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        for case, by in r["cases"].items():
            size, conc = case.split("x")
            o, m = by["ours"], by["mlflow"]
            lines.append(f"| {r['kind']} | {r['inference']} | {size} | {conc} | {o['rps']:,.0f} | {m['rps']:,.0f} | **{o['rps'] / m['rps']:.2f}x** | "
                         f"{o['p50']:.1f} / {o['p99']:.1f} | {m['p50']:.1f} / {m['p99']:.1f} | {o['errors']}, {m['errors']} |")
    errs = [f"{r['kind']} {case} {name}: {res['first_error']}" for r in runs for case, by in r["cases"].items() for name, res in by.items() if res["errors"]]
    if errs: lines += ["", "Errors: " + "; ".join(errs)]
    lines.append("")
    out = HERE / "results" / ("serve_kinds.quick.tmp" if args.quick else "serve_kinds.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    if not args.quick:
        out.with_suffix(".json").write_text(json.dumps({"command": cmd, "runs": runs}, indent=1, default=str))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
