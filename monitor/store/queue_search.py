"""The inbox's queue queries: filter conditions, full-text search plans, list pages and tab counts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from monitor.db import dialect_of
from monitor.db.dialect import SQLITE, Dialect
from monitor.store.queue_items import LOCATION_SQL, OPEN_STATES, STATES, Budget

DUE_SOON = timedelta(hours=1)  # an open item due within this is "due soon"

LIST_SQL = f"""
select q.id, q.state, q.priority, q.reason, q.sla_due_at, q.assignee, q.created_at, q.first_replied_at,
       m.id as mention_id, m.source, m.external_id, m.kind, m.author, m.author_reach, m.title, m.text, m.rating,
       m.url, m.posted_at, m.brand, {LOCATION_SQL} as location, coalesce(c.lang, m.lang) as lang, m.parent_id,
       c.label, c.score, c.topics, c.urgency
from queue_items q join mentions m on m.id = q.mention_id
left join classifications c on c.mention_id = m.id
"""

# How the full-text condition is joined with the queue, by how many mentions match (see choose_search_plan):
SEARCH_CONDITIONS = {
    # read every match, join the queue, sort: cheap while matches are few
    "matches": "m.id in (select rowid from mentions_fts where mentions_fts match ?)",
    # walk the queue by priority against the match set built once ('+' keeps SQLite from driving by it)
    "queue_set": "+q.mention_id in (select rowid from mentions_fts where mentions_fts match ?)",
    # walk the queue by priority, asking the index about each row: best when most rows match
    "queue_probe": "exists (select 1 from mentions_fts f where f.rowid = q.mention_id and mentions_fts match ?)",
}


@dataclass
class QueueFilter:
    """Which queue items a query reads; every field narrows it."""

    states: tuple[str, ...] = OPEN_STATES
    source: str | None = None
    location: str | None = None
    brand: str | None = None
    label: str | None = None
    topic: str | None = None
    assignee: str | None = None
    sla: str | None = None  # one of "overdue", "due_soon", "on_time", "no_clock"
    search: str | None = None


def _without_controls(text: str) -> str:
    # Control characters (Cc) and lone surrogates become spaces: FTS5 reads a NUL as the end of the query
    # ("unterminated string"), PostgreSQL text cannot hold one, a surrogate cannot be encoded, and the tokenizers
    # split on the rest anyway.
    return "".join(" " if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 else c for c in text)


def search_text(text: str) -> str:
    """The PostgreSQL search parameter (``Dialect.fts_match``): plainto_tsquery reads it as plain words, every one
    required, so quotes, ``*``, ``NEAR`` or ``OR`` are no syntax and need no quoting (SQLite: ``fts_query``)."""
    return _without_controls(text)


def fts_query(text: str) -> str:
    """The SQLite FTS5 query for what a person typed: every term quoted, so user input cannot use FTS syntax."""
    text = _without_controls(text)
    terms = [t.replace('"', '""') for t in text.split()]
    return " ".join(f'"{t}"' for t in terms) or '""'


def unknown_state(states: tuple[str, ...]) -> str | None:
    """The first of ``states`` that is no queue state ("(none)" when there are none), or None when all are."""
    unknown = set(states) - set(STATES)
    if unknown or not states:
        return sorted(unknown)[0] if unknown else "(none)"
    return None


def filter_where(
    filters: QueueFilter,
    now: datetime,
    search_plan: str = "matches",
    dialect: Dialect = SQLITE,
    matched: list[int] | None = None,
) -> tuple[str, list[Any]]:
    """SQL conditions over ``q`` (queue_items), ``m`` (mentions) and ``c`` (classifications), and parameters.
    ``search_plan`` says how the full-text condition is written (SQLite: see ``choose_search_plan``; PostgreSQL:
    ``matches`` or ``queue_set``). ``matched``: the open items matching the search (``open_matching_ids``) stand in
    for the search when only open states are asked for."""
    bad = unknown_state(filters.states)
    if bad is not None:
        raise ValueError(f"unknown queue state {bad}")
    # States are inlined (checked above): the open-items partial index only matches a literal IN.
    clauses = [f"q.state in ({', '.join(repr(s) for s in filters.states)})"]
    params: list[Any] = []
    for column, value in (
        ("m.source", filters.source),
        (LOCATION_SQL, filters.location),
        ("m.brand", filters.brand),
        ("c.label", filters.label),
        ("q.assignee", filters.assignee),
    ):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if filters.topic:
        if dialect.postgres:
            # The helper reads a malformed list as empty, where SQLite's json_each raises.
            clauses.append(f"exists (select 1 from {dialect.json_array_values('c.topics')} j where j.value = ?)")
        else:
            clauses.append("exists (select 1 from json_each(c.topics) where value = ?)")
        params.append(filters.topic)
    if filters.sla == "overdue":
        clauses.append("q.sla_due_at < ?")
        params.append(now.isoformat())
    elif filters.sla == "due_soon":
        clauses.append("q.sla_due_at >= ? and q.sla_due_at < ?")
        params += [now.isoformat(), (now + DUE_SOON).isoformat()]
    elif filters.sla == "on_time":
        clauses.append("q.sla_due_at >= ?")
        params.append((now + DUE_SOON).isoformat())
    elif filters.sla == "no_clock":
        clauses.append("q.sla_due_at is null")
    if filters.search:
        if matched is not None and set(filters.states) <= set(OPEN_STATES):
            clauses.append("q.id = any(cast(? as bigint[]))")
            params.append(matched)
        elif dialect.postgres:
            # "queue_set": each queued item's document is matched on its own (the operator's function form,
            # which no index serves), so the planner drives from the queue; "matches": the GIN index.
            clauses.append(dialect.fts_match("m", per_item=search_plan == "queue_set"))
            params.append(search_text(filters.search))
        else:
            clauses.append(SEARCH_CONDITIONS[search_plan])
            params.append(fts_query(filters.search))
    return " and ".join(clauses), params


def count_matches(db: sqlite_utils.Database, search: str, cap: int) -> int:
    """SQLite: how many mentions match ``search`` (what a person typed), counted up to ``cap``."""
    count_sql = "select count(*) from (select 1 from mentions_fts where mentions_fts match ? limit ?)"
    return db.execute(count_sql, [fts_query(search), cap]).fetchone()[0]


def count_in_states(db: sqlite_utils.Database, states: tuple[str, ...], cap: int) -> int:
    """How many items are in ``states``, counted up to ``cap`` (index only)."""
    marks = ", ".join("?" * len(states))
    sql = f"select count(*) from (select 1 from queue_items where state in ({marks}) limit ?) as capped"
    return db.execute(sql, [*states, cap]).fetchone()[0]


def list_page(
    db: sqlite_utils.Database,
    filters: QueueFilter,
    now: datetime,
    plan: str,
    matched: list[int] | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """A page of the items ``filters`` selects, most urgent first, the search met by ``plan``."""
    dialect = dialect_of(db)
    where, params = filter_where(filters, now, plan, dialect, matched)
    sql = LIST_SQL
    if plan != "matches" and not dialect.postgres:
        # CROSS JOIN makes the queue the outer loop, read in priority order.
        sql = sql.replace("from queue_items q join mentions m", "from queue_items q cross join mentions m")
    # q.id last: ties keep one order whichever plan runs, so pages neither repeat nor skip items. An item with no
    # clock sorts before a clocked one of equal priority, as SQLite sorts NULL first (PostgreSQL: last).
    due = "q.sla_due_at nulls first" if dialect.postgres else "q.sla_due_at"
    sql += " where " + where + f" order by q.priority desc, {due}, q.id limit ? offset ?"
    return list(db.query(sql, [*params, limit, offset]))


def listed_item(db: sqlite_utils.Database, item_id: int) -> dict[str, Any] | None:
    """One item as a list page shows it, or None."""
    rows = list(db.query(LIST_SQL + " where q.id = ?", [item_id]))
    return rows[0] if rows else None


def open_matching_ids(db: sqlite_utils.Database, search: str) -> list[int]:
    """PostgreSQL: the ids of the open items whose mention matches ``search``, each item matched on its own."""
    dialect = dialect_of(db)
    states = ", ".join(repr(s) for s in OPEN_STATES)
    sql = (f"select q.id from queue_items q join mentions m on m.id = q.mention_id "
           f"where q.state in ({states}) and {dialect.fts_match('m', per_item=True)}")  # fmt: skip
    return [row[0] for row in db.execute(sql, [search_text(search)])]


# ---------------------------------------------------------------- the inbox's tab counts


def _open_search(
    db: sqlite_utils.Database, where: str, params: list[Any], search: str, probe_ratio: int
) -> tuple[str, list[Any]]:
    """The open items' search condition: the matches within the open items' mention ids (open items are the
    newest few, so a common word's 400,000 matches shrink to a few thousand) read once into a set, or, when even
    those number ``probe_ratio`` per open item or more, the full-text index probed per open item."""
    query = fts_query(search)
    low, high, count = db.execute(
        f"select min(q.mention_id), max(q.mention_id), count(*) from queue_items q where {where}", params
    ).fetchone()
    if not count:
        return "0", []
    cap = probe_ratio * count
    matches = db.execute(
        "select count(*) from (select 1 from mentions_fts where mentions_fts match ? and rowid between ? and ? "
        "limit ?)",
        [query, low, high, cap],
    ).fetchone()[0]
    if matches < cap:
        return (
            "+q.mention_id in (select rowid from mentions_fts where mentions_fts match ? and rowid between ? and ?)",
            [query, low, high],
        )
    return SEARCH_CONDITIONS["queue_probe"], [query]


def _count_from(filters: QueueFilter, postgres: bool = False) -> str:
    """The FROM clause the counts need: the queue alone unless a filter reads the mention or its classification
    (on the first page that saves two look-ups per open item, about 18 ms of 23 on 1M mentions; a search reads the
    full-text index by the item's mention id on SQLite, the mention's document on PostgreSQL). Every item has its
    mention (the queue is made from mentions, which are never deleted), so leaving the join out drops nothing."""
    sql = "from queue_items q"
    searched = postgres and bool(filters.search)
    if filters.source or filters.location or filters.brand or filters.label or filters.topic or searched:
        sql += " join mentions m on m.id = q.mention_id"
        if filters.label or filters.topic:
            sql += " left join classifications c on c.mention_id = m.id"
    return sql


def open_sla_grid(
    db: sqlite_utils.Database,
    filters: QueueFilter,
    now: datetime,
    matched: list[int] | None = None,
    per_item: bool = False,
    probe_ratio: int = 100,
) -> dict[tuple[str, str], int]:
    """The open items under ``filters``' conditions other than state and SLA status, counted per (state, SLA
    status: ``no_clock``, ``overdue``, ``due_soon`` or ``on_time``) in one GROUP BY.

    A search: on PostgreSQL the open items in ``matched`` (from ``open_matching_ids``), else each mention's
    document matched item by item (``per_item``) or through the index; on SQLite the matches within the open items'
    id range (``_open_search``, ``probe_ratio``)."""
    dialect = dialect_of(db)
    soon = (now + DUE_SOON).isoformat()
    base = replace(filters, states=OPEN_STATES, sla=None, search=None)
    where, params = filter_where(base, now, dialect=dialect)
    bucket = (
        "case when q.sla_due_at is null then 'no_clock' when q.sla_due_at < ? then 'overdue' "
        "when q.sla_due_at < ? then 'due_soon' else 'on_time' end"
    )
    join = _count_from(filters, dialect.postgres)
    if filters.search and dialect.postgres and matched is not None:
        where, params = f"{where} and q.id = any(cast(? as bigint[]))", [*params, matched]
    elif filters.search and dialect.postgres:
        where, params = f"{where} and {dialect.fts_match('m', per_item)}", [*params, search_text(filters.search)]
    elif filters.search:
        # The id range is over the open items that pass the filters on the queue row alone (cheap to read).
        queue_only = filter_where(QueueFilter(states=OPEN_STATES, assignee=filters.assignee), now)
        condition, extra = _open_search(db, *queue_only, filters.search, probe_ratio)
        where, params = f"{where} and {condition}", [*params, *extra]
    # CROSS JOIN: the open items (a few thousand) drive; SQLite would otherwise start from, say, every mention
    # of a source (~125,000 on the bench store) when a source filter is set. (PostgreSQL has no such hint.)
    open_from = join
    if not dialect.postgres:
        open_from = join.replace("from queue_items q join mentions m", "from queue_items q cross join mentions m")
    sql = f"select q.state, {bucket} as sla, count(*) {open_from} where {where} group by 1, 2"
    grid: dict[tuple[str, str], int] = {}
    for state, sla, n in db.execute(sql, [now.isoformat(), soon, *params]).fetchall():
        grid[(state, sla)] = n
    return grid


def handled_count(budget: Budget, filters: QueueFilter, state: str, now: datetime, cap: int) -> int | None:
    """The items in ``state`` under ``filters``' conditions other than state and SLA status, counted up to ``cap``
    within ``budget``; None when it ran out of time. With a search on SQLite the count reads the matches in index
    order and stops at the cap (driving from the queue would probe the index per handled item)."""
    dialect = dialect_of(budget.db)
    join = _count_from(filters, dialect.postgres)
    if filters.search and not dialect.postgres:
        # Driven by the full-text index (CROSS JOIN fixes the order): each match is looked up in the queue once.
        fts = "from mentions_fts f cross join queue_items q on q.mention_id = f.rowid"
        join = join.replace("from queue_items q", fts)
    closed = replace(filters, states=(state,), sla=None, search=None)
    where, params = filter_where(closed, now, dialect=dialect)
    if filters.search and dialect.postgres:
        where, params = f"{where} and {dialect.fts_match('m')}", [*params, search_text(filters.search)]
    elif filters.search:
        where, params = f"{where} and mentions_fts match ?", [*params, fts_query(filters.search)]
    # PostgreSQL requires a name for a subquery in FROM.
    capped_sql = f"select count(*) from (select 1 {join} where {where} limit ?)"
    rows = budget.run(capped_sql + (" as capped" if dialect.postgres else ""), [*params, cap])
    return rows[0][0] if rows else None
