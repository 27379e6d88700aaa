"Shared fixtures: the repository, the venv's command, the demo warehouse, scratch projects, servers started and stopped."
import http.client, os, shutil, signal, socket, subprocess, sys, time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

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


def start_server(cmd: list, log: Path, env: dict = None, cwd=None) -> subprocess.Popen:
    """Start `cmd` in a process group of its own (a server's children, as MLflow's uvicorn, stop with it), its output
    to the file `log`, no stdin; `env` adds variables to this process's. The process remembers its log (`proc.log`)
    for `wait_ready`; stop it with `stop`. Most tests want `running_server`, which does all three."""
    log = Path(log)
    with open(log, "wb") as out:  # the server holds its own copy of the file
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
    proc.log = log
    return proc


def log_tail(log: Path, chars: int = 3000) -> str:
    "The last `chars` characters of a server's log (empty if it wrote none)."
    return Path(log).read_text(errors="replace")[-chars:] if Path(log).exists() else ""


def server_answers(url: str = None, port: int = None) -> bool:
    "Whether `url` answers HTTP 200 (after redirects), or, given `port` instead, 127.0.0.1:`port` accepts a connection."
    try:
        if url is not None:
            with urlopen(url, timeout=2) as r: return r.status == 200
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, an error status, a half-written answer
        return False


def wait_ready(proc: subprocess.Popen, url: str = None, port: int = None, timeout: float = 120) -> subprocess.Popen:
    """`proc` (from `start_server`) once it is ready: `url` answers 200, or 127.0.0.1:`port` accepts a connection.
    If it exits first or `timeout` s pass, it is stopped and the test fails with the end of its log."""
    assert (url is None) != (port is None), "wait for a url or a port, one of them"
    assert url is None or urlsplit(url).hostname == "127.0.0.1", f"test servers listen on 127.0.0.1 only, not {url}"
    name = " ".join([Path(proc.args[0]).name, *proc.args[1:2]])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_answers(url, port): return proc
        if proc.poll() is not None:
            stop(proc)  # whatever it started may still run
            pytest.fail(f"{name} exited with code {proc.returncode} before it was ready; {proc.log} ends with:\n{log_tail(proc.log)}")
        time.sleep(0.25)
    stop(proc)
    pytest.fail(f"{name} was not ready in {timeout:.0f} s ({url or f'port {port}'}); {proc.log} ends with:\n{log_tail(proc.log)}")


def stop(proc: subprocess.Popen, grace: float = 20) -> int:
    """Stop a server from `start_server` and all its process group: SIGTERM, then SIGKILL if it has not exited after
    `grace` s (whatever of the group outlives its leader is killed too). Its exit code; stopping twice is harmless."""
    try: os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError: pass  # the whole group has exited already
    try: proc.wait(timeout=grace)
    except subprocess.TimeoutExpired: pass
    try: os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    return proc.wait(timeout=10)


@contextmanager
def running_server(cmd: list, log: Path, url: str = None, port: int = None, timeout: float = 120, env: dict = None,
                   cwd=None):
    """`cmd` started as a server (`start_server`: its own process group, output to `log`), yielded once ready
    (`wait_ready`: `url` answers 200 or 127.0.0.1:`port` accepts connections, within `timeout` s, else the test fails
    with the end of `log`), and stopped on leaving, the test passed or not (`stop`: SIGTERM, SIGKILL after 20 s).

        with running_server(["redis-server", "--port", str(p)], tmp_path / "redis.log", port=p, timeout=30): ...
    """
    proc = start_server(cmd, log, env=env, cwd=cwd)
    try:
        yield wait_ready(proc, url=url, port=port, timeout=timeout)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def warehouse():
    "The demo warehouse (built once, idempotent)."
    code, out = mlops_nb("demo", "init")
    assert code == 0, out
    return WAREHOUSE


def demo_data(root: Path, warehouse: Path) -> dict:
    """The demo project as a mapping, rooted in `root` and reading `warehouse`; the notebooks of its own steps
    (`pipeline[*].notebook`, relative to the checkout) stay the checkout's, as absolute paths."""
    data = yaml.safe_load((ROOT / "conf" / "project.yaml").read_text())
    data["root"] = str(root)
    data["sources"]["warehouse"]["url"] = f"sqlite:///{warehouse}"
    for s in data.get("pipeline") or []:
        if s.get("notebook"): s["notebook"] = str(ROOT / s["notebook"])
    return data


def write_demo_project(root: Path, warehouse: Path) -> Path:
    "The demo project on its first week, rooted in `root` (its own runs and tracking store); the project file."
    data = demo_data(root, warehouse)
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


MLFLOW_STORES_AT_START = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}

@pytest.fixture(autouse=True)
def _forget_mlflow_stores():
    """Tests share one process: a test (or its module's fixture) that points MLflow's process-wide stores somewhere
    must not steer the next test, nor the servers it starts (`mlflow.set_registry_uri` also sets MLFLOW_REGISTRY_URI,
    which `set_registry_uri(None)` leaves in the environment): after each test, the stores are the session's."""
    yield
    if "mlflow" in sys.modules:
        import mlflow
        mlflow.set_tracking_uri(None); mlflow.set_registry_uri(None)
    for k, v in MLFLOW_STORES_AT_START.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v




@pytest.fixture(scope="session")
def week_champion(tmp_path_factory, warehouse):
    "The demo's first week run to a registered model (one HGB experiment), made champion by hand; (project file, tracking uri, run folder)."
    return train_week_champion(tmp_path_factory.mktemp("week-champion"), warehouse)


def train_week_champion(root: Path, warehouse: Path) -> tuple:
    "`week_champion` in `root` (also for benchmarks, which have no fixtures); (project file, tracking uri, run folder)."
    from mlflow import MlflowClient
    data = demo_data(root, warehouse)
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


@contextmanager
def redis_server(folder: Path):
    "A throwaway Redis server on a free loopback port (no persistence), its log in `folder`; yields `127.0.0.1:PORT`."
    exe = shutil.which("redis-server")
    if exe is None: pytest.skip("redis-server is not installed (make test installs it)")
    port = free_port()
    with running_server([exe, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no"],
                        folder / "redis-server.log", port=port, timeout=30):
        yield f"127.0.0.1:{port}"


@pytest.fixture
def redis_url(tmp_path):
    "A throwaway Redis server for one test (`redis_server`), stopped after it."
    with redis_server(tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def postgres():
    "A PostgreSQL cluster of Debian's package on a free loopback port, shared by the session (tests/servers.py)."
    from servers import Postgres
    pg = Postgres()
    yield pg
    pg.stop()


