#!/usr/bin/env python
"""Benchmark incremental runs on the demo year: what a run costs when nothing, or only the training notebook,
changed, against the full run that precedes them (the peer: what every run cost before steps were reused), in
the same scratch project, on the same machine, one after the other.

1. `full`: `mlops-nb run` on the demo year in a scratch folder (every step executes);
2. `nothing changed`: `mlops-nb run` again (every step is reused);
3. `training notebook edited`: one line added to a `step` cell of the training notebook, `mlops-nb run` again
   (train and deploy execute, the rest is reused). The package's notebook is never touched: the scratch
   project declares its own copy of `nbs/05_train.ipynb` as the `train` step, in all three runs;
4. the reuse key's overhead: every step's key (`pipeline.reuse_key`), the sources' digest (the warehouse,
   read cold) and the registry's aliases, computed again on the finished run.

Reports are rendered in every run (as `mlops-nb run` does by default).

    .venv/bin/python bench/bench_incremental.py      # writes bench/results/incremental.md (about 10 minutes)
"""
import argparse, json, platform, shutil, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import WAREHOUSE, mlops_nb  # noqa: E402


def scratch_project(root: Path, window_end: str = None) -> Path:
    "The demo project rooted in `root` (its whole year, or up to `window_end`), its `train` step a copy of the training notebook."
    from mlops_nb.config import load_project, pipeline_steps
    data = yaml.safe_load((ROOT / "conf" / "project.yaml").read_text())
    data["root"] = str(root)
    data["sources"]["warehouse"]["url"] = f"sqlite:///{WAREHOUSE}"
    if window_end: data["ingest"]["window"]["end"] = window_end
    shutil.copy(ROOT / "nbs" / "05_train.ipynb", root / "train.ipynb")
    steps = []
    for s in pipeline_steps(load_project(ROOT / "conf" / "project.yaml").project.pipeline):
        d = s.model_dump(exclude_defaults=True)
        if s.notebook: d["notebook"] = str(ROOT / s.notebook) if not Path(s.notebook).is_absolute() else s.notebook
        if s.name == "train": d.update(notebook=str(root / "train.ipynb"), needs=s.needs, reads=s.reads)
        steps.append(d)
    data["pipeline"] = steps
    f = root / "project.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


def edit_training_notebook(path: Path) -> None:
    "Add one line to the first `step` cell that calls `run_step`: a change a run must execute."
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "step" in c.metadata.get("tags", []) and "run_step(" in c.source)
    cell.source = "# edited by bench_incremental\n" + cell.source
    nbformat.write(nb, str(path))


def timed_run(project: Path) -> dict:
    "One `mlops-nb run`: wall seconds, exit code, and per step its status and seconds, from its record."
    t0 = time.perf_counter()
    code, out = mlops_nb("run", "--project", project, timeout=3600)
    seconds = time.perf_counter() - t0
    assert code == 0, out[-3000:]
    from mlops_nb.runs import list_run_records
    rec = list_run_records(project.parent / "runs")[0]
    return {"seconds": seconds, "run_id": rec["run_id"], "steps": [(s["name"], s["status"], s["duration_s"]) for s in rec["steps"]],
            "executed": [s["name"] for s in rec["steps"] if s["status"] == "succeeded"]}


def key_overhead(project: Path) -> dict:
    "Seconds to compute every step's reuse key, the sources' digest (cold) and the registry's aliases on the latest run."
    from mlops_nb import pipeline
    from mlops_nb.config import load_project
    from mlops_nb.registry import tracking_client
    from mlops_nb.runs import list_run_records
    lp = load_project(project)
    run_dir = lp.runs_dir / list_run_records(lp.runs_dir)[0]["run_id"]
    pipeline._file_digests.clear()
    t0 = time.perf_counter(); sources, _ = pipeline.sources_digest(lp); t_sources = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in lp.steps: pipeline.reuse_key(lp, s, run_dir, sources=sources)
    t_keys = time.perf_counter() - t0
    client, _ = tracking_client(lp)
    t0 = time.perf_counter(); pipeline.registry_state(client); t_registry = time.perf_counter() - t0
    return {"keys": t_keys, "sources": t_sources, "registry": t_registry, "steps": len(lp.steps)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window-end", help="the ingest window's end (default: the demo's, the whole year)")
    ap.add_argument("--out", default=str(HERE / "results" / "incremental.md"))
    args = ap.parse_args()
    code, out = mlops_nb("demo", "init")
    assert code == 0, out
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as d:
        project = scratch_project(Path(d), args.window_end)
        print("full run ...", flush=True); full = timed_run(project)
        print(f"  {full['seconds']:.1f} s", flush=True)
        print("nothing changed ...", flush=True); same = timed_run(project)
        print(f"  {same['seconds']:.1f} s", flush=True)
        edit_training_notebook(Path(d) / "train.ipynb")
        print("training notebook edited ...", flush=True); edited = timed_run(project)
        print(f"  {edited['seconds']:.1f} s", flush=True)
        overhead = key_overhead(project)
    step_s = {n: s for n, _, s in full["steps"]}
    write_results(Path(args.out), args, full, same, edited, overhead, step_s)
    print(Path(args.out).read_text())


def write_results(out: Path, args, full, same, edited, overhead, step_s):
    train_deploy = step_s.get("train", 0) + step_s.get("deploy", 0)
    rows = [("full run (every step executes)", full, "1.00x"),
            ("nothing changed", same, f"{same['seconds'] / full['seconds']:.3f}x"),
            ("training notebook edited", edited, f"{edited['seconds'] / full['seconds']:.2f}x")]
    lines = [f"# Incremental runs on the demo year ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"`.venv/bin/python bench/bench_incremental.py` on {platform.machine()}, Python {platform.python_version()}; "
             f"the demo project ({f'up to {args.window_end}' if args.window_end else 'the whole year'}) in a scratch folder, reports rendered in every run.", "",
             "| run | wall seconds | vs the full run | steps executed | steps reused |", "|---|---:|---:|---|---|"]
    for label, r, ratio in rows:
        reused = [n for n, st, _ in r["steps"] if st == "reused"]
        lines.append(f"| {label} | {r['seconds']:.1f} | {ratio} | {', '.join(r['executed']) or 'none'} | {', '.join(reused) or 'none'} |")
    lines += ["", f"In the full run, train and deploy took {train_deploy:.1f} s of its steps' time; the run after the edit took "
              f"{edited['seconds']:.1f} s in all ({edited['seconds'] / max(train_deploy, 1e-9):.2f}x train + deploy: the rest is "
              "the command's start, reusing the other steps, MLflow, and the reports).", "",
              "Steps' seconds in the full run: " + ", ".join(f"{n} {s:.1f}" for n, s in step_s.items()), "",
              "**The reuse key's overhead**, computed again on the finished run:", "",
              "| part | seconds |", "|---|---:|",
              f"| every step's key ({overhead['steps']} steps: cells, settings, code, environment, upstream digests) | {overhead['keys']:.3f} |",
              f"| the sources' digest (the warehouse, read cold; remembered by size and modification time) | {overhead['sources']:.3f} |",
              f"| the registry's aliases (one query) | {overhead['registry']:.3f} |",
              f"| total | {overhead['keys'] + overhead['sources'] + overhead['registry']:.3f} |", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    (out.with_suffix(".json")).write_text(json.dumps({"full": full, "nothing_changed": same, "training_edited": edited,
                                                      "key_overhead": overhead}, indent=1))


if __name__ == "__main__":
    main()
