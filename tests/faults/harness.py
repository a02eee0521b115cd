"""Shared pieces of the fault campaign (issue 11): a loopback search API, configs, CLI runs and DB checks.

Everything here talks to 127.0.0.1 only. The API speaks Algolia's Hacker News format (``search_by_date``,
newest first, ``numericFilters=created_at_i>T`` honoured, 100 hits a page), because that is a real platform
whose time filter hides what a crawl skipped; it records every item it served so a check can compare the
store with what the server handed out.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[2]
REDIRECT_ENV = "MONITOR_TEST_POSTGRES"  # monitor.db.redirect.ENV: the suite runs on PostgreSQL
PER_PAGE = 100
LOCK_TEXT = "database is locked"

COMPLAINTS = [
    "Waited 40 minutes and the barista was rude",
    "The coffee was cold and the staff never said sorry",
    "Charged twice for one latte, support never answered. Is anyone there?",
]
PRAISE = ["Great coffee, lovely staff", "Love the new cold brew, quick service"]
# Hostile but legal text: the six characters \ud800, NUL, RTL override, a very long word, markup.
HOSTILE = ["x \\ud800 y", "nul\x00byte", "\u202emoc.emca", "a" * 3000, "<script>alert(1)</script> rude"]


# ------------------------------------------------------------------ loopback search API


@dataclass
class ApiState:
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # query -> hits, newest first
    served: set[str] = field(default_factory=set)  # objectIDs handed out in any page
    lock: threading.Lock = field(default_factory=threading.Lock)
    page_delay: float = 0.0  # seconds per page: spreads a crawl over time so kills land inside it
    next_id: int = 1_000_000
    requests: int = 0


def make_hit(object_id: int, at: datetime, query: str) -> dict[str, Any]:
    n = object_id % 10
    text = (COMPLAINTS + PRAISE + HOSTILE)[n]
    return {
        "objectID": str(object_id),
        "created_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "created_at_i": int(at.timestamp()),
        "author": f"user{object_id % 37}",
        "title": f"{query} thread {object_id}" if n % 3 == 0 else None,
        "story_text": text if n % 3 == 0 else None,
        "comment_text": None if n % 3 == 0 else text,
        "parent_id": None if n % 3 == 0 else object_id - 1,
        "_tags": ["story"] if n % 3 == 0 else ["comment"],
    }


class SearchApi:
    """An Algolia-like ``/api/v1/search_by_date`` on 127.0.0.1 in a thread of this process."""

    def __init__(self, page_delay: float = 0.0) -> None:
        self.state = ApiState(page_delay=page_delay)
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path != "/api/v1/search_by_date":
                    return self.answer(404, {"message": "not found"})
                if state.page_delay:
                    time.sleep(state.page_delay)
                q = query.get("query", "")
                page = int(query.get("page", "0"))
                with state.lock:
                    state.requests += 1
                    hits = list(state.items.get(q, []))
                bound = query.get("numericFilters", "")
                if bound.startswith("created_at_i>"):
                    hits = [h for h in hits if h["created_at_i"] > int(bound.removeprefix("created_at_i>"))]
                chunk = hits[page * PER_PAGE : (page + 1) * PER_PAGE]
                with state.lock:
                    state.served.update(h["objectID"] for h in chunk)
                pages = (len(hits) + PER_PAGE - 1) // PER_PAGE
                self.answer(200, {"hits": chunk, "page": page, "nbPages": pages, "nbHits": len(hits),
                                  "hitsPerPage": PER_PAGE})  # fmt: skip

            def answer(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the crawl was killed mid-request

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> SearchApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def publish(self, query: str, count: int, newest: datetime, spacing: timedelta = timedelta(seconds=20)) -> None:
        """Add ``count`` hits for ``query``, the newest at ``newest``, each ``spacing`` older than the last."""
        with self.state.lock:
            start = self.state.next_id
            self.state.next_id += count
            fresh = [make_hit(start + i, newest - spacing * (count - 1 - i), query) for i in range(count)]
            self.state.items[query] = list(reversed(fresh)) + self.state.items.get(query, [])

    def published(self) -> set[str]:
        with self.state.lock:
            return {f"hn:{h['objectID']}" for hits in self.state.items.values() for h in hits}

    def served(self) -> set[str]:
        with self.state.lock:
            return {f"hn:{i}" for i in self.state.served}


# ------------------------------------------------------------------ configs


def toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(
    directory: Path,
    *,
    model: str | None,
    sources: Iterable[dict[str, Any]] = (),
    team: Iterable[dict[str, Any]] = (),
    extra: str = "",
    db_name: str = "monitor.db",
) -> Path:
    """A config.toml in ``directory``: the tiny model (or the bundled one), sources, a team, a location."""
    lines = ["[storage]", f"path = {toml(db_name)}", ""]
    if model:
        lines += ["[model]", f"default = {toml(model)}", f"multilingual = {toml(model)}", "batch_size = 16", ""]
    lines += ["[queue]", f"auto_assign = {'true' if team else 'false'}", ""]
    for member in team:
        lines.append("[[team]]")
        lines += [f"{k} = {toml(v)}" for k, v in member.items()]
        lines.append("")
    lines += ['[[locations]]', 'id = "downtown"', 'name = "Downtown"', 'timezone = "America/New_York"',
              'keywords = ["downtown"]', ""]  # fmt: skip
    for source in sources:
        lines.append("[[sources]]")
        lines += [f"{k} = {toml(v)}" for k, v in source.items()]
        lines.append("")
    path = directory / "config.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def hn_source(name: str, base_url: str, queries: list[str], **options: Any) -> dict[str, Any]:
    return {"name": name, "type": "hackernews", "brand": "Acme", "location": "downtown", "base_url": base_url,
            "search": queries, "max_pages": 100_000, "overlap": 5, **options}  # fmt: skip


TEAM = [
    {"name": "dana", "locations": ["downtown"], "languages": ["en"]},
    {"name": "sam", "sources": ["hackernews"]},
    {"name": "lee"},  # covers everything, so every item has someone
]

_TINY: dict[str, Path] = {}


def tiny_model(directory: Path) -> Path:
    """The randomly initialised 2-layer BERT of tests/conftest.py (built once per process)."""
    if "path" not in _TINY:
        sys.path.insert(0, str(REPO))
        from tests.conftest import build_tiny_model

        _TINY["path"] = build_tiny_model(directory / "tiny-model", ["negative", "neutral", "positive"])
    return _TINY["path"]


# ------------------------------------------------------------------ processes


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))})  # fmt: skip
    return env


def monitor_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "monitor.cli", "--config", str(config), *args]


def start(config: Path, *args: str, **kwargs: Any) -> subprocess.Popen:
    """``monitor ARGS`` in its own process group, so a kill takes its crawl child with it."""
    return subprocess.Popen(monitor_cmd(config, *args), cwd=REPO, env=cli_env(), start_new_session=True,
                            stdout=kwargs.pop("stdout", subprocess.PIPE), stderr=kwargs.pop("stderr", subprocess.PIPE),
                            text=True, **kwargs)  # fmt: skip


def run(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``monitor ARGS`` to completion; a run past ``timeout`` is killed and reported as rc 124."""
    proc = start(config, *args)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, 124, out, err + f"\n[harness] timed out after {timeout:g} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ checks


class Checks:
    """A connection for the checks below on either store engine (``MONITOR_TEST_STORE``): ``execute`` as sqlite3's;
    closed at the end of a ``with`` block."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.postgres = getattr(getattr(db, "dialect", None), "postgres", False)

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.db.execute(sql, list(params))

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> Checks:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connect(db_path: Path) -> Checks:
    sys.path.insert(0, str(REPO))
    from monitor.store import open_db

    return Checks(open_db(db_path, migrate=False))


def integrity(conn: Checks) -> list[str]:
    """``PRAGMA integrity_check`` plus the full-text index's own check; [] when both pass. (PostgreSQL: its write-ahead
    log keeps a killed writer's half-written pages out; amcheck is an extension this suite does not install.)"""
    if conn.postgres:
        return []
    problems = [row[0] for row in conn.execute("pragma integrity_check") if row[0] != "ok"]
    try:
        conn.execute("insert into mentions_fts(mentions_fts) values('integrity-check')")
    except sqlite3.DatabaseError as exc:
        problems.append(f"mentions_fts: {exc}")
    return problems


def duplicates(conn: Checks) -> int:
    return conn.execute(
        "select coalesce(sum(n - 1), 0) from (select count(*) n from mentions group by source, external_id) as per_item"
    ).fetchone()[0]


def stored_ids(conn: Checks, source: str | None = None) -> list[str]:
    sql = "select external_id from mentions" + (" where source = ?" if source else "")
    return [row[0] for row in conn.execute(sql, [source] if source else [])]


def unclassified(conn: Checks) -> int:
    return conn.execute(
        "select count(*) from mentions m left join classifications c on c.mention_id = m.id where c.mention_id is null"
    ).fetchone()[0]


def classification_excess(conn: Checks) -> int:
    """Classifications beyond one per mention (or for no mention at all)."""
    total = conn.execute("select count(*) from classifications").fetchone()[0]
    distinct = conn.execute(
        "select count(distinct c.mention_id) from classifications c join mentions m on m.id = c.mention_id"
    ).fetchone()[0]
    return total - distinct


def unqueued(conn: Checks, threshold: float = 0.5) -> int:
    """Mentions the queue should hold (complaint over the threshold, or a question) but does not."""
    from monitor.queue.items import needs_reply

    missing = 0
    rows = conn.execute(
        "select c.label, c.probs, c.urgency from classifications c "
        "left join queue_items q on q.mention_id = c.mention_id where q.id is null"
    )
    for label, probs, urgency in rows:
        prob = (json.loads(probs or "{}") or {}).get("complaint")
        if needs_reply(label, prob, json.loads(urgency or "[]"), threshold):
            missing += 1
    return missing


def unassigned(conn: Checks) -> int:
    return conn.execute(
        "select count(*) from queue_items where state in ('new', 'assigned') and coalesce(assignee, '') = ''"
    ).fetchone()[0]


def running_crawls(conn: Checks) -> int:
    return conn.execute("select count(*) from crawl_runs where status = 'running'").fetchone()[0]


def mention_count(db_path: Path) -> int:
    if os.environ.get(REDIRECT_ENV):  # the suite on PostgreSQL: the store stands in for the file
        try:
            with connect(db_path) as conn:
                return conn.execute("select count(*) from mentions").fetchone()[0]
        except Exception:  # noqa: BLE001 -- not there yet / not migrated yet, as a missing or locked file
            return 0
    if not db_path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("select count(*) from mentions").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def seed_mentions(db_path: Path, count: int, source: str = "seed", complaint_share: float = 0.6) -> None:
    """Store ``count`` mentions directly (no crawl): ratings make ~``complaint_share`` of them complaints."""
    sys.path.insert(0, str(REPO))
    from monitor.store import open_db, record_mentions

    now = now_utc()
    texts = COMPLAINTS + PRAISE + HOSTILE + ["¿Dónde está mi pedido? El café llegó frío", "咖啡是冷的，服务很差"]
    db = open_db(db_path)
    try:
        batch = []
        for i in range(count):
            complaint = (i * 7919 % 100) < complaint_share * 100
            batch.append({
                "external_id": f"seed:{i}", "url": f"https://example.test/{i}", "kind": "review",
                "author": f"a{i % 50}", "text": texts[i % len(texts)] + f" #{i}", "rating": 1 if complaint else 5,
                "posted_at": (now - timedelta(minutes=i)).isoformat(), "location": "downtown", "brand": "Acme",
                "raw": {"i": i},
            })  # fmt: skip
            if len(batch) == 500:
                record_mentions(db, source, batch)
                batch = []
        if batch:
            record_mentions(db, source, batch)
    finally:
        db.conn.close()


def copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of an SQLite database (WAL included) through the backup API; on PostgreSQL (the suite's
    second engine) a new database made from the source as its template."""
    if os.environ.get(REDIRECT_ENV):
        import psycopg

        sys.path.insert(0, str(REPO))
        from monitor.db import redirect

        source, target = redirect.database_name(src), redirect.database_name(dst)
        with psycopg.connect(os.environ[REDIRECT_ENV], autocommit=True) as admin:
            admin.execute(f'drop database if exists "{target}" with (force)')
            admin.execute(f'create database "{target}" template "{source}"')
        return
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
