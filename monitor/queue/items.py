"""Reply-queue items: which mentions need an answer, how urgently, and their state.

Every complaint and every question becomes an item. Priority grows with
severity (rating, complaint probability, urgency flags), with the author's
reach, and as the SLA deadline approaches. Nothing here posts anything:
state changes record what a person did.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from monitor.config import QueueConfig
from monitor.shifts.localtime import EARLIEST
from monitor.store import queue_items as queue_store
from monitor.store import utcnow, write_transaction

# The states, the SQL fragments for a mention's location and an untimed item, and the time budget live with the
# queue's SQL (monitor/store/queue_items.py); LOCATION_SQL and untimed_sql are still imported from here.
from monitor.store.queue_items import LOCATION_SQL as LOCATION_SQL
from monitor.store.queue_items import untimed_sql as untimed_sql

TRANSITIONS = {
    "new": {"assigned", "replied", "dismissed"},
    "assigned": {"assigned", "replied", "dismissed", "new"},
    "replied": {"new"},
    "dismissed": {"new"},
}
REVIEW_KINDS = {"review"}
URGENT_FLAGS = {"safety_health", "legal_threat"}
URGENCY_WEIGHTS = {"safety_health": 3.0, "legal_threat": 2.5, "churn_threat": 1.0, "high_reach": 1.0, "question": 0.5}


class QueueError(ValueError):
    pass


def parse_stored_time(ts: str | None) -> datetime | None:
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
    posted, seen = parse_stored_time(posted_at), parse_stored_time(first_seen_at)
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
    new_items = []
    for row in queue_store.unqueued_classified(db):
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
            if queue_store.is_queued(db, item["mention_id"]):
                continue
            item_id = queue_store.insert_item(db, item)
            _log(db, item_id, "system", "created", item["reason"])
            counts.created += 1
    # Late imports: these modules build on this one.
    from monitor.queue.recovery import detect_recoveries
    from monitor.queue.team import auto_assign

    # Only what changed since the last refresh can reopen an item or be a recovery: read the newest
    # revision and mention ids first, look at rows above the previous marks, then move the marks.
    revision_high, mention_high = queue_store.newest_activity_ids(db)
    since_revision, since_mention = _mark(db, "queue.revision_mark"), _mark(db, "queue.mention_mark")
    counts.recoveries = detect_recoveries(db, since_revision)
    counts.reopened = reopen_on_activity(db, config, now, since_revision, since_mention)
    with write_transaction(db):
        queue_store.save_marks(db, {"queue.revision_mark": revision_high, "queue.mention_mark": mention_high})
    if config.auto_assign and config.team:
        # Every unassigned new item, not only this run's: a run killed before this line left some behind.
        counts.assigned = auto_assign(db, config.team, None, config.source_types)
    recompute_priorities(db, config, now)
    return counts


def recompute_priorities(db: sqlite_utils.Database, config: QueueConfig, now: datetime) -> None:
    """Every open item's priority as of ``now``. An untimed item (``untimed_sql``) loses a clock it was
    given before its mention was marked backfill, so it neither climbs nor shows as overdue."""
    updates, unclocked = [], []
    for row in queue_store.open_item_signals(db):
        probs, flags = _signals(row)
        sev = severity(probs.get("complaint") if row["label"] == "complaint" else 0.0, row["rating"], flags)
        due = None if row["untimed"] else parse_stored_time(row["sla_due_at"])  # None: no clock to climb with
        if row["untimed"] and row["sla_due_at"]:
            unclocked.append(row["id"])
        sla = sla_for(row["kind"], config, row["source"], flags)
        updates.append((priority(sev, row["author_reach"], due, now, sla), row["id"]))
    with write_transaction(db):
        queue_store.set_priorities(db, updates)
        queue_store.clear_due_times(db, unclocked)


def _mark(db: sqlite_utils.Database, key: str) -> int:
    return queue_store.read_mark(db, key)


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
    rows = queue_store.reopen_candidates(db, since_revision, since_mention)
    for row in rows:
        fields = {}
        if config is not None:
            sla = sla_for(row["kind"], config, row["source"], json.loads(row["urgency"] or "[]"))
            fields["sla_due_at"] = due_at(now, sla).isoformat()
        set_state(db, row["id"], row["state"], "new", "system", "new activity on the thread", fields)
    return len(rows)


def _log(db: sqlite_utils.Database, item_id: int, actor: str, action: str, detail: str = "") -> None:
    queue_store.log_event(db, item_id, actor, action, detail, utcnow())


def get_item(db: sqlite_utils.Database, item_id: int) -> dict[str, Any]:
    row = queue_store.item_row(db, item_id)
    if row is None:
        raise QueueError(f"no queue item {item_id}")
    return row


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
    with write_transaction(db):
        if not queue_store.compare_and_set_state(db, item_id, expected, state, now, fields):
            current = get_item(db, item_id)["state"]
            raise QueueError(f"queue item {item_id} is {current} now (changed by someone else); reload it")
        _log(db, item_id, actor, state, detail)
        if reply is not None:
            queue_store.insert_reply(db, item_id, actor, now, reply)


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
        queue_store.insert_note(db, item_id, author, text.strip(), utcnow())
        _log(db, item_id, author, "note", "")


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
            row = queue_store.state_and_assignee(db, item_id)
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
