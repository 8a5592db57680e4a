"""What tests share besides fixtures: the test server's URL and the environment guard."""

import contextlib
import os
from collections.abc import Iterable, Iterator

PG_ADMIN_URL = os.environ.get(
    "FLYWHEEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ENV_VARS = (
    "FLYWHEEL_HOME",
    "DAGSTER_HOME",
    "FLYWHEEL_PSEUDONYM_KEY",
    "FLYWHEEL_WAREHOUSE_URL",
    "FLYWHEEL_LANDING_DIR",
    "FLYWHEEL_MODELS_DIR",
    "FLYWHEEL_EXPERIMENT_MAX_DAYS",
    "FLYWHEEL_REALTIME_FEATURES",  # run_demo sets it from its world
    "FLYWHEEL_PARTITION_START",
    "FLYWHEEL_PARTITION_END",
    "FLYWHEEL_WAREHOUSE_ROLES",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USERNAME",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)


@contextlib.contextmanager
def restored_environment(extra: Iterable[str] = ()) -> Iterator[None]:
    """The demo points the process environment at its home: put it back afterwards (for
    module-scoped fixtures, which cannot use the ``clean_env`` fixture). ``extra``: more
    variables the caller sets itself, put back too."""
    saved = {k: os.environ.get(k) for k in (*ENV_VARS, *extra)}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
