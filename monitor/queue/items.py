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
from monitor.store import utcnow

STATES = ("new", "assigned", "replied", "dismissed")
OPEN_STATES = ("new", "assigned")
TRANSITIONS = {
    "new": {"assigned", "replied", "dismissed"},
    "assigned": {"assigned", "replied", "dismissed", "new"},
    "replied": {"new"},
    "dismissed": {"new"},
}
REVIEW_KINDS = {"review"}
URGENCY_WEIGHTS = {"safety_health": 3.0, "legal_threat": 2.5, "churn_threat": 1.0, "high_reach": 1.0, "question": 0.5}


class QueueError(ValueError):
    pass


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    dt = datetime.fromisoformat(ts)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def sla_for(kind: str | None, config: QueueConfig) -> timedelta:
    return config.sla_review if kind in REVIEW_KINDS else config.sla_social


def severity(complaint_prob: float | None, rating: float | None, flags: list[str]) -> float:
    """0 (mild) upwards: complaint strength, low stars and urgency flags."""
    score = (complaint_prob or 0.0) * 2.0
    if rating is not None:
        score += max(0.0, 3.0 - rating)  # 1★ adds 2, 2★ adds 1
    score += sum(URGENCY_WEIGHTS.get(flag, 0.0) for flag in flags)
    return score


def priority(sev: float, reach: int | None, due: datetime, now: datetime, sla: timedelta) -> float:
    """Higher is more urgent. Overdue items keep climbing so they never sink."""
    reach_boost = math.log10(1 + max(reach or 0, 0)) / 2
    left = (due - now).total_seconds()
    window = max(sla.total_seconds(), 1.0)
    urgency = 1.0 - left / window if left > 0 else 1.0 + min(-left / window, 4.0)
    return round(sev + reach_boost + 2.0 * max(urgency, 0.0), 4)


@dataclass
class QueueCounts:
    created: int = 0
    reopened: int = 0


def _signals(row: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
    """Class probabilities and urgency flags stored for a mention."""
    return (json.loads(row["probs"]) if row["probs"] else {}), json.loads(row["urgency"] or "[]")


def needs_reply(label: str, complaint_prob: float | None, flags: list[str], threshold: float) -> bool:
    return (label == "complaint" and (complaint_prob is None or complaint_prob >= threshold)) or "question" in flags


def refresh_queue(db: sqlite_utils.Database, config: QueueConfig, now: datetime | None = None) -> QueueCounts:
    """Create items for newly classified complaints/questions and recompute open priorities."""
    now = now or datetime.now(UTC)
    counts = QueueCounts()
    rows = db.query(
        "select m.id, m.kind, m.rating, m.author_reach, m.posted_at, m.first_seen_at, c.label, c.probs, c.urgency "
        "from mentions m join classifications c on c.mention_id = m.id "
        "left join queue_items q on q.mention_id = m.id where q.id is null"
    )
    new_items = []
    for row in rows:
        probs, flags = _signals(row)
        if not needs_reply(row["label"], probs.get("complaint"), flags, config.complaint_threshold):
            continue
        start = _parse(row["posted_at"]) or _parse(row["first_seen_at"]) or now
        new_items.append(
            {
                "mention_id": row["id"],
                "state": "new",
                "priority": 0.0,  # set with every open item's below
                "reason": "complaint" if row["label"] == "complaint" else "question",
                "sla_due_at": (start + sla_for(row["kind"], config)).isoformat(),
                "assignee": None,
                "suggested_reply": None,
                "created_at": utcnow(),
                "updated_at": utcnow(),
            }
        )
    with db.atomic():
        for item in new_items:
            item_id = db["queue_items"].insert(item).last_pk
            _log(db, item_id, "system", "created", item["reason"])
            counts.created += 1
    counts.reopened = reopen_on_activity(db)
    recompute_priorities(db, config, now)
    return counts


def recompute_priorities(db: sqlite_utils.Database, config: QueueConfig, now: datetime) -> None:
    rows = list(
        db.query(
            "select q.id, q.sla_due_at, m.kind, m.rating, m.author_reach, c.label, c.probs, c.urgency "
            "from queue_items q join mentions m on m.id = q.mention_id "
            "left join classifications c on c.mention_id = m.id where q.state in ('new', 'assigned')"
        )
    )
    updates = []
    for row in rows:
        probs, flags = _signals(row)
        sev = severity(probs.get("complaint") if row["label"] == "complaint" else 0.0, row["rating"], flags)
        due = _parse(row["sla_due_at"]) or now
        updates.append((priority(sev, row["author_reach"], due, now, sla_for(row["kind"], config)), row["id"]))
    with db.atomic():
        db.conn.executemany("update queue_items set priority = ? where id = ?", updates)


def reopen_on_activity(db: sqlite_utils.Database) -> int:
    """Handled items whose mention (or a reply in its thread) changed after handling go back to ``new``."""
    rows = list(
        db.query(
            "select q.id from queue_items q join mentions m on m.id = q.mention_id "
            "where q.state in ('replied', 'dismissed') and ("
            "  m.updated_at > q.updated_at or exists (select 1 from mentions c where c.source = m.source "
            "  and c.parent_id = m.external_id and c.first_seen_at > q.updated_at))"
        )
    )
    for row in rows:
        transition(db, row["id"], "new", actor="system", detail="new activity on the thread")
    return len(rows)


def _log(db: sqlite_utils.Database, item_id: int, actor: str, action: str, detail: str = "") -> None:
    db["queue_events"].insert({"queue_item_id": item_id, "at": utcnow(), "actor": actor, "action": action,
                               "detail": detail})  # fmt: skip


def get_item(db: sqlite_utils.Database, item_id: int) -> dict[str, Any]:
    rows = list(db.query("select * from queue_items where id = ?", [item_id]))
    if not rows:
        raise QueueError(f"no queue item {item_id}")
    return rows[0]


def transition(db: sqlite_utils.Database, item_id: int, state: str, actor: str, detail: str = "", **fields) -> None:
    item = get_item(db, item_id)
    if state not in TRANSITIONS[item["state"]]:
        raise QueueError(f"queue item {item_id} is {item['state']}; cannot move to {state}")
    with db.atomic():
        db["queue_items"].update(item_id, {"state": state, "updated_at": utcnow(), **fields})
        _log(db, item_id, actor, state, detail)


def assign(db: sqlite_utils.Database, item_id: int, user: str, actor: str = "cli") -> None:
    transition(db, item_id, "assigned", actor, detail=f"assigned to {user}", assignee=user)


def dismiss(db: sqlite_utils.Database, item_id: int, actor: str = "cli", reason: str = "") -> None:
    transition(db, item_id, "dismissed", actor, detail=reason)


def mark_replied(db: sqlite_utils.Database, item_id: int, text: str, actor: str = "cli", channel: str = "manual"):
    """Record a reply a person made (posting happens elsewhere, by a person's action)."""
    transition(db, item_id, "replied", actor, detail=f"replied via {channel}")
    with db.atomic():
        db["replies"].insert(
            {"queue_item_id": item_id, "text": text, "replied_by": actor, "replied_at": utcnow(), "channel": channel}
        )


LIST_SQL = """
select q.id, q.state, q.priority, q.reason, q.sla_due_at, q.assignee, q.created_at,
       m.id as mention_id, m.source, m.kind, m.author, m.title, m.text, m.rating, m.url, m.posted_at,
       m.brand, m.location, c.label, c.score, c.topics, c.urgency
from queue_items q join mentions m on m.id = q.mention_id
left join classifications c on c.mention_id = m.id
"""


def list_items(
    db: sqlite_utils.Database,
    states: tuple[str, ...] = OPEN_STATES,
    source: str | None = None,
    label: str | None = None,
    assignee: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    where = [f"q.state in ({', '.join('?' * len(states))})"]
    params: list[Any] = list(states)
    if source:
        where.append("m.source = ?")
        params.append(source)
    if label:
        where.append("c.label = ?")
        params.append(label)
    if assignee:
        where.append("q.assignee = ?")
        params.append(assignee)
    if search:
        where.append("m.id in (select rowid from mentions_fts where mentions_fts match ?)")
        params.append(_fts_query(search))
    sql = LIST_SQL + " where " + " and ".join(where) + " order by q.priority desc, q.sla_due_at limit ? offset ?"
    return list(db.query(sql, [*params, limit, offset]))


def _fts_query(text: str) -> str:
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
    return item
