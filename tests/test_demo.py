"""The whole cycle on the demo sources: real Scrapy engine, real PRAW, classify, queue, digest, inbox."""

import threading
import urllib.request
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.demo.run import run_demo
from monitor.store import open_db

from .conftest import distinct_values


def test_demo_cycle_end_to_end(tmp_path, tiny_model_dir):
    lines = []
    summary = run_demo(tmp_path / "demo", serve_inbox=False, echo=lines.append, model=str(tiny_model_dir))
    output = "\n".join(lines)
    assert {name: r["status"] for name, r in summary["crawl"].items()} == {
        "reviews-downtown": "ok",
        "reviews-airport": "ok",
        "reviews-bean-street": "ok",
        "reddit-acme": "ok",
    }, output
    assert summary["mentions"] >= 30
    assert summary["classified"] == summary["mentions"]
    assert summary["queued"] > 0
    assert "datasette" in output and "digest" in output

    db = open_db(summary["db"])
    locations = distinct_values(db, "mentions", "location")
    assert locations["reviews-downtown"] == "downtown" and locations["reviews-airport"] == "airport"
    assert not locations["reviews-bean-street"]  # the competitor is none of our locations
    brands = distinct_values(db, "mentions", "brand")
    assert brands["reviews-bean-street"] == "Bean Street Coffee" and brands["reddit-acme"] == "Acme Coffee"
    # Chinese demo content goes to the multilingual model (the tiny model stands in for it here).
    assert db.execute("select count(*) from classifications where label = 'unclassified_language'").fetchone()[0] == 0
    assert db.execute("select count(*) from classifications where lang = 'zh'").fetchone()[0] > 0
    digest = Path(summary["digest"]).read_text(encoding="utf-8")  # yesterday's, the day the daily digest covers
    assert "reviews-airport" in digest and "Acme Coffee Downtown" in digest
    assert len(summary["digests"]) == 2 and all(Path(p).exists() for p in summary["digests"].values())
    # Every located mention got an incident-time estimate and a shift.
    located = db.execute("select count(*) from mentions where location is not null and location != ''").fetchone()[0]
    assert db["incident_estimates"].count >= located > 0
    assert "incident times estimated for" in output

    recovered = db.execute("select queue_item_id, outcome, revision_id from recoveries").fetchall()
    revisions = db["mention_revisions"].count
    assert [r[1] for r in recovered] == ["recovered"] and revisions == 1

    # A second cycle adds nothing new: crawls are idempotent, and the answered review is not answered again
    # (its site serves the customer's edit from the start, so no edit is undone).
    again = run_demo(tmp_path / "demo", serve_inbox=False, echo=lines.append, model=str(tiny_model_dir))
    assert again["mentions"] == summary["mentions"]
    assert all(r["new"] == 0 and r["updated"] == 0 for r in again["crawl"].values())
    assert db.execute("select queue_item_id, outcome, revision_id from recoveries").fetchall() == recovered
    assert db["mention_revisions"].count == revisions and db["replies"].count == 1

    # The inbox serves the queue over real HTTP.
    from werkzeug.serving import make_server

    from monitor.web.app import create_app

    server = make_server("127.0.0.1", 0, create_app(load_config(summary["config"])))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/") as response:
            html = response.read().decode()
        assert response.status == 200 and 'class="item' in html
    finally:
        server.shutdown()


@pytest.mark.sqlite_only(reason="the demo's store is a local SQLite file by design")
def test_a_demo_store_from_another_days_content_starts_fresh(tmp_path):
    from datetime import date

    from monitor.demo.run import CONTENT_DATE_KEY, start_fresh_if_stale

    path, today, lines = tmp_path / "monitor.db", date(2026, 11, 26), []
    assert not start_fresh_if_stale(path, today, lines.append)  # nothing there yet

    def store(content_date: str | None) -> None:
        db = open_db(path)
        if content_date:
            db["meta"].upsert({"key": CONTENT_DATE_KEY, "value": content_date}, pk="key")
        db.conn.close()

    store("2026-11-26")
    assert not start_fresh_if_stale(path, today, lines.append) and path.exists()  # same day: kept (idempotent)
    store("2026-11-25")
    assert start_fresh_if_stale(path, today, lines.append) and not path.exists()
    assert "content of 2026-11-25" in lines[-1]
    store(None)  # made by a demo that did not date its content
    assert start_fresh_if_stale(path, today, lines.append) and not path.exists()
    assert not any(tmp_path.glob("monitor.db-*"))
