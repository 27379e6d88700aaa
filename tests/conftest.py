"Shared fixtures: the repository, the venv's command, the demo warehouse, scratch projects."
import os, shutil, subprocess, sys
from pathlib import Path

import pytest
import yaml

from mlops_nb.config import free_port  # noqa: F401  (the tests take their ports where the package takes its own)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WAREHOUSE = ROOT / "data" / "warehouse.db"


def mlops_nb(*args, cwd=None, timeout=600, env=None):
    "Run the `mlops-nb` command; return (exit code, stdout + stderr)."
    p = subprocess.run([str(BIN / "mlops-nb"), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **(env or {})})
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="session")
def warehouse():
    "The demo warehouse (built once, idempotent)."
    code, out = mlops_nb("demo", "init")
    assert code == 0, out
    return WAREHOUSE


def write_demo_project(root: Path, warehouse: Path) -> Path:
    "The demo project on its first week, rooted in `root` (its own runs and tracking store); the project file."
    data = yaml.safe_load((ROOT / "conf" / "project.yaml").read_text())
    data["root"] = str(root)
    data["sources"]["warehouse"]["url"] = f"sqlite:///{warehouse}"
    data["ingest"]["window"] = {"start": "2013-01-01", "end": "2013-01-08"}
    data["quality"]["profile"]["max_rows"] = 2000
    data["train"]["parallel"] = 1  # worker processes take longer to start than a week of flights takes to train
    f = root / "project.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


@pytest.fixture
def demo_project(tmp_path, warehouse):
    "The demo project on its first week, rooted in a scratch folder (its own runs and tracking store)."
    return write_demo_project(tmp_path, warehouse)


@pytest.fixture(scope="session")
def demo_week_run(tmp_path_factory, warehouse):
    """The demo project's first week run once in full, reports included, for the tests that only read a whole run
    (tests/test_pipeline.py's run contract, tests/test_reports.py's real reports): one run instead of one per test.
    Returns a namespace: project (file), root, run_dir, code and out (the command's exit code and output), and
    registry: the model registry as the run left it, {"champion": version or None, "challenger": version}, read
    before any test moves an alias or tags a version (test_reports approves the version)."""
    from types import SimpleNamespace
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    root = tmp_path_factory.mktemp("demo-week")
    f = write_demo_project(root, warehouse)
    code, out = mlops_nb("run", "--project", f)
    runs = [p for p in (root / "runs").iterdir() if p.is_dir()] if (root / "runs").exists() else []
    registry = {}
    if code == 0:
        uri = f"sqlite:///{root / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        for alias in ("champion", "challenger"):
            try: registry[alias] = client.get_model_version_by_alias("delay_model", alias)
            except MlflowException: registry[alias] = None
    return SimpleNamespace(project=f, root=root, run_dir=runs[0] if len(runs) == 1 else None, runs=runs,
                           code=code, out=out, registry=registry)


@pytest.fixture(autouse=True)
def _forget_mlflow_stores():
    "Tests share one process: a test that points MLflow's process-wide stores somewhere must not steer the next test."
    yield
    if "mlflow" in sys.modules:
        import mlflow
        mlflow.set_tracking_uri(None); mlflow.set_registry_uri(None)




@pytest.fixture(scope="session")
def week_champion(tmp_path_factory, warehouse):
    "The demo's first week run to a registered model (one HGB experiment), made champion by hand; (project file, tracking uri, run folder)."
    from mlflow import MlflowClient
    root = tmp_path_factory.mktemp("week-champion")
    data = yaml.safe_load((ROOT / "conf" / "project.yaml").read_text())
    data["root"] = str(root)
    data["sources"]["warehouse"]["url"] = f"sqlite:///{warehouse}"
    data["ingest"]["window"] = {"start": "2013-01-01", "end": "2013-01-08"}
    data["quality"]["profile"]["enabled"] = False
    data["train"] = {"parallel": 1, "experiments": [{"name": "trees", "family": "hist_gradient_boosting",
                                                     "hypothesis": "Boosted trees on every view rank late flights.", "params": {}}]}
    f = root / "project.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = mlops_nb("run", "--project", f, "--no-reports")
    assert code == 0, out
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("delay_model", "champion", "1")  # a week rarely passes the gates: promote by hand
    run_dir = next(p for p in (root / "runs").iterdir() if (p / "run.json").exists())
    return f, uri, run_dir
