"""Scale-out (issue 14): 1, 2 and 4 worker processes on PostgreSQL and Redis, and the inbox on PostgreSQL.

    python bench/scale.py                                  # 20,000 mentions, the bundled model, 1 / 2 / 4 workers
    python bench/scale.py --mentions 2000 --model tiny     # a quick run with the tiny random model
    python bench/scale.py --inbox --store-mentions 200000  # the inbox part only: PostgreSQL beside SQLite
    python bench/scale.py --workers 1,2,4,8 --inbox        # both parts

Everything runs on this machine, on loopback: a throwaway PostgreSQL cluster and a ``redis-server`` are started
in temporary folders by the same code the tests use (``tests/pg.py``, ``tests/redis_server.py``: fsync off, no
Redis persistence) and stopped at the end.

**Workers part.** The burst of ``bench/load.py``: ten ``hackernews`` sources, each its own Algolia-like server on
127.0.0.1 (``tests/faults/harness.py``), serving ``mentions / 10`` items each, 100 a page. For each worker count
N, ``monitor worker --processes N --threads T`` (``--threads``, default 2 as the command's) runs against
``[storage] url`` on PostgreSQL and ``[workers] broker`` on Redis; this script is the scheduler (it enqueues
what ``monitor run`` would: one ``crawl_source`` per source, or one ``classify``). Three timed phases, each from
the enqueue, with the workers already started and idle:

1. **crawl**: the ten crawls only (the workers' ``enqueue_classify`` is switched off), until every ``crawl_runs``
   row is closed;
2. **classify**: one ``classify`` job on what phase 1 stored (``enqueue_process`` switched off): the first
   batch invites another job, so all N x 2 threads join; until every mention is classified. Each process loads
   the model on its first batch, inside the timed window;
3. **burst**, on a second fresh database: the real pipeline, nothing switched off (a crawl enqueues ``classify``,
   ``classify`` enqueues ``process``: shifts and queue), until every crawled mention is classified.

Workers run through a small driver (``DRIVER``) that only makes those switches and drops Scrapy's politeness
delays (download delay and AutoThrottle off, as in ``bench/crawl.py`` and ``bench/load.py``), then runs the real
``monitor worker`` command. Printed per count: seconds, mentions/s and the speed-up against 1 worker in the same
run, for each phase; the machine's CPU busy share during the phase (all of it: PostgreSQL, Redis and the
loopback servers included) and the workers' peak resident memory. Each count checks that every served mention
was stored once, classified once, and that no claim is left.

**Inbox part** (``--inbox``). ``bench/inbox.py``'s store (``build_store``: ``--store-mentions`` classified mentions
and their queue items; cached in ``bench/.cache/``) is copied into a fresh PostgreSQL database made by
``monitor``'s own migrations (secondary indexes dropped during a ``COPY`` and recreated after; the rollup
triggers disabled during it and their dirty marks not written: the inbox does not read the rollups). The inbox
is then served by waitress on 127.0.0.1 from each store in turn and timed with ``bench/inbox.py``'s request set
(first page, 45 filtered searches, open items' pages; ``/healthz`` as the floor; the same two queries called
directly), ``--requests`` each, one at a time, and printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from tests.faults import harness as h  # noqa: E402

SOURCES = load.SOURCES
THREADS = 2

# Runs `monitor worker` after the switches a phase asks for (argv[1]: JSON). Forked worker processes inherit them.
DRIVER = """
import functools, json, sys
from monitor import crawl
from monitor.workers import enqueue

switches = json.loads(sys.argv[1])
crawl.crawl_scrapy_sources = functools.partial(crawl.crawl_scrapy_sources, settings=switches["settings"])
if switches.get("no_classify"):
    enqueue.enqueue_classify = lambda *args, **kwargs: None
if switches.get("no_process"):
    enqueue.enqueue_process = lambda *args, **kwargs: None
from monitor.cli import main
sys.argv = ["monitor", *sys.argv[2:]]
main()
"""


# ------------------------------------------------------------------ servers


@contextmanager
def servers() -> Iterator[tuple[Any, str]]:
    """(PgServer, redis URL): the tests' throwaway PostgreSQL cluster and redis-server, stopped on exit."""
    from _pytest.outcomes import OutcomeException

    from tests import pg, redis_server

    started = time.perf_counter()
    pg_gen = pg.pg_server.__wrapped__()  # the fixtures' own generators: start on next(), stop on close()
    redis_gen = redis_server.redis_server.__wrapped__()
    try:
        try:
            server = next(pg_gen)
            redis_url = next(redis_gen)
        except OutcomeException as exc:  # pytest.skip / fail: no binaries, no package, no start
            raise SystemExit(f"cannot start the servers: {exc.msg}") from None
        print(f"PostgreSQL {server.admin_url} and Redis {redis_url} started in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)  # fmt: skip
        yield server, redis_url
    finally:
        redis_gen.close()
        pg_gen.close()


def fresh_database(server: Any, name: str) -> str:
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')
        admin.execute(f'create database "{name}"')
    return server.url_for(name)


def drop_database(server: Any, name: str) -> None:
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


# ------------------------------------------------------------------ workers part


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class Phase:
    """Wall time, the machine's CPU busy share, and how the store's write lock was used between start() and stop().

    The PostgreSQL store takes one database-wide advisory lock in every write transaction (``monitor.db.pg``'s
    ``WRITE_LOCK``, the counterpart of SQLite's single writer): exclusively, or shared by scoped writers (one
    source's crawl, the classification claims). ``pg_locks`` is sampled every 50 ms for it: the share of samples
    in which someone held it exclusively, in which someone held it shared, and the mean number of sessions waiting.
    """

    def __init__(self, admin_url: str) -> None:
        from monitor.db.pg import WRITE_LOCK

        self.admin_url = admin_url
        self.key = (WRITE_LOCK >> 32, WRITE_LOCK & 0xFFFFFFFF)
        self.halt = threading.Event()
        self.samples: list[tuple[int, int, int]] = []  # (exclusive holders, shared holders, waiters)

    def _sample(self) -> None:
        import psycopg

        sql = ("select count(*) filter (where granted and mode = 'ExclusiveLock'), "
               "count(*) filter (where granted and mode = 'ShareLock'), count(*) filter (where not granted) "
               "from pg_locks where locktype = 'advisory' and classid = %s and objid = %s")  # fmt: skip
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self.halt.wait(0.05):
                self.samples.append(conn.execute(sql, list(self.key)).fetchone())

    def start(self) -> None:
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        self.cpu0, self.t0 = cpu_ticks(), time.monotonic()

    def stop(self) -> None:
        self.seconds = time.monotonic() - self.t0
        busy, total = cpu_ticks()
        self.cpu = 100.0 * (busy - self.cpu0[0]) / max(1, total - self.cpu0[1])
        self.halt.set()
        self.sampler.join()
        n = max(1, len(self.samples))
        self.lock_held = 100.0 * sum(1 for held, _, _ in self.samples if held) / n
        self.lock_shared = 100.0 * sum(1 for _, shared, _ in self.samples if shared) / n
        self.lock_waiting = sum(waiting for _, _, waiting in self.samples) / n


def write_config(work: Path, url: str, broker: str, model: str | None, apis: list[h.SearchApi]) -> Path:
    sources = [h.hn_source(f"src{i}", api.base_url, [f"acme{i}"]) for i, api in enumerate(apis)]
    path = h.write_config(work, model=model, sources=sources)
    text = path.read_text(encoding="utf-8").replace('[storage]\npath = "monitor.db"', f'[storage]\nurl = "{url}"')
    path.write_text(text + f'\n[workers]\nbroker = "{broker}"\n', encoding="utf-8")
    return path


class Workers:
    """``monitor worker --processes N`` (through DRIVER) in its own process group, logging to a file."""

    def __init__(self, config: Path, processes: int, switches: dict[str, Any], log: Path) -> None:
        self.log = log
        self.processes = processes
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", DRIVER, json.dumps(switches), "--config", str(config), "worker",
                 "--processes", str(processes), "--threads", str(THREADS)],
                cwd=ROOT, env=h.cli_env(), start_new_session=True, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(r"worker \d+ running", self.log.read_text(errors="replace"))) >= self.processes:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit(f"workers did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the supervisor stops its children; running jobs finish
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            h.kill_group(self.proc)
            self.proc.wait()


class Store:
    """Counts read from the phase's PostgreSQL database."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)

    def one(self, sql: str) -> int:
        return self.conn.execute(sql).fetchone()[0]

    def mentions(self) -> int:
        return self.one("select count(*) from mentions")

    def classified(self) -> int:
        return self.one("select count(*) from classifications")

    def crawls_closed(self) -> int:
        return self.one("select count(*) from crawl_runs where status != 'running'")

    def check(self, served: int) -> list[str]:
        problems = []
        stored, distinct = self.mentions(), self.one("select count(distinct (source, external_id)) from mentions")
        if stored != served or distinct != stored:
            problems.append(f"{served} served, {stored} stored, {distinct} distinct")
        excess = self.classified() - self.one("select count(distinct mention_id) from classifications")
        unclassified = self.one("select count(*) from mentions m left join classifications c on c.mention_id = m.id "
                                "where c.mention_id is null")  # fmt: skip
        if excess or unclassified:
            problems.append(f"{unclassified} unclassified, {excess} classified twice")
        if claims := self.one("select count(*) from classify_claims"):
            problems.append(f"{claims} classify claims left")
        failed = self.one("select count(*) from crawl_runs where status != 'ok'")
        if failed:
            problems.append(f"{failed} crawl runs not ok")
        return problems

    def close(self) -> None:
        self.conn.close()


def wait_until(predicate: Callable[[], bool], workers: Workers, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if workers.proc.poll() is not None:
            raise SystemExit(f"workers exited during {what}:\n{workers.log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}:\n{workers.log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def flush_broker(broker: str) -> None:
    import redis

    client = redis.Redis.from_url(broker)
    client.flushdb()
    client.close()


def run_phase(phase: str, n: int, config_path: Path, store: Store, server: Any, broker: str, served: int,
              timeout: float) -> dict[str, Any]:  # fmt: skip
    """One timed phase (crawl, classify or burst) with ``n`` fresh worker processes; returns its figures."""
    from monitor.config import load_config
    from monitor.workers.enqueue import enqueue_classify, enqueue_crawl

    config = load_config(config_path)
    flush_broker(broker)
    switches = {"settings": load.FAST, "no_classify": phase == "crawl", "no_process": phase == "classify"}
    workers = Workers(config_path, n, switches, config_path.parent / f"{phase}.log")
    sampler = load.Sampler()
    timer = Phase(server.admin_url)
    crawl_done: list[float] = []

    def done() -> bool:
        if phase == "classify":
            return store.classified() >= served
        if not crawl_done and store.crawls_closed() >= SOURCES:
            crawl_done.append(time.monotonic() - timer.t0)
        if phase == "crawl":
            return bool(crawl_done)
        return bool(crawl_done) and store.classified() >= store.mentions()

    try:
        workers.wait_ready()
        sampler.groups["workers"] = workers.proc.pid
        sampler.start()
        timer.start()
        if phase == "classify":
            enqueue_classify(config, process_after=False)
        else:
            enqueue_crawl(config, [f"src{i}" for i in range(SOURCES)])
        wait_until(done, workers, f"the {phase}", timeout)
        timer.stop()
    finally:
        sampler.stop.set()
        workers.stop()
    count = store.mentions() if phase == "crawl" else store.classified()
    print(f"  {n} worker(s), {phase}: {count:,} mentions in {timer.seconds:.1f} s "
          f"({count / timer.seconds:,.0f}/s, machine CPU busy {timer.cpu:.0f} %, write lock held exclusively "
          f"{timer.lock_held:.0f} %, shared {timer.lock_shared:.0f} %, {timer.lock_waiting:.1f} waiting)",
          file=sys.stderr)  # fmt: skip
    figures = {f"{phase} s": timer.seconds, f"{phase} /s": count / timer.seconds, f"{phase} cpu": timer.cpu,
               f"{phase} rss": load.mib(sampler.peak.get("workers", 0)), f"{phase} held": timer.lock_held,
               f"{phase} shared": timer.lock_shared,
               f"{phase} waiting": timer.lock_waiting}  # fmt: skip
    if phase == "burst":
        figures["burst crawl s"] = crawl_done[0]
    return figures


def run_count(n: int, server: Any, broker: str, model: str | None, apis: list[h.SearchApi], served: int, work: Path,
              timeout: float) -> dict[str, Any]:  # fmt: skip
    """The three phases for ``n`` worker processes; returns their figures."""
    row: dict[str, Any] = {"workers": n}
    problems: list[str] = []
    for part in ("staged", "burst"):
        db_name = f"scale_{n}_{part}"
        url = fresh_database(server, db_name)
        folder = work / f"w{n}-{part}"
        folder.mkdir()
        config_path = write_config(folder, url, broker, model, apis)
        init = h.run(config_path, "init")
        if init.returncode != 0:
            raise SystemExit(f"monitor init failed: {init.stderr[-2000:]}")
        store = Store(url)
        phases = ["crawl", "classify"] if part == "staged" else ["burst"]
        for phase in phases:
            row.update(run_phase(phase, n, config_path, store, server, broker, served, timeout))
        problems += [f"{part}: {p}" for p in store.check(served)]
        store.close()
        drop_database(server, db_name)
    row["problems"] = problems
    return row


def workers_part(args: argparse.Namespace, server: Any, broker: str, work: Path) -> list[str]:
    per_source = args.mentions // SOURCES
    model = str(h.tiny_model(work)) if args.model == "tiny" else None
    apis = [h.SearchApi() for _ in range(SOURCES)]
    spacing = timedelta(seconds=max(1, min(20, 40 * 3600 // max(per_source, 1))))
    for i, api in enumerate(apis):
        api.publish(f"acme{i}", per_source, h.now_utc(), spacing)
        api.__enter__()
    rows = []
    try:
        for n in args.workers:
            rows.append(run_count(n, server, broker, model, apis, per_source * SOURCES, work, args.timeout))
    finally:
        for api in apis:
            api.__exit__()
    return workers_table(args, rows)


def workers_table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    base = rows[0]
    model = "tiny (random 2-layer BERT)" if args.model == "tiny" else "bundled"
    lines = [
        f"{args.mentions // SOURCES * SOURCES:,} mentions from {SOURCES} loopback sources; PostgreSQL store, Redis "
        f"broker; model {model}; {THREADS} threads per worker process; {os.cpu_count()} CPUs; speed-up against "
        f"{base['workers']} worker(s) in this run",
        "",
        "| workers | crawl s | crawl /s | × | classify s | classify /s | × | burst s | burst /s | × | "
        "CPU busy crawl / classify / burst | write lock exclusive / shared (waiting) crawl; classify; burst | "
        "peak RSS workers MiB (burst) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for row in rows:
        cells = [str(row["workers"])]
        for phase in ("crawl", "classify", "burst"):
            cells += [f"{row[f'{phase} s']:.1f}", f"{row[f'{phase} /s']:,.0f}",
                      f"{base[f'{phase} s'] / row[f'{phase} s']:.2f}"]  # fmt: skip
        cells.append(" / ".join(f"{row[f'{p} cpu']:.0f} %" for p in ("crawl", "classify", "burst")))
        cells.append("; ".join(f"{row[f'{p} held']:.0f} / {row[f'{p} shared']:.0f} % ({row[f'{p} waiting']:.1f})"
                                for p in ("crawl", "classify", "burst")))  # fmt: skip
        cells.append(str(row["burst rss"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("burst: crawl part closed after " + ", ".join(
        f"{row['burst crawl s']:.1f} s ({row['workers']} w)" for row in rows))  # fmt: skip
    problems = [f"{row['workers']} worker(s): {p}" for row in rows for p in row["problems"]]
    lines.append("checks: " + ("; ".join(problems) if problems else "every served mention stored once and "
                               "classified once, no claim left, every crawl run ok, for every count"))  # fmt: skip
    return lines


# ------------------------------------------------------------------ inbox part

COPIED = ("mentions", "classifications", "queue_items")


def copy_to_postgres(sqlite_path: Path, url: str) -> float:
    """Copy ``bench/inbox.py``'s store into a fresh PostgreSQL database; returns the seconds it took."""
    import psycopg

    from monitor.store import open_db

    began = time.perf_counter()
    open_db(url).conn.close()  # the schema, by monitor's migrations
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set maintenance_work_mem = '512MB'")
        indexed = [*COPIED, "mentions_fts"]
        indexes = conn.execute(
            "select indexname, indexdef from pg_indexes where schemaname = current_schema() and tablename = any(%s) "
            "and indexname not in (select conname from pg_constraint)", [indexed]).fetchall()  # fmt: skip
        with conn.transaction():
            for name, _definition in indexes:
                conn.execute(f'drop index "{name}"')
            for table in COPIED:
                # The rollup triggers: off. Their dirty marks call monitor_utc_hour() per row (over 8 minutes for
                # 1,000,000 mentions), and the inbox does not read the rollups; the database is dropped at the end.
                conn.execute(f"alter table {table} disable trigger user")
                pg_columns = {r[0] for r in conn.execute(
                    "select column_name from information_schema.columns where table_schema = current_schema() "
                    "and table_name = %s", [table])}  # fmt: skip
                columns = [r[1] for r in src.execute(f"pragma table_info({table})") if r[1] in pg_columns]
                names = ", ".join(columns)
                rows = 0
                with conn.cursor().copy(f"copy {table} ({names}) from stdin") as copy:
                    for row in src.execute(f"select {names} from {table} order by rowid"):
                        copy.write_row(row)
                        rows += 1
                conn.execute(f"alter table {table} enable trigger user")
                print(f"  copied {rows:,} {table} rows ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
            # The search documents the disabled insert trigger would have stored (migration 14).
            conn.execute("insert into mentions_fts (mention_id, doc) select id, monitor_fts_document(title, text) "
                         "from mentions")  # fmt: skip
            for table in ("mentions", "queue_items"):
                conn.execute(f"select setval(pg_get_serial_sequence('{table}', 'id'), (select max(id) from {table}))")
        print(f"  indexes: recreating {len(indexes)} ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
        for _name, definition in indexes:
            conn.execute(definition)
        conn.execute("vacuum analyze")
    src.close()
    return time.perf_counter() - began


def inbox_part(args: argparse.Namespace, server: Any) -> list[str]:
    from waitress.server import create_server

    from bench import inbox as ib
    from monitor.config import loads_config
    from monitor.queue.listing import InboxFilter, list_items
    from monitor.store import open_db
    from monitor.web.app import create_app

    n = args.store_mentions
    ib.CACHE.mkdir(exist_ok=True)
    path = ib.CACHE / f"inbox-{n}.db"
    notes = []
    if not path.exists():
        began = time.perf_counter()
        print(f"building a store with {n:,} mentions (cached in {path})", file=sys.stderr)
        ib.build_store(path, n)
        notes.append(f"SQLite store built by bench/inbox.py's build_store in {time.perf_counter() - began:.0f} s")
    else:
        notes.append(f"SQLite store from bench/inbox.py's cache ({path.name})")
    open_db(path).conn.close()  # migrates a cache built by an older schema
    db_name = f"inbox_{n}"
    url = fresh_database(server, db_name)
    print(f"copying it into PostgreSQL ({db_name})", file=sys.stderr)
    seconds = copy_to_postgres(path, url)
    notes.append(f"copied into PostgreSQL (COPY, indexes recreated after, VACUUM ANALYZE) in {seconds:.0f} s")

    engines = {"SQLite": ib.CONFIG.format(db=path), "PostgreSQL": ib.CONFIG.replace('path = "{db}"', f'url = "{url}"')}
    rng = random.Random(5)
    searches = ib.filtered_searches(rng)
    results: dict[str, list[tuple[str, float, float, float]]] = {}
    counts = ""
    for engine, text in engines.items():
        config = loads_config(text, ib.CACHE / "config.toml")
        db = open_db(config.storage_target)
        if engine == "PostgreSQL":
            states = dict(db.execute("select state, count(*) from queue_items group by 1").fetchall())
            counts = (f"{db.execute('select count(*) from mentions').fetchone()[0]:,} mentions, "
                      f"{sum(states.values()):,} queue items ({states.get('new', 0) + states.get('assigned', 0):,} "
                      "open)")  # fmt: skip
        web = create_server(create_app(config, users={}), host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=web.run, daemon=True).start()
        base = f"http://127.0.0.1:{web.effective_port}"
        for i in range(10):  # warm the page cache and the app
            ib.time_http(base + "/")
            ib.time_http(base + "/?" + urllib.parse.urlencode(searches[i]))
        open_items = "select id from queue_items where state in ('new', 'assigned') order by priority desc limit 45"
        ids = [row[0] for row in db.execute(open_items)]
        rows = []
        for name, make_url in (
            ("GET /healthz (floor)", lambda i, b=base: b + "/healthz"),
            ("inbox first page", lambda i, b=base: b + "/"),
            ("filtered search", lambda i, b=base: b + "/?" + urllib.parse.urlencode(searches[i % len(searches)])),
            ("item page", lambda i, b=base, ids=ids: f"{b}/items/{ids[i % len(ids)]}"),
        ):
            rows.append((name, *ib.percentiles([ib.time_http(make_url(i)) for i in range(args.requests)])))
        for name, make_filter in (
            ("first page, SQL only", lambda i: InboxFilter()),
            ("filtered search, SQL only", lambda i: ib._filter_from(searches[i % len(searches)])),
        ):
            samples = []
            for i in range(args.requests):
                began = time.perf_counter()
                list_items(db, filters=make_filter(i), limit=50)
                samples.append((time.perf_counter() - began) * 1000)
            rows.append((name, *ib.percentiles(samples)))
        web.close()
        db.conn.close()
        results[engine] = rows
        print(f"  timed the inbox on {engine}", file=sys.stderr)
    drop_database(server, db_name)

    lines = [f"inbox on {counts} (bench/inbox.py's data); {args.requests} requests each, one at a time, waitress on "
             "127.0.0.1, ms", *(f"- {note}" for note in notes), "",
             "| what | SQLite p50 | SQLite p95 | PostgreSQL p50 | PostgreSQL p95 | PostgreSQL p99 |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for (name, s50, s95, _s99), (_name, p50, p95, p99) in zip(results["SQLite"], results["PostgreSQL"], strict=True):
        lines.append(f"| {name} | {s50:.1f} | {s95:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} |")
    worst = max(p95 for _name, _p50, p95, _p99 in results["PostgreSQL"][1:3])
    lines.append("")
    lines.append(f"PostgreSQL worst page p95 {worst:.1f} ms: {'meets' if worst < 150 else 'MISSES'} the inbox's "
                 "150 ms target")  # fmt: skip
    return lines


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    global THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=20_000, help="burst size (default 20,000)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts (default 1,2,4)")
    parser.add_argument("--model", choices=("bundled", "tiny"), default="bundled",
                        help="tiny: a random 2-layer BERT, to measure the machinery rather than the model")  # fmt: skip
    parser.add_argument("--threads", type=int, default=THREADS, help="jobs per worker process (default 2)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds any one phase may take")
    parser.add_argument("--inbox", action="store_true", help="also time the inbox on PostgreSQL beside SQLite")
    parser.add_argument("--inbox-only", action="store_true", help="only the inbox part")
    parser.add_argument("--store-mentions", type=int, default=1_000_000, help="inbox store size (default 1,000,000)")
    parser.add_argument("--requests", type=int, default=200, help="inbox requests per row (default 200)")
    parser.add_argument("--durable", action="store_true",
                        help="PostgreSQL with fsync and synchronous commit on, as deployed (default: off)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.durable:
        from tests.pg import DURABLE_ENV

        os.environ[DURABLE_ENV] = "1"
    args.workers = [int(v) for v in args.workers.split(",")]
    THREADS = args.threads
    began = time.perf_counter()
    lines = [f"bench/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}  "
             f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
             "PostgreSQL " + ("durable: fsync, synchronous commit, full-page writes on" if args.durable
                              else "as in the tests: fsync, synchronous commit, full-page writes off"), ""]  # fmt: skip
    failed = False
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp, servers() as (server, broker):
        if not args.inbox_only:
            part = workers_part(args, server, broker, Path(tmp))
            failed = not part[-1].startswith("checks: every")
            lines += part
        if args.inbox or args.inbox_only:
            lines += ["", *inbox_part(args, server)]
    lines += ["", f"total {time.perf_counter() - began:.0f} s"]
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
