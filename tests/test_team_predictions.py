"""Team mode, the prediction log: service replicas write one log on a real PostgreSQL server (the session's, from
tests/servers.py), `mlops-nb feedback` joins labels to it and `mlops-nb monitor` reads it. The same calls give the same
frames from SQLite and from PostgreSQL; credentials in a log's URL, a server that cannot be reached and a database
that does not exist are refused with exit code 2 naming the log; a log lost under a running service gets answers,
not tracebacks."""
import json, threading
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from conftest import BIN, free_port, mlops_nb, running_server
from mlops_nb.cli import main

pytestmark = pytest.mark.timeout(600)


def bare(url: str, pg) -> str:
    "`url` of the session's server without its password: a project names the log, the environment holds the credentials."
    return url.replace(f"postgres:{pg.password}@", "")


@pytest.fixture
def pg_env(postgres, monkeypatch) -> dict:
    "The credentials as every PostgreSQL client reads them, in this process's environment; also returned for child processes."
    env = {"PGUSER": "postgres", "PGPASSWORD": postgres.password}
    for k, v in env.items(): monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def cli(capsys):
    "`cli(*args)`: `mlops-nb ARGS` in this process (a refusal needs no new process); (exit code, what it printed)."
    def run(*args):
        code = main(list(map(str, args)))
        printed = capsys.readouterr()
        return code, printed.out + printed.err
    return run


def project_on(week_champion, folder: Path, log: str) -> Path:
    "The week champion's project (its root, runs and registry) with `deploy.prediction_log` set to `log`; the new project file."
    f, _, _ = week_champion
    data = yaml.safe_load(f.read_text())
    data.setdefault("deploy", {})["prediction_log"] = log
    out = folder / "project.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


# --- the same log on both backends, in this process ------------------------------------------------------------------

def some_traffic(log):
    "The same calls on any log: passes with shadow answers, a prediction written again, refusals, labels (some twice, one unmatched)."
    meta = lambda rid, i, variant, p, when: (rid, i, f"2026-12-07T10:0{i}:00+00:00", "delay_model", "3", variant, p, int(p >= 0.5), 2.5, when)
    X = {"temp": [41.0, float("nan")], "carrier": ["AA", None]}
    log.append([{"carrier": "AA"}, {"carrier": None}], X, [meta("r1", 0, "champion", 0.7, "2013-07-01T10:00:00+00:00"),
                                                            meta("r1", 1, "champion", 0.1, None)])
    log.append([{"carrier": "AA"}], {"temp": [41.0]}, [meta("r1", 0, "shadow", 0.65, "2013-07-01T10:00:00+00:00")])
    log.append([{"carrier": "B6"}], {"temp": [12.5]}, [meta("r2", 0, "canary", 0.55, "2013-07-02T09:30:00.5+00:00")])
    log.append([{"carrier": "B6"}], {"temp": [13.0]}, [meta("r2", 0, "canary", 0.45, "2013-07-02T09:30:00.5+00:00")])  # written again: replaced
    log.refuse(422, "records[0].carrier", "'ZZ' is not a value the model knows")
    log.refuse(500, "service", "OperationalError: disk I/O error")
    counts = [log.feedback([("r1", 0, 1), ("r9", 0, 0)]), log.feedback([("r1", 0, 1), ("r2", 0, 0), ("r2", 0, 0)])]
    with pytest.raises(Exception, match="none of the 1 labels matches a logged prediction"): log.feedback([("r7", 0, 1)], require_match=True)
    return counts


def frames(where) -> dict:
    from mlops_nb.predictions import newest_decision, open_log, read_window, refused_between
    log = open_log(where)
    try: everything = log.read()
    finally: log.close()
    return {"read": everything, "newest": newest_decision(where),
            "window": read_window(where, pd.Timestamp("2013-07-01", tz="UTC"), pd.Timestamp("2013-07-03", tz="UTC")),
            "late window": read_window(where, pd.Timestamp("2013-07-02", tz="UTC"), pd.Timestamp("2013-07-03", tz="UTC")),
            "empty window": read_window(where, pd.Timestamp("2014-01-01", tz="UTC"), pd.Timestamp("2014-01-02", tz="UTC")),
            "refused": refused_between(where, pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2027-01-01", tz="UTC"))}


def test_the_same_calls_give_the_same_frames_from_sqlite_and_postgresql(postgres, pg_env, tmp_path, monkeypatch):
    import mlops_nb.predictions as predictions
    from mlops_nb.predictions import PostgresLog, PredictionLog, open_log
    monkeypatch.setattr(predictions, "now_iso", lambda: "2026-12-07T11:00:00+00:00")  # the rows' own clock: the same on both
    server = bare(postgres.create_database("same_frames"), postgres)
    on_file, on_server = open_log(tmp_path / "predictions.db"), open_log(server)
    assert type(on_file) is PredictionLog and type(on_server) is PostgresLog
    assert some_traffic(on_file) == some_traffic(on_server) == [{"received": 2, "new": 2, "duplicates": 0, "unmatched": 1},
                                                                {"received": 3, "new": 1, "duplicates": 2, "unmatched": 0}]
    on_file.close(); on_server.close()
    with pytest.raises(RuntimeError, match="closed"): on_server.refuse(400, "body", "too late")
    local, shared = frames(tmp_path / "predictions.db"), frames(server)
    assert local["newest"] == shared["newest"] == "2026-12-07T10:01:00+00:00"  # a row without a decision time counts its answer's
    for name in ("read", "window", "late window", "empty window", "refused"):
        pd.testing.assert_frame_equal(local[name], shared[name], check_exact=True, obj=name)
    assert len(shared["read"]) == 4 and shared["read"].probability.tolist() == [0.7, 0.65, 0.45, 0.1]  # 0.7 reads back as 0.7
    assert shared["window"].request_id.tolist() == ["r1", "r2"] and shared["late window"].label.tolist() == [0]


def test_replicas_starting_together_create_the_tables_once(postgres, pg_env):
    from mlops_nb.predictions import PostgresLog, log_exists
    server = bare(postgres.create_database("starting_together"), postgres)
    assert not log_exists(server)  # a database nobody wrote to is no log yet
    opened, failed, start = [], [], threading.Barrier(6)

    def replica():
        start.wait()
        try: opened.append(PostgresLog(server))
        except Exception as e: failed.append(e)
    threads = [threading.Thread(target=replica) for _ in range(6)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not failed and len(opened) == 6 and log_exists(server)
    for log in opened: log.close()


# --- refusals -----------------------------------------------------------------------------------------------------

def test_credentials_in_the_log_url_are_refused(week_champion, postgres, cli, tmp_path):
    f, _, _ = week_champion
    with_password = postgres.url("anything")
    code, out = cli("serve", "--project", f, "--prediction-log", with_password, "--port", free_port())
    assert code == 2 and "--prediction-log: postgresql+psycopg2://***@127.0.0.1" in out and "set PGUSER and PGPASSWORD" in out, out
    assert postgres.password not in out
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nr1,1\n")
    code, out = cli("feedback", "--project", project_on(week_champion, tmp_path, with_password), "--file", labels)
    assert code == 2 and "key `deploy.prediction_log`" in out and "PGPASSWORD" in out and postgres.password not in out, out
    code, out = cli("monitor", "--project", f, "--set", f"deploy.prediction_log={with_password}", "--no-reports")
    assert code == 2 and "key `deploy.prediction_log`" in out and postgres.password not in out, out


@pytest.mark.parametrize("case", ["no server", "no database"])
def test_a_log_that_cannot_be_reached_stops_the_service_from_starting(week_champion, postgres, pg_env, case):
    f, _, _ = week_champion
    url = (f"postgresql+psycopg2://127.0.0.1:{free_port()}/predictions" if case == "no server"
           else f"postgresql+psycopg2://127.0.0.1:{postgres.port}/never_created")
    code, out = mlops_nb("serve", "--project", f, "--prediction-log", url, "--port", free_port(), env=pg_env, timeout=120)
    assert code == 2 and f"{url}: the prediction log's PostgreSQL server could not be used" in out, out
    assert ("Connection refused" if case == "no server" else 'database "never_created" does not exist') in out, out
    assert "Traceback" not in out, out


def test_feedback_names_a_log_it_cannot_reach(week_champion, postgres, pg_env, cli, tmp_path):
    f, _, _ = week_champion
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nr1,1\n")
    url = f"postgresql+psycopg2://127.0.0.1:{postgres.port}/never_created"
    code, out = cli("feedback", "--project", f, "--file", labels, "--prediction-log", url)
    assert code == 2 and url in out and "does not exist" in out, out
    empty = bare(postgres.create_database("never_written"), postgres)
    code, out = cli("feedback", "--project", f, "--file", labels, "--prediction-log", empty)
    assert code == 2 and f"{empty}: no prediction log there" in out, out


# --- replicas over HTTP -------------------------------------------------------------------------------------------

def replica(stack: ExitStack, f: Path, run_dir: Path, env: dict, folder: Path, name: str) -> str:
    "`mlops-nb serve` of `f` on a free loopback port with `env`, stopped when `stack` closes; its URL."
    port = free_port()
    stack.enter_context(running_server([BIN / "mlops-nb", "serve", "--project", f, "--port", port, "--refresh", "0", "--run-dir", run_dir],
                                       folder / f"{name}.log", url=f"http://127.0.0.1:{port}/ready", timeout=180, env=env))
    return f"http://127.0.0.1:{port}"


def week_records(run_dir: Path, fields: list, n: int) -> list:
    "`n` flights of the week's snapshot with every request field, as request records."
    flights = pd.read_parquet(run_dir / "artifacts" / "ingest" / "flights.parquet", columns=fields).dropna().head(n)
    return json.loads(flights.to_json(orient="records", date_format="iso"))


def test_two_replicas_write_one_log_that_feedback_joins_and_monitor_counts(week_champion, postgres, pg_env, tmp_path):
    from mlops_nb.predictions import PostgresLog
    _, _, run_dir = week_champion
    server = bare(postgres.create_database("shared_log"), postgres)
    f = project_on(week_champion, tmp_path, server)
    answers = {}
    with ExitStack() as stack:  # both start at once: they create the tables together
        urls = [replica(stack, f, run_dir, pg_env, tmp_path, f"replica{i}") for i in (1, 2)]
        fields = requests.get(f"{urls[0]}/metadata").json()["request_fields"]
        records = week_records(run_dir, fields, 300)
        for i in range(0, len(records), 5):
            url = urls[i // 5 % 2]
            r = requests.post(f"{url}/predict", json={"records": records[i:i + 5]})
            assert r.status_code == 200, r.text
            answers[r.json()["request_id"]] = (url, len(r.json()["predictions"]))
    assert {u for u, _ in answers.values()} == set(urls) and sum(n for _, n in answers.values()) == 300

    log = PostgresLog(server)
    logged = log.read()
    log.close()
    assert len(logged) == 300 and set(logged.request_id) == set(answers)  # every answer of both replicas, once
    labelled = logged.iloc[::2]
    pd.DataFrame({"request_id": labelled.request_id, "record": labelled.record, "label": (labelled.probability > 0.2).astype(int)}).to_csv(
        tmp_path / "labels.csv", index=False)
    code, out = mlops_nb("feedback", "--project", f, "--file", tmp_path / "labels.csv", env=pg_env)
    assert code == 0 and "150 labels" in out and "150 new" in out and "0 matching no logged prediction" in out and server in out, out

    code, out = mlops_nb("monitor", "--project", f, "--start", "2012-12-01", "--end", "2013-02-01", "--no-retrain", "--no-reports",
                         env=pg_env, timeout=300)
    assert code == 0, out
    root = Path(yaml.safe_load(f.read_text())["root"])
    newest = max(root.glob("runs/*/artifacts/monitor/monitoring.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(newest.read_text())
    assert report["window"]["predictions"] == 300 and report["performance"]["labelled"] == 150, report["window"]
    kept = (newest.parents[2] / "project.yaml").read_text() + (newest.parents[2] / "run.json").read_text()
    assert server in kept and postgres.password not in kept  # the run names the log, never its credentials


def test_a_log_lost_under_a_running_service_gets_answers_not_tracebacks(week_champion, postgres, pg_env, tmp_path):
    from sqlalchemy import create_engine, text
    _, _, run_dir = week_champion
    server = bare(postgres.create_database("lost_log"), postgres)
    f = project_on(week_champion, tmp_path, server)
    with ExitStack() as stack:
        url = replica(stack, f, run_dir, pg_env, tmp_path, "service")
        example = requests.get(f"{url}/metadata").json()["example"]
        assert requests.post(f"{url}/predict", json=example).status_code == 200
        admin = create_engine(postgres.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as db: db.execute(text('drop database "lost_log" with (force)'))  # its connections ended
        admin.dispose()
        r = requests.post(f"{url}/predict", json=example)
        assert r.status_code == 500 and r.json()["detail"][0]["msg"].startswith("scoring failed: "), r.text
        r = requests.post(f"{url}/feedback", json={"labels": [{"request_id": "r1", "label": 1}]})
        assert r.status_code == 500 and r.json()["detail"][0]["msg"].startswith("recording the labels failed: "), r.text
        assert requests.get(f"{url}/health").status_code == 200
    said = (tmp_path / "service.log").read_text()
    assert "the prediction log could not record a 500" in said and "the prediction log could not record labels" in said, said
    assert "Traceback" not in said, said
