"""The team's servers, started for real on 127.0.0.1 and stopped by the tests: a PostgreSQL cluster from Debian's
package, and `mlflow server` on it (its artifacts stored and proxied by itself), with or without basic auth."""
import os, secrets, shutil, tempfile
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

from conftest import free_port, start_server, stop, wait_ready
from mlops_nb import team

class Postgres(team.Postgres):
    """A throwaway PostgreSQL cluster (`mlops_nb.team.Postgres`): in a temporary folder, on a free loopback port, with
    a random password and no fsync. `create_database(name)` gives its URL (with the password); `stop()` stops it
    and removes the folder."""
    def __init__(self):
        super().__init__(tempfile.mkdtemp(prefix="mlops-nb-pg-"), free_port(), secrets.token_hex(8), fsync=False)
        self.dir = self.folder
        self.start()

    def stop(self):
        super().stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class MlflowServer:
    """`mlflow server` on a PostgreSQL database, storing and proxying its artifacts itself (`--serve-artifacts`), on a
    free loopback port; with `admin_password`, MLflow's basic auth (its users in a second database). `restart()`
    stops the process and starts a new one on the same port, database and artifacts."""
    def __init__(self, pg: Postgres, name: str, folder: Path, admin_password: str = None):
        self.folder, self.port, self.admin_password = Path(folder), free_port(), admin_password
        self.uri = f"http://127.0.0.1:{self.port}"
        self.cmd, self.env = team.mlflow_server(pg, self.folder, self.port, admin_password, database=name)
        self.start()

    def start(self):
        self.proc = start_server(self.cmd, self.folder / "mlflow-server.log", env=self.env)
        wait_ready(self.proc, url=f"{self.uri}/health", timeout=180)

    def restart(self):
        stop(self.proc); self.start()

    def stop(self): stop(self.proc)

    def user_env(self, user: str, password: str) -> dict:
        "The environment a client of the server runs with as `user` (MLflow reads credentials there, nowhere else)."
        return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}

    @property
    def admin_env(self) -> dict: return self.user_env("admin", self.admin_password)

    @contextmanager
    def as_admin(self):
        "This process's MLflow calls made as the server's admin, inside the block."
        with patch.dict(os.environ, self.admin_env): yield

    def add_user(self, user: str, password: str):
        "A new user of the server, who may only read (the server's `default_permission`)."
        from mlflow.server import get_app_client
        with self.as_admin(): get_app_client("basic-auth", tracking_uri=self.uri).create_user(user, password)
