"""A throw-away PostgreSQL server for tests: ``initdb`` into a temporary folder, a free loopback port.

``bindir()`` finds the server's programs (Debian's ``postgresql`` package:
``/usr/lib/postgresql/<version>/bin``, else ``initdb`` on PATH) and installs the package with apt
when they are missing (as root with apt-get; otherwise the tests skip and say why).
:class:`PgServer` (a context manager) runs, when this process is root, every server program as the
``postgres`` Unix user (``runuser -u postgres --``): PostgreSQL refuses to run as root. Its folder
(``/tmp/cnnlab-pg-XXXX/``: ``data/``, the Unix socket directory ``sock/``, ``server.log``) is owned by
that user. The server listens on 127.0.0.1 only, on a free port, and on a socket inside that folder;
TCP connections need a password (scram-sha-256), the socket is trusted (for the administrator's
set-up). ``stop()`` — also on exit of the ``with`` block, on failure and at interpreter exit —
runs ``pg_ctl stop -m fast``, kills the postmaster if it does not stop, and removes the folder.
"""
from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["bindir", "PgServer", "free_port"]

USER = "postgres"   # the Unix user (and the superuser role) the server runs as when we are root


def _find() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")])
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def bindir() -> Path:
    """The folder of ``initdb``/``pg_ctl``/``postgres``; installs Debian's ``postgresql`` with apt when
    missing. Skips the calling test (``pytest.skip``, with the reason) when they are absent and cannot
    be installed (no apt-get, not root, or the install failed)."""
    import pytest

    found = _find()
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed and apt-get (as root) "
                    "is not available to install Debian's postgresql package")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env)
    proc = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
                          capture_output=True, text=True, env=env)
    found = _find()
    if found is None:
        pytest.skip(f"PostgreSQL is not installed and `apt-get install postgresql` failed "
                    f"(exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A PostgreSQL server of its own in a temporary folder, for one test module or session.

    ``with PgServer(bindir()) as pg:`` starts it (``initdb``, ``pg_ctl start``) and creates the role
    ``user`` (password ``password``) and the database ``database`` it owns; ``pg.url`` is
    ``postgresql://user:password@127.0.0.1:PORT/database``. ``pg.admin()`` is a psycopg connection
    as the superuser over the socket (autocommit). Stopped and removed on exit.
    """

    def __init__(self, bindir: Path, user: str = "grader", password: str = "s3cret-pw",
                 database: str = "cnnlab"):
        self.bindir = Path(bindir)
        self.user, self.password, self.database = user, password, database
        self.folder: Path | None = None
        self.port: int | None = None
        self._started = False

    # -- paths and commands ------------------------------------------------------------------------
    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def sockdir(self) -> Path:
        return self.folder / "sock"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def url(self) -> str:
        """The gradebook URL of the test database, as an instructor would write it."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", USER, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.folder)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.is_file() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                               f"server log:\n{log}")
        return proc

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> "PgServer":
        """``initdb`` a fresh cluster, start it on a free loopback port, create the role and database."""
        # Not under pytest's tmp_path: that is root-only (0700), and the server runs as `postgres`.
        self.folder = Path(tempfile.mkdtemp(prefix="cnnlab-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
        atexit.register(self.stop)
        try:
            self.sockdir.mkdir()
            if os.geteuid() == 0:
                try:
                    owner = pwd.getpwnam(USER)
                except KeyError:
                    raise RuntimeError(f"running as root but there is no {USER!r} Unix user to run "
                                       "PostgreSQL as (Debian's postgresql package creates it)") from None
                for p in (self.folder, self.sockdir):
                    os.chown(p, owner.pw_uid, owner.pw_gid)
            pwfile = self.folder / "pw"
            pwfile.write_text("admin-pw\n")
            if os.geteuid() == 0:
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            self._as_owner(["initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile), "-E", "UTF8",
                            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
            pwfile.unlink()
            for attempt in range(3):
                self.port = free_port()
                opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockdir} -c fsync=off "
                        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50 "
                        "-c shared_buffers=16MB")
                try:
                    self._as_owner(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                                    "-o", opts, "start"])
                    self._started = True
                    break
                except RuntimeError:
                    if attempt == 2 or "could not bind" not in self.log.read_text(errors="replace"):
                        raise
            with self.admin() as conn:
                conn.execute(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
                conn.execute(f"CREATE DATABASE {self.database} OWNER {self.user}")
        except BaseException:
            self.stop()
            raise
        return self

    def admin(self, database: str = "postgres"):
        """A psycopg connection as the superuser over the Unix socket (autocommit)."""
        import psycopg
        return psycopg.connect(host=str(self.sockdir), port=self.port, user=USER, dbname=database,
                               autocommit=True, connect_timeout=10)

    def postmaster_pid(self) -> int | None:
        """The server's process id (``data/postmaster.pid``), None when it is not running."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``; killed if that fails) and remove its folder."""
        if self.folder is None:
            return
        pid = self.postmaster_pid()
        if self._started or pid:
            try:
                self._as_owner(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"], timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                if pid:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                    for _ in range(50):   # its children exit when the postmaster is gone
                        if not _alive(pid):
                            break
                        time.sleep(0.1)
        self._started = False
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
        atexit.unregister(self.stop)

    def __enter__(self) -> "PgServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
