from datetime import UTC, datetime, time, timedelta

from monitor.config import QueueConfig
from monitor.digest.build import gather_digest, markdown_escape, render_digest, write_digest
from monitor.queue.items import refresh_queue
from monitor.store import finish_crawl_run, record_mentions, start_crawl_run

from .helpers import XSS, add_classified


def seed(db):
    """Three mentions posted today (UTC), even just after midnight; returns that day."""
    now = datetime.now(UTC)
    older = max(now - timedelta(minutes=12), datetime.combine(now.date(), time(0, 0, 1), UTC))
    newer = older + (now - older) / 2
    add_classified(db, "reviews", "1", f"Waited an hour {XSS}", "complaint", rating=1, topics=["wait_time"],
                   url="javascript:alert(1)", posted_at=newer)  # fmt: skip
    add_classified(db, "reviews", "2", "Best flat white in town [click](http://evil.example)", "praise",
                   probs={"complaint": 0.01, "neutral": 0.04, "praise": 0.95}, posted_at=newer)  # fmt: skip
    add_classified(db, "reddit", "3", "overdue thing", "complaint", kind="post", posted_at=older)
    # Make one queue item overdue regardless of when the test runs.
    refresh_queue(db, QueueConfig())
    db.execute("update queue_items set sla_due_at = '2000-01-01T00:00:00+00:00' where mention_id = 3")
    run = start_crawl_run(db, "reviews")
    finish_crawl_run(db, run, record_mentions(db, "reviews", []), [])
    return now.date()


def test_digest_data(fresh_db):
    day = seed(fresh_db)
    data = gather_digest(fresh_db, day, brand="Acme")
    assert data["counts"] == {"complaint": 2, "praise": 1}
    assert data["topics"] == [{"topic": "wait_time", "name": "Waiting time", "count": 1}]
    assert [o["excerpt"] for o in data["overdue"]] == ["overdue thing"]
    assert [s["source"] for s in data["sources"]] == ["reviews"]
    assert (data["responses"].items, data["responses"].replied, data["responses"].sla_breaches) == (2, 0, 1)


def test_digest_reports_the_teams_replies(fresh_db):
    from monitor.queue.items import mark_replied

    day = seed(fresh_db)
    mark_replied(fresh_db, 1, "Sorry!")
    md = render_digest(gather_digest(fresh_db, day), "md")
    assert "1 of 2 items answered (50 %). Median first response: " in md and "1 SLA breach (1 still open)." in md


def test_html_digest_escapes_mention_text_and_unsafe_links(fresh_db):
    day = seed(fresh_db)
    html = render_digest(gather_digest(fresh_db, day), "html")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "javascript:" not in html
    assert "Best flat white" in html


def test_markdown_digest_escapes_markup(fresh_db, tmp_path):
    day = seed(fresh_db)
    path = write_digest(fresh_db, tmp_path / "d.md", day, "Acme")
    text = path.read_text()
    assert "<script>" not in text and "[click](http" not in text
    assert "\\[click\\](http://evil.example)" in text  # the brackets escaped: no link
    assert text.startswith("# Acme — daily digest")


def test_markdown_escape():
    assert markdown_escape("*bold* <b>\nnext") == "\\*bold\\* &lt;b&gt; next"


def test_the_digest_day_is_local(fresh_db, tmp_path):
    from datetime import date
    from zoneinfo import ZoneInfo

    from monitor.config import loads_config

    tokyo = ZoneInfo("Asia/Tokyo")
    for n, hour in enumerate((1, 23)):  # 01:00 and 23:00 on Nov 20 in Tokyo = Nov 19 16:00 and Nov 20 14:00 UTC
        when = datetime(2026, 11, 20, hour, tzinfo=tokyo).astimezone(UTC).isoformat()
        record_mentions(fresh_db, "s", [{"external_id": str(n), "text": "late", "posted_at": when}])
        fresh_db["classifications"].insert({"mention_id": n + 1, "label": "complaint", "probs": "{}", "topics": "[]"})
    config = loads_config('[schedule]\ntimezone = "Asia/Tokyo"\n', tmp_path / "config.toml")
    assert gather_digest(fresh_db, date(2026, 11, 20), config=config)["counts"] == {"complaint": 2}
    assert gather_digest(fresh_db, date(2026, 11, 20))["counts"] == {"complaint": 1}  # a UTC day without config
