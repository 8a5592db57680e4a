"""Least privilege on real PostgreSQL: each role is refused what it must not do, the audit
trail is append-only, and the whole cycle runs with every step acting as its stage's role."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from flywheel_assets.defs.resources import WarehouseResource
from flywheel_assets.platform.governance import STAGES, GovernanceError, Roles, apply_grants
from flywheel_assets.platform.warehouse import Warehouse, WarehouseError
from flywheel_assets.simulation.demo import run_demo
from flywheel_tests.scenarios.test_cycle import counts
from flywheel_tests.support.governed import Governed, drop_roles, login_url
from flywheel_tests.support.homes import (
    SMALL_SHOP,
    SMALL_SHOP_GROUP,
    SMALL_SHOP_SEED,
    SMALL_SHOP_START,
    DemoHome,
)


def test_first_install_as_in_production(pg_database: str) -> None:
    """The order docs/deploy.md gives, with no superuser anywhere: a DBA that may create roles
    and owns the database creates the roles on the empty database, the migrator (a member of
    the owner role) creates the schema, the DBA grants again. Another application's table in
    the same schema is left as it was."""
    roles = Roles(f"fw{uuid.uuid4().hex[:8]}")
    dba, migrator, pipeline = (f"{roles.prefix}_{n}" for n in ("dba", "migrator", "pipeline"))
    db = sa.engine.make_url(pg_database).database
    superuser = Warehouse(pg_database)
    try:
        with superuser.begin() as conn:
            conn.execute(sa.text(f"CREATE ROLE {dba} LOGIN CREATEROLE"))
            conn.execute(sa.text(f'ALTER DATABASE "{db}" OWNER TO {dba}'))
            for login in (migrator, pipeline):
                conn.execute(sa.text(f"CREATE ROLE {login} LOGIN"))
            conn.execute(sa.text("CREATE TABLE other_app (a INT)"))
            conn.execute(sa.text("GRANT SELECT ON other_app TO PUBLIC"))
        admin = Warehouse(login_url(pg_database, dba))
        first = apply_grants(
            admin, roles, actor="dba", why="first install",
            logins={migrator: ["owner"], pipeline: list(STAGES)},
        )  # fmt: skip
        assert first["schema_ready"] is False
        migrator_wh = Warehouse(login_url(pg_database, migrator))
        applied = migrator_wh.migrate(applied_by=migrator, owner_role=roles.name("owner"))
        migrator_wh.dispose()
        assert "schema/001_core" in applied
        second = apply_grants(admin, roles, actor="dba", why="first install: the tables")
        admin.dispose()
        assert second["schema_ready"] is True and second["tables_handed_to_owner"] == []
        # The first run could not be audited (no schema yet); this one records who is in what.
        assert any(m.startswith(f"{migrator} in {roles.name('owner')}") for m in second["members"])
        assert any(
            m.startswith(f"{pipeline} in {roles.name('training')}") for m in second["members"]
        )
        with superuser.begin() as conn:
            owners = dict(conn.execute(sa.text(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
            )).fetchall())  # fmt: skip
        assert owners.pop("other_app") == "postgres"
        assert set(owners.values()) == {roles.name("owner")}
        url = login_url(pg_database, pipeline)
        assert _try(url, None, "SELECT COUNT(*) FROM other_app") is None  # PUBLIC's grant kept
        assert _try(url, roles.name("ingestion"), "SELECT COUNT(*) FROM raw_events") is None
        assert "permission denied" in str(
            _try(url, roles.name("serving"), "SELECT COUNT(*) FROM raw_events")
        )
    finally:
        superuser.dispose()
        drop_roles(pg_database, [*roles.names().values(), dba, migrator, pipeline])


ALERT_ROW = (
    "INSERT INTO alerts (alert_id, raised_at, kind, job_name, run_id, message, details) "
    "VALUES ('a1', now(), 'run_failure', 'job', 'r1', 'failed', '{}')"
)
AUDIT_ROW = "INSERT INTO audit_log VALUES (now(), 'me', 'test', 'x', '{}', 'why')"

# (role kind, statement, allowed). Each allowed statement shows the denials are not simply a
# broken connection; a denied one must fail with "permission denied" and change nothing.
MATRIX = [
    ("ingestion", "SELECT COUNT(*) FROM raw_events", True),
    ("ingestion", "DELETE FROM quarantine WHERE dt = DATE '1900-01-01'", True),
    ("ingestion", "SELECT COUNT(*) FROM user_features", False),
    ("ingestion", "DELETE FROM model_registry", False),
    ("ingestion", "UPDATE events SET price = 0", False),
    ("ingestion", "SELECT COUNT(*) FROM audit_log", False),
    ("ingestion", "UPDATE quarantine_releases SET why = 'x'", False),
    ("ingestion", "DELETE FROM quarantine_releases", False),
    ("ingestion", AUDIT_ROW, True),  # a quarantine release is audited
    ("ingestion", "UPDATE audit_log SET why = 'x'", False),
    ("transformation", AUDIT_ROW, False),
    ("transformation", "SELECT COUNT(*) FROM events", True),
    ("transformation", "DELETE FROM user_features WHERE dt = DATE '1900-01-01'", True),
    ("transformation", "SELECT COUNT(*) FROM raw_events", False),
    ("transformation", "SELECT payload FROM quarantine", False),
    ("transformation", "SELECT COUNT(*) FROM kafka_events", False),
    ("transformation", "DELETE FROM events", False),
    ("transformation", "DELETE FROM model_registry", False),
    ("training", "SELECT COUNT(*) FROM training_examples", True),
    ("training", "DELETE FROM offline_evaluations WHERE dt = DATE '1900-01-01'", True),
    ("training", AUDIT_ROW, True),
    ("training", "UPDATE audit_log SET why = 'rewritten'", False),
    ("training", "DELETE FROM audit_log", False),
    ("training", "TRUNCATE audit_log", False),
    ("training", "UPDATE alias_history SET reason = 'rewritten'", False),
    ("training", "DELETE FROM user_features", False),
    ("training", "SELECT COUNT(*) FROM raw_events", False),
    ("training", "SELECT COUNT(*) FROM quarantine", False),
    ("serving", "SELECT COUNT(*) FROM user_features", True),
    ("serving", "SELECT COUNT(*) FROM model_aliases", True),
    ("serving", "SELECT COUNT(*) FROM events", False),
    ("serving", "DELETE FROM model_aliases", False),
    ("serving", AUDIT_ROW, False),
    ("analyst", "SELECT COUNT(*) FROM analyst.events", True),
    ("analyst", "SELECT COUNT(*) FROM analyst.model_registry", True),
    ("analyst", "SELECT COUNT(*) FROM public.events", False),
    ("analyst", "SELECT COUNT(*) FROM quarantine", False),
    ("analyst", "SELECT COUNT(*) FROM raw_events", False),
    ("analyst", "SELECT COUNT(*) FROM audit_log", False),
    ("analyst", "SELECT COUNT(*) FROM ingested_files", False),
    *[(kind, "CREATE TABLE sneaky (a INT)", False) for kind in (*STAGES, "analyst")],
    ("analyst", "CREATE TABLE analyst.sneaky (a INT)", False),
    # The pipeline's login with all its stage roles together, outside any step:
    ("pipeline", "SELECT COUNT(*) FROM raw_events", True),
    ("pipeline", ALERT_ROW, True),  # the alert sensor, outside any step
    ("pipeline", "DELETE FROM alerts", False),
    ("pipeline", "UPDATE audit_log SET why = 'rewritten'", False),
    ("pipeline", "DELETE FROM alias_history", False),
    ("pipeline", "DELETE FROM schema_migrations", False),
    ("pipeline", "DROP TABLE events", False),
    # Only the owner may rewrite history.
    ("owner", "UPDATE audit_log SET why = why WHERE false", True),
]


def _try(url: str, role: str | None, statement: str) -> str | None:
    """None if the statement ran, else the database's error."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if role:
                conn.execute(sa.text("SELECT set_config('role', :r, true)"), {"r": role})
            conn.execute(sa.text(statement))
        return None
    except sa.exc.DBAPIError as exc:
        return str(exc.orig).splitlines()[0]
    finally:
        engine.dispose()


def test_each_role_is_refused_what_it_must_not_do(governed: Governed) -> None:
    roles = governed.roles
    wrong = []
    for kind, statement, allowed in MATRIX:
        if kind == "analyst":
            error = _try(governed.reader_url, None, statement)
        elif kind == "pipeline":
            error = _try(governed.pipeline_url, None, statement)
        elif kind == "owner":
            error = _try(governed.admin_url, roles.name("owner"), statement)
        else:  # what the pipeline's login does inside a step: act as the stage's role
            error = _try(governed.pipeline_url, roles.name(kind), statement)
        denied = error is not None and ("permission denied" in error or "must be owner" in error)
        if allowed and error is not None or not allowed and not denied:
            wrong.append((kind, statement, error))
    assert wrong == []


def test_analyst_views_hold_no_raw_payloads_and_logins_cannot_become_the_owner(
    governed: Governed,
) -> None:
    error = _try(governed.reader_url, None, "SELECT payload FROM analyst.quarantine")
    assert error is not None and 'column "payload" does not exist' in error
    error = _try(governed.reader_url, None, "SELECT artefact_uri FROM analyst.model_registry")
    assert error is not None and "does not exist" in error
    for url in (governed.pipeline_url, governed.reader_url):
        error = _try(url, governed.roles.name("owner"), "SELECT 1")
        assert error is not None and "permission denied to set role" in error


def test_grants_are_idempotent_audited_and_refuse_bad_names(governed: Governed) -> None:
    admin = Warehouse(governed.admin_url)
    try:
        details = apply_grants(admin, governed.roles, actor="dba", why="re-applied after upgrade")
        assert details["created"] == [] and details["tables_handed_to_owner"] == []
        with admin.begin() as conn:
            audit = conn.execute(
                sa.text("SELECT actor, action, why, details FROM audit_log ORDER BY logged_at")
            ).fetchall()
            owners = {r.tableowner for r in conn.execute(sa.text(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"
            ))}  # fmt: skip
        assert owners == {governed.roles.name("owner")}
        actions = [(r.actor, r.action, r.why) for r in audit]
        assert actions[0][:2] == ("test admin", "migrate")
        assert ("test admin", "grants", "least privilege for the test") in actions
        assert ("dba", "grants", "re-applied after upgrade") in actions
        first = json.loads(next(r.details for r in audit if r.action == "grants"))
        assert sorted(first["created"]) == sorted(governed.roles.names().values())
        with pytest.raises(GovernanceError, match="reason"):
            apply_grants(admin, governed.roles, actor="dba", why="  ")
        with pytest.raises(GovernanceError, match="plain|lower-case"):
            Roles("fw; DROP TABLE events")
        with pytest.raises(GovernanceError, match="does not exist"):
            apply_grants(
                admin, governed.roles, actor="dba", why="x", logins={"nobody_here": ["serving"]}
            )
    finally:
        admin.dispose()


@dg.asset(group_name="features")
def reads_raw_events_as_a_feature(warehouse: WarehouseResource) -> int:
    wh = warehouse.get()
    with wh.begin() as conn:
        return int(wh.scalar(conn, "SELECT COUNT(*) FROM raw_events"))


@dg.asset(group_name="ingestion")
def reads_raw_events_as_ingestion(warehouse: WarehouseResource) -> int:
    wh = warehouse.get()
    with wh.begin() as conn:
        return int(wh.scalar(conn, "SELECT COUNT(*) FROM raw_events"))


def test_a_step_acts_as_its_stage_role_only(governed: Governed) -> None:
    resource = WarehouseResource(url=governed.pipeline_url, roles=governed.roles.prefix)
    ok = dg.materialize([reads_raw_events_as_ingestion], resources={"warehouse": resource})
    assert ok.success
    result = dg.materialize(
        [reads_raw_events_as_a_feature], resources={"warehouse": resource}, raise_on_error=False
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "permission denied for table raw_events" in str(failure.cause or failure.message)


def test_with_roles_the_schema_is_never_changed_at_run_time(governed: Governed) -> None:
    admin = Warehouse(governed.admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text("DELETE FROM schema_migrations WHERE version = 'schema/012_health'"))
    admin.dispose()
    resource = WarehouseResource(url=governed.pipeline_url, roles=governed.roles.prefix)
    with pytest.raises(
        dg.Failure, match=r"1 migration\(s\) pending \(schema/012_health\).*flywheel migrate"
    ):
        resource.get()
    # The pipeline's login may not migrate; the owner's administrator may.
    with pytest.raises(WarehouseError, match="flywheel migrate"):
        Warehouse(governed.pipeline_url).migrate(owner_role=None)
    admin = Warehouse(governed.admin_url)
    assert admin.migrate(owner_role=governed.roles.name("owner")) == ["schema/012_health"]
    admin.dispose()
    assert WarehouseResource(url=governed.pipeline_url, roles=governed.roles.prefix).get()


@pytest.mark.slow
@pytest.mark.xdist_group(SMALL_SHOP_GROUP)  # compared with the small shop's own run
def test_the_cycle_runs_with_every_step_in_its_stage_role(
    governed: Governed, tmp_path, clean_env, monkeypatch, small_shop_home: DemoHome
) -> None:
    """Two demo days on the pipeline's login with stage roles on: any grant missing from
    sql/platform/governance fails a step here. Same figures as without roles (the small shop's
    first two days: the same seed on the embedded default)."""
    monkeypatch.setenv("FLYWHEEL_WAREHOUSE_ROLES", governed.roles.prefix)
    rows = run_demo(
        days=2, seed=SMALL_SHOP_SEED, start=SMALL_SHOP_START, home=tmp_path / "roles",
        config=SMALL_SHOP,
        warehouse_url=governed.pipeline_url,
    )  # fmt: skip
    wh = Warehouse(governed.admin_url)
    governed_counts = counts(wh)
    with wh.begin() as conn:
        actions = [r.action for r in conn.execute(sa.text("SELECT action FROM audit_log"))]
    wh.dispose()
    assert governed_counts["events"] > 0 and governed_counts["model_registry"] == 2
    # The promotion stage recorded its settings once and the challenger's alias moves.
    assert actions.count("configuration") == 1
    assert "move_challenger" in actions
    plain = small_shop_home.rows[:2]

    def figures(rs: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rs]

    assert figures(rows) == figures(plain)
    assert dt.date.fromisoformat(str(rows[-1]["day"])) == SMALL_SHOP_START + dt.timedelta(days=1)


def test_rollback_job_runs_under_least_privilege(governed: Governed, tmp_path) -> None:
    """The emergency path as the UI launches it: a plain op (no asset) acts as the training
    role, moves the champion back, writes the trail and republishes the pointer."""
    from flywheel_assets import registry
    from flywheel_assets.definitions import loaded
    from flywheel_assets.defs.resources import PathsConfig
    from flywheel_tests.scenarios.test_injection import NOW, _record

    admin = Warehouse(governed.admin_url)
    with admin.begin() as conn:
        for version in ("m-1", "m-2"):
            registry.register_model(conn, _record(version, "x"), created_by="t", now=NOW)
        for version in ("m-1", "m-2"):
            registry.move_alias(conn, registry.CHAMPION, version, actor="t", reason="t", now=NOW)
    result = (
        loaded()
        .get_job_def("rollback_job")
        .execute_in_process(
            run_config={
                "ops": {"rollback_op": {"config": {"reason": "bad model", "actor": "carol"}}}
            },
            resources={
                "warehouse": WarehouseResource(
                    url=governed.pipeline_url, roles=governed.roles.prefix
                ),
                "paths": PathsConfig(home=str(tmp_path)),
            },
            instance=dg.DagsterInstance.ephemeral(),
        )
    )
    assert result.success
    with admin.begin() as conn:
        assert registry.get_alias(conn, registry.CHAMPION) == "m-1"
        audit = conn.execute(
            sa.text("SELECT actor, why FROM audit_log WHERE action = 'rollback'")
        ).fetchall()
    admin.dispose()
    assert [(a.actor, a.why) for a in audit] == [("carol", "bad model")]
    assert (
        json.loads((tmp_path / "serving" / "champion.json").read_text())["model_version"] == "m-1"
    )


def test_a_quarantine_release_runs_on_the_pipeline_login(governed: Governed, tmp_path) -> None:
    """A person releases fixed rows on a login in the ingestion role: the release and its
    audit entry are written; they can never be changed afterwards by that login."""
    from flywheel_assets.quality import quarantine

    day = dt.date(2026, 5, 1)
    admin = Warehouse(governed.admin_url)
    with admin.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO quarantine (dt, source, stage, source_file, line_no, reason, payload, "
                "quarantined_at) VALUES (:dt, 'events', 'ingestion', 'f.jsonl', 7, "
                "'invalid_price', '{}', now())"
            ),
            {"dt": day},
        )
    admin.dispose()
    fixed = {
        "event_id": "e7", "event_type": "view", "event_time": f"{day}T09:00:00Z",
        "user_id": "u_0123", "item_id": "i1", "price": 3.5,
        quarantine.REF_FILE: "f.jsonl", quarantine.REF_LINE: 7,
    }  # fmt: skip
    fixes = tmp_path / "fixes.jsonl"
    fixes.write_text(json.dumps(fixed) + "\n")
    pipeline = Warehouse(governed.pipeline_url)
    result = quarantine.release(
        pipeline, day, fixes, key="k" * 32, released_by="alice", why="price fixed upstream",
        now=dt.datetime(2026, 5, 2, 8),
    )  # fmt: skip
    pipeline.dispose()
    assert result.rows == 1
    admin = Warehouse(governed.admin_url)
    with admin.begin() as conn:
        audit = conn.execute(
            sa.text("SELECT actor, why FROM audit_log WHERE action = 'quarantine_release'")
        ).fetchall()
    admin.dispose()
    assert [(a.actor, a.why) for a in audit] == [("alice", "price fixed upstream")]
    error = _try(governed.pipeline_url, None, "UPDATE quarantine_releases SET why = 'x'")
    assert error is not None and "permission denied" in error
