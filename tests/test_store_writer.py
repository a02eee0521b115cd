"""The store writer process: protocol, error reporting, and what survives a dying crawl."""

from __future__ import annotations

import io
import pickle
import signal
from pathlib import Path
from typing import Any

import pytest

from monitor.store import open_db
from spiders.store_writer import HEADER, WriterProcess, read_frame, serve, write_frame


def mention(n: int, **fields: Any) -> dict[str, Any]:
    return {"external_id": f"id{n}", "kind": "post", "text": f"post {n}", "raw": {"n": n}, **fields}


def frames(*batches: list[dict[str, Any]]) -> io.BytesIO:
    stream = io.BytesIO()
    for batch in batches:
        write_frame(stream, pickle.dumps(batch))
    stream.seek(0)
    return stream


def test_serve_stores_batches_in_order_and_reports_once(tmp_path: Path) -> None:
    db_path = tmp_path / "m.db"
    open_db(db_path).conn.close()
    circular: dict = {}
    circular["self"] = circular  # raw JSON that cannot be written (a bad rating is now just dropped)
    inbox = frames([mention(1), mention(2)], [mention(1, text="edited"), mention(3, raw=circular)])
    outbox = io.BytesIO()
    serve(str(db_path), "src", inbox, outbox)
    outbox.seek(0)
    new, updated, unchanged, errors, count = pickle.loads(read_frame(outbox))
    assert (new, updated, unchanged, count) == (2, 1, 0, 1)
    assert errors[0].startswith("could not store 'id3'")  # one bad item cost only itself
    db = open_db(db_path)
    assert [r["text"] for r in db.query("select text from mentions order by external_id")] == ["edited", "post 2"]
    assert db.execute("select count(*) from mention_revisions").fetchone()[0] == 1


def test_a_frame_cut_short_ends_the_input_and_the_complete_ones_are_stored(tmp_path: Path) -> None:
    db_path = tmp_path / "m.db"
    open_db(db_path).conn.close()
    whole = frames([mention(1)]).getvalue()
    cut = HEADER.pack(1000) + b"only part of a batch"  # the crawl died while sending
    outbox = io.BytesIO()
    serve(str(db_path), "src", io.BytesIO(whole + cut), outbox)
    outbox.seek(0)
    assert pickle.loads(read_frame(outbox))[0] == 1
    assert open_db(db_path).execute("select count(*) from mentions").fetchone()[0] == 1


@pytest.mark.sqlite_only(reason="counts through the FTS5 table")
def test_writer_process_round_trip(tmp_path: Path) -> None:
    db_path = tmp_path / "m.db"
    db = open_db(db_path)
    writer = WriterProcess(str(db_path), "src")
    for start in range(0, 600, 200):
        writer.submit([mention(n) for n in range(start, start + 200)])
    counts, errors = writer.close(db)
    assert (counts.new, counts.updated, errors) == (600, 0, [])
    assert db.execute("select count(*) from mentions_fts where mentions_fts match 'post'").fetchone()[0] == 600


def test_a_writer_that_dies_is_reported_and_its_batches_are_stored_anyway(tmp_path: Path) -> None:
    db_path = tmp_path / "m.db"
    db = open_db(db_path)
    writer = WriterProcess(str(db_path), "src")
    writer.proc.send_signal(signal.SIGKILL)
    writer.proc.wait(timeout=10)
    writer.submit([mention(1), mention(2)])
    counts, errors = writer.close(db)
    assert counts.new == 2
    assert errors == [
        "store writer process exited with code -9 before reporting; its 1 batch(es) were stored by the crawl "
        "process instead"
    ]
    assert db.execute("select count(*) from mentions").fetchone()[0] == 2


def test_a_source_that_never_fills_a_batch_starts_no_process(tmp_path: Path) -> None:
    from scrapy.utils.test import get_crawler

    from monitor.config import SourceConfig
    from spiders.pipelines import StorePipeline
    from spiders.yelp import YelpSpider

    db_path = tmp_path / "m.db"
    crawler = get_crawler(YelpSpider, {"MONITOR_DB_PATH": str(db_path), "MONITOR_BATCH_SIZE": 200})
    crawler.spider = YelpSpider(source=SourceConfig(name="yelp-a", type="yelp", options={"business_ids": ["a"]}))
    pipeline = StorePipeline.from_crawler(crawler)
    pipeline.open_spider()
    for n in range(3):
        pipeline.process_item(mention(n))
    pipeline.close_spider()
    assert pipeline.writer is None
    pipeline.spider_closed(crawler.spider, "finished")
    run = next(open_db(db_path).query("select * from crawl_runs"))
    assert (run["source"], run["status"], run["new"]) == ("yelp-a", "ok", 3)
