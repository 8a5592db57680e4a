"""``flywheel status``: the state of the flywheel in a terminal.

What serves (champion, the experiment's challenger and its latest look, what the ranking service
was last given), the last decisions with their reasons, the recent days (landed, accepted, open
quarantine, decided) with missing, undecided and stale days called out, open quarantine by
reason, and the latest alerts. ``collect_status`` gathers it (SQL in ``sql/reporting/``),
``render`` lays it out with rich; ``--json`` prints the gathered dict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd

from flywheel_assets import registry
from flywheel_assets.ingestion.accounting import COUNT_NAMES, day_counts
from flywheel_assets.platform.alerts import read_alerts
from flywheel_assets.platform.settings import FlywheelPaths
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.serving.online_features import latest_bundle
from flywheel_assets.serving.policy import COLD_START_VERSION

MODEL_METRICS = ("valid_auc", "valid_log_loss", "valid_ndcg_at_10")


def _date(v: object) -> dt.date | None:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return None
    return pd.Timestamp(v).date()


def _text(v: object) -> str | None:
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def collect_status(
    wh: Warehouse, paths: FlywheelPaths, *, today: dt.date, days: int = 14, decisions: int = 7
) -> dict[str, Any]:
    """Everything ``render`` shows, as plain values (dates as ISO strings)."""
    with wh.begin() as conn:
        champion_version = registry.get_alias(conn, registry.CHAMPION)
        champion = registry.get_model(conn, champion_version) if champion_version else None
        exp = registry.open_experiment(conn)
        looks = registry.experiment_results(conn, exp.experiment_id) if exp else pd.DataFrame()
        last = wh.query_df(conn, load_sql("reporting/status_decisions"), n=decisions)
        named = (
            registry.day_decisions(conn, _date(last["dt"].min()), _date(last["dt"].max()))
            if len(last)
            else {}
        )
        first_day = _date(wh.scalar(conn, load_sql("reporting/status_first_day")))
        last_data = _date(wh.scalar(conn, load_sql("reporting/status_last_day")))
        # The window ends with yesterday; when the newest data is older than the window (a
        # flywheel that stopped, a demo home's simulated days) it ends with that data instead,
        # and the gap is reported as staleness rather than a wall of missing days.
        yesterday = today - dt.timedelta(days=1)
        end = yesterday
        if last_data is not None and (
            last_data > yesterday or (yesterday - last_data).days >= days
        ):
            end = last_data
        start = end - dt.timedelta(days=days - 1)
        counts = day_counts(wh, conn, start, end)
        decided = registry.day_decisions(conn, start, end)
        reasons = wh.query_df(
            conn, load_sql("reporting/status_quarantine_reasons"), from_dt=start, to_dt=end
        )
    # Days before the first day that landed anything are not part of the flywheel's history.
    if first_day is not None and first_day > start:
        start = first_day
    calendar = []
    missing, undecided = [], []
    for i in range((end - start).days + 1):
        day = start + dt.timedelta(days=i)
        c = counts.get(day, {**dict.fromkeys(COUNT_NAMES), "accounted": False})
        decision = decided.get(day, {}).get("decision")
        read = c["read"] or 0
        flags = []
        if first_day is not None and day >= first_day and read == 0:
            flags.append("missing")
            missing.append(day.isoformat())
        elif read and not c["accounted"]:
            # read but not through the quality stage since: the other counts are older or absent
            flags.append("not accounted")
        if read and decision is None and day < today:
            flags.append("undecided")
            undecided.append(day.isoformat())
        shown = {k: c[k] for k in COUNT_NAMES}
        calendar.append({"day": day.isoformat(), **shown, "decision": decision, "flags": flags})
    stale_days = max((yesterday - last_data).days, 0) if last_data else None
    latest_look = {}
    if len(looks):
        at = looks[looks["dt"] == looks["dt"].max()]
        verdict = at[at["metric"] == "verdict"]
        primary = at[at["kind"] == "primary"]
        latest_look = {
            "dt": str(_date(at["dt"].iloc[0])),
            "look": int(at["look"].iloc[0]),
            "verdict": verdict["outcome"].iloc[0] if len(verdict) else None,
            "note": verdict["note"].iloc[0] if len(verdict) else None,
            "primary": None
            if primary.empty
            else {
                k: (None if pd.isna(primary[k].iloc[0]) else float(primary[k].iloc[0]))
                for k in ("control_mean", "treatment_mean", "effect", "ci_low", "ci_high")
            }
            | {"metric": primary["metric"].iloc[0]},
        }
    pointer_path = paths.home / "serving" / "champion.json"
    pointer = json.loads(pointer_path.read_text()) if pointer_path.exists() else None
    bundle = latest_bundle(paths.home / "serving")
    return {
        "as_of": today.isoformat(),
        "champion": {
            "version": champion_version or COLD_START_VERSION,
            "trained_for": champion.dt.isoformat() if champion else None,
            "metrics": {k: champion.metrics.get(k) for k in MODEL_METRICS} if champion else {},
        },
        "experiment": None
        if exp is None
        else {
            "id": exp.experiment_id,
            "challenger": exp.challenger,
            "start": exp.start_dt.isoformat(),
            "traffic_share": exp.traffic_share,
            "max_days": exp.max_days,
            "latest_look": latest_look or None,
        },
        "serving": {
            "pointer_published_for": pointer.get("published_for") if pointer else None,
            "pointer_model": (pointer.get("model_version") or COLD_START_VERSION)
            if pointer
            else None,
            "feature_bundle": bundle.name.removeprefix("dt=") if bundle else None,
        },
        "decisions": [
            {
                "day": str(_date(r["dt"])),
                "decision": named.get(_date(r["dt"]), {}).get("decision") or _text(r["decision"]),
                "challenger": _text(r["challenger"]),
                "champion_after": _text(r["champion_after"]) or COLD_START_VERSION,
                "reason": _text(r["reason"]) or "",
            }
            for _, r in last.iterrows()
        ],
        "days": calendar,
        "missing_days": missing,
        "undecided_days": undecided,
        "last_day_with_data": last_data.isoformat() if last_data else None,
        "stale_days": stale_days,
        "quarantine": [
            {
                "reason": r["reason"],
                "rows": int(r["n_rows"]),
                "first": str(_date(r["first_dt"])),
                "last": str(_date(r["last_dt"])),
            }
            for _, r in reasons.iterrows()
        ],  # fmt: skip
        "alerts": read_alerts(paths.home)[-5:],
    }


def render(status: dict[str, Any], console: Any) -> None:
    """Lay ``status`` out for a terminal (a rich Console)."""
    from rich.padding import Padding
    from rich.text import Text

    from flywheel_assets.cli.common import compact_table, paragraphs

    c = status["champion"]
    metrics = ", ".join(
        f"{k.removeprefix('valid_')} {v:.4f}" for k, v in c["metrics"].items() if v is not None
    )
    console.print(f"[bold]flywheel status[/bold] as of {status['as_of']}")
    console.print(
        f"champion   [bold]{c['version']}[/bold]"
        + (f" (trained for {c['trained_for']}; {metrics})" if c["trained_for"] else "")
    )
    exp = status["experiment"]
    if exp is None:
        console.print("challenger none: no experiment running")
    else:
        look = exp["latest_look"]
        line = (
            f"challenger [bold]{exp['challenger']}[/bold] in {exp['id']} since {exp['start']}, "
            f"{exp['traffic_share']:.0%} of users"
        )
        if look:
            line += f"; look {look['look']}/{exp['max_days']} on {look['dt']}: {look['verdict']}"
            p = look.get("primary")
            if p and p.get("effect") is not None:
                line += (
                    f" ({p['metric']} {p['treatment_mean']:.4f} vs {p['control_mean']:.4f}, "
                    f"effect {p['effect']:+.4f} [{p['ci_low']:+.4f}, {p['ci_high']:+.4f}])"
                )
        console.print(line)
    s = status["serving"]
    console.print(
        f"serving    pointer {s['pointer_model'] or 'not published'}"
        f" (published for {s['pointer_published_for'] or '-'}), features {s['feature_bundle'] or 'none'}"
    )
    health = []
    if status["stale_days"] is None:
        health.append("[red]no events ingested yet[/red]")
    elif status["stale_days"] > 0:
        health.append(
            f"[red]stale[/red]: newest day with data {status['last_day_with_data']}, "
            f"{status['stale_days']} day(s) behind yesterday"
        )
    if status["missing_days"]:
        health.append(f"[red]missing[/red] (no events): {', '.join(status['missing_days'])}")
    if status["undecided_days"]:
        health.append(f"[yellow]undecided[/yellow]: {', '.join(status['undecided_days'])}")
    console.print("health     " + ("; ".join(health) if health else "[green]up to date[/green]"))

    # Narrow terminals and pipes (rich assumes 80 columns there): short values in tables,
    # long text (a decision's reason) as a paragraph under its row, never in a narrow column.
    t = compact_table("last decisions")
    for col in ("day", "decision", "challenger", "champion after"):
        t.add_column(col, no_wrap=True, overflow="ellipsis")
    for d in status["decisions"]:
        t.add_row(d["day"], d["decision"], d["challenger"] or "-", d["champion_after"])
    console.print(t)
    if status["decisions"]:
        console.print("why:")
        console.print(
            Padding(
                paragraphs([(d["day"], d["reason"]) for d in status["decisions"]]), (0, 0, 0, 2)
            )
        )

    t = compact_table("days (event rows: read = accepted + quarantined + duplicates)")
    counts = COUNT_NAMES
    for col in ("day", *counts):
        t.add_column(col, justify="right" if col in counts else "left", no_wrap=True)
    # A flag (missing, not accounted, undecided) stands beside the decision, or in its place:
    # a column of its own would not fit 80 columns. The cell may wrap to a second line.
    t.add_column("decision")
    for d in status["days"]:
        flags = f"({', '.join(d['flags'])})" if d["flags"] else ""
        t.add_row(
            d["day"],
            *("-" if d[k] is None else f"{d[k]:,}" for k in counts),
            " ".join(x for x in (d["decision"], flags) if x) or "-",
        )
    console.print(t)

    if status["quarantine"]:
        t = compact_table("open quarantine (these days)")
        for col in ("reason", "rows", "first", "last"):
            t.add_column(col, overflow="fold", justify="right" if col == "rows" else "left")
        for q in status["quarantine"]:
            # a reason can quote the producer's value: text, never markup
            t.add_row(Text(q["reason"]), f"{q['rows']:,}", q["first"], q["last"])
        console.print(t)
        console.print("  fix and release: flywheel quarantine list|export|release --day DAY")
    else:
        console.print("open quarantine: none in these days")
    if status["alerts"]:
        console.print("[bold]latest alerts[/bold]")
        for a in status["alerts"]:
            console.print(
                Text(
                    f"  {a['raised_at']}  {a['job_name']} {a.get('partition_key') or ''}: "
                    f"{a['message'][:200]}"
                )
            )
    else:
        console.print("alerts: none")


def status_for_home(home: Path | None = None, **kw: Any) -> dict[str, Any]:
    from flywheel_assets.cli.common import require_embedded_warehouse

    paths = FlywheelPaths.from_env(home)
    require_embedded_warehouse(paths.warehouse_url)
    wh = Warehouse(paths.warehouse_url)
    try:
        wh.migrate()
        return collect_status(wh, paths, **kw)
    finally:
        wh.dispose()


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console

    today = dt.date.fromisoformat(args.as_of) if args.as_of else dt.datetime.now(dt.UTC).date()
    status = status_for_home(today=today, days=args.days, decisions=args.decisions)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        render(status, Console())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser(
        "status",
        help="what serves, the last decisions, missing or stale days, quarantine, alerts",
    )
    st.add_argument("--days", type=int, default=14, help="days to show (default 14)")
    st.add_argument("--decisions", type=int, default=7, help="decisions to show (default 7)")
    st.add_argument(
        "--as-of", default=None, help="the date to judge staleness by (default today, UTC)"
    )
    st.add_argument("--json", action="store_true", help="the same as one JSON object")
    st.set_defaults(func=_status)
