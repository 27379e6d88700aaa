"""Trials on a Dask cluster (`compute: {backend: dask, address: ...}`), on a real scheduler and real workers started as
a team starts them (`dask scheduler`, `dask worker`) on 127.0.0.1: the same search as local processes, a worker killed
in the middle of one, a worker running other code refused, and the train step logging the same trials either way."""
import json, os, shutil, signal, sys, time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, free_port, mlops_nb, start_server, stop, wait_ready
from mlops_nb.config import Experiment, ProjectError, Split, demo_project_file, load_project
from mlops_nb.train import (TrainError, best_of, dask_cluster, expand, package_versions, refuse_other_versions, search,
                            split_frame)

SAME = ("trial", "experiment", "status", "metrics", "threshold", "importance")  # what a search decides; timings differ
EXPERIMENTS = [Experiment(name="linear", family="logistic_regression", params={"C": [0.01, 0.1, 1.0]},
                          hypothesis="A linear model ranks the tumours."),
               Experiment(name="trees", family="hist_gradient_boosting", params={"learning_rate": [0.05, 0.1, 0.2]},
                          hypothesis="Boosted trees rank them better."),
               Experiment(name="forest", family="random_forest", params={"min_samples_leaf": [2, 5, 10]},
                          hypothesis="A forest ranks them better too.")]


def start_scheduler(folder: Path):
    "`dask scheduler` on a free loopback port, ready; (process, address)."
    port = free_port()
    proc = start_server([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
                        folder / f"scheduler-{port}.log")
    return wait_ready(proc, port=port, timeout=60), f"tcp://127.0.0.1:{port}"


def start_worker(address: str, name: str, folder: Path, env: dict = None):
    "`dask worker` (a nanny and one single-threaded worker process) joining `address`, in a process group of its own."
    return start_server([BIN / "dask", "worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                         "--name", name, "--no-dashboard"], folder / f"worker-{name}.log", env=env)


def wait_for_workers(address: str, names: set, timeout: float = 90):
    "Once the scheduler at `address` lists exactly the workers `names`; fails with what it lists instead."
    from distributed import Client
    with Client(address, timeout=30, set_as_default=False) as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = {w["name"] for w in c.scheduler_info(n_workers=-1)["workers"].values()}
            if listed == names: return
            time.sleep(0.25)
    pytest.fail(f"the scheduler at {address} lists workers {listed}, not {names}, after {timeout:.0f} s")


@pytest.fixture(scope="module")
def cluster_address(tmp_path_factory):
    "A Dask scheduler and two workers, as processes on 127.0.0.1, for the module; the scheduler's address."
    folder = tmp_path_factory.mktemp("dask")
    scheduler, address = start_scheduler(folder)
    workers = [start_worker(address, f"w{i}", folder) for i in (1, 2)]
    try:
        wait_for_workers(address, {"w1", "w2"})
        yield address
    finally:
        for p in [*workers, scheduler]: stop(p)


@pytest.fixture(scope="module")
def tumours():
    "scikit-learn's bundled breast-cancer table split as training splits it: {'train', 'validation', 'holdout'}; feature columns."
    from sklearn.datasets import load_breast_cancer
    df = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    features = [c for c in df.columns if c != "target"]
    return split_frame(df, Split(by="random", validation=0.25, holdout=0.15, seed=3), "target"), features


def searched(tumours, **kw):
    "Every trial of `EXPERIMENTS` on the tumours, by `search` with `kw` (parallel, cluster, log); the results."
    parts, features = tumours
    trials = expand(EXPERIMENTS)
    return search(trials, {e.name: features for e in EXPERIMENTS}, parts, label="target", metric="roc_auc", vm=None,
                  groups={f: [f] for f in features}, say=lambda m: None, seed=7, **kw)


def decided(results) -> list:
    return [{k: r.get(k) for k in SAME} for r in results]


@pytest.fixture(scope="module")
def local_results(tumours):
    "The search in two local worker processes, as `train.parallel: 2` runs it."
    return searched(tumours, parallel=2)


def test_dask_search_chooses_the_same_trial_with_the_same_metrics(cluster_address, tumours, local_results):
    with dask_cluster(cluster_address) as cluster:
        refuse_other_versions(cluster, cluster_address)
        on_dask = searched(tumours, cluster=cluster)
    assert all(r["status"] == "finished" for r in on_dask), [r["error"] for r in on_dask]
    assert decided(on_dask) == decided(local_results)
    assert best_of(on_dask, "roc_auc")["trial"] == best_of(local_results, "roc_auc")["trial"]
    assert [r["trial"] for r in on_dask] == list(range(9))


def test_without_an_address_the_run_starts_a_cluster_of_its_cores_and_closes_it(tumours, local_results):
    with dask_cluster(None) as cluster:
        workers = cluster.scheduler_info(n_workers=-1)["workers"].values()
        refuse_other_versions(cluster, "a local cluster")
        on_dask = searched(tumours, cluster=cluster)
        local = cluster.cluster
    assert len(workers) == os.cpu_count() and {w["nthreads"] for w in workers} == {1}
    assert all(w["host"] == "127.0.0.1" for w in workers)
    assert decided(on_dask) == decided(local_results)
    assert cluster.status == "closed" and local.status.name == "closed"


def test_the_frames_are_sent_once_not_with_every_trial(cluster_address, tumours):
    """The scheduler's own record, as each result comes back: every trial's task depends on the same two scattered frames
    (the train and validation parts), which both workers held as the first trial finished, and the trials ran on both.
    (Later on, the scheduler's memory manager may drop copies that no waiting trial needs: sent once, kept while needed.)"""
    seen = []

    def look(result):
        seen.append(cluster.run_on_scheduler(lambda dask_scheduler: {
            str(k): {"depends_on": sorted(str(d.key) for d in ts.dependencies), "held_by": sorted(ws.name for ws in ts.who_has or ()),
                     "on": ts.processing_on.name if ts.processing_on else None, "scattered": ts.run_spec is None}
            for k, ts in dask_scheduler.tasks.items()}))

    with dask_cluster(cluster_address) as cluster:
        searched(tumours, cluster=cluster, log=look)
    frames = {k for state in seen for k, t in state.items() if t["scattered"]}
    trials = {k: t for state in seen for k, t in state.items() if not t["scattered"]}
    assert len(frames) == 2 and [seen[0][k]["held_by"] for k in sorted(frames)] == [["w1", "w2"]] * 2, seen[0]
    assert len(trials) == 9 and all(set(t["depends_on"]) == frames for t in trials.values())
    assert {t["on"] for state in seen for t in state.values() if t["on"]} == {"w1", "w2"}


def test_a_worker_killed_mid_search_leaves_a_complete_search(cluster_address, tumours, local_results, tmp_path):
    "A third worker joins, takes trials, and is killed (SIGKILL, nanny and all) as the first result comes back."
    victim = start_worker(cluster_address, "victim", tmp_path)
    killed = {}
    try:
        wait_for_workers(cluster_address, {"w1", "w2", "victim"})
        with dask_cluster(cluster_address) as cluster:
            address = next(a for a, w in cluster.scheduler_info(n_workers=-1)["workers"].items() if w["name"] == "victim")

            def kill_victim_once(result):
                deadline = time.monotonic() + 30
                while not killed and time.monotonic() < deadline:  # kill it while it holds a trial
                    running = cluster.processing(workers=[address]).get(address) or []
                    if running:
                        os.killpg(victim.pid, signal.SIGKILL)
                        killed.update(trials=running)
                    time.sleep(0.05)
                return None

            on_dask = searched(tumours, cluster=cluster, log=kill_victim_once)
            remaining = {w["name"] for w in cluster.scheduler_info(n_workers=-1)["workers"].values()}
    finally:
        stop(victim)
    assert killed.get("trials"), "the extra worker never held a trial: nothing was killed mid-search"
    assert victim.poll() is not None and "victim" not in remaining
    assert all(r["status"] == "finished" for r in on_dask), [r["error"] for r in on_dask]
    assert decided(on_dask) == decided(local_results)


def test_the_last_worker_holding_the_frames_killed_mid_search_leaves_a_complete_search(tumours, local_results, tmp_path):
    """The only worker, which holds the only copy of the frames, is killed as the first result comes back, once a second
    worker has joined: the scheduler cancels the trials that needed the lost frames, and the search sends them again."""
    scheduler, address = start_scheduler(tmp_path)
    first = start_worker(address, "first", tmp_path)
    second = None
    killed = {}
    try:
        wait_for_workers(address, {"first"})
        with dask_cluster(address) as cluster:
            def replace_the_worker_once(result):
                nonlocal second
                if killed: return None
                second = start_worker(address, "second", tmp_path)
                wait_for_workers(address, {"first", "second"})
                at = next(a for a, w in cluster.scheduler_info(n_workers=-1)["workers"].items() if w["name"] == "first")
                killed.update(trials=cluster.processing(workers=[at]).get(at) or [], results_before=result["trial"])
                os.killpg(first.pid, signal.SIGKILL)
                return None

            on_dask = searched(tumours, cluster=cluster, log=replace_the_worker_once)
            remaining = {w["name"] for w in cluster.scheduler_info(n_workers=-1)["workers"].values()}
    finally:
        for p in (first, second, scheduler):
            if p is not None: stop(p)
    assert killed.get("trials"), "the first worker held no trial when it was killed: nothing was lost mid-search"
    assert remaining == {"second"}
    assert all(r["status"] == "finished" for r in on_dask), [r["error"] for r in on_dask]
    assert decided(on_dask) == decided(local_results)


def other_code(folder: Path) -> Path:
    """A folder holding another build of mlops_nb: the package as installed, its `train` module with one more line.
    A worker started with it on its PYTHONPATH imports that package, as a worker installed from another commit would."""
    import mlops_nb
    pkg = folder / "mlops_nb"
    shutil.copytree(Path(mlops_nb.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    with open(pkg / "train.py", "a") as f: f.write("\n# a change made after this worker's image was built\n")
    return folder


def refusal(folder: Path, pythonpath: Path) -> tuple:
    "(the refusal's message, what the worker reported) of a cluster whose one worker runs with `pythonpath` first."
    scheduler, address = start_scheduler(folder)
    odd = start_worker(address, "odd", folder, env={"PYTHONPATH": str(pythonpath)})
    try:
        wait_for_workers(address, {"odd"})
        with dask_cluster(address) as cluster:
            with pytest.raises(TrainError) as refused:
                refuse_other_versions(cluster, address)
            [(worker, got)] = cluster.run(package_versions, on_error="return").items()
    finally:
        for p in (odd, scheduler): stop(p)
    assert f"the Dask cluster at {address} runs other versions than this run" in str(refused.value)
    return str(refused.value), worker, got


def test_a_worker_with_other_code_is_refused_with_the_versions_named(tmp_path):
    message, worker, got = refusal(tmp_path, other_code(tmp_path / "other"))
    ours = package_versions()
    assert got["mlops_nb"] != ours["mlops_nb"] and got["mlops_nb"].split()[0] == ours["mlops_nb"].split()[0]  # same number, other code
    assert f"worker {worker} has mlops_nb {got['mlops_nb']}, this run has {ours['mlops_nb']}" in message
    assert "numpy" not in message  # only what differs is named


def test_a_worker_without_mlops_nb_is_refused(tmp_path):
    "A worker whose `import mlops_nb` fails, as on a machine where it is not installed (a folder first on its path)."
    (tmp_path / "absent" / "mlops_nb").mkdir(parents=True)
    (tmp_path / "absent" / "mlops_nb" / "__init__.py").write_text("raise ImportError('no mlops_nb on this worker')\n")
    message, worker, got = refusal(tmp_path, tmp_path / "absent")
    assert isinstance(got, Exception)
    assert f"worker {worker} could not report its versions (Exception: ImportError('no mlops_nb on this worker'))" in message


def test_a_cluster_without_workers_and_an_address_without_scheduler_are_refused(tmp_path):
    scheduler, address = start_scheduler(tmp_path)
    try:
        with dask_cluster(address) as cluster, pytest.raises(TrainError, match=f"the Dask cluster at {address} has no worker"):
            refuse_other_versions(cluster, address)
    finally:
        stop(scheduler)
    nobody = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(TrainError, match=f"compute.address: no Dask scheduler answers at {nobody}"):
        with dask_cluster(nobody, connect_seconds=2): pass


def test_without_dask_distributed_the_error_says_what_to_install(monkeypatch):
    "Python's own way to make a module unimportable (`sys.modules[name] = None`), as on a machine without the team extra."
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(TrainError, match=r"dask.distributed is not installed here: pip install 'mlops-nb\[team\]'"):
        with dask_cluster("tcp://127.0.0.1:8786"): pass


@pytest.mark.parametrize("setting, message", [
    (["compute.backend=spark"], "key `compute.backend`: Input should be 'local' or 'dask' (got 'spark')"),
    (["compute.backend=dask", "compute.address=http://127.0.0.1:8786"], "a Dask scheduler's address is tcp://host:port or tls://host:port"),
    (["compute.address=tcp://127.0.0.1:8786"], "set `compute.backend: dask` to train on that cluster, or remove the address"),
    (["compute.backend=dask", "compute.address=tcp://alice:s3cret@127.0.0.1:8786"], "key `compute.address`: tcp://***@127.0.0.1:8786 has credentials in it"),
])
def test_compute_settings_are_refused_with_the_key_and_value(setting, message):
    with pytest.raises(ProjectError) as refused:
        load_project(demo_project_file(), setting)
    assert message in str(refused.value) and "s3cret" not in str(refused.value)


def test_the_cli_refuses_a_bad_compute_setting_with_exit_2(demo_project):
    code, out = mlops_nb("run", "--project", demo_project, "--set", "compute.backend=dask", "--set", "compute.address=127.0.0.1:8786")
    assert code == 2, out
    assert "`compute.address` is '127.0.0.1:8786'" in out and not (demo_project.parent / "runs").exists()


def trial_runs(root: Path) -> dict:
    "{compute tag: {trial run name: (metrics without timings, params)}} of the trials in the project's tracking store."
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    timings = ("fit_seconds", "eval_seconds", "figure_seconds", "seconds")
    out = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], max_results=1000):
            if "family" not in run.data.tags: continue  # a pipeline's or a step's run, not a trial
            out.setdefault(run.data.tags.get("compute"), {})[run.info.run_name] = (
                {k: v for k, v in run.data.metrics.items() if k not in timings and not k.startswith("holdout_")}, run.data.params)
    return out


def test_the_train_step_logs_the_same_trials_on_dask_as_locally(cluster_address, demo_project):
    "The demo's first week, its first three experiments (4 trials), no profile: the run through the train step, twice."
    data = yaml.safe_load(demo_project.read_text())
    data["train"]["experiments"] = data["train"]["experiments"][:3]
    data["quality"]["profile"]["enabled"] = False
    demo_project.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out = mlops_nb("run", "--project", demo_project, "--until", "train", "--no-reports")
    assert code == 0, out
    code, out = mlops_nb("run", "--project", demo_project, "--from", "train", "--until", "train", "--no-reports",
                         "--set", "compute.backend=dask", "--set", f"compute.address={cluster_address}")
    assert code == 0, out
    assert f"trials on the Dask cluster at {cluster_address}: 2 workers, versions checked" in out
    logged = trial_runs(demo_project.parent)
    assert set(logged) == {"local", f"dask {cluster_address}"}
    assert logged["local"] == logged[f"dask {cluster_address}"] and len(logged["local"]) == 4
    cards = [json.loads(p.read_text()) for p in (demo_project.parent / "runs").glob("*/artifacts/train/model_card.json")]
    assert len(cards) == 2 and cards[0]["selected"]["trial"] == cards[1]["selected"]["trial"]
    records = [json.loads(p.read_text()) for p in (demo_project.parent / "runs").glob("*/artifacts/train/outputs.json")]
    assert sorted(r["params"]["compute"] for r in records) == sorted(["local", f"dask {cluster_address}"])
