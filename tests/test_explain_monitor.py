"""Monitoring of explanations and of answer time, on real prediction logs: the share of the explaining each feature
view does in a window, against the champion's shares on its hold-out, and the design card's `max_latency_ms` held
to each window's p99.

Each window is written into a real log by `predictions.PredictionLog` (a SQLite file) or `PostgresLog` (the session's
PostgreSQL server, which service replicas share), read back with `predictions.read_window`, and judged by the monitor
step's own functions, on the demo project's feature views and design card (`max_latency_ms: 50`). The expected shares
are computed from the contributions written, not from what the log gives back."""
import numpy as np
import pandas as pd
import pytest

from mlops_nb.config import MonitorSpec, demo_project_file, load_project
from mlops_nb.explain import contribution_shares, feature_views
from mlops_nb.monitor import computational, explanation_shares, logged_contributions, window_alerts
from mlops_nb.predictions import PostgresLog, PredictionLog, read_window

pytestmark = pytest.mark.timeout(300)

DEMO = load_project(demo_project_file()).project
VIEWS = feature_views(DEMO.features)
SIZES = {"sched_hour": 0.2, "carrier": 0.12, "distance": 0.05, "temp": 0.1, "visib": 0.06, "wind_gust": 0.04,
         "carrier_late_rate": 0.18, "route_late_rate": 0.15, "plane_year": 0.1}  # typical absolute contribution per column
START = pd.Timestamp("2013-07-01", tz="UTC")
WINDOW = (START, START + pd.Timedelta("7d"))


def contributions(rows: int, seed: int, weather: float = 1.0) -> pd.DataFrame:
    "`rows` predictions' contributions: each column's typical size times a random factor and sign, the weather view's times `weather`."
    g = np.random.default_rng(seed)
    return pd.DataFrame({c: s * (weather if VIEWS[c] == "weather" else 1.0) * g.lognormal(0, 0.5, rows) * g.choice([-1, 1], rows)
                         for c, s in SIZES.items()})


HOLDOUT = contributions(2000, seed=0)  # what training records on the version, as contract 1 says: shares over the hold-out
by_column, by_view = contribution_shares(HOLDOUT, VIEWS)
REFERENCE = {"views": by_view.to_dict(), "columns": by_column.head(10).to_dict()}


def write_window(log, explained: pd.DataFrame, unexplained: int = 0, latency_ms=lambda i: 4.0, per_request: int = 50) -> None:
    "Write the window into `log` as the service does: a request per `per_request` records, each pass with its latency; `unexplained` rows without contributions."
    n = len(explained) + unexplained
    rows = explained.to_dict("records") + [None] * unexplained
    meta = []
    for i in range(n):
        request, decided = f"r{i // per_request}", START + pd.Timedelta(minutes=10 * i)
        meta.append((request, i % per_request, decided.isoformat(), "delay_model", "1", "champion", 0.3, 0,
                     latency_ms(i // per_request), decided.isoformat(), None, rows[i]))
    for i in range(0, n, per_request):
        log.append([{}] * len(meta[i:i + per_request]), pd.DataFrame({"x": np.zeros(len(meta[i:i + per_request]))}), meta[i:i + per_request])
    log.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def open_log(request, tmp_path, monkeypatch):
    "`open_log(name)`: a new, empty prediction log (SQLite file, or a database of the session's PostgreSQL server); returns (log, where)."
    if request.param == "sqlite":
        return lambda name: (log := PredictionLog(tmp_path / f"{name}.db"), log.path)
    pg = request.getfixturevalue("postgres")
    for k, v in {"PGUSER": "postgres", "PGPASSWORD": pg.password}.items(): monkeypatch.setenv(k, v)  # credentials from the environment
    def open_pg(name):
        url = pg.create_database(f"explain_{name}").replace(f"postgres:{pg.password}@", "")
        return PostgresLog(url), url
    return open_pg


def judged(where, spec: MonitorSpec = MonitorSpec()) -> tuple:
    "The window read back from the log and judged as the monitor step does: (window, explanation_shares, alerts)."
    window = read_window(where, *WINDOW)
    explaining = explanation_shares(logged_contributions(window), VIEWS, REFERENCE, spec)
    health = computational(window, pd.DataFrame(columns=["status"]))
    return window, explaining, window_alerts(explaining, health, DEMO.design)


def test_a_view_whose_share_moved_is_named_with_both_shares(open_log):
    log, where = open_log("stormy")
    stormy = contributions(400, seed=1, weather=4.0)  # a stormy month: the weather columns weigh four times more
    write_window(log, stormy, unexplained=100)
    window, explaining, alerts = judged(where)
    _, expected = contribution_shares(stormy, VIEWS)
    assert len(window) == 500 and explaining["explained"] == 400, "rows without contributions are skipped"
    assert explaining["judged"] and expected["weather"] - REFERENCE["views"]["weather"] > 0.15
    assert explaining["shifts"][0]["view"] == "weather", "the largest move first"
    assert alerts[0] == {"kind": "explanation_shift", "message": f"weather drives {expected['weather']:.0%} of the explaining "
                         f"(reference {REFERENCE['views']['weather']:.0%}), on 400 explained predictions; monitor.explanation_shift = 0.15"}
    assert explaining["views"] == pytest.approx(expected.to_dict(), abs=1e-6)
    assert list(explaining["columns"])[:3] == list(contribution_shares(stormy, VIEWS)[0].index[:3])
    assert explaining["column_views"]["temp"] == "weather" and explaining["reference"] == REFERENCE
    assert judged(where, MonitorSpec(explanation_shift=0))[1]["alerts"] == [], "0 turns the alert off"


def test_a_window_like_the_hold_out_raises_no_alert(open_log):
    log, where = open_log("calm")
    write_window(log, contributions(400, seed=2))
    _, explaining, alerts = judged(where)
    assert explaining["judged"] and explaining["explained"] == 400
    assert alerts == [] and explaining["finding"] == "no view moved by more than 0.15 on 400 explained predictions"
    assert set(explaining["views"]) == set(REFERENCE["views"]) == {"request", "weather", "carrier_history", "route_history", "plane"}


def test_too_few_explained_predictions_are_not_judged(open_log):
    log, where = open_log("few")
    write_window(log, contributions(150, seed=3, weather=4.0), unexplained=450)  # `deploy.explain: on request`: few asked
    window, explaining, alerts = judged(where)
    assert len(window) == 600 >= MonitorSpec().min_rows, "the window itself has traffic enough"
    assert not explaining["judged"] and alerts == [] and explaining["explained"] == 150
    assert explaining["finding"] == "not judged: 150 explained predictions, fewer than monitor.explanation_min_rows = 200"
    assert explaining["views"]["weather"] > REFERENCE["views"]["weather"] + 0.15, "the shares are still shown"
    assert judged(where, MonitorSpec(explanation_min_rows=100))[2][0]["kind"] == "explanation_shift"


def test_a_window_slower_than_the_card_allows_raises_a_latency_alert(open_log):
    assert DEMO.design.requirements.end_user.max_latency_ms == 50
    log, where = open_log("slow")
    write_window(log, contributions(400, seed=4), latency_ms=lambda request: 120.0 if request == 3 else 4.0)  # one slow pass of 8
    window, explaining, alerts = judged(where)
    p99 = float(np.percentile(window.latency_ms, 99))
    assert p99 == 120.0 and [a["kind"] for a in alerts] == ["latency"]
    assert alerts[0]["message"] == ("p99 latency 120.0 ms over 400 predictions exceeds the design card's "
                                    "requirements.end_user.max_latency_ms = 50 ms")
    fast, fast_where = open_log("fast")
    write_window(fast, contributions(400, seed=4), latency_ms=lambda request: 49.0)
    assert judged(fast_where)[2] == [], "at the limit or under it: no alert"
