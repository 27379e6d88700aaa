"""A shared feature store: Feast's SQL registry on a real PostgreSQL, the Redis online store, namespaces.

The shared stores serve what the embedded ones serve; the features step publishes definitions, and only a
promotion fills the shared online store; a replay in its own namespace leaves production untouched; a registry
URL with credentials in it is refused before anything runs."""
import json, os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from conftest import WAREHOUSE, mlops_nb, redis_server
from mlops_nb.config import ProjectError, Step, load_project
from mlops_nb.deploy import FeatureLookup, fill_shared_online
from mlops_nb.feature_store import applied_views, join_keys, online_features, open_store, resolve_use, training_frame
from test_features import _run, demo_lp, week  # noqa: F401  (the demo's first week, as the ingest step delivers it)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def registry_url(postgres):
    "A database for Feast's SQL registry; its URL without credentials, which go to the environment, where libpq reads them."
    url = make_url(postgres.create_database("feast_registry"))
    saved = {k: os.environ.get(k) for k in ("PGUSER", "PGPASSWORD")}
    os.environ.update(PGUSER=url.username, PGPASSWORD=url.password)
    yield f"{url.drivername}://{url.host}:{url.port}/{url.database}"
    for k, v in saved.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def shared(demo_lp, registry_url, redis_url, namespace=None):
    "The demo project on the shared stores, in `namespace` (default: the project's name)."
    overrides = [("features.registry", registry_url), ("features.online_store", {"type": "redis", "connection_string": redis_url})]
    return load_project(demo_lp.file, data=demo_lp.data, overrides=overrides + ([("features.project", namespace)] if namespace else []))


def promote(lp, run_dir, version="1"):
    "What a run that promoted `version` leaves for its deploy step: its train step's record, then the deploy step's filling."
    train = Step("train", lp, run_dir, standalone=True)
    train.save_json("model_card.json", {"registered": {"version": version, "decision": "champion"}})
    train.finish()
    return fill_shared_online(Step("deploy", lp, run_dir, standalone=True), version)


def lookup(lp, run_dir, entities, at) -> pd.DataFrame:
    store = open_store(run_dir / "artifacts" / "features" / "feature_repo")
    return pd.DataFrame(online_features(store, lp.project, entities, at=at))


@pytest.fixture(scope="module")
def production(demo_lp, week, registry_url, redis_url, tmp_path_factory):
    "The demo's first week built on the shared stores (run `prod`) and on the embedded ones (run `embedded`)."
    lp = shared(demo_lp, registry_url, redis_url)
    folder = tmp_path_factory.mktemp("production")
    step, report = _run(lp, week, folder / "prod")
    embedded, _ = _run(demo_lp, week, folder / "embedded")
    train = pd.read_parquet(step.artifacts_dir("features") / "training_set.parquet")
    at = train.event_timestamp.max()
    rows = train[train.event_timestamp == at].drop_duplicates(join_keys(demo_lp.features)).head(20)
    entities = [{k: r[k] for k in join_keys(demo_lp.features)} for _, r in rows.iterrows()]
    return lp, step, report, embedded, train, entities, at


def test_shared_stores_serve_what_the_embedded_ones_serve(demo_lp, production):
    lp, step, report, embedded, train, entities, at = production
    store = open_store(step.artifacts_dir("features") / "feature_repo")
    assert type(store.registry).__name__ == "SqlRegistry" and store.project == "flights"
    assert "PGPASSWORD" not in (step.artifacts_dir("features") / "feature_repo" / "feature_store.yaml").read_text()
    # published: every view in the shared registry, tagged with the run that applied it and its values' digest
    assert report["applied"]["registry"] == "sql" and report["applied"]["materialized"] is False
    assert applied_views(store) == report["applied"]["views"] and {v["version"] for v in report["applied"]["views"].values()} == {"prod"}
    # point in time from the shared registry: the training set the embedded store gave
    rows = train[join_keys(demo_lp.features) + ["event_timestamp"]].assign(row_id=range(len(train)))
    got = training_frame(store, lp.project, rows)
    want = pd.read_parquet(embedded.artifacts_dir("features") / "training_set.parquet")
    feats = [c for c in want.columns if c in got.columns and c not in rows.columns]
    assert len(feats) > 10
    pd.testing.assert_frame_equal(got[feats], want[feats], check_dtype=False)
    # online: nothing until a promotion fills Redis; then what the run's own SQLite store serves
    assert lookup(lp, step.run_dir, entities, at)["temp"].isna().all()
    not_promoted = fill_shared_online(Step("deploy", lp, step.run_dir, standalone=True), "7")
    assert not_promoted["materialized"] is False and "not promoted by this run" in not_promoted["reason"]
    assert lookup(lp, step.run_dir, entities, at)["temp"].isna().all()
    record = promote(lp, step.run_dir)
    assert record["materialized"] and record["namespace"] == "flights" and record["views"] == report["applied"]["views"]
    redis = lookup(lp, step.run_dir, entities, at)
    pd.testing.assert_frame_equal(redis, lookup(demo_lp, embedded.run_dir, entities, at))
    assert redis["temp"].notna().any()


def test_a_replay_in_its_own_namespace_leaves_production_untouched(demo_lp, week, production, registry_url, redis_url, tmp_path):
    lp, step, report, _, _, entities, at = production
    if lookup(lp, step.run_dir, entities, at)["temp"].isna().all(): promote(lp, step.run_dir)  # run alone: production promoted first
    before = lookup(lp, step.run_dir, entities, at)
    prod_store = open_store(step.artifacts_dir("features") / "feature_repo")
    versions = applied_views(prod_store)
    # a replay of other weather (ten degrees warmer), promoted in its namespace (what `mlops-nb demo replay` sets)
    from mlops_nb.demo import replay_project
    rlp = shared(load_project(demo_lp.file), registry_url, redis_url)
    replay = replay_project(rlp, tmp_path / "replay", "2013-01-08")
    assert replay.features.project == "flights-replay"
    warmer = {**week, "weather": week["weather"].assign(temp=week["weather"].temp + 10)}
    rstep, rreport = _run(replay, warmer, tmp_path / "replay-run")
    assert rreport["applied"]["namespace"] == "flights_replay"
    promote(replay, rstep.run_dir)
    replayed = lookup(replay, rstep.run_dir, entities, at)
    assert (replayed["temp"].dropna() - before["temp"].dropna()).round(6).eq(10).all() and replayed["temp"].notna().any()
    # production: its definitions, versions and online values as they were
    prod_store = open_store(step.artifacts_dir("features") / "feature_repo")
    prod_store.refresh_registry()
    assert applied_views(prod_store) == versions
    pd.testing.assert_frame_equal(lookup(lp, step.run_dir, entities, at), before)
    assert {v["version"] for v in applied_views(open_store(rstep.artifacts_dir("features") / "feature_repo")).values()} == {"replay-run"}


def test_a_registry_url_with_credentials_is_refused(demo_project, tmp_path):
    url = "postgresql+psycopg2://alice:s3cret@127.0.0.1:5432/feast"
    with pytest.raises(ProjectError, match="set PGUSER and PGPASSWORD in the environment instead") as e:
        load_project(demo_project, [f"features.registry={url}"])
    assert "s3cret" not in str(e.value) and "key `features.registry`" in str(e.value)
    code, out = mlops_nb("run", "--project", demo_project, "--set", f"features.registry={url}")
    assert code == 2, out
    assert "features.registry" in out and "PGPASSWORD" in out and "s3cret" not in out
    assert not (demo_project.parent / "runs").exists() or not any((demo_project.parent / "runs").iterdir())


def user_project(demo_lp, registry_url, redis_url, folder, use="flights.weather"):
    """A second project, `planner`: its own late rates per carrier, and the weather the project `flights` publishes,
    used by name (no definition copied); its project file, written in `folder`."""
    import yaml
    data = json.loads(json.dumps(demo_lp.data, default=str))
    data.pop("train", None)  # its experiments name the demo's views
    data.pop("pipeline", None)  # the lifecycle: the demo's own step is the demo's
    data.update(name="planner", root=str(folder))
    data["sources"]["warehouse"]["url"] = f"sqlite:///{WAREHOUSE}"
    f = data["features"]
    f.update(registry=registry_url, online_store={"type": "redis", "connection_string": redis_url}, use=[use])
    f["views"] = {"carrier_history": f["views"]["carrier_history"]}
    f["entities"] = {"carrier": f["entities"]["carrier"]}
    f["services"] = {"delay_model": [use.rsplit(".", 1)[1], "carrier_history"]}
    path = folder / "planner.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_second_project_trains_and_serves_on_published_views(demo_lp, week, production, registry_url, redis_url, tmp_path):
    lp, step, _, _, train, entities, at = production
    if lookup(lp, step.run_dir, entities, at)["temp"].isna().all(): promote(lp, step.run_dir)  # run alone: production promoted first
    planner = load_project(user_project(demo_lp, registry_url, redis_url, tmp_path))
    pstep, preport = _run(planner, week, tmp_path / "planner-run")
    # point in time: the weather the publisher's own training set has, for the same flights
    mine = pd.read_parquet(pstep.artifacts_dir("features") / "training_set.parquet")
    weather = [f["name"] for f in demo_lp.data["features"]["views"]["weather"]["fields"]]
    assert len(mine) == len(train) and "carrier_late_rate" in mine and "route_late_rate" not in mine
    pd.testing.assert_frame_equal(mine[weather], train[weather], check_dtype=False)
    # its record: which project and which published version of the view it read; its own views, in its namespace
    assert preport["used"] == {"flights.weather": {"namespace": "flights", **preport_versions(step)["weather"]}}
    assert set(preport["applied"]["views"]) == {"carrier_history"} and preport["applied"]["namespace"] == "planner"
    # online: the publisher's promoted values from the shared Redis, and the planner's own views once it promotes
    assert promote(planner, pstep.run_dir)["views"] == preport["applied"]["views"]
    resolved = SimpleNamespace(project=resolve_use(planner.project))  # readers take the project with the views it uses, as published
    served = lookup(resolved, pstep.run_dir, [{k: e[k] for k in ("origin", "carrier")} for e in entities], at)
    published = lookup(lp, step.run_dir, entities, at)
    pd.testing.assert_frame_equal(served[weather], published[weather])
    assert served["temp"].notna().any() and served["carrier_late_rate"].notna().any()
    # the model service's own lookup (06_deploy) reads the same values, the used view in its publisher's namespace
    service = FeatureLookup(planner, pstep.run_dir)
    got = service.online({k: pd.Series([e[k] for e in entities]) for k in ("origin", "carrier")}, np.full(len(entities), at.value))
    np.testing.assert_allclose(got["temp"], published["temp"].to_numpy(float))
    # the catalog's source: the registry says who uses the publisher's weather
    from mlops_nb.feature_store import view_users
    from mlops_nb.reports_model import view_users_of
    assert view_users(planner.features)["flights.weather"] == ["planner"]
    assert view_users_of(lp.data) == ({"weather": ["planner"], "plane": [], "route_history": [], "carrier_history": []}, "")
    assert preport["views"]["weather"]["kind"] == "used" and preport["views"]["weather"]["coverage"]["temp"] > 0.9


def preport_versions(step):
    return json.loads((step.artifacts_dir("features") / "feature_views.json").read_text())["applied"]["views"]


def test_a_view_no_project_publishes_is_refused_naming_it(demo_lp, production, registry_url, redis_url, warehouse, tmp_path):
    f = user_project(demo_lp, registry_url, redis_url, tmp_path, use="flights.wether")
    with pytest.raises(ProjectError, match=r"`features.use` names flights.wether, which no project publishes") as e:
        resolve_use(load_project(f).project)
    assert "flights: carrier_history, plane, route_history, weather" in str(e.value)
    code, out = mlops_nb("run", "--project", f)  # refused before a run folder exists, exit code 2
    assert code == 2 and "flights.wether" in out and "Published: " in out, out
    assert not (tmp_path / "runs").exists()
