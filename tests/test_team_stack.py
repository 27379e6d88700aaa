"""The local team stack: `mlops-nb team up` starts PostgreSQL, `mlflow server`, Redis and a Dask scheduler with two
workers on 127.0.0.1 and writes the project file on them; the demo's first week runs through it (tracking and
registry on the server, trials on Dask, the prediction log and the Feast registry on PostgreSQL, online features in
Redis); the whole stack stops and starts again, and the next run carries on where the first left off;
`team down` leaves nothing running. Nothing is mocked.

The tracking server's guarantees are proved on the same week: credentials come from the environment only; a missing
or wrong one, or a user who may only read, is refused with exit code 2 and a line naming the server and its answer;
another process loads the champion from the server alone."""
import json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import pytest
import requests
import yaml
from mlflow import MlflowClient

from conftest import BIN, free_port, mlops_nb, running_server, write_demo_project
from mlops_nb.cli import main
from mlops_nb.feature_store import applied_views, open_store
from mlops_nb.team import alive, daemon_pid, port_open, read_env, team_status

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed (make test installs it)")
SERVERS = {"postgres", "mlflow", "redis", "dask-scheduler", "dask-worker-1", "dask-worker-2"}
MODEL = "delay_model"


def running(folder: Path) -> set:
    return {name for name, state, _ in team_status(folder) if state == "running"}


@pytest.fixture(scope="module")
def stack(warehouse):
    """The stack in a folder the postgres user may enter (pytest's own are private), the demo's week as its project,
    with gates a week passes (so that the run promotes and deploys). Stopped and removed at the end."""
    top = Path(tempfile.mkdtemp(prefix="mlops-nb-team-"))
    os.chmod(top, 0o755)
    base = write_demo_project(top, warehouse)
    data = yaml.safe_load(base.read_text())
    for m, low in zip(data["design"]["key_metrics"], (0.5, 0.0, -1e12)): m["threshold"] = low
    data["quality"]["profile"]["enabled"] = False
    data["train"]["experiments"] = [{"name": "trees", "family": "hist_gradient_boosting", "hypothesis": "Boosted trees rank late flights.",
                                     "params": {}},
                                    {"name": "linear", "family": "logistic_regression", "hypothesis": "A linear model is a baseline.",
                                     "params": {}}]
    base.write_text(yaml.safe_dump(data, sort_keys=False))
    folder = top / ".team"
    code, out = mlops_nb("team", "up", "--project", base, "--dir", folder, timeout=600)
    try:
        assert code == 0, out
        yield folder, base, out
    finally:
        mlops_nb("team", "down", "--dir", folder)
        shutil.rmtree(top, ignore_errors=True)


def test_team_up_starts_every_server_and_writes_the_project_on_them(stack):
    folder, base, out = stack
    assert running(folder) == SERVERS, team_status(folder)
    assert "next: set -a; . " in out and "project.yaml" in out
    ports = json.loads((folder / "stack.json").read_text())["ports"]
    assert all(port_open(ports[k]) for k in ("postgres", "mlflow", "redis", "dask"))
    overlay = yaml.safe_load((folder / "project.yaml").read_text())
    assert (folder / overlay["extends"]).resolve() == base.resolve()
    assert overlay["tracking"]["uri"] == f"http://127.0.0.1:{ports['mlflow']}"
    assert overlay["compute"] == {"backend": "dask", "address": f"tcp://127.0.0.1:{ports['dask']}"}
    # the credentials are in `env`, readable by its owner only, and nowhere in the project file
    env = read_env(folder / "env")
    assert oct((folder / "env").stat().st_mode & 0o777) == "0o600"
    assert env["PGPASSWORD"] not in (folder / "project.yaml").read_text() and env["MLFLOW_TRACKING_PASSWORD"] not in (folder / "project.yaml").read_text()
    # a second `up` starts nothing and keeps the ports
    pids = {n: daemon_pid(folder, n) for n in SERVERS - {"postgres"}}
    code, again = mlops_nb("team", "up", "--project", base, "--dir", folder)
    assert code == 0 and "mlflow: running" in again, again
    assert {n: daemon_pid(folder, n) for n in pids} == pids
    assert json.loads((folder / "stack.json").read_text())["ports"] == ports


@pytest.fixture(scope="module")
def week(stack):
    "The demo's week run once through the stack, reports included: (stack folder, project root, run folder, the clients' environment, output)."
    folder, base, _ = stack
    env = read_env(folder / "env")
    code, out = mlops_nb("run", "--project", folder / "project.yaml", env=env, timeout=1200)
    assert code == 0, out
    (run_dir,) = [p for p in (base.parent / "runs").iterdir() if (p / "run.json").exists()]
    return folder, base.parent, run_dir, env, out


def run_dirs(root) -> set:
    return {p.name for p in (root / "runs").iterdir() if p.is_dir()} if (root / "runs").exists() else set()


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


def test_the_week_runs_on_the_servers(week, monkeypatch):
    folder, root, run_dir, env, out = week
    for k, v in env.items(): monkeypatch.setenv(k, v)  # this process reads the stack's registry too
    rec = json.loads((run_dir / "run.json").read_text())
    ports = json.loads((folder / "stack.json").read_text())["ports"]
    uri = f"http://127.0.0.1:{ports['mlflow']}"
    assert rec["status"] == "succeeded" and rec["mlflow"]["tracking_uri"] == uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_run(rec["mlflow"]["parent_run_id"]).info.status == "FINISHED"
    assert client.get_model_version_by_alias(MODEL, "challenger").version == "1"
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"  # promoted by the run
    assert client.get_experiment(rec["mlflow"]["experiment_id"]).artifact_location.startswith("mlflow-artifacts:")  # the server's, proxied
    # every artifact went through the server: none under the project's folder, the model's files in the server's store
    assert not list(root.rglob("mlartifacts")) and not (root / "mlflow.db").exists()
    assert list((folder / "mlflow").rglob("MLmodel"))
    assert "View run" not in out  # MLflow's per-run URL lines stay out of a scheduler's log
    # the deploy step's bundle names the server's registry; the image is told the server, and takes a user at run time
    deploy = run_dir / "artifacts" / "deploy"
    assert json.loads((deploy / "bundle" / "model.json").read_text())["tracking_uri"] == uri
    docker = (deploy / "bundle" / "Dockerfile").read_text()
    assert f"tracking server {uri}" in docker and "-e MLFLOW_TRACKING_USERNAME -e MLFLOW_TRACKING_PASSWORD" in docker
    # the features step published to the stack's registry, in the project's namespace; promoted, the version's
    # features went to the stack's Redis before the deploy step's smoke test (the service read them), and it said so
    applied = json.loads((run_dir / "artifacts" / "features" / "feature_views.json").read_text())["applied"]
    assert applied["namespace"] == "flights" and applied["registry"] == "sql", applied
    assert applied_views(open_store(run_dir / "artifacts" / "features" / "feature_repo")) == applied["views"]
    smoke = json.loads((run_dir / "artifacts" / "deploy" / "smoke.json").read_text())
    assert smoke["deployed"] and smoke["online_features"]["materialized"] and smoke["online_features"]["namespace"] == "flights", smoke
    assert smoke["online_features"]["views"] == applied["views"]
    trained = json.loads((run_dir / "artifacts" / "train" / "outputs.json").read_text())["params"]
    assert f"tcp://127.0.0.1:{ports['dask']}" in trained["compute"], trained  # the trials ran on the stack's cluster



def test_no_credential_is_written_anywhere(week):
    "run.json, the project.yaml copies, executed notebooks, logs and reports: no file of the project holds a password."
    folder, root, run_dir, env, out = week
    files = [p for p in root.rglob("*") if p.is_file() and folder not in p.parents]
    assert any(p.suffix == ".html" for p in files) and (run_dir / "project.yaml").exists()
    secrets = [env["PGPASSWORD"].encode(), env["MLFLOW_TRACKING_PASSWORD"].encode()]
    assert not [p for p in files if any(s in p.read_bytes() for s in secrets)]
    assert env["MLFLOW_TRACKING_PASSWORD"] not in out and env["PGPASSWORD"] not in out


def test_another_process_loads_the_champion_from_the_server_alone(week, tmp_path):
    "A process with no project folder, only the server's address and a user, loads `models:/delay_model@champion`."
    folder, root, run_dir, env, out = week
    uri = json.loads((run_dir / "run.json").read_text())["mlflow"]["tracking_uri"]
    code = ("import mlflow.sklearn; m = mlflow.sklearn.load_model('models:/delay_model@champion'); "
            "print(type(m).__name__, hasattr(m, 'predict_proba'))")
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": uri,
             **{k: env[k] for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.split()[-1] == "True", p.stdout + p.stderr


def test_credentials_come_from_the_environment_only(week, cli):
    "A URI with a password is refused, hiding it; no user, or a wrong password, ends with the server's 401 in one line."
    folder, root, run_dir, env, out = week
    project, uri, password = folder / "project.yaml", json.loads((run_dir / "run.json").read_text())["mlflow"]["tracking_uri"], env["MLFLOW_TRACKING_PASSWORD"]
    before = run_dirs(root)
    code, said = cli("run", "--project", project, "--set", f"tracking.uri={uri.replace('http://', f'http://admin:{password}@')}", env=env)
    assert code == 2 and "has credentials in it" in said and "MLFLOW_TRACKING_PASSWORD in the environment" in said, said
    assert password not in said
    code, said = cli("run", "--project", project, env={k: v for k, v in env.items() if not k.startswith("MLFLOW_")})
    assert code == 2 and f"the tracking server {uri} answered 401 (not authenticated: no user given)" in said, said
    assert run_dirs(root) == before  # refused before a run folder exists
    code, said = cli("rollback", MODEL, "--to", "1", "--project", project,
                     env={**env, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "not-the-password"})
    assert code == 2 and f"{uri} answered 401 (not authenticated as user 'admin'" in said, said


def test_a_reader_is_refused_moving_champion(week, cli, monkeypatch):
    folder, root, run_dir, env, out = week
    project, uri = folder / "project.yaml", json.loads((run_dir / "run.json").read_text())["mlflow"]["tracking_uri"]
    from mlflow.server import get_app_client
    for k, v in env.items(): monkeypatch.setenv(k, v)
    get_app_client("basic-auth", tracking_uri=uri).create_user("reader", "reader-password-1")  # the server's default: read only
    reader = {**env, "MLFLOW_TRACKING_USERNAME": "reader", "MLFLOW_TRACKING_PASSWORD": "reader-password-1"}
    code, said = cli("rollback", MODEL, "--to", "1", "--project", project, env=reader)
    assert code == 2, said
    assert (f"the tracking server {uri} answered 403 (permission denied): user 'reader' may not move the "
            f"`champion` alias of model '{MODEL}'") in said, said
    code, said = cli("approve", MODEL, "1", "--by", "Reader", "--project", project, env=reader)
    assert code == 2 and "answered 403" in said and "user 'reader' may not approve version 1" in said, said
    for k, v in env.items(): monkeypatch.setenv(k, v)
    assert "approved_by" not in MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(MODEL, "1").tags  # nothing half-written


def test_the_bundle_serves_with_nothing_of_the_project_folder(week, tmp_path):
    "On the team's servers the deployment bundle alone serves: the project's runs moved away, a copy of the bundle answers."
    folder, root, run_dir, env, _ = week
    bundle = shutil.copytree(run_dir / "artifacts" / "deploy" / "bundle", tmp_path / "bundle")
    command = json.loads(next(l for l in (bundle / "Dockerfile").read_text().splitlines() if l.startswith("CMD "))[4:])
    port = free_port()
    command = [a.replace("/srv/bundle", str(bundle)) for a in command]
    command = [BIN / command[0], *[{"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(a, a) for a in command[1:]]]
    (root / "runs").rename(root / "runs.away")
    try:
        with running_server(command, tmp_path / "image.log", url=f"http://127.0.0.1:{port}/ready", timeout=180, env=env, cwd=tmp_path):
            example = requests.get(f"http://127.0.0.1:{port}/metadata", timeout=10).json()["example"]
            r = requests.post(f"http://127.0.0.1:{port}/predict", json=example, timeout=30)
            assert r.status_code == 200, r.text
    finally: (root / "runs.away").rename(root / "runs")
    assert "-v " not in (bundle / "Dockerfile").read_text()  # nothing to mount


def served_version(url: str) -> str:
    return str(requests.get(f"{url}/metadata", timeout=10).json()["version"])


def test_the_service_answers_from_the_stack_follows_the_alias_and_monitoring_counts_it(week, tmp_path):
    """`serve` on the stack (model from the server, features from Redis, log in PostgreSQL) answers; a second version
    trained and the alias moved by `rollback --to`, it serves that one within seconds; `monitor` on the stack counts
    every prediction it logged."""
    folder, root, run_dir, env, _ = week
    project, port = folder / "project.yaml", free_port()
    url = f"http://127.0.0.1:{port}"
    with running_server([BIN / "mlops-nb", "serve", "--project", project, "--port", port, "--refresh", "1"], tmp_path / "serve.log",
                        url=f"{url}/ready", timeout=180, env=env):
        example = requests.get(f"{url}/metadata", timeout=10).json()["example"]
        records = example["records"] * 20
        r = requests.post(f"{url}/predict", json={"records": records}, timeout=30)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 20, r.text
        first = served_version(url)
        code, out = mlops_nb("run", "--project", project, "--until", "train", "--force", "train", "--no-reports", env=env, timeout=900)
        assert code == 0, out
        other = "1" if first == "2" else "2"  # the new version may have been promoted itself: move the alias to the other one
        code, out = mlops_nb("rollback", "delay_model", "--project", project, "--to", other, env=env)
        assert code == 0, out
        deadline = time.monotonic() + 60
        while served_version(url) != other and time.monotonic() < deadline: time.sleep(0.5)
        assert served_version(url) == other
        assert requests.post(f"{url}/predict", json=example, timeout=30).status_code == 200
    code, out = mlops_nb("monitor", "--project", project, "--start", "2012-12-01", "--end", "2013-02-01", "--no-retrain", "--no-reports",
                         env=env, timeout=600)
    assert code == 0, out
    newest = max(root.glob("runs/*/artifacts/monitor/monitoring.json"), key=lambda p: p.stat().st_mtime)
    assert json.loads(newest.read_text())["window"]["predictions"] >= 21  # the smoke tests' go to their own log


def test_the_whole_stack_restarts_and_the_next_run_carries_on(week):
    folder, root, run_dir, env, _ = week
    base = root / "project.yaml"
    code, out = mlops_nb("team", "down", "--dir", folder)
    assert code == 0 and running(folder) == set(), out
    code, out = mlops_nb("team", "up", "--project", base, "--dir", folder, timeout=600)
    assert code == 0 and running(folder) == SERVERS, out
    code, out = mlops_nb("run", "--project", folder / "project.yaml", "--no-reports", env=env, timeout=1200)
    assert code == 0, out
    newest = max((p for p in (root / "runs").iterdir() if (p / "run.json").exists()), key=lambda p: p.name)
    steps = {s["name"]: s["status"] for s in json.loads((newest / "run.json").read_text())["steps"]}
    assert steps["ingest"] == "reused" and steps["features"] == "reused", steps


def test_team_down_leaves_nothing_running(stack):
    folder, base, _ = stack
    pids = [daemon_pid(folder, n) for n in SERVERS - {"postgres"}]
    code, out = mlops_nb("team", "down", "--dir", folder)
    assert code == 0 and "stopped" in out, out
    assert running(folder) == set() and not any(p and alive(p) for p in pids)
    code, out = mlops_nb("team", "down", "--dir", folder)  # twice: nothing to stop, said so
    assert code == 0 and "nothing" in out, out
