"""Recovery tracking: did the customer change their review after we answered?

A complaint that is answered and resolved often turns a detractor back into
a customer. The crawl stores every edit as a revision; here each replied item
is compared with the edits seen after its first reply.
"""

from __future__ import annotations

import sqlite_utils

from monitor.store import replies as replies_store
from monitor.store import utcnow
from monitor.store.queue_items import log_event


def recovery_outcome(rating_before: float | None, rating_after: float | None, text_changed: bool) -> str:
    """``recovered`` when the stars went up, ``worse`` when down, ``unchanged`` when only words moved on a
    rated review, ``edited`` for a text edit on an unrated post."""
    if rating_before is not None and rating_after is not None:
        if rating_after > rating_before:
            return "recovered"
        if rating_after < rating_before:
            return "worse"
        return "unchanged"
    return "edited" if text_changed else "unchanged"


def detect_recoveries(db: sqlite_utils.Database, since_revision: int = 0) -> int:
    """Record (or update) a recovery for every replied item whose mention was edited after the reply.

    Only mentions with a revision above ``since_revision`` (a row id) are looked at. Returns how many
    recoveries were recorded or changed in this call.
    """
    rows = replies_store.recovery_candidates(db, since_revision)
    changed = 0
    for row in rows:
        revisions = replies_store.revisions_seen_since(db, row["mention_id"], row["first_replied_at"])
        if not revisions:
            continue
        before = revisions[0]["rating_before"]
        after = row["rating_now"] if row["rating_now"] is not None else revisions[-1]["rating_after"]
        text_changed = any(
            (v["text_before"] or "") != (v["text_after"] or "") or (v["title_before"] or "") != (v["title_after"] or "")
            for v in revisions
        )
        outcome = recovery_outcome(before, after, text_changed)
        now = max(utcnow(), revisions[-1]["seen_at"])
        with db.atomic():
            replies_store.upsert_recovery(
                db,
                {
                    "queue_item_id": row["item_id"],
                    "mention_id": row["mention_id"],
                    "replied_at": row["first_replied_at"],
                    "detected_at": now,
                    "rating_before": before,
                    "rating_after": after,
                    "text_changed": int(text_changed),
                    "outcome": outcome,
                    "revision_id": revisions[-1]["id"],
                },
            )
            stars = f"rating {_stars(before)} → {_stars(after)}" if before is not None or after is not None else ""
            detail = ", ".join(p for p in (stars, "text edited" if text_changed else "") if p)
            log_event(db, row["item_id"], "system", outcome, detail, now)
        changed += 1
    return changed


def _stars(value: float | None) -> str:
    return "?" if value is None else f"{value:g}★"
