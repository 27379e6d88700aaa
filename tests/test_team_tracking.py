"""Team mode, tracking and registry: the demo's first week run against a real `mlflow server` on PostgreSQL, with basic
auth, its artifacts stored and proxied by the server (tests/servers.py starts both on 127.0.0.1). Credentials come from
the environment only; a missing or wrong one, or a user who may only read, is refused with exit code 2 and a line
naming the server and its answer. The server restarts between two runs."""
import json, os, subprocess, sys
from types import SimpleNamespace

import pytest
import yaml
from mlflow import MlflowClient

from conftest import mlops_nb, write_demo_project
from mlops_nb.cli import main

MODEL = "delay_model"


def team_project(root, warehouse, uri: str):
    """The demo's first week on the tracking server `uri`: one experiment, no profile (fast), gates a week passes (so
    that the run promotes its model and deploys it); the project file."""
    f = write_demo_project(root, warehouse)
    data = yaml.safe_load(f.read_text())
    data["tracking"] = {"uri": uri}
    for m, low in zip(data["design"]["key_metrics"], (0.5, 0.0, -1e12)): m["threshold"] = low
    data["quality"]["profile"]["enabled"] = False
    data["train"]["experiments"] = [{"name": "trees", "family": "hist_gradient_boosting",
                                     "hypothesis": "Boosted trees on every view rank late flights.", "params": {}}]
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


@pytest.fixture
def cli(capsys, monkeypatch):
    """`cli(*args, env=...)`: `mlops-nb ARGS` in this process (a refusal needs no new process), with only `env`'s MLflow
    credentials in the environment; (exit code, what it printed)."""
    def run(*args, env: dict = None):
        for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"): monkeypatch.delenv(k, raising=False)
        for k, v in (env or {}).items(): monkeypatch.setenv(k, v)
        code = main(list(map(str, args)))
        printed = capsys.readouterr()
        return code, printed.out + printed.err
    return run


def run_dirs(root) -> set:
    return {p.name for p in (root / "runs").iterdir() if p.is_dir()} if (root / "runs").exists() else set()


@pytest.fixture(scope="module")
def team_week(mlflow_server, tmp_path_factory, warehouse):
    """The week run as the server's admin, reports included. A namespace: project (file), root, run_dir, out, client
    (the server's registry, to call as admin)."""
    root = tmp_path_factory.mktemp("team-week")
    f = team_project(root, warehouse, mlflow_server.uri)
    code, out = mlops_nb("run", "--project", f, env=mlflow_server.admin_env)
    assert code == 0, out
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    (run_dir,) = [root / "runs" / r for r in run_dirs(root)]
    return SimpleNamespace(project=f, root=root, run_dir=run_dir, out=out, client=client)


def test_the_week_is_tracked_and_registered_on_the_server(team_week, mlflow_server):
    rec = json.loads((team_week.run_dir / "run.json").read_text())
    assert rec["status"] == "succeeded" and rec["mlflow"]["tracking_uri"] == mlflow_server.uri
    with mlflow_server.as_admin():
        client = team_week.client
        assert client.get_run(rec["mlflow"]["parent_run_id"]).info.status == "FINISHED"
        assert client.get_model_version_by_alias(MODEL, "challenger").version == "1"
        assert client.get_model_version_by_alias(MODEL, "champion").version == "1"  # promoted by the run
        exp = client.get_experiment(rec["mlflow"]["experiment_id"])
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location  # the server's, proxied
    # every artifact went through the server: none under the project's folder, the model's files in the server's store
    assert not list(team_week.root.rglob("mlartifacts")), list(team_week.root.rglob("mlartifacts"))
    assert list((mlflow_server.folder / "artifacts").rglob("MLmodel"))
    assert "View run" not in team_week.out  # MLflow's per-run URL lines stay out of a scheduler's log
    # the deploy step served the champion from the server and smoke-tested it; its bundle names the server's registry
    deploy = team_week.run_dir / "artifacts" / "deploy"
    assert json.loads((deploy / "smoke.json").read_text())["deployed"]
    assert json.loads((deploy / "bundle" / "model.json").read_text())["tracking_uri"] == mlflow_server.uri
    assert yaml.safe_load((deploy / "bundle" / "project.yaml").read_text())["tracking"]["uri"] == mlflow_server.uri
    docker = (deploy / "bundle" / "Dockerfile").read_text()  # the image is told the server, and takes a user at run time
    assert f"tracking server {mlflow_server.uri}" in docker and "-e MLFLOW_TRACKING_USERNAME -e MLFLOW_TRACKING_PASSWORD" in docker


def test_another_process_loads_the_champion_from_the_server_alone(team_week, mlflow_server, tmp_path):
    "A process with no project folder, only the server's address and a user, loads `models:/delay_model@champion`."
    code = ("import mlflow.sklearn; m = mlflow.sklearn.load_model('models:/delay_model@champion'); "
            "print(type(m).__name__, hasattr(m, 'predict_proba'))")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": mlflow_server.uri, **mlflow_server.admin_env}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.split()[-1] == "True", p.stdout + p.stderr


def test_no_credential_is_written_anywhere(team_week, mlflow_server):
    "run.json, the project.yaml copies, executed notebooks, logs and reports: no file of the project holds the password."
    files = [p for p in team_week.root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and (team_week.run_dir / "project.yaml").exists()
    leaks = [p for p in files if mlflow_server.admin_password.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert mlflow_server.admin_password not in team_week.out


def test_a_uri_with_a_password_is_refused(team_week, mlflow_server, cli):
    before = run_dirs(team_week.root)
    bad = mlflow_server.uri.replace("http://", f"http://admin:{mlflow_server.admin_password}@")
    code, out = cli("run", "--project", team_week.project, "--set", f"tracking.uri={bad}", env=mlflow_server.admin_env)
    assert code == 2, out
    assert "has credentials in it" in out and "MLFLOW_TRACKING_PASSWORD in the environment" in out, out
    assert mlflow_server.admin_password not in out and run_dirs(team_week.root) == before


def test_missing_or_wrong_credentials_end_with_a_401_line(team_week, mlflow_server, cli):
    before = run_dirs(team_week.root)
    code, out = cli("run", "--project", team_week.project)
    assert code == 2 and f"the tracking server {mlflow_server.uri} answered 401 (not authenticated: no user given)" in out, out
    assert run_dirs(team_week.root) == before  # refused before a run folder exists
    code, out = cli("rollback", MODEL, "--to", "1", "--project", team_week.project, env=mlflow_server.user_env("admin", "not-the-password"))
    assert code == 2 and f"{mlflow_server.uri} answered 401 (not authenticated as user 'admin'" in out, out


def test_a_reader_is_refused_moving_champion(team_week, mlflow_server, cli):
    mlflow_server.add_user("reader", "reader-password-1")
    reader = mlflow_server.user_env("reader", "reader-password-1")
    code, out = cli("rollback", MODEL, "--to", "1", "--project", team_week.project, env=reader)
    assert code == 2, out
    assert (f"the tracking server {mlflow_server.uri} answered 403 (permission denied): user 'reader' may not move the "
            f"`champion` alias of model '{MODEL}'") in out, out
    code, out = cli("approve", MODEL, "1", "--by", "Reader", "--project", team_week.project, env=reader)
    assert code == 2 and "answered 403" in out and "user 'reader' may not approve version 1" in out, out
    with mlflow_server.as_admin():
        mv = team_week.client.get_model_version(MODEL, "1")
    assert "approved_by" not in mv.tags  # nothing half-written


def test_a_restarted_server_serves_the_next_run(team_week, mlflow_server):
    """The server restarts (same port, database, artifacts); the next run finds its records (every step but the forced
    deploy is reused) and deploys the champion again, loaded through the restarted server."""
    mlflow_server.restart()
    before = run_dirs(team_week.root)
    code, out = mlops_nb("run", "--project", team_week.project, "--force", "deploy", "--no-reports", env=mlflow_server.admin_env)
    assert code == 0, out
    (new,) = run_dirs(team_week.root) - before
    rec = json.loads((team_week.root / "runs" / new / "run.json").read_text())
    status = {s["name"]: s["status"] for s in rec["steps"]}
    assert status.pop("deploy") == "succeeded" and set(status.values()) == {"reused"}, rec["steps"]
    smoke = json.loads((team_week.root / "runs" / new / "artifacts" / "deploy" / "smoke.json").read_text())
    assert smoke["deployed"] and smoke["version"] == "1", smoke
    assert not list(team_week.root.rglob("mlartifacts"))
