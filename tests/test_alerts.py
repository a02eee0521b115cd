"""Alerts: each trigger, once-only delivery, channel failures, escaping and secrets.

Email goes through the real smtplib client to a real SMTP server (aiosmtpd) on 127.0.0.1; the
webhook is a real HTTP server on 127.0.0.1. Both listen on ports the OS picks.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner

from monitor.alerts.detect import excerpt
from monitor.alerts.ledger import sent_count
from monitor.alerts.render import webhook_payload
from monitor.alerts.run import run_alerts
from monitor.cli import cli
from monitor.config import ConfigError, QueueConfig, load_config, loads_config
from monitor.queue.items import refresh_queue
from monitor.scheduler import build_scheduler, process_job
from monitor.shifts.stage import estimate_and_attribute
from monitor.store import open_db

from . import test_digest_send as digest_tests
from .conftest import write_config
from .helpers import XSS, add_classified
from .test_digest_send import PASSWORD, USER, Handler, authenticator, free_port

smtp_server = digest_tests.smtp_server  # the loopback aiosmtpd fixture of the digest email tests
no_sleep = digest_tests.no_sleep  # retries never wait in tests (autouse there, and here)

WEBHOOK_ENV = "TEST_ALERTS_WEBHOOK_URL"
TOKEN = "T0001/B0002/hush-SECRET-token-42"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("MONITOR_SMTP_USER", "MONITOR_SMTP_PASSWORD", WEBHOOK_ENV):
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------ webhook server


class Webhook:
    """A loopback HTTP server recording POSTs; answers with ``statuses`` in turn (then 200)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.statuses: list[int] = []
        hook = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status == 200:
                    hook.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                # A careless server echoes the request path (where the token is) in its error page.
                answer = b"ok" if status == 200 else f"no such hook {self.path}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{TOKEN}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def payloads(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch):
    hook = Webhook()
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    yield hook
    hook.close()


# ------------------------------------------------------------------ config and data

BASE = """
[storage]
path = "m.db"
[digest]
brand = "Acme Coffee"
sender = "Acme Alerts <alerts@acme.example>"
smtp_host = "127.0.0.1"
smtp_port = {port}
smtp_security = "none"
smtp_timeout = "5s"
[trends]
timezone = "UTC"
[[locations]]
id = "downtown"
name = "Acme Downtown"
timezone = "UTC"
sources = ["reviews"]
[[sources]]
name = "reviews"
type = "schema_org"
urls = ["http://127.0.0.1:9/reviews"]
[alerts]
"""


def make_config(tmp_path, smtp_port=None, *, email=True, hook=True, **alerts):
    body = BASE.format(port=smtp_port or free_port())
    settings = {"inbox_url": "http://127.0.0.1:8080", **alerts}
    if email:
        settings["recipients"] = ["oncall@acme.example"]
    if hook:
        settings["webhook_url_env"] = WEBHOOK_ENV
    for key, value in settings.items():
        body += f"{key} = {json.dumps(value)}\n"
    return load_config(write_config(tmp_path, body))


ONLY = {"urgent_items": False, "incidents": False, "spikes": False, "sla_breaches": False}


def only(kind: str, **extra):
    return {**ONLY, kind: True, **extra}


@pytest.fixture
def db(tmp_path):
    db = open_db(tmp_path / "m.db")
    yield db
    db.conn.close()


def urgent_item(db, external_id="1", text=f"Food poisoning after lunch {XSS}", hours_ago=0.5, flags=("safety_health",)):
    mention_id = add_classified(db, "reviews", external_id, text, "complaint", rating=1, hours_ago=hours_ago,
                                urgency=flags, url="https://reviews.example/r/1")  # fmt: skip
    refresh_queue(db, QueueConfig())
    return db.execute("select id from queue_items where mention_id = ?", [mention_id]).fetchone()[0]


def run(config, db, **kwargs):
    return run_alerts(config, db, **kwargs)


# ------------------------------------------------------------------ triggers


def test_urgent_item_goes_by_email_and_webhook_once(tmp_path, db, smtp_server, webhook):
    handler = Handler()
    server = smtp_server(handler)
    config = make_config(tmp_path, server.port, **only("urgent_items"))
    item = urgent_item(db)
    add_classified(db, "reviews", "2", "cold coffee", "complaint", rating=2, hours_ago=0.5)  # not urgent
    refresh_queue(db, QueueConfig())

    first = run(config, db)

    assert first.ok and [(a.kind, a.key) for a in first.alerts] == [("urgent_item", str(item))]
    [got] = handler.received
    message = got["message"]
    assert got["rcpt_tos"] == ["oncall@acme.example"] and got["mail_from"] == "alerts@acme.example"
    # (Python folds a subject of this length onto its own line; unfolded, it has a leading space.)
    assert message["Subject"].strip() == "Acme Coffee alert: Safety / health: complaint on reviews at Acme Downtown"
    assert message["Auto-Submitted"] == "auto-generated"
    plain = message.get_body(("plain",)).get_content()
    assert "Food poisoning after lunch" in plain and f"http://127.0.0.1:8080/items/{item}" in plain
    assert "https://reviews.example/r/1" in plain and "Rating: 1/5" in plain
    [payload] = webhook.payloads()
    assert payload["text"].startswith("[Urgent] Safety / health: complaint on reviews at Acme Downtown")
    assert webhook.received[0]["path"] == f"/services/{TOKEN}"
    assert webhook.received[0]["headers"]["Content-Type"].startswith("application/json")

    # Again, and again after a "restart" (a fresh config and connection): nothing more is sent.
    second = run(config, db)
    db2 = open_db(tmp_path / "m.db")
    third = run(load_config(config.path), db2)
    db2.conn.close()
    assert len(handler.received) == 1 and len(webhook.received) == 1
    assert second.channels["email"].pending == [] and third.channels["webhook"].pending == []
    assert sent_count(db, "email") == sent_count(db, "webhook") == 1


def test_urgent_items_respect_flags_state_and_max_age(tmp_path, db, webhook):
    config = make_config(tmp_path, email=False, **only("urgent_items", flags=["legal_threat"]))
    urgent_item(db, "1", "I will sue you", flags=("legal_threat",))
    urgent_item(db, "2", "made me sick", flags=("safety_health",))  # not a configured flag
    urgent_item(db, "3", "my lawyer will call", hours_ago=30, flags=("legal_threat",))  # older than max_age
    dismissed = urgent_item(db, "4", "see you in court", flags=("legal_threat",))
    db.execute("update queue_items set state = 'dismissed' where id = ?", [dismissed])
    db.conn.commit()
    result = run(config, db)
    assert [a.detail["mention_id"] for a in result.alerts] == [1]
    assert webhook.payloads()[0]["text"].startswith("[Urgent] Legal threat: complaint on reviews")


def test_a_date_only_review_from_earlier_today_still_alerts(tmp_path, db, webhook):
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    urgent_item(db, "1", "food poisoning", hours_ago=0.1)
    midnight = (datetime.now(UTC) - timedelta(hours=20)).replace(hour=0, minute=0, second=0, microsecond=0)
    db.execute("update mentions set posted_at = ?", [midnight.isoformat()])  # the site gave only a date
    db.conn.commit()
    assert [a.detail["mention_id"] for a in run(config, db).alerts] == [1]


def _complaints_at_downtown(db, ids, hours_ago):
    for external_id, ago in zip(ids, hours_ago, strict=True):
        add_classified(db, "reviews", external_id, f"awful service {external_id}", "complaint", rating=1,
                       hours_ago=ago, topics=("wait_time",))  # fmt: skip


def test_incident_alerts_once_even_when_it_grows(tmp_path, db, webhook):
    config = make_config(tmp_path, email=False, **only("incidents"))
    _complaints_at_downtown(db, ["a", "b", "c"], [1.0, 1.5, 2.0])
    estimate_and_attribute(db, config)  # the shifts stage finds the incident

    first = run(config, db)

    [alert] = first.alerts
    assert alert.kind == "incident" and alert.key.startswith("downtown@")
    assert alert.title.startswith("Incident at Acme Downtown: 3 complaints within") and "(wait_time)" in alert.title
    text = webhook.payloads()[0]["text"]
    assert "Complaints: 3" in text and "awful service" in text and "/?location=downtown" in text

    # A fourth, earlier complaint moves the window's start: the same incident, not a new alert.
    _complaints_at_downtown(db, ["d"], [2.6])
    estimate_and_attribute(db, config)
    grown = run(config, db)
    [alert] = grown.alerts
    assert alert.detail["complaints"] == 4 and alert.key != first.alerts[0].key
    assert grown.channels["webhook"].pending == [] and len(webhook.received) == 1


def test_spike_alerts_once_per_brand_and_day(tmp_path, db, webhook):
    config = make_config(tmp_path, email=False, **only("spikes", spike_brands=["Acme Coffee"]))
    # The spike is today's: keep every post on one UTC day, even when the test runs just after midnight.
    real_now = datetime.now(UTC)
    now = max(real_now, datetime.combine(real_now.date(), datetime.min.time(), UTC) + timedelta(minutes=10))

    def ago(hours):
        return now - timedelta(hours=hours)

    for i in range(6):
        add_classified(db, "reviews", f"s{i}", f"terrible {i}", "complaint", posted_at=ago(0.01 * (i + 1)))
    add_classified(db, "reviews", "old", "fine", "neutral", posted_at=ago(24 * 5))  # history for the brand
    add_classified(db, "reviews", "rival", "bad", "complaint", posted_at=ago(0.1))
    for i in range(6):  # a competitor's spike: not in spike_brands
        add_classified(db, "reviews", f"r{i}", f"rival bad {i}", "complaint", posted_at=ago(0.02))
    db.execute("update mentions set brand = 'Acme Coffee' where external_id like 's%' or external_id = 'old'")
    db.execute("update mentions set brand = 'Rival' where external_id like 'r%'")
    db.conn.commit()

    result = run(config, db, now=now)

    assert [(a.kind, a.key) for a in result.alerts] == [("spike", f"Acme Coffee@{now.date().isoformat()}")]
    text = webhook.payloads()[0]["text"]
    assert text.startswith("[Spike] Complaint spike for Acme Coffee today: 6 complaints (normal 0.5)")
    assert "terrible 0" in text  # the latest complaints are quoted
    add_classified(db, "reviews", "s9", "worse", "complaint", posted_at=ago(0.001))
    db.execute("update mentions set brand = 'Acme Coffee' where external_id = 's9'")
    db.conn.commit()
    assert run(config, db, now=now + timedelta(seconds=5)).channels["webhook"].pending == []
    assert len(webhook.received) == 1


def test_sla_breach_with_minimum_priority(tmp_path, db, webhook):
    # Priority at the deadline: 1-star complaint 5.8, the 3-star one 3.8 (severity + 2 for a due SLA).
    config = make_config(tmp_path, email=False, **only("sla_breaches", sla_min_priority=5))
    add_classified(db, "reviews", "1", "still waiting for a refund", "complaint", rating=1, hours_ago=0.5)
    add_classified(db, "reviews", "2", "meh", "complaint", rating=3, hours_ago=0.5)
    add_classified(db, "reviews", "3", "ancient", "complaint", rating=1, hours_ago=0.5)
    refresh_queue(db, QueueConfig())
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=10)).replace(microsecond=0).isoformat()
    db.execute("update queue_items set sla_due_at = ?, priority = 6 where mention_id = 1", [due])
    db.execute("update queue_items set sla_due_at = ?, priority = 1 where mention_id = 2", [due])
    db.execute("update queue_items set sla_due_at = '2000-01-01T00:00:00+00:00', priority = 9 where mention_id = 3")
    db.conn.commit()

    result = run(config, db)

    [alert] = result.alerts
    assert alert.kind == "sla_breach" and alert.key.endswith(f"@{due}") and alert.detail["mention_id"] == 1
    assert alert.title == "SLA passed 10 min ago: complaint on reviews at Acme Downtown is unanswered"
    assert run(config, db).channels["webhook"].pending == [] and len(webhook.received) == 1
    # Reopened with a fresh SLA that passes again: a new breach, a new alert.
    later = (now - timedelta(minutes=1)).replace(microsecond=0).isoformat()
    db.execute("update queue_items set sla_due_at = ? where mention_id = 1", [later])
    db.conn.commit()
    assert run(config, db).channels["webhook"].sent == 1 and len(webhook.received) == 2


def test_triggers_off_and_no_channel(tmp_path, db, webhook):
    urgent_item(db)
    off = make_config(tmp_path, email=False, **ONLY)
    assert run(off, db).alerts == [] and webhook.received == []
    disabled = make_config(tmp_path, enabled=False)
    assert disabled.alerts.channels == [] and run(disabled, db).channels == {}
    # A dry run lists what would go and sends and records nothing.
    on = make_config(tmp_path, email=False)
    dry = run(on, db, dry_run=True)
    assert len(dry.channels["webhook"].pending) == 1 and webhook.received == [] and sent_count(db) == 0


# ------------------------------------------------------------------ failures


def test_failing_webhook_is_retried_next_run_while_email_goes(tmp_path, db, smtp_server, webhook, caplog):
    handler = Handler()
    server = smtp_server(handler)
    config = make_config(tmp_path, server.port, **only("urgent_items"))
    urgent_item(db, "1")
    urgent_item(db, "2", "they threatened a lawsuit", flags=("legal_threat",))
    webhook.statuses = [500]
    caplog.set_level(logging.DEBUG)

    first = run(config, db)

    assert len(handler.received) == 1  # one email carries both alerts
    assert first.channels["email"].sent == 2
    # a 5xx stops the channel for this pass: the second alert is not tried against a broken server
    assert first.channels["webhook"].sent == 0 and len(first.channels["webhook"].errors) == 1
    assert "answered HTTP 500" in first.channels["webhook"].errors[0]
    assert "tried again on the next run" in caplog.text and f"${WEBHOOK_ENV}" in caplog.text
    assert (sent_count(db, "email"), sent_count(db, "webhook")) == (2, 0)

    second = run(config, db)

    assert second.ok and second.channels["webhook"].sent == 2 and len(webhook.received) == 2
    assert second.channels["email"].pending == [] and len(handler.received) == 1  # not emailed twice
    # The URL's secret path never shows: not in the log, not in the errors (the server echoed it).
    assert "hush-SECRET" not in caplog.text and "hush-SECRET" not in " ".join(first.channels["webhook"].errors)


def test_unreachable_webhook_stops_the_run_for_that_channel(tmp_path, db, monkeypatch, caplog):
    port = free_port()
    monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{port}/hooks/{TOKEN}")
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    urgent_item(db, "1")
    urgent_item(db, "2")
    result = run(config, db)
    [error] = result.channels["webhook"].errors  # the second alert was not even tried
    assert error == (f"cannot reach webhook at 127.0.0.1 (URL from ${WEBHOOK_ENV}, alerts.webhook_url_env): "
                     "connection refused")  # fmt: skip
    assert sent_count(db) == 0 and "hush-SECRET" not in caplog.text


def test_redirects_are_not_followed_and_echoed_tokens_are_hidden(tmp_path, db, webhook, caplog):
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    urgent_item(db)
    webhook.statuses = [302, 404]
    first = run(config, db)
    assert "answered HTTP 302" in first.channels["webhook"].errors[0]
    assert "redirects are not followed" in first.channels["webhook"].errors[0]
    second = run(config, db)
    [error] = second.channels["webhook"].errors
    assert error.startswith(f"webhook at 127.0.0.1 (URL from ${WEBHOOK_ENV}, alerts.webhook_url_env) answered HTTP 404")
    assert "no such hook ***" in error and "hush" not in error and "T0001" not in error
    assert run(config, db).ok and len(webhook.received) == 1


def test_missing_webhook_variable_and_smtp_failure_are_reported(tmp_path, db, monkeypatch, caplog):
    config = make_config(tmp_path, **only("urgent_items"))  # SMTP port: nothing listens
    urgent_item(db)
    result = run(config, db)
    assert result.channels["webhook"].errors == [
        f"config error: alerts.webhook_url_env: environment variable {WEBHOOK_ENV} is not set"
    ]
    [error] = result.channels["email"].errors
    assert "cannot connect to SMTP server 127.0.0.1:" in error and "connection refused" in error
    assert sent_count(db) == 0 and "alerts: email failed, 1 alert(s) will be tried again" in caplog.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_password_never_logged(tmp_path, db, smtp_server, monkeypatch, caplog):
    handler = Handler()
    server = smtp_server(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    monkeypatch.setenv("MONITOR_SMTP_USER", USER)
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", "wrong-" + PASSWORD)
    config = make_config(tmp_path, server.port, hook=False, **only("urgent_items"))
    urgent_item(db)
    caplog.set_level(logging.DEBUG)
    result = run(config, db)
    [error] = result.channels["email"].errors
    assert "refused the login" in error and PASSWORD not in caplog.text and PASSWORD not in error
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", PASSWORD)
    assert run(config, db).ok and handler.received[0]["login"] == USER.encode()


# ------------------------------------------------------------------ hostile text


def test_script_in_mention_text_is_escaped_in_html_and_inert_in_json(tmp_path, db, smtp_server, webhook):
    handler = Handler()
    server = smtp_server(handler)
    config = make_config(tmp_path, server.port, webhook_format="full", **only("urgent_items"))
    item = urgent_item(db, text=f"Got sick {XSS}\n\nSubject: spoofed\r\nBcc: x@evil.example \u202egnp.exe")
    db.execute("update mentions set author = ?, url = 'javascript:alert(1)'", [XSS])
    db.conn.commit()
    run(config, db)

    message = handler.received[0]["message"]
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "<img src=x" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert f'href="http://127.0.0.1:8080/items/{item}"' in html
    plain = message.get_body(("plain",)).get_content()
    assert f"Got sick {XSS} Subject: spoofed Bcc: x@evil.example gnp.exe" in plain  # plain, one line
    assert "\u202e" not in plain and message["Bcc"] is None
    body = webhook.received[0]["body"]
    assert b"<" not in body and b">" not in body and b"&" not in body.replace(b"\\u0026", b"")
    payload = json.loads(body)
    assert "&lt;script&gt;" in payload["text"] and "<script>" not in payload["text"]
    assert XSS in payload["alert"]["excerpts"][0]  # the structured copy keeps the text; the bytes stay inert
    assert "Mention" not in payload["alert"]["links"]  # javascript: is never linked


def test_excerpts_are_truncated_and_cleaned():
    assert excerpt("a\x00b\x1b[31m  c\n\nd", 50) == "ab[31m c d"
    long = "word " * 200
    cut = excerpt(long, 60)
    assert len(cut) <= 60 and cut.endswith("…")
    assert excerpt(None, 10) == ""


def test_text_payload_shape():
    from monitor.alerts.detect import Alert

    alert = Alert("spike", "x@2026-01-01", "Complaint spike", facts=[("Brand", "<!channel> & co")])
    assert webhook_payload(alert) == {"text": "[Spike] Complaint spike\n  Brand: &lt;!channel&gt; &amp; co"}
    assert set(webhook_payload(alert, "full")) == {"text", "alert"}


# ------------------------------------------------------------------ config, scheduler, CLI


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('[alerts]\nflags = ["on_fire"]\n', "alerts.flags[0]", "expected one of safety_health"),
        ('[alerts]\nwebhook_url_env = "https://hooks.example/x"\n', "alerts.webhook_url_env", "environment variable"),
        ('[alerts]\nwebhook_format = "xml"\n', "alerts.webhook_format", "expected one of text, full"),
        ('[alerts]\nsla_min_priority = -1\n', "alerts.sla_min_priority", "0 or more"),
        ('[alerts]\nevery = "often"\n', "alerts.every", "expected a duration"),
        ('[alerts]\nrecipients = ["oncall@acme.example"]\n', "digest.smtp_host", "required when alerts.recipients"),
        ('[alerts]\ninbox_url = "inbox.local"\n', "alerts.inbox_url", "http(s) URL"),
    ],
)  # fmt: skip
def test_bad_alerts_config_names_the_key(body, key, fragment):
    with pytest.raises(ConfigError) as info:
        loads_config(body)
    assert info.value.key == key and fragment in str(info.value)


def test_scheduler_runs_alerts_on_their_interval_and_after_processing(tmp_path, db, webhook, tiny_model_dir):
    config = make_config(tmp_path, email=False, every="2m", **only("urgent_items"))
    jobs = {job.id: job for job in build_scheduler(config, BackgroundScheduler(timezone=UTC)).get_jobs()}
    assert jobs["alerts"].trigger.interval == timedelta(minutes=2) and jobs["alerts"].max_instances == 1
    quiet = make_config(tmp_path, email=False, hook=False)
    assert "alerts" not in {job.id for job in build_scheduler(quiet, BackgroundScheduler(timezone=UTC)).get_jobs()}

    config = make_config(tmp_path, email=False, **only("urgent_items"))
    model = f'[model]\ndefault = "{tiny_model_dir}"\nmultilingual = "{tiny_model_dir}"\n'
    text = config.path.read_text().replace("[storage]", model + "[storage]")
    config.path.write_text(text)
    add_classified(db, "reviews", "1", "the milk made my kid sick", "complaint", urgency=("safety_health",),
                   hours_ago=0.2)  # fmt: skip
    counts = process_job(str(config.path))  # queues the item, then alerts at once
    assert counts["queued"] == 1 and len(webhook.received) == 1
    process_job(str(config.path))
    assert len(webhook.received) == 1


def test_cli_alerts_dry_run_then_send(tmp_path, db, webhook):
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    urgent_item(db)
    runner = CliRunner()
    dry = runner.invoke(cli, ["--config", str(config.path), "alerts", "--dry-run", "--format", "json"])
    assert dry.exit_code == 0, dry.output
    payload = json.loads(dry.output)
    assert payload["dry_run"] and payload["channels"]["webhook"]["pending"] == 1 and webhook.received == []
    sent = runner.invoke(cli, ["--config", str(config.path), "alerts"])
    assert sent.exit_code == 0, sent.output
    assert "webhook sent now" in sent.output and "webhook: sent 1 of 1 pending" in sent.output
    again = runner.invoke(cli, ["--config", str(config.path), "alerts"])
    assert "webhook sent before" in again.output and len(webhook.received) == 1
    webhook.close()
    urgent_item(db, "2")
    failed = runner.invoke(cli, ["--config", str(config.path), "alerts"])
    assert failed.exit_code == 1 and "error: cannot reach webhook at 127.0.0.1" in failed.output
    assert TOKEN not in failed.output


def test_webhook_text_cannot_ping_a_channel_or_hide_a_link(tmp_path, db, webhook):
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    urgent_item(db, "1", "@channel food poisoning! [Claim your refund](https://evil.example/phish) <!here>")
    db.execute("update mentions set url = 'https://example.com/r/1\nInbox: https://evil.example/login'")
    run(config, db)
    [payload] = webhook.payloads()
    text = payload["text"]
    assert "@channel" not in text and "@\u2060channel" in text
    assert "](https://evil" not in text and "&lt;!here&gt;" in text
    assert "evil.example/login" not in text  # a URL with a line break is left out, not printed as a new line


def test_a_webhook_that_trickles_is_abandoned_at_the_deadline(tmp_path, db, monkeypatch):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def trickle():
        conn, _ = listener.accept()
        conn.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\n":
                conn.sendall(bytes([byte]))
                time.sleep(1.0)
        except OSError:  # the client gave up, as it should
            pass
        finally:
            conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{listener.getsockname()[1]}/hooks/{TOKEN}")
    config = make_config(tmp_path, email=False, **only("urgent_items"))
    config.alerts.webhook_timeout = timedelta(seconds=1)
    urgent_item(db, "1")
    began = time.monotonic()
    result = run(config, db)
    assert time.monotonic() - began < 8  # not the ~17 s the trickle would take
    assert "did not answer within 1s" in result.channels["webhook"].errors[0]
    listener.close()
