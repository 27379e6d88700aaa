"""The reports server under a burst of plain GETs (a crawler, `curl`): at most `max_kernels` kernels alive at any
moment, counted by the operating system (the Voila process's children running ipykernel, polled during the burst),
never by the kernel manager's own bookkeeping; every request answered with its page or with "busy, retry" (503,
`Retry-After`, the busy page); and the pages render again afterwards.

Voila is started for real, with the command `mlops-nb reports` uses (`voila_command`), on the example runs the
report notebooks test with. Figures (peak kernels and memory for larger bursts) are in
`bench/bench_reports_burst.py`. Run: `.venv/bin/python -m pytest tests/test_reports_burst.py`.
"""
from __future__ import annotations

import sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import nbformat
import psutil
import pytest

from conftest import ROOT, running_server
from mlops_nb.config import free_port
from mlops_nb.reports import PAGES, base_url, pages_dir, report_url, reports_env, voila_command

sys.path.insert(0, str(ROOT / "nbs"))
from report_examples import example_runs  # noqa: E402  (the example runs of the report notebooks)

pytestmark = pytest.mark.timeout(300)
LATEST = "20130104-080000-cccc"  # the latest example run: every page names it


@pytest.fixture(scope="module")
def root() -> Path:
    "A project root whose runs/ holds the report notebooks' three example runs."
    runs_dir, _ = example_runs()
    return runs_dir.parent


class KernelCount(threading.Thread):
    "Polls, every 0.05 s until stopped, how many child processes of `pid` run ipykernel: `peak` and `samples` seen."
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc, self.stopping, self.peak, self.samples = psutil.Process(pid), threading.Event(), 0, 0

    def now(self) -> int:
        alive = 0
        for child in self.proc.children():  # a kernel's own fork (running a command) has its cmdline until it execs
            try: alive += "ipykernel_launcher" in " ".join(child.cmdline())
            except psutil.NoSuchProcess: pass  # it ended between the listing and the look
        return alive

    def run(self):
        while not self.stopping.is_set():
            self.peak, self.samples = max(self.peak, self.now()), self.samples + 1
            time.sleep(0.05)

    def __enter__(self): self.start(); return self
    def __exit__(self, *exc): self.stopping.set(); self.join()


def fetch(url: str) -> tuple[int, dict, str]:
    "A plain GET: (status, headers, body), error statuses included."
    try:
        with urlopen(url, timeout=240) as r: return r.status, dict(r.headers), r.read().decode(errors="replace")
    except HTTPError as e: return e.code, dict(e.headers), e.read().decode(errors="replace")


def is_busy(answer: tuple[int, dict, str], retry_after: int, cap: int) -> bool:
    "Whether `answer` is the documented 'busy, retry': 503, `Retry-After`, the busy page (which reloads itself)."
    status, headers, body = answer
    return (status == 503 and headers.get("Retry-After") == str(retry_after) and headers["Content-Type"].startswith("text/html")
            and f"All {cap} report kernels are rendering pages" in body and f'http-equiv="refresh" content="{retry_after}"' in body)


def reports_server(root: Path, log: Path, pages_folder=None, **options):
    "The reports' Voila (`voila_command`, as `mlops-nb reports` starts it) on a free port: (context manager, port)."
    port = free_port()
    cmd = voila_command(port, pages_folder=pages_folder, **options)
    return running_server(cmd, log, url=base_url(port) + "/", env=reports_env(root), cwd=pages_dir()), port


def test_a_burst_of_every_page_holds_the_cap(root, tmp_path):
    """50 concurrent GETs cycling over every page with a cap of 3 (and 5 s of waiting for a place): never more than 3
    kernels alive; each answer a page or 'busy, retry'; a page renders after the burst."""
    cap, retry_after = 3, 10
    server, port = reports_server(root, tmp_path / "voila.log", max_kernels=cap, busy_wait=5, retry_after=retry_after)
    with server as proc:
        urls = [report_url(port, page=PAGES[i % len(PAGES)]) for i in range(50)]
        with KernelCount(proc.pid) as kernels, ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(fetch, urls))
        assert kernels.samples > 10 and kernels.peak >= 1, "the poller saw the kernels of the burst"
        assert kernels.peak <= cap, f"{kernels.peak} kernels alive at once, the cap is {cap}"
        pages = [a for a in answers if a[0] == 200]
        odd = [a[:2] for a in answers if not (a[0] == 200 and LATEST in a[2]) and not is_busy(a, retry_after, cap)]
        assert not odd, f"answers neither a page nor 'busy, retry': {odd[:3]}"
        assert pages, "some pages were rendered during the burst"
        status, _, body = fetch(report_url(port, page="overview"))  # after the burst, a page renders again
        assert status == 200 and LATEST in body and "Ranking quality" in body
        with KernelCount(proc.pid) as after: time.sleep(0.5)
        assert after.peak <= cap


def slow_page(folder: Path, seconds: float) -> None:
    "A report page whose only cell takes `seconds`, then says it is done: its kernel is busy rendering meanwhile."
    cells = [nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})\nprint('slow page done')")]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                        "language": "python"}})
    nbformat.write(nb, folder / "slow.ipynb")


def first_renders_then(url: str, proc, then):
    """GET `url` in a thread; once its kernel is alive (and its page still rendering), call `then()`; then wait for the
    first page. (the first answer, what `then` returned, the peak of kernels alive throughout)."""
    with KernelCount(proc.pid) as kernels, ThreadPoolExecutor(1) as pool:
        first = pool.submit(fetch, url)
        deadline = time.monotonic() + 60
        while kernels.peak < 1 and time.monotonic() < deadline and not first.done(): time.sleep(0.1)
        assert kernels.peak == 1 and not first.done(), "the first request's kernel started and is rendering"
        got = then()
        return first.result(), got, kernels.peak


def test_busy_while_every_kernel_renders_then_room_again(root, tmp_path):
    """With a cap of 1: while the one kernel renders a slow page, a second request waits `busy_wait` (1 s), then is told
    'busy, retry' (and starts no kernel); once that page is complete, its kernel makes room for the next request."""
    pages = tmp_path / "pages"
    pages.mkdir()
    slow_page(pages, 8)
    server, port = reports_server(root, tmp_path / "voila.log", pages_folder=pages, max_kernels=1, busy_wait=1,
                                  retry_after=7)
    url = f"{base_url(port)}/voila/render/slow.ipynb"
    with server as proc:
        (status, _, body), second, peak = first_renders_then(url, proc, lambda: fetch(url))
        assert is_busy(second, 7, 1), second[:2]
        assert status == 200 and "slow page done" in body
        with KernelCount(proc.pid) as kernels:
            status, _, body = fetch(url)  # the first kernel's page is complete: it makes room for this one
        assert status == 200 and "slow page done" in body
        assert max(peak, kernels.peak) == 1, "one kernel alive at most, the cap"
    assert "kernels alive (cap 1): shutting down the longest idle" in (tmp_path / "voila.log").read_text()


def test_a_request_waits_for_a_kernel_to_finish_its_page(root, tmp_path):
    "With a cap of 1 and time to wait: a second request made while the kernel renders gets its page once that one is done."
    pages = tmp_path / "pages"
    pages.mkdir()
    slow_page(pages, 3)
    server, port = reports_server(root, tmp_path / "voila.log", pages_folder=pages, max_kernels=1, busy_wait=120)
    url = f"{base_url(port)}/voila/render/slow.ipynb"
    with server as proc:
        (status, _, body), (status2, _, body2), peak = first_renders_then(url, proc, lambda: fetch(url))
    assert status == status2 == 200 and "slow page done" in body and "slow page done" in body2
    assert peak == 1, f"{peak} kernels alive at once, the cap is 1"
