"""Classification batches are claimed (monitor/classify/stage.py), on both store backends: two classifiers never
get one mention, a dead or expired claim is taken over, a claim that was taken over stores nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.classify import stage
from monitor.classify.model import Prediction
from monitor.classify.stage import claim_batch, claim_duration, classify_pending, release_claim
from monitor.config import ConfigError
from monitor.lease import new_holder_id
from monitor.store import open_db, record_mentions, write_transaction

from .pg import pg_server, pg_url  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated store on each backend (tests/pg.py's any_store; the PostgreSQL run skips without a server)."""
    target = request.getfixturevalue("pg_url") if request.param == "postgresql" else tmp_path / "test.db"
    db = open_db(target)
    try:
        yield db
    finally:
        db.conn.close()


MINUTE = timedelta(minutes=1)


class FakeClassifier:
    """Labels everything neutral and remembers what it was asked; ``during`` runs mid-batch (a rival worker)."""

    def __init__(self, during: Any = None) -> None:
        self.seen: list[str] = []
        self.during = during

    def detect(self, text: str) -> str:
        return "en"

    def classify(self, texts: list[str], langs: list[str] | None = None) -> list[Any]:
        self.seen += texts
        if self.during is not None:
            self.during()
        probs = {"complaint": 0.1, "neutral": 0.8, "praise": 0.1}
        return [("en", Prediction("neutral", 0.8, probs), "fake") for _ in texts]


def add_mentions(db: Any, count: int) -> None:
    record_mentions(db, "s", [{"external_id": f"e{i}", "text": f"mention {i}"} for i in range(count)])


def classified(db: Any) -> int:
    return db.execute("select count(*) from classifications").fetchone()[0]


def test_two_claimers_get_disjoint_batches_and_a_release_hands_one_back(any_store, monkeypatch):
    monkeypatch.setattr(stage, "CHUNK", 4)
    add_mentions(any_store, 10)
    first = claim_batch(any_store, "a", MINUTE)
    second = claim_batch(any_store, "b", MINUTE)
    third = claim_batch(any_store, "c", MINUTE)
    ids = [[r["id"] for r in rows] for rows in (first, second, third)]
    assert [len(i) for i in ids] == [4, 4, 2]
    assert len({*ids[0], *ids[1], *ids[2]}) == 10 and claim_batch(any_store, "d", MINUTE) == []
    release_claim(any_store, "b")
    assert [r["id"] for r in claim_batch(any_store, "e", MINUTE)] == ids[1]


def test_an_expired_or_dead_claim_is_taken_over_a_live_one_is_not(any_store, monkeypatch):
    monkeypatch.setattr(stage, "CHUNK", 3)
    add_mentions(any_store, 9)
    live = claim_batch(any_store, "elsewhere:2:cc", MINUTE)  # another machine's, within its time: left alone
    ids = [r[0] for r in any_store.execute("select id from mentions order by id").fetchall()]
    stale = [
        ("elsewhere:1:aa", ids[3], ids[5], "2000-01-01T00:00:00.000000+00:00"),  # expired
        (f"{socket.gethostname()}:999999999:bb", ids[6], ids[8], "2999-01-01T00:00:00.000000+00:00"),  # pid gone
    ]
    with write_transaction(any_store):
        for row in stale:
            any_store.execute("insert into classify_claims (holder, first_id, last_id, expires_at) values (?, ?, ?, ?)",
                           list(row))  # fmt: skip
    assert [r["id"] for r in live] == ids[:3]
    taken = claim_batch(any_store, "mine", MINUTE) + claim_batch(any_store, "mine2", MINUTE)
    assert sorted(r["id"] for r in taken) == ids[3:]
    assert claim_batch(any_store, "mine3", MINUTE) == []
    holders = {r[0] for r in any_store.execute("select holder from classify_claims").fetchall()}
    assert holders == {"elsewhere:2:cc", "mine", "mine2"}


def test_classify_pending_stores_each_mention_once_and_clears_its_claims(any_store, monkeypatch):
    monkeypatch.setattr(stage, "CHUNK", 7)
    add_mentions(any_store, 20)
    batches: list[int] = []
    fake = FakeClassifier()
    counts = classify_pending(any_store, fake, on_claim=batches.append)
    assert counts.classified == 20 == classified(any_store) and batches == [7, 7, 6]
    assert sorted(fake.seen) == sorted(f"mention {i}" for i in range(20))
    assert any_store.execute("select count(*) from classify_claims").fetchone()[0] == 0
    assert classify_pending(any_store, fake).classified == 0  # idempotent


def test_a_batch_whose_claim_was_taken_over_is_not_stored_twice(any_store, monkeypatch):
    """A stalled classifier (its claim expired) finishes after another took the batch over: its results are dropped."""
    monkeypatch.setattr(stage, "CHUNK", 5)
    monkeypatch.setenv(stage.CLAIM_ENV, "1s")
    add_mentions(any_store, 5)
    rival = FakeClassifier()

    def stall_then_lose_the_claim() -> None:
        # The claim expires while this classifier is busy; the rival takes the batch over and stores it.
        any_store.execute("update classify_claims set expires_at = '2000-01-01T00:00:00.000000+00:00'")
        if getattr(any_store.conn, "in_transaction", False):
            any_store.conn.commit()
        assert classify_pending(any_store, rival).classified == 5

    stalled = FakeClassifier(during=stall_then_lose_the_claim)
    assert classify_pending(any_store, stalled, max_batches=1).classified == 0
    assert classified(any_store) == 5 and len(rival.seen) == 5
    rows = any_store.execute("select distinct model from classifications").fetchall()
    assert [r[0] for r in rows] == ["fake"]


def test_a_failed_model_run_gives_its_batch_back(any_store):
    add_mentions(any_store, 3)

    class Broken(FakeClassifier):
        def classify(self, texts: list[str], langs: list[str] | None = None) -> list[Any]:
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        classify_pending(any_store, Broken())
    assert any_store.execute("select count(*) from classify_claims").fetchone()[0] == 0
    assert classify_pending(any_store, FakeClassifier()).classified == 3


def test_claim_duration_comes_from_the_environment() -> None:
    assert claim_duration({}) == timedelta(minutes=10)
    assert claim_duration({"MONITOR_CLASSIFY_CLAIM": "90s"}) == timedelta(seconds=90)
    with pytest.raises(ConfigError, match="MONITOR_CLASSIFY_CLAIM"):
        claim_duration({"MONITOR_CLASSIFY_CLAIM": "soon"})
    assert new_holder_id().startswith(socket.gethostname() + ":")
