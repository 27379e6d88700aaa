"""The service loses nothing it answered, over real processes and real signals on 127.0.0.1: `kill -9` right after
answering leaves every answered prediction in the log; SIGTERM drains (requests in flight answered and logged, new
ones refused, exit code 0, the log closed); the champion switched and rolled back under load fails no request."""
import http.client, json, os, signal, sqlite3, threading, time
from collections import Counter
from pathlib import Path

import pytest

from conftest import BIN, free_port, log_tail, start_server, stop, wait_ready

pytestmark = pytest.mark.timeout(300)

CLIENTS = 8
HEADERS = {"Content-Type": "application/json"}
# what a client sees of a service that is not there (any more): never an answer, never something scored
REFUSED = {"ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected", "BrokenPipeError", "ConnectionAbortedError"}


def start_service(project: Path, folder: Path, *args) -> tuple:
    "`mlops-nb serve` of `project` on a free loopback port, logging to `folder`/predictions.db; (process, port, log path)."
    port, log = free_port(), folder / "predictions.db"
    proc = start_server([BIN / "mlops-nb", "serve", "--project", project, "--port", port, "--prediction-log", log, *args],
                        folder / "serve.log")
    return wait_ready(proc, url=f"http://127.0.0.1:{port}/ready", timeout=120), port, log


def get(port: int, path: str) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path); r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally: conn.close()


class Clients:
    """`n` clients, each on its own keep-alive connection, sending its body (`bodies`, one per client, cycled) to
    POST /predict until stopped (a client whose connection fails opens a new one, after a pause). Every request's
    outcome is kept, with its send and answer times."""
    def __init__(self, port: int, bodies: list, n: int = CLIENTS, on_answer=None):
        self.port, self.on_answer = port, on_answer
        self.outcomes, self.lock, self.halt = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(bodies[i % len(bodies)],), daemon=True) for i in range(n)]

    def __enter__(self):
        for t in self.threads: t.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        for t in self.threads: t.join(timeout=60)

    def _client(self, body: bytes):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.halt.is_set():
            out = {"sent": time.time()}
            try:
                conn.request("POST", "/predict", body, HEADERS)
                r = conn.getresponse(); data = r.read()
            except (OSError, http.client.HTTPException) as e:
                out.update(done=time.time(), status=None, error=type(e).__name__)
                conn.close(); conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                with self.lock: self.outcomes.append(out)
                time.sleep(0.05)
                continue
            out.update(done=time.time(), status=r.status, retry_after=r.getheader("Retry-After"))
            if r.status == 200:
                answer = json.loads(data)
                out.update(rid=answer["request_id"], version=answer["version"], p=[x["probability"] for x in answer["predictions"]])
            else: out["body"] = data[:300]
            with self.lock:
                self.outcomes.append(out)
                answered = sum(o["status"] == 200 for o in self.outcomes)
            if self.on_answer and r.status == 200: self.on_answer(answered)

    def answered(self) -> dict:
        "{request id: (version, probabilities)} of every 200."
        return {o["rid"]: (o["version"], o["p"]) for o in self.outcomes if o["status"] == 200}


def logged(log: Path) -> dict:
    "{request id: (version, probabilities by record)} of the log's predictions."
    db = sqlite3.connect(log)
    try:
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
        out = {}
        for rid, record, version, p in db.execute("select request_id, record, version, probability from predictions order by request_id, record"):
            out.setdefault(rid, (version, []))[1].append(p)
        return out
    finally: db.close()


def example_body(port: int, records: int = 1) -> bytes:
    example = get(port, "/metadata")[1]["example"]["records"][0]
    return json.dumps({"records": [example] * records}).encode()


def test_a_row_is_in_the_log_when_append_returns(tmp_path):
    "A process that appends a prediction and is killed (SIGKILL) the next instant leaves it in the log: nothing waits in a queue."
    import subprocess, sys
    code = (f"import os, signal\nfrom mlops_nb.predictions import PredictionLog\nlog = PredictionLog({str(tmp_path / 'log.db')!r})\n"
            "for i in range(20): log.append([{'carrier': 'AA'}], {'temp': [41.0]}, [(f'r{i}', 0, 'now', 'm', '1', 'champion', 0.7, 1, 1.0, None)])\n"
            "os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == -signal.SIGKILL
    assert sorted(logged(tmp_path / "log.db")) == sorted(f"r{i}" for i in range(20))


def test_kill_9_loses_no_answered_prediction(week_champion, tmp_path):
    "Eight clients; the service is killed (SIGKILL) the moment it has answered 400 single-record predictions: every answered prediction is in the log."
    f, _, _ = week_champion
    proc, port, log = start_service(f, tmp_path, "--refresh", "0")
    try:
        killed = threading.Event()
        def kill_at(answered):
            if answered >= 400 and not killed.is_set():
                killed.set(); os.kill(proc.pid, signal.SIGKILL)
        with Clients(port, [example_body(port)], on_answer=kill_at) as clients:
            assert killed.wait(120), f"400 answers did not come; the service's log ends with:\n{log_tail(proc.log)}"
            assert proc.wait(timeout=10) == -signal.SIGKILL
            time.sleep(0.3)  # the clients see the connection go
    finally: stop(proc)
    answered, kept = clients.answered(), logged(log)
    assert len(answered) >= 400
    missing = set(answered) - set(kept)
    assert not missing, f"{len(missing)} of {len(answered)} answered predictions are not in the log"
    assert all(kept[rid] == answered[rid] for rid in answered)  # the same version and probability as answered
    others = Counter(o.get("error") or o["status"] for o in clients.outcomes if o["status"] != 200)
    assert all(o["status"] is None for o in clients.outcomes if o["status"] != 200), others  # cut by the kill: a connection error, no HTTP error
    print(f"SIGKILL after {len(answered)} answers: {len(answered)} of {len(answered)} in the log, {len(set(kept) - set(answered))} logged "
          f"but not answered, {sum(others.values())} connection errors after the kill")


def test_sigterm_drains(week_champion, tmp_path):
    """SIGTERM under load from eight clients, with an upload in progress: requests in flight are answered and logged,
    new ones are refused (503 with Retry-After, or the connection), the process exits 0 and closes its log."""
    f, _, _ = week_champion
    proc, port, log = start_service(f, tmp_path, "--refresh", "0")
    try:
        body = example_body(port)
        # a request in flight for certain: its headers and half its body sent before the signal, the rest after
        slow = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        with Clients(port, [body]) as clients:
            time.sleep(2)
            slow.putrequest("POST", "/predict"); slow.putheader("Content-Type", "application/json")
            slow.putheader("Content-Length", str(len(body))); slow.endheaders(body[:len(body) // 2])
            time.sleep(0.5)  # the service reads the headers: the request is in flight
            os.kill(proc.pid, signal.SIGTERM); t_signal = time.time()  # a request sent after this was sent after the signal
            time.sleep(0.2)
            slow.send(body[len(body) // 2:])
            r = slow.getresponse(); reply = (r.status, json.loads(r.read())); slow.close()
            code = proc.wait(timeout=60)
            time.sleep(0.3)
        ended = set(os.listdir(tmp_path))  # before anything here opens the log
    finally: stop(proc)
    out = log_tail(proc.log)
    assert code == 0, out
    assert "[serve] stopped:" in out and "the prediction log is closed" in out, out
    assert not {"predictions.db-wal", "predictions.db-shm"} & ended, ended  # closed cleanly: one file
    assert reply[0] == 200, reply
    slow_rid = reply[1]["request_id"]

    outcomes, kept = clients.outcomes, logged(log)
    answered = clients.answered()
    assert slow_rid in kept
    # every outcome is an answer (logged), a refusal that says so, or a connection the stopped service closed
    kinds = Counter(o["status"] if o["status"] else o["error"] for o in outcomes)
    assert set(kinds) <= {200, 503} | REFUSED, kinds
    assert all(o["retry_after"] == "1" for o in outcomes if o["status"] == 503)
    assert set(kept) == set(answered) | {slow_rid}  # every answer logged, and nothing logged that was not answered
    assert all(kept[rid] == answered[rid] for rid in answered)
    in_flight = [o for o in outcomes if o["sent"] < t_signal < o["done"] and o["status"] == 200]
    after = Counter(o["status"] or o["error"] for o in outcomes if o["sent"] > t_signal)
    assert in_flight, "no request was in flight at the signal"
    assert 200 not in after and sum(after.values()) > 0, after  # sent after the signal: refused, never scored
    print(f"SIGTERM: {len(in_flight) + 1} requests in flight answered and logged (one of them half uploaded), {len(answered) + 1} "
          f"answered in all, all logged; after the signal: {dict(after)}; exit code 0, the log one file")


def test_champion_switched_and_rolled_back_under_load(week_champion, tmp_path):
    """Eight clients for 20 s while the champion moves to another version and back twice (in a copy of the registry):
    no request fails, every answer is in the log, both versions answered, and the service's memory stays bounded."""
    from mlflow import MlflowClient
    from mlops_nb.registry import rollback
    f, uri, _ = week_champion
    src, dst = sqlite3.connect(uri.removeprefix("sqlite:///")), sqlite3.connect(tmp_path / "mlflow.db")
    src.backup(dst); src.close(); dst.close()  # the shared registry stays as the other tests expect it
    scratch = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=scratch, registry_uri=scratch)
    first = str(client.get_model_version_by_alias("delay_model", "champion").version)
    other = str(client.copy_model_version(f"models:/delay_model/{first}", "delay_model").version)
    proc, port, log = start_service(f, tmp_path, "--refresh", "0.5", "--tracking-uri", scratch)
    rss = []
    try:
        with Clients(port, [example_body(port)]) as clients:
            t0 = time.monotonic()
            for k, at in enumerate((4, 8, 12, 16)):
                while time.monotonic() - t0 < at:
                    rss.append(int(Path(f"/proc/{proc.pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024)
                    time.sleep(0.5)
                if k % 2 == 0: client.set_registered_model_alias("delay_model", "champion", other)
                else: rollback(scratch, "delay_model", to=first)
            while time.monotonic() - t0 < 20:
                rss.append(int(Path(f"/proc/{proc.pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024)
                time.sleep(0.5)
        assert get(port, "/ready")[1]["version"] == first
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_tail(proc.log)
    finally: stop(proc)
    outcomes, kept, answered = clients.outcomes, logged(log), clients.answered()
    failed = [o for o in outcomes if o["status"] != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed, first: {failed[0]}"
    assert set(kept) == set(answered) and all(kept[rid] == answered[rid] for rid in answered)
    assert {v for v, _ in answered.values()} == {first, other}
    growth = max(rss[-4:]) - min(rss[:4])  # 2 s in against the last 2 s
    print(f"{len(outcomes):,} requests in 20 s, 4 alias moves, 0 failures; RSS {min(rss[:4]):.0f} -> {max(rss[-4:]):.0f} MB (peak {max(rss):.0f})")
    assert growth < 150, f"the service grew by {growth:.0f} MB in 20 s: {[round(r) for r in rss]}"
