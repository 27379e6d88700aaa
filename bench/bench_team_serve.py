#!/usr/bin/env python
"""Benchmark the shared prediction log: requests per second of one `mlops-nb serve` replica against two replicas that
share one PostgreSQL log, with one replica on the default SQLite log as the reference; the same champion, the same
machine, the same load generator (bench/bench_serve.py's `load`, imported), in the same run.

- The champion: the demo's first week trained to a registered model (tests/conftest.py's `train_week_champion`, in a
  scratch folder: about a minute), served from that run's snapshot and feature store.
- The log's server: a throwaway PostgreSQL cluster of Debian's package on a free loopback port (tests/servers.py's
  `Postgres`, as the tests start it: `fsync=off`, so a commit waits for no disk), one database per configuration;
  the replicas get `PGUSER`/`PGPASSWORD` in their environment and the URL without them.
- The configurations, all started at once and measured in turn: `sqlite` (one replica, a scratch SQLite log),
  `postgresql, 1 replica`, `postgresql, 2 replicas` (two processes on two ports, one database).
- The load: `concurrency` keep-alive connections in all, spread evenly over a configuration's replicas (each replica
  gets `concurrency / replicas` connections and `requests / replicas` requests, at the same time); rps = the answered
  requests of all replicas / the longest replica's wall time; p50 and p99 are the worse replica's. Cases: single-record
  requests at concurrency 8, and 100-record requests at concurrency 4; rounds alternate the configurations' order;
  medians of the rounds. Each request times out after 30 s and each case after 180 s.
- At the end every PostgreSQL database must hold one row per record answered (warm-up included): the figures are for
  a log that missed nothing.

    .venv/bin/python bench/bench_team_serve.py            # writes bench/results/team_serve.md and .json (about 5 minutes)
    .venv/bin/python bench/bench_team_serve.py --quick    # fewer requests, one round (writes team_serve.quick.tmp)
"""
import argparse, json, os, platform, statistics, sys, tempfile, threading, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests")]
from bench_serve import BIN, code_state, get, load, server_env, start, stop  # the service's start and the load generator of bench_serve
from conftest import WAREHOUSE, mlops_nb, train_week_champion
from servers import Postgres

BATCH = 100
CASES = ((1, 8), (BATCH, 4))  # (records per request, concurrency)
CONFIGS = ("sqlite", "postgresql, 1 replica", "postgresql, 2 replicas")


def spread(ports: list, path: str, bodies: list, n: int, concurrency: int, size: int) -> dict:
    "`load` on every replica at once, the connections and requests shared evenly; the replicas' figures combined."
    got = [None] * len(ports)

    def one(i):
        got[i] = load(ports[i], path, bodies[i::len(ports)], n // len(ports), concurrency // len(ports), size)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(ports))]
    for t in threads: t.start()
    for t in threads: t.join()
    answered, wall = sum(g["n"] for g in got), max(g["wall"] for g in got)
    return {"n": answered, "errors": sum(g["errors"] for g in got), "first_error": next((g["first_error"] for g in got if g["errors"]), None),
            "rps": answered / wall, "p50": max(g["p50"] for g in got), "p99": max(g["p99"] for g in got),
            "per_replica": [round(g["rps"], 1) for g in got]}


def request_bodies(run_dir: Path, fields: list) -> dict:
    "Pre-encoded bodies of the week's flights: {records per request: [bytes]}, single flights and 100 consecutive ones."
    import pandas as pd
    flights = pd.read_parquet(run_dir / "artifacts" / "ingest" / "flights.parquet", columns=fields).dropna()
    records = json.loads(flights.to_json(orient="records", date_format="iso"))
    return {1: [json.dumps({"records": [r]}).encode() for r in records],
            BATCH: [json.dumps({"records": records[s:s + BATCH]}).encode() for s in range(0, len(records) - BATCH + 1, 25)]}


def logged_rows(url: str) -> int:
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    try:
        with engine.connect() as db: return db.execute(text("select count(*) from predictions")).scalar()
    finally: engine.dispose()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer requests and one round: a smoke run")
    ap.add_argument("--requests", type=int, help="single-record requests per case (default 3000; quick 400)")
    ap.add_argument("--batches", type=int, help="100-record requests per case (default 240; quick 40)")
    ap.add_argument("--rounds", type=int, help="rounds, the configurations' order alternated (default 5; quick 1)")
    args = ap.parse_args()
    n1, n100 = args.requests or (400 if args.quick else 3000), args.batches or (40 if args.quick else 240)
    rounds = args.rounds or (1 if args.quick else 5)
    out = HERE / "results" / ("team_serve.quick.tmp" if args.quick else "team_serve.md")
    cmd_line = ".venv/bin/python bench/bench_team_serve.py" + " ".join(
        [""] + (["--quick"] if args.quick else []) + [f"--{k} {v}" for k, v in (("requests", args.requests), ("batches", args.batches),
                                                                               ("rounds", args.rounds)) if v])
    started, load0 = time.time(), os.getloadavg()
    say = lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True)
    code, text = mlops_nb("demo", "init")  # the warehouse, once (idempotent)
    if code: raise SystemExit(text)
    pg, procs = Postgres(), {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-team-serve-") as d:
            folder = Path(d)
            say("training the week's champion ...")
            project, uri, run_dir = train_week_champion(folder, WAREHOUSE)
            code0 = code_state()
            credentials = {"PGUSER": "postgres", "PGPASSWORD": pg.password}
            os.environ.update(credentials)  # this process counts the rows at the end
            bare = lambda url: url.replace(f"postgres:{pg.password}@", "")
            logs = {"postgresql, 1 replica": bare(pg.create_database("one_replica")), "postgresql, 2 replicas": bare(pg.create_database("two_replicas"))}
            env = {**server_env(uri), **credentials}
            from mlops_nb.config import free_port
            ports = {"sqlite": [free_port()], "postgresql, 1 replica": [free_port()], "postgresql, 2 replicas": [free_port(), free_port()]}
            say("starting the replicas ...")
            for config in CONFIGS:
                for k, port in enumerate(ports[config]):
                    log = str(folder / "predictions.db") if config == "sqlite" else logs[config]
                    procs[(config, k)] = start(f"{config} replica {k + 1}", [str(BIN / "mlops-nb"), "serve", "--project", str(project), "--port", str(port),
                                               "--run-dir", str(run_dir), "--prediction-log", log], env, port, "/ready", folder / f"serve-{port}.log")
            fields = json.loads(get(ports["sqlite"][0], "/metadata", 10)[1])["request_fields"]
            bodies = request_bodies(run_dir, fields)
            answered = {config: 0 for config in CONFIGS}  # records, warm-up included
            for config in CONFIGS:  # warm-up: both body shapes, then some concurrency
                for size, n, c in ((1, 60, 2), (BATCH, 10, 2), (1, 400, 8)):
                    w = spread(ports[config], "/predict", bodies[size], n, c, size)
                    if w["errors"]: raise SystemExit(f"{config}: warm-up failed: {w['first_error']}")
                    answered[config] += w["n"] * size
            results = []
            for r in range(rounds):
                for size, conc in CASES:
                    for config in CONFIGS[::1 if r % 2 == 0 else -1]:
                        say(f"round {r + 1}/{rounds}: {config}, {size} record(s) per request, concurrency {conc} ...")
                        res = spread(ports[config], "/predict", bodies[size], n1 if size == 1 else n100, conc, size)
                        answered[config] += res["n"] * size
                        results.append({"round": r + 1, "config": config, "records": size, "concurrency": conc, **res})
            start_s = {f"{c} {k + 1}": p.start_seconds for (c, k), p in procs.items()}
            for p in procs.values(): stop(p)
            procs.clear()
            logged = {config: logged_rows(url) for config, url in logs.items()}
    finally:
        for p in procs.values(): stop(p)
        pg.stop()
    load1 = os.getloadavg()

    med = {(config, size): {k: statistics.median(x[k] for x in results if x["config"] == config and x["records"] == size) for k in ("rps", "p50", "p99")}
           for config in CONFIGS for size, _ in CASES}
    complete = all(logged[c] == answered[c] for c in logs)
    import fastapi, pandas as pd, psycopg2, sqlalchemy, uvicorn
    lines = [
        "# The shared prediction log: one `mlops-nb serve` replica against two sharing one PostgreSQL log", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"
        f" · PostgreSQL {pg.bin.parent.name} · sqlalchemy {sqlalchemy.__version__} · psycopg2 {psycopg2.__version__.split()[0]}"
        f" · fastapi {fastapi.__version__} · uvicorn {uvicorn.__version__} · pandas {pd.__version__}", "",
        f"Command: `{cmd_line}` ({time.time() - started:.0f} s in all, the champion's training included; load average "
        f"{load0[0]:.2f} before, {load1[0]:.2f} after (1-minute) on {os.cpu_count()} cores, which the load generator, the replicas and the "
        f"PostgreSQL server share). Code measured: {code0}.", "",
        "The champion: the demo's first week (one boosted-trees experiment), served from its run's snapshot and online store; the flights "
        "of that week as requests. Every replica: `mlops-nb serve`, one process, `OMP_NUM_THREADS=1`, each pass's rows committed to its log "
        "before its answers leave. PostgreSQL: a cluster of Debian's package on 127.0.0.1 started as the tests start it, with `fsync=off` "
        "(a commit waits for no disk: a production server's flush comes on top). The load: the connections spread evenly over the "
        f"replicas; rps = answered requests / the longest replica's wall time; p50 and p99 the worse replica's; medians of {rounds} "
        f"round(s), the configurations' order alternated. Replicas ready in " + ", ".join(f"{k} {v:.1f} s" for k, v in start_s.items()) + ".", "",
        "| log | replicas | records / request | concurrency | req/s | records/s | p50 ms | p99 ms | / SQLite, 1 replica | / PostgreSQL, 1 replica |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, conc in CASES:
        base, one = med[("sqlite", size)]["rps"], med[("postgresql, 1 replica", size)]["rps"]
        for config in CONFIGS:
            m = med[(config, size)]
            lines.append(f"| {config.split(',')[0]} | {len(ports[config])} | {size} | {conc} | {m['rps']:,.0f} | {m['rps'] * size:,.0f} | "
                         f"{m['p50']:.1f} | {m['p99']:.1f} | **{m['rps'] / base:.2f}x** | {m['rps'] / one:.2f}x |")
    errors = [f"{x['config']} {x['records']}x{x['concurrency']} round {x['round']}: {x['first_error']}" for x in results if x["errors"]]
    lines += ["", "Errors: " + ("; ".join(errors) if errors else "none."), "",
              "Rows in each PostgreSQL log against the records its replicas answered (warm-up included): " +
              "; ".join(f"{c}: {logged[c]:,} logged, {answered[c]:,} answered" for c in logs) +
              (" — every answer is in the log." if complete else " — **rows are missing**."), "",
              "Per round (req/s; per replica in brackets):", "", "| round | case | " + " | ".join(CONFIGS) + " |", "|---:|---|" + "---:|" * len(CONFIGS)]
    for r in range(1, rounds + 1):
        for size, conc in CASES:
            row = {x["config"]: x for x in results if x["round"] == r and x["records"] == size}
            lines.append(f"| {r} | {size} x {conc} | " + " | ".join(f"{row[c]['rps']:,.0f} ({', '.join(f'{v:,.0f}' for v in row[c]['per_replica'])})"
                                                                for c in CONFIGS) + " |")
    out.write_text("\n".join(lines) + "\n")
    (HERE / "results" / ("team_serve.quick.json.tmp" if args.quick else "team_serve.json")).write_text(json.dumps(
        {"command": cmd_line, "code": code0, "rounds": results, "medians": {f"{c} | {s}": v for (c, s), v in med.items()},
         "logged": logged, "answered": answered, "complete": complete, "cores": os.cpu_count()}, indent=1) + "\n")
    print("\n".join(lines))
    if errors or not complete: raise SystemExit(1)


if __name__ == "__main__":
    main()
