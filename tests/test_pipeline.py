"Whole runs through the `mlops-nb` command: the run contract, the --data mode, and bad input."
import json, sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from conftest import BIN, ROOT, free_port, log_tail, mlops_nb, running_server
from mlops_nb.config import file_digest, frame_digest


def only_run(root: Path) -> Path:
    runs = [p for p in (root / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_demo_run_contract(demo_week_run):
    """A run on the demo's first week: run.json, executed notebooks, artifacts with digests, MLflow runs, reports.
    The run is shared with test_reports (conftest's `demo_week_run`); the registry's aliases are checked as the run left them."""
    demo_project, code, out = demo_week_run.project, demo_week_run.code, demo_week_run.out
    assert code == 0, out
    assert "[1/7] design" in out and "succeeded" in out
    assert "[train] trial 1/" in out and "best so far" in out  # the train step's progress reaches the terminal
    root = demo_project.parent
    run_dir = only_run(root)
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "succeeded" and rec["error"] is None and rec["ended"]
    assert rec["project"]["digest"] and rec["project"]["file"] == str(demo_project)
    assert [s["name"] for s in rec["steps"]] == ["design", "ingest", "quality", "delays_by_hour", "features", "train", "deploy"]
    step = {s["name"]: s for s in rec["steps"]}
    for s in rec["steps"]:
        assert s["status"] == "succeeded" and s["duration_s"] > 0
        assert (run_dir / s["executed_notebook"]).exists()
        assert s["outputs"], s["name"]
        for name, o in s["outputs"].items():
            path = run_dir / o["path"]
            assert path.exists(), path
            if name.endswith(".parquet"): assert o["digest"] == frame_digest(pd.read_parquet(path))
            else: assert o["digest"] == file_digest(path)
    flights = pd.read_parquet(run_dir / step["ingest"]["outputs"]["flights.parquet"]["path"])
    assert flights.time_hour.min() >= pd.Timestamp("2013-01-01", tz="UTC")
    assert flights.time_hour.max() < pd.Timestamp("2013-01-08", tz="UTC")
    assert not list((run_dir / "artifacts").glob(".*partial"))
    # MLflow: a parent run, one nested run per step, the executed notebook logged, dataset inputs
    client = MlflowClient(rec["mlflow"]["tracking_uri"], registry_uri=rec["mlflow"]["tracking_uri"])
    parent = client.get_run(rec["mlflow"]["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["mlops_nb.project_digest"] == rec["project"]["digest"]
    for s in rec["steps"]:
        r = client.get_run(s["mlflow_run_id"])
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id and r.info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(r.info.run_id, "notebook")]
    ingest = client.get_run(step["ingest"]["mlflow_run_id"])
    assert {d.dataset.name for d in ingest.inputs.dataset_inputs} >= {"flights", "weather"}
    assert "quality_accuracy" in client.get_run(step["quality"]["mlflow_run_id"]).data.metrics
    train = pd.read_parquet(run_dir / step["features"]["outputs"]["training_set.parquet"]["path"])
    assert {"late", "event_timestamp", "carrier", "temp"} <= set(train.columns) and "dep_delay" not in train.columns
    # training: trials nested under the train step's run, the selected one with hold-out metrics, a registered challenger
    card = json.loads((run_dir / "artifacts/train/model_card.json").read_text())
    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{step['train']['mlflow_run_id']}'")
    assert len(trials) == len(json.loads((run_dir / "artifacts/train/trials.json").read_text())) >= 5
    copies = card["split"]["identical_rows"]  # the demo's copies (ids aside) are reported; a time split keeps them together
    assert copies["rows"] >= 0 and len(copies["examples"]) == min(copies["groups"], 3)
    selected = client.get_run(card["selected"]["run_id"])
    assert {"holdout_roc_auc", "holdout_value"} <= set(selected.data.metrics)
    assert selected.data.tags["holdout_digest"] == card["lineage"]["holdout_digest"]
    smoke = json.loads((run_dir / "artifacts/deploy/smoke.json").read_text())
    if demo_week_run.registry["champion"] is None: assert not smoke["deployed"] and "no champion" in smoke["reason"]
    else: assert smoke["deployed"] and all(c["passed"] for c in smoke["checks"])
    mv = demo_week_run.registry["challenger"]
    assert mv is not None, "no version has the alias challenger"
    assert str(mv.version) == str(card["registered"]["version"]) and mv.tags["decision"] == card["registered"]["decision"]
    # static reports
    assert rec["reports"] and all((run_dir / p).exists() for p in rec["reports"].values())
    # the CLI reads it back
    code, out = mlops_nb("runs", "list", "--project", demo_project)
    assert code == 0 and rec["run_id"] in out and "succeeded" in out
    code, out = mlops_nb("runs", "show", rec["run_id"], "--json", "--project", demo_project)
    assert code == 0 and json.loads(out)["run_id"] == rec["run_id"]


def test_from_reuses_upstream_and_same_data_same_digest(demo_project):
    "--from quality reuses the last run's ingest; the same data ingested twice has the same digest and version."
    assert mlops_nb("run", "--project", demo_project, "--until", "ingest", "--no-reports")[0] == 0
    assert mlops_nb("run", "--project", demo_project, "--until", "ingest", "--no-reports")[0] == 0
    code, out = mlops_nb("run", "--project", demo_project, "--from", "quality", "--until", "features", "--no-reports",
                         "--set", "quality.profile.enabled=false")
    assert code == 0, out
    recs = [json.loads(p.read_text()) for p in sorted((demo_project.parent / "runs").glob("*/run.json"))]
    first, second, third = recs
    d1, d2 = (r["steps"][1]["outputs"]["flights.parquet"]["digest"] for r in (first, second))
    assert d1 == d2
    snaps = [json.loads((demo_project.parent / "runs" / r["run_id"] / "artifacts/ingest/snapshot.json").read_text())
             for r in (first, second)]
    assert snaps[0]["tables"]["flights"]["version"] == snaps[1]["tables"]["flights"]["version"]
    assert [s["status"] for s in third["steps"]] == ["reused", "reused", "succeeded", "succeeded"]
    assert third["steps"][1]["reused_from"] == second["run_id"]


def test_overrides_are_validated(demo_project):
    code, out = mlops_nb("run", "--project", demo_project, "--set", "quality.thresholds.acuracy=0.5")
    assert code == 2 and "acuracy" in out and "Traceback" not in out
    assert not (demo_project.parent / "runs").exists() or not any((demo_project.parent / "runs").iterdir())


def test_second_run_refused_while_first_holds_lock(demo_project):
    "Two runs of one project never interleave: the second refuses (exit 3) while the first holds the lock."
    import fcntl
    runs = demo_project.parent / "runs"
    runs.mkdir()
    with open(runs / ".flights.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("run 20991231-000000-abcd, pid 1"); f.flush()
        code, out = mlops_nb("run", "--project", demo_project, "--wait", "0.5")
    assert code == 3 and "already running" in out and "20991231-000000-abcd" in out
    assert not [p for p in runs.iterdir() if p.is_dir()]


# --- --data / --target on tables it has never seen -------------------------------------------------

def with_copies(df: pd.DataFrame, rows) -> pd.DataFrame:
    "`df` with the rows at positions `rows` appended again: identical rows, as tables without an identifier have."
    return pd.concat([df, df.iloc[list(rows)]], ignore_index=True)


@pytest.fixture
def cancer_csv(tmp_path):
    "scikit-learn's breast-cancer table with two records entered twice."
    from sklearn.datasets import load_breast_cancer
    f = tmp_path / "cancer.csv"
    with_copies(load_breast_cancer(as_frame=True).frame, [10, 200]).to_csv(f, index=False)
    return f


def assert_copies_kept_together(run_dir: Path, planted: int):
    "The train step reported the identical rows, and its split (recomputed) kept each group in one part."
    from mlops_nb.config import Split, load_project
    from mlops_nb.train import check_holdout, row_groups, split_frame
    card = json.loads((run_dir / "artifacts/train/model_card.json").read_text())
    copies = card["split"]["identical_rows"]
    assert copies["rows"] >= planted and copies["examples"], copies
    train = pd.read_parquet(run_dir / "artifacts/features/training_set.parquet")
    spec = load_project(run_dir / "project.yaml").train.split
    parts = split_frame(train.assign(position=range(len(train))), spec, card["label"]["name"], ids=["position"])
    assert check_holdout({k: v.drop(columns="position") for k, v in parts.items()}) == card["lineage"]["holdout_digest"]
    groups = row_groups(train)
    where = [set(groups[v.position]) for v in parts.values()]
    assert not (where[0] & where[1] or where[0] & where[2] or where[1] & where[2])
    assert {k: len(v) for k, v in parts.items()} == card["split"]["rows"]


def test_data_target_mode(cancer_csv):
    code, out = mlops_nb("run", "--data", cancer_csv, "--target", "target", cwd=cancer_csv.parent)
    assert code == 0, out
    run_dir = only_run(cancer_csv.parent)
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["project"]["inferred"] and rec["status"] == "succeeded"
    saved = yaml.safe_load((run_dir / "project.yaml").read_text())
    assert saved["design"]["target"]["name"] == "target" and saved["design"]["inferred_from"].startswith("cancer.csv (571 rows")
    # the inferred rules describe the table: its two identical rows are tolerated at the level observed, the figure beside it
    assert saved["quality"]["tables"]["cancer"]["duplicates"] == {"severity": "error", "min_pass_rate": 0.9964, "observed": 0.003503}
    quality = json.loads((run_dir / "artifacts/quality/quality.json").read_text())
    assert quality["passed"] and quality["scores"]["timeliness"] is None  # no timestamp: not applicable
    features = json.loads((run_dir / "artifacts/features/feature_views.json").read_text())
    train = pd.read_parquet(run_dir / "artifacts/features/training_set.parquet")
    assert features["mode"] == "table" and train["target"].dtype == bool and len(train) == 571
    assert set(features["features"]) == set(train.columns) - {"target"} and "mean radius" in features["features"]
    card = json.loads((run_dir / "artifacts/train/model_card.json").read_text())
    assert card["split"]["kind"] == "random" and card["registered"]["name"] == "cancer"  # no time column: a random hold-out
    assert_copies_kept_together(run_dir, planted=2)
    assert card["registered"]["decision"] == "champion" and card["holdout"]["roc_auc"] > 0.9 and card["holdout"]["value"] > 0
    assert [g["needs"] for g in card["gates"]] == [">= 0.55", "not gated", "> 0"]
    smoke = json.loads((run_dir / "artifacts/deploy/smoke.json").read_text())  # the champion served and smoke-tested
    assert smoke["deployed"] and smoke["model_uri"] == "models:/cancer/1"
    # the closing lines say where the project is, what to edit, how to serve; the overview page says the card was inferred
    assert f"next: the inferred project is saved in {run_dir / 'project.yaml'}" in out
    assert "design.value_model" in out and "design.key_metrics[*].threshold" in out
    assert f"serve it: mlops-nb serve --project {run_dir / 'project.yaml'}" in out
    overview = (run_dir / rec["reports"]["overview"]).read_text()
    assert "This design card was inferred from" in overview and "design.value_model" in overview
    assert_image_command_serves(run_dir / "artifacts/deploy/bundle", cancer_csv.parent / "elsewhere")
    # the saved project is reusable as it is (its quality rules included; the profile was checked by the run above)
    code, out = mlops_nb("run", "--project", run_dir / "project.yaml", "--until", "quality", "--no-reports",
                         "--set", "quality.profile.enabled=false", cwd=cancer_csv.parent)
    assert code == 0, out


def test_a_tenth_of_rows_identical(tmp_path):
    """A public survey table (statsmodels' anes96) with 10 % of its rows planted twice, and a column nobody filled in:
    a served champion (its example request and known categories right despite the empty column), copies on one side."""
    import statsmodels.api as sm
    votes = sm.datasets.anes96.load_pandas().data.assign(comment=None)
    f = tmp_path / "votes.csv"
    with_copies(votes, range(0, len(votes), 10)).to_csv(f, index=False)
    code, out = mlops_nb("run", "--data", f, "--target", "vote", "--no-reports", cwd=tmp_path)
    assert code == 0, out
    run_dir = only_run(tmp_path)
    assert "rows repeat another row" in out and "kept in one part" in out
    assert_copies_kept_together(run_dir, planted=95)
    card = json.loads((run_dir / "artifacts/train/model_card.json").read_text())
    assert card["registered"]["decision"] == "champion", card["registered"]
    assert json.loads((run_dir / "artifacts/deploy/smoke.json").read_text())["deployed"]


def assert_image_command_serves(bundle: Path, cwd: Path):
    "The bundle's Dockerfile copies files the source tree has, and its command, run on the host, serves and passes the smoke test."
    from mlops_nb.config import package_root
    from mlops_nb.deploy import IMAGE_BUNDLE, smoke_test
    lines = (bundle / "Dockerfile").read_text().splitlines()
    copied = [w for line in lines if line.startswith("COPY ") and "--from=bundle" not in line for w in line.split()[1:-1]]
    assert copied and all((package_root() / c).exists() for c in copied), copied
    assert "COPY --from=bundle . ./bundle" in lines  # the bundle itself (its second build context) is in the image
    command = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    assert command[:6] == ["mlops-nb", "serve", "--project", f"{IMAGE_BUNDLE}/project.yaml", "--run-dir", f"{IMAGE_BUNDLE}/serving_run"], command
    command = [a.replace(IMAGE_BUNDLE, str(bundle)) for a in command]  # the image's copy of the bundle is the bundle here
    port = free_port()  # the container's 0.0.0.0:8000 becomes a loopback port here
    host = {"0.0.0.0": "127.0.0.1", "8000": str(port)}
    cwd.mkdir()  # not the project folder: the image's working directory is its own
    log = cwd.parent / f"{cwd.name}.log"
    with running_server([BIN / command[0], *(host.get(a, a) for a in command[1:])], log, url=f"http://127.0.0.1:{port}/ready",
                        timeout=120, cwd=cwd):
        result = smoke_test(f"http://127.0.0.1:{port}", timeout=120)
    assert result["passed"], (result, log_tail(log, 2000))


# --- bad input: exit 1 or 2, a message naming the problem, no traceback, nothing half-written -------

def bad_csv(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f


def frame_csv(tmp_path, name, df):
    f = tmp_path / name
    df.to_csv(f, index=False)
    return f


def table(n=60, **cols):
    base = {"age": [20 + i % 50 for i in range(n)], "city": ["a", "b", "c"] * (n // 3),
            "churned": [i % 2 for i in range(n)]}
    base.update(cols)
    return pd.DataFrame(base)


CASES = {  # what no run could get past: exit 2 before anything runs
    "empty file": (lambda d: bad_csv(d, "empty.csv", ""), "churned", ["empty"]),
    "missing target": (lambda d: frame_csv(d, "t.csv", table()), "churn", ["'churn' is not a column", "churned"]),
    "garbled csv": (lambda d: bad_csv(d, "g.csv", 'a,b,churned\n1,2,0\n"3,4\n5,6,7,8,9\n\x00\x01,1\n'), "churned", ["g.csv"]),
    "a target with one value": (lambda d: frame_csv(d, "t.csv", table(churned=[1] * 60)), "churned", ["is 1 in every row"]),
    "an empty target": (lambda d: frame_csv(d, "t.csv", table(churned=[None] * 60)), "churned", ["empty in every row"]),
    "a class too rare to split": (lambda d: frame_csv(d, "t.csv", table(churned=[1] * 3 + [0] * 57)), "churned",
                                  ["in only 3 of 60 rows", "at least 10 rows of each"]),
    # the kind of target: what `design.target_kind` refuses, through the command line
    "an identifier as target": (lambda d: frame_csv(d, "t.csv", table(churned=[f"C-{i:04d}" for i in range(60)])), "churned",
                                ["a distinct value in each of its 60 rows", "like an identifier"]),
    "a row number as target": (lambda d: frame_csv(d, "t.csv", table(churned=range(1, 61))), "churned", ["like a row number"]),
    "a handful of whole numbers": (lambda d: frame_csv(d, "t.csv", table(churned=[i % 4 for i in range(60)])), "churned",
                                   ["holds 4 whole numbers", "--kind multiclass", "--kind regression"]),
    "a class seen once": (lambda d: frame_csv(d, "t.csv", table(churned=["gold"] * 30 + ["silver"] * 29 + ["bronze"])), "churned",
                          ["'bronze' in only 1 of 60 rows", "merge the rare classes"]),
    "too many classes": (lambda d: frame_csv(d, "t.csv", table(120, churned=[f"plan-{i % 60}" for i in range(120)])), "churned",
                         ["has 60 classes, more than 50", "group them into fewer"]),
    "text as a number": (lambda d: frame_csv(d, "t.csv", table(churned=["yes", "no", "maybe"] * 20)), "churned",
                         ["holds text", "a regression target is a quantity"], "--kind", "regression"),
    "two values as classes": (lambda d: frame_csv(d, "t.csv", table()), "churned", ["that is a binary target"], "--kind", "multiclass"),
    "classes as a flag": (lambda d: frame_csv(d, "t.csv", table(churned=["yes", "no", "maybe"] * 20)), "churned",
                          ["3 distinct values, not two", "--kind multiclass"], "--kind", "binary"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data(case, tmp_path):
    make, target, words, *options = CASES[case]
    f = make(tmp_path)
    code, out = mlops_nb("run", "--data", f, "--target", target, *options, "--no-reports", cwd=tmp_path)
    assert code == 2, out
    assert "Traceback" not in out, out
    for w in words: assert w.lower() in out.lower(), (w, out)
    assert not (tmp_path / "runs").exists() or not [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]


def defects(n: int, texts: int, nulls: int, future: int, copies: int) -> pd.DataFrame:
    "A customers table with `texts` words among the ages, `nulls` unknown incomes, `future` sign-ups in 2099, `copies` rows twice."
    df = table(n, age=[20 + i for i in range(n - texts)] + ["forty"] * texts, income=[None] * nulls + list(range(n - nulls)),
               signed_up_at=[f"2021-05-{1 + i % 28:02d}" for i in range(n - future)] + ["2099-01-01"] * future)
    return with_copies(df, range(20, 20 + copies))  # rows with none of the other defects


def test_defects_are_described_then_caught(tmp_path):
    """The first run passes the gate inferred from its own table, whatever defects it already has; the saved project,
    reused on a worse table, fails its gate with each rule and both figures; nothing half-written."""
    no_profile = ("--set", "quality.profile.enabled=false")  # this is about the checks: the profile is tested elsewhere
    first = frame_csv(tmp_path, "customers.csv", defects(60, texts=1, nulls=6, future=1, copies=3))
    code, out = mlops_nb("run", "--data", first, "--target", "churned", "--until", "quality", "--no-reports", *no_profile, cwd=tmp_path)
    assert code == 0, out
    run_dir = only_run(tmp_path)
    rules = yaml.safe_load((run_dir / "project.yaml").read_text())["quality"]["tables"]["customers"]
    assert rules["columns"]["age"]["observed"] == {"schema": round(1 / 63, 6)}  # the figures beside the rules
    assert rules["columns"]["income"]["observed"] == {"null_rate": round(6 / 63, 6)}
    assert rules["columns"]["signed_up_at"]["observed"] == {"not_in_future": round(1 / 63, 6)}
    assert rules["duplicates"]["observed"] == round(3 / 63, 6)
    worse = frame_csv(tmp_path, "next.csv", defects(60, texts=4, nulls=15, future=5, copies=10))
    code, out = mlops_nb("run", "--project", run_dir / "project.yaml", "--set", f"sources.data.path={worse}", "--no-reports",
                         *no_profile, cwd=tmp_path)
    assert code == 1 and "QualityGateError" in out and "Traceback" not in out, out
    failed = max((p for p in (tmp_path / "runs").iterdir() if p.is_dir()), key=lambda p: p.name)
    failures = json.loads((failed / "artifacts/quality/quality.json").read_text())["failures"]
    for rule, before, after in (("age.schema", 1 / 63, 4 / 70), ("income.null_rate", 6 / 63, 15 / 70),
                                ("signed_up_at.not_in_future", 1 / 63, 5 / 70), ("duplicates", 3 / 63, 10 / 70)):
        line = next((f for f in failures if f.startswith(f"customers.{rule} ")), None)
        assert line and f"where {before:.2%} of rows broke it, here {after:.2%}" in line, (rule, failures)
    assert not list((failed / "artifacts").glob(".*partial")) and not (failed / "artifacts/features").exists()


def project_with(demo_project, edit):
    data = yaml.safe_load(demo_project.read_text())
    edit(data)
    demo_project.write_text(yaml.safe_dump(data, sort_keys=False))
    return demo_project


def test_mistyped_project_key(demo_project):
    f = project_with(demo_project, lambda d: d["quality"].update(thresholds_typo={}))
    code, out = mlops_nb("run", "--project", f)
    assert code == 2 and "quality.thresholds_typo" in out and "did you mean `thresholds`" in out and str(f) in out
    assert "Traceback" not in out


def test_missing_source_file(demo_project, tmp_path):
    f = project_with(demo_project, lambda d: d["sources"].update(extra={"path": str(tmp_path / "nope.csv")}) or
                     d["ingest"]["tables"].update(extra={"source": "extra"}))
    code, out = mlops_nb("run", "--project", f)
    assert code == 2 and "nope.csv" in out and "Traceback" not in out
    assert not (tmp_path / "runs").exists() or not [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]


def test_unreachable_database(demo_project, tmp_path):
    url = f"sqlite:///{tmp_path}/no/such/dir/w.db"
    f = project_with(demo_project, lambda d: d["sources"]["warehouse"].update(url=url))
    code, out = mlops_nb("run", "--project", f)
    assert code == 2 and "sources.warehouse" in out and "Traceback" not in out


def test_all_null_required_column_with_a_saved_project(tmp_path):
    "An inferred project, saved in its run, reused on a new extract whose required column is all empty: exit 1."
    good = frame_csv(tmp_path, "customers.csv", table())
    no_profile = ("--set", "quality.profile.enabled=false")  # this is about the checks: the profile is tested elsewhere
    assert mlops_nb("run", "--data", good, "--target", "churned", "--until", "quality", "--no-reports", *no_profile, cwd=tmp_path)[0] == 0
    saved = only_run(tmp_path) / "project.yaml"
    assert yaml.safe_load(saved.read_text())["quality"]["tables"]["customers"]["columns"]["city"]["required"] is True
    bad = frame_csv(tmp_path, "next.csv", table(city=[None] * 60))
    code, out = mlops_nb("run", "--project", saved, "--set", f"sources.data.path={bad}", "--no-reports", *no_profile, cwd=tmp_path)
    assert code == 1 and "city" in out and "quality" in out and "Traceback" not in out, out
