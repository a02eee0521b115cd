import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.db import dialect_of
from monitor.store import (
    SCHEMA_VERSION,
    finish_crawl_run,
    get_mention,
    latest_crawl_runs,
    mention_revisions,
    migrate_db,
    open_db,
    record_mentions,
    schema_version,
    search_mentions,
    start_crawl_run,
)

# Text as strangers write it: emoji, RTL, combining marks, NUL bytes, very long.
hostile_text = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from("😀🙃👍🏽☕️‮‏שלום مرحبا 你好\x00\u200d'\"<>&;--")),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=20), st.integers(1000, 5000)),
)


def mention(external_id="1", **fields):
    return {"external_id": external_id, "kind": "review", "text": "ok", **fields}


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=hostile_text, title=st.one_of(st.none(), hostile_text), author=st.one_of(st.none(), st.text()))
def test_round_trip_preserves_text_exactly(fresh_db, text, title, author):
    raw = {"body": text, "nested": [title]}
    counts = record_mentions(fresh_db, "src", [mention("x", text=text, title=title, author=author, raw=raw)])
    stored = get_mention(fresh_db, counts.mention_ids[0])

    def kept(value: str | None) -> str | None:  # PostgreSQL's text cannot hold NUL: U+FFFD (docs/postgres-port.md)
        return value.replace("\x00", "\ufffd") if value is not None and dialect_of(fresh_db).postgres else value

    assert stored["text"] == kept(text)
    assert stored["title"] == kept(title)
    assert stored["author"] == kept(author)
    assert json.loads(stored["raw"]) == raw  # JSON writes NUL as an escape: kept exactly on both


def test_upsert_is_idempotent_and_edits_become_revisions(fresh_db):
    first = record_mentions(fresh_db, "src", [mention("1", text="cold coffee", rating=2), mention("2")])
    assert (first.new, first.updated, first.unchanged) == (2, 0, 0)
    again = record_mentions(fresh_db, "src", [mention("1", text="cold coffee", rating=2), mention("2")])
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2)
    assert fresh_db["mentions"].count == 2

    edited = record_mentions(fresh_db, "src", [mention("1", text="cold coffee, but they fixed it", rating=4)])
    assert (edited.new, edited.updated) == (0, 1)
    assert fresh_db["mentions"].count == 2
    [revision] = mention_revisions(fresh_db, first.mention_ids[0])
    assert revision["text_before"] == "cold coffee"
    assert revision["text_after"] == "cold coffee, but they fixed it"
    assert (revision["rating_before"], revision["rating_after"]) == (2.0, 4.0)
    assert get_mention(fresh_db, first.mention_ids[0])["rating"] == 4.0


def test_same_external_id_in_two_sources_is_two_mentions(fresh_db):
    record_mentions(fresh_db, "a", [mention("1")])
    record_mentions(fresh_db, "b", [mention("1")])
    assert fresh_db["mentions"].count == 2


def test_edit_drops_stale_classification(fresh_db):
    ids = record_mentions(fresh_db, "src", [mention("1", text="fine")]).mention_ids
    fresh_db["classifications"].insert({"mention_id": ids[0], "label": "neutral"})
    record_mentions(fresh_db, "src", [mention("1", text="actually terrible")])
    assert fresh_db["classifications"].count == 0


def test_failed_batch_stores_nothing(fresh_db):
    record_mentions(fresh_db, "src", [mention("keep")])
    try:
        record_mentions(fresh_db, "src", [mention("a"), {"text": "no external id"}])
    except KeyError:
        pass
    assert [r["external_id"] for r in fresh_db["mentions"].rows] == ["keep"]


@pytest.mark.sqlite_only(reason="SQLite's WAL and FTS5 tables (PostgreSQL: tests/test_pg_store.py)")
def test_migrations_are_versioned_and_rerunnable(tmp_path):
    db = open_db(tmp_path / "m.db")
    assert schema_version(db) == SCHEMA_VERSION
    assert migrate_db(db) == []
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert {"mentions", "mention_revisions", "classifications", "queue_items", "queue_events", "replies",
            "crawl_runs", "mentions_fts"} <= set(db.table_names())  # fmt: skip


def test_full_text_search_treats_input_as_terms(fresh_db):
    record_mentions(fresh_db, "src", [mention("1", text="the barista was rude"), mention("2", text="lovely latte")])
    assert [r["external_id"] for r in search_mentions(fresh_db, "barista")] == ["1"]
    assert search_mentions(fresh_db, 'rude" OR "latte') == []  # FTS syntax is not interpreted


def test_crawl_runs_record_counts_and_errors(fresh_db):
    run = start_crawl_run(fresh_db, "src")
    counts = record_mentions(fresh_db, "src", [mention("1")])
    finish_crawl_run(fresh_db, run, counts, ["source 'src': HTTP 500 on /reviews?page=2"])
    [latest] = latest_crawl_runs(fresh_db)
    assert (latest["status"], latest["new"], latest["errors"]) == ("partial", 1, 1)
    assert "HTTP 500" in json.loads(latest["messages"])[0]


def test_source_state_and_known_ids(fresh_db):
    from monitor.store import get_source_state, known_external_ids, set_source_state

    assert get_source_state(fresh_db, "hn", "newest") is None
    set_source_state(fresh_db, "hn", "newest", "2026-11-20T10:00:00+00:00")
    set_source_state(fresh_db, "hn", "newest", "2026-11-21T10:00:00+00:00")
    assert get_source_state(fresh_db, "hn", "newest") == "2026-11-21T10:00:00+00:00"
    record_mentions(fresh_db, "hn", [mention(str(i)) for i in range(700)])
    assert known_external_ids(fresh_db, "hn", ["5", "699", "700", "x"]) == {"5", "699"}
    assert known_external_ids(fresh_db, "other", ["5"]) == set()


@pytest.mark.sqlite_only(reason="SQLite's change counter and FTS5 table")
def test_search_index_follows_edits_and_unchanged_rows_are_not_rewritten(fresh_db):
    record_mentions(fresh_db, "src", [mention("1", text="the latte was cold", author_reach=5)])
    before = fresh_db.conn.total_changes
    record_mentions(fresh_db, "src", [mention("1", text="the latte was cold", author_reach=5)])
    assert fresh_db.conn.total_changes == before  # nothing written for an unchanged re-crawl
    record_mentions(fresh_db, "src", [mention("1", text="the latte was cold", author_reach=7)])  # reach only
    assert [r["author_reach"] for r in fresh_db["mentions"].rows] == [7]
    assert [r["external_id"] for r in search_mentions(fresh_db, "latte")] == ["1"]
    record_mentions(fresh_db, "src", [mention("1", text="the mocha was burnt")])
    assert search_mentions(fresh_db, "latte") == []
    assert [r["external_id"] for r in search_mentions(fresh_db, "mocha")] == ["1"]


def test_duplicate_ids_within_one_batch_become_an_edit(fresh_db):
    counts = record_mentions(fresh_db, "src", [mention("1", text="first"), mention("1", text="second")])
    assert (counts.new, counts.updated) == (1, 1)
    assert [r["text"] for r in fresh_db["mentions"].rows] == ["second"]
