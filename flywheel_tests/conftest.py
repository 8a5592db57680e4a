import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Two xdist workers each train XGBoost with nthread=2 on a 2-core machine: libgomp's default
# spin-waiting then burns the other worker's core (measured: two concurrent trainings took 21.7 s
# each spinning, 7.5 s passive). Set before any test module loads xgboost; results are unchanged.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from flywheel_tests.support.environment import (  # noqa: E402
    ENV_VARS,
    PG_ADMIN_URL,
    restored_environment,
)
from flywheel_tests.support.governed import Governed, governed_warehouse  # noqa: E402
from flywheel_tests.support.homes import (  # noqa: E402
    SMALL_SHOP,
    SMALL_SHOP_DAYS,
    SMALL_SHOP_SEED,
    SMALL_SHOP_START,
    DemoHome,
)


@pytest.fixture(scope="session")
def small_shop_home(tmp_path_factory: pytest.TempPathFactory) -> DemoHome:
    """Three days of the small shop through the real cycle: models registered, a serving
    pointer and feature bundles published, and the demo's figures. Tests that change it
    (promotions) are in test_serving.py, collected after the UI test, which only reads it."""
    from flywheel_assets.simulation.demo import run_demo

    with restored_environment():
        path = tmp_path_factory.mktemp("small-shop") / "home"
        rows = run_demo(
            days=SMALL_SHOP_DAYS,
            seed=SMALL_SHOP_SEED,
            start=SMALL_SHOP_START,
            home=path,
            config=SMALL_SHOP,
        )
        environ = {k: os.environ.get(k) for k in ENV_VARS}
    return DemoHome(path, environ, rows)


@pytest.fixture
def clean_env() -> Iterator[None]:
    with restored_environment():
        yield


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means "no server"
        return str(exc).splitlines()[0]


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test; in CI a missing server fails the test."""
    problem = _pg_available()
    if problem:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing server is a failure)")
        pytest.skip(message)
    name = f"flywheel_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def broker():
    """A real Kafka-protocol broker (Tansu) for the module; a missing binary fails under CI."""
    from flywheel_assets.platform.dev_broker import DevBroker, broker_binary

    try:
        binary = broker_binary()
        if not binary.exists():
            raise FileNotFoundError(binary)
    except Exception as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Kafka broker binary unavailable in CI: {exc}")
        pytest.skip(f"Kafka broker binary unavailable: {exc}")
    with DevBroker() as b:
        yield b


# The second run, `-m "chaos or long"` (decision 77): xdist gives each worker two tests ahead,
# so with a few long tests the order decides the wall time. Measured on 2 cores (s): PostgreSQL
# kills 266, the daemon 122, each DuckDB half about 400, then dagster dev 78, the Kafka loop
# 53, the stream kill 24, the PostgreSQL restart 16. The PostgreSQL kills and the daemon start
# the two workers and a DuckDB half follows each: 12 min 4 s and 13 min 48 s in two CI runs,
# where collection order had taken 14 min 21 s in a local run.
SECOND_RUN_FIRST = (
    "test_kills_in_every_stage_on_postgres",
    "test_the_daemon_fails",
    "test_kills_in_every_stage_on_duckdb",
)


def _second_run_rank(item: pytest.Item) -> int:
    name = getattr(item, "originalname", item.name)
    return next(
        (i for i, prefix in enumerate(SECOND_RUN_FIRST) if name.startswith(prefix)),
        len(SECOND_RUN_FIRST),
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first: xdist hands out the grouped modules first (largest first), then single
    tests in collection order; a minute-long scenario collected last left one worker idle for
    two minutes at the end. Slow tests outside a group move to the front of the single tests,
    and the second run's longest tests to the very front (SECOND_RUN_FIRST).
    """
    items.sort(
        key=lambda item: (
            _second_run_rank(item),
            0
            if item.get_closest_marker("slow") and not item.get_closest_marker("xdist_group")
            else 1,
        )
    )


@pytest.fixture
def governed(pg_database: str) -> Iterator[Governed]:
    """A migrated warehouse with its own roles, a pipeline login in the four stage roles and
    an analyst login (flywheel_tests/support/governed.py)."""
    with governed_warehouse(pg_database) as g:
        yield g
