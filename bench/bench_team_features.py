#!/usr/bin/env python
"""Benchmark the shared online store: online lookups from Feast's SQLite online store (one machine) against Redis
(a team's, shared by every service replica), same definitions, same entities, same process.

The demo project's feature service (`conf/project.yaml`, `features:`) is built twice from the demo year with
`mlops_nb.features.build_store`: once on the embedded stores (SQLite online store), once with
`features.online_store: {type: redis}` pointing at a `redis-server` this script starts on a free loopback port
(no persistence) and stops. Both are materialized up to the year's last decision (`feature_store.materialize`,
what a promotion does for the shared store). Then, in one process, after warm-up calls and `gc.freeze()`, the
same random entities (keys of real flights, sampled once) are looked up in both stores, calls interleaved so that
neither store gets a quieter moment:

- `get_online_features`: `mlops_nb.feature_store.online_features`, Feast's own client call with the feature service;
- `service lookup`: `mlops_nb.deploy.FeatureLookup.online`, the model service's path (one `online_read` per view).

    .venv/bin/python bench/bench_team_features.py                 # writes bench/results/team_features.md and .json
    .venv/bin/python bench/bench_team_features.py --lookups 300
"""
import argparse, json, os, platform, random, shutil, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_features import demo_year, rss_mb  # noqa: E402  (the demo year as the ingest step delivers it)


def start_redis(folder: Path) -> tuple:
    "A throwaway redis-server on a free loopback port: (process, `127.0.0.1:PORT`)."
    from mlops_nb.config import free_port
    exe = shutil.which("redis-server")
    if exe is None: sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=open(folder / "redis.log", "w"), stderr=subprocess.STDOUT)
    import socket
    for _ in range(100):
        try: socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); break
        except OSError: time.sleep(0.1)
    return proc, f"127.0.0.1:{port}"


def build(lp, tables, run_dir: Path, end) -> dict:
    "The store of `lp` in `run_dir` (the layout a run leaves), materialized up to `end`: timings."
    from mlops_nb.features import build_store
    from mlops_nb.feature_store import materialize, open_store
    repo = run_dir / "artifacts" / "features" / "feature_repo"
    t0 = time.perf_counter()
    build_store(lp.project, tables, repo)
    t1 = time.perf_counter()
    materialize(open_store(repo), lp.project, end=end)  # the repository's own configuration: SQLite or Redis
    return {"build_seconds": t1 - t0, "materialize_seconds": time.perf_counter() - t1}


def quantiles(lat: list) -> dict:
    lat = sorted(lat)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    return {"p50_ms": q(0.5), "p99_ms": q(0.99), "calls": len(lat)}


def measure(calls: dict, batches: list) -> dict:
    "{store: latencies} of `calls[store](batch)` for every batch, the stores' calls interleaved (order alternating)."
    lat = {k: [] for k in calls}
    names = list(calls)
    for i, batch in enumerate(batches):
        for name in (names if i % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            calls[name](batch)
            lat[name].append((time.perf_counter() - t) * 1000)
    return {k: quantiles(v) for k, v in lat.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lookups", type=int, default=1000, help="calls of one entity per store (calls of 100: a fifth)")
    args = ap.parse_args()
    import gc
    import numpy as np, pandas as pd
    from mlops_nb.config import demo_project_file, load_project
    from mlops_nb.deploy import FeatureLookup
    from mlops_nb.features import entity_rows
    from mlops_nb.feature_store import join_keys, online_features, open_store
    load_before, started = os.getloadavg()[0], time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench-team-features-"))
    redis, url = start_redis(folder)
    try:
        demo = load_project(demo_project_file())
        shared = load_project(demo.file, data=demo.data, overrides=[("features.online_store", {"type": "redis", "connection_string": url})])
        tables = demo_year()
        rows = entity_rows(demo.project, tables["flights"])
        end = rows.event_timestamp.max()
        prep = {"sqlite": build(demo, tables, folder / "sqlite", end), "redis": build(shared, tables, folder / "redis", end)}
        keys = join_keys(demo.features)
        sample = rows.sample(5000, random_state=0)
        ents = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in sample[keys].to_dict("records")]
        stores = {n: (lp, open_store(folder / n / "artifacts" / "features" / "feature_repo")) for n, lp in (("sqlite", demo), ("redis", shared))}
        lookups = {n: FeatureLookup(lp, folder / n) for n, lp in (("sqlite", demo), ("redis", shared))}
        known = [e for e in ents if None not in e.values()]  # Feast's own call cannot take a missing key
        # the same answers from both, before timing them
        a, b = (pd.DataFrame(online_features(s, lp.project, known[:50], at=end)) for lp, s in stores.values())
        pd.testing.assert_frame_equal(a, b)
        rnd = random.Random(0)
        results = {}
        for n in (1, 100):
            batches = [rnd.sample(known, n) for _ in range(args.lookups if n == 1 else max(args.lookups // 5, 50))]
            feast_calls = {name: (lambda batch, lp=lp, s=s: online_features(s, lp.project, batch, at=end)) for name, (lp, s) in stores.items()}
            service_calls = {name: (lambda batch, fl=fl: fl.online({k: pd.Series([e[k] for e in batch]) for k in keys},
                                                                     np.full(len(batch), end.value))) for name, fl in lookups.items()}
            for calls in (feast_calls, service_calls):
                for batch in batches[:20]: [c(batch) for c in calls.values()]  # warm-up
            gc.collect(); gc.freeze()
            results[n] = {"get_online_features": measure(feast_calls, batches), "service lookup": measure(service_calls, batches)}
            gc.unfreeze()
    finally:
        redis.terminate(); redis.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)
    from importlib.metadata import version
    import redis as redis_client
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "host": platform.node(), "cores": os.cpu_count(),
            "python": platform.python_version(), "feast": version("feast"), "redis_py": redis_client.__version__,
            "redis_server": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2].removeprefix("v="),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "seconds": round(time.perf_counter() - started, 1), "lookups": args.lookups, "peak_rss_mb": round(rss_mb())}
    out = {"meta": meta, "preparation": prep, "results": results}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "team_features.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Shared online store: Redis against the embedded SQLite store", "",
             f"{meta['date']} · {meta['host']} · {meta['cores']} cores · Python {meta['python']} · feast {meta['feast']} · "
             f"redis-server {meta['redis_server']} · redis-py {meta['redis_py']}", "",
             f"Command: `.venv/bin/python bench/bench_team_features.py --lookups {args.lookups}` ({meta['seconds']:.0f} s in all; load "
             f"average {meta['load_before']} before, {meta['load_after']} after). The demo project's feature service (4 views, 16 "
             "features) built from the demo year twice, on the SQLite online store and on a local `redis-server` (loopback, no "
             "persistence), both materialized to the year's last decision; the same sampled flights' keys looked up in both, "
             "in one process, calls interleaved, after 20 warm-up calls and `gc.freeze()`. Both stores answered the same "
             "values for the same 50 entities before the timing.", "",
             "| path | entities per call | calls | SQLite p50 ms | SQLite p99 ms | Redis p50 ms | Redis p99 ms | Redis/SQLite p50 | Redis/SQLite p99 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, by_path in results.items():
        for path, r in by_path.items():
            s, d = r["sqlite"], r["redis"]
            lines.append(f"| {path} | {n} | {s['calls']} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {d['p50_ms']:.2f} | {d['p99_ms']:.2f} | "
                         f"{d['p50_ms'] / s['p50_ms']:.2f}x | {d['p99_ms'] / s['p99_ms']:.2f}x |")
    lines += ["", "Preparation (not timed above): " + "; ".join(
        f"{n}: build {p['build_seconds']:.1f} s, materialize of the year {p['materialize_seconds']:.1f} s" for n, p in prep.items())
        + f". Peak RSS {meta['peak_rss_mb']:,} MB.", ""]
    (HERE / "results" / "team_features.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
