"Each phase notebook passes nbdev-test on its own; the export is in sync; the docs pre-process."
import filecmp, shutil, subprocess, sys
from pathlib import Path

import pytest

from conftest import BIN, ROOT

NOTEBOOKS = sorted(p.name for p in (ROOT / "nbs").glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook(nb, warehouse):
    "nbdev-test, one notebook per process (as the nbdev-test command does), with IN_TEST set."
    p = subprocess.run([str(BIN / "nbdev-test"), "--flags", "", nb], cwd=ROOT / "nbs",
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "Success" in p.stdout, p.stdout[-3000:] + p.stderr[-6000:]


def test_export_in_sync(tmp_path):
    "nbdev-export of the notebooks reproduces mlops_nb/ exactly (nobody edited the generated code)."
    for name in ("pyproject.toml", "nbs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    (tmp_path / "mlops_nb").mkdir()
    shutil.copy(ROOT / "mlops_nb" / "__init__.py", tmp_path / "mlops_nb")
    subprocess.run([str(BIN / "nbdev-export")], cwd=tmp_path, check=True, capture_output=True, timeout=120)
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
