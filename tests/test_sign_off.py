"Sign-off per phase: a run waits for a stakeholder's sign-off (exit 4), refuses the wrong people, resumes for the right one."
import json

import pytest
import yaml
from mlflow import MlflowClient

from conftest import mlops_nb, write_demo_project
from mlops_nb.runs import run_lock

PIPELINE = [{"name": "design", "sign_off": "design"}, {"name": "ingest"}]


@pytest.fixture
def gated(tmp_path, warehouse):
    "The demo's first week as a pipeline of design (signed off: design) and ingest; the project file."
    return gated_project(tmp_path, warehouse, PIPELINE)


def gated_project(root, warehouse, pipeline):
    "The demo's first week with `pipeline` and no data profile; the project file."
    f = write_demo_project(root, warehouse)
    data = yaml.safe_load(f.read_text())
    data["pipeline"] = pipeline
    data["quality"]["profile"]["enabled"] = False
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


def record(run_dir) -> dict: return json.loads((run_dir / "run.json").read_text())


def parent_run(root, rec):
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri).get_run(rec["mlflow"]["parent_run_id"])


def test_waits_refuses_then_resumes_and_carries(gated):
    root = gated.parent
    code, out = mlops_nb("run", "--project", gated)
    assert code == 4, out
    run_dir = next((root / "runs").glob("2*"))
    rec = record(run_dir)
    assert rec["status"] == "waiting" and [s["status"] for s in rec["steps"]] == ["succeeded", "pending"], rec
    w = rec["waiting"]
    assert (w["phase"], w["step"], w["roles"]) == ("design", "design", ["business_stakeholder", "subject_matter_expert"])
    assert {s["name"] for s in w["stakeholders"]} == {"Head of Operations Control", "Senior dispatcher"}
    assert f"mlops-nb approve {rec['run_id']} --phase design --by" in out, out
    assert (run_dir / rec["reports"]["overview"]).exists()  # the reports are what the signers read
    assert "The run waits for the sign-off of the design phase" in (run_dir / rec["reports"]["overview"]).read_text()
    parent = parent_run(root, rec)
    assert parent.info.status == "SCHEDULED" and parent.data.tags["mlops_nb.status"] == "waiting"
    assert not (root / "runs" / ".space-reserve").exists() and not (run_dir / ".space-reserve").exists()

    code, out = mlops_nb("runs", "show", "latest", "--project", gated)
    assert code == 0 and "WAITING since" in out and "business_stakeholder (Head of Operations Control)" in out, out
    assert f"--phase design --by 'Head of Operations Control'" in out, out
    code, out = mlops_nb("runs", "list", "--project", gated)
    assert " waiting " in out, out

    before = (run_dir / "run.json").read_text()
    code, out = mlops_nb("approve", rec["run_id"], "--phase", "design", "--by", "Analytics team", "--project", gated)
    assert code == 2 and "Analytics team is a data_scientist; phase design is signed off by: business_stakeholder" in out, out
    code, out = mlops_nb("approve", rec["run_id"], "--phase", "design", "--by", "Mallory", "--project", gated)
    assert code == 2 and "'Mallory' is not a stakeholder" in out and "Senior dispatcher" in out, out
    code, out = mlops_nb("approve", rec["run_id"], "--phase", "development", "--by", "Senior dispatcher", "--project", gated)
    assert code == 2 and "use --phase design" in out, out
    assert (run_dir / "run.json").read_text() == before  # a refusal writes nothing
    assert not any(k.startswith("mlops_nb.sign_off") for k in parent_run(root, rec).data.tags)

    with run_lock(root / "runs", "flights", "a run in progress"):  # an approval resumes a run: it waits for the lock like one
        code, out = mlops_nb("approve", rec["run_id"], "--phase", "design", "--by", "Senior dispatcher", "--project", gated)
    assert code == 3 and "already running" in out and (run_dir / "run.json").read_text() == before, out

    code, out = mlops_nb("approve", "latest", "--phase", "design", "--by", "senior dispatcher", "--comment", "the card is agreed",
                         "--project", gated)
    assert code == 0, out
    rec = record(run_dir)
    assert rec["status"] == "succeeded" and [s["status"] for s in rec["steps"]] == ["succeeded", "succeeded"], rec
    so = rec["sign_offs"]
    assert len(so) == 1 and (so[0]["by"], so[0]["role"], so[0]["step"], so[0]["comment"]) == (
        "Senior dispatcher", "subject_matter_expert", "design", "the card is agreed"), so
    assert "the card is agreed" in (run_dir / rec["reports"]["overview"]).read_text()  # rendered again, with the sign-off
    parent = parent_run(root, rec)
    assert parent.info.status == "FINISHED" and parent.data.tags["mlops_nb.sign_off.design.by"] == "Senior dispatcher", parent.data.tags
    assert parent.data.tags["mlops_nb.status"] == "succeeded"
    assert len([r for r in MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").search_runs(
        [parent.info.experiment_id], f"tags.`mlops_nb.run_id` = '{rec['run_id']}' and tags.`mlflow.parentRunId` = '{parent.info.run_id}'")]) == 2
    code, out = mlops_nb("approve", rec["run_id"], "--phase", "design", "--by", "Senior dispatcher", "--project", gated)
    assert code == 2 and "is succeeded, not waiting" in out, out

    code, out = mlops_nb("run", "--project", gated, "--no-reports")  # the same result again: the sign-off is carried, nothing waits
    assert code == 0, out
    again = record(max((root / "runs").glob("2*")))
    assert [s["status"] for s in again["steps"]] == ["reused", "reused"], again
    assert again["sign_offs"] == [{**so[0], "carried_from": rec["run_id"]}]
    code, out = mlops_nb("runs", "show", again["run_id"], "--project", gated)
    assert f"(given in run {rec['run_id']})" in out, out

    code, out = mlops_nb("run", "--project", gated, "--from", "ingest", "--no-reports")  # design linked from that run: carried too
    assert code == 0, out
    linked = record(max((root / "runs").glob("2*")))
    assert [s["status"] for s in linked["steps"]] == ["reused", "succeeded"], linked
    assert linked["sign_offs"] == [{**so[0], "carried_from": rec["run_id"]}]


def test_a_later_phase_waits_again_and_the_last_step_waits_too(tmp_path, warehouse):
    f = gated_project(tmp_path, warehouse, PIPELINE + [{"name": "quality", "sign_off": "development"}])
    code, out = mlops_nb("run", "--project", f, "--no-reports")
    assert code == 4, out
    code, out = mlops_nb("approve", "latest", "--phase", "design", "--by", "Head of Operations Control", "--project", f)
    assert code == 4 and "for the sign-off of phase development (after step quality)" in out, out  # the next phase waits in turn
    rec = record(next((tmp_path / "runs").glob("2*")))
    assert rec["reports"] == {} and rec["options"]["reports"] is False  # resumed as it started: --no-reports
    assert rec["status"] == "waiting" and [s["status"] for s in rec["steps"]] == ["succeeded"] * 3, rec
    assert rec["waiting"]["stakeholders"] == [{"name": "Senior dispatcher", "role": "subject_matter_expert"}]
    code, out = mlops_nb("approve", rec["run_id"], "--phase", "development", "--by", "Head of Operations Control", "--project", f)
    assert code == 2 and "is a business_stakeholder; phase development is signed off by: subject_matter_expert (Senior dispatcher)" in out, out
    code, out = mlops_nb("approve", rec["run_id"], "--phase", "development", "--by", "Senior dispatcher", "--project", f, "--no-reports")
    assert code == 0 and "no step left" in out, out
    rec = record(next((tmp_path / "runs").glob("2*")))
    assert rec["status"] == "succeeded" and [so["phase"] for so in rec["sign_offs"]] == ["design", "development"], rec
