"""Landing sensor, late-Kafka sensor, Kafka schedule and field maps from configuration, on
Dagster's real sensor/schedule evaluation and materialize()."""

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from flywheel_assets.defs.ingestion.sensors import (
    kafka_ingest_every_5_minutes,
    kafka_late_days_sensor,
    landing_files_sensor,
)
from flywheel_assets.ingestion.field_maps import (
    FieldMapError,
    field_maps_from_spec,
    load_field_maps,
)
from flywheel_assets.platform.warehouse import Warehouse

KEY = "automation-test-key-0123456789"
DAY = dt.date(2026, 4, 7)


def _landing(home: Path, source: str, day: dt.date) -> Path:
    folder = home / "landing" / source / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    return landing_files_sensor(ctx)


def test_landing_sensor_requests_a_day_once_per_content(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.delenv("FLYWHEEL_LANDING_DIR", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    events = _landing(tmp_path, "events", DAY)
    (events / "a.jsonl").write_text('{"event_id": "1"}\n')
    (events / "_b.jsonl.tmp").write_text("being written")  # ignored until renamed
    (tmp_path / "landing" / "events" / "not-a-day").mkdir()

    first = _tick(instance, None)
    assert [r.partition_key for r in first.run_requests] == [DAY.isoformat()]
    key = first.run_requests[0].run_key
    assert key.startswith(f"landing:{DAY}:")

    # Nothing changed: the same run key (Dagster never launches a run key twice).
    again = _tick(instance, first.cursor)
    assert [r.run_key for r in again.run_requests] == [key]

    # Same name and size, new content: re-hashed (its mtime moved), so a new run key.
    (events / "a.jsonl").write_text('{"event_id": "2"}\n')
    os.utime(events / "a.jsonl", ns=(1, 1))
    changed = _tick(instance, again.cursor)
    assert changed.run_requests[0].run_key != key
    # Put back as it was: the warehouse holds the second version, so the day runs again
    # (a new key, not the first run's, which Dagster would skip).
    (events / "a.jsonl").write_text('{"event_id": "1"}\n')
    reverted = _tick(instance, changed.cursor)
    assert reverted.run_requests[0].run_key not in (key, changed.run_requests[0].run_key)
    assert _tick(instance, reverted.cursor).run_requests[0].run_key == (
        reverted.run_requests[0].run_key
    )
    (events / "a.jsonl").write_text('{"event_id": "2"}\n')
    changed = _tick(instance, reverted.cursor)

    # A new file on another day, and in another source: its day is requested too.
    catalog = _landing(tmp_path, "catalog", DAY + dt.timedelta(days=1))
    (catalog / "items.csv").write_text("item_id,category,price\ni1,c,1.0\n")
    more = _tick(instance, changed.cursor)
    assert [r.partition_key for r in more.run_requests] == [
        DAY.isoformat(),
        (DAY + dt.timedelta(days=1)).isoformat(),
    ]
    assert all(r.job_name in (None, "ingest_day") for r in more.run_requests)


def test_landing_sensor_skips_days_outside_the_partitions(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.delenv("FLYWHEEL_LANDING_DIR", raising=False)
    (_landing(tmp_path, "events", dt.date(1999, 1, 1)) / "a.jsonl").write_text("{}\n")
    result = _tick(dg.DagsterInstance.ephemeral(), None)
    assert result.run_requests == []


def test_kafka_schedule_skips_without_a_broker(monkeypatch):
    monkeypatch.delenv("FLYWHEEL_KAFKA_BOOTSTRAP", raising=False)
    ctx = dg.build_schedule_context()
    assert isinstance(kafka_ingest_every_5_minutes(ctx), dg.SkipReason)
    monkeypatch.setenv("FLYWHEEL_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    assert isinstance(kafka_ingest_every_5_minutes(ctx), dg.RunRequest)


def test_kafka_late_days_sensor_reruns_past_days_once(monkeypatch):
    from flywheel_assets.defs.ingestion.kafka import kafka_events

    instance = dg.DagsterInstance.ephemeral()
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    today = dt.datetime.now(dt.UTC).date().isoformat()

    def record(days: list[str]) -> None:  # what each committed batch logs
        instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=kafka_events.key, metadata={"days": dg.MetadataValue.json(days)}
            )
        )

    record([yesterday, today])
    first = kafka_late_days_sensor(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in first.run_requests] == [yesterday]  # today is not late
    # Already seen: nothing new until another ingest writes to a past day.
    second = kafka_late_days_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert second.run_requests == []
    record([yesterday])
    third = kafka_late_days_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert [r.partition_key for r in third.run_requests] == [yesterday]
    assert third.run_requests[0].run_key != first.run_requests[0].run_key


# ----- field maps ---------------------------------------------------------------------------


def test_field_map_file_errors_say_what_to_change(tmp_path):
    with pytest.raises(FieldMapError, match="unknown source 'order'"):
        field_maps_from_spec({"order": {"fields": {"a": "b"}}})
    with pytest.raises(FieldMapError, match="not a orders field"):
        field_maps_from_spec({"orders": {"fields": {"a": "b"}}})
    with pytest.raises(FieldMapError, match="not a events field"):
        field_maps_from_spec({"events": {"fields": {"visitor": "visitor_id"}}})
    with pytest.raises(FieldMapError, match="use one of"):
        field_maps_from_spec({"events": {"event_types": {"buy": "checkout"}}})
    with pytest.raises(FieldMapError, match="does not exist"):
        load_field_maps(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("events: [unclosed")
    with pytest.raises(FieldMapError, match="cannot be read"):
        load_field_maps(bad)


def test_a_producer_with_its_own_names_is_ingested_by_configuration_alone(tmp_path, monkeypatch):
    """A RetailRocket-like events file (epoch-ms `timestamp`, integer `visitorid`, `event`
    values addtocart/transaction, no event ids) and a catalog with its own column names,
    accepted through a YAML field map and nothing else."""
    from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events
    from flywheel_assets.defs.quality.assets import accepted_events
    from flywheel_assets.defs.quality.checks import QUALITY_CHECKS
    from flywheel_assets.defs.resources import resources

    home = tmp_path / "home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", KEY)
    for var in ("FLYWHEEL_WAREHOUSE_URL", "FLYWHEEL_LANDING_DIR", "FLYWHEEL_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(var, raising=False)
    field_map = tmp_path / "shop.yaml"
    field_map.write_text(
        "events:\n"
        "  fields: {shopper: user_id, product_code: item_id, what: event_type}\n"
        "  event_types: {basket: add_to_cart, bought: purchase, seen: view}\n"
        "catalog:\n"
        "  fields: {product_code: item_id, cat: category, cost: price}\n"
    )
    monkeypatch.setenv("FLYWHEEL_FIELD_MAP", str(field_map))
    (_landing(home, "catalog", DAY) / "products.csv").write_text(
        "product_code,cat,cost\n7,shoes,49.5\n8,hats,10\n"
    )
    base = int(dt.datetime.combine(DAY, dt.time(9), tzinfo=dt.UTC).timestamp() * 1000)
    rows = pd.DataFrame(
        {
            "timestamp": [base, base + 1000, base + 2000, base + 2000, base + 3000],
            "shopper": [1001, 1001, 1001, 1001, 2002],
            "what": ["seen", "basket", "bought", "bought", "seen"],
            "product_code": [7, 7, 7, 7, 8],
            "transactionid": [None, None, 55, 55, None],
        }
    )
    rows.to_csv(_landing(home, "events", DAY) / "events.csv", index=False)

    result = dg.materialize(
        [catalog_items, raw_events, accepted_events, *QUALITY_CHECKS],
        partition_key=DAY.isoformat(),
        resources=resources(),
        instance=dg.DagsterInstance.ephemeral(),
        selection=[catalog_items, raw_events, accepted_events],
    )
    assert result.success
    assert all(
        c.passed or c.severity == dg.AssetCheckSeverity.WARN
        for c in result.get_asset_check_evaluations()
    )
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    with wh.begin() as conn:
        events = wh.query_df(conn, "SELECT * FROM events ORDER BY event_time, event_type")
        items = wh.query_df(conn, "SELECT * FROM items ORDER BY item_id")
        quarantine = wh.query_df(conn, "SELECT reason FROM quarantine")
    assert items[["item_id", "category", "price"]].values.tolist() == [
        ["7", "shoes", 49.5],
        ["8", "hats", 10.0],
    ]
    assert events["event_type"].tolist() == ["view", "add_to_cart", "purchase", "view"]
    assert events["event_id"].str.startswith("d_").all()  # derived: the producer sent none
    assert events["event_time"].iloc[0] == pd.Timestamp(dt.datetime.combine(DAY, dt.time(9)))
    assert events["user_id"].str.startswith("u_").all() and events["user_id"].nunique() == 2
    # The repeated purchase line is the same event: counted as a duplicate, not twice.
    assert quarantine["reason"].tolist() == ["duplicate_event_id"]
    assert json.dumps(events.astype(str).values.tolist()).find("1001") == -1


def test_kafka_asset_without_a_broker_says_how_to_configure_one(tmp_path, monkeypatch):
    from flywheel_assets.defs.ingestion.kafka import kafka_events
    from flywheel_assets.defs.resources import resources

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", KEY)
    monkeypatch.delenv("FLYWHEEL_KAFKA_BOOTSTRAP", raising=False)
    result = dg.materialize([kafka_events], resources=resources(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "FLYWHEEL_KAFKA_BOOTSTRAP" in failure.step_failure_data.error.to_string()


def test_daily_cycle_runs_the_day_that_just_ended():
    """The day before the tick, once: a cron ticking more often than daily re-runs a day only
    after its earlier runs failed."""
    from flywheel_assets.defs.cycle import daily_cycle_schedule

    def tick(instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 3, 5, 1, 0, tzinfo=dt.UTC),
        )
        return daily_cycle_schedule(ctx)

    tags = {"dagster/schedule_name": "daily_flywheel_cycle", "dagster/partition": "2026-03-04"}
    with dg.instance_for_test() as instance:
        request = tick(instance)
        assert isinstance(request, dg.RunRequest)
        assert request.partition_key == "2026-03-04"
        instance.add_run(
            dg.DagsterRun(job_name="flywheel_cycle", status=dg.DagsterRunStatus.FAILURE, tags=tags)
        )
        assert isinstance(tick(instance), dg.RunRequest), "a failed day must run again"
        instance.add_run(
            dg.DagsterRun(job_name="flywheel_cycle", status=dg.DagsterRunStatus.SUCCESS, tags=tags)
        )
        skipped = tick(instance)
        assert isinstance(skipped, dg.SkipReason) and "already has a cycle run" in str(
            skipped.skip_message
        )
