#!/usr/bin/env python
"""Benchmark the drift computation: `mlops_nb.monitor.drift_table` vs Evidently's `DataDriftPreset`, on the demo flights.

The data is the `flights` table of the demo warehouse (`data/warehouse.db`, SQLite; made by `mlops-nb demo init`),
read once with `pandas.read_sql`. Windows follow the flights' local `month`. Four cases:

- `h2`: January-June 2013 (166,158 flights) vs July-December 2013 (170,618): two halves of the year;
- `july`: January-June vs July alone (29,425 flights): a monitoring pass over a month of traffic;
- `jan-jul`: January (27,004 flights) vs July: winter against summer, where more columns drift;
- `small`: 1,000 flights drawn (seed 0) from January-June vs 1,000 from July: the small-reference regime
  (Kolmogorov-Smirnov and chi-square p-values at 0.05).

The 12 monitored columns are what describes a flight to the model, without identifiers (flight number, tail
number) or calendar keys (year, month, day, minute, time_hour):

- numeric: dep_time, sched_dep_time, dep_delay, arr_time, sched_arr_time, arr_delay, air_time, distance, hour
- categorical: carrier, origin, dest

Both tools get the same kinds (`mlops_nb.monitor.infer_kind` on the reference; Evidently through an explicit
`DataDefinition`; its own inference gives the same kinds on these columns) and their default methods: with more than
1,000 reference rows, Wasserstein distance / std (numbers) and Jensen-Shannon distance (categories), threshold 0.1;
with 1,000 or fewer, KS (numbers) and chi-square (categories) p-values, threshold 0.05.

Each tool runs in a fresh subprocess per case (`--worker`), so that its peak memory (peak RSS, `VmHWM` of
/proc/self/status: Python, imports, data and computation) is its own. The child imports pandas and pyarrow
first (both tools need them), then times the tool's own import (`import mlops_nb.monitor`; `from evidently import
Report, Dataset, DataDefinition` + `from evidently.presets import DataDriftPreset`), reads the windows (Parquet
written by the parent), runs the computation once cold (`first s`: lazy imports and caches included), then
`--repeat` times; `seconds` is the best of those (the median beside it). The timed computation is what a monitoring
pass needs, from frames to per-column verdicts:

- `ours`: `drift_table(reference, current, columns, kinds)` + `drift_summary`;
- `evidently`: `Dataset.from_pandas` for both windows + `Report([DataDriftPreset()], include_tests=True).run(...)`
  + `snapshot.dict()` (the per-column scores, methods, thresholds and verdicts, read from the `Value Drift for
  column X` tests: FAIL = drift). `run s` is the `run` call alone.

The parent compares the verdicts column by column (the share of columns on which both agree, and every disagreeing
column with both statistics) and the statistics themselves (largest relative difference).

    .venv/bin/python bench/bench_drift.py               # all four cases, best of 3; writes bench/results/drift.md (about 2 min)
    .venv/bin/python bench/bench_drift.py --cases july --repeat 1 --out /tmp/drift.md
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = ("ours", "evidently")
H1, H2 = list(range(1, 7)), list(range(7, 13))
SAMPLE = 1000  # rows drawn (seed 0) from each window of the `small` case
CASES = {  # name: (reference label, its months, current label, its months, rows sampled from each or None)
    "h2": ("Jan-Jun", H1, "Jul-Dec", H2, None),
    "july": ("Jan-Jun", H1, "Jul", [7], None),
    "jan-jul": ("Jan", [1], "Jul", [7], None),
    "small": (f"{SAMPLE:,} of Jan-Jun", H1, f"{SAMPLE:,} of Jul", [7], SAMPLE),
}
NUMERIC = ["dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time", "arr_delay", "air_time", "distance", "hour"]
CATEGORICAL = ["carrier", "origin", "dest"]
COLUMNS = NUMERIC[:6] + CATEGORICAL + NUMERIC[6:]  # the table's order
EVIDENTLY_METHODS = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
                     "K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z"}


# ---------------------------------------------------------------- data (parent)

def build_windows(db: Path, folder: Path) -> dict:
    "The reference and each case's current window as Parquet in `folder`; their row counts."
    import sqlite3
    import pandas as pd
    if not db.exists():
        raise SystemExit(f"{db} is missing: run `cd {ROOT} && .venv/bin/mlops-nb demo init` first (or pass --db)")
    with sqlite3.connect(db) as con:
        flights = pd.read_sql(f"SELECT month, {', '.join(COLUMNS)} FROM flights WHERE year = 2013", con)
    rows = {}
    for case, (_, ref_months, _, cur_months, sample) in CASES.items():
        for window, months in (("reference", ref_months), ("current", cur_months)):
            df = flights[flights.month.isin(months)][COLUMNS]
            if sample: df = df.sample(sample, random_state=0)
            df.reset_index(drop=True).to_parquet(folder / f"{window}_{case}.parquet", index=False)
            rows[(window, case)] = len(df)
    return rows


# ---------------------------------------------------------------- one tool on one case, in a child process

def _rss_mb() -> float:
    "This process's peak RSS in MB: VmHWM of /proc/self/status (resource's ru_maxrss where there is no /proc)."
    # ru_maxrss survives fork + exec on Linux: a child would report the parent's peak when that is larger
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"): return int(line.split()[1]) / 1024
    except OSError: pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(ref, cur) -> tuple:
    "drift_table + drift_summary: (per-column results, dataset verdict, {phase: seconds})."
    from mlops_nb.monitor import drift_summary, drift_table, infer_kind
    t0 = time.perf_counter()
    kinds = {c: infer_kind(ref[c]) for c in COLUMNS}
    table = drift_table(ref, cur, COLUMNS, kinds)
    summary = drift_summary(table)
    secs = time.perf_counter() - t0
    cols = {r["column"]: {"kind": r["kind"], "method": r["method"], "statistic": r["statistic"], "threshold": r["threshold"],
                          "drifted": r["drifted"], "psi": r["psi"]} for r in table.to_dict("records")}
    return cols, {"share": summary["share"], "dataset_drift": summary["dataset_drift"]}, {"seconds": secs}


def run_evidently(ref, cur) -> tuple:
    "Dataset.from_pandas x2 + Report([DataDriftPreset()]).run + snapshot.dict(): (per-column results, dataset verdict, {phase: seconds})."
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    t0 = time.perf_counter()
    dd = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    cur_ds, ref_ds = Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd)
    t1 = time.perf_counter()
    snap = Report([DataDriftPreset()], include_tests=True).run(current_data=cur_ds, reference_data=ref_ds)
    t2 = time.perf_counter()
    d = snap.dict()
    secs = time.perf_counter() - t0
    status = {t["metric_config"]["params"]["column"]: t["status"] for t in d["tests"]
              if t["metric_config"]["params"].get("type", "").endswith("ValueDrift")}
    cols, share = {}, None
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            c = cfg["column"]
            cols[c] = {"kind": "numeric" if c in NUMERIC else "categorical", "method": EVIDENTLY_METHODS.get(cfg["method"], cfg["method"]),
                       "statistic": float(m["value"]), "threshold": cfg["threshold"], "drifted": status[c] == "FAIL"}
        elif cfg["type"].endswith("DriftedColumnsCount"):
            share = m["value"]["share"]
    return cols, {"share": share, "dataset_drift": share is not None and share >= 0.5}, {"seconds": secs, "run_s": t2 - t1}


def worker(tool: str, case: str, data: Path, repeat: int) -> dict:
    import pandas as pd, pyarrow  # noqa: F401  (shared by both tools: not part of either's import time)
    base_import = _rss_mb()
    t = time.perf_counter()
    if tool == "ours":
        import mlops_nb.monitor  # noqa: F401
        fn = run_ours
    else:
        from evidently import DataDefinition, Dataset, Report  # noqa: F401
        from evidently.presets import DataDriftPreset  # noqa: F401
        fn = run_evidently
    import_s = time.perf_counter() - t
    after_import = _rss_mb()
    ref = pd.read_parquet(data / f"reference_{case}.parquet")
    cur = pd.read_parquet(data / f"current_{case}.parquet")
    base = _rss_mb()
    cols, dataset, first = fn(ref, cur)  # cold: lazy imports, caches
    runs = [fn(ref, cur)[2] for _ in range(repeat)]
    times = [r["seconds"] for r in runs]
    best = min(range(len(runs)), key=lambda i: times[i])
    return {"tool": tool, "case": case, "reference_rows": len(ref), "current_rows": len(cur), "import_s": import_s,
            "first_s": first["seconds"], "seconds": times[best], "median_s": statistics.median(times), "all_s": times,
            "run_s": runs[best].get("run_s"), "import_mb": after_import - base_import, "data_mb": base, "peak_mb": _rss_mb(),
            "columns": cols, "dataset": dataset}


def run_child(tool: str, case: str, data: Path, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", tool, "--case", case, "--data", str(data), "--repeat", str(repeat)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "DO_NOT_TRACK": "1"}  # no usage telemetry from Evidently
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode != 0: raise SystemExit(f"{tool} on {case} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report

def compare(ours: dict, ev: dict) -> dict:
    "Agreement of the verdicts per column, the disagreeing columns, and the largest relative difference of the statistics."
    cols = [c for c in COLUMNS if c in ours["columns"] and c in ev["columns"]]
    agree = [c for c in cols if ours["columns"][c]["drifted"] == ev["columns"][c]["drifted"]]
    same_method = [c for c in cols if ours["columns"][c]["method"] == ev["columns"][c]["method"]]
    rel = max((abs(ours["columns"][c]["statistic"] - ev["columns"][c]["statistic"]) / max(abs(ev["columns"][c]["statistic"]), 1e-12)
               for c in same_method), default=float("nan"))
    return {"columns": len(cols), "agree": len(agree), "share": len(agree) / len(cols) if cols else float("nan"),
            "same_method": len(same_method), "max_rel_diff": rel,
            "disagree": [{"column": c, "ours": ours["columns"][c], "evidently": ev["columns"][c]} for c in cols if c not in agree]}


def report(res: list, rows: dict, args, started: str, wall: float) -> str:
    by = {(r["tool"], r["case"]): r for r in res}
    lines = ["# Drift: ours vs Evidently's DataDriftPreset", "",
             f"{started} · {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()} · "
             f"pandas {_v('pandas')} · numpy {_v('numpy')} · scipy {_v('scipy')} · evidently {_v('evidently')}", "",
             f"Command: `{' '.join(['.venv/bin/python', 'bench/bench_drift.py', *sys.argv[1:]])}` ({wall:.0f} s in all; "
             f"load average {args.load[0]:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores). "
             f"The demo flights of 2013 ({args.db.name}, `flights`, windows by the local `month`), "
             f"{len(COLUMNS)} columns ({len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical: {', '.join(COLUMNS)}). "
             f"`seconds`: from frames to per-column verdicts, best of {args.repeat} after a cold run (`first s`), each tool "
             "in a fresh process per case; `import s`: the tool's own import after pandas and pyarrow; peak RSS includes "
             "Python, imports, data and computation (`data MB`: RSS before the computation).", "",
             "| reference | rows | current | rows | tool | seconds | median s | first s | Evidently / ours | import s | data MB | peak RSS MB | peak - data MB |",
             "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in args.cases:
        for tool in TOOLS:
            r = by.get((tool, case))
            if not r: continue
            o, e = by.get(("ours", case)), by.get(("evidently", case))
            ratio = f"{e['seconds'] / o['seconds']:.1f}x" if (o and e and tool == "evidently") else ""
            extra = f" (run {r['run_s']:.2f})" if r.get("run_s") else ""
            lines.append(f"| {CASES[case][0]} | {r['reference_rows']:,} | {CASES[case][2]} | {r['current_rows']:,} | {tool} | {r['seconds']:.3f}{extra} | {r['median_s']:.3f} | {r['first_s']:.3f} "
                         f"| {ratio} | {r['import_s']:.2f} | {r['data_mb']:,.0f} | {r['peak_mb']:,.0f} | {r['peak_mb'] - r['data_mb']:,.0f} |")
    lines += ["", "Aims: at least 10x faster than Evidently's DataDriftPreset on the same windows; verdicts agreeing on at "
              "least 90 % of the columns; a month of traffic in seconds."]
    for case in args.cases:
        o, e = by.get(("ours", case)), by.get(("evidently", case))
        if not (o and e): continue
        cmp_ = compare(o, e)
        ratio = e["seconds"] / o["seconds"]
        cold = (e["import_s"] + e["first_s"]) / (o["import_s"] + o["first_s"])
        lines.append(f"- {CASES[case][0]} vs {CASES[case][2]}: {ratio:.1f}x faster ({'met' if ratio >= 10 else 'missed'}); with import and a cold "
                     f"first run {cold:.1f}x ({o['import_s'] + o['first_s']:.2f} s vs {e['import_s'] + e['first_s']:.2f} s); "
                     f"verdicts agree on {cmp_['agree']}/{cmp_['columns']} columns ({cmp_['share']:.0%}, "
                     f"{'met' if cmp_['share'] >= 0.9 else 'missed'}); same method on {cmp_['same_method']}/{cmp_['columns']}, "
                     f"statistics within {cmp_['max_rel_diff']:.1e} (relative); drifted share ours {o['dataset']['share']:.2f}, "
                     f"Evidently {e['dataset']['share']:.2f}; dataset drift ours {o['dataset']['dataset_drift']}, "
                     f"Evidently {e['dataset']['dataset_drift']}")
        for d in cmp_["disagree"]:
            lines.append(f"  - disagreement on `{d['column']}`: ours {d['ours']['method']} {d['ours']['statistic']:.6g} "
                         f"(drift {d['ours']['drifted']}), Evidently {d['evidently']['method']} {d['evidently']['statistic']:.6g} "
                         f"(drift {d['evidently']['drifted']})")
    lines += ["", "Per column (ours; Evidently's statistic beside it; PSI is ours only, 10 reference-decile bins, not part of the verdict):", "",
              "| windows | column | kind | method | ours | Evidently | threshold | drift (ours / Evidently) | PSI |",
              "|---|---|---|---|---:|---:|---:|---|---:|"]
    for case in args.cases:
        o, e = by.get(("ours", case)), by.get(("evidently", case))
        if not o: continue
        for c in COLUMNS:
            oc, ec = o["columns"][c], (e or {}).get("columns", {}).get(c)
            lines.append(f"| {CASES[case][0]} vs {CASES[case][2]} | {c} | {oc['kind']} | {oc['method']} | {oc['statistic']:.4f} | "
                         f"{'' if not ec else format(ec['statistic'], '.4f')} | {oc['threshold']:g} | {oc['drifted']} / "
                         f"{'' if not ec else ec['drifted']} | {oc['psi']:.3f} |")
    return "\n".join(lines) + "\n"


def _v(dist: str) -> str:
    from importlib.metadata import version
    try: return version(dist)
    except Exception: return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--cases", default=",".join(CASES), help=f"pairs of windows to compare (default: {','.join(CASES)})")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"implementations to run (default: {','.join(TOOLS)})")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement, after a cold run (default: 3)")
    ap.add_argument("--db", type=Path, default=ROOT / "data" / "warehouse.db", help="the demo warehouse (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "drift.md", help="markdown report (default: %(default)s)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.case, args.data, args.repeat), default=str))
        return 0
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown: ap.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    tools = [t for t in args.tools.split(",") if t]
    started, t0 = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), time.perf_counter()
    args.load = os.getloadavg()
    res = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as d:
        rows = build_windows(args.db, Path(d))
        print("; ".join(f"{c}: {rows[('reference', c)]:,} vs {rows[('current', c)]:,} rows" for c in args.cases), flush=True)
        for case in args.cases:
            for tool in tools:
                r = run_child(tool, case, Path(d), args.repeat)
                res.append(r)
                print(f"  {case:5s} {tool:10s} {r['seconds']:7.3f} s (first {r['first_s']:.3f}, import {r['import_s']:.2f})  "
                      f"peak {r['peak_mb']:,.0f} MB", flush=True)
    text = report(res, rows, args, started, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
