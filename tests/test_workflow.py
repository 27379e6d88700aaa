"The GitHub Actions workflow calls what `.ci/run` and the README call: tests on every push, the scheduled pipeline, deploy after a promotion."
import subprocess, sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_workflow_mirrors_the_local_commands():
    wf = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    triggers = wf[True]  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request", "schedule"} <= set(triggers) and triggers["schedule"][0]["cron"]
    jobs = wf["jobs"]
    assert any(s.get("run") == ".ci/run" for s in jobs["test"]["steps"])
    assert jobs["test"]["timeout-minutes"] <= 90
    assert any(s.get("run") == "make pipeline" for s in jobs["pipeline"]["steps"])
    assert jobs["deploy"]["needs"] == "pipeline" and "champion" in jobs["deploy"]["if"]
    assert "make test" in (ROOT / ".ci/run").read_text()


def valid_workflow(path: Path) -> tuple:
    "(valid, output) of check-jsonschema against the GitHub workflow schema it vendors (nothing is downloaded)."
    p = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                       capture_output=True, text=True, timeout=120)
    return p.returncode == 0, p.stdout + p.stderr


def test_workflow_is_valid_for_github(tmp_path):
    ok, out = valid_workflow(ROOT / ".github/workflows/ci.yml")
    assert ok, out
    broken = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    del broken["jobs"]["test"]["runs-on"]  # a job GitHub would refuse: the check sees it
    (tmp_path / "broken.yml").write_text(yaml.safe_dump({"on": broken.pop(True), **broken}))
    ok, out = valid_workflow(tmp_path / "broken.yml")
    assert not ok and "runs-on" in out, out
