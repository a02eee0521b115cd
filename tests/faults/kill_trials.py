"""``kill -9`` at random moments, then rerun and check nothing was lost, duplicated or left undone (issue 11).

Trial kinds:

* ``crawl-fresh``: ``monitor crawl`` of two search streams into an empty database;
* ``crawl-incremental``: the same after a clean crawl, with new items published since (the API's time filter
  hides anything older than the watermark, so a watermark that runs ahead loses items for good);
* ``classify``: ``monitor classify`` (classify → shifts → queue) over seeded mentions, tiny model;
* ``queue``: ``monitor classify`` with a ``[[team]]`` and ``auto_assign = true``, half of the trials from a
  database whose items are queued but unassigned (so the kill lands in auto-assignment).

Each trial kills the command's whole process group (``SIGKILL``, the crawl child included) at a moment drawn
uniformly from half the time an uninterrupted run takes to first change the database (interpreter start-up)
to that run's end, reruns the command at once to completion and checks: ``PRAGMA integrity_check`` and the
full-text index's check; no duplicate mentions; every item the server published (and so every item it
served) stored exactly once; no crawl run left ``running``; every mention classified exactly once; every
complaint / question queued; every open queue item assigned (queue trials).

    python tests/faults/kill_trials.py                 # the full campaign: 20 crawl, 20 classify, 10 queue
    python tests/faults/kill_trials.py --quick         # what CI runs (tests/faults/test_kill_trials.py)
    python tests/faults/kill_trials.py --trials 50 --seed 7 -v

Exit code 1 when any trial failed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.faults import harness as h  # noqa: E402

QUERIES = ["acme", "rival"]


@dataclass
class Trial:
    kind: str
    number: int
    delay: float = 0.0
    killed_running: bool = False  # the process was still running when killed
    at_kill: str = ""  # what the database held at the kill
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


@dataclass
class Sizes:
    base: int  # items per query before an incremental crawl (and for a fresh one)
    new: int  # items per query published before an incremental crawl
    mentions: int  # seeded mentions for classify / queue trials
    page_delay: float


QUICK = Sizes(base=200, new=100, mentions=600, page_delay=0.03)
FULL = Sizes(base=1000, new=500, mentions=2000, page_delay=0.02)


class Campaign:
    def __init__(self, workdir: Path, sizes: Sizes, rng: random.Random, verbose: bool = False) -> None:
        self.work, self.sizes, self.rng, self.verbose = workdir, sizes, rng, verbose
        self.model = str(h.tiny_model(workdir))
        self.anchor = h.now_utc() - timedelta(hours=1)  # the base items' newest time
        self.timing: dict[str, tuple[float, float]] = {}  # start kind -> (first change s, whole run s)
        self.snapshots: dict[str, Path] = {}
        self.trials: list[Trial] = []

    # ------------------------------------------------------------ set-up

    def api(self, incremental: bool) -> h.SearchApi:
        api = h.SearchApi(page_delay=self.sizes.page_delay)
        for query in QUERIES:  # the same ids and times every time, so a snapshot matches a new server
            api.publish(query, self.sizes.base, self.anchor)
        if incremental:
            spacing = timedelta(seconds=max(1, min(20, 3000 // max(self.sizes.new, 1))))
            for query in QUERIES:
                api.publish(query, self.sizes.new, h.now_utc(), spacing)
        return api

    def directory(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def crawl_config(self, directory: Path, api: h.SearchApi) -> Path:
        return h.write_config(directory, model=self.model, sources=[h.hn_source("hn", api.base_url, QUERIES)])

    def prepare(self, kinds: set[str]) -> None:
        """Snapshots the trials start from, and an uninterrupted run's timing per kind of start."""
        if kinds & {"crawl-fresh", "crawl-incremental"}:
            directory = self.directory("prep-crawl")
            with self.api(incremental=False) as api:
                config = self.crawl_config(directory, api)
                self.calibrate("crawl-fresh", config, ["crawl"], lambda: h.mention_count(directory / "monitor.db"))
            self.snapshots["crawled"] = directory / "monitor.db"
        if "crawl-incremental" in kinds:
            directory = self.directory("prep-incremental")
            h.copy_db(self.snapshots["crawled"], directory / "monitor.db")
            base = h.mention_count(directory / "monitor.db")
            with self.api(incremental=True) as api:
                config = self.crawl_config(directory, api)
                self.calibrate("crawl-incremental", config, ["crawl"],
                               lambda: h.mention_count(directory / "monitor.db") - base)  # fmt: skip
        if kinds & {"classify", "queue-seeded", "queue-queued"}:
            directory = self.directory("prep-seed")
            h.seed_mentions(directory / "monitor.db", self.sizes.mentions)
            self.snapshots["seeded"] = directory / "monitor.db"
        if kinds & {"classify", "queue-queued"}:
            # Its result is also the queue trials' "queued, unassigned" start.
            run_dir = self.directory("prep-classify")
            h.copy_db(self.snapshots["seeded"], run_dir / "monitor.db")
            config = h.write_config(run_dir, model=self.model)
            self.calibrate("classify", config, ["classify"], lambda: progress(run_dir / "monitor.db")[0])
            self.snapshots["queued"] = run_dir / "monitor.db"
        for start_from in ("seeded", "queued"):
            if f"queue-{start_from}" in kinds:
                run_dir = self.directory(f"prep-queue-{start_from}")
                h.copy_db(self.snapshots[start_from], run_dir / "monitor.db")
                config = h.write_config(run_dir, model=self.model, team=h.TEAM)
                column = 0 if start_from == "seeded" else 2
                self.calibrate(f"queue-{start_from}", config, ["classify"],
                               lambda d=run_dir, c=column: progress(d / "monitor.db")[c])  # fmt: skip

    def calibrate(self, key: str, config: Path, args: list[str], measure: Callable[[], int]) -> None:
        """Run once without a kill; note when the database first changed and when the run ended."""
        before = measure()
        proc = h.start(config, *args)
        began, first = time.monotonic(), None
        while proc.poll() is None:
            if first is None and measure() != before:
                first = time.monotonic() - began
            time.sleep(0.1)
        out, err = proc.communicate()
        total = time.monotonic() - began
        self.must(subprocess.CompletedProcess(args, proc.returncode, out, err), f"clean {key}")
        self.timing[key] = (first if first is not None else total / 2, total)

    def must(self, result, what: str) -> None:
        if result.returncode != 0:
            raise SystemExit(f"{what} failed before any kill (exit {result.returncode}):\n{result.stderr[-2000:]}")

    # ------------------------------------------------------------ trials

    def kill_at_random(self, trial: Trial, key: str, config: Path, args: list[str], count: Callable[[], str]) -> None:
        # From half-way through start-up to the end of an uninterrupted run: most kills land in the work.
        first, total = self.timing[key]
        trial.delay = self.rng.uniform(first / 2, total)
        proc = h.start(config, *args)
        time.sleep(trial.delay)
        trial.killed_running = proc.poll() is None
        h.kill_group(proc)
        proc.communicate()
        trial.at_kill = count()

    def crawl_trial(self, trial: Trial, incremental: bool) -> None:
        directory = self.directory(f"{trial.kind}-{trial.number}")
        db = directory / "monitor.db"
        if incremental:
            h.copy_db(self.snapshots["crawled"], db)
        with self.api(incremental) as api:
            config = self.crawl_config(directory, api)
            self.kill_at_random(trial, trial.kind, config, ["crawl"], lambda: f"{h.mention_count(db)} stored")
            rerun = h.run(config, "crawl")
            if rerun.returncode != 0:
                trial.failures.append(f"rerun exit {rerun.returncode}: {rerun.stderr.strip()[-300:]}")
            published, served = api.published(), api.served()
        with h.connect(db) as conn:
            self.common_checks(trial, conn)
            stored = h.stored_ids(conn, "hn")
            missing, extra = published - set(stored), set(stored) - published
            if missing:
                trial.failures.append(f"{len(missing)} of {len(published)} published items never stored "
                                      f"({len(missing & served)} of them were served)")  # fmt: skip
            if extra:
                trial.failures.append(f"{len(extra)} stored items the server never published")
            if h.running_crawls(conn):
                rows = conn.execute("select id, pid, started_at from crawl_runs where status = 'running'").fetchall()
                trial.failures.append(f"crawl_runs rows still 'running' (id, pid, started_at): {rows}")

    def classify_trial(self, trial: Trial, team: bool) -> None:
        directory = self.directory(f"{trial.kind}-{trial.number}")
        db = directory / "monitor.db"
        # Queue trials alternate: from unclassified mentions, and from queued-but-unassigned items.
        start_from = start_of(trial.kind, trial.number)
        h.copy_db(self.snapshots[start_from], db)
        config = h.write_config(directory, model=self.model, team=h.TEAM if team else ())

        def state() -> str:
            classified, queued, assigned = progress(db)
            return f"{classified} classified, {queued} queued, {assigned} assigned (from {start_from})"

        key = f"queue-{start_from}" if team else "classify"
        self.kill_at_random(trial, key, config, ["classify"], state)
        rerun = h.run(config, "classify", timeout=max(120.0, 10 * self.timing[key][1]))
        if rerun.returncode != 0:
            trial.failures.append(f"rerun exit {rerun.returncode}: {rerun.stderr.strip()[-300:]}")
        with h.connect(db) as conn:
            self.common_checks(trial, conn)
            if n := h.unclassified(conn):
                trial.failures.append(f"{n} mentions unclassified")
            if n := h.classification_excess(conn):
                trial.failures.append(f"{n} extra classifications")
            if n := h.unqueued(conn):
                trial.failures.append(f"{n} complaints/questions not queued")
            if team and (n := h.unassigned(conn)):
                trial.failures.append(f"{n} open queue items unassigned")

    def common_checks(self, trial: Trial, conn) -> None:
        if problems := h.integrity(conn):
            trial.failures.append("integrity: " + "; ".join(problems[:3]))
        if n := h.duplicates(conn):
            trial.failures.append(f"{n} duplicate mentions")

    def run_trial(self, kind: str, number: int) -> Trial:
        trial = Trial(kind, number)
        began = time.monotonic()
        try:
            if kind.startswith("crawl"):
                self.crawl_trial(trial, incremental=kind == "crawl-incremental")
            else:
                self.classify_trial(trial, team=kind == "queue")
        except Exception as exc:  # the harness itself: count it, keep going
            trial.failures.append(f"harness error: {type(exc).__name__}: {exc}")
        trial.seconds = time.monotonic() - began
        self.trials.append(trial)
        if self.verbose:
            state = "FAIL " + " | ".join(trial.failures) if trial.failures else "ok"
            print(f"  {kind:<18} #{number:<3} kill at {trial.delay:5.1f}s "
                  f"({'running' if trial.killed_running else 'had ended'}; {trial.at_kill}) → {state}",
                  flush=True)  # fmt: skip
        return trial


def start_of(kind: str, number: int) -> str:
    """Where a classify / queue trial starts: queue trials alternate seeded and queued-but-unassigned."""
    return "queued" if kind == "queue" and number % 2 == 1 else "seeded"


def progress(db: Path) -> tuple[int, int, int]:
    """Classified mentions, queue items, assigned queue items."""
    with h.connect(db) as conn:
        classified = conn.execute("select count(*) from classifications").fetchone()[0]
        queued, assigned = conn.execute("select count(*), count(nullif(assignee, '')) from queue_items").fetchone()
    return classified, queued, assigned


def plan(crawl: int, classify: int, queue: int) -> list[tuple[str, int]]:
    fresh = crawl - crawl // 2
    kinds = [("crawl-fresh", i) for i in range(fresh)] + [("crawl-incremental", i) for i in range(crawl - fresh)]
    return kinds + [("classify", i) for i in range(classify)] + [("queue", i) for i in range(queue)]


def table(trials: list[Trial], timing: dict[str, tuple[float, float]]) -> str:
    lines = [f"{'trial kind':<18} {'trials':>6} {'killed mid-run':>14} {'failed':>6} {'clean run s':>11}  what failed",
             "-" * 100]  # fmt: skip
    for kind in dict.fromkeys(t.kind for t in trials):
        group = [t for t in trials if t.kind == kind]
        failed = [t for t in group if t.failures]
        # Failures by kind ("crawl_runs rows still 'running'", "12 mentions unclassified"...), details in -v lines.
        kinds: dict[str, list[int]] = {}
        for t in failed:
            for failure in t.failures:
                kinds.setdefault(failure.split(" (")[0].split(":")[0], []).append(t.number)
        what = "; ".join(f"{k} (#{', #'.join(map(str, ns))})" for k, ns in kinds.items()) or "-"
        lines.append(f"{kind:<18} {len(group):>6} {sum(t.killed_running for t in group):>14} {len(failed):>6} "
                     f"{timing.get(kind, timing.get('queue-seeded', (0, 0)))[1]:>11.1f}  {what}")  # fmt: skip
    total_failed = sum(bool(t.failures) for t in trials)
    lines.append(f"{'total':<18} {len(trials):>6} {sum(t.killed_running for t in trials):>14} {total_failed:>6}")
    return "\n".join(lines)


def campaign(
    crawl: int,
    classify: int,
    queue: int,
    *,
    sizes: Sizes,
    seed: int,
    workdir: Path | None = None,
    verbose: bool = False,
) -> tuple[list[Trial], str]:
    """Run the trials; return them and the printed table."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="kill-trials-") as tmp:
        work = workdir or Path(tmp)
        trials = plan(crawl, classify, queue)
        camp = Campaign(work, sizes, rng, verbose)
        keys = {kind for kind, _ in trials if kind != "queue"}
        keys |= {f"queue-{start_of('queue', n)}" for kind, n in trials if kind == "queue"}
        camp.prepare(keys)
        for kind, number in trials:
            camp.run_trial(kind, number)
        return camp.trials, table(camp.trials, camp.timing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="total trials, split 2:2:1 crawl/classify/queue")
    parser.add_argument("--crawl", type=int, help="crawl trials (half fresh, half incremental)")
    parser.add_argument("--classify", type=int, help="classify trials")
    parser.add_argument("--queue", type=int, help="queue / auto-assign trials")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 crawl and 1 queue trial (CI)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, help="keep the trial databases here (default: a temp dir)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per trial")
    args = parser.parse_args(argv)
    split = (2, 0, 1) if args.quick else (args.trials * 2 // 5, args.trials * 2 // 5, args.trials // 5)
    crawl = args.crawl if args.crawl is not None else split[0]
    classify = args.classify if args.classify is not None else split[1]
    queue = args.queue if args.queue is not None else split[2]
    began = time.monotonic()
    trials, text = campaign(crawl, classify, queue, sizes=QUICK if args.quick else FULL, seed=args.seed,
                            workdir=args.workdir, verbose=args.verbose)  # fmt: skip
    print(text)
    print(f"{len(trials)} trials in {time.monotonic() - began:.0f} s, seed {args.seed}")
    return 1 if any(t.failures for t in trials) else 0


if __name__ == "__main__":
    sys.exit(main())
