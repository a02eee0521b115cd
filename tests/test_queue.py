from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import QueueConfig
from monitor.queue.items import QueueError, assign, dismiss, mark_replied, priority, refresh_queue, severity
from monitor.queue.listing import item_detail, list_items
from monitor.store import record_mentions

from .helpers import add_classified, sla_allowances

CONFIG = QueueConfig()


def test_complaints_and_questions_are_queued_praise_is_not(fresh_db):
    add_classified(fresh_db, "s", "1", "cold coffee", "complaint")
    add_classified(fresh_db, "s", "2", "lovely", "praise", probs={"complaint": 0.01, "neutral": 0.09, "praise": 0.9})
    add_classified(fresh_db, "s", "3", "open at 6?", "neutral", urgency=["question"],
                   probs={"complaint": 0.1, "neutral": 0.8, "praise": 0.1})  # fmt: skip
    add_classified(fresh_db, "s", "4", "meh", "complaint", probs={"complaint": 0.4, "neutral": 0.35, "praise": 0.25})
    counts = refresh_queue(fresh_db, CONFIG)
    assert counts.created == 2
    reasons = sorted(r["reason"] for r in fresh_db["queue_items"].rows)
    assert reasons == ["complaint", "question"]
    assert refresh_queue(fresh_db, CONFIG).created == 0  # idempotent


def test_sla_depends_on_kind(fresh_db):
    add_classified(fresh_db, "s", "r", "bad", "complaint", kind="review", hours_ago=0)
    add_classified(fresh_db, "s", "p", "bad", "complaint", kind="post", hours_ago=0)
    refresh_queue(fresh_db, CONFIG)
    allowed = sla_allowances(fresh_db)
    assert allowed[1] - allowed[2] == timedelta(hours=23)


def test_priority_rises_with_severity_reach_and_lateness():
    now = datetime.now(UTC)
    sla = timedelta(hours=1)
    mild = severity(0.6, None, [])
    assert severity(0.6, 1, []) > mild
    assert severity(0.6, None, ["safety_health"]) > severity(0.6, None, ["churn_threat"]) > mild
    fresh = priority(mild, None, now + sla, now, sla)
    assert priority(mild, 100_000, now + sla, now, sla) > fresh
    assert priority(mild, None, now + sla / 4, now, sla) > fresh
    assert priority(mild, None, now - sla, now, sla) > priority(mild, None, now, now, sla)


def test_list_orders_by_priority_and_filters(fresh_db):
    add_classified(fresh_db, "a", "1", "slightly slow", "complaint",
                   probs={"complaint": 0.55, "neutral": 0.3, "praise": 0.15})  # fmt: skip
    add_classified(fresh_db, "b", "2", "got food poisoning", "complaint", rating=1, urgency=["safety_health"])
    refresh_queue(fresh_db, CONFIG)
    assert [i["text"] for i in list_items(fresh_db)] == ["got food poisoning", "slightly slow"]
    assert [i["source"] for i in list_items(fresh_db, source="a")] == ["a"]
    assert [i["text"] for i in list_items(fresh_db, search="poisoning")] == ["got food poisoning"]


def test_state_machine_and_audit_log(fresh_db):
    add_classified(fresh_db, "s", "1", "cold coffee", "complaint")
    refresh_queue(fresh_db, CONFIG)
    assign(fresh_db, 1, "sam", actor="lee")
    mark_replied(fresh_db, 1, "Sorry Pat, a fresh one is on us.", actor="sam")
    with pytest.raises(QueueError, match="is replied; cannot move to assigned"):
        assign(fresh_db, 1, "kim")
    detail = item_detail(fresh_db, 1)
    assert detail["state"] == "replied" and detail["assignee"] == "sam"
    assert [e["action"] for e in detail["events"]] == ["created", "assigned", "replied"]
    assert detail["replies"][0]["text"] == "Sorry Pat, a fresh one is on us."
    with pytest.raises(QueueError, match="no queue item 99"):
        dismiss(fresh_db, 99)


def test_new_activity_reopens_a_handled_item(fresh_db):
    add_classified(fresh_db, "s", "1", "cold coffee", "complaint", rating=2)
    refresh_queue(fresh_db, CONFIG)
    dismiss(fresh_db, 1, reason="handled in store")
    # Timestamps have second resolution: make the dismissal clearly older than the edit.
    fresh_db.execute("update queue_items set updated_at = '2000-01-01T00:00:00+00:00'")
    record_mentions(fresh_db, "s", [{"external_id": "1", "text": "cold coffee AGAIN", "rating": 1}])
    assert refresh_queue(fresh_db, CONFIG).reopened == 1
    assert item_detail(fresh_db, 1)["state"] == "new"
