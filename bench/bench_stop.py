#!/usr/bin/env python
"""Benchmark how a run ends when something stops it: `mlops-nb run` against plain papermill, the peer (what a
scheduler that calls papermill on a notebook gets), on the same machine, with the same signals and the same kernel.

- `mlops-nb`: the demo project's first week in a scratch folder, prepared once with `mlops-nb run --until features`;
  each case then runs `mlops-nb run --from train` and stops it once the train step's code runs (its first progress
  line, `[train] ...`, a search under way).
- `papermill`: `papermill slow.ipynb out.ipynb` on a two-cell notebook in the same kernel (`python3` of the venv): the
  first cell prints a line, the second sleeps two minutes; stopped once the line is printed.

Cases, each `--repeat` times, alternating between the two:

- `SIGTERM` to the command (a scheduler's timeout): seconds from the signal to its exit, its exit code, the run's
  recorded status, and seconds until the kernel is gone (polled every millisecond up to 30 s; `alive` past that);
- `SIGKILL` to the command (the out-of-memory killer): seconds until the kernel is gone, same polling, and the record's
  status as `mlops-nb runs list` then shows it;
- `busy`: a second `mlops-nb run` of the project while one runs: its exit code and seconds to answer (papermill has no
  lock: two papermill runs of one notebook simply interleave).

    .venv/bin/python bench/bench_stop.py             # writes bench/results/stop.md (about 4 minutes)
"""
import argparse, json, platform, signal, statistics, subprocess, sys, tempfile, threading, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import WAREHOUSE, mlops_nb, write_demo_project  # noqa: E402
from test_reliability import kernels_of, start_run, wait_for  # noqa: E402
from mlops_nb.runs import process_start  # noqa: E402

LIMIT = 30  # seconds a kernel is watched for after its command ended


def seconds_to_gone(pids: list[int], since: float) -> float:
    "Seconds from `since` (a `time.monotonic()`) until every process of `pids` has ended; inf past `LIMIT`."
    while any(process_start(p) is not None for p in pids):
        if time.monotonic() - since > LIMIT: return float("inf")
        time.sleep(0.001)
    return time.monotonic() - since


def slow_notebook(folder: Path) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('[slow] running', flush=True)"),
                                         nbformat.v4.new_code_cell("import time; time.sleep(120)")])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, str(folder / "slow.ipynb"))
    return folder / "slow.ipynb"


def start_papermill(nb: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "papermill"), str(nb), str(nb.with_name("out.ipynb")), "--log-output"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    proc.log = log
    return proc


def stop_case(tool: str, signum: int, project: Path, nb: Path, folder: Path, i: int) -> dict:
    "Start one run of `tool`, send `signum` once it works, and measure how it ended."
    log = folder / f"{tool}-{signal.Signals(signum).name}-{i}.log"
    proc = start_run(project, "--from", "train", log=log) if tool == "mlops-nb" else start_papermill(nb, log)
    wait_for(proc, "[train] " if tool == "mlops-nb" else "[slow] running")
    kernels, gone = kernels_of(proc.pid), []
    t0 = time.monotonic()
    watcher = threading.Thread(target=lambda: gone.append(seconds_to_gone(kernels, t0)))  # while the command ends
    watcher.start()
    proc.send_signal(signum)
    code = proc.wait(timeout=120)
    exited = time.monotonic() - t0
    watcher.join()
    status = None
    if tool == "mlops-nb":
        runs = sorted((project.parent / "runs").glob("*/run.json"))
        _, out = mlops_nb("runs", "list", "--project", project)
        status = next((w for l in out.splitlines() if runs[-1].parent.name in l for w in ("interrupted", "running", "failed", "succeeded") if w in l), "?")
    return {"tool": tool, "signal": signal.Signals(signum).name, "kernels": len(kernels), "exit": code if code >= 0 else 128 - code,
            "exit_s": exited, "kernel_gone_s": gone[0], "status": status}


def busy_case(project: Path, folder: Path, i: int) -> dict:
    proc = start_run(project, "--from", "train", log=folder / f"busy-{i}.log")
    try:
        wait_for(proc, "[train] ")
        t0 = time.monotonic()
        code, _ = mlops_nb("run", "--project", project, "--from", "train")
        return {"exit": code, "seconds": time.monotonic() - t0}
    finally:
        proc.send_signal(signal.SIGTERM); proc.wait(timeout=120)


def fmt(v: float) -> str:
    return "alive" if v == float("inf") else f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "stop.md"))
    a = ap.parse_args()
    code, out = mlops_nb("demo", "init")
    assert code == 0, out
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as d:
        folder = Path(d)
        project = write_demo_project(folder, WAREHOUSE)
        t0 = time.monotonic()
        code, out = mlops_nb("run", "--project", project, "--until", "features")
        assert code == 0, out
        print(f"prepared the week's upstream in {time.monotonic() - t0:.1f}s", flush=True)
        nb = slow_notebook(folder)
        rows = []
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for i in range(a.repeat):
                for tool in ("mlops-nb", "papermill"):
                    rows.append(stop_case(tool, signum, project, nb, folder, i))
                    print(json.dumps(rows[-1]), flush=True)
        busy = [busy_case(project, folder, i) for i in range(a.repeat)]
        print(json.dumps(busy), flush=True)
    lines = [f"# How a run ends when something stops it: mlops-nb against plain papermill",
             "", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, Python {platform.python_version()}, "
             f"{a.repeat} repeats. Command: `.venv/bin/python bench/bench_stop.py`.", "",
             "| tool | signal | exit code | seconds to exit (median) | kernel gone after, s (median; max) | recorded status |",
             "|---|---|---|---|---|---|"]
    for tool in ("mlops-nb", "papermill"):
        for sig in ("SIGTERM", "SIGKILL"):
            rs = [r for r in rows if r["tool"] == tool and r["signal"] == sig]
            gone = [r["kernel_gone_s"] for r in rs]
            lines.append(f"| {tool} | {sig} | {', '.join(sorted({str(r['exit']) for r in rs}))} | {statistics.median(r['exit_s'] for r in rs):.2f} "
                         f"| {fmt(statistics.median(gone))}; {fmt(max(gone))} | {', '.join(sorted({str(r['status'] or 'none (no record)') for r in rs}))} |")
    lines += ["", f"A second `mlops-nb run` while one runs: exit code {', '.join(sorted({str(b['exit']) for b in busy}))}, answered in "
              f"{statistics.median(b['seconds'] for b in busy):.2f} s (median; max {max(b['seconds'] for b in busy):.2f} s). "
              "papermill has no lock.", "", "Every case:", "", "```"] + [json.dumps(r) for r in rows + busy] + ["```", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
