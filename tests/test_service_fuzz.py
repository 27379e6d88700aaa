"""schemathesis against the live service: bodies generated from the published OpenAPI document, valid and invalid, with a
fixed seed and a bounded number of cases. No answer is a 500, every answer matches its published schema, every body the
schema allows is scored (or counted), every body it forbids is refused with a 4xx."""
import json, subprocess

import pytest
import requests
import yaml

from conftest import BIN, free_port, running_server

pytestmark = pytest.mark.timeout(600)

SEED = 20131  # fixed: the same cases every run
EXAMPLES = 60  # per operation and phase: about 500 cases, well under a minute
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,positive_data_acceptance,negative_data_rejection"
# 413 is a refusal too: a batch of more than MAX_RECORDS records is a request for `mlops-nb score`, said with its own status
CONFIG = """[checks.negative_data_rejection]
expected-statuses = ["400", "413", "422"]
"""


@pytest.fixture(scope="module", params=["score", "refuse"])
def fuzzed_service(week_champion, tmp_path_factory, request):
    """`mlops-nb serve` for the week's champion on a free loopback port, with a prediction log of its own; a category the model
    never saw scored with a warning (the default), or refused (`deploy.unseen_categories: refuse`: the schema lists the known ones)."""
    f, uri, run_dir = week_champion
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    project = yaml.safe_load(f.read_text())  # its root is absolute: a copy elsewhere serves the same runs and registry
    project.setdefault("deploy", {})["unseen_categories"] = request.param
    f = tmp / "project.yaml"
    f.write_text(yaml.safe_dump(project, sort_keys=False))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [BIN / "mlops-nb", "serve", "--project", f, "--port", port, "--refresh", "0", "--prediction-log", tmp / "predictions.db"]
    with running_server(cmd, tmp / "serve.log", url=f"{url}/ready", timeout=120, env={"OMP_NUM_THREADS": "1"}):
        yield {"url": url, "tmp": tmp, "unseen_categories": request.param}


def test_schemathesis_finds_nothing(fuzzed_service):
    url, tmp = fuzzed_service["url"], fuzzed_service["tmp"]
    carrier = requests.get(f"{url}/openapi.json").json()["components"]["schemas"]["Record"]["properties"]["carrier"]["anyOf"][0]
    assert ("enum" in carrier) == (fuzzed_service["unseen_categories"] == "refuse"), carrier
    (tmp / "schemathesis.toml").write_text(CONFIG)
    report = tmp / "schemathesis.json"
    cmd = [BIN / "schemathesis", "--config-file", tmp / "schemathesis.toml", "run", f"{url}/openapi.json", "--checks", CHECKS,
           "--seed", SEED, "--max-examples", EXAMPLES, "--workers", "1", "--suppress-health-check", "all", "--request-timeout", "30",
           "--report", "json", "--report-json-path", report, "--output-truncate", "true", "--no-color"]
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=480, cwd=tmp)
    assert report.exists(), p.stdout[-3000:] + p.stderr[-2000:]
    got = json.loads(report.read_text())
    cases = got["test_cases"]["generated"]
    print(f"schemathesis ({fuzzed_service['unseen_categories']}): {cases} cases, seed {SEED}, {got['running_time']:.0f} s")
    assert p.returncode == 0 and not got["failures"] and not got["errors"], p.stdout[-6000:]
    assert got["operations"]["tested"] == got["operations"]["total"] >= 6
    assert cases >= 300, cases  # the bound is on examples, not on time: the cases tried are the same every run
    scored = got["valid_rates"]["POST /predict"]["fuzzing"]["accepted"]
    assert scored > 0, got["valid_rates"]  # the generated bodies reached the model, not only the checks
