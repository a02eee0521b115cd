"""Reading the reply queue: the inbox's filtered, searched lists, one item's detail, SLA clocks in words, the
inbox's counts and an author's other mentions. State changes live in ``items.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from monitor.db import dialect_of
from monitor.db.dialect import SQLITE, Dialect
from monitor.queue.items import QueueError, parse_stored_time
from monitor.store import queue_items as queue_store
from monitor.store import queue_search
from monitor.store.mentions import mention_revisions
from monitor.store.queue_items import BUDGET_STEPS, OPEN_STATES, STATES, Budget
from monitor.store.queue_search import DUE_SOON

SLA_STATUSES = ("overdue", "due_soon", "on_time")
SLA_BUCKETS = (*SLA_STATUSES, "no_clock")  # what the inbox counts: the statuses, and items with no clock


def _check_states(states: tuple[str, ...]) -> None:
    bad = queue_search.unknown_state(states)
    if bad is not None:
        raise QueueError(f"unknown queue state {bad}")


@dataclass
class InboxFilter(queue_search.QueueFilter):
    """What the inbox (or ``monitor queue list``) shows; every field narrows the list. The fields are
    ``QueueFilter``'s: ``states``, ``source``, ``location``, ``brand``, ``label``, ``topic``, ``assignee``, ``sla``
    (one of SLA_BUCKETS) and ``search``."""

    def where(
        self, now: datetime, search_plan: str = "matches", dialect: Dialect = SQLITE, matched: list[int] | None = None
    ) -> tuple[str, list[Any]]:
        """SQL conditions and parameters. ``search_plan`` says how the full-text condition is written (SQLite: see
        ``choose_search_plan``; PostgreSQL: ``matches`` or ``queue_set``). ``matched``: the open items matching the
        search, from :func:`open_matches`, stand in for the search when only open states are asked for."""
        _check_states(self.states)
        return queue_search.filter_where(self, now, search_plan, dialect, matched)


# Thresholds on the number of mentions a search matches, measured with bench/inbox.py on 1M mentions:
# reading the matches costs ~1.3 µs each, building a match set ~0.15 µs each, probing the index ~25 µs
# per queue row (and a common word fills the first page after a few hundred rows).
FEW_MATCHES = 30_000
MANY_MATCHES = 300_000


def choose_search_plan(db: sqlite_utils.Database, search: str) -> str:
    """Pick how a search meets the queue from a capped count of its matches (a few ms at most)."""
    if queue_search.count_matches(db, search, FEW_MATCHES) < FEW_MATCHES:
        return "matches"
    if queue_search.count_matches(db, search, MANY_MATCHES) < MANY_MATCHES:
        return "queue_set"
    return "queue_probe"


def list_items(
    db: sqlite_utils.Database,
    states: tuple[str, ...] = OPEN_STATES,
    source: str | None = None,
    label: str | None = None,
    assignee: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
    filters: InboxFilter | None = None,
    now: datetime | None = None,
    matched: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Queue items, most urgent first. Pass ``filters`` for the full set of narrowing options, and ``matched`` from
    :func:`open_matches` when the page's counts use the same search."""
    filters = filters or InboxFilter(states=states, source=source, label=label, assignee=assignee, search=search)
    postgres = dialect_of(db).postgres
    # The plans exist because FTS5 cannot be combined with other indexes. PostgreSQL's planner combines the GIN
    # index with the queue's own, but it guesses a search of several words from each word's frequency alone and,
    # for words that go together ("rude kid": 55,916 matches guessed as 3,077 on 1,000,000 mentions), reads every
    # match (160 ms) rather than the few thousand open items (30 ms): a small queue set is matched item by item.
    if filters.search and postgres:
        plan = "queue_set" if matched is not None or _small_queue_set(db, filters) else "matches"
    else:
        plan = choose_search_plan(db, filters.search) if filters.search else "matches"
    _check_states(filters.states)
    return queue_search.list_page(
        db, filters, now or datetime.now(UTC), plan, matched if postgres else None, limit, offset
    )


# PostgreSQL: up to this many queued items in the filtered states are matched one by one (~6 µs an item).
PG_QUEUE_SET_MAX = 20_000


def open_matches(db: sqlite_utils.Database, filters: InboxFilter) -> list[int] | None:
    """PostgreSQL, a search over a small open queue: the ids of the open items whose mention matches ``filters``'
    search, found once for a page's list and its tab counts, which would otherwise each match every open item
    again (~6 µs an item). None where that does not apply (SQLite, no search, a queue past PG_QUEUE_SET_MAX)."""
    if not (filters.search and dialect_of(db).postgres):
        return None
    if not _small_queue_set(db, InboxFilter(states=OPEN_STATES)):
        return None
    return queue_search.open_matching_ids(db, filters.search)


def _small_queue_set(db: sqlite_utils.Database, filters: InboxFilter) -> bool:
    """Whether the items in ``filters``' states number at most PG_QUEUE_SET_MAX (an index-only count, stopped there)."""
    return queue_search.count_in_states(db, filters.states, PG_QUEUE_SET_MAX + 1) <= PG_QUEUE_SET_MAX


def _search_text(text: str) -> str:
    """The PostgreSQL search parameter (``Dialect.fts_match``): plain words, nothing quoted (SQLite: ``_fts_query``)."""
    return queue_search.search_text(text)


def _fts_query(text: str) -> str:
    """The SQLite FTS5 query for what a person typed: each term quoted, so user input cannot use FTS syntax."""
    return queue_search.fts_query(text)


def item_detail(db: sqlite_utils.Database, item_id: int) -> dict[str, Any]:
    item = queue_search.listed_item(db, item_id)
    if item is None:
        raise QueueError(f"no queue item {item_id}")
    item["events"] = queue_store.item_events(db, item_id)
    item["replies"] = queue_store.item_replies(db, item_id)
    item["revisions"] = mention_revisions(db, item["mention_id"])
    item["notes"] = queue_store.item_notes(db, item_id)
    item["recovery"] = queue_store.item_recovery(db, item_id)
    item["thread"] = thread_context(db, item["source"], item["external_id"], item["parent_id"])
    return item


def thread_context(
    db: sqlite_utils.Database, source: str, external_id: str, parent_id: str | None, limit: int = 20
) -> dict[str, Any]:
    """The post a comment answers, and the replies under this mention, as stored."""
    parent = queue_store.thread_parent(db, source, parent_id) if parent_id else None
    children = queue_store.thread_children(db, source, external_id, limit)
    return {"parent": parent, "children": children}


# ---------------------------------------------------------------- the inbox's counts, bulk actions, authors


def sla_clock(item: dict[str, Any], now: datetime) -> tuple[str, str]:
    """An item's SLA clock as (status, words): ("overdue", "3.5 h overdue"), ("due_soon", "due in 25 min"),
    ("on_time", "due in 5.0 h"), ("no_clock", "no SLA clock") for an untimed item, ("closed", "") once
    handled. The words use ``human_minutes``, the duration format of the CLI and the digest."""
    from monitor.queue.metrics import human_minutes  # late: metrics builds on this module

    if item.get("state") not in OPEN_STATES:
        return "closed", ""
    due = parse_stored_time(item.get("sla_due_at"))
    if due is None:
        return "no_clock", "no SLA clock"
    minutes = (due - now).total_seconds() / 60
    if minutes < 0:
        return "overdue", f"{human_minutes(-minutes)} overdue"
    return ("due_soon" if minutes < DUE_SOON.total_seconds() / 60 else "on_time"), f"due in {human_minutes(minutes)}"


COUNT_CAP = 1000  # handled items are counted up to this ("1000+"): a store keeps years of them
COUNT_BUDGET = 0.03  # seconds for all the handled-state counts of one page


@dataclass
class InboxCounts:
    """What the inbox's tabs show: items per state and, among the open states shown, per SLA status.

    Each facet applies every other filter: the state counts use the SLA filter, the SLA counts the state.
    A handled state's count is capped at COUNT_CAP (``capped``) or None when it could not be counted in time.
    """

    states: dict[str, int | None]
    sla: dict[str, int]
    capped: set[str]


# A full-text probe per queue row costs ~50 µs, reading a match into a set ~0.4 µs (bench/inbox.py, 1M mentions):
# the open items' counts read the matches when fewer than this many per open item fall in their id range.
PROBE_RATIO = 100


def inbox_counts(
    db: sqlite_utils.Database, filters: InboxFilter, now: datetime | None = None, matched: list[int] | None = None
) -> InboxCounts:
    """Counts per state and per SLA status for the inbox's tabs, under ``filters``' other conditions.

    The open items (a few thousand) are counted in one GROUP BY over state and SLA status; with a search, against
    the matches in their id range (SQLite; PROBE_RATIO). A handled state is counted up to COUNT_CAP within
    COUNT_BUDGET; with a search, by reading the matches in index order and stopping at the cap, which a common
    word reaches after a few thousand matches (driving from the queue would probe the index per handled item)."""
    now = now or datetime.now(UTC)
    per_item = False
    if filters.search and dialect_of(db).postgres and matched is None:
        # No id range: the open items are few by design (the inbox's work list), matched item by item as in
        # list_items, unless a neglected queue has grown past PG_QUEUE_SET_MAX.
        per_item = _small_queue_set(db, InboxFilter(states=OPEN_STATES))
    grid = queue_search.open_sla_grid(db, filters, now, matched, per_item, PROBE_RATIO)
    shown = set(filters.states) & set(OPEN_STATES) or set(OPEN_STATES)
    sla_counts = {s: sum(n for (st, b), n in grid.items() if b == s and st in shown) for s in SLA_BUCKETS}
    states: dict[str, int | None] = {
        s: sum(n for (st, b), n in grid.items() if st == s and (filters.sla is None or b == filters.sla))
        for s in OPEN_STATES
    }
    capped: set[str] = set()
    with Budget(db, COUNT_BUDGET, BUDGET_STEPS) as budget:
        for state in STATES:
            if state in OPEN_STATES:
                continue
            states[state] = queue_search.handled_count(budget, filters, state, now, COUNT_CAP)
            if states[state] == COUNT_CAP:
                capped.add(state)
    return InboxCounts(states=states, sla=sla_counts, capped=capped)


ANONYMOUS_AUTHORS = {"", "[deleted]", "[removed]", "anonymous"}
AUTHOR_LOOKUP_BUDGET = 0.05  # seconds; see Budget


def author_mentions(
    db: sqlite_utils.Database, sources: list[str], author: str | None, exclude_mention_id: int, limit: int = 10
) -> list[dict[str, Any]] | None:
    """The author's other mentions on the same platform (``sources``: its source names), newest first, with
    their queue item if any. None when the look-up ran out of time (a large store without an author index)."""
    if (author or "").strip().lower() in ANONYMOUS_AUTHORS or not sources:
        return []
    with Budget(db, AUTHOR_LOOKUP_BUDGET, BUDGET_STEPS) as budget:
        return queue_store.author_other_mentions(budget, sources, author, exclude_mention_id, limit)
