"Each phase notebook passes nbdev-test on its own; the export is in sync; the docs pre-process."
import filecmp, os, shutil, subprocess, sys
from pathlib import Path

import pytest

from conftest import BIN, ROOT

NOTEBOOKS = sorted(p.name for p in (ROOT / "nbs").glob("[0-9]*.ipynb"))
WORKERS = 2  # notebooks tested at once, as `nbdev-test` on the folder does (min(cpus, 8) workers; CI has 2 cores)


def nbdev_test(nb: str) -> subprocess.CompletedProcess:
    "nbdev-test on one notebook in its own process (as the nbdev-test command does), with IN_TEST set."
    return subprocess.run([str(BIN / "nbdev-test"), "--flags", "", nb], cwd=ROOT / "nbs",
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def notebook_tests(request, warehouse):
    "The selected notebooks' nbdev-test processes, WORKERS at a time, the slowest known first; {notebook: future}."
    from concurrent.futures import ThreadPoolExecutor
    wanted = [nb for nb in NOTEBOOKS if any(i.name == f"test_notebook[{nb}]" for i in request.session.items)]
    slow_first = sorted(wanted, key=lambda nb: nb not in ("05_train.ipynb", "06_deploy.ipynb", "91_reports.ipynb", "95_reports_model.ipynb"))
    pool = ThreadPoolExecutor(WORKERS)
    futures = {nb: pool.submit(nbdev_test, nb) for nb in slow_first}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook(nb, notebook_tests):
    "nbdev-test, one notebook per process (as the nbdev-test command does), with IN_TEST set; two at a time."
    p = notebook_tests[nb].result()
    assert p.returncode == 0 and "Success" in p.stdout, p.stdout[-3000:] + p.stderr[-6000:]


def test_export_in_sync(tmp_path):
    "nbdev-export of the notebooks reproduces mlops_nb/ exactly (nobody edited the generated code)."
    for name in ("pyproject.toml", "nbs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    (tmp_path / "mlops_nb").mkdir()
    shutil.copy(ROOT / "mlops_nb" / "__init__.py", tmp_path / "mlops_nb")
    env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}  # nbdev-export exports nothing under IN_TEST
    subprocess.run([str(BIN / "nbdev-export")], cwd=tmp_path, check=True, capture_output=True, timeout=120, env=env)
    cmp = filecmp.dircmp(ROOT / "mlops_nb", tmp_path / "mlops_nb", ignore=["__pycache__"])
    assert not (cmp.diff_files or cmp.left_only or cmp.right_only), (
        f"run nbdev-export and commit: differs {cmp.diff_files}, only in repo {cmp.left_only}, only exported {cmp.right_only}")


def test_docs_preprocess(tmp_path):
    "The documentation pre-processing (what nbdev-docs feeds quarto) succeeds for every notebook."
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "mlops_nb", tmp_path / "mlops_nb")
    p = subprocess.run([str(BIN / "nbdev-proc-nbs")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    pages = {x.stem for x in (tmp_path / "_proc").rglob("*.ipynb")}
    assert {"index", "00_config", "01_design", "90_pipeline"} <= pages
