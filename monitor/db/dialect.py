"""The SQL that differs between SQLite and PostgreSQL, as small fragments the store layer composes.

Each method returns the SQLite form exactly as the code writes it today (so moving a module onto these
helpers changes nothing on SQLite) and the PostgreSQL equivalent. Fragments take SQL *expressions*
(column names, ``?`` marks), never values: values always travel as parameters.

Forms both engines already share need no helper: ``insert ... on conflict (k) do update set ... =
excluded...`` / ``on conflict do nothing`` (use these instead of ``insert or replace`` / ``insert or
ignore``), ``returning``, ``coalesce``, ``nullif``, ``substr``, ``||``, ``count(*) filter (where ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

# A mention's stored search document (mentions_fts, migration 14), read by primary key.
PG_FTS_DOCUMENT = "(select s.doc from mentions_fts s where s.mention_id = {m}.id)"


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" or "postgresql"

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    # ------------------------------------------------------------ full text
    def fts_match(self, alias: str = "m", per_item: bool = False) -> str:
        """A condition true when mention ``alias`` matches the search terms in the next ``?``.

        SQLite: FTS5 on ``mentions_fts`` (the parameter is an FTS5 query: quote terms first, see
        :func:`fts_terms`). PostgreSQL: the mention's tsvector against ``plainto_tsquery`` (plain text,
        nothing to quote: every word must appear, as with SQLite's quoted terms); with ``per_item`` the same test
        in the ``@@`` operator's function form, ``ts_match_vq``, which no index serves, so the planner drives from
        the other tables (the inbox's small queue set) instead of reading every match from the GIN index."""
        if self.postgres:
            if per_item:
                return f"ts_match_vq({PG_FTS_DOCUMENT.format(m=alias)}, plainto_tsquery('simple', ?))"
            return f"{alias}.id in (select mention_id from mentions_fts where doc @@ plainto_tsquery('simple', ?))"
        return f"{alias}.id in (select rowid from mentions_fts where mentions_fts match ?)"

    def fts_rank(self, alias: str = "m") -> str:
        """An ORDER BY expression, best match first (needs the search terms as the next ``?``)."""
        if self.postgres:
            return f"ts_rank({PG_FTS_DOCUMENT.format(m=alias)}, plainto_tsquery('simple', ?)) desc"
        return f"(select f.rank from mentions_fts f where mentions_fts match ? and f.rowid = {alias}.id)"

    def fts_terms(self, text: str) -> str:
        """The parameter for :meth:`fts_match` from what a person typed: every term quoted on SQLite (so
        ``OR``, ``"`` and ``*`` are words, not syntax); unchanged on PostgreSQL (plainto_tsquery)."""
        if self.postgres:
            return text
        terms = [t for t in text.split() if t]
        return " ".join('"' + t.replace('"', '""') + '"' for t in terms)

    # ------------------------------------------------------------- JSON text
    def json_array_values(self, expr: str) -> str:
        """A row source (``from ... j``) of the text values of a JSON list stored as text; an empty set for
        anything that is not a JSON list. Use as ``{fragment} j`` and read ``j.value``."""
        if self.postgres:
            return f"jsonb_array_elements_text(monitor_json_array({expr}))"
        return (
            f"json_each(case when not json_valid({expr}) then '[]' when json_type({expr}) = 'array' "
            f"then {expr} else '[]' end)"
        )

    def json_item(self, expr: str, index: int) -> str:
        """Element ``index`` of a JSON list (text) as text."""
        if self.postgres:
            return f"(({expr})::jsonb ->> {int(index)})"
        return f"json_extract({expr}, '$[{int(index)}]')"

    # ----------------------------------------------------------------- time
    def utc_hour(self, expr: str) -> str:
        """``YYYY-MM-DDTHH`` in UTC of an ISO 8601 text time (an offset is applied); NULL when unparseable."""
        if self.postgres:
            return f"monitor_utc_hour({expr})"
        return f"strftime('%Y-%m-%dT%H', {expr})"

    def epoch_seconds(self, expr: str) -> str:
        """Seconds since 1970 (fractional) of an ISO 8601 text time, for time arithmetic (julianday on SQLite)."""
        if self.postgres:
            return f"monitor_epoch({expr})"
        return f"((julianday({expr}) - 2440587.5) * 86400.0)"

    # ------------------------------------------------------------- scalars
    def greatest(self, *exprs: str) -> str:
        """Scalar max of several expressions. SQLite's ``max(a, b)`` is NULL if any is NULL; PostgreSQL's
        ``greatest`` ignores NULLs: wrap arguments in coalesce where a NULL can occur."""
        return f"{'greatest' if self.postgres else 'max'}({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"{'least' if self.postgres else 'min'}({', '.join(exprs)})"

    def string_agg(self, expr: str, sep: str = ",") -> str:
        """Aggregate values as one text (``sep`` is a literal the code chooses, never user input)."""
        quoted = "'" + sep.replace("'", "''") + "'"
        if self.postgres:
            return f"string_agg(({expr})::text, {quoted})"
        return f"group_concat({expr}, {quoted})"

    def like_nocase(self) -> str:
        """SQLite's LIKE ignores ASCII case; PostgreSQL's does not."""
        return "ilike" if self.postgres else "like"

    @property
    def no_limit(self) -> str:
        """A LIMIT that limits nothing (SQLite uses it to stop subquery flattening)."""
        return "limit all" if self.postgres else "limit -1"


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


def upsert_sql(
    table: str, columns: list[str] | tuple[str, ...], keys: list[str] | tuple[str, ...], rows: int = 1
) -> str:
    """``insert into table (columns) values (?, ...), ... on conflict (keys) do update set c = excluded.c`` for
    ``rows`` rows: the common form (both engines) of ``insert_all(replace=True)`` as ONE statement, where the
    PostgreSQL adapter's ``insert_all`` sends a statement per row. Every non-key column given is overwritten,
    as ``insert or replace`` does when the rows carry every column. PostgreSQL refuses one key twice in a
    statement ("cannot affect row a second time"): callers pass distinct keys. Names come from code, never
    from users; anything but a plain ASCII identifier is refused."""
    for name in (table, *columns, *keys):
        if not (name.isascii() and name.isidentifier()):
            raise ValueError(f"not a plain SQL identifier: {name!r}")
    if rows < 1 or not keys or not set(keys) <= set(columns):
        raise ValueError("upsert_sql needs at least one row, and key columns among the columns")

    def quoted(names: list[str] | tuple[str, ...]) -> str:
        return ", ".join(f'"{name}"' for name in names)

    one = "(" + ", ".join("?" * len(columns)) + ")"
    updates = [c for c in columns if c not in keys]
    action = "do update set " + ", ".join(f'"{c}" = excluded."{c}"' for c in updates) if updates else "do nothing"
    return (
        f'insert into "{table}" ({quoted(columns)}) values {", ".join([one] * rows)} '
        f"on conflict ({quoted(keys)}) {action}"
    )


def local_day(dialect: Dialect, expr: str, shift: str) -> str:
    """The date (``YYYY-MM-DD``) of an ISO 8601 text time moved by ``shift``, an SQL expression (a mark) for a
    text such as ``'+330 minutes'``: SQLite's ``date(expr, shift)``; NULL when ``expr`` is not a time. For a
    local day, the shift is the zone's UTC offset in force (web/dashboard_data.py switches it at DST)."""
    if dialect.postgres:
        return f"to_char(monitor_utc_timestamp({expr}) + cast({shift} as interval), 'YYYY-MM-DD')"
    return f"date({expr}, {shift})"
