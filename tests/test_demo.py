"""The whole cycle on the demo sources: real Scrapy engine, real PRAW, classify, queue, digest, inbox."""

import threading
import urllib.request
from pathlib import Path

from monitor.config import load_config
from monitor.demo.run import run_demo
from monitor.store import open_db


def test_demo_cycle_end_to_end(tmp_path, tiny_model_dir):
    lines = []
    summary = run_demo(tmp_path / "demo", serve_inbox=False, echo=lines.append, model=str(tiny_model_dir))
    output = "\n".join(lines)
    assert {name: r["status"] for name, r in summary["crawl"].items()} == {
        "reviews-downtown": "ok",
        "reviews-airport": "ok",
        "reddit-acme": "ok",
    }, output
    assert summary["mentions"] >= 30
    assert summary["classified"] == summary["mentions"]
    assert summary["queued"] > 0
    assert "datasette" in output and "digest" in output

    db = open_db(summary["db"])
    locations = dict(db.execute("select source, group_concat(distinct location) from mentions group by source"))
    assert locations["reviews-downtown"] == "downtown" and locations["reviews-airport"] == "airport"
    # Chinese demo content goes to the multilingual model (the tiny model stands in for it here).
    assert db.execute("select count(*) from classifications where label = 'unclassified_language'").fetchone()[0] == 0
    assert db.execute("select count(*) from classifications where lang = 'zh'").fetchone()[0] > 0
    digest = Path(summary["digest"]).read_text(encoding="utf-8")
    assert "Source health" in digest and "reviews-airport" in digest
    assert "Shifts, last 7 days" in digest
    # Every located mention got an incident-time estimate and a shift.
    located = db.execute("select count(*) from mentions where location is not null and location != ''").fetchone()[0]
    assert db["incident_estimates"].count >= located > 0
    assert "incident times estimated for" in output

    # A second cycle adds nothing new: crawls are idempotent.
    again = run_demo(tmp_path / "demo", serve_inbox=False, echo=lines.append, model=str(tiny_model_dir))
    assert again["mentions"] == summary["mentions"]
    assert all(r["new"] == 0 for r in again["crawl"].values())

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
