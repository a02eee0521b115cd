"""Reply-queue items: which mentions need an answer, how urgently, and their state.

Every complaint and every question becomes an item. Priority grows with
severity (rating, complaint probability, urgency flags), with the author's
reach, and as the SLA deadline approaches. Nothing here posts anything:
state changes record what a person did.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from monitor.config import QueueConfig
from monitor.db import dialect_of
from monitor.db import errors as db_errors
from monitor.db.dialect import SQLITE, Dialect
from monitor.shifts.localtime import EARLIEST
from monitor.store import utcnow, write_transaction

STATES = ("new", "assigned", "replied", "dismissed")
OPEN_STATES = ("new", "assigned")
TRANSITIONS = {
    "new": {"assigned", "replied", "dismissed"},
    "assigned": {"assigned", "replied", "dismissed", "new"},
    "replied": {"new"},
    "dismissed": {"new"},
}
REVIEW_KINDS = {"review"}
URGENT_FLAGS = {"safety_health", "legal_threat"}
URGENCY_WEIGHTS = {"safety_health": 3.0, "legal_threat": 2.5, "churn_threat": 1.0, "high_reach": 1.0, "question": 0.5}

# A mention's location: the configured one, else the one the shifts stage inferred (a Reddit post about the
# airport store). Everything that filters, groups or fills placeholders by location reads this.
LOCATION_SQL = (
    "coalesce(nullif(m.location, ''), (select e.location from incident_estimates e where e.mention_id = m.id))"
)


class QueueError(ValueError):
    pass


def _parse(ts: str | None) -> datetime | None:
    """A stored timestamp → aware datetime; None when missing or not a timestamp (a source's junk)."""
    if not ts:
        return None
    try:
        dt = datetime.fromisoformat(ts)
    except (ValueError, TypeError):
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# A post time more than this after we first saw the post is not a post time (a source's junk, a clock
# far off): the SLA clock then starts when we saw it.
POST_TIME_SLACK = timedelta(days=1)


def clock_start(posted_at: str | None, first_seen_at: str | None, now: datetime) -> datetime:
    """When an item's SLA clock starts: the post time, else when we first saw the post, else ``now``.

    A post time before 1970 or far after we first saw the post is junk (or hostile: an item "posted"
    in year 1 would be overdue for ever and top the queue), so the clock starts when we saw it.
    """
    posted, seen = _parse(posted_at), _parse(first_seen_at)
    try:
        if posted is not None and (posted < EARLIEST or (seen is not None and posted - POST_TIME_SLACK > seen)):
            posted = None
    except OverflowError:  # at the calendar's edge
        posted = None
    return posted or seen or now


def due_at(start: datetime, sla: timedelta) -> datetime:
    """``start + sla`` in UTC (stored due times compare as strings), or the last representable instant
    where that overflows (a post dated 9999-12-31)."""
    try:
        return (start + sla).astimezone(UTC)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def untimed_sql(db: sqlite_utils.Database) -> str:
    """SQL over ``q`` (queue_items) and ``m`` (mentions): 1 for an item with no SLA clock, else 0.

    A mention marked ``backfill`` has no trustworthy time (no date from the platform, or a years-old post
    found by a source's first crawl): it is queued and shown, but its clock would start at an arbitrary
    moment and breach as if new. New activity that reopens it is real, so a reopened item has a clock.
    Works before ``mentions.backfill`` exists (then nothing is untimed).
    """
    if "backfill" not in db["mentions"].columns_dict:
        return "false" if dialect_of(db).postgres else "0"
    return (
        "(coalesce(m.backfill, 0) = 1 and not exists (select 1 from queue_events ev "
        "where ev.queue_item_id = q.id and ev.action = 'new'))"
    )


def sla_for(kind: str | None, config: QueueConfig, source: str | None = None, flags: list[str] = ()) -> timedelta:
    """The answer-by time span: per source name, else per source type, else review/social; urgent flags shorten it."""
    sla = config.sla_review if kind in REVIEW_KINDS else config.sla_social
    source_type = config.source_types.get(source or "")
    if source in config.sla_by_source:
        sla = config.sla_by_source[source]
    elif source_type in config.sla_by_source:
        sla = config.sla_by_source[source_type]
    if URGENT_FLAGS.intersection(flags):
        sla = min(sla, config.sla_urgent)
    return sla


def severity(complaint_prob: float | None, rating: float | None, flags: list[str]) -> float:
    """0 (mild) upwards: complaint strength, low stars and urgency flags."""
    score = (complaint_prob or 0.0) * 2.0
    if rating is not None:
        score += max(0.0, 3.0 - rating)  # 1★ adds 2, 2★ adds 1
    score += sum(URGENCY_WEIGHTS.get(flag, 0.0) for flag in flags)
    return score


def priority(sev: float, reach: int | None, due: datetime | None, now: datetime, sla: timedelta) -> float:
    """Higher is more urgent. Overdue items keep climbing so they never sink; no ``due``, no clock."""
    reach_boost = math.log10(1 + max(reach or 0, 0)) / 2
    if due is None:
        return round(sev + reach_boost, 4)
    left = (due - now).total_seconds()
    window = max(sla.total_seconds(), 1.0)
    urgency = 1.0 - left / window if left > 0 else 1.0 + min(-left / window, 4.0)
    return round(sev + reach_boost + 2.0 * max(urgency, 0.0), 4)


@dataclass
class QueueCounts:
    created: int = 0
    reopened: int = 0
    assigned: int = 0
    recoveries: int = 0


def _signals(row: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
    """Class probabilities and urgency flags stored for a mention."""
    return (json.loads(row["probs"]) if row["probs"] else {}), json.loads(row["urgency"] or "[]")


def needs_reply(label: str, complaint_prob: float | None, flags: list[str], threshold: float) -> bool:
    return (label == "complaint" and (complaint_prob is None or complaint_prob >= threshold)) or "question" in flags


def refresh_queue(db: sqlite_utils.Database, config: QueueConfig, now: datetime | None = None) -> QueueCounts:
    """Create items for newly classified complaints/questions and recompute open priorities."""
    now = now or datetime.now(UTC)
    counts = QueueCounts()
    backfill = "m.backfill" if "backfill" in db["mentions"].columns_dict else "0"
    rows = db.query(
        "select m.id, m.source, m.kind, m.rating, m.author_reach, m.posted_at, m.first_seen_at, "
        f"{backfill} as backfill, c.label, c.probs, c.urgency "
        "from mentions m join classifications c on c.mention_id = m.id "
        "left join queue_items q on q.mention_id = m.id where q.id is null"
        # Items are numbered in mention order: SQLite's join returns that order, PostgreSQL's hash join need not.
        + (" order by m.id" if dialect_of(db).postgres else "")
    )
    new_items = []
    for row in rows:
        probs, flags = _signals(row)
        if not needs_reply(row["label"], probs.get("complaint"), flags, config.complaint_threshold):
            continue
        due = None
        if not row["backfill"]:  # no trustworthy time, no clock (see untimed_sql)
            start = clock_start(row["posted_at"], row["first_seen_at"], now)
            due = due_at(start, sla_for(row["kind"], config, row["source"], flags)).isoformat()
        new_items.append(
            {
                "mention_id": row["id"],
                "state": "new",
                "priority": 0.0,  # set with every open item's below
                "reason": "complaint" if row["label"] == "complaint" else "question",
                "sla_due_at": due,
                "assignee": None,
                "suggested_reply": None,
                "created_at": utcnow(),
                "updated_at": utcnow(),
            }
        )
    with write_transaction(db):
        for item in new_items:
            # The mention may have been queued by a concurrent refresh since the read above.
            if db.execute("select 1 from queue_items where mention_id = ?", [item["mention_id"]]).fetchone():
                continue
            item_id = db["queue_items"].insert(item).last_pk
            _log(db, item_id, "system", "created", item["reason"])
            counts.created += 1
    # Late imports: these modules build on this one.
    from monitor.queue.recovery import detect_recoveries
    from monitor.queue.team import auto_assign

    # Only what changed since the last refresh can reopen an item or be a recovery: read the newest
    # revision and mention ids first, look at rows above the previous marks, then move the marks.
    revision_high = db.execute("select coalesce(max(id), 0) from mention_revisions").fetchone()[0]
    mention_high = db.execute("select coalesce(max(id), 0) from mentions").fetchone()[0]
    since_revision, since_mention = _mark(db, "queue.revision_mark"), _mark(db, "queue.mention_mark")
    counts.recoveries = detect_recoveries(db, since_revision)
    counts.reopened = reopen_on_activity(db, config, now, since_revision, since_mention)
    with write_transaction(db):
        db["meta"].upsert_all(
            [{"key": "queue.revision_mark", "value": str(revision_high)},
             {"key": "queue.mention_mark", "value": str(mention_high)}],
            pk="key",
        )  # fmt: skip
    if config.auto_assign and config.team:
        # Every unassigned new item, not only this run's: a run killed before this line left some behind.
        counts.assigned = auto_assign(db, config.team, None, config.source_types)
    recompute_priorities(db, config, now)
    return counts


def recompute_priorities(db: sqlite_utils.Database, config: QueueConfig, now: datetime) -> None:
    """Every open item's priority as of ``now``. An untimed item (``untimed_sql``) loses a clock it was
    given before its mention was marked backfill, so it neither climbs nor shows as overdue."""
    rows = list(
        db.query(
            "select q.id, q.sla_due_at, m.source, m.kind, m.rating, m.author_reach, c.label, c.probs, c.urgency, "
            f"{untimed_sql(db)} as untimed from queue_items q join mentions m on m.id = q.mention_id "
            "left join classifications c on c.mention_id = m.id where q.state in ('new', 'assigned')"
        )
    )
    updates, unclocked = [], []
    for row in rows:
        probs, flags = _signals(row)
        sev = severity(probs.get("complaint") if row["label"] == "complaint" else 0.0, row["rating"], flags)
        due = None if row["untimed"] else _parse(row["sla_due_at"])  # None: no clock to climb with
        if row["untimed"] and row["sla_due_at"]:
            unclocked.append((row["id"],))
        sla = sla_for(row["kind"], config, row["source"], flags)
        updates.append((priority(sev, row["author_reach"], due, now, sla), row["id"]))
    # sqlite-utils has no executemany of its own; PostgreSQL's goes through the adapter (parameter marks).
    executemany = db.executemany if dialect_of(db).postgres else db.conn.executemany
    with write_transaction(db):
        executemany("update queue_items set priority = ? where id = ?", updates)
        executemany("update queue_items set sla_due_at = null where id = ?", unclocked)


def _mark(db: sqlite_utils.Database, key: str) -> int:
    row = db.execute("select value from meta where key = ?", [key]).fetchone()
    return int(row[0]) if row else 0


def reopen_on_activity(
    db: sqlite_utils.Database,
    config: QueueConfig | None = None,
    now: datetime | None = None,
    since_revision: int = 0,
    since_mention: int = 0,
) -> int:
    """Handled items whose mention (or a reply in its thread) changed after handling go back to ``new``.

    An edit that raised the rating after our reply is a recovery, not new work, so it does not reopen;
    nor does our own reply showing up in the thread. A reopened item gets a fresh SLA from now.
    Only mentions with a revision above ``since_revision``, or a new reply above ``since_mention``
    (row ids), are looked at, so a refresh costs what changed, not the size of the store.
    """
    now = now or datetime.now(UTC)
    rows = list(
        db.query(
            "select q.id, q.state, m.kind, m.source, c.urgency from queue_items q "
            "join mentions m on m.id = q.mention_id left join classifications c on c.mention_id = m.id "
            "where q.state in ('replied', 'dismissed') and q.mention_id in ("
            "  select mention_id from mention_revisions where id > :rev "
            "  union select p.id from mentions c join mentions p on p.source = c.source "
            "  and p.external_id = c.parent_id where c.id > :men and c.parent_id is not null) and ("
            "  (m.updated_at > q.updated_at and not exists (select 1 from recoveries r "
            "   where r.queue_item_id = q.id and r.outcome = 'recovered' and r.detected_at >= m.updated_at))"
            "  or exists (select 1 from mentions c where c.source = m.source "
            "  and c.parent_id = m.external_id and c.first_seen_at > q.updated_at "
            "  and c.external_id not in (select external_id from replies p "
            "    where p.queue_item_id = q.id and p.external_id is not null)))"
            # Item order on PostgreSQL, whose plan may return rows in any order (SQLite walks its indexes in mention
            # order, which is item order): events are logged, and items reopened, in this order.
            + (" order by q.id" if dialect_of(db).postgres else ""),
            {"rev": since_revision, "men": since_mention},
        )
    )
    for row in rows:
        fields = {}
        if config is not None:
            sla = sla_for(row["kind"], config, row["source"], json.loads(row["urgency"] or "[]"))
            fields["sla_due_at"] = due_at(now, sla).isoformat()
        set_state(db, row["id"], row["state"], "new", "system", "new activity on the thread", fields)
    return len(rows)


def _log(db: sqlite_utils.Database, item_id: int, actor: str, action: str, detail: str = "") -> None:
    db["queue_events"].insert({"queue_item_id": item_id, "at": utcnow(), "actor": actor, "action": action,
                               "detail": detail})  # fmt: skip


def get_item(db: sqlite_utils.Database, item_id: int) -> dict[str, Any]:
    rows = list(db.query("select * from queue_items where id = ?", [item_id]))
    if not rows:
        raise QueueError(f"no queue item {item_id}")
    return rows[0]


def set_state(
    db: sqlite_utils.Database,
    item_id: int,
    expected: str,
    state: str,
    actor: str,
    detail: str = "",
    fields: dict[str, Any] | None = None,
    reply: dict[str, Any] | None = None,
) -> None:
    """Compare-and-set the state (the update comes first, under the write lock), log it, and store a reply.

    Fails with QueueError when someone else changed the item since it was read.
    """
    fields = fields or {}
    now = utcnow()
    assignments = ", ".join(f"{name} = ?" for name in fields)
    with write_transaction(db):
        changed = db.execute(
            f"update queue_items set state = ?, updated_at = ?{', ' if fields else ''}{assignments} "
            "where id = ? and state = ?",
            [state, now, *fields.values(), item_id, expected],
        ).rowcount
        if not changed:
            current = get_item(db, item_id)["state"]
            raise QueueError(f"queue item {item_id} is {current} now (changed by someone else); reload it")
        _log(db, item_id, actor, state, detail)
        if reply is not None:
            db["replies"].insert({"queue_item_id": item_id, "replied_by": actor, "replied_at": now, **reply})


def transition(db: sqlite_utils.Database, item_id: int, state: str, actor: str, detail: str = "", **fields) -> None:
    item = get_item(db, item_id)
    if state not in TRANSITIONS[item["state"]]:
        raise QueueError(f"queue item {item_id} is {item['state']}; cannot move to {state}")
    set_state(db, item_id, item["state"], state, actor, detail, fields)


def assign(db: sqlite_utils.Database, item_id: int, user: str, actor: str = "cli") -> None:
    transition(db, item_id, "assigned", actor, detail=f"assigned to {user}", assignee=user)


def dismiss(db: sqlite_utils.Database, item_id: int, actor: str = "cli", reason: str = "") -> None:
    transition(db, item_id, "dismissed", actor, detail=reason)


def mark_replied(
    db: sqlite_utils.Database,
    item_id: int,
    text: str,
    actor: str = "cli",
    channel: str = "manual",
    template: str | None = None,
    external_id: str | None = None,
    expected: str | None = None,
) -> None:
    """Record a reply a person made (posting happens elsewhere, by a person's action).

    ``expected`` is the state the item must be in (``replied`` when a claimed Reddit post is recorded).
    """
    if not text.strip():
        raise QueueError(f"queue item {item_id}: the reply text is empty")
    item = get_item(db, item_id)
    if expected is None and "replied" not in TRANSITIONS[item["state"]]:
        raise QueueError(f"queue item {item_id} is {item['state']}; cannot move to replied")
    set_state(
        db,
        item_id,
        expected or item["state"],
        "replied",
        actor,
        f"replied via {channel}",
        {"first_replied_at": item["first_replied_at"] or utcnow()},
        reply={"text": text, "channel": channel, "template": template, "external_id": external_id},
    )


def add_note(db: sqlite_utils.Database, item_id: int, text: str, author: str) -> None:
    """An internal note for colleagues; never shown to the customer."""
    get_item(db, item_id)
    if not text.strip():
        raise QueueError(f"queue item {item_id}: the note is empty")
    with write_transaction(db):  # BEGIN IMMEDIATE: wait for a concurrent writer instead of failing
        db["queue_notes"].insert({"queue_item_id": item_id, "author": author, "text": text.strip(), "at": utcnow()})
        _log(db, item_id, author, "note", "")


LIST_SQL = f"""
select q.id, q.state, q.priority, q.reason, q.sla_due_at, q.assignee, q.created_at, q.first_replied_at,
       m.id as mention_id, m.source, m.external_id, m.kind, m.author, m.author_reach, m.title, m.text, m.rating,
       m.url, m.posted_at, m.brand, {LOCATION_SQL} as location, coalesce(c.lang, m.lang) as lang, m.parent_id,
       c.label, c.score, c.topics, c.urgency
from queue_items q join mentions m on m.id = q.mention_id
left join classifications c on c.mention_id = m.id
"""
SLA_STATUSES = ("overdue", "due_soon", "on_time")
SLA_BUCKETS = (*SLA_STATUSES, "no_clock")  # what the inbox counts: the statuses, and items with no clock
DUE_SOON = timedelta(hours=1)


@dataclass
class InboxFilter:
    """What the inbox (or ``monitor queue list``) shows; every field narrows the list."""

    states: tuple[str, ...] = OPEN_STATES
    source: str | None = None
    location: str | None = None
    brand: str | None = None
    label: str | None = None
    topic: str | None = None
    assignee: str | None = None
    sla: str | None = None  # one of SLA_BUCKETS
    search: str | None = None

    def where(
        self, now: datetime, search_plan: str = "matches", dialect: Dialect = SQLITE, matched: list[int] | None = None
    ) -> tuple[str, list[Any]]:
        """SQL conditions and parameters. ``search_plan`` says how the full-text condition is written (SQLite: see
        ``choose_search_plan``; PostgreSQL: ``matches`` or ``queue_set``). ``matched``: the open items matching the
        search, from :func:`open_matches`, stand in for the search when only open states are asked for."""
        unknown = set(self.states) - set(STATES)
        if unknown or not self.states:
            raise QueueError(f"unknown queue state {sorted(unknown)[0] if unknown else '(none)'}")
        # States are inlined (checked above): the open-items partial index only matches a literal IN.
        clauses = [f"q.state in ({', '.join(repr(s) for s in self.states)})"]
        params: list[Any] = []
        for column, value in (
            ("m.source", self.source),
            (LOCATION_SQL, self.location),
            ("m.brand", self.brand),
            ("c.label", self.label),
            ("q.assignee", self.assignee),
        ):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.topic:
            if dialect.postgres:
                # The helper reads a malformed list as empty, where SQLite's json_each raises.
                clauses.append(f"exists (select 1 from {dialect.json_array_values('c.topics')} j where j.value = ?)")
            else:
                clauses.append("exists (select 1 from json_each(c.topics) where value = ?)")
            params.append(self.topic)
        if self.sla == "overdue":
            clauses.append("q.sla_due_at < ?")
            params.append(now.isoformat())
        elif self.sla == "due_soon":
            clauses.append("q.sla_due_at >= ? and q.sla_due_at < ?")
            params += [now.isoformat(), (now + DUE_SOON).isoformat()]
        elif self.sla == "on_time":
            clauses.append("q.sla_due_at >= ?")
            params.append((now + DUE_SOON).isoformat())
        elif self.sla == "no_clock":
            clauses.append("q.sla_due_at is null")
        if self.search:
            if matched is not None and set(self.states) <= set(OPEN_STATES):
                clauses.append("q.id = any(cast(? as bigint[]))")
                params.append(matched)
            elif dialect.postgres:
                # "queue_set": each queued item's document is matched on its own (the operator's function form,
                # which no index serves), so the planner drives from the queue; "matches": the GIN index.
                clauses.append(dialect.fts_match("m", per_item=search_plan == "queue_set"))
                params.append(_search_text(self.search))
            else:
                clauses.append(SEARCH_CONDITIONS[search_plan])
                params.append(_fts_query(self.search))
        return " and ".join(clauses), params


# How the full-text condition is joined with the queue, by how many mentions match (see choose_search_plan):
SEARCH_CONDITIONS = {
    # read every match, join the queue, sort: cheap while matches are few
    "matches": "m.id in (select rowid from mentions_fts where mentions_fts match ?)",
    # walk the queue by priority against the match set built once ('+' keeps SQLite from driving by it)
    "queue_set": "+q.mention_id in (select rowid from mentions_fts where mentions_fts match ?)",
    # walk the queue by priority, asking the index about each row: best when most rows match
    "queue_probe": "exists (select 1 from mentions_fts f where f.rowid = q.mention_id and mentions_fts match ?)",
}


# Thresholds on the number of mentions a search matches, measured with bench/inbox.py on 1M mentions:
# reading the matches costs ~1.3 µs each, building a match set ~0.15 µs each, probing the index ~25 µs
# per queue row (and a common word fills the first page after a few hundred rows).
FEW_MATCHES = 30_000
MANY_MATCHES = 300_000


def choose_search_plan(db: sqlite_utils.Database, search: str) -> str:
    """Pick how a search meets the queue from a capped count of its matches (a few ms at most)."""
    query = _fts_query(search)
    count_sql = "select count(*) from (select 1 from mentions_fts where mentions_fts match ? limit ?)"
    if db.execute(count_sql, [query, FEW_MATCHES]).fetchone()[0] < FEW_MATCHES:
        return "matches"
    if db.execute(count_sql, [query, MANY_MATCHES]).fetchone()[0] < MANY_MATCHES:
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
    dialect = dialect_of(db)
    # The plans exist because FTS5 cannot be combined with other indexes. PostgreSQL's planner combines the GIN
    # index with the queue's own, but it guesses a search of several words from each word's frequency alone and,
    # for words that go together ("rude kid": 55,916 matches guessed as 3,077 on 1,000,000 mentions), reads every
    # match (160 ms) rather than the few thousand open items (30 ms): a small queue set is matched item by item.
    if filters.search and dialect.postgres:
        plan = "queue_set" if matched is not None or _small_queue_set(db, filters) else "matches"
    else:
        plan = choose_search_plan(db, filters.search) if filters.search else "matches"
    where, params = filters.where(now or datetime.now(UTC), plan, dialect, matched if dialect.postgres else None)
    sql = LIST_SQL
    if plan != "matches" and not dialect.postgres:
        # CROSS JOIN makes the queue the outer loop, read in priority order.
        sql = sql.replace("from queue_items q join mentions m", "from queue_items q cross join mentions m")
    # q.id last: ties keep one order whichever plan runs, so pages neither repeat nor skip items. An item with no
    # clock sorts before a clocked one of equal priority, as SQLite sorts NULL first (PostgreSQL: last).
    due = "q.sla_due_at nulls first" if dialect.postgres else "q.sla_due_at"
    sql += " where " + where + f" order by q.priority desc, {due}, q.id limit ? offset ?"
    return list(db.query(sql, [*params, limit, offset]))


# PostgreSQL: up to this many queued items in the filtered states are matched one by one (~6 µs an item).
PG_QUEUE_SET_MAX = 20_000


def open_matches(db: sqlite_utils.Database, filters: InboxFilter) -> list[int] | None:
    """PostgreSQL, a search over a small open queue: the ids of the open items whose mention matches ``filters``'
    search, found once for a page's list and its tab counts, which would otherwise each match every open item
    again (~6 µs an item). None where that does not apply (SQLite, no search, a queue past PG_QUEUE_SET_MAX)."""
    dialect = dialect_of(db)
    if not (filters.search and dialect.postgres):
        return None
    every_open = InboxFilter(states=OPEN_STATES)
    if not _small_queue_set(db, every_open):
        return None
    states = ", ".join(repr(s) for s in OPEN_STATES)
    sql = (f"select q.id from queue_items q join mentions m on m.id = q.mention_id "
           f"where q.state in ({states}) and {dialect.fts_match('m', per_item=True)}")  # fmt: skip
    return [row[0] for row in db.execute(sql, [_search_text(filters.search)])]


def _small_queue_set(db: sqlite_utils.Database, filters: InboxFilter) -> bool:
    """Whether the items in ``filters``' states number at most PG_QUEUE_SET_MAX (an index-only count, stopped there)."""
    marks = ", ".join("?" * len(filters.states))
    sql = f"select count(*) from (select 1 from queue_items where state in ({marks}) limit ?) as capped"
    return db.execute(sql, [*filters.states, PG_QUEUE_SET_MAX + 1]).fetchone()[0] <= PG_QUEUE_SET_MAX


def _without_controls(text: str) -> str:
    # Control characters (Cc) and lone surrogates become spaces: FTS5 reads a NUL as the end of the query
    # ("unterminated string"), PostgreSQL text cannot hold one, a surrogate cannot be encoded, and the tokenizers
    # split on the rest anyway.
    return "".join(" " if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 else c for c in text)


def _search_text(text: str) -> str:
    """The PostgreSQL search parameter (``Dialect.fts_match``): plainto_tsquery reads it as plain words, every one
    required, so quotes, ``*``, ``NEAR`` or ``OR`` are no syntax and need no quoting (SQLite: ``_fts_query``)."""
    return _without_controls(text)


def _fts_query(text: str) -> str:
    text = _without_controls(text)
    # Quote each term so user input cannot use FTS syntax.
    terms = [t.replace('"', '""') for t in text.split()]
    return " ".join(f'"{t}"' for t in terms) or '""'


def item_detail(db: sqlite_utils.Database, item_id: int) -> dict[str, Any]:
    rows = list(db.query(LIST_SQL + " where q.id = ?", [item_id]))
    if not rows:
        raise QueueError(f"no queue item {item_id}")
    item = rows[0]
    item["events"] = list(db.query("select * from queue_events where queue_item_id = ? order by id", [item_id]))
    item["replies"] = list(db.query("select * from replies where queue_item_id = ? order by id", [item_id]))
    item["revisions"] = list(
        db.query("select * from mention_revisions where mention_id = ? order by id", [item["mention_id"]])
    )
    item["notes"] = list(db.query("select * from queue_notes where queue_item_id = ? order by id", [item_id]))
    recovery = list(db.query("select * from recoveries where queue_item_id = ?", [item_id]))
    item["recovery"] = recovery[0] if recovery else None
    item["thread"] = thread_context(db, item["source"], item["external_id"], item["parent_id"])
    return item


def thread_context(
    db: sqlite_utils.Database, source: str, external_id: str, parent_id: str | None, limit: int = 20
) -> dict[str, Any]:
    """The post a comment answers, and the replies under this mention, as stored."""
    parent = None
    if parent_id:
        rows = list(
            db.query(
                "select id, author, title, text, posted_at, url from mentions where source = ? and external_id = ?",
                [source, parent_id],
            )
        )
        parent = rows[0] if rows else None
    # PostgreSQL sorts NULL last where SQLite sorts it first; the id gives equal times one order.
    order = "posted_at nulls first, id" if dialect_of(db).postgres else "posted_at"
    children = list(
        db.query(
            "select id, author, text, posted_at from mentions where source = ? and parent_id = ? "
            f"order by {order} limit ?",
            [source, external_id, limit],
        )
    )
    return {"parent": parent, "children": children}


# ---------------------------------------------------------------- the inbox's counts, bulk actions, authors


def sla_clock(item: dict[str, Any], now: datetime) -> tuple[str, str]:
    """An item's SLA clock as (status, words): ("overdue", "3.5 h overdue"), ("due_soon", "due in 25 min"),
    ("on_time", "due in 5.0 h"), ("no_clock", "no SLA clock") for an untimed item, ("closed", "") once
    handled. The words use ``human_minutes``, the duration format of the CLI and the digest."""
    from monitor.queue.metrics import human_minutes  # late: metrics builds on this module

    if item.get("state") not in OPEN_STATES:
        return "closed", ""
    due = _parse(item.get("sla_due_at"))
    if due is None:
        return "no_clock", "no SLA clock"
    minutes = (due - now).total_seconds() / 60
    if minutes < 0:
        return "overdue", f"{human_minutes(-minutes)} overdue"
    return ("due_soon" if minutes < DUE_SOON.total_seconds() / 60 else "on_time"), f"due in {human_minutes(minutes)}"


BUDGET_STEPS = 2_000  # SQLite VM steps between looks at the clock (microseconds apart)


class Budget:
    """Stop a query that runs past ``seconds`` (SQLite's progress handler; PostgreSQL: each query gets a
    statement_timeout of the time left): a count or a look-up that a large store without the right index would
    make slow costs the page one number, not its response time. The seconds are for all the block's queries."""

    def __init__(self, db: sqlite_utils.Database, seconds: float) -> None:
        self.db, self.conn, self.deadline = db, db.conn, time.monotonic() + seconds
        self.postgres = dialect_of(db).postgres

    def __enter__(self) -> Budget:
        if not self.postgres:
            self.conn.set_progress_handler(lambda: time.monotonic() > self.deadline, BUDGET_STEPS)
        return self

    def __exit__(self, *_exc: object) -> None:
        if not self.postgres:
            self.conn.set_progress_handler(None, 0)

    def run(self, sql: str, params: list[Any]) -> list[tuple] | None:
        """The query's rows, or None when it ran out of time."""
        try:
            if not self.postgres:
                return self.conn.execute(sql, params).fetchall()
            left = self.deadline - time.monotonic()
            if left <= 0:  # statement_timeout cannot be zero (that is "no limit")
                return None
            with self.db.statement_timeout(left):
                return self.db.execute(sql, params).fetchall()
        except db_errors.INTERRUPTED_ERRORS as exc:
            if not db_errors.is_interrupted(exc):
                raise
            return None


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


def _open_search(db: sqlite_utils.Database, where: str, params: list[Any], search: str) -> tuple[str, list[Any]]:
    """The open items' search condition: the matches within the open items' mention ids (open items are the
    newest few, so a common word's 400,000 matches shrink to a few thousand) read once into a set, or, when even
    those are many per open item, the full-text index probed per open item."""
    query = _fts_query(search)
    low, high, count = db.execute(
        f"select min(q.mention_id), max(q.mention_id), count(*) from queue_items q where {where}", params
    ).fetchone()
    if not count:
        return "0", []
    cap = PROBE_RATIO * count
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


def _count_from(filters: InboxFilter, postgres: bool = False) -> str:
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


def inbox_counts(
    db: sqlite_utils.Database, filters: InboxFilter, now: datetime | None = None, matched: list[int] | None = None
) -> InboxCounts:
    """Counts per state and per SLA status for the inbox's tabs, under ``filters``' other conditions.

    The open items (a few thousand) are counted in one GROUP BY over state and SLA status; with a search, against
    the matches in their id range (``_open_search``). A handled state is counted up to COUNT_CAP within
    COUNT_BUDGET; with a search, by reading the matches in index order and stopping at the cap, which a common
    word reaches after a few thousand matches (driving from the queue would probe the index per handled item)."""
    now = now or datetime.now(UTC)
    dialect = dialect_of(db)
    soon = (now + DUE_SOON).isoformat()
    base = InboxFilter(**{**filters.__dict__, "states": OPEN_STATES, "sla": None, "search": None})
    where, params = base.where(now, dialect=dialect)
    bucket = (
        "case when q.sla_due_at is null then 'no_clock' when q.sla_due_at < ? then 'overdue' "
        "when q.sla_due_at < ? then 'due_soon' else 'on_time' end"
    )
    join = _count_from(filters, dialect.postgres)
    if filters.search and dialect.postgres and matched is not None:
        where, params = f"{where} and q.id = any(cast(? as bigint[]))", [*params, matched]  # from open_matches
    elif filters.search and dialect.postgres:
        # No id range: the open items are few by design (the inbox's work list), matched item by item as in
        # list_items, unless a neglected queue has grown past PG_QUEUE_SET_MAX.
        per_item = _small_queue_set(db, base)
        where, params = f"{where} and {dialect.fts_match('m', per_item)}", [*params, _search_text(filters.search)]
    elif filters.search:
        # The id range is over the open items that pass the filters on the queue row alone (cheap to read).
        queue_only = InboxFilter(states=OPEN_STATES, assignee=filters.assignee).where(now)
        condition, extra = _open_search(db, *queue_only, filters.search)
        where, params = f"{where} and {condition}", [*params, *extra]
    grid: dict[tuple[str, str], int] = {}
    # CROSS JOIN: the open items (a few thousand) drive; SQLite would otherwise start from, say, every mention
    # of a source (~125,000 on the bench store) when a source filter is set. (PostgreSQL has no such hint.)
    open_from = join
    if not dialect.postgres:
        open_from = join.replace("from queue_items q join mentions m", "from queue_items q cross join mentions m")
    sql = f"select q.state, {bucket} as sla, count(*) {open_from} where {where} group by 1, 2"
    for state, sla, n in db.execute(sql, [now.isoformat(), soon, *params]).fetchall():
        grid[(state, sla)] = n
    shown = set(filters.states) & set(OPEN_STATES) or set(OPEN_STATES)
    sla_counts = {s: sum(n for (st, b), n in grid.items() if b == s and st in shown) for s in SLA_BUCKETS}
    states: dict[str, int | None] = {
        s: sum(n for (st, b), n in grid.items() if st == s and (filters.sla is None or b == filters.sla))
        for s in OPEN_STATES
    }
    capped: set[str] = set()
    if filters.search and not dialect.postgres:
        # Driven by the full-text index (CROSS JOIN fixes the order): each match is looked up in the queue once.
        fts = "from mentions_fts f cross join queue_items q on q.mention_id = f.rowid"
        join = join.replace("from queue_items q", fts)
    with Budget(db, COUNT_BUDGET) as budget:
        for state in STATES:
            if state in OPEN_STATES:
                continue
            closed = InboxFilter(**{**filters.__dict__, "states": (state,), "sla": None, "search": None})
            where, params = closed.where(now, dialect=dialect)
            if filters.search and dialect.postgres:
                where, params = f"{where} and {dialect.fts_match('m')}", [*params, _search_text(filters.search)]
            elif filters.search:
                where, params = f"{where} and mentions_fts match ?", [*params, _fts_query(filters.search)]
            # PostgreSQL requires a name for a subquery in FROM.
            capped_sql = f"select count(*) from (select 1 {join} where {where} limit ?)"
            rows = budget.run(capped_sql + (" as capped" if dialect.postgres else ""), [*params, COUNT_CAP])
            states[state] = rows[0][0] if rows else None
            if states[state] == COUNT_CAP:
                capped.add(state)
    return InboxCounts(states=states, sla=sla_counts, capped=capped)


BULK_ACTIONS = ("assign", "dismiss")
BULK_LIMIT = 500


@dataclass
class BulkResult:
    done: list[int]
    skipped: dict[str, list[int]]  # reason ("already replied") → item ids

    def message(self, verb: str) -> str:
        """E.g. "3 dismissed, 1 skipped (already replied)"."""
        text = f"{len(self.done)} {verb}"
        count = sum(len(ids) for ids in self.skipped.values())
        if count:
            if len(self.skipped) == 1:
                why = next(iter(self.skipped))
            else:
                why = ", ".join(f"{len(ids)} {reason}" for reason, ids in self.skipped.items())
            text += f", {count} skipped ({why})"
        return text


def bulk_change(
    db: sqlite_utils.Database, item_ids: list[int], action: str, actor: str, user: str | None = None,
    reason: str = "",
) -> BulkResult:  # fmt: skip
    """Assign (to ``user``) or dismiss many items in one write transaction, each by compare-and-set.

    An item whose state does not allow the change (a colleague replied meanwhile), or that is already
    assigned to ``user``, is skipped with the reason; the others change. Nothing is half-done: the
    transaction holds the write lock from the first read to the last change.
    """
    if action not in BULK_ACTIONS:
        raise QueueError(f"unknown bulk action {action!r} (expected {' or '.join(BULK_ACTIONS)})")
    if action == "assign" and not user:
        raise QueueError("assign needs a team member")
    if len(item_ids) > BULK_LIMIT:
        raise QueueError(f"at most {BULK_LIMIT} items at once; {len(item_ids)} were selected")
    target = "assigned" if action == "assign" else "dismissed"
    result = BulkResult(done=[], skipped={})
    with write_transaction(db):
        for item_id in dict.fromkeys(item_ids):  # each once, in the order given
            row = db.execute("select state, assignee from queue_items where id = ?", [item_id]).fetchone()
            if row is None:
                why = "not found"
            elif target not in TRANSITIONS[row[0]]:
                why = f"already {row[0]}"
            elif action == "assign" and row[0] == "assigned" and row[1] == user:
                why = f"already {user}'s"
            else:
                fields = {"assignee": user} if action == "assign" else {}
                detail = f"assigned to {user}" if action == "assign" else reason
                try:
                    set_state(db, item_id, row[0], target, actor, detail, fields)
                except QueueError:  # cannot happen under the write lock; the compare-and-set says so if it does
                    why = "changed meanwhile"
                else:
                    result.done.append(item_id)
                    continue
            result.skipped.setdefault(why, []).append(item_id)
    return result


ANONYMOUS_AUTHORS = {"", "[deleted]", "[removed]", "anonymous"}
AUTHOR_LOOKUP_BUDGET = 0.05  # seconds; see Budget


def author_mentions(
    db: sqlite_utils.Database, sources: list[str], author: str | None, exclude_mention_id: int, limit: int = 10
) -> list[dict[str, Any]] | None:
    """The author's other mentions on the same platform (``sources``: its source names), newest first, with
    their queue item if any. None when the look-up ran out of time (a large store without an author index)."""
    if (author or "").strip().lower() in ANONYMOUS_AUTHORS or not sources:
        return []
    marks = ", ".join("?" * len(sources))
    sql = (
        "select m.id as mention_id, m.source, m.title, m.text, m.url, m.rating, m.posted_at, m.first_seen_at, "
        f"{LOCATION_SQL} as location, q.id as item_id, q.state, c.label "
        "from mentions m left join queue_items q on q.mention_id = m.id "
        "left join classifications c on c.mention_id = m.id "
        f"where m.author = ? and m.source in ({marks}) and m.id != ? "
        "order by coalesce(m.posted_at, m.first_seen_at) desc, m.id desc limit ?"
    )
    if dialect_of(db).postgres:  # undated last, as SQLite sorts NULL in a descending order
        sql = sql.replace(" desc, m.id desc", " desc nulls last, m.id desc")
    columns = ["mention_id", "source", "title", "text", "url", "rating", "posted_at", "first_seen_at", "location",
               "item_id", "state", "label"]  # fmt: skip
    with Budget(db, AUTHOR_LOOKUP_BUDGET) as budget:
        rows = budget.run(sql, [author, *sources, exclude_mention_id, limit])
    return None if rows is None else [dict(zip(columns, row, strict=True)) for row in rows]
