"The GitHub Actions workflow calls what `.ci/run` and the README call: tests on every push, the scheduled pipeline, deploy after a promotion."
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
