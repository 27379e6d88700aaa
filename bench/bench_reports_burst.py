#!/usr/bin/env python
"""Reports under a burst: does `mlops-nb reports` (Voila) keep at most `max_kernels` kernels alive when a crawler
fetches every page at once, how much memory does it hold, and what does each request get?

For each case: Voila started by `start_reports` on example runs (the ones the report notebooks test with), then
`requests` plain GETs (no browser, no websocket: what a crawler or `curl` does), cycling over every page,
`concurrency` at a time. During the burst a poller counts the kernels as the operating system sees them (the Voila
process's own child processes running `ipykernel_launcher`, not the kernel manager's own bookkeeping) and the resident
memory of Voila plus all its descendants, every 0.1 s. After the burst, one more GET of the overview must render
the page (HTTP 200 with the run's id). Answers are counted by status; a 503 counts as "busy" only when it carries
`Retry-After` and the busy page.

    .venv/bin/python bench/bench_reports_burst.py     # prints a markdown table, writes bench/results/reports_burst.md
    .venv/bin/python bench/bench_reports_burst.py --case 30,10,8,20 --no-write     # one case: requests,concurrency,cap,busy_wait
"""
import argparse, collections, os, platform, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "nbs"))  # report_examples.py: the example runs the report notebooks test with

from mlops_nb.config import free_port  # noqa: E402
from mlops_nb.reports import PAGES, report_url, start_reports, stop_reports  # noqa: E402

CASES = ((30, 10, 8, 20), (300, 50, 8, 20), (300, 50, 3, 20), (300, 50, 8, 0))  # (requests, concurrency, max_kernels,
# busy_wait s); the first is the burst, the last refuses at once instead of waiting for a kernel to finish
LATEST = "20130104-080000-cccc"  # the latest example run: every page names it


class Poller(threading.Thread):
    "Every `every` s: the kernels alive (child processes of `pid` running ipykernel) and the RSS of `pid` and all its descendants."
    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.proc, self.every, self.stopping = psutil.Process(pid), every, threading.Event()
        self.peak_kernels, self.peak_rss, self.samples = 0, 0, 0

    def look(self) -> tuple[int, int]:
        kernels, rss = 0, self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            try:
                rss += child.memory_info().rss
                # a kernel is a child of Voila; a kernel's own fork (running a command) has its cmdline until it execs
                if child.ppid() == self.proc.pid and "ipykernel_launcher" in " ".join(child.cmdline()): kernels += 1
            except psutil.NoSuchProcess: pass  # it ended between the listing and the look
        return kernels, rss

    def run(self):
        while not self.stopping.is_set():
            kernels, rss = self.look()
            self.peak_kernels, self.peak_rss = max(self.peak_kernels, kernels), max(self.peak_rss, rss)
            self.samples += 1
            time.sleep(self.every)


def get(url: str, timeout: float = 300) -> tuple[str, float]:
    "One plain GET: its answer ('200', 'busy', or another status / error) and its seconds."
    t0 = time.monotonic()
    try:
        with urlopen(url, timeout=timeout) as r:
            body = r.read().decode(errors="replace")
            answer = "200" if LATEST in body else "200 without the page"
    except HTTPError as e:
        body = e.read().decode(errors="replace")
        answer = "busy" if e.code == 503 and e.headers.get("Retry-After") and "busy" in body else str(e.code)
    except OSError as e:
        answer = type(e).__name__
    return answer, time.monotonic() - t0


def burst(requests: int, concurrency: int, cap: int, busy_wait: int, root: Path, logs: Path) -> dict:
    "One case: Voila started with `cap` and `busy_wait`, `requests` GETs over every page `concurrency` at a time; what happened."
    port = free_port()
    proc = start_reports(root, port, log=logs / f"voila-{requests}-{concurrency}-{cap}-{busy_wait}.log", max_kernels=cap,
                         busy_wait=busy_wait, ready_timeout=120)
    try:
        poller = Poller(proc.pid)
        idle_rss = poller.look()[1]
        poller.start()
        urls = [report_url(port, page=PAGES[i % len(PAGES)]) for i in range(requests)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool: answers = list(pool.map(get, urls))
        seconds = time.monotonic() - t0
        after, after_s = get(report_url(port, page="overview"))
        time.sleep(0.5)
        poller.stopping.set(); poller.join()
        kernels_after = poller.look()[0]
    finally:
        stop_reports(proc)
    counts = collections.Counter(a for a, _ in answers)
    ok = sorted(s for a, s in answers if a == "200")
    return {"requests": requests, "concurrency": concurrency, "cap": cap, "busy_wait": busy_wait, "peak_kernels": poller.peak_kernels,
            "idle_mb": idle_rss / 1e6, "peak_mb": poller.peak_rss / 1e6, "counts": counts, "seconds": seconds,
            "p50_ok": ok[len(ok) // 2] if ok else None, "after": after, "after_s": after_s,
            "kernels_after": kernels_after, "samples": poller.samples}


def row(r: dict) -> str:
    counts = ", ".join(f"{n} {a}" for a, n in sorted(r["counts"].items()))
    p50 = f"{r['p50_ok']:.1f}" if r["p50_ok"] is not None else "—"
    held = "**yes**" if r["peak_kernels"] <= r["cap"] else "**no**"
    return (f"| {r['requests']} | {r['concurrency']} | {r['cap']} | {r['busy_wait']} | {r['peak_kernels']} | {held} | {r['idle_mb']:,.0f} | "
            f"{r['peak_mb']:,.0f} | {counts} | {r['seconds']:.1f} | {p50} | {r['after']} in {r['after_s']:.1f} s | "
            f"{r['kernels_after']} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", action="append", help="requests,concurrency,max_kernels,busy_wait (repeatable); default: the four cases")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/results/reports_burst.md alone")
    args = ap.parse_args()
    cases = [tuple(int(x) for x in c.split(",")) for c in args.case] if args.case else CASES
    from report_examples import example_runs
    runs_dir, _ = example_runs()
    load_before, started = os.getloadavg()[0], time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as logs:
        results = [burst(*c, runs_dir.parent, Path(logs)) for c in cases]
    import jupyter_server, tornado, voila
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        "# Reports under a burst: kernels alive, memory, answers",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.node()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · voila {voila.__version__} · jupyter_server {jupyter_server.__version__} · "
        f"tornado {tornado.version} · commit {commit}",
        "",
        f"Command: `.venv/bin/python bench/bench_reports_burst.py` ({time.monotonic() - started:.0f} s in all; load "
        f"average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1-minute), on 2 cores shared with other work).",
        "",
        "Voila started by `start_reports` on the report notebooks' example runs; plain GETs (no browser, no websocket) "
        f"cycling over the {len(PAGES)} pages. Kernels are counted by the operating system (the child processes of Voila "
        "running `ipykernel_launcher`), memory is the RSS of Voila and all its descendants, both polled every 0.1 s "
        "during the burst. A request waits up to `busy_wait` s for a kernel to finish its page; `busy` = 503 with "
        "`Retry-After` and the busy page. After the burst, one GET of the overview.",
        "",
        "| requests | concurrency | max_kernels | busy_wait s | peak kernels | cap held | RSS idle MB | peak RSS MB | answers | "
        "burst s | p50 s of a 200 | overview after the burst | kernels after |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---|---:|",
        *(row(r) for r in results),
        "",
        "Before the fix (commit 99ff271, this script's `burst(30, 10, 8, ...)` on its server, measured 2026-12-07): 17 "
        "kernels alive at the peak for a cap of 8, 1,436 MB peak RSS, 30 answers 200: a kernel was counted only once it had started, "
        "and kernels shut down to make room overlapped with the ones starting.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write: (HERE / "results" / "reports_burst.md").write_text(text)


if __name__ == "__main__":
    main()
