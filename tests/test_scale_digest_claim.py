"""The scheduled digest is claimed before it is sent: two processes never email one day's digest twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import QueueConfig, load_config
from monitor.digest import send
from monitor.digest.send import DigestSendError, claim_digest, deliver_digest
from monitor.queue.items import refresh_queue
from monitor.scheduler import digest_job
from monitor.store import open_db

from .helpers import add_classified
from .test_digest_send import Handler, LoopbackController, digest_config

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 11, 20)
SENDER = """
import datetime, json, sys
from monitor.config import load_config
from monitor.digest import send
from monitor.store import open_db
send._sleep = lambda _s: None
config = load_config(sys.argv[1])
db = open_db(config.storage_path)
path, sent_to = send.deliver_digest(config, db, datetime.date.fromisoformat(sys.argv[2]), once=True)
print(json.dumps(sent_to))
"""


class SlowHandler(Handler):
    """Takes a second to accept each message, so a second sender arrives while the first is still sending."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(1.0)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(send, "_sleep", lambda _s: None)
    monkeypatch.delenv("MONITOR_SMTP_USER", raising=False)
    monkeypatch.delenv("MONITOR_SMTP_PASSWORD", raising=False)


@pytest.fixture
def server():
    controllers = []

    def start(handler: Handler) -> LoopbackController:
        controller = LoopbackController(handler)
        controller.start()
        controllers.append(controller)
        return controller

    yield start
    for controller in controllers:
        controller.stop()


def setup_config(tmp_path: Path, port: int, recipients=("manager@acme.example",)):
    path = tmp_path / "config.toml"
    path.write_text(f'[storage]\npath = "m.db"\n\n{digest_config(port, recipients=recipients)}', encoding="utf-8")
    config = load_config(path)
    db = open_db(config.storage_path)
    add_classified(db, "reviews", "1", "Waited an hour", "complaint", rating=1, hours_ago=30)
    refresh_queue(db, QueueConfig())
    db.conn.close()
    return config


def test_two_concurrent_senders_send_one_email(tmp_path: Path, server) -> None:
    handler = SlowHandler()
    smtp = server(handler)
    config = setup_config(tmp_path, smtp.port)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MONITOR_SMTP_USER", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SENDER, str(config.path), DAY.isoformat()],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(results) == [[], ["manager@acme.example"]]  # one sent it, the other found it claimed
    assert len(handler.received) == 1
    db = open_db(config.storage_path)
    rows = db.execute("select kind, subject_key, channel, sent_at from alerts_sent").fetchall()
    assert [(kind, key, channel) for kind, key, channel, _ in rows] == [
        ("digest", DAY.isoformat(), "digest:manager@acme.example")
    ]
    assert rows[0][3]  # sent, not merely claimed
    db.conn.close()
    assert (tmp_path / "out" / f"digest-{DAY.isoformat()}.html").exists()  # written either way


def test_a_failed_send_releases_the_claim_and_a_partial_one_keeps_it(tmp_path: Path, server) -> None:
    refusing = server(Handler(refuse={"550 5.1.1 no such user": {"manager@acme.example"}}))
    config = setup_config(tmp_path, refusing.port)
    db = open_db(config.storage_path)
    with pytest.raises(DigestSendError):
        deliver_digest(config, db, DAY, once=True)
    assert db.execute("select count(*) from alerts_sent").fetchone()[0] == 0  # released: the next run sends

    handler = Handler()
    working = server(handler)
    config = setup_config(tmp_path, working.port)
    assert deliver_digest(config, db, DAY, once=True)[1] == ["manager@acme.example"]
    assert deliver_digest(config, db, DAY, once=True)[1] == []  # sent once; the next run does not repeat it
    assert len(handler.received) == 1
    # A manual `monitor digest --send` (once=False) still sends when asked to.
    assert deliver_digest(config, db, DAY)[1] == ["manager@acme.example"] and len(handler.received) == 2

    # Some recipients took it: it counts as sent for that list (sending again would repeat it for them).
    partial = server(Handler(refuse={"550 5.1.1 no such user": {"gone@acme.example"}}))
    config = setup_config(tmp_path, partial.port, recipients=("manager@acme.example", "gone@acme.example"))
    with pytest.raises(DigestSendError) as info:
        deliver_digest(config, db, DAY, once=True)
    assert info.value.sent_to == ["manager@acme.example"]
    assert claim_digest(db, DAY, ["gone@acme.example", "Manager@acme.example"]) is None
    db.conn.close()


def test_a_claim_left_by_a_dead_sender_is_taken_over(tmp_path: Path, server) -> None:
    handler = Handler()
    smtp = server(handler)
    config = setup_config(tmp_path, smtp.port)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    db = open_db(config.storage_path)
    claim = claim_digest(db, DAY, ["manager@acme.example"])
    assert claim is not None
    detail = json.loads(db.execute("select detail from alerts_sent").fetchone()[0])
    detail["_claim"]["pid"] = gone.pid  # as if the process that claimed it died mid-send
    with db.atomic():
        db.execute("update alerts_sent set detail = ?", [json.dumps(detail)])
    assert deliver_digest(config, db, DAY, once=True)[1] == ["manager@acme.example"]
    assert len(handler.received) == 1
    db.conn.close()


def test_the_scheduled_digest_job_claims_before_sending(tmp_path: Path, server) -> None:
    handler = Handler()
    smtp = server(handler)
    config = setup_config(tmp_path, smtp.port)
    assert digest_job(str(config.path), DAY.isoformat())[0].endswith(f"digest-{DAY.isoformat()}.html")
    assert digest_job(str(config.path), DAY.isoformat())  # written again, not sent again
    assert len(handler.received) == 1
