"""A PostgreSQL database with the small part of sqlite-utils' ``Database`` API the store layer uses.

``execute`` / ``query`` take the code's SQLite-style SQL (``?`` / ``:name`` marks, see
:mod:`monitor.db.params`); ``atomic()`` is the counterpart of ``BEGIN IMMEDIATE``; ``db["table"]`` gives
the few table helpers (``exists``, ``columns_dict``, ``count``, ``rows``, ``insert``, ``insert_all``,
``upsert``) that stages call today, so they can move to PostgreSQL before their SQL moves into the store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq

from monitor.db.dialect import POSTGRESQL, Dialect
from monitor.db.params import adapt
from monitor.db.url import check_url, redact

# One database-wide advisory lock: the counterpart of SQLite's single writer (BEGIN IMMEDIATE). A write
# transaction without a scope takes it exclusively: the stages' read-then-write transactions (rollup recounts,
# alert claims, the queue's compare-and-set) were written against that guarantee, and keep it unchanged.
# A transaction reviewed to touch only its own rows (one source's mentions, the classification claims, one
# lease) names a scope instead: it takes WRITE_LOCK *shared* plus an exclusive lock on its scope, so writers of
# different scopes run side by side while an unscoped transaction still waits for all of them and they for it
# (a waiting exclusive request queues new shared ones behind it: a recount is not starved). Reads never wait.
WRITE_LOCK = 0x6D6F6E69746F72  # "monitor"
# The class of the per-scope locks: the two-int form of pg_advisory_xact_lock, a key space apart from
# WRITE_LOCK's bigint key; the scope's hashtext() is the other int (a collision only serialises two scopes).
SCOPE_LOCKS = 0x6D6F6E69

# Rows per multi-row insert (PgTable.insert_all / upsert_all), and the wire protocol's parameter limit.
ROWS_PER_STATEMENT = 500
MAX_PARAMETERS = 65535
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PY_TYPES = {"bigint": int, "integer": int, "smallint": int, "double precision": float, "real": float,
             "numeric": float, "text": str, "boolean": bool}  # fmt: skip


def quote_ident(name: str) -> str:
    """A table or column name for SQL. Names come from code, never from users; anything else is refused."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


class PgDatabase:
    """One psycopg connection in autocommit mode: a statement outside ``atomic()`` commits on its own, as
    with sqlite-utils; ``atomic()`` groups statements in one transaction (nested: a savepoint)."""

    dialect: Dialect = POSTGRESQL

    def __init__(self, conn: psycopg.Connection, url: str) -> None:
        self.conn = conn
        self.url = url

    def __repr__(self) -> str:
        return f"<PgDatabase {redact(self.url)}>"

    # ------------------------------------------------------------- statements
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> psycopg.Cursor:
        query, values = adapt(sql, params)
        return self.conn.execute(query, values)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        query, _ = adapt(sql, rows[0])
        with self.conn.cursor() as cursor:
            cursor.executemany(query, rows)

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        cursor = self.execute(sql, params)
        if cursor.description is None:
            return
        names = [column.name for column in cursor.description]
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != pq.TransactionStatus.IDLE

    @contextmanager
    def atomic(self, scope: str | None = None) -> Iterator[PgDatabase]:
        """A write transaction holding :data:`WRITE_LOCK`: exclusively, or with ``scope`` shared plus that scope's
        own lock (see :data:`WRITE_LOCK`). Inside another transaction: a savepoint that joins the outer one's
        locks (a nested ``scope`` adds its own lock; a lock cannot be upgraded to exclusive there)."""
        if self.in_transaction:
            with self.conn.transaction():
                if scope is not None:
                    self.conn.execute("select pg_advisory_xact_lock(%s, hashtext(%s))", [SCOPE_LOCKS, scope])
                yield self
            return
        with self.conn.transaction():
            if scope is None:
                self.conn.execute("select pg_advisory_xact_lock(%s)", [WRITE_LOCK])
            else:
                self.conn.execute(
                    "select pg_advisory_xact_lock_shared(%s), pg_advisory_xact_lock(%s, hashtext(%s))",
                    [WRITE_LOCK, SCOPE_LOCKS, scope],
                )
            yield self

    @contextmanager
    def statement_timeout(self, seconds: float) -> Iterator[PgDatabase]:
        """A transaction (inside another one: a savepoint) in which each statement is cancelled after ``seconds``
        with ``QueryCanceled`` (in ``monitor.db.errors.INTERRUPTED_ERRORS``): the counterpart of the SQLite
        progress handler behind the inbox's ``Budget``. For reads: it does not take :data:`WRITE_LOCK`.

        ``set local`` (here ``set_config(..., true)``, which takes the value as a parameter) ends with the
        transaction; in a savepoint it would outlive the savepoint's release, so the setting it replaced is put
        back. A cancelled statement rolls the savepoint back, and the setting with it."""
        milliseconds = max(1, math.ceil(seconds * 1000))  # 0 would mean "no limit"
        nested = self.in_transaction
        with self.conn.transaction():
            previous = None
            if nested:
                previous = self.conn.execute("select current_setting('statement_timeout')").fetchone()[0]
            self.conn.execute("select set_config('statement_timeout', %s, true)", [f"{milliseconds}ms"])
            yield self
            if nested:
                self.conn.execute("select set_config('statement_timeout', %s, true)", [previous])

    # ---------------------------------------------------------------- schema
    def table_names(self) -> list[str]:
        rows = self.conn.execute(
            "select tablename from pg_catalog.pg_tables where schemaname = current_schema() order by tablename"
        )
        return [row[0] for row in rows]

    def __getitem__(self, name: str) -> PgTable:
        return PgTable(self, name)

    def close(self) -> None:
        self.conn.close()


class PgTable:
    """The sqlite-utils ``Table`` methods the stages use, with the same meaning."""

    def __init__(self, db: PgDatabase, name: str) -> None:
        self.db = db
        self.name = name
        self.quoted = quote_ident(name)
        self.last_pk: Any = None

    def exists(self) -> bool:
        return self.db.conn.execute("select to_regclass(%s) is not null", [self.quoted]).fetchone()[0]

    @property
    def columns_dict(self) -> dict[str, type]:
        rows = self.db.conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = current_schema() and table_name = %s order by ordinal_position",
            [self.name],
        )
        return {name: _PY_TYPES.get(kind, str) for name, kind in rows}

    @property
    def pks(self) -> list[str]:
        rows = self.db.conn.execute(
            "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
            "and a.attnum = any(i.indkey) where i.indrelid = %s::regclass and i.indisprimary "
            "order by array_position(i.indkey, a.attnum)",
            [self.quoted],
        )
        return [row[0] for row in rows]

    @property
    def count(self) -> int:
        return self.db.conn.execute(f"select count(*) from {self.quoted}").fetchone()[0]

    @property
    def rows(self) -> Iterator[dict[str, Any]]:
        # Primary-key order: SQLite's rowid order, which callers (and tests) rely on.
        order = ", ".join(quote_ident(k) for k in self.pks)
        return self.db.query(f"select * from {self.quoted}" + (f" order by {order}" if order else ""))

    def insert(self, record: Mapping[str, Any], replace: bool = False) -> PgTable:
        """Insert one row (``replace``: overwrite the row with the same primary key); ``last_pk`` is its key."""
        pks = self.pks
        self.last_pk = None  # stays None when nothing was written (or the table has no key)
        on_conflict = (lambda columns: self._on_conflict(pks, columns)) if replace else None
        self._insert_rows([record], list(record), on_conflict, pks)
        return self

    def insert_all(self, records: Iterable[Mapping[str, Any]], replace: bool = False) -> PgTable:
        """Insert rows (``replace``: overwrite rows with the same primary key), many per statement."""
        pks = self.pks
        self._insert_chunks(records, pks, (lambda columns: self._on_conflict(pks, columns)) if replace else None, pks)
        return self

    def upsert(self, record: Mapping[str, Any], pk: str | Sequence[str]) -> PgTable:
        """Insert, or update the given columns of the row with this key (other columns are kept)."""
        keys = [pk] if isinstance(pk, str) else list(pk)
        self._insert_rows([record], list(record), lambda columns: self._on_conflict(keys, columns), [])
        self.last_pk = record[keys[0]] if len(keys) == 1 else tuple(record[k] for k in keys)
        return self

    def update(self, pk_value: Any, updates: Mapping[str, Any]) -> PgTable:
        """Set ``updates`` on the row whose primary key is ``pk_value`` (a tuple for a compound key)."""
        keys = self.pks
        values = list(pk_value) if isinstance(pk_value, tuple | list) else [pk_value]
        if len(values) != len(keys):
            raise ValueError(f"{self.name}: the primary key has {len(keys)} column(s), got {len(values)} value(s)")
        if updates:
            columns = list(updates)
            self.db.execute(
                f"update {self.quoted} set {', '.join(f'{quote_ident(c)} = ?' for c in columns)} "
                f"where {' and '.join(f'{quote_ident(k)} = ?' for k in keys)}",
                [*(updates[c] for c in columns), *values],
            )
        self.last_pk = pk_value
        return self

    def upsert_all(self, records: Iterable[Mapping[str, Any]], pk: str | Sequence[str]) -> PgTable:
        """Insert, or update the given columns of the rows with these keys, many per statement."""
        keys = [pk] if isinstance(pk, str) else list(pk)
        last = self._insert_chunks(records, keys, lambda columns: self._on_conflict(keys, columns), [])
        if last is not None:
            self.last_pk = last[keys[0]] if len(keys) == 1 else tuple(last[k] for k in keys)
        return self

    def _insert_chunks(
        self,
        records: Iterable[Mapping[str, Any]],
        keys: list[str],
        on_conflict: Callable[[list[str]], str] | None,
        returning: list[str],
    ) -> Mapping[str, Any] | None:
        """Write ``records`` as multi-row inserts: one round trip, and one call of the statement-level rollup
        triggers, per chunk rather than per row. Rows travel in order; a chunk ends where the columns change, at
        ROWS_PER_STATEMENT or the protocol's parameter limit, and before a key it already holds (one statement
        may not update a row twice), so a repeated key still ends as its last record, as row by row. Returns the
        last record."""
        last = None
        with self.db.atomic():
            chunk: list[Mapping[str, Any]] = []
            columns: list[str] = []
            held: set[tuple[Any, ...]] = set()
            for record in records:
                names = list(record)
                key = tuple(record.get(k) for k in keys) if keys and all(k in record for k in keys) else None
                limit = min(ROWS_PER_STATEMENT, MAX_PARAMETERS // max(1, len(names)))
                if chunk and (names != columns or len(chunk) >= limit or (key is not None and key in held)):
                    self._insert_rows(chunk, columns, on_conflict, returning)
                    chunk, held = [], set()
                columns = names
                chunk.append(record)
                if key is not None:
                    held.add(key)
                last = record
            if chunk:
                self._insert_rows(chunk, columns, on_conflict, returning)
        return last

    def _insert_rows(
        self,
        rows: list[Mapping[str, Any]],
        columns: list[str],
        on_conflict: Callable[[list[str]], str] | None,
        returning: list[str],
    ) -> None:
        row_marks = "(" + ", ".join("?" * len(columns)) + ")"
        sql = (
            f"insert into {self.quoted} ({', '.join(quote_ident(c) for c in columns)}) values "
            + ", ".join([row_marks] * len(rows))
            + (on_conflict(columns) if on_conflict else "")
            + (f" returning {', '.join(quote_ident(k) for k in returning)}" if returning else "")
        )
        cursor = self.db.execute(sql, [row[c] for row in rows for c in columns])
        if returning:
            written = cursor.fetchall()
            if written:
                self.last_pk = written[-1][0] if len(returning) == 1 else tuple(written[-1])

    @staticmethod
    def _on_conflict(keys: list[str], columns: list[str]) -> str:
        if not keys:
            raise ValueError("replace/upsert needs a primary key")
        updates = [c for c in columns if c not in keys]
        target = ", ".join(quote_ident(k) for k in keys)
        if not updates:
            return f" on conflict ({target}) do nothing"
        return f" on conflict ({target}) do update set " + ", ".join(
            f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in updates
        )


def connect(url: str) -> PgDatabase:
    """Connect to ``url`` (checked: no password in it; libpq reads PGPASSWORD / ~/.pgpass)."""
    check_url(url)
    conn = psycopg.connect(url, **CONNECT_OPTIONS)
    return PgDatabase(conn, url)


# prepare_threshold=None: no server-side prepared statements. psycopg prepares a query after its fifth run, and
# PostgreSQL then switches a prepared query to one generic plan when that looks no costlier on average: the inbox's
# search with a location filter went from 33 ms (a plan for the value) to 200-490 ms on a 1,000,000-mention store.
# Our queries are planned in well under a millisecond; the plan fitted to the values is worth it every time.
CONNECT_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "application_name": "mention-monitor",
    "connect_timeout": 10,
    "prepare_threshold": None,
}
