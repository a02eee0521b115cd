"""Concurrency soak (issue 11): the daemon, the inbox, 4 web users and CLI writers on one database at once.

For ``--duration`` seconds (default 180):

* ``monitor run`` crawls a loopback search API that publishes new items all the time, classifies, queues
  and auto-assigns them (tiny model);
* ``monitor serve`` (waitress) answers 4 logged-in clients that view the inbox and items, search, add notes,
  assign and dismiss — with the session's CSRF token, as a browser would;
* CLI writers run ``monitor queue note`` and ``monitor classify`` in a loop.

Counted: HTTP 5xx, "database is locked" anywhere (HTTP bodies, CLI stderr, the daemon's log), failed CLI
runs, failed daemon jobs, and lost writes (a note whose POST got a redirect / 2xx, or whose CLI run exited 0,
that is not in the database afterwards). Loopback only; every loop ends at the deadline.

    python tests/faults/soak.py                  # 3 minutes
    python tests/faults/soak.py --duration 20    # what CI runs (tests/faults/test_soak.py)

Exit code 1 when any count that must be 0 is not.
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.faults import harness as h  # noqa: E402

USERS = ["ana", "ben", "cy", "di"]
PASSWORD = "soak-password-1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ITEM_LINK = re.compile(r'href="/items/(\d+)"')
WORDS = ["coffee", "rude", "cold", "latte", "staff", "wait", "\u00e9t\u00e9", "x"]


@dataclass
class Counts:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    http_5xx: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)  # where "database is locked" was seen
    notes_ok: list[str] = field(default_factory=list)  # note texts the writer was told were saved
    cli_runs: int = 0
    cli_failed: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def add(self, **kw) -> None:
        with self.lock:
            for key, value in kw.items():
                getattr(self, key).append(value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One browser: a cookie jar, the session's CSRF token, no redirects followed."""

    def __init__(self, port: int, name: str, counts: Counts, rng: random.Random) -> None:
        self.port, self.name, self.counts, self.rng = port, name, counts, rng
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.items: list[int] = []
        self.notes = 0

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        began = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            status = response.status
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    cookie = value.split(";", 1)[0]
                    key, _, val = cookie.partition("=")
                    self.cookies[key.strip()] = val.strip()
        except OSError as exc:
            status, text = 599, f"connection error: {exc}"
        finally:
            conn.close()
        with self.counts.lock:
            self.counts.requests += 1
            self.counts.by_status[status] = self.counts.by_status.get(status, 0) + 1
            self.counts.latencies.append(time.monotonic() - began)
        where = f"{self.name} {method} {path.split('?')[0]} -> {status}"
        if status >= 500:
            self.counts.add(http_5xx=f"{where}: {text[:200]!r}")
        if h.LOCK_TEXT in text:
            self.counts.add(locked=f"HTTP {where}")
        if match := CSRF.search(text):
            self.csrf = match.group(1)
        return status, text

    def login(self) -> None:
        self.request("GET", "/login")
        status, _ = self.request("POST", "/login?next=/", {"user": self.name, "password": PASSWORD,
                                                            "csrf_token": self.csrf})  # fmt: skip
        if status not in (302, 303):
            raise RuntimeError(f"{self.name} could not log in: HTTP {status}")
        self.request("GET", "/")  # a page, for the new session's CSRF token

    def step(self) -> None:
        action = self.rng.choices(["inbox", "search", "item", "note", "assign", "dismiss", "metrics"],
                                  weights=[3, 2, 2, 4, 2, 1, 1])[0]  # fmt: skip
        if action == "inbox" or not self.items:
            _, text = self.request("GET", f"/?page={self.rng.randint(1, 3)}")
            self.items = [int(i) for i in ITEM_LINK.findall(text)] or self.items
            if not self.items:
                _, text = self.request("GET", "/?state=all")
                self.items = [int(i) for i in ITEM_LINK.findall(text)]
            return
        item = self.rng.choice(self.items)
        if action == "search":
            self.request("GET", "/?" + urlencode({"q": self.rng.choice(WORDS)}))
        elif action == "item":
            self.request("GET", f"/items/{item}")
        elif action == "metrics":
            self.request("GET", "/metrics?by=" + self.rng.choice(["assignee", "source"]))
        elif action == "note":
            self.notes += 1
            text = f"soak note {self.name}-{self.notes}-{self.rng.randrange(10**9)}"
            status, _ = self.request("POST", f"/items/{item}/note", {"text": text, "csrf_token": self.csrf})
            if status < 400:
                self.counts.add(notes_ok=text)
        elif action == "assign":
            user = self.rng.choice(USERS)
            self.request("POST", f"/items/{item}/assign", {"user": user, "csrf_token": self.csrf})
        elif action == "dismiss":
            self.request("POST", f"/items/{item}/dismiss", {"reason": "soak", "csrf_token": self.csrf})
            self.items.remove(item)


def web_user(port: int, name: str, counts: Counts, deadline: float, seed: int) -> None:
    client = Client(port, name, counts, random.Random(seed))
    try:
        client.login()
    except RuntimeError as exc:
        counts.add(http_5xx=str(exc))
        return
    while time.monotonic() < deadline:
        client.step()
        time.sleep(client.rng.uniform(0.0, 0.05))


def cli_writer(config: Path, db: Path, kind: str, counts: Counts, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if kind == "note":
            with h.connect(db) as conn:
                ids = [row[0] for row in conn.execute("select id from queue_items order by random() limit 1")]
            if not ids:
                time.sleep(0.5)
                continue
            text = f"cli soak note {n}-{rng.randrange(10**9)}"
            result = h.run(config, "queue", "note", str(ids[0]), text, timeout=120)
        else:
            result = h.run(config, "classify", timeout=300)
        with counts.lock:
            counts.cli_runs += 1
        if h.LOCK_TEXT in result.stderr + result.stdout:
            counts.add(locked=f"CLI {kind}: {result.stderr.strip()[-200:]!r}")
        if result.returncode != 0:
            counts.add(cli_failed=f"{kind} exit {result.returncode}: {result.stderr.strip()[-200:]!r}")
        elif kind == "note":
            counts.add(notes_ok=text)
        time.sleep(rng.uniform(0.2, 1.0) if kind == "note" else rng.uniform(1.0, 3.0))


def publisher(api: h.SearchApi, deadline: float, stop: threading.Event) -> None:
    """New posts keep arriving, so every daemon pass crawls, classifies and queues something."""
    while time.monotonic() < deadline and not stop.wait(2.0):
        for query in ("acme", "rival"):
            api.publish(query, 5, h.now_utc(), timedelta(seconds=1))


@dataclass
class Result:
    duration: float
    counts: Counts
    daemon_failures: list[str]
    lost_notes: list[str]
    integrity: list[str]
    inbox_items: int
    notes_in_db: int

    def failures(self) -> dict[str, int]:
        c = self.counts
        return {"HTTP 5xx": len(c.http_5xx), "database is locked": len(c.locked), "lost writes": len(self.lost_notes),
                "failed CLI runs": len(c.cli_failed), "failed daemon jobs": len(self.daemon_failures),
                "integrity problems": len(self.integrity)}  # fmt: skip

    def table(self) -> str:
        c = self.counts
        lat = sorted(c.latencies) or [0.0]
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        rows = [("duration s", f"{self.duration:.0f}"), ("HTTP requests", c.requests),
                ("HTTP by status", " ".join(f"{k}:{v}" for k, v in sorted(c.by_status.items()))),
                ("HTTP p95 ms", f"{p95 * 1000:.0f}"), ("CLI runs", c.cli_runs),
                ("notes acknowledged", len(c.notes_ok)), ("queue items", self.inbox_items),
                ("notes in database", self.notes_in_db)]  # fmt: skip
        rows += list(self.failures().items())
        lines = [f"{name:<22} {value}" for name, value in rows]
        for label, samples in (("5xx", c.http_5xx), ("locked", c.locked), ("CLI", c.cli_failed),
                               ("daemon", self.daemon_failures), ("lost", self.lost_notes)):  # fmt: skip
            lines += [f"  {label}: {s}" for s in samples[:5]]
        return "\n".join(lines)


def soak(duration: float, workdir: Path, seed: int = 3) -> Result:
    from werkzeug.security import generate_password_hash

    model = str(h.tiny_model(workdir))
    counts = Counts()
    stop = threading.Event()
    with h.SearchApi() as api:
        for query in ("acme", "rival"):
            api.publish(query, 150, h.now_utc() - timedelta(minutes=5))
        schedule = '[schedule]\nprocess_every = "3s"\n\n[alerts]\nevery = "5s"\n'
        config = h.write_config(workdir, model=model, team=[{"name": u} for u in USERS],
                                sources=[h.hn_source("hn", api.base_url, ["acme", "rival"], every="4s")],
                                extra=schedule)  # fmt: skip
        db = workdir / "monitor.db"
        for args in (["crawl"], ["classify"]):  # something in the inbox from the start
            result = h.run(config, *args)
            if result.returncode != 0:
                raise SystemExit(f"set-up `monitor {' '.join(args)}` failed: {result.stderr[-1500:]}")
        port = free_port()
        users = ",".join(f"{u}:{generate_password_hash(PASSWORD)}" for u in USERS)
        env_extra = {"MONITOR_USERS": users, "MONITOR_SECRET_KEY": "soak-secret"}
        daemon_log = (workdir / "daemon.log").open("w")
        serve_log = (workdir / "serve.log").open("w")
        daemon = subprocess.Popen(h.monitor_cmd(config, "run"), cwd=h.REPO, env={**h.cli_env(), **env_extra},
                                  start_new_session=True, stdout=daemon_log, stderr=subprocess.STDOUT)  # fmt: skip
        server = subprocess.Popen(h.monitor_cmd(config, "serve", "--port", str(port)), cwd=h.REPO,
                                  env={**h.cli_env(), **env_extra}, start_new_session=True, stdout=serve_log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_for_port(port, server)
            began = time.monotonic()
            deadline = began + duration
            threads = [threading.Thread(target=publisher, args=(api, deadline, stop))]
            threads += [threading.Thread(target=web_user, args=(port, u, counts, deadline, seed + i))
                        for i, u in enumerate(USERS)]  # fmt: skip
            threads += [threading.Thread(target=cli_writer, args=(config, db, kind, counts, deadline, seed + 10 + i))
                        for i, kind in enumerate(["note", "classify"])]  # fmt: skip
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=duration + 400)
            elapsed = time.monotonic() - began
        finally:
            stop.set()
            for proc in (daemon, server):
                h.kill_group(proc, signal.SIGTERM)
            for proc in (daemon, server):
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    h.kill_group(proc)
                    proc.wait()
            daemon_log.close()
            serve_log.close()
    log_text = (workdir / "daemon.log").read_text(errors="replace") + (workdir / "serve.log").read_text(
        errors="replace"
    )
    daemon_failures = [line.strip() for line in log_text.splitlines()
                       if re.search(r"job \S+ failed|Traceback|ERROR", line)]  # fmt: skip
    counts.locked += [f"log: {line.strip()[:200]}" for line in log_text.splitlines() if h.LOCK_TEXT in line]
    with h.connect(db) as conn:
        saved = {row[0] for row in conn.execute("select text from queue_notes")}
        problems = h.integrity(conn)
        items = conn.execute("select count(*) from queue_items").fetchone()[0]
    lost = [text for text in counts.notes_ok if text not in saved]
    return Result(elapsed, counts, daemon_failures, lost, problems, items, len(saved))


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"`monitor serve` exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("`monitor serve` did not start listening")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load (default 180)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the database and logs here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = soak(args.duration, work, args.seed)
    print(result.table())
    return 1 if any(result.failures().values()) else 0


if __name__ == "__main__":
    sys.exit(main())
