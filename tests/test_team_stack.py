"""The local team stack: `mlops-nb team up` starts PostgreSQL, `mlflow server`, Redis and a Dask scheduler with two
workers on 127.0.0.1 and writes the project file on them; the demo's first week runs through it (tracking and
registry on the server, trials on Dask, the prediction log and the Feast registry on PostgreSQL, online features in
Redis); the whole stack stops and starts again, and the next run carries on where the first left off;
`team down` leaves nothing running. Nothing is mocked."""
import json, os, shutil, tempfile, time
from pathlib import Path

import pytest
import requests
import yaml

from conftest import BIN, free_port, mlops_nb, running_server, write_demo_project
from mlops_nb.feature_store import applied_views, open_store
from mlops_nb.team import alive, daemon_pid, port_open, read_env, team_status

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed (make test installs it)")
SERVERS = {"postgres", "mlflow", "redis", "dask-scheduler", "dask-worker-1", "dask-worker-2"}


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
    "The demo's week run once through the stack (`--no-reports`): (stack folder, project root, run folder, the clients' environment)."
    folder, base, _ = stack
    env = read_env(folder / "env")
    code, out = mlops_nb("run", "--project", folder / "project.yaml", "--no-reports", env=env, timeout=1200)
    assert code == 0, out
    (run_dir,) = [p for p in (base.parent / "runs").iterdir() if (p / "run.json").exists()]
    return folder, base.parent, run_dir, env


def test_the_week_runs_on_the_servers(week, monkeypatch):
    folder, root, run_dir, env = week
    for k, v in env.items(): monkeypatch.setenv(k, v)  # this process reads the stack's registry too
    rec = json.loads((run_dir / "run.json").read_text())
    ports = json.loads((folder / "stack.json").read_text())["ports"]
    assert rec["mlflow"]["tracking_uri"] == f"http://127.0.0.1:{ports['mlflow']}"
    assert not (root / "mlartifacts").exists() and not (root / "mlflow.db").exists()  # everything went to the server
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
    kept = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.suffix in (".json", ".yaml", ".ipynb", ".log", ".txt"))
    assert env["PGPASSWORD"] not in kept and env["MLFLOW_TRACKING_PASSWORD"] not in kept


def test_the_bundle_serves_with_nothing_of_the_project_folder(week, tmp_path):
    "On the team's servers the deployment bundle alone serves: the project's runs moved away, a copy of the bundle answers."
    folder, root, run_dir, env = week
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
    folder, root, run_dir, env = week
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
    folder, root, run_dir, env = week
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
