"""Load burst: 100,000 mentions from 10 loopback sources crawled and classified while the inbox is in use.

    python bench/load.py                               # 100,000 mentions, the bundled model
    python bench/load.py --mentions 5000 --tiny        # a quick run with a tiny random model

Ten ``hackernews`` sources, each its own Algolia-like server on 127.0.0.1 (``tests/faults/harness.py``),
serve ``mentions / 10`` items each, 100 a page. One crawl process (``spiders.run``, what ``monitor crawl`` and
the daemon start; download delay and AutoThrottle off, as in ``bench/crawl.py``) crawls all ten; meanwhile
``monitor classify`` runs in a loop, as the daemon's processing job would, until every mention is classified;
``monitor serve`` answers one client that keeps loading the inbox, a search and an item page.

Printed: the burst's wall time (crawl start → last mention classified), sustained mentions/s over it, the
crawl's own rate, peak resident memory per role (each role's whole process group, children included) and
the sum at its peak, and inbox latency p50 / p95 / max during the burst with its error count.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import harness as h  # noqa: E402

SOURCES = 10
FAST = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "LOG_LEVEL": "WARNING", "ROBOTSTXT_OBEY": False}


def rss_by_group(groups: dict[str, int]) -> dict[str, int]:
    """Resident bytes of every process in each named process group (read from /proc)."""
    wanted = {pgid: role for role, pgid in groups.items()}
    totals = dict.fromkeys(groups, 0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            pgid = os.getpgid(int(entry))
            if pgid not in wanted:
                continue
            with open(f"/proc/{entry}/statm") as statm:
                pages = int(statm.read().split()[1])
        except (OSError, ValueError):
            continue  # gone meanwhile
        totals[wanted[pgid]] += pages * os.sysconf("SC_PAGE_SIZE")
    return totals


class Sampler(threading.Thread):
    """Peak RSS per role, and the peak of their sum, sampled every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.groups: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            sample = rss_by_group(dict(self.groups))
            for role, value in sample.items():
                self.peak[role] = max(self.peak.get(role, 0), value)
            self.peak_total = max(self.peak_total, sum(sample.values()))


class InboxClient(threading.Thread):
    """Loads the inbox, a search and an item page in turn; records each request's latency while ``timing``."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.timing = threading.Event()
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def get(self, path: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        began = time.monotonic()
        try:
            conn.request("GET", path, headers={"Host": f"127.0.0.1:{self.port}"})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            if response.status >= 500:
                self.errors.append(f"{path}: HTTP {response.status}")
        except OSError as exc:
            body = ""
            self.errors.append(f"{path}: {exc}")
        finally:
            conn.close()
        if self.timing.is_set():
            self.latencies.append(time.monotonic() - began)
        return body

    def run(self) -> None:
        items: list[str] = []
        n = 0
        while not self.stop.is_set():
            n += 1
            if n % 3 == 1:
                items = re.findall(r'href="/items/(\d+)"', self.get("/")) or items
            elif n % 3 == 2:
                self.get("/?q=" + ["coffee", "rude", "cold", "staff"][n % 4])
            elif items:
                self.get(f"/items/{items[n % len(items)]}")
            time.sleep(0.1)


def count(db: Path, sql: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def burst(mentions: int, tiny: bool, work: Path) -> dict[str, object]:
    per_source = mentions // SOURCES
    model = str(h.tiny_model(work)) if tiny else None
    apis = [h.SearchApi() for _ in range(SOURCES)]
    spacing = timedelta(seconds=max(1, min(20, 40 * 3600 // max(per_source, 1))))
    for i, api in enumerate(apis):
        api.publish(f"acme{i}", per_source, h.now_utc(), spacing)
        api.__enter__()
    sources = [h.hn_source(f"src{i}", api.base_url, [f"acme{i}"]) for i, api in enumerate(apis)]
    config = h.write_config(work, model=model, sources=sources)
    db = work / "monitor.db"
    if h.run(config, "init").returncode != 0:
        raise SystemExit("monitor init failed")
    sampler, port = Sampler(), free_port()
    server = h.start(config, "serve", "--port", str(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler.groups["inbox"] = server.pid
    sampler.start()
    client = InboxClient(port)
    try:
        wait_for(port)
        client.start()
        time.sleep(1.0)
        client.timing.set()
        settings = [a for k, v in FAST.items() for a in ("--setting", f"{k}={v}")]
        began = time.monotonic()
        crawl_log = (work / "crawl.log").open("w")  # a file, not a pipe: a chatty crawl must not block on it
        crawl = subprocess.Popen([sys.executable, "-m", "spiders.run", "--config", str(config), *settings, "--",
                                  *(s["name"] for s in sources)],
                                 cwd=h.REPO, env=h.cli_env(), start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=crawl_log)  # fmt: skip
        sampler.groups["crawl"] = crawl.pid
        crawl_done: list[float] = []  # when the crawl process exited, seen by a thread (classify runs block)
        watcher = threading.Thread(target=lambda: (crawl.wait(), crawl_done.append(time.monotonic() - began)))
        watcher.start()
        classify_runs = 0
        while True:
            classify = h.start(config, "classify")
            sampler.groups["classify"] = classify.pid
            _out, err = classify.communicate()
            classify_runs += 1
            if classify.returncode != 0:
                raise SystemExit(f"monitor classify failed: {err[-1500:]}")
            pending = count(db, "select count(*) from mentions m left join classifications c "
                                "on c.mention_id = m.id where c.mention_id is null")  # fmt: skip
            if crawl_done and pending == 0:
                break
        crawl_seconds = crawl_done[0]
        wall = time.monotonic() - began
        client.timing.clear()
        crawl_log.close()
        crawl_err = "\n".join(line for line in (work / "crawl.log").read_text(errors="replace").splitlines()
                              if "ERROR" in line or "Traceback" in line)  # fmt: skip
    finally:
        client.stop.set()
        sampler.stop.set()
        h.kill_group(server)
        server.wait()
        for api in apis:
            api.__exit__()
    stored = count(db, "select count(*) from mentions")
    classified = count(db, "select count(*) from classifications")
    lat = sorted(client.latencies) or [0.0]
    return {
        "mentions served": sum(len(a.served()) for a in apis), "mentions stored": stored,
        "mentions classified": classified, "sources": SOURCES, "model": "tiny (random 2-layer BERT)" if tiny else
        "bundled", "burst wall s": round(wall, 1), "sustained mentions/s": round(classified / wall, 1),
        "crawl wall s": round(crawl_seconds, 1), "crawl mentions/s": round(stored / crawl_seconds, 1),
        "classify runs": classify_runs, "peak RSS crawl MiB": mib(sampler.peak.get("crawl", 0)),
        "peak RSS classify MiB": mib(sampler.peak.get("classify", 0)),
        "peak RSS inbox MiB": mib(sampler.peak.get("inbox", 0)), "peak RSS all MiB": mib(sampler.peak_total),
        "inbox requests": len(client.latencies), "inbox p50 ms": round(statistics.median(lat) * 1000),
        "inbox p95 ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))] * 1000),
        "inbox max ms": round(lat[-1] * 1000), "inbox errors": len(client.errors),
        "crawl errors logged": " ".join(crawl_err.split())[-300:] or "-",
    }  # fmt: skip


def mib(value: int) -> int:
    return round(value / 2**20)


def wait_for(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("monitor serve did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=100_000, help="total mentions (default 100,000)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model instead of the bundled one")
    parser.add_argument("--workdir", type=Path, help="keep the database here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = burst(args.mentions, args.tiny, work)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    ok = result["mentions stored"] == result["mentions served"] == result["mentions classified"]
    return 0 if ok and not result["inbox errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
