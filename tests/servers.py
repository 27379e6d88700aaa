"""The team's servers, started for real on 127.0.0.1 and stopped by the tests: a PostgreSQL cluster from Debian's
package. (`mlflow server`, Redis and Dask are proved in tests/test_team_stack.py, as `mlops-nb team up` starts them.)"""
import secrets, shutil, tempfile

from conftest import free_port
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

