"""Engine-neutral database errors: what to catch for "busy", "interrupted" and "any database error".

Stages written against SQLite caught ``sqlite3`` exceptions; on PostgreSQL psycopg raises its own. Read the
tuples at the ``except`` clause through the module, never copy them with ``from ... import``::

    from monitor.db import errors as db_errors
    try:
        ...
    except db_errors.BUSY_ERRORS:
        ...

Why not plain constants: importing psycopg costs ~0.1 s, and SQLite-only processes (and installs without
psycopg) must not pay it. A psycopg exception can only be raised once psycopg is imported (``open_db`` of a
``postgresql://`` URL imports it), so each tuple is built when read (PEP 562 module ``__getattr__``) and has
the psycopg classes exactly when psycopg is loaded. An ``except`` clause's expression is evaluated only when
an exception reaches it, so reading the attribute there costs nothing on the normal path.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

ErrorTypes = tuple[type[BaseException], ...]

# SQLite's side of each tuple: exactly what the modules caught before, so SQLite behaviour does not change.
_SQLITE: dict[str, ErrorTypes] = {
    # "database is locked" past busy_timeout, "attempt to write a readonly database", disk trouble, and an
    # interrupted statement: all OperationalError (sqlite3 has no finer classes).
    "BUSY_ERRORS": (sqlite3.OperationalError,),
    # A statement stopped by a time budget (progress handler): OperationalError "interrupted"; see is_interrupted.
    "INTERRUPTED_ERRORS": (sqlite3.OperationalError,),
    # Anything the database raised (the scheduler lease's "keep trying" loops).
    "DATABASE_ERRORS": (sqlite3.Error,),
    # A transaction the server rolled back to resolve a conflict, to be run again from the start: none on SQLite
    # (BEGIN IMMEDIATE takes the one write lock before anything else, so two writers never wait on each other).
    "RETRY_ERRORS": (),
}


def _postgres(name: str, psycopg: Any) -> ErrorTypes:
    """psycopg's counterparts of :data:`_SQLITE`'s entries."""
    errors = psycopg.errors
    if name == "BUSY_ERRORS":
        # OperationalError is psycopg's class for the same kind of trouble as sqlite3's: lock_timeout
        # (LockNotAvailable), statement_timeout (QueryCanceled), deadlock / serialization failures
        # (TransactionRollback), a lost connection, a full disk. A read-only store is a hot standby or a
        # read-only transaction (ReadOnlySqlTransaction, an InternalError) or a role without write rights
        # (InsufficientPrivilege, a ProgrammingError), so those two are named.
        return (psycopg.OperationalError, errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege)
    if name == "INTERRUPTED_ERRORS":
        return (errors.QueryCanceled,)
    if name == "RETRY_ERRORS":
        # DeadlockDetected and SerializationFailure: scoped writers (monitor.db.pg.WRITE_LOCK) may meet on a
        # shared row such as a rollup's dirty mark; the server rolls one back, which can simply run again.
        return (errors.TransactionRollback,)
    return (psycopg.Error,)


def _build(name: str) -> ErrorTypes:
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not hasattr(psycopg, "errors"):  # not loaded (or half-loaded): no psycopg error exists
        return _SQLITE[name]
    return _SQLITE[name] + _postgres(name, psycopg)


def __getattr__(name: str) -> ErrorTypes:
    if name in _SQLITE:
        return _build(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_interrupted(exc: BaseException) -> bool:
    """True when ``exc`` is a statement stopped by its time budget: SQLite's progress handler ("interrupted")
    or PostgreSQL's statement_timeout / cancel (QueryCanceled). Other errors of the same classes are not."""
    if isinstance(exc, sqlite3.OperationalError):
        return "interrupted" in str(exc)
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.errors.QueryCanceled)


def connect_errors() -> ErrorTypes:
    """PostgreSQL's "could not connect / lost the server" errors (empty while psycopg is not loaded): the CLI
    turns them into one line. SQLite has no counterpart worth a line: a path that cannot be opened is a bug
    report's traceback, as it always was."""
    psycopg = sys.modules.get("psycopg")
    return (psycopg.OperationalError,) if psycopg is not None and hasattr(psycopg, "OperationalError") else ()


__all__ = [  # noqa: F822
    "BUSY_ERRORS", "DATABASE_ERRORS", "INTERRUPTED_ERRORS", "RETRY_ERRORS", "ErrorTypes", "connect_errors",
    "is_interrupted",
]  # fmt: skip
