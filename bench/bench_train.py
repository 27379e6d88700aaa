#!/usr/bin/env python
"""Benchmark the training step: time per trial in tracking vs training, batched vs per-value MLflow logging, and
the demo and default searches on 2 cores (wall time, the gain from parallel trials, peak memory).

The data is the demo year's training set as the features step wrote it (the newest
`runs/*/artifacts/features/training_set.parquet`, with its `outputs.json` and `feature_views.json`; run
`make pipeline` first, or pass `--training-set PATH`). Each child process prepares the search exactly as
`mlops_nb.train.run_step` does (features, selection metric, time split with the frozen hold-out checked, feature
groups, `expand`, dataset inputs with digests, the tags with the git commit and the requirements), then runs
`search` with `log_trial` logging every trial as a nested run under a parent run, into a temporary tracking store
of its own (`sqlite:///<tmp>/mlflow.db`, artifacts in `<tmp>/mlartifacts`, created before any timing).

- `demo-1`: the demo project's `train.experiments` (9 trials), `parallel=1`. Per trial: `fit_seconds`,
  `eval_seconds` (validation scoring, threshold, permutation importance per feature and per view) and `seconds`
  from `run_trial`. Tracking is the evaluation figure (drawn and PNG-encoded: by `run_trial` in the trial's process
  when the result carries `figure_seconds`, else inside `log_trial`) plus the wall time of `log_trial` as `search`
  measures it (the nested run, one `log_batch`, the dataset inputs, the figure uploaded, the run closed); each
  MLflow client call is timed too (wrappers around the client's methods). Then every finished trial is logged
  again, warm, into the same store, alternately by `log_trial` and by its peer: `log_trial` through a client whose
  batched calls become one call per value (`set_tag` per tag, `log_param` per parameter, `log_metric` per metric,
  one `log_inputs` per dataset; the same figure upload and run ending). The ratio is the cost of not batching.
- `demo-2`: the same search with `parallel=2` (joblib's loky processes; tracking stays in the main process).
- `default-1`, `default-2`: `default_experiments()` (5 trials: what a project without `train.experiments` runs)
  with `parallel=1` (the `TrainSpec` default) and `parallel=2`.

Each case runs in a fresh subprocess, so its memory is its own: peak RSS is sampled every 0.1 s with psutil as the
sum over the main process and its workers (loky workers, resource tracker), and the largest single process; the
`resource.getrusage` maxima (self, and children once the workers are shut down) are recorded beside them.
Wall seconds exclude imports and data loading (shown apart).

The machine is shared, and other processes do not merely add noise here: with `parallel=1` the boosted trees run
two OpenMP threads that spin-wait for each other, so a neighbour taking one core can make a trial several times
slower. Each case therefore waits (at most `--wait` s) until other processes use under 10 % of the CPU, records
the CPU they used while it ran (`other load`), and runs again (at most `--retries` times) if that exceeded 10 %;
a case still disturbed is marked in the report.

    .venv/bin/python bench/bench_train.py                     # writes bench/results/train.md (about 4 min when quiet)
    .venv/bin/python bench/bench_train.py --quick             # 50,000-row sample, prints only (smoke check)
    .venv/bin/python bench/bench_train.py --training-set runs/<run>/artifacts/features/training_set.parquet
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, threading, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CASES = ("demo-1", "demo-2", "default-1", "default-2")
QUICK_ROWS = 50_000
DISTURBED = 0.10  # other processes' share of the machine's CPU above which a case's timings are not trusted
CLIENT_CALLS = ("create_run", "log_batch", "log_inputs", "log_artifact", "set_terminated", "set_tag", "log_param", "log_metric")


def latest_training_set() -> Path:
    "The newest run's training set, or an exit telling how to make one."
    found = sorted(ROOT.glob("runs/*/artifacts/features/training_set.parquet"))
    if not found:
        raise SystemExit(f"no training set under {ROOT / 'runs'}/*/artifacts/features/: run `make pipeline` first "
                         "(or pass --training-set PATH to a features step's training_set.parquet)")
    return found[-1]


# ---------------------------------------------------------------- memory

class PeakRSS(threading.Thread):
    "Samples the RSS of this process and all its descendants every `every` seconds; keeps the peaks."
    def __init__(self, every: float = 0.1):
        super().__init__(daemon=True)
        import psutil
        self.me, self.every, self.done = psutil.Process(), every, threading.Event()
        self.total = self.main = self.worker = 0
        self.workers = 0
        self.cpu, self.cpu0 = {}, sum(self.me.cpu_times()[:2])  # pid -> user+system seconds, last seen
        self.busy0, self.t0 = self.busy(), time.perf_counter()

    @staticmethod
    def busy() -> float:
        "CPU seconds the whole machine has spent busy (all cores, everything but idle and iowait)."
        import psutil
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def sample(self):
        import psutil
        main = self.me.memory_info().rss
        self.cpu[self.me.pid] = sum(self.me.cpu_times()[:2])
        kids = []
        for k in self.me.children(recursive=True):
            try:
                kids.append(k.memory_info().rss)
                self.cpu[k.pid] = sum(k.cpu_times()[:2])
            except psutil.Error: pass
        self.total, self.main = max(self.total, main + sum(kids)), max(self.main, main)
        self.worker, self.workers = max([self.worker] + kids), max(self.workers, len(kids))

    def run(self):
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every)

    def stop(self) -> dict:
        self.sample(); self.done.set(); self.join()
        wall, ours = time.perf_counter() - self.t0, sum(self.cpu.values()) - self.cpu0
        others = max(0.0, self.busy() - self.busy0 - ours)
        mb = lambda b: b / 2**20
        return {"peak_total_mb": mb(self.total), "peak_main_mb": mb(self.main), "peak_worker_mb": mb(self.worker), "processes": 1 + self.workers,
                "cpu_seconds": ours, "others_cpu_share": others / (wall * os.cpu_count())}


# ---------------------------------------------------------------- child

def timed_methods(obj, names, into: dict):
    "Wrap `obj`'s methods `names` so that each call's seconds add up in `into[name]` (and calls in `into[name + '#']`)."
    for n in names:
        f = getattr(obj, n)
        def w(*a, _f=f, _n=n, **k):
            t = time.perf_counter()
            try: return _f(*a, **k)
            finally:
                into[_n] = into.get(_n, 0.0) + time.perf_counter() - t
                into[_n + "#"] = into.get(_n + "#", 0) + 1
        setattr(obj, n, w)


def prepare(training_set: Path, rows: int | None, folder: Path):
    "Everything `run_step` computes before `search`, on the training set; a fresh tracking store with a parent run."
    import pandas as pd
    from mlops_nb import train as T
    from mlops_nb.config import demo_project_file, load_project, package_root
    from mlops_nb.train import feature_kinds
    from mlops_nb.runs import git_commit
    lp = load_project(demo_project_file())
    spec, card = lp.project.train, lp.project.design
    fdir = training_set.parent
    tmeta = json.loads((fdir / "outputs.json").read_text())["outputs"][training_set.name]
    features_record = json.loads((fdir / "feature_views.json").read_text())
    df = pd.read_parquet(training_set)
    if rows and rows < len(df):
        df = df.sample(rows, random_state=0).sort_values(tmeta.get("time_column") or df.columns[0], kind="stable").reset_index(drop=True)
    label = tmeta.get("label") or card.target.name
    time_column = tmeta.get("time_column")
    features = [f for f in tmeta["features"] if f in df.columns and feature_kinds(df, [f])["skipped"] == []]
    metric = spec.metric or next((m.metric for m in card.key_metrics if m.kind == "model"), "roc_auc")
    parts = T.split_frame(df, spec.split, label, time_column)
    holdout_digest = T.check_holdout(parts, time_column)
    groups = T.feature_groups(features_record, features)
    has_views = bool(features_record.get("views"))
    tags = {"mlflow.source.git.commit": git_commit(package_root()) or "unknown", "requirements": " ".join(T.requirements()),
            "holdout_digest": holdout_digest, "training_set_digest": tmeta["digest"]}
    inputs = T.dataset_inputs({"train": parts["train"], "validation": parts["validation"]}, "features/training_set.parquet")
    import logging
    from mlflow import MlflowClient
    for name in ("alembic", "mlflow"): logging.getLogger(name).setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    exp_id = client.create_experiment("bench-train", artifact_location=(folder / "mlartifacts").resolve().as_uri())
    parent = client.create_run(exp_id, run_name="train (bench)").info.run_id
    return dict(lp=lp, spec=spec, vm=card.value_model, df=df, label=label, metric=metric, parts=parts, groups=groups,
                has_views=has_views, tags=tags, inputs=inputs, client=client, exp_id=exp_id, parent=parent)


class PerValue:
    "A client whose batched calls become one MLflow call per value: `log_trial` through it is the peer of batching."
    def __init__(self, client): self._c = client
    def __getattr__(self, name): return getattr(self._c, name)

    def create_run(self, experiment_id, run_name=None, tags=None, **kw):
        run = self._c.create_run(experiment_id, run_name=run_name, **kw)
        for k, v in (tags or {}).items(): self._c.set_tag(run.info.run_id, k, v)
        return run

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kw):
        for p in params: self._c.log_param(run_id, p.key, p.value)
        for m in metrics: self._c.log_metric(run_id, m.key, m.value, m.timestamp, m.step)
        for t in tags: self._c.set_tag(run_id, t.key, t.value)

    def log_inputs(self, run_id, datasets=None, **kw):
        for d in datasets or []: self._c.log_inputs(run_id, datasets=[d])


def child(case: str, training_set: Path, rows: int | None, folder: Path, profile: int) -> dict:
    t0 = time.perf_counter()
    import numpy as np, pandas as pd, mlflow  # noqa: F401
    from mlops_nb import train as T
    imports = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = prepare(training_set, rows, folder)
    setup = time.perf_counter() - t0
    kind, parallel = case.split("-")
    parallel = int(parallel)
    experiments = c["spec"].experiments if kind == "demo" else T.default_experiments()
    cols = {e.name: T.trial_features(e, c["groups"], c["has_views"]) for e in experiments}
    trials = T.expand(experiments, c["spec"].split.seed)
    client, exp_id, parent, vm = c["client"], c["exp_id"], c["parent"], c["vm"]

    # time the figure wherever it is drawn in this process, and every client call of log_trial
    fig = {"s": 0.0}
    draw = T.evaluation_figure
    def timed_figure(*a, **k):
        t = time.perf_counter()
        try: return draw(*a, **k)
        finally: fig["s"] += time.perf_counter() - t
    T.evaluation_figure = timed_figure
    calls = {}
    timed_methods(client, CLIENT_CALLS, calls)
    per_trial = {}
    def log(r):
        fig["s"], before = 0.0, dict(calls)
        t = time.perf_counter()
        rid = T.log_trial(client, exp_id, parent, r, c["inputs"], c["tags"], vm)
        per_trial[r["trial"]] = {"log_seconds": time.perf_counter() - t, "figure_in_log_seconds": fig["s"],
                                 "calls": {k: calls[k] - before.get(k, 0) for k in calls}}
        return rid

    lines = []
    say = lambda m: (lines.append(m), print(f"  [{case}] {m}", file=sys.stderr, flush=True))
    sampler = PeakRSS(); sampler.start()
    rss_before = sampler.me.memory_info().rss / 2**20
    t0 = time.perf_counter()
    results = T.search(trials, cols, c["parts"], c["label"], c["metric"], vm, c["groups"], parallel, log=log, say=say,
                       seed=c["spec"].split.seed)
    wall = time.perf_counter() - t0
    if parallel > 1:  # shut the workers down so that getrusage(RUSAGE_CHILDREN) counts them
        from joblib.externals.loky import get_reusable_executor
        get_reusable_executor().shutdown(wait=True)
    mem = sampler.stop()
    mem.update(rss_before_mb=rss_before, ru_self_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               ru_children_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    out = {"case": case, "kind": kind, "parallel": parallel, "import_seconds": imports, "setup_seconds": setup,
           "rows": {k: len(v) for k, v in c["parts"].items()}, "metric": c["metric"], "wall_seconds": wall, "memory": mem,
           "trials": [{**{k: r.get(k) for k in ("trial", "experiment", "family", "params", "status", "error", "fit_seconds",
                                                   "eval_seconds", "figure_seconds", "seconds", "tracking_seconds")},
                       "score": (r.get("metrics") or {}).get(c["metric"]), **per_trial.get(r["trial"], {})} for r in results]}

    if case == "demo-1":  # warm re-logging: batched (log_trial) vs one call per value (log_trial through PerValue), alternately
        finished = [r for r in results if r["status"] == "finished"]
        relog = {"batch": [], "per_value": []}
        for r in finished:
            for how, cl in (("batch", client), ("per_value", PerValue(client))):
                fig["s"], before = 0.0, dict(calls)
                t = time.perf_counter()
                T.log_trial(cl, exp_id, parent, r, c["inputs"], c["tags"], vm)
                relog[how].append({"seconds": time.perf_counter() - t, "figure_seconds": fig["s"],
                                   "calls": {k: calls[k] - before.get(k, 0) for k in calls}})
        out["relog"] = relog
        if profile:
            import cProfile, io, pstats
            pr = cProfile.Profile()
            pr.enable()
            for r in finished: T.log_trial(client, exp_id, parent, r, c["inputs"], c["tags"], vm)
            pr.disable()
            s = io.StringIO()
            pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(profile)
            out["profile"] = s.getvalue()
    return out


def wait_quiet(limit: float, busy: float = 0.10) -> float:
    "Wait (at most `limit` s) until the other processes use under `busy` of the machine for 5 s; return the seconds waited."
    import psutil
    t0 = time.perf_counter()
    while psutil.cpu_percent(interval=5) / 100 > busy and time.perf_counter() - t0 < limit: pass
    return time.perf_counter() - t0


def run_case(case: str, args, folder: Path) -> dict:
    "Run `case` once the machine is quiet; run it again (up to --retries times) when other processes disturbed it."
    waited, attempts = 0.0, []
    for attempt in range(1 + args.retries):
        waited += wait_quiet(args.wait)
        r = run_child(case, args, folder, attempt)
        attempts.append(r["memory"]["others_cpu_share"])
        if r["memory"]["others_cpu_share"] <= DISTURBED: break
        print(f"{case}: other processes used {r['memory']['others_cpu_share']:.0%} of the machine meanwhile; "
              f"{'running it again' if attempt < args.retries else 'keeping it'}", file=sys.stderr, flush=True)
    r.update(waited_seconds=waited, other_load_attempts=attempts)
    return r


def run_child(case: str, args, folder: Path, attempt: int = 0) -> dict:
    sub = folder / f"{case}.{attempt}"
    sub.mkdir()
    cmd = [sys.executable, __file__, "--child", case, "--folder", str(sub), "--training-set", str(args.training_set),
           "--profile", str(args.profile)] + (["--rows", str(args.rows)] if args.rows else [])
    print(f"{case}: running", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # stderr (progress) passes through
    if p.returncode: raise SystemExit(f"child {case} failed (exit {p.returncode}); its errors are above")
    return json.loads((sub / "result.json").read_text())


# ---------------------------------------------------------------- report

def mean(xs): return statistics.fmean(xs) if xs else float("nan")


def command(args) -> str:
    "The command line that reproduces this report."
    extra = (" --quick" if args.quick else "") + (f" --wait {args.wait:g}" if args.wait != 300 else "") \
            + (f" --retries {args.retries}" if args.retries != 1 else "") + (f" --training-set {args.training_set_arg}" if args.training_set_arg else "") \
            + (f" --profile {args.profile}" if args.profile else "")
    return f".venv/bin/python bench/bench_train.py{extra}"


def report(res: dict, args, started: float, load0: float, source: str) -> list[str]:
    import mlflow, sklearn, pandas as pd, joblib
    d1 = res["demo-1"]
    ok = [t for t in d1["trials"] if t["status"] == "finished"]
    fams = list(dict.fromkeys(t["family"] for t in ok))
    figure_s = lambda t: (t.get("figure_seconds") or 0.0) + t.get("figure_in_log_seconds", 0.0)
    train_s = lambda t: t["seconds"] - (t.get("figure_seconds") or 0.0)
    tracking_s = lambda t: (t.get("figure_seconds") or 0.0) + t["tracking_seconds"]
    share = lambda ts: sum(tracking_s(t) for t in ts) / sum(train_s(t) + tracking_s(t) for t in ts) if ts else float("nan")
    log_share = lambda ts: sum(t["tracking_seconds"] for t in ts) / sum(t["seconds"] + t["tracking_seconds"] for t in ts)
    rows = d1["rows"]
    L = [
        "# Training: tracking vs training per trial, and the searches on 2 cores", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"
        f" · scikit-learn {sklearn.__version__} · mlflow {mlflow.__version__} · joblib {joblib.__version__} · pandas {pd.__version__}", "",
        f"Command: `{command(args)}` ({time.time() - started:.0f} s in all; "
        f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores). "
        f"Training set: `{source}`{f', a {args.rows:,}-row sample' if args.rows else ''}; split by time into "
        f"{rows['train']:,} train, {rows['validation']:,} validation and {rows['holdout']:,} hold-out rows (frozen, not used by the search); "
        f"selection metric `{d1['metric']}`. Trials logged with `log_trial` as nested runs under a parent run in a temporary "
        f"`sqlite:///<tmp>/mlflow.db` store with file artifacts, as `run_step` does. Each case runs in a fresh process.", "",
        "## Tracking vs training, per trial (demo search, `parallel=1`)", "",
        "| family | trials | fit s | eval s | trial s (fit + eval) | figure s | `log_trial` s | tracking s (figure + log) | tracking share | share, first trial left out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in fams + [None]:
        ts = [t for t in ok if f is None or t["family"] == f]
        name = f"`{f}`" if f else "**all trials**"
        L.append(f"| {name} | {len(ts)} | {mean([t['fit_seconds'] for t in ts]):.2f} | {mean([t['eval_seconds'] for t in ts]):.2f} | "
                 f"{mean([train_s(t) for t in ts]):.2f} | {mean([figure_s(t) for t in ts]):.2f} | {mean([t['tracking_seconds'] for t in ts]):.2f} | "
                 f"{mean([tracking_s(t) for t in ts]):.2f} | {share(ts):.1%} | {share([t for t in ts if t is not ok[0]]):.1%} |")
    first = ok[0]
    where = ("drawn by `run_trial` in the trial's process" if any(t.get("figure_seconds") is not None for t in ok)
             else "drawn inside `log_trial`")
    L += ["", "Means per trial. `trial s` is `run_trial`'s `seconds` less the figure; the figure (six panels, PNG) is "
          f"{where}; `log_trial s` is what `search` records as `tracking_seconds`. Tracking share = tracking / (trial + tracking), "
          "summed over the family's trials. "
          f"The first trial's figure ({figure_s(first):.2f} s) includes importing matplotlib (the last column leaves that trial out); "
          f"`log_trial` alone is {log_share(ok):.1%} of all trials' time."]
    calls = {}
    for t in ok:
        for k, v in t["calls"].items(): calls[k] = calls.get(k, 0) + v
    n = len(ok)
    spent = [f"`{k}` {calls[k] / n:.3f} s" for k in CLIENT_CALLS if calls.get(k)]
    other = mean([t["log_seconds"] for t in ok]) - sum(calls[k] for k in CLIENT_CALLS if calls.get(k)) / n
    drawn = mean([t["figure_in_log_seconds"] for t in ok])
    L += ["", f"Where `log_trial`'s time goes (mean per trial, in the search): {', '.join(spent)}, the rest {other:.3f} s"
          + (f" (of which drawing the figure: {drawn:.3f} s)." if drawn > 0 else ".")]
    rl = res["demo-1"]["relog"]
    def row(xs):
        ncalls = mean([sum(v for k, v in x["calls"].items() if k.endswith("#")) for x in xs])
        s, fs = mean([x["seconds"] for x in xs]), mean([x["figure_seconds"] for x in xs])
        return ncalls, s, fs, s - fs
    b, p = row(rl["batch"]), row(rl["per_value"])
    L += ["", "## Batched logging vs one MLflow call per value", "",
          f"Every finished trial of the search logged again, warm, alternately both ways, into the same store ({len(rl['batch'])} trials each):", "",
          "| logging | MLflow calls per trial | seconds per trial | MLflow calls only (no drawing) | vs batched |",
          "|---|---:|---:|---:|---:|"]
    for name, (nc, s_, fs, o) in (("batched: `log_trial` (tags at `create_run`, one `log_batch`)", b),
                                  ("per value: `set_tag` / `log_param` / `log_metric` for each value, `log_inputs` per dataset", p)):
        L.append(f"| {name} | {nc:.0f} | {s_:.3f} | {o:.3f} | {o / b[3]:.2f}x |")
    # searches
    L += ["", "## The searches on the demo year", "",
          "| search | trials | parallel | wall s | ideal s | sum of trial s | sum of tracking s | vs parallel=1 | CPU s | other load | peak RSS MB (all processes) | largest process MB | processes |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in CASES:
        r = res[case]
        base = res[f"{r['kind']}-1"]["wall_seconds"]
        m = r["memory"]
        what = "demo `train.experiments`" if r["kind"] == "demo" else "`default_experiments()`"
        secs = [t["seconds"] + t["tracking_seconds"] / r["parallel"] for t in r["trials"]]
        ideal = max(sum(secs) / r["parallel"], max(secs))
        L.append(f"| {what} | {len(r['trials'])} | {r['parallel']} | {r['wall_seconds']:.1f} | {ideal:.1f} | {sum(t['seconds'] for t in r['trials']):.1f} | "
                 f"{sum(t['tracking_seconds'] for t in r['trials']):.1f} | {base / r['wall_seconds']:.2f}x | {m['cpu_seconds']:.0f} | {m['others_cpu_share']:.0%} | {m['peak_total_mb']:,.0f} | "
                 f"{max(m['peak_main_mb'], m['peak_worker_mb']):,.0f} | {m['processes']} |")
    bad = [c for c in CASES if res[c]["memory"]["others_cpu_share"] > DISTURBED]
    reran = [f"{c} ({', '.join(f'{x:.0%}' for x in res[c]['other_load_attempts'])})" for c in CASES if len(res[c]["other_load_attempts"]) > 1]
    L += ["", "Each case waits for the machine to be quiet (other processes under 10 % of its CPU for 5 s, at most "
          f"{args.wait:.0f} s) and runs again (at most {args.retries} time(s)) when other processes took more than 10 % meanwhile"
          + (f"; ran again: {'; '.join(reran)}" if reran else "; no case needed it")
          + (f". **Disturbed (timings not to be trusted): {', '.join(bad)}.**" if bad else ".")]
    L += ["", "Wall seconds: the `search` call, trials and their tracking (imports and data loading excluded: "
          + ", ".join(f"{c} {res[c]['import_seconds']:.1f} s + {res[c]['setup_seconds']:.1f} s" for c in CASES) + "). "
          "`vs parallel=1`: the same search's wall time with `parallel=1` over this one (the gain from parallel trials). "
          "`ideal s`: the wall time if the trials, as long as they took here, kept every worker busy to the end "
          "(max of their sum over the workers and the longest trial; the gap to `wall s` is idle workers at the tail and dispatch). "
          "`CPU s`: user + system seconds of the search's processes (main and workers); `other load`: the CPU the rest of the "
          "machine used meanwhile, as a share of its cores (psutil; above a few % the figures are disturbed: compare within one run). "
          "Peak RSS: psutil samples every 0.1 s of the main process plus its workers, summed; "
          + "; ".join(f"{c}: getrusage self {res[c]['memory']['ru_self_mb']:,.0f} MB, children {res[c]['memory']['ru_children_mb']:,.0f} MB, "
                      f"main before the search {res[c]['memory']['rss_before_mb']:,.0f} MB" for c in CASES) + "."]
    # per trial detail of the parallel demo search
    L += ["", "Per trial (seconds; `p=1` / `p=2`: the demo search with `parallel=1` / `parallel=2`, the latter with one thread per worker):", "",
          "| trial | experiment | family | params | p=1 fit | p=1 eval | p=1 figure | p=1 log | p=2 trial | p=2 log | " + res["demo-1"]["metric"] + " |",
          "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    p2 = {t["trial"]: t for t in res["demo-2"]["trials"]}
    for t in d1["trials"]:
        q = p2[t["trial"]]
        L.append(f"| {t['trial']} | {t['experiment']} | {t['family']} | `{json.dumps(t['params'])}` | {t.get('fit_seconds') or 0:.2f} | "
                 f"{t.get('eval_seconds') or 0:.2f} | {figure_s(t):.2f} | {t['tracking_seconds']:.2f} | {q['seconds']:.2f} | {q['tracking_seconds']:.2f} | "
                 f"{(t['score'] or float('nan')):.4f} |")
    # aims
    d = res["default-2"]["wall_seconds"]
    sh = share(ok)
    L += ["", "Aims (from the issue):",
          f"- tracking (figure + `log_trial`) under 10 % of a trial's time: {sh:.1%} over the demo search's trials ({'met' if sh < 0.10 else 'not met'}); "
          + ", ".join(f"{f} {share([t for t in ok if t['family'] == f]):.1%}" for f in fams) + ";",
          f"- the whole default search on the demo year in about three minutes on 2 cores: {d:.0f} s with `parallel=2`, "
          f"{res['default-1']['wall_seconds']:.0f} s with `parallel=1` ({'met' if d <= 200 else 'not met'}).", ""]
    if args.quick: L.insert(2, "**Quick smoke check on a sample: not the benchmark's figures.**\n")
    return L


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--training-set", type=Path, help="a features step's training_set.parquet (default: the newest run's)")
    ap.add_argument("--quick", action="store_true", help=f"a {QUICK_ROWS:,}-row sample; prints the table, writes only with --out")
    ap.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--profile", type=int, default=0, help="print the top N functions of a cProfile of log_trial (demo-1, warm)")
    ap.add_argument("--wait", type=float, default=300, help="seconds to wait, before each case, for other processes to calm down (default: 300)")
    ap.add_argument("--retries", type=int, default=1, help="runs again of a case that other processes disturbed (default: 1)")
    ap.add_argument("--out", type=Path, help="markdown report (default: bench/results/train.md; none with --quick)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        out = child(args.child, args.training_set, args.rows, args.folder, args.profile)
        (args.folder / "result.json").write_text(json.dumps(out, default=str))
        return 0
    args.training_set_arg = args.training_set
    args.training_set = (args.training_set or latest_training_set()).resolve()
    if not args.training_set.exists(): raise SystemExit(f"no training set at {args.training_set}")
    for f in ("outputs.json", "feature_views.json"):
        if not (args.training_set.parent / f).exists():
            raise SystemExit(f"{args.training_set.parent / f} is missing: pass the training_set.parquet of a features step's artifacts")
    if args.quick: args.rows = args.rows or QUICK_ROWS
    out = args.out or (None if args.quick else HERE / "results" / "train.md")
    started, load0 = time.time(), os.getloadavg()[0]
    try: source = str(args.training_set.relative_to(ROOT))
    except ValueError: source = str(args.training_set)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as d:
        res = {case: run_case(case, args, Path(d)) for case in CASES}
    if res["demo-1"].get("profile"): print(res["demo-1"]["profile"], file=sys.stderr)
    lines = report(res, args, started, load0, source)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
