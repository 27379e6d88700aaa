#!/usr/bin/env python
"""Soak the model service: `mlops-nb serve` under eight clients for a few minutes on 127.0.0.1, while the `champion`
alias is switched to another version and rolled back every 30 s and the service is stopped with SIGTERM and started
again once. It counts what a client saw and checks what the service kept:

- every request's outcome: answered (200), refused while draining (503 with Retry-After), refused while the service
  was down (the connection, between the SIGTERM and the new process being ready), or **failed** (anything else:
  another status, a timeout, a connection error while a service was up); the aim is 0 failed;
- the prediction log: every answered prediction in it, found by its request id, with the version and probability
  that were answered, and nothing logged that was not answered;
- the drain: the exit code after SIGTERM (0), how long it took, what the service said it drained;
- memory: the service's resident set size (RSS, from /proc) every second; growth measured from 30 s after each start
  (imports, the model, the caches are in by then) to the end of that process's life, and bounded (`--max-growth-mb`);
- latency and throughput per 30 s.

The model and the flights are the demo's (`bench_serve.prepare`: the champion, the last day of the newest run's
training set, as raw requests, one record each). The registry is a scratch copy of the demo's tracking store
(SQLite backup), so switching the alias never touches the demo's champion; the other version is a copy of the
champion (`copy_model_version`), and rolling back goes through `registry.rollback`, what `mlops-nb rollback` runs.
The service checks the alias every second (`--refresh 1`) and logs to a scratch prediction log.

    .venv/bin/python bench/soak_serve.py                 # 4 minutes; writes bench/results/soak.md
    .venv/bin/python bench/soak_serve.py --seconds 60 --every 10 --restart-at 30   # a short run (writes soak.quick.tmp)
"""
import argparse, gc, http.client, json, os, platform, signal, sqlite3, sys, tempfile, threading, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
from bench_serve import bodies, code_state, get, prepare, q, server_env, start  # noqa: E402

NAME = "delay_model"
HEADERS = {"Content-Type": "application/json"}
CONNECTION_ERRORS = (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                     http.client.RemoteDisconnected)


def rss_mb(pid: int) -> float:
    "The resident set size of process `pid`, in MB (0 once it is gone)."
    try: return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    except (OSError, IndexError): return 0.0


class Soak:
    "The shared state of the clients and the conductor: the outcomes, the service's up/down windows, the events."
    def __init__(self, port: int, bodies: list, clients: int):
        self.port, self.bodies, self.clients = port, bodies, clients
        self.lock, self.halt = threading.Lock(), threading.Event()
        self.answered = []  # (send time, latency s, request id, version, probability)
        self.refused_503, self.refused_down, self.failed = [], [], []  # (send time, what)
        self.down = []  # [start, end] windows: from the SIGTERM until the next service is ready
        self.events = []  # (time, what)

    def in_down_window(self, t0: float, t1: float) -> bool:
        return any(a <= t1 and (b is None or t0 <= b) for a, b in self.down)

    def client(self, k: int):
        conn, i = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30), k
        while not self.halt.is_set():
            body, i = self.bodies[i % len(self.bodies)], i + self.clients
            t0 = time.time(); p0 = time.perf_counter()
            try:
                conn.request("POST", "/predict", body, HEADERS)
                r = conn.getresponse(); data = r.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close(); conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                with self.lock:
                    if isinstance(e, CONNECTION_ERRORS) and self.in_down_window(t0, time.time()):
                        self.refused_down.append((t0, type(e).__name__))
                    else: self.failed.append((t0, f"{type(e).__name__}: {e}"))
                time.sleep(0.05)  # a service that is down: do not spin
                continue
            dt = time.perf_counter() - p0
            with self.lock:
                if r.status == 200:
                    a = json.loads(data)
                    self.answered.append((t0, dt, a["request_id"], a["version"], a["predictions"][0]["probability"]))
                elif r.status == 503 and r.getheader("Retry-After") and self.in_down_window(t0, time.time()):
                    self.refused_503.append((t0, "503"))
                else: self.failed.append((t0, f"HTTP {r.status}: {data[:200]!r}"))
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=240, help="length of the soak (default 240)")
    ap.add_argument("--every", type=float, default=30, help="seconds between alias moves: switched, rolled back, ... (default 30)")
    ap.add_argument("--restart-at", type=float, help="when the service gets SIGTERM and is started again (default: mid-way between two moves after half the soak)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-growth-mb", type=float, default=64, help="the bound on a process's RSS growth after its first 30 s (default 64)")
    ap.add_argument("--out", help="default: bench/results/soak.md (soak.quick.tmp for runs shorter than 240 s)")
    args = ap.parse_args()
    restart_at = args.restart_at if args.restart_at is not None else (int(args.seconds / 2 / args.every) + 0.5) * args.every
    out_path = Path(args.out or HERE / "results" / ("soak.md" if args.seconds >= 240 else "soak.quick.tmp"))
    cmd_line = ".venv/bin/python bench/soak_serve.py" + "".join(
        f" --{k.replace('_', '-')} {v:g}" for k, v in (("seconds", args.seconds), ("every", args.every), ("restart_at", args.restart_at))
        if v is not None and not (k == "seconds" and v == 240) and not (k == "every" and v == 30))
    load0, started = os.getloadavg(), time.time()

    from mlflow import MlflowClient
    from mlops_nb.config import demo_project_file, free_port, load_project
    from mlops_nb.registry import rollback
    with tempfile.TemporaryDirectory(prefix="soak-serve-") as d:
        folder = Path(d)
        prep = prepare(folder)
        lp = load_project(demo_project_file())
        src, dst = sqlite3.connect(lp.tracking_uri.removeprefix("sqlite:///")), sqlite3.connect(folder / "mlflow.db")
        src.backup(dst); src.close(); dst.close()
        scratch = f"sqlite:///{folder / 'mlflow.db'}"
        registry = MlflowClient(tracking_uri=scratch, registry_uri=scratch)
        first = str(prep["version"])
        other = str(registry.copy_model_version(f"models:/{NAME}/{first}", NAME).version)
        port, log = free_port(), folder / "predictions.db"
        env = server_env(scratch)
        cmd = [str(BIN / "mlops-nb"), "serve", "--project", str(demo_project_file()), "--port", str(port), "--refresh", "1",
               "--tracking-uri", scratch, "--prediction-log", str(log)]
        procs = [start("mlops-nb serve", cmd, env, port, "/ready", folder / "serve-1.log")]
        fields = list(json.loads(get(port, "/metadata", 10)[1])["request_fields"])
        soak = Soak(port, bodies(folder, fields, prep["columns"])[("ours", 1)], args.clients)
        rss = {0: []}  # per process: [(time, MB)]
        threads = [threading.Thread(target=soak.client, args=(k,), daemon=True) for k in range(args.clients)]
        # the outcomes kept here grow to hundreds of thousands of objects: the collector scanning them would pause the clients,
        # and the latencies measured would be this process's own; nothing kept makes a cycle, so it is off during the load
        gc.collect(); gc.freeze(); gc.disable()
        t0 = time.time()
        soak.events.append((t0, f"load starts: {args.clients} clients; service 1 serves version {first}"))
        for t in threads: t.start()
        moves = [args.every * k for k in range(1, int(args.seconds / args.every) + 1) if args.every * k < args.seconds]
        plan = sorted([(m, "move") for m in moves] + [(restart_at, "restart")])
        drains, n_moves = [], 0
        try:
            for at, what in plan + [(args.seconds, "end")]:
                while time.time() - t0 < at:
                    rss[len(procs) - 1].append((time.time() - t0, rss_mb(procs[-1].pid)))
                    time.sleep(max(0.0, min(1.0, at - (time.time() - t0))))
                if what == "move":
                    n_moves += 1
                    if n_moves % 2: registry.set_registered_model_alias(NAME, "champion", other); said = f"champion switched to version {other}"
                    else: rollback(scratch, NAME, to=first); said = f"champion rolled back to version {first} (`registry.rollback`)"
                    soak.events.append((time.time(), said))
                elif what == "restart":
                    proc = procs[-1]
                    with soak.lock: soak.down.append([time.time(), None])
                    soak.events.append((time.time(), f"SIGTERM to service {len(procs)}"))
                    ts = time.perf_counter(); os.kill(proc.pid, signal.SIGTERM)
                    code = proc.wait(timeout=60); drain_s = time.perf_counter() - ts
                    said = [l for l in (folder / f"serve-{len(procs)}.log").read_text().splitlines() if l.startswith("[serve] stopped")]
                    drains.append({"code": code, "seconds": drain_s, "said": said[-1] if said else "(nothing)"})
                    soak.events.append((time.time(), f"service {len(procs)} exited with code {code} after {drain_s:.2f} s; {drains[-1]['said']}"))
                    procs.append(start("mlops-nb serve", cmd, env, port, "/ready", folder / f"serve-{len(procs) + 1}.log"))
                    rss[len(procs) - 1] = []
                    with soak.lock: soak.down[-1][1] = time.time()
                    soak.events.append((time.time(), f"service {len(procs)} ready after {procs[-1].start_seconds:.1f} s, serving version "
                                                     f"{json.loads(get(port, '/ready', 10)[1])['version']}"))
            soak.halt.set()
            for t in threads: t.join(timeout=60)
            gc.enable()
            soak.events.append((time.time(), "load stops"))
            ts = time.perf_counter(); os.kill(procs[-1].pid, signal.SIGTERM)
            final_code = procs[-1].wait(timeout=60); final_s = time.perf_counter() - ts
            soak.events.append((time.time(), f"SIGTERM to service {len(procs)}: exit code {final_code} after {final_s:.2f} s"))
            left = sorted(p.name for p in folder.iterdir() if p.name.startswith("predictions.db"))
        finally:
            for p in procs:
                if p.poll() is None: p.kill(); p.wait()
        # what the log kept, by request id
        db = sqlite3.connect(log)
        integrity = db.execute("pragma integrity_check").fetchone()[0]
        kept = {rid: (v, p) for rid, v, p in db.execute("select request_id, version, probability from predictions where record = 0")}
        db.close()
        log_mb = log.stat().st_size / 1e6

    answered = {rid: (v, p) for _, _, rid, v, p in soak.answered}
    missing = [rid for rid in answered if rid not in kept]
    differ = [rid for rid, vp in answered.items() if rid in kept and (kept[rid][0] != vp[0] or abs(kept[rid][1] - vp[1]) > 1e-12)]
    unanswered = len(set(kept) - set(answered))
    versions = {}
    for _, _, _, v, _ in soak.answered: versions[v] = versions.get(v, 0) + 1
    total = len(soak.answered) + len(soak.refused_503) + len(soak.refused_down) + len(soak.failed)

    # per 30 s: throughput, latency, refusals, failures, RSS
    windows = []
    for w in range(int(args.seconds // 30) + 1):
        a, b = t0 + 30 * w, t0 + min(30 * (w + 1), args.seconds)
        if a >= t0 + args.seconds: break
        lat = [dt for t, dt, *_ in soak.answered if a <= t < b]
        ref = sum(a <= t < b for t, _ in soak.refused_503 + soak.refused_down)
        fail = sum(a <= t < b for t, _ in soak.failed)
        mem = [m for k in rss for t, m in rss[k] if a - t0 <= t < b - t0]
        windows.append((30 * w, min(30 * (w + 1), args.seconds), len(lat), len(lat) / (b - a), q(lat, 0.5) if lat else float("nan"),
                        q(lat, 0.99) if lat else float("nan"), ref, fail, max(mem) if mem else float("nan")))
    growth = []
    for k, samples in rss.items():
        steady = [m for t, m in samples if t >= samples[0][0] + 30] if samples else []
        if len(steady) >= 2: growth.append((k + 1, samples[0][1], steady[0], steady[-1], max(m for _, m in samples), steady[-1] - steady[0], samples[-1][0] - samples[0][0]))
    bounded = bool(growth) and all(g[5] <= args.max_growth_mb for g in growth)
    load1 = os.getloadavg()

    import fastapi, uvicorn
    drain_list = ", ".join(f"{x['seconds']:.2f}" for x in drains) or "none"
    ok = lambda b: "met" if b else "**not met**"
    lines = [
        "# Soak: `mlops-nb serve` under load through alias switches, rollbacks and a SIGTERM restart", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"
        f" · fastapi {fastapi.__version__} · uvicorn {uvicorn.__version__}", "",
        f"Command: `{cmd_line}` ({time.time() - started:.0f} s in all; load average {load0[0]:.2f} before, {load1[0]:.2f} after (1-minute), "
        f"on {os.cpu_count()} cores shared by the clients, the service and anything else on the machine). {code_state()}.", "",
        f"Setup: {args.clients} clients, each on one keep-alive connection to 127.0.0.1, sending one-record requests back to back "
        f"(the {prep['rows']} flights of the training set's last day, in turn) for {args.seconds:.0f} s. The champion (version {first}) "
        f"and a copy of it (version {other}) in a scratch copy of the demo's registry; the alias moved every {args.every:.0f} s; the "
        f"service checks it every second, logs to a scratch prediction log, and got SIGTERM at {restart_at:.0f} s, then was started "
        f"again on the same port and log.", "",
        "## What the clients saw", "",
        "| requests | answered (200) | refused while draining (503, Retry-After) | refused while down (connection) | failed |",
        "|---:|---:|---:|---:|---:|",
        f"| {total:,} | {len(soak.answered):,} | {len(soak.refused_503):,} | {len(soak.refused_down):,} | **{len(soak.failed):,}** |", "",
        "Answers by version: " + ", ".join(f"version {v}: {n:,}" for v, n in sorted(versions.items())) + ".", "",
    ]
    if soak.failed:
        lines += ["Failures (first 5): " + "; ".join(f"{t - t0:.1f} s: {w}" for t, w in soak.failed[:5]), ""]
    lines += [
        "## What the log kept", "",
        "| answered | in the log (by request id) | missing | logged with another version or probability | logged but not answered | integrity | files left after the last SIGTERM | log size |",
        "|---:|---:|---:|---:|---:|---|---|---:|",
        f"| {len(answered):,} | {len(answered) - len(missing):,} | **{len(missing)}** | {len(differ)} | {unanswered} | {integrity} | "
        f"{', '.join(left)} | {log_mb:,.0f} MB |", "",
        "## Timeline", "", "| at (s) | event |", "|---:|---|",
    ] + [f"| {t - t0:.1f} | {what} |" for t, what in soak.events] + [
        "", "## Per 30 s", "",
        "| from (s) | to (s) | answered | req/s | p50 ms | p99 ms | refused | failed | service RSS peak (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ] + [f"| {a:.0f} | {b:.0f} | {n:,} | {r:,.0f} | {p50:.1f} | {p99:.1f} | {ref} | {fail} | {m:,.0f} |" for a, b, n, r, p50, p99, ref, fail, m in windows] + [
        "", "## Memory", "",
        f"The service's RSS sampled every second. Growth is counted from 30 s after each start (imports, the model, the online "
        f"store and the first alias loads are in) to the last sample of that process; the bound is {args.max_growth_mb:.0f} MB per process.", "",
        "| service process | RSS when ready (MB) | at 30 s (MB) | at its end (MB) | peak (MB) | growth after 30 s (MB) | over (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ] + [f"| {k} | {r0:,.0f} | {r30:,.0f} | {rend:,.0f} | {peak:,.0f} | {g:+,.0f} | {span - 30:.0f} |" for k, r0, r30, rend, peak, g, span in growth] + [
        "", "## Aims (issue 15, point 5)", "",
        f"- 0 failed requests apart from those refused while draining or down: {len(soak.failed)} failed ({ok(not soak.failed)})",
        f"- the log holds every answered prediction, checked by request id: {len(missing)} missing, {len(differ)} different ({ok(not missing and not differ)})",
        f"- SIGTERM drains and exits 0: exit codes {', '.join(str(x['code']) for x in drains)} and {final_code} "
        f"(drains of {drain_list} and {final_s:.2f} s), the log closed to one file "
        f"({ok(all(x['code'] == 0 for x in drains) and final_code == 0 and left == ['predictions.db'])})",
        f"- memory growth measured and bounded (at most {args.max_growth_mb:.0f} MB per process after its first 30 s): "
        f"{', '.join(f'{g[5]:+.0f} MB over {g[6] - 30:.0f} s' for g in growth) or 'not measured'} ({ok(bounded)})",
        f"- the alias moves were followed under load: {len(versions)} versions answered ({ok(len(versions) >= 2 or not moves)})", "",
    ]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if (not soak.failed and not missing and not differ and bounded and final_code == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
