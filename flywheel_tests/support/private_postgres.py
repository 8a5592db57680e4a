"""A throwaway PostgreSQL server of a test's own, for faults that would disturb the shared
server at 127.0.0.1:5432 (restarting it, stopping it).

    with PrivatePostgres() as pg:
        pg.create_database("wh")
        url = pg.url("wh")
        pg.restart()

initdb and postgres refuse to run as root: as root they run as the ``postgres`` OS user, which
then owns the temporary directory. Missing binaries skip the test, or fail it under CI=true
(the policy of ``pg_database`` in conftest.py).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from flywheel_assets.platform.dev_broker import free_port

TIMEOUT = 60  # seconds for any one initdb / pg_ctl call


def _version_key(path: str) -> tuple[int, ...]:
    name = Path(path).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)


def pg_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: ``pg_config --bindir`` first, else the newest
    ``/usr/lib/postgresql/<version>/bin``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
        except (subprocess.SubprocessError, OSError):
            pass
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates += [Path(d) for d in dirs]
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: missing PostgreSQL binaries are a failure)")
    pytest.skip(message)


class PrivatePostgres:
    """One postgres process on 127.0.0.1:``port`` with its data, socket and log in a temp dir."""

    def __init__(self, tls: bool = False) -> None:
        """``tls``: the server takes TLS connections only (a throwaway CA signs its certificate
        for 127.0.0.1; ``ca_cert`` is the file a client verifies it with)."""
        self.tls = tls
        bindir = pg_bindir()
        if bindir is None:
            _missing("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres and shutil.which("runuser") is None:
            _missing("running as root without runuser: cannot start postgres as user postgres")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    # ----- processes ----------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = TIMEOUT + 15) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def _ctl(self, *args: str) -> None:
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), *args)
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl {' '.join(args)} failed ({result.returncode}): "
                f"{(result.stdout + result.stderr).strip()}\n"
                f"--- server log tail ---\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        os.chmod(self.root, 0o700)
        result = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {(result.stdout + result.stderr).strip()}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 100\n"
            )
        if self.tls:
            self._make_certificates()

    def _make_certificates(self) -> None:
        """A CA and a server certificate for IP 127.0.0.1 (what verify-full checks), and
        pg_hba rules that refuse every connection without TLS."""

        def openssl(*args: str) -> None:
            subprocess.run(
                ["openssl", *args], cwd=self.root, check=True, capture_output=True, timeout=60
            )

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                "ca.crt", "-days", "2", "-subj", "/CN=flywheel test CA")  # fmt: skip
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
                "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
        (self.root / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip
        for name in ("server.crt", "server.key"):
            target = self.data / name
            shutil.copy(self.root / name, target)
            os.chmod(target, 0o600)
            if self.as_postgres:
                shutil.chown(target, user="postgres", group="postgres")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                "log_connections = on\n"
            )
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostnossl all all 127.0.0.1/32 reject\n"
        )

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    def start(self) -> None:
        self._ctl("start", "-w", "-t", str(TIMEOUT))

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode, "-w", "-t", str(TIMEOUT))

    def restart(self, down_for: float = 0.0) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server is back on return.
        With ``down_for`` seconds, stop (fast), stay down that long, then start."""
        if down_for > 0:
            self.stop("fast")
            time.sleep(down_for)
            self.start()
            return
        self._ctl("restart", "-m", "fast", "-w", "-t", str(TIMEOUT))

    def cleanup(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # ----- databases ----------------------------------------------------------------------

    def url(self, db: str = "postgres") -> str:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"
        if self.tls:
            url += f"?sslmode=verify-full&sslrootcert={self.ca_cert}"
        return url

    def admin_engine(self) -> sa.Engine:
        return sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its SQLAlchemy (psycopg 3) URL."""
        engine = self.admin_engine()
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    # ----- context manager ------------------------------------------------------------------

    def __enter__(self) -> PrivatePostgres:
        try:
            self.init()
            self.start()
        except BaseException:
            self.cleanup()
            raise
        deadline = time.monotonic() + 10
        engine = self.admin_engine()
        try:
            while True:  # -w waits for the server, but be sure TCP answers too
                try:
                    with engine.connect() as conn:
                        conn.execute(sa.text("SELECT 1"))
                    return self
                except sa.exc.OperationalError as exc:
                    if time.monotonic() > deadline:
                        tail = self.log_tail()
                        self.cleanup()
                        raise RuntimeError(
                            f"private PostgreSQL on port {self.port} not reachable: {exc}\n"
                            f"--- server log tail ---\n{tail}"
                        ) from None
                    time.sleep(0.1)
        finally:
            engine.dispose()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
