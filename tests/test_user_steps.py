"""A project's own steps (issue 16): `mlops-nb new-step` writes and declares one, a run executes, records and reuses it,
it runs alone on the latest run's outputs, it fails like any step; the demo's own step and its place in the overview report.

The whole runs here are small: design, ingest and the new step on the demo warehouse's first week (about 15 s each)."""
import json, os, re, subprocess

import nbformat
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from conftest import BIN, ROOT, demo_data, mlops_nb
from mlops_nb.config import file_digest, frame_digest, load_project


def commented_demo(folder) -> "Path":
    "The demo's project file as its authors wrote it (comments, wrapped lines), rooted in `folder`, reading the checkout's warehouse."
    text = (ROOT / "conf" / "project.yaml").read_text()
    text = text.replace("root: ..   # paths below", f"root: {folder}   # paths below")
    text = text.replace("url: sqlite:///data/warehouse.db", f"url: sqlite:///{ROOT / 'data' / 'warehouse.db'}")
    text = text.replace("notebook: conf/steps/", f"notebook: {ROOT}/conf/steps/")
    f = folder / "project.yaml"
    f.write_text(text)
    return f


def test_starter_writes_and_declares(tmp_path, warehouse):
    "The notebook keeps the step contract; the entry goes after its need; every line the authors wrote stays as it was."
    f = commented_demo(tmp_path)
    before = f.read_text()
    code, out = mlops_nb("new-step", "by_carrier", "--needs", "ingest", "--project", f)
    assert code == 0, out
    nb_path = tmp_path / "steps" / "by_carrier.ipynb"
    assert f"wrote {nb_path}" in out and "mlops-nb run --project" in out and "lab --ip=127.0.0.1" in out
    after = f.read_text()
    entry = "  - name: by_carrier\n    notebook: steps/by_carrier.ipynb\n    needs: [ingest]\n    outputs: [by_carrier_summary.parquet]\n"
    assert after == before.replace("  - {name: ingest}\n", "  - {name: ingest}\n" + entry)  # only the entry added, after its need
    lp = load_project(f)
    assert [s.name for s in lp.steps][:4] == ["design", "ingest", "by_carrier", "quality"]
    nb = nbformat.read(nb_path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'project_file = "../project.yaml"' in params[0].source
    assert "run_dir = None" in params[0].source and "mlflow_run_id = None" in params[0].source
    work = "\n".join(c.source for c in nb.cells if "step" in c.metadata.get("tags", []))
    assert 'open_step("by_carrier", project_file, run_dir, mlflow_run_id)' in work
    assert 'step.artifact("ingest", "flights.parquet")' in work and 'step.save_parquet("by_carrier_summary.parquet"' in work
    assert work.rstrip().endswith("step.finish()")


@pytest.mark.parametrize("args, says", [
    (["By-Carrier", "--needs", "ingest"], "lower-case letters"),
    (["delays_by_hour"], "already declared"),
    (["all"], "keeps this name"),
    (["monitor"], "keeps this name"),
    (["new_step"], "`mlops-nb new-step` is a command"),
    (["by_carrier", "--needs", "qualty"], "did you mean 'quality'?"),
    (["delays"], "exists: choose another name"),  # the notebook is there already
    (["clash", "--needs", "ingest"], "output names are unique"),  # the new project file would not validate
])
def test_starter_refuses_and_writes_nothing(tmp_path, warehouse, capsys, args, says):
    "Exit code 2 and a message naming what to fix; the project file and the steps folder as they were (in-process: no start-up per case)."
    from mlops_nb.cli import main
    f = commented_demo(tmp_path)
    f.write_text(f.read_text().replace("outputs: [delays_by_hour.parquet,", "outputs: [clash_summary.parquet, delays_by_hour.parquet,"))
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "delays.ipynb").write_text("{}")
    before = f.read_bytes()
    code = main(["new-step", *args, "--project", str(f)])
    out = capsys.readouterr()
    assert code == 2 and says in out.err, out
    assert f.read_bytes() == before and sorted(p.name for p in (tmp_path / "steps").iterdir()) == ["delays.ipynb"]
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "steps").glob(".*.tmp"))


@pytest.fixture(scope="module")
def small(tmp_path_factory, warehouse):
    """A project of design, ingest and a step the starter wrote (`by_table`, needing ingest), on the demo's first week,
    run once: (project file, notebook, first run's folder)."""
    root = tmp_path_factory.mktemp("own-step")
    data = demo_data(root, warehouse)
    data["ingest"]["window"] = {"start": "2013-01-01", "end": "2013-01-08"}
    data["quality"]["profile"]["enabled"] = False
    data["pipeline"] = [{"name": "design"}, {"name": "ingest"}]
    f = root / "project.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = mlops_nb("new-step", "by_table", "--needs", "ingest", "--project", f)
    assert code == 0, out
    code, out = mlops_nb("run", "--project", f, "--no-reports")
    assert code == 0, out
    return f, root / "steps" / "by_table.ipynb", newest_run(root)


def newest_run(root):
    return max((p for p in (root / "runs").iterdir() if (p / "run.json").exists()), key=lambda p: p.name)


def step_record(run_dir, name="by_table"):
    rec = json.loads((run_dir / "run.json").read_text())
    return rec, next(s for s in rec["steps"] if s["name"] == name)


def test_run_records_the_step(small):
    "The starter's step runs in `mlops-nb run`: run.json, its outputs with digests, its executed notebook, its MLflow run."
    _, _, run_dir = small
    rec, st = step_record(run_dir)
    assert rec["status"] == "succeeded" and [s["name"] for s in rec["steps"]] == ["design", "ingest", "by_table"]
    assert st["status"] == "succeeded" and st["notebook"].endswith("steps/by_table.ipynb") and st["needs"] == ["ingest"]
    out = st["outputs"]["by_table_summary.parquet"]
    summary = pd.read_parquet(run_dir / out["path"])
    assert out["digest"] == frame_digest(summary) and out["rows"] == len(summary)
    assert {"column", "dtype", "missing", "distinct"} <= set(summary.columns) and "arr_delay" in set(summary.column)
    executed = run_dir / st["executed_notebook"]
    assert executed.exists() and "injected-parameters" in executed.read_text()
    client = MlflowClient(rec["mlflow"]["tracking_uri"])
    r = client.get_run(st["mlflow_run_id"])
    assert r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == rec["mlflow"]["parent_run_id"]
    assert r.data.tags["output.by_table_summary.parquet"] == out["digest"]
    assert [a.path for a in client.list_artifacts(r.info.run_id, "notebook")] == ["notebook/by_table.ipynb"]


def test_reused_then_run_again_after_an_edit(small):
    "Unchanged, the step is reused; once a cell tagged `step` changes, it runs again and says why."
    f, nb_path, _ = small
    code, out = mlops_nb("run", "--project", f, "--no-reports")
    assert code == 0, out
    rec, st = step_record(newest_run(f.parent))
    assert [s["status"] for s in rec["steps"]] == ["reused", "reused", "reused"], out
    assert st["outputs"]["by_table_summary.parquet"]["digest"]
    nb = nbformat.read(nb_path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "step.save_parquet" in c.source)
    cell.source = cell.source.replace("summary = pd.DataFrame(", "summary = pd.DataFrame(  # by column\n    ")
    nbformat.write(nb, nb_path)
    code, out = mlops_nb("run", "--project", f, "--no-reports")
    assert code == 0, out
    rec, st = step_record(newest_run(f.parent))
    assert [s["status"] for s in rec["steps"]] == ["reused", "reused", "succeeded"], out
    assert "changed since run" in st["executed_because"] and "cells" in st["executed_because"]


def test_runs_alone_on_the_latest_run(small):
    "Executed without parameters in its folder (as JupyterLab does), the notebook reads the latest run's outputs into runs/_dev."
    f, nb_path, _ = small
    executed = nb_path.parent / "alone.ipynb"
    env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}  # as a person's JupyterLab: into <root>/runs/_dev
    p = subprocess.run([str(BIN / "papermill"), nb_path.name, executed.name, "--cwd", ".", "--no-progress-bar"],
                       cwd=nb_path.parent, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    latest = newest_run(f.parent)
    assert f"step 'ingest': the outputs of run {latest.name}" in executed.read_text()
    _, st = step_record(latest)
    mine = json.loads((f.parent / "runs" / "_dev" / "artifacts" / "by_table" / "outputs.json").read_text())
    assert mine["outputs"]["by_table_summary.parquet"]["digest"] == st["outputs"]["by_table_summary.parquet"]["digest"]
    executed.unlink()


def test_a_failing_step_stops_the_run(small):
    "A cell that raises ends the run with exit code 1 and one line naming the step, the cell and the reason."
    f, nb_path, _ = small
    original = nb_path.read_bytes()
    nb = nbformat.read(nb_path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "step.save_parquet" in c.source)
    cell.source = 'raise ValueError("no flights to summarise")\n' + cell.source
    nbformat.write(nb, nb_path)
    try: code, out = mlops_nb("run", "--project", f, "--no-reports")
    finally: nb_path.write_bytes(original)
    assert code == 1, out
    assert re.search(r"FAILED step by_table, cell \d+: ValueError: no flights to summarise", out), out
    rec, st = step_record(newest_run(f.parent))
    assert rec["status"] == "failed" and st["status"] == "failed" and st["error"]["ename"] == "ValueError"
    assert (newest_run(f.parent) / st["executed_notebook"]).exists() and not st["outputs"]


def test_demo_step_and_its_report(demo_week_run):
    "The demo's own step runs in the demo's week run; the frozen overview shows its summary, figure and table."
    assert demo_week_run.code == 0, demo_week_run.out
    run_dir = demo_week_run.run_dir
    rec, st = step_record(run_dir, "delays_by_hour")
    assert st["status"] == "succeeded" and st["needs"] == ["quality"]
    assert set(st["outputs"]) == {"delays_by_hour.parquet", "delays_by_hour.png", "delays_by_hour.md"}
    for o in st["outputs"].values():
        path = run_dir / o["path"]
        assert o["digest"] == (frame_digest(pd.read_parquet(path)) if path.suffix == ".parquet" else file_digest(path))
    table = pd.read_parquet(run_dir / st["outputs"]["delays_by_hour.parquet"]["path"])
    assert set(table.origin) == {"EWR", "JFK", "LGA"} and table.hour.between(0, 23).all() and (table.late <= table.flights).all()
    summary = (run_dir / st["outputs"]["delays_by_hour.md"]["path"]).read_text()
    assert re.search(r"Flights leaving \*\*(EWR|JFK|LGA)\*\* from 17:00 on arrive late \*\*\d+\.\dx\*\*", summary), summary
    page = (run_dir / rec["reports"]["overview"]).read_text()
    assert "The project&#39;s own steps" in page or "The project's own steps" in page
    assert re.search(r'<img [^>]*alt="delays_by_hour.png"[^>]*src="data:image/png;base64,', page)  # the figure, embedded
    assert "<strong>EWR</strong>" in page and "<td>EWR</td>" in page
