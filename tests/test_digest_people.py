"""The digest as a store manager reads it (issue 12): charts, whole numbers, words for intervals, local times,
links into the inbox, a capped overdue list, a plain-text part without Markdown escapes, yesterday by default.

``build_store`` is a realistic store (three weeks, two brands, two locations, one of them Chinese, a flagged
evening shift, an incident and a spike yesterday, overdue replies, hostile text); tests/test_digest_e2e.py
renders it in Chromium.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import loads_config
from monitor.digest import words
from monitor.digest.build import gather_digest, markdown_escape, render_digest, save_digest
from monitor.digest.send import build_message
from monitor.queue.items import mark_replied, refresh_queue
from monitor.shifts.stage import estimate_and_attribute
from monitor.store import UpsertCounts, finish_crawl_run, open_db, record_mentions, start_crawl_run

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
ZONE = "Europe/Berlin"
INBOX = "https://inbox.acme.example"
CONFIG = """
[storage]
path = "{db}"
[digest]
brand = "Acme"
output_dir = "out"
inbox_url = "{inbox}"
[trends]
timezone = "Europe/Berlin"
min_spike_complaints = 4
[schedule]
timezone = "Europe/Berlin"
[shifts]
min_shift_mentions = 5
min_shift_complaints = 3

[[locations]]
id = "downtown"
name = "Café Downtown"
timezone = "Europe/Berlin"
[[locations.shifts]]
name = "morning"
start = "06:00"
end = "14:00"
[[locations.shifts]]
name = "evening"
start = "14:00"
end = "22:00"

[[locations]]
id = "beijing"
name = "北京三里屯"
timezone = "Asia/Shanghai"
[[locations.shifts]]
name = "day"
start = "08:00"
end = "20:00"

[[sources]]
name = "reviews-downtown"
type = "yelp"
business_ids = ["acme-downtown"]
brand = "Acme"
location = "downtown"

[[sources]]
name = "rival-feed"
type = "feed"
urls = ["https://rival.example/feed"]
brand = "Rival"
"""


def yesterday(zone: str = ZONE) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date() - timedelta(days=1)


def _local(days_ago: int, hour: int, minute: int = 0, zone: str = ZONE) -> str:
    """``hour`` o'clock in ``zone`` on the digest's day ``days_ago`` (counted in the digest's zone, so a Beijing
    mention lands on the digest's yesterday whatever the hour the test runs: Beijing's date runs ahead)."""
    day = datetime.now(UTC).astimezone(ZoneInfo(ZONE)).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(UTC).isoformat()


def _add(db, source, ext, text, label, posted, topics=(), **fields):
    [mid] = record_mentions(db, source, [{"external_id": ext, "text": text, "posted_at": posted, "author": "pat",
                                          "kind": "review", **fields}]).mention_ids  # fmt: skip
    db["classifications"].insert(
        {"mention_id": mid, "label": label, "topics": json.dumps(list(topics)), "probs": "{}", "urgency": "[]",
         "score": 0.9, "lang": "en", "model": "test", "classified_at": posted},
        replace=True,
    )  # fmt: skip
    return mid


def build_store(tmp_path, inbox: str = INBOX):
    """Three weeks of Acme (downtown, Beijing) and Rival; yesterday an evening burst of complaints downtown."""
    text = CONFIG.format(db=tmp_path / "digest.db", inbox=inbox)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")  # for the CLI
    config = loads_config(text, tmp_path / "config.toml")
    db = open_db(config.storage_path)
    n = 0
    for days_ago in range(1, 22):
        for hour, label, topics in ((9, "praise", ()), (11, "neutral", ()), (16, "complaint", ["wait_time"]),
                                    (19, "complaint", ["staff_attitude"]), (20, "praise", ())):  # fmt: skip
            n += 1
            _add(db, "reviews-downtown", f"a{n}", f"Visit number {n}. Coffee by the staff.", label,
                 _local(days_ago, hour), topics, brand="Acme", location="downtown")  # fmt: skip
        n += 1
        _add(db, "rival-feed", f"r{n}", "fine", "praise" if days_ago % 3 else "complaint", _local(days_ago, 12),
             ["price_billing"], brand="Rival")  # fmt: skip
    for i in range(7):  # yesterday evening: a spike, an incident, a flagged shift
        _add(db, "reviews-downtown", f"burst{i}", f"cold coffee again, waited {20 + i} minutes", "complaint",
             _local(1, 17, i * 5), ["product_quality"], brand="Acme", location="downtown")  # fmt: skip
    _add(db, "reviews-downtown", "hostile", f"Terrible {HOSTILE}", "complaint", _local(1, 18), ["wait_time"],
         brand="Acme", location="downtown", author=HOSTILE, url="javascript:alert(1)")  # fmt: skip
    _add(db, "reviews-downtown", "bj", "服务很差，等了四十分钟", "complaint", _local(1, 13, zone="Asia/Shanghai"),
         ["wait_time"], brand="Acme", location="beijing", author="王芳")  # fmt: skip
    # The strongest complaints lead the digest: make sure the hostile and the Chinese ones are among them.
    db.execute(
        "update classifications set score = 0.99 where mention_id in "
        "(select id from mentions where external_id in ('hostile', 'bj'))"
    )
    _add(db, "reviews-downtown", "lang", "Kahvi oli kylmää", "unclassified_language", _local(1, 10), brand="Acme")
    estimate_and_attribute(db, config)
    refresh_queue(db, config.queue)
    ids = [row[0] for row in db.execute("select id from queue_items order by id").fetchall()]
    for item_id in ids[:10]:
        mark_replied(db, item_id, "Sorry about that", actor="dana")
    db.execute("update queue_items set sla_due_at = ? where id in (select id from queue_items "
               "where state in ('new', 'assigned') order by id desc limit 9)", [_local(1, 21)])  # fmt: skip
    ok = start_crawl_run(db, "reviews-downtown")
    finish_crawl_run(db, ok, UpsertCounts(new=7), [])
    failed = start_crawl_run(db, "rival-feed")
    finish_crawl_run(db, failed, UpsertCounts(), [f"rival-feed: HTTP 500 {HOSTILE}"])
    db.conn.commit()
    return config, db


def parsed_email(config, db):
    data = gather_digest(db, yesterday(), config.digest.brand, config)
    message = build_message(data, "Acme Digest <digest@acme.example>", ["manager@acme.example"])
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


# --------------------------------------------------------------------- email


def test_the_email_carries_its_charts_by_content_id(tmp_path):
    config, db = build_store(tmp_path)
    message = parsed_email(config, db)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "multipart/related"]
    related = message.get_payload()[1]
    html_part, *images = related.iter_parts()
    assert html_part.get_content_type() == "text/html" and len(images) >= 3
    html = html_part.get_content()
    cids = {part["Content-ID"].strip().strip("<>") for part in images}
    assert all(part.get_content_type() == "image/png" for part in images)
    assert all(part.get_content().startswith(b"\x89PNG") for part in images)
    referenced = set(re.findall(r'<img src="cid:([^"]+)"', html))
    assert referenced == cids  # every image shown, every shown image attached
    assert "data:" not in html  # mail clients do not show data: images
    alts = re.findall(r'<img [^>]*alt="([^"]*)"', html)
    assert any("Café Downtown evening" in alt for alt in alts) and any("Waiting time" in alt for alt in alts)


def test_the_plain_part_is_written_for_reading(tmp_path):
    config, db = build_store(tmp_path)
    plain = parsed_email(config, db).get_body(("plain",)).get_content()
    assert "\\" not in plain  # no Markdown escapes: "staff." not "staff\\."
    assert "Coffee by the staff." in plain and "reviews-downtown" in plain
    assert "Complaint topics" in plain and "Waiting time: " in plain and "Product quality: " in plain
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", plain)  # no wait_time, no unclassified_language
    assert "Language not covered: 1" in plain
    assert not re.search(r"\S·|·\S", plain)  # "(0 %)· median" read as one word
    assert "**" not in plain and "](" not in plain
    # Links into the inbox, the overdue list capped with a link to the rest.
    assert f"{INBOX}/items/" in plain
    assert re.search(rf"…and \d+ more overdue\. Open the inbox: {re.escape(INBOX)}/\?sla=overdue\n", plain)
    assert len(re.findall(r"overdue ·", plain)) == 5
    # Hostile text is plain text here; it must not have broken the line it is in.
    assert all("Terrible" not in line or "<script>" in line for line in plain.splitlines())


def test_counts_are_whole_numbers_and_times_local(tmp_path):
    config, db = build_store(tmp_path)
    message = parsed_email(config, db)
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for text in (plain, re.sub(r'(src|href|style)="[^"]*"|<style>.*?</style>', "", html, flags=re.S)):
        # A decimal is only ever a duration ("1.5 h", "2.1 d"), never a count or a rate.
        assert re.findall(r"\d+\.\d+(?!\s?[hd]\b)", text) == []
        assert "%) (" not in text and "–100 %" not in text  # no "100 % (28–100 %)"
        assert "+00:00" not in text and not re.search(r"\d{4}-\d\d-\d\dT\d\d", text) and "UTC" not in text
        assert text.count(ZONE) == 1  # the zone is named once, in the header
    day = yesterday()
    assert f"{day:%A %d %B %Y}" in plain  # the period in the header
    assert "clearly above the other shifts" in plain
    assert re.search(r"Café Downtown · evening 14:00–22:00 ⚑: (about )?\d+ complaints in (about )?\d+ mentions "
                     r"\(about \d+ in \d+\), clearly above the other shifts", plain)  # fmt: skip
    assert re.search(r"\d+ complaints at Café Downtown, \w{3} \d\d \w{3} \d\d:\d\d–\d\d:\d\d, evening shift", plain)


def test_hostile_text_is_inert_in_every_part(tmp_path):
    config, db = build_store(tmp_path)
    message = parsed_email(config, db)
    html = message.get_body(("html",)).get_content()
    assert "<script" not in html and "<img src=x" not in html and "javascript:" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert re.findall(r'<img src="([^"]+)"', html) and all(
        src.startswith("cid:") for src in re.findall(r'<img src="([^"]+)"', html)
    )
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs and all(h.startswith((INBOX + "/", "https://", "http://")) for h in hrefs)


def test_without_an_inbox_url_no_links_and_a_hint(tmp_path):
    config, db = build_store(tmp_path, inbox="")
    data = gather_digest(db, yesterday(), "Acme", config)
    html, plain = render_digest(data, "html"), render_digest(data, "text")
    assert "/items/" not in html and "/items/" not in plain and 'href="/' not in html and 'href="?' not in html
    assert "Set inbox_url under [digest]" in plain and "<code>inbox_url</code>" in html
    assert re.search(r"…and \d+ more overdue, in the inbox\.", plain)


# ---------------------------------------------------------------------- file


def test_the_html_file_embeds_its_charts(tmp_path):
    config, db = build_store(tmp_path)
    path = save_digest(gather_digest(db, yesterday(), "Acme", config), tmp_path / "d.html")
    html = path.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) >= 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in html and "<script" not in html and "cid:" not in html  # works offline
    assert "Net sentiment, last 14 days" in html and "Shifts, last 7 days" in html


def test_a_damaged_topics_value_costs_only_that_mention_its_topics(tmp_path):
    config, db = build_store(tmp_path)
    db.execute("update classifications set topics = '{not json' where mention_id = "
               "(select id from mentions where external_id = 'bj')")  # fmt: skip
    db.execute("update classifications set topics = '[3, \"wait_time\"]' where mention_id = "
               "(select id from mentions where external_id = 'hostile')")  # fmt: skip
    data = gather_digest(db, yesterday(), "Acme", config)
    shown = {m["excerpt"][:8]: m["topics"] for m in data["complaints"]}
    assert shown["服务很差，等了四"] == [] and shown["Terrible"] == ["Waiting time"]
    assert {t["topic"]: t["count"] for t in data["topics"]}["wait_time"] == 2


def test_charts_need_data(fresh_db):
    data = gather_digest(fresh_db, date(2026, 11, 20))
    assert data["charts"] == [] and "<img" not in render_digest(data, "html")


# ----------------------------------------------------------------- Markdown


def test_markdown_escapes_only_what_markdown_reads(tmp_path):
    assert markdown_escape("The staff. reddit-acme wait_time 3.5") == "The staff. reddit-acme wait_time 3.5"
    assert markdown_escape("[click](http://evil.example) *x* _y_ <b>") == (
        "\\[click\\](http://evil.example) \\*x\\* \\_y\\_ &lt;b&gt;"
    )
    assert markdown_escape("# not a heading") == "\\# not a heading"
    assert markdown_escape("1. not a list") == "1\\. not a list"
    config, db = build_store(tmp_path)
    text = save_digest(gather_digest(db, yesterday(), "Acme", config, charts=False), tmp_path / "d.md").read_text()
    assert text.startswith("# Acme — daily digest") and "## Complaint topics" in text
    assert "staff\\." not in text and "reviews\\-downtown" not in text
    assert "<script>" not in text and "&lt;script&gt;" in text


# --------------------------------------------------------------------- words


def test_words():
    assert [words.whole(v) for v in (2, 2.0, 1.5, 2.42, 11.996, None)] == ["2", "2", "about 2", "about 2", "12", "0"]
    assert words.plural(1, "complaint") == "1 complaint" and words.plural(2.4, "reply", "replies") == "about 2 replies"
    assert words.label_name("unclassified_language") == "Language not covered"
    assert words.topic_name("cleanliness_ambience") == "Cleanliness and ambience"
    assert words.shift_sentence({"shift": "evening", "mentions": 30.4, "complaints": 10.2, "rate": 0.335,
                                 "flagged": True, "p_value": 0.001}) == (
        "about 10 complaints in about 30 mentions (about 1 in 3), clearly above the other shifts"
    )  # fmt: skip
    few = {"shift": "morning", "mentions": 3, "complaints": 1, "rate": 1 / 3, "flagged": False, "p_value": None}
    assert words.shift_sentence(few) == "1 complaint in 3 mentions (about 1 in 3)"
    assert words.shift_sentence({**few, "complaints": 0.2, "rate": 0.07}) == "no complaints in 3 mentions"
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert words.overdue_by("2026-11-26T09:30:00+00:00", now) == "2.5 h overdue"
    assert words.local_time("2026-11-26T09:30:00+00:00", ZoneInfo(ZONE)) == "Thu 26 Nov 10:30"


# ----------------------------------------------------------------------- CLI


def test_the_cli_digest_covers_yesterday_by_default(tmp_path):
    config, db = build_store(tmp_path)
    db.conn.close()
    result = CliRunner().invoke(cli, ["--config", str(config.path), "digest"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / f"digest-{yesterday()}.html"
    assert result.output.strip() == f"digest written to {path}"
    assert f"{yesterday():%A %d %B %Y}" in path.read_text(encoding="utf-8")
    text = CliRunner().invoke(cli, ["--config", str(config.path), "digest", "--output", str(tmp_path / "d.txt")])
    assert text.exit_code == 0 and "\\" not in (tmp_path / "d.txt").read_text(encoding="utf-8")
