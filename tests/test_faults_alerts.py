"""Alerts faults from the fault campaign (issue 11): two passes at once never send one alert twice (each
alert is claimed in the ledger before it goes), and backfill mentions raise no urgent or SLA alert."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.ledger import CLAIM_TIMEOUT, claim, sent_count
from monitor.alerts.run import run_alerts
from monitor.config import QueueConfig
from monitor.queue.items import refresh_queue
from monitor.shifts.stage import estimate_and_attribute
from monitor.store import open_db

from .helpers import add_classified
from .test_alerts import WEBHOOK_ENV, Webhook, make_config, only, urgent_item
from .test_alerts import clean_env as clean_env  # noqa: F401 - autouse fixture
from .test_alerts import db as db  # noqa: F401 - fixture


class SlowWebhook(Webhook):
    """A webhook that takes a while to answer, so two passes overlap while one is sending."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        handler = self.server.RequestHandlerClass
        original = handler.do_POST

        def slow_post(request) -> None:
            time.sleep(delay)
            original(request)

        handler.do_POST = slow_post


@pytest.fixture
def slow_webhook(monkeypatch):
    hook = SlowWebhook(0.3)
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    yield hook
    hook.close()


def test_two_passes_at_once_send_each_alert_once(tmp_path, db, slow_webhook):
    """Two daemons (or `monitor alerts` during a daemon's pass): separate connections, same moment."""
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    for i in range(3):
        urgent_item(db, str(i))
    barrier = threading.Barrier(2)
    results = []

    def one_pass() -> None:
        conn = open_db(config.storage_path, migrate=False)
        try:
            barrier.wait(60)
            results.append(run_alerts(config, conn))
        finally:
            conn.conn.close()

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(slow_webhook.received) == 3  # not 6
    assert sorted(r.channels["webhook"].sent for r in results) in ([0, 3], [1, 2])
    assert sum(r.channels["webhook"].sent for r in results) == 3 and sent_count(db, "webhook") == 3
    assert run_alerts(config, db).channels["webhook"].pending == []  # nothing left claimed or unsent


def test_a_failed_send_releases_its_claim(tmp_path, db, monkeypatch):
    hook = Webhook()
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    try:
        config = make_config(tmp_path, email=False, **only("urgent_items"))
        urgent_item(db)
        hook.statuses = [500]
        assert run_alerts(config, db).channels["webhook"].sent == 0
        assert db.execute("select count(*) from alerts_sent").fetchone()[0] == 0  # no claim left behind
        assert run_alerts(config, db).channels["webhook"].sent == 1 and len(hook.received) == 1
    finally:
        hook.close()


def _claim_row(db, pid: int, at: datetime, host: str | None = None) -> None:
    detail = {"queue_item_id": 1, "_claim": {"at": at.isoformat(), "host": host or socket.gethostname(), "pid": pid}}
    db.execute(
        "insert into alerts_sent (kind, subject_key, channel, sent_at, title, detail) values (?, ?, ?, null, ?, ?)",
        ["urgent_item", "1", "webhook", "claimed", json.dumps(detail)],
    )


def test_a_claim_left_by_a_live_sender_is_respected_and_a_dead_ones_is_taken_over(tmp_path, db, monkeypatch):
    hook = Webhook()
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    urgent_item(db)
    sender = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        now = datetime.now(UTC)
        _claim_row(db, sender.pid, now)  # another process is sending it right now
        assert run_alerts(config, db).channels["webhook"].pending == [] and hook.received == []
        sender.kill()
        sender.wait()
        # it died mid-send: the claim is abandoned, the alert goes
        assert run_alerts(config, db).channels["webhook"].sent == 1 and len(hook.received) == 1
        assert run_alerts(config, db).channels["webhook"].pending == [] and len(hook.received) == 1
    finally:
        sender.kill()
        hook.close()


def test_a_claim_from_another_machine_expires(tmp_path, db):
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    urgent_item(db)
    from monitor.alerts.detect import detect_alerts

    alerts = detect_alerts(db, config)
    _claim_row(db, os.getpid() + 1, datetime.now(UTC) - timedelta(minutes=1), host="elsewhere.example")
    assert claim(db, alerts, "webhook") == []
    db.execute("delete from alerts_sent")
    _claim_row(db, os.getpid() + 1, datetime.now(UTC) - CLAIM_TIMEOUT - timedelta(minutes=1), host="elsewhere.example")
    assert [a.key for a in claim(db, alerts, "webhook")] == [alerts[0].key]
    assert claim(db, alerts, "webhook") == []  # now ours: claimed once


# ------------------------------------------------------------------ backfill


def _add_backfill_column(db) -> None:
    """The column another change adds with a migration (1 = no trustworthy time)."""
    if "backfill" not in db["mentions"].columns_dict:
        db.execute("alter table mentions add column backfill integer not null default 0")


def test_backfill_mentions_raise_no_urgent_alert(tmp_path, db, webhook):
    _add_backfill_column(db)
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    urgent_item(db, "old", "food poisoning last year")
    urgent_item(db, "new", "food poisoning today")
    db.execute("update mentions set backfill = 1 where external_id = 'old'")
    alerts = run_alerts(config, db).alerts
    assert [a.detail["mention_id"] for a in alerts] == [2] and len(webhook.received) == 1


def test_backfill_mentions_raise_no_sla_breach(tmp_path, db, webhook):
    _add_backfill_column(db)
    config = make_config(tmp_path, email=False, **only("sla_breaches", sla_min_priority=0))
    add_classified(db, "reviews", "old", "refund never came", "complaint", rating=1, hours_ago=0.5)
    add_classified(db, "reviews", "new", "refund never came either", "complaint", rating=1, hours_ago=0.5)
    refresh_queue(db, QueueConfig())
    due = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0).isoformat()
    db.execute("update queue_items set sla_due_at = ?", [due])
    db.execute("update mentions set backfill = 1 where external_id = 'old'")
    alerts = run_alerts(config, db).alerts
    assert [(a.kind, a.detail["mention_id"]) for a in alerts] == [("sla_breach", 2)]


def test_an_incident_of_backfill_mentions_only_is_not_new(tmp_path, db, webhook):
    _add_backfill_column(db)
    config = make_config(tmp_path, email=False, **only("incidents"))
    for external_id, ago in (("a", 1.0), ("b", 1.5), ("c", 2.0)):
        add_classified(db, "reviews", external_id, f"awful {external_id}", "complaint", rating=1, hours_ago=ago)
    estimate_and_attribute(db, config)
    db.execute("update mentions set backfill = 1")
    assert run_alerts(config, db).alerts == []
    db.execute("update mentions set backfill = 0 where external_id = 'a'")
    assert [a.kind for a in run_alerts(config, db).alerts] == ["incident"]


@pytest.mark.sqlite_only(reason="a store from before migration 7 exists only as a SQLite file")
def test_alerts_work_without_the_backfill_column(tmp_path, db, webhook):
    """A database from before the migration that adds the column (or code running ahead of it)."""
    config = make_config(tmp_path, email=False, **only("urgent_items", sla_breaches=True, sla_min_priority=0))
    item = urgent_item(db)
    if "backfill" in {row[1] for row in db.execute("pragma table_info(mentions)")}:
        db.execute("alter table mentions drop column backfill")
    due = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0).isoformat()
    db.execute("update queue_items set sla_due_at = ? where id = ?", [due, item])
    assert sorted(a.kind for a in run_alerts(config, db).alerts) == ["sla_breach", "urgent_item"]


@pytest.fixture
def webhook(monkeypatch):
    hook = Webhook()
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    yield hook
    hook.close()
