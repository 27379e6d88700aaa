"""The team's servers, started for real on 127.0.0.1 and stopped by the tests: a PostgreSQL cluster from Debian's
package, and `mlflow server` on it (its artifacts stored and proxied by itself), with or without basic auth."""
import glob, os, pwd, secrets, shutil, subprocess, tempfile
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

from conftest import BIN, free_port, start_server, stop, wait_ready

PG_BIN = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]) if glob.glob("/usr/lib/postgresql/*/bin") else None


def as_postgres(cmd: list) -> list:
    "`cmd` run as the `postgres` user when we are root (`initdb` refuses root), else as ourselves."
    return ["runuser", "-u", "postgres", "--", *map(str, cmd)] if os.geteuid() == 0 else list(map(str, cmd))


class Postgres:
    """A throwaway PostgreSQL cluster: `initdb` into a temporary folder, `pg_ctl start` on a free loopback port (its
    unix socket in that folder), a password for TCP clients. `url(db)` is a SQLAlchemy URL of a database it created;
    `stop()` stops it (fast shutdown) and removes the folder."""
    def __init__(self):
        assert PG_BIN, "no PostgreSQL here: `make test` installs Debian's postgresql package"
        self.dir = Path(tempfile.mkdtemp(prefix="mlops-nb-pg-"))  # under /tmp, which the postgres user can reach
        if os.geteuid() == 0: os.chown(self.dir, pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
        self.port, self.password = free_port(), secrets.token_hex(8)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password)
        if os.geteuid() == 0: shutil.chown(pwfile, "postgres")
        self._run(PG_BIN / "initdb", "-D", self.dir / "data", "-U", "postgres", "--pwfile", pwfile,
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        pwfile.unlink()
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-l", self.dir / "server.log", "-o", opts, "-w", "-t", "60", "start")

    def _run(self, *cmd):
        p = subprocess.run(as_postgres(cmd), capture_output=True, text=True, timeout=120)
        log = self.dir / "server.log"
        assert p.returncode == 0, f"{' '.join(map(str, cmd))}: {p.stdout}{p.stderr}{log.read_text() if log.exists() else ''}"

    def create_database(self, name: str) -> str:
        "A new database `name`; its URL."
        self._run(PG_BIN / "psql", "-h", self.dir, "-p", self.port, "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                  "-c", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, db: str) -> str: return f"postgresql+psycopg2://postgres:{self.password}@127.0.0.1:{self.port}/{db}"

    def stop(self):
        self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class MlflowServer:
    """`mlflow server` on a PostgreSQL database, storing and proxying its artifacts itself (`--serve-artifacts`), on a
    free loopback port; with `admin_password`, MLflow's basic auth (its users in a second database). `restart()`
    stops the process and starts a new one on the same port, database and artifacts."""
    def __init__(self, pg: Postgres, name: str, folder: Path, admin_password: str = None):
        self.folder, self.port, self.admin_password = Path(folder), free_port(), admin_password
        self.uri = f"http://127.0.0.1:{self.port}"
        self.cmd = [BIN / "mlflow", "server", "--backend-store-uri", pg.create_database(name),
                    "--artifacts-destination", self.folder / "artifacts", "--serve-artifacts",
                    "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.env = {}
        if admin_password:
            ini = self.folder / "basic_auth.ini"
            ini.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {pg.create_database(name + '_users')}\n"
                           "admin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                           # a credential checked once a minute, not on every request (a PBKDF2 hash each time): a run
                           # makes hundreds of requests
                           "auth_cache_ttl_seconds = 60\n")
            self.cmd += ["--app-name", "basic-auth"]
            self.env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,
                            MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16))
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
