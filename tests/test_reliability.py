"""Runs end cleanly whatever stops them (issue 15): SIGTERM and SIGINT record the run `interrupted` and exit 128 + the
signal; `kill -9` of the runner takes its kernel with it, and the next reader settles the run; a full disk fails the
step with the path named and nothing half-written, and the next run succeeds once there is room. Real runs of the
demo's first week, real signals, a real tmpfs."""
import json, os, shutil, signal, subprocess, time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from conftest import BIN, mlops_nb, write_demo_project
from mlops_nb.runs import RESERVE, process_start

MODEL = "delay_model"


def start_run(project: Path, *args, log: Path) -> subprocess.Popen:
    "`mlops-nb run --project PROJECT ARGS` in a session of its own, its output to `log` (it remembers it: `proc.log`)."
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "mlops-nb"), "run", "--project", str(project), *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    proc.log = log
    return proc


def wait_for(proc: subprocess.Popen, text: str, timeout: float = 600) -> None:
    "Return once the run's output shows `text`; fail if the run ends first."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.log.read_text(errors="replace"): return
        if proc.poll() is not None: pytest.fail(f"the run ended (code {proc.returncode}) before {text!r}:\n{proc.log.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no {text!r} in {timeout:.0f} s:\n{proc.log.read_text()[-3000:]}")


def kernels_of(pid: int) -> list[int]:
    "The ipykernel processes whose parent is `pid`."
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"ipykernel" in (stat.parent / "cmdline").read_bytes(): out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError): continue
    return out


def gone_within(pids: list[int], seconds: float) -> bool:
    "Whether every process of `pids` has ended (or is a zombie) within `seconds`."
    deadline = time.monotonic() + seconds
    while any(process_start(p) is not None for p in pids):
        if time.monotonic() > deadline: return False
        time.sleep(0.05)
    return True


def only_run(root: Path, but: tuple = ()) -> Path:
    "The one run folder of the project at `root` that is not in `but`."
    (run_dir,) = [d for d in (root / "runs").iterdir() if d.is_dir() and d not in but]
    return run_dir


def tracking(root: Path) -> MlflowClient:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def registry_state(root: Path) -> list[tuple]:
    "Every version of the model: (version, its decision tag, its aliases); empty when nothing is registered."
    return sorted((v.version, v.tags.get("decision"), tuple(sorted(v.aliases)))
                  for v in tracking(root).search_model_versions(f"name='{MODEL}'"))


def step_of(rec: dict, name: str) -> dict:
    return next(s for s in rec["steps"] if s["name"] == name)


@pytest.fixture(scope="module")
def sigterm_in_train(tmp_path_factory, warehouse):
    "A whole run of the demo's first week, sent SIGTERM while its train step searches."
    root = tmp_path_factory.mktemp("sigterm")
    project = write_demo_project(root, warehouse)
    proc = start_run(project, log=root / "run.log")
    wait_for(proc, "[train] ")  # the kernel's first progress line: the step's own code runs
    kernels = kernels_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    run_dir = only_run(root)
    return SimpleNamespace(root=root, project=project, code=code, out=proc.log.read_text(), kernels=kernels, run_dir=run_dir,
                           rec=json.loads((run_dir / "run.json").read_text()), registry=registry_state(root))


def test_sigterm_records_the_run_interrupted(sigterm_in_train):
    r = sigterm_in_train
    assert r.code == 128 + signal.SIGTERM, r.out
    assert "stopped by SIGTERM" in r.out
    rec = r.rec
    assert (rec["status"], rec["signal"], rec["error"]["step"], rec["error"]["ename"]) == ("interrupted", "SIGTERM", "train", "Interrupted")
    assert [(s["name"], s["status"]) for s in rec["steps"]][-2:] == [("train", "interrupted"), ("deploy", "skipped")]
    assert all(s["status"] == "succeeded" for s in rec["steps"][:-2]), rec["steps"]
    assert step_of(rec, "train")["error"]["message"] == "stopped by SIGTERM"


def test_sigterm_stops_the_kernel_and_leaves_nothing_half_done(sigterm_in_train):
    r = sigterm_in_train
    assert r.kernels, "the train step's kernel was found before the signal"
    assert gone_within(r.kernels, 0), f"kernels {r.kernels} outlived their run"
    assert not list((r.run_dir / "artifacts").glob(".*")), "staged outputs or the disk reserve were left behind"
    client = tracking(r.root)
    assert client.get_run(r.rec["mlflow"]["parent_run_id"]).info.status == "KILLED"
    assert client.get_run(step_of(r.rec, "train")["mlflow_run_id"]).info.status == "KILLED"
    assert client.get_run(step_of(r.rec, "features")["mlflow_run_id"]).info.status == "FINISHED"
    assert r.registry == [], "an interrupted search registered a model"


@pytest.fixture(scope="module")
def sigkill_in_train(sigterm_in_train):
    """`mlops-nb run --from train` on the interrupted run's upstream (which it reuses), killed with SIGKILL while it
    searches; then `mlops-nb runs list`, then the next `mlops-nb run --from train`."""
    r = sigterm_in_train
    proc = start_run(r.project, "--from", "train", log=r.root / "killed.log")
    wait_for(proc, "[train] ")  # the kernel's first progress line: the step's own code runs
    kernels = kernels_of(proc.pid)
    before = registry_state(r.root)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kernels_gone = gone_within(kernels, 2)
    killed_dir = only_run(r.root, but=(r.run_dir,))
    raw = json.loads((killed_dir / "run.json").read_text())  # as the kill left it, before anything settles it
    partial_left = [p.name for p in (killed_dir / "artifacts").glob(".*")]
    time.sleep(5)  # a kernel left alive would go on: nothing may change in the registry meanwhile
    after = registry_state(r.root)
    listed = mlops_nb("runs", "list", "--project", r.project)
    t0 = time.monotonic()
    rerun = mlops_nb("run", "--project", r.project, "--from", "train")
    return SimpleNamespace(r=r, kernels=kernels, kernels_gone=kernels_gone, killed_dir=killed_dir, raw=raw, partial_left=partial_left,
                           before=before, after=after, listed=listed, rerun=rerun, rerun_seconds=time.monotonic() - t0)


def test_sigkill_takes_the_kernel_with_the_runner(sigkill_in_train):
    k = sigkill_in_train
    assert k.kernels, "the train step's kernel was found before the kill"
    assert k.kernels_gone, f"kernels {k.kernels} outlived their runner by more than 2 s"
    assert k.before == k.after, "the registry changed after the runner was killed"
    assert k.raw["status"] == "running" and k.partial_left, "the kill left the run as the issue describes: to be settled"


def test_the_next_reader_settles_a_killed_run(sigkill_in_train):
    k = sigkill_in_train
    code, out = k.listed
    assert code == 0, out
    line = next(l for l in out.splitlines() if k.killed_dir.name in l)
    assert "interrupted" in line, out
    rec = json.loads((k.killed_dir / "run.json").read_text())
    assert (rec["status"], rec["error"]["step"], rec["error"]["ename"]) == ("interrupted", "train", "Abandoned")
    assert [s["status"] for s in rec["steps"]][-2:] == ["interrupted", "skipped"]
    assert not list((k.killed_dir / "artifacts").glob(".*")), "stale staged outputs or the reserve were left behind"


def test_after_a_kill_the_next_run_succeeds_and_promotes_atomically(sigkill_in_train):
    k = sigkill_in_train
    code, out = k.rerun
    assert code == 0, out
    client = tracking(k.r.root)
    killed = json.loads((k.killed_dir / "run.json").read_text())
    assert client.get_run(killed["mlflow"]["parent_run_id"]).info.status == "KILLED"
    assert client.get_run(step_of(killed, "train")["mlflow_run_id"]).info.status == "KILLED"
    # every version fully recorded (its decision tagged), the champion absent or a version whose decision was `champion`
    state = registry_state(k.r.root)
    assert state and all(decision is not None for _, decision, _ in state), state
    assert all(decision == "champion" for _, decision, aliases in state if "champion" in aliases), state


def test_sigint_exits_130_and_records_it(demo_project):
    proc = start_run(demo_project, "--until", "design", log=demo_project.parent / "run.log")
    wait_for(proc, "design     running")  # the kernel is starting
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.log.read_text()
    rec = json.loads((only_run(demo_project.parent) / "run.json").read_text())
    assert (rec["status"], rec["signal"], step_of(rec, "design")["status"]) == ("interrupted", "SIGINT", "interrupted")


@pytest.fixture
def small_disk(tmp_path):
    "A 64 MiB tmpfs mounted on `tmp_path/runs`, unmounted after the test (mounting needs root, or sudo without a password)."
    runs = tmp_path / "runs"
    runs.mkdir()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    mounted = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(runs)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the full-disk test needs root or passwordless sudo")
    try: yield runs
    finally: subprocess.run([*sudo, "umount", "-l", str(runs)], check=True)


def test_a_full_disk_fails_the_step_cleanly_and_the_next_run_succeeds(small_disk, warehouse):
    runs = small_disk
    project = write_demo_project(runs.parent, warehouse)
    filler = runs / "filler"
    with open(filler, "wb") as f:  # leave 1.4 MB: the run's reserve and the design step fit, the ingest step's snapshot does not
        os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(runs).free - 1400 * 1024)
    code, out = mlops_nb("run", "--project", project, "--until", "ingest")
    assert code == 1, out
    run_dir = only_run(runs.parent)
    rec = json.loads((run_dir / "run.json").read_text())
    err = step_of(rec, "ingest")["error"]
    assert (rec["status"], step_of(rec, "ingest")["status"], err["ename"]) == ("failed", "failed", "DiskFull"), rec
    assert f"no space left on the device of {run_dir}" in err["message"] and "bytes free" in err["message"]
    assert "DiskFull: no space left on the device of" in out
    assert not list((run_dir / "artifacts").glob(".*")), "staged outputs or the reserve were left behind"
    assert sorted(p.name for p in (run_dir / "artifacts").iterdir()) == ["design"]
    for nb in (run_dir / "notebooks").glob("*.ipynb"): json.loads(nb.read_text())  # no executed notebook cut short
    filler.unlink()
    code, out = mlops_nb("run", "--project", project, "--until", "ingest")
    assert code == 0, out
