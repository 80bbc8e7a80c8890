"""Gradebook access in one place: the database URL, its checks, and nbgrader's Gradebook on it.

The gradebook is any SQLAlchemy URL (:func:`autograder.course.db_url`: ``--db URL``, else
``$CNNLAB_GRADEBOOK_URL``, else SQLite at ``autograder/gradebook.db``). Several graders share one
gradebook on PostgreSQL::

    postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE           # the same as postgresql+psycopg://
    postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE   # psycopg 3: pip install -e '.[postgres]'

:func:`normalize_url` spells a plain ``postgresql://`` (or ``postgres://``) URL out as
``postgresql+psycopg://``, so the driver the project installs (psycopg 3, the ``postgres`` extra) is
used whatever SQLAlchemy's default for the dialect is (SQLAlchemy 1.4/2.0 pick psycopg2 for a plain
``postgresql://``; 2.1 picks psycopg). :func:`check_url` raises :class:`GradebookError` — a message
that names the URL with its password masked and says what to do — when the URL cannot be parsed,
names a driver SQLAlchemy does not know, needs a driver that is not installed, or when the server
cannot be reached or refuses the connection (database missing, wrong password). The grading
commands call it before they start, so a gradebook that does not work stops the command; nothing
ever falls back to SQLite.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from pathlib import Path

#: nbgrader's course id of the gradebook (``autograder.course`` re-exports it).
COURSE_ID = "cnnlab"

__all__ = ["COURSE_ID", "GradebookError", "CONNECT_TIMEOUT", "normalize_url", "masked_url", "check_url",
           "open_gradebook", "knows_assignment"]

#: Seconds :func:`check_url` waits for a database server to answer.
CONNECT_TIMEOUT = 10

#: Driver module of each SQLAlchemy ``dialect+driver`` and how to install it.
_INSTALL = {
    "postgresql+psycopg": ("psycopg", "pip install -e '.[postgres]' (psycopg 3; or pip install 'psycopg[binary]')"),
    "postgresql+psycopg2": ("psycopg2", "pip install psycopg2-binary, or use postgresql:// (psycopg 3, "
                                        "pip install -e '.[postgres]')"),
}
_FORMS = ("postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (psycopg 3: pip install -e '.[postgres]') "
          "or sqlite:///ABSOLUTE/PATH.db")
_CHECKED: set[str] = set()


class GradebookError(RuntimeError):
    """The gradebook URL cannot be used: bad URL, unknown or missing driver, server unreachable."""


def normalize_url(url: str) -> str:
    """``url`` with a plain ``postgresql://`` or ``postgres://`` scheme spelled ``postgresql+psycopg://``.

    Every other URL (``sqlite:///...``, ``postgresql+psycopg2://...``, other databases) is
    returned unchanged (surrounding white space removed).
    """
    if not isinstance(url, str):
        raise GradebookError(f"gradebook URL must be a string, got {type(url).__name__}: {url!r}")
    url = url.strip()
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def masked_url(url: str) -> str:
    """``url`` for messages: its password replaced by ``***`` (the URL as given if it does not parse)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable: show a password-free prefix only
        head, sep, tail = str(url).partition("@")
        if sep and ":" in head.split("//", 1)[-1]:
            return head.rsplit(":", 1)[0] + ":***@" + tail
        return str(url)


def _reason(exc: BaseException, password: str | None) -> str:
    """The driver's own message, on one line, without the password."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    if password:
        text = text.replace(password, "***")
    return text


def check_url(url: str, timeout: float = CONNECT_TIMEOUT) -> str:
    """Check that the gradebook at ``url`` can be used; return the normalized URL (:func:`normalize_url`).

    Raises :class:`GradebookError` naming the URL (password masked) and the fix when the URL does
    not parse, SQLAlchemy knows no such ``dialect+driver``, the driver is not installed, or (for a
    server database) the server does not accept a connection within ``timeout`` seconds (down, wrong
    host or port, database missing, authentication failed). A SQLite URL must name a file in an
    existing folder; it is not opened here. A URL that passed once is not connected to again in
    this process.
    """
    from sqlalchemy import create_engine, exc as sa_exc
    from sqlalchemy.engine import make_url

    url = normalize_url(url)
    if url in _CHECKED:
        return url
    if not url:
        raise GradebookError(f"gradebook URL is empty: pass --db URL or set CNNLAB_GRADEBOOK_URL to {_FORMS}")
    shown = masked_url(url)
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise GradebookError(f"gradebook URL {shown!r} is not a database URL: expected {_FORMS}") from None
    try:
        dialect = parsed.get_dialect()
    except sa_exc.NoSuchModuleError:
        raise GradebookError(
            f"gradebook URL {shown}: SQLAlchemy has no database driver {parsed.drivername!r}; "
            f"use {_FORMS}") from None
    name = f"{parsed.get_backend_name()}+{dialect.driver}"
    module, install = _INSTALL.get(name, (dialect.driver, f"install the Python package of {name}"))
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise GradebookError(
            f"gradebook URL {shown} needs the database driver {module!r}, which is not installed "
            f"({exc}): {install}") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).parent.is_dir():
            raise GradebookError(f"gradebook URL {shown}: the folder {Path(db).parent} of the SQLite file "
                                 "does not exist")
        _CHECKED.add(url)
        return url
    connect_args = {"connect_timeout": max(1, int(timeout))} if parsed.get_backend_name() == "postgresql" else {}
    engine = create_engine(parsed, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    except sa_exc.DBAPIError as exc:
        reason = _reason(exc, parsed.password)
        if "does not exist" in reason and "database" in reason:
            todo = (f"create it (as the server's administrator: createdb -O {parsed.username or 'USER'} "
                    f"{parsed.database}) or fix the database name in the URL")
        elif "authentication failed" in reason or "password" in reason:
            todo = "check the user name and password in the URL (or the server's pg_hba.conf)"
        else:
            todo = ("start the database server, or fix the host and port in the URL (the server must "
                    "listen on that address: listen_addresses, firewall)")
        end = "" if reason.endswith((".", "?", "!")) else "."
        raise GradebookError(f"cannot connect to the gradebook {shown}: {reason}{end} To fix: {todo}. "
                             "The URL comes from --db or CNNLAB_GRADEBOOK_URL.") from None
    finally:
        engine.dispose()
    _CHECKED.add(url)
    return url


@contextlib.contextmanager
def open_gradebook(url: str, course_id: str = COURSE_ID):
    """nbgrader's :class:`~nbgrader.api.Gradebook` on ``url`` (checked first by :func:`check_url`).

    The environment's ``alembic`` script, which nbgrader runs to set up a database, is put on
    ``PATH`` meanwhile. ``course_id`` is the course nbgrader's own commands use (``cnnlab``). Two
    processes opening a fresh database at once race to create its tables and course; the loser
    tries again. Closed on exit.
    """
    from nbgrader.api import Gradebook, InvalidEntry
    from sqlalchemy import exc as sa_exc

    url = check_url(url)
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old])
    try:
        for attempt in range(4):
            try:
                gb = Gradebook(url, course_id=course_id)
                break
            except (InvalidEntry, sa_exc.IntegrityError, sa_exc.ProgrammingError, sqlite3.IntegrityError):
                if attempt == 3:
                    raise
                time.sleep(0.2 * (attempt + 1))
            except sa_exc.OperationalError as exc:   # the server went away since check_url
                _CHECKED.discard(url)
                from sqlalchemy.engine import make_url
                raise GradebookError(f"cannot open the gradebook {masked_url(url)}: "
                                     f"{_reason(exc, make_url(url).password)}") from None
        with gb:
            yield gb
    finally:
        os.environ["PATH"] = old


def knows_assignment(url: str, assignment: str) -> bool:
    """Whether the gradebook at ``url`` has ``assignment`` with its notebooks (i.e. it was released)."""
    from nbgrader.api import MissingEntry

    try:
        with open_gradebook(url) as gb:
            return len(gb.find_assignment(assignment).notebooks) > 0
    except MissingEntry:
        return False
