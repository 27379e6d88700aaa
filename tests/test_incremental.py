"""Steps as data and incremental runs, through the `mlops-nb` command: a declared pipeline of phases and the project's
own notebooks, refused when its declaration is wrong, and reused step by step when nothing a step depends on changed.

One small project (a CSV source, the design and ingest phases, two notebooks of its own) serves every test; each
test changes one part of a step's reuse key and checks which steps run again."""
import json, os
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import mlops_nb
from mlops_nb.runs import list_run_records


def notebook(path: Path, step_cells: list[str]) -> Path:
    "A step notebook: the parameters cell, then `step_cells`, each tagged `step`."
    cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"),
             nbformat.v4.new_code_cell("project_file = None\nrun_dir = None\nmlflow_run_id = None", metadata={"tags": ["parameters"]})]
    cells += [nbformat.v4.new_code_cell(src, metadata={"tags": ["step"]}) for src in step_cells]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, str(path))
    return path


AVERAGE = """from mlops_nb.config import open_step
import pandas as pd
from helpers import FACTOR
step = open_step("average", project_file, run_dir, mlflow_run_id)
df = pd.read_parquet(step.artifact("ingest", "table.parquet"))
step.save_json("average.json", {"x": float(df.x.mean()) * FACTOR, "rows": len(df)})
step.finish()"""

REPORT = """from mlops_nb.config import open_step
import json
step = open_step("report", project_file, run_dir, mlflow_run_id)
average = json.loads(step.artifact("average", "average.json").read_text())
step.save_text("report.md", f"The mean of x is {average['x']:.3f} on {average['rows']} rows.")
step.finish()"""


def write_project(root: Path, pipeline: list = None, **changes) -> Path:
    "A project on `root/table.csv` (inferred once) whose pipeline is design, ingest and the notebooks `average` and `report` (declared first)."
    from mlops_nb.cli import infer_project
    rng = np.random.default_rng(0)
    if not (root / "table.csv").exists():
        pd.DataFrame({"x": rng.normal(size=300), "kind": rng.choice(["a", "b"], 300), "y": rng.random(300) < 0.4}).to_csv(root / "table.csv", index=False)
        (root / "helpers.py").write_text("FACTOR = 2\n")
        notebook(root / "average.ipynb", [AVERAGE])
        notebook(root / "report.ipynb", [REPORT])
    f = root / "project.yaml"
    data = yaml.safe_load(f.read_text()) if f.exists() else {**infer_project(root / "table.csv", "y", name="small"), "root": str(root)}
    data["pipeline"] = pipeline if pipeline is not None else [
        {"name": "design"}, {"name": "ingest"},
        {"name": "report", "notebook": "report.ipynb", "needs": ["average"], "outputs": ["report.md"], "reads": []},
        {"name": "average", "notebook": "average.ipynb", "needs": ["ingest"], "outputs": ["average.json"], "reads": ["train"]}]
    data.update(changes)
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


def run(project: Path, *args, env=None) -> dict:
    "`mlops-nb run` (no reports: they are not what these tests check); the run's record, with its output and exit code."
    code, out = mlops_nb("run", "--project", project, "--no-reports", *args, env=env)
    rec = list_run_records(project.parent / "runs")[0]
    return {**rec, "code": code, "out": out, "by_step": {s["name"]: s for s in rec["steps"]}}


def ran(rec: dict) -> list[str]:
    "The steps a run executed (the others were reused)."
    assert rec["code"] == 0, rec["out"][-3000:]
    return [s["name"] for s in rec["steps"] if s["status"] == "succeeded"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    "The small project, run once in full: every step executes, in the declared order."
    root = tmp_path_factory.mktemp("small")
    project = write_project(root)
    first = run(project)
    return project, first


def test_a_declared_pipeline_runs_in_order_and_records_its_steps(small):
    project, first = small
    assert ran(first) == ["design", "ingest", "average", "report"]  # `report` is declared first but needs `average`
    report = first["by_step"]["report"]
    assert report["notebook"] == "report.ipynb" and report["needs"] == ["average"] and report["executed_notebook"] == "notebooks/report.ipynb"
    assert report["executed_because"] == "no earlier success" and set(report["reuse_key"]["parts"]) >= {"cells", "settings", "code", "upstream"}
    run_dir = project.parent / "runs" / first["run_id"]
    assert (run_dir / report["outputs"]["report.md"]["path"]).read_text().startswith("The mean of x is")
    from mlflow import MlflowClient
    client = MlflowClient(first["mlflow"]["tracking_uri"])
    nested = client.get_run(report["mlflow_run_id"])
    assert nested.info.status == "FINISHED" and nested.data.tags["mlflow.parentRunId"] == first["mlflow"]["parent_run_id"]
    assert nested.data.tags["output.report.md"] == report["outputs"]["report.md"]["digest"]


def test_nothing_changed_every_step_is_reused(small):
    project, first = small
    again = run(project)
    assert ran(again) == []
    for s in again["steps"]:
        assert s["status"] == "reused" and s["reused_from"] == first["run_id"], s
        assert s["reuse_key"]["digest"] == first["by_step"][s["name"]]["reuse_key"]["digest"]
        assert s["outputs"] == first["by_step"][s["name"]]["outputs"]  # the same files, hard-linked
    from mlflow import MlflowClient
    tags = MlflowClient(again["mlflow"]["tracking_uri"]).get_run(again["by_step"]["average"]["mlflow_run_id"]).data.tags
    assert tags["mlops_nb.reused_from"] == first["run_id"] and tags["mlops_nb.reused_mlflow_run_id"] == first["by_step"]["average"]["mlflow_run_id"]
    assert "reused in" in again["out"] and f"(from run {first['run_id']})" in again["out"]


def test_each_part_of_the_key_runs_the_step_and_only_what_follows_it(small, tmp_path):
    project, _ = small
    root = project.parent
    def because(rec, step): return rec["by_step"][step].get("executed_because", "")
    # cells: an edit of `average`'s step cell that changes its result
    nb = nbformat.read(str(root / "average.ipynb"), as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace('"rows": len(df)', '"rows": len(df), "edited": True')
    nbformat.write(nb, str(root / "average.ipynb"))
    rec = run(project)
    assert ran(rec) == ["average", "report"] and "cells" in because(rec, "average") and "upstream" in because(rec, "report")
    # an edit of the notebook's text only: nothing runs
    nb.cells[0].source += "\n\nA sentence more."
    nbformat.write(nb, str(root / "average.ipynb"))
    assert ran(run(project)) == []
    # code: the module beside the notebook, which the step imports
    (root / "helpers.py").write_text("FACTOR = 3\n")
    rec = run(project)
    assert ran(rec) == ["average", "report"] and because(rec, "average").endswith(": code")
    # settings: a section only `average` reads; its output stays the same, so `report` is reused
    rec = run(project, "--set", "train.split.seed=7")
    assert ran(rec) == ["average"] and because(rec, "average").endswith(": settings")
    assert rec["by_step"]["report"]["status"] == "reused"
    # sources: a row more in the CSV: ingest, then everything after it (design does not read the sources)
    with open(root / "table.csv", "a") as f: f.write("0.5,a,True\n")
    rec = run(project, "--set", "train.split.seed=7")
    assert ran(rec) == ["ingest", "average", "report"] and "sources" in because(rec, "ingest") and "upstream" in because(rec, "average")
    # environment: one distribution more on the path of the command
    dist = tmp_path / "site" / "bench_marker-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-marker\nVersion: 1.0\n")
    rec = run(project, "--set", "train.split.seed=7", env={"PYTHONPATH": str(tmp_path / "site")})
    assert ran(rec) == ["design", "ingest", "average", "report"] and "environment" in because(rec, "design")
    # parameters: --examples executes the notebooks' other cells too
    rec = run(project, "--set", "train.split.seed=7", "--examples", env={"PYTHONPATH": str(tmp_path / "site")})
    assert "parameters" in because(rec, "design")


def test_force_executes_a_step_and_unchanged_outputs_keep_the_rest_reused(small):
    project, _ = small
    run(project)  # whatever the earlier tests left: settled
    rec = run(project, "--force", "average")
    assert ran(rec) == ["average"] and rec["by_step"]["average"]["executed_because"].startswith("forced")
    assert rec["by_step"]["report"]["status"] == "reused"  # `average` wrote the same bytes: `report`'s key is unchanged
    assert ran(run(project, "--force", "all")) == ["design", "ingest", "average", "report"]
    code, out = mlops_nb("run", "--project", project, "--force", "averag")
    assert code == 2 and "--force 'averag': no such step" in out


def test_a_step_declared_not_reusable_runs_every_time(small, tmp_path):
    project = write_project(small[0].parent, pipeline=[{"name": "design"}, {"name": "ingest"},
        {"name": "average", "notebook": "average.ipynb", "needs": ["ingest"], "outputs": ["average.json"], "reads": ["train"], "reuse": False}])
    try:
        rec = run(project)
        assert ran(rec) == ["average"] and "reuse: false" in rec["by_step"]["average"]["executed_because"]
    finally: write_project(project.parent)


BAD = [  # (what is wrong, the pipeline or a change to the project, what the error names)
    ("unknown notebook", [{"name": "gone", "notebook": "gone.ipynb"}], ["`pipeline[0].notebook`", "gone.ipynb: no such notebook"]),
    ("missing notebook", [{"name": "mine"}], ["`pipeline[0].notebook` is missing", "'mine'"]),
    ("no parameters cell", [{"name": "bare", "notebook": "bare.ipynb"}], ["`pipeline[0].notebook`", "no cell tagged `parameters`"]),
    ("no step cells", [{"name": "nostep", "notebook": "nostep.ipynb"}], ["`pipeline[0].notebook`", "no cell tagged `step`"]),
    ("a cycle", [{"name": "average", "notebook": "average.ipynb", "needs": ["report"]},
                 {"name": "report", "notebook": "report.ipynb", "needs": ["average"]}], ["`pipeline` has a cycle", "average -> report -> average"]),
    ("unknown need", [{"name": "ingest"}, {"name": "average", "notebook": "average.ipynb", "needs": ["ingset"]}],
     ["`pipeline[1].needs` names 'ingset'", "did you mean 'ingest'"]),
    ("same output twice", [{"name": "average", "notebook": "average.ipynb", "outputs": ["a.json"]},
                           {"name": "report", "notebook": "report.ipynb", "outputs": ["a.json"]}], ["`pipeline[1].outputs` names 'a.json'", "'average'"]),
    ("a command's name", [{"name": "serve", "notebook": "average.ipynb"}], ["`pipeline[0].name` is 'serve'", "mlops-nb serve"]),
    ("a reserved name", [{"name": "all", "notebook": "average.ipynb"}], ["`pipeline[0].name` is 'all'"]),
    ("a step twice", [{"name": "ingest"}, {"name": "ingest"}], ["`pipeline[1].name` is 'ingest' again"]),
]


def test_bad_declarations_are_refused_before_anything_runs(tmp_path):
    write_project(tmp_path)
    notebook(tmp_path / "nostep.ipynb", [])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["step"]})])
    nbformat.write(nb, str(tmp_path / "bare.ipynb"))
    for what, pipeline, expected in BAD:
        project = write_project(tmp_path, pipeline=pipeline)
        code, out = mlops_nb("run", "--project", project, "--no-reports")
        assert code == 2, (what, out)
        for e in expected: assert e in out, (what, e, out)
        assert not (tmp_path / "runs").exists() or not [p for p in (tmp_path / "runs").iterdir() if p.is_dir()], what
