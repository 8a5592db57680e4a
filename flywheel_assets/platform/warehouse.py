"""The warehouse: one small facade over DuckDB (embedded) and PostgreSQL (production).

Everything goes through SQLAlchemy with bound parameters and the reviewed SQL files in `sql/`;
only bulk loads of DataFrames take a driver-specific fast path (DuckDB's Arrow scan, PostgreSQL
COPY), because row-by-row INSERTs are orders of magnitude slower for a day of events.

SQL text is never built from data. Three kinds of statements exist:

- reviewed files, ``sql/<stage>/<name>.sql``, run by name (:func:`load_sql`, :meth:`Warehouse.run`);
- generic partition statements (:meth:`Warehouse.read_partition`, ``read_partitions``,
  ``delete_partition``, ``count_partition``): ``SELECT/DELETE ... FROM <table> WHERE dt = :dt``
  whose table and column names are checked to be plain identifiers, values always bound;
- templates: files that would otherwise be near-copies (user x category and user x brand
  features, ...) hold ``{{name}}`` placeholders for table and column names. The file declares
  every binding it accepts in a header line, e.g.::

      -- @template segment p: category uc | brand ub

  and :func:`load_sql` fills the placeholders only with one of those bindings (refusing any
  other), so what a template can become is fixed in the reviewed file. Values stay bound
  parameters (``:dt``, ``:source``), never placeholders.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from flywheel_assets.platform.settings import WarehouseSettings

log = logging.getLogger(__name__)


def _sql_dir() -> Path:
    # Installed from a wheel: the package's own copy; from a checkout: the top-level sql/.
    here = Path(__file__).resolve().parents[1]  # the flywheel_assets package
    return here / "sql" if (here / "sql" / "schema").is_dir() else here.parent / "sql"


SQL_DIR = _sql_dir()
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _driver_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sa.exc.DBAPIError]
    try:
        import psycopg

        errors.append(psycopg.Error)  # raised directly by COPY on the raw connection
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    import duckdb

    errors.append(duckdb.Error)
    return tuple(errors)


# Errors meaning "the database failed", whichever layer raised them.
DATABASE_ERRORS = _driver_errors()


class WarehouseError(RuntimeError):
    """A warehouse problem with a message that says what to do."""


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_TEMPLATE_LINE = re.compile(r"^--\s*@template\s+([\w ]+?)\s*:\s*(.+?)\s*$", re.MULTILINE)


@functools.cache
def load_sql(name: str, **identifiers: str) -> str:
    """The text of ``sql/<name>.sql``; for a template, with its placeholders filled by
    ``identifiers``, which must be one of the bindings the file's ``@template`` line allows."""
    path = SQL_DIR / f"{name}.sql"
    if not path.exists():
        raise WarehouseError(f"SQL file {path} is missing; is the repository checked out whole?")
    text = path.read_text()
    allowed = template_bindings(text)
    if not allowed and not identifiers:
        return text
    if identifiers not in allowed:
        choices = "; ".join(", ".join(f"{k}={v}" for k, v in b.items()) for b in allowed)
        raise WarehouseError(
            f"sql/{name}.sql cannot be loaded with {identifiers or 'no identifiers'}: "
            f"{'it allows ' + choices if allowed else 'it is not a template'}"
        )
    return _PLACEHOLDER.sub(lambda m: identifiers[m.group(1)], text)


def template_bindings(text: str) -> list[dict[str, str]]:
    """The bindings a template's ``-- @template a b: x1 y1 | x2 y2`` line allows (none for a
    plain file). Every placeholder must be named there and every value be a plain identifier."""
    lines = _TEMPLATE_LINE.findall(text)
    used = set(_PLACEHOLDER.findall(text))
    if not lines:
        if used:
            raise WarehouseError(f"placeholders {sorted(used)} without an @template line")
        return []
    if len(lines) > 1:
        raise WarehouseError("a template has one @template line")
    names = lines[0][0].split()
    bindings = []
    for choice in lines[0][1].split("|"):
        values = choice.split()
        if len(values) != len(names):
            raise WarehouseError(f"@template binding {choice.strip()!r} does not match {names}")
        bindings.append({n: _ident(v) for n, v in zip(names, values, strict=True)})
    if used != set(names):
        raise WarehouseError(f"@template names {sorted(names)}, the text uses {sorted(used)}")
    return bindings


def named_params(sql: str, params: dict[str, object]) -> dict[str, object]:
    """The entries of ``params`` that ``sql`` names as ``:name``: one set of bounds can serve
    several SQL files, each binding only what it uses."""
    return {k: v for k, v in params.items() if f":{k}" in sql}


def split_statements(text: str) -> list[str]:
    """Split a reviewed schema file on statement-ending semicolons (no semicolons in literals;
    a function's ``$$``-quoted body keeps its own)."""
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    body = "\n".join(lines)
    if body.count("$$") % 2 or _DOLLAR_TAG.search(body):
        raise WarehouseError(
            "a schema file may quote a function body with $$ ... $$ only, in pairs, and no $$ "
            "elsewhere: the statements could not be split safely"
        )
    statements, current = [], ""
    for n, part in enumerate(body.split("$$")):
        if n % 2:  # inside $$ ... $$
            current += f"$${part}$$"
            continue
        first, *rest = part.split(";")
        current += first
        for piece in rest:
            statements.append(current)
            current = piece
    statements.append(current)
    return [s.strip() for s in statements if s.strip()]


_DOLLAR_TAG = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*\$")
_WRITTEN = "flywheel_written_tables"  # Connection.info key: tables this transaction rewrote
_ANALYZE_LOCK_TIMEOUT = "10s"


def _analyze(conn: Connection, tables: list[str], as_stage_role: bool) -> None:
    """Refresh the planner's statistics of ``tables`` inside the committing transaction. A stage
    role may not ANALYZE tables it does not own: it asks the owner's function (governance
    008_statistics.sql). Statistics are an optimisation: a failure is logged, never loses the
    transaction's data."""
    if conn.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar() == "0":
        conn.execute(sa.text(f"SET LOCAL lock_timeout = '{_ANALYZE_LOCK_TIMEOUT}'"))
    for table in tables:
        statement = (
            sa.text("SELECT flywheel_analyze(:target)").bindparams(target=table)
            if as_stage_role
            else sa.text(f"ANALYZE {_ident(table)}")
        )
        try:
            with conn.begin_nested():
                conn.execute(statement)
        except sa.exc.DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            hint = (
                "; run `flywheel grants` (after an upgrade) so the stage roles may refresh them"
                if state in ("42883", "42501")  # undefined function, insufficient privilege
                else ""
            )
            log.warning(
                "ANALYZE %s failed, its statistics stay as they were: %s%s",
                table, str(exc.orig).splitlines()[0] if exc.orig else exc, hint,
            )  # fmt: skip


def _jit_off_unless_chosen(dbapi_conn: object, _record: object) -> None:
    """JIT compiles a large plan for up to 2 s, a third of what these queries of 10^5-10^6 rows
    then take (decision 88): off for each new connection, unless the client chose (the URL's
    ``?options=``, libpq's PGOPTIONS), or the DBA did for this database or login."""
    with dbapi_conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(load_sql("platform/admin/jit_source"))
        row = cur.fetchone()
        if row is not None and row[0] in ("default", "configuration file"):
            cur.execute("SET jit = off")
    dbapi_conn.commit()  # type: ignore[attr-defined]


def _written(conn: Connection, table: str) -> None:
    conn.info.setdefault(_WRITTEN, set()).add(_ident(table))


def _ident(name: str) -> str:
    # Table and column names come from this package's own schema, never from data; still,
    # refuse anything that is not a plain identifier so no data can ever become SQL.
    if not _IDENTIFIER.match(name):
        raise WarehouseError(f"not a plain SQL identifier: {name!r}")
    return name


def _select_list(columns: Sequence[str] | None) -> str:
    if columns is None:
        return "*"
    if not columns:
        raise WarehouseError("an empty column list selects nothing")
    return ", ".join(_ident(c) for c in columns)


def _partition_filter(
    equal: dict[str, object], where: str, **params: object
) -> tuple[str, dict[str, object]]:
    """``where`` narrowed by ``column = :value`` for each entry of ``equal`` (bound as
    ``eq_<column>``, so a column name can never collide with the dt bounds)."""
    for column, value in equal.items():
        where += f" AND {_ident(column)} = :eq_{column}"
        params[f"eq_{column}"] = value
    return where, params


class Warehouse:
    """Connections, migrations, SQL files and bulk loads for one warehouse URL."""

    def __init__(self, url: str, settings: WarehouseSettings | None = None) -> None:
        self.url = url
        self.dialect = sa.engine.make_url(url).get_backend_name()
        if self.dialect not in ("duckdb", "postgresql"):
            raise WarehouseError(
                f"unsupported warehouse URL {sa.engine.make_url(url).render_as_string()!r}: "
                "use duckdb:///path/file.duckdb or postgresql+psycopg://user@host/db"
            )
        sa_url = sa.engine.make_url(url)
        # Secrets by the settings' rule (the environment unless given): never in the URL.
        settings = settings or WarehouseSettings.resolve()
        password = settings.password
        if self.dialect == "postgresql" and password and sa_url.password is None:
            # The URL (host, database, sslmode, ...) is configuration; the password is a secret
            # and may come on its own from the environment.
            sa_url = sa_url.set(password=password)
        key = settings.encryption_key
        if self.dialect == "duckdb" and key:
            self.engine = _encrypted_duckdb_engine(sa_url, key, settings.duckdb_unsafe_crypto)
        else:
            # DuckDB allows one writing process per file: hold the file only while working.
            kwargs: dict[str, object] = (
                {"poolclass": NullPool} if self.dialect == "duckdb" else {"pool_pre_ping": True}
            )
            self.engine = sa.create_engine(sa_url, **kwargs)
            if self.dialect == "postgresql":
                sa.event.listen(self.engine, "connect", _jit_off_unless_chosen)
        # On PostgreSQL with least-privilege roles: the role each transaction acts as (the
        # running asset's stage role, docs/security.md); None acts as the login itself.
        self.session_role: Callable[[], str | None] | None = None
        # With least-privilege roles the login owns no table: statistics go through the owner's
        # function even when a transaction acts as the login itself (decision 88).
        self.uses_roles = False

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            conn.info.pop(_WRITTEN, None)  # left by a transaction that failed on this connection
            role = (
                self.session_role() if self.session_role and self.dialect == "postgresql" else None
            )
            if role:
                conn.execute(sa.text(load_sql("platform/admin/set_role")), {"role": role})
            yield conn
            written = conn.info.pop(_WRITTEN, set())
            if written and self.dialect == "postgresql":
                # The next step reads this partition seconds later, before autovacuum (if on)
                # notices it: without fresh statistics the planner takes a day of 200k rows for
                # a few hundred and nests loops over it (decision 88). DuckDB keeps its own.
                by_function = self.uses_roles or self.session_role is not None
                _analyze(conn, sorted(written), as_stage_role=by_function)

    def migrations(self) -> list[Migration]:
        """Every migration file for this dialect, in the order they apply: `sql/schema/*.sql`,
        then the dialect's own (`sql/schema_<dialect>/*.sql`, e.g. PostgreSQL's indexes)."""
        paths = sorted((SQL_DIR / "schema").glob("*.sql"))
        paths += sorted((SQL_DIR / f"schema_{self.dialect}").glob("*.sql"))
        return [Migration.from_path(p) for p in paths]

    def applied_migrations(self, conn: Connection) -> dict[str, str]:
        """version -> SHA-256 of what this warehouse has applied ({} for a new warehouse)."""
        if not self.scalar(
            conn, load_sql("platform/migrations/has_table"), table="schema_migrations"
        ):
            return {}
        rows = conn.execute(sa.text(load_sql("platform/migrations/applied"))).fetchall()
        return {str(r.version): str(r.sha256) for r in rows}

    def pending_migrations(self) -> list[Migration]:
        """The migrations not applied yet; raises if an applied file has since changed."""
        with self.begin() as conn:
            applied = self.applied_migrations(conn)
        return _pending(self.migrations(), applied)

    def migrate(self, applied_by: str = "flywheel", owner_role: str | None = None) -> list[str]:
        """Apply the missing migrations in order, each recorded with its SHA-256, all in one
        transaction (PostgreSQL and DuckDB both have transactional DDL); returns the versions
        applied. Idempotent. Every file is also safe to re-run (IF NOT EXISTS), so a warehouse
        created before versioned migrations records them on its first run."""
        try:
            with self.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text(load_sql("platform/migrations/lock_postgresql")))
                    if owner_role and self.scalar(
                        conn, load_sql("platform/admin/role_exists"), role=owner_role
                    ):
                        # New tables belong to the owner role, not to whoever ran the command.
                        conn.execute(
                            sa.text(load_sql("platform/admin/set_role")), {"role": owner_role}
                        )
                applied = self.applied_migrations(conn)
                pending = _pending(self.migrations(), applied)
                now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
                for migration in pending:
                    for statement in split_statements(migration.text):
                        conn.execute(sa.text(statement))
                    conn.execute(
                        sa.text(load_sql("platform/migrations/record")),
                        {
                            "version": migration.version,
                            "sha256": migration.sha256,
                            "applied_at": now,
                            "applied_by": applied_by,
                        },
                    )
                if pending:
                    # A schema change is a configuration change: it goes to the audit trail.
                    self.run(
                        conn,
                        "platform/audit/insert_audit",
                        logged_at=now,
                        actor=applied_by,
                        action="migrate",
                        subject=f"schema: {len(pending)} migration(s)",
                        details=json.dumps({m.version: m.sha256 for m in pending}),
                        why="flywheel migrate",
                    )
                return [m.version for m in pending]
        except sa.exc.ProgrammingError as exc:
            if "permission denied" in str(exc) or "must be owner" in str(exc):
                raise WarehouseError(
                    f"the warehouse user may not change the schema ({str(exc).splitlines()[0]}): "
                    "run `flywheel migrate` as the schema owner (docs/security.md)"
                ) from exc
            raise

    # ----- running SQL ------------------------------------------------------------------------

    @staticmethod
    def run(conn: Connection, name: str, **params: object) -> int:
        """Run the SQL file ``sql/<name>.sql`` with bound parameters; returns affected rows."""
        return Warehouse.execute(conn, load_sql(name), **params)

    @staticmethod
    def execute(conn: Connection, sql: str, **params: object) -> int:
        """Run reviewed SQL text (e.g. a filled template) with bound parameters; returns
        affected rows."""
        result = conn.execute(sa.text(sql), params)
        return int(result.rowcount or 0)

    @staticmethod
    def query_df(conn: Connection, sql: str, **params: object) -> pd.DataFrame:
        """A query's result as a DataFrame (DATE columns as ``datetime.date`` objects)."""
        if conn.dialect.name == "duckdb":
            # SQLAlchemy binds the parameters; DuckDB hands the result over as Arrow, which is
            # an order of magnitude faster than building Python rows for a day of events.
            compiled = sa.text(sql).bindparams(**params).compile(dialect=conn.dialect)
            values = [compiled.params[name] for name in compiled.positiontup or []]
            # execute() (not sql()) because it also ends a result SQLAlchemy left unfinished on
            # this connection. DuckDB 2 warns that Arrow from execute() costs one extra copy:
            # still far cheaper than Python rows.
            cursor = conn.connection.driver_connection.execute(str(compiled), values)
            # DuckDB 2 renamed fetch_arrow_table to to_arrow_table.
            fetch = getattr(cursor, "to_arrow_table", None) or cursor.fetch_arrow_table
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
                table = fetch()
            return table.to_pandas(date_as_object=True)
        if conn.dialect.name == "postgresql":
            frame = _postgres_frame(conn, sql, params)
            if frame is not None:
                return frame
        result = conn.execute(sa.text(sql), params)
        rows, keys = result.fetchall(), list(result.keys())
        if not rows or len(set(keys)) < len(keys):
            return pd.DataFrame(rows, columns=keys)
        # Column by column: pandas infers each column once instead of walking every row tuple,
        # the same frame 1.7x faster for a training window of 200k rows x 81 columns.
        return pd.DataFrame(dict(zip(keys, zip(*rows, strict=True), strict=True)), columns=keys)

    @staticmethod
    def scalar(conn: Connection, sql: str, **params: object) -> object:
        return conn.execute(sa.text(sql), params).scalar()

    # ----- partitions -------------------------------------------------------------------------
    # Every partitioned table has a `dt` column. Keyword arguments narrow a partition to the
    # rows whose column equals the value (e.g. source="events"): names checked, values bound.

    @staticmethod
    def read_partition(
        conn: Connection,
        table: str,
        day: object,
        columns: Sequence[str] | None = None,
        **equal: object,
    ) -> pd.DataFrame:
        """The rows of partition ``day`` of ``table`` (all columns, or ``columns`` in order)."""
        where, params = _partition_filter(equal, "dt = :dt", dt=day)
        sql = f"SELECT {_select_list(columns)} FROM {_ident(table)} WHERE {where}"  # noqa: S608
        return Warehouse.query_df(conn, sql, **params)

    @staticmethod
    def read_partitions(
        conn: Connection,
        table: str,
        start: object,
        end: object,
        columns: Sequence[str] | None = None,
        **equal: object,
    ) -> pd.DataFrame:
        """The rows of the partitions ``start`` .. ``end`` (both included) of ``table``."""
        where, params = _partition_filter(
            equal, "dt >= :start_dt AND dt <= :end_dt", start_dt=start, end_dt=end
        )
        sql = f"SELECT {_select_list(columns)} FROM {_ident(table)} WHERE {where}"  # noqa: S608
        return Warehouse.query_df(conn, sql, **params)

    @staticmethod
    def delete_partition(conn: Connection, table: str, day: object, **equal: object) -> int:
        """Delete partition ``day`` of ``table``; returns the rows deleted."""
        where, params = _partition_filter(equal, "dt = :dt", dt=day)
        sql = f"DELETE FROM {_ident(table)} WHERE {where}"  # noqa: S608
        _written(conn, table)  # a rewritten partition: analysed at commit (decision 88)
        return Warehouse.execute(conn, sql, **params)

    @staticmethod
    def count_partition(conn: Connection, table: str, day: object, **equal: object) -> int:
        where, params = _partition_filter(equal, "dt = :dt", dt=day)
        sql = f"SELECT COUNT(*) FROM {_ident(table)} WHERE {where}"  # noqa: S608
        return int(conn.execute(sa.text(sql), params).scalar() or 0)

    # ----- bulk loads -------------------------------------------------------------------------

    def insert_df(self, conn: Connection, table: str, df: pd.DataFrame) -> int:
        """Append ``df`` (columns named as the table's) inside the caller's transaction."""
        if df.empty:
            return 0
        cols = ", ".join(_ident(c) for c in df.columns)
        raw = conn.connection.driver_connection
        if self.dialect == "duckdb":
            view = f"_load_{uuid.uuid4().hex}"
            # Through Arrow: pyarrow converts object (string) columns in C++, and DuckDB scans
            # the Arrow table without another copy (a third faster than scanning the DataFrame).
            raw.register(view, pa.Table.from_pandas(df, preserve_index=False))
            try:
                raw.execute(f"INSERT INTO {_ident(table)} ({cols}) SELECT {cols} FROM {view}")  # noqa: S608
            finally:
                raw.unregister(view)
        else:
            with raw.cursor() as cur, cur.copy(f"COPY {_ident(table)} ({cols}) FROM STDIN") as copy:
                for row in _python_rows(df):
                    copy.write_row(row)
        return len(df)

    def register_temp(self, conn: Connection, name: str, df: pd.DataFrame) -> None:
        """Make ``df`` queryable as relation ``name`` for this connection's transaction."""
        raw = conn.connection.driver_connection
        if self.dialect == "duckdb":
            raw.register(_ident(name), df)
            return
        types = {c: _pg_type(df[c]) for c in df.columns}
        ddl = ", ".join(f"{_ident(c)} {t}" for c, t in types.items())
        conn.execute(sa.text(f"CREATE TEMP TABLE {_ident(name)} ({ddl}) ON COMMIT DROP"))
        self.insert_df(conn, name, df)

    def unregister_temp(self, conn: Connection, name: str) -> None:
        if self.dialect == "duckdb":
            conn.connection.driver_connection.unregister(_ident(name))


# PostgreSQL result types read through COPY, by type OID, as the Arrow types DuckDB hands over
# for the same SQL (decision 91). NUMERIC (what PostgreSQL's EXTRACT, AVG and SUM of integers
# give) is read as float64, as DuckDB's DOUBLE for the same expressions; REAL as float64, the
# value the row path gives; any other type (a time zone, an interval, JSON, an array) keeps
# the row-by-row path.
_PG_ARROW = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    19: pa.string(),  # name
    25: pa.string(),  # text
    1042: pa.string(),  # char(n)
    1043: pa.string(),  # varchar
    700: pa.float64(),  # real
    701: pa.float64(),
    1700: pa.float64(),  # numeric
    1082: pa.date32(),
    1114: pa.timestamp("us"),  # timestamp without time zone
}


def _postgres_frame(conn: Connection, sql: str, params: dict[str, object]) -> pd.DataFrame | None:
    """A SELECT's result through ``COPY ... TO STDOUT (FORMAT csv)`` parsed by pyarrow, in the
    same transaction (its temporary tables, its role): no Python object per value, several
    times faster than fetching rows for a training window (decision 91). None when this path
    would not read the result exactly as the row path does; the caller then fetches rows."""
    import psycopg

    raw = conn.connection.driver_connection
    # Dates and timestamps are parsed as ISO text, and the text as UTF-8.
    if not str(raw.info.parameter_status("DateStyle") or "").startswith("ISO"):
        return None
    if raw.info.encoding != "utf-8":
        return None
    # A float bound on the client is a NUMERIC literal, where the row path binds float8.
    if any(isinstance(v, float | np.floating) for v in params.values()):
        return None
    # Untyped parameters, as conn.execute(text, params) binds them (typed ones would render
    # casts such as ::VARCHAR that the row path does not have).
    # A newline before the closing parenthesis: the SQL may end with a comment line.
    body = str(sa.text(sql).compile(dialect=conn.dialect)).rstrip().rstrip(";")
    # The compiled text escapes a literal % as %%, which psycopg undoes only when it is given
    # parameters: without any, one it ignores.
    params = params or {"_no_parameters": None}
    # In a savepoint: SQL the row path runs but a subquery cannot hold (a data-modifying CTE,
    # a statement after a semicolon) fails here and leaves the transaction usable; the row path
    # then runs it once and reports any error as it always did.
    raw.execute("SAVEPOINT flywheel_copy_read")
    try:
        with raw.cursor() as cur:
            cur.execute(f"SELECT * FROM (\n{body}\n) AS q LIMIT 0", params)  # noqa: S608
            columns = [(d.name, d.type_code) for d in cur.description or ()]
            names = [name for name, _ in columns]
            readable = bool(columns) and len(set(names)) == len(names)
            readable = readable and all(oid in _PG_ARROW for _, oid in columns)
            data = b""
            if readable:
                # COPY takes no server-side parameters: psycopg binds them on the client,
                # quoted by the driver (never by this code).
                copy_sql = f"COPY (\n{body}\n) TO STDOUT (FORMAT csv)"
                with cur.copy(copy_sql, params) as copy:
                    data = b"".join(bytes(block) for block in copy)
        raw.execute("RELEASE SAVEPOINT flywheel_copy_read")
    except psycopg.Error:
        try:
            raw.execute("ROLLBACK TO SAVEPOINT flywheel_copy_read")
        except psycopg.Error:
            pass  # the connection itself failed: the row path raises it through SQLAlchemy
        return None
    if not readable:
        return None
    schema = pa.schema([(name, _PG_ARROW[oid]) for name, oid in columns])
    return _csv_frame(data, schema)


def _csv_frame(data: bytes, schema: pa.Schema) -> pd.DataFrame | None:
    import pyarrow.csv as pacsv

    if not data:
        return schema.empty_table().to_pandas(date_as_object=True)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=schema.names),
            # A row of one NULL column is an empty line: a row, not nothing.
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=schema,
                # PostgreSQL writes NULL as an empty unquoted field and '' as "".
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
    except pa.ArrowInvalid:
        # A value outside what Arrow parses (a date 'infinity', a year BC): the row path.
        return None
    return table.to_pandas(date_as_object=True)


ENCRYPTION_KEY_ENV = "FLYWHEEL_WAREHOUSE_ENCRYPTION_KEY"
# Development and tests on a machine that cannot load DuckDB's httpfs extension only: lets
# DuckDB write encrypted files with its built-in mbedtls, which DuckDB calls not secure.
UNSAFE_CRYPTO_ENV = "FLYWHEEL_DUCKDB_UNSAFE_CRYPTO"


def _load_duckdb_crypto(raw: object, unsafe: bool = False) -> None:
    """DuckDB writes encrypted files only with OpenSSL, which its httpfs extension brings
    (``unsafe``: FLYWHEEL_DUCKDB_UNSAFE_CRYPTO, development only)."""
    import duckdb

    if unsafe:
        raw.execute("SET force_mbedtls_unsafe = 'true'")
        return
    try:
        raw.execute("LOAD httpfs")
        return
    except duckdb.Error:
        pass
    try:
        raw.execute("INSTALL httpfs")
        raw.execute("LOAD httpfs")
    except duckdb.Error as exc:
        raise WarehouseError(
            f"{ENCRYPTION_KEY_ENV} is set, and DuckDB encrypts with OpenSSL from its httpfs "
            f"extension, which could not be loaded ({str(exc).splitlines()[0]}). Install it "
            "once where DuckDB's extension repository is reachable (python -c \"import duckdb; "
            "duckdb.execute('INSTALL httpfs')\"), or copy it into the extension directory "
            "(docs/security.md)."
        ) from exc


def _encrypted_duckdb_engine(
    url: sa.engine.URL, key: str, unsafe: bool = False
) -> sa.engine.Engine:
    """An engine whose every connection attaches the warehouse file with its key (bound as a
    parameter) and works inside it; the file on disk is AES-GCM encrypted. The URL's other
    DuckDB settings (e.g. ?threads=2) apply to the connection as they would to the file."""
    path = url.database
    if not path or path == ":memory:":
        raise WarehouseError(f"{ENCRYPTION_KEY_ENV} needs a DuckDB file, not an in-memory database")
    settings = {k: v for k, v in url.query.items() if k != "access_mode"}
    read_only = url.query.get("access_mode") == "read_only"
    memory = sa.engine.make_url("duckdb:///:memory:").update_query_dict(settings)
    engine = sa.create_engine(memory, poolclass=NullPool)

    @sa.event.listens_for(engine, "connect")
    def _attach(dbapi_connection: object, _record: object) -> None:
        import duckdb

        if not read_only:
            _load_duckdb_crypto(dbapi_connection, unsafe)
        options = "ENCRYPTION_KEY ?, READ_ONLY" if read_only else "ENCRYPTION_KEY ?"
        try:
            dbapi_connection.execute(f"ATTACH ? AS warehouse ({options})", [path, key])
        except duckdb.Error as exc:
            raise WarehouseError(_attach_problem(path, str(exc))) from exc
        dbapi_connection.execute("USE warehouse")

    return engine


def _attach_problem(path: str, error: str) -> str:
    first = error.splitlines()[0] if error else "unknown error"
    lowered = error.lower()
    if "wrong encryption key" in lowered:
        return (
            f"cannot open {path}: {ENCRYPTION_KEY_ENV} is not the key it was encrypted with "
            "(a wrong key cannot open it; nothing was changed)"
        )
    if "not encrypted" in lowered or "without encryption" in lowered:
        return (
            f"cannot open {path} with {ENCRYPTION_KEY_ENV}: the file is not encrypted ({first}). "
            "Copy it once with `flywheel encrypt-warehouse` (docs/security.md)."
        )
    return f"cannot open the encrypted warehouse {path}: {first}"


def encrypt_duckdb_file(source: Path, target: Path, key: str, unsafe: bool = False) -> None:
    """Copy an unencrypted DuckDB warehouse into a new encrypted file (the source stays; a
    failed copy leaves no target behind)."""
    import duckdb

    if not source.is_file():
        raise WarehouseError(f"{source} does not exist: nothing to encrypt")
    if target.exists():
        raise WarehouseError(f"{target} exists: choose a new file for the encrypted copy")
    con = duckdb.connect()
    try:
        _load_duckdb_crypto(con, unsafe)
        con.execute("ATTACH ? AS plain (READ_ONLY)", [str(source)])
        con.execute("ATTACH ? AS sealed (ENCRYPTION_KEY ?)", [str(target), key])
        con.execute("COPY FROM DATABASE plain TO sealed")
    except duckdb.Error as exc:
        con.close()
        for leftover in (target, target.with_name(target.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise WarehouseError(f"cannot encrypt {source}: {str(exc).splitlines()[0]}") from exc
    con.close()


@dataclass(frozen=True)
class Migration:
    """One reviewed schema file; its version is its path under `sql/` without `.sql`."""

    version: str
    text: str
    sha256: str

    @classmethod
    def from_path(cls, path: Path) -> Migration:
        text = path.read_text()
        version = path.relative_to(SQL_DIR).with_suffix("").as_posix()
        # Line endings do not change a migration (a checkout with CRLF is the same file).
        canonical = text.replace("\r\n", "\n")
        return cls(version, text, hashlib.sha256(canonical.encode()).hexdigest())


def _pending(migrations: list[Migration], applied: dict[str, str]) -> list[Migration]:
    changed = [
        m.version for m in migrations if m.version in applied and applied[m.version] != m.sha256
    ]
    known = {m.version for m in migrations}
    unknown = sorted(v for v in applied if v not in known)
    if unknown:
        raise WarehouseError(
            f"this warehouse has applied migrations this code does not have: {unknown[:5]}. It "
            "was migrated by newer code (run that version), or applied files were renamed or "
            "deleted (restore them: a schema change is a new numbered file)."
        )
    if changed:
        raise WarehouseError(
            f"migration files changed after this warehouse applied them: {changed}. A schema "
            "change is a new numbered file in sql/schema; restore the applied files."
        )
    return [m for m in migrations if m.version not in applied]


def _pg_type(s: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(s):
        return "TIMESTAMP"
    if pd.api.types.is_bool_dtype(s):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(s):
        return "BIGINT"
    if pd.api.types.is_float_dtype(s):
        return "DOUBLE PRECISION"
    first = s.dropna().head(1)
    if len(first) and isinstance(first.iloc[0], dt.date):
        return "TIMESTAMP" if isinstance(first.iloc[0], dt.datetime) else "DATE"
    return "TEXT"


def _python_rows(df: pd.DataFrame) -> Iterator[tuple]:
    """Rows as Python values with None for missing ones (COPY does not understand NaN/NaT)."""
    cols = []
    for c in df.columns:
        s = df[c]
        values = s.astype(object).to_numpy()
        mask = s.isna().to_numpy()
        if mask.any():
            values = values.copy()
            values[mask] = None
        if pd.api.types.is_datetime64_any_dtype(s):
            values = np.array(
                [None if v is None else pd.Timestamp(v).to_pydatetime() for v in values],
                dtype=object,
            )
        cols.append(values)
    yield from zip(*cols, strict=True)
