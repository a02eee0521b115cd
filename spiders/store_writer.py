"""Store a source's mentions from a child process, so the crawl process only downloads and parses.

A Scrapy crawl is one busy Python thread. Storing in a thread of the same process
(JSON-encoding ``raw``, building SQL parameters) competes with it for the GIL, and
on a fast listing the crawl ended up waiting for the writer. A child process
stores on another core instead: the crawl pickles each batch (a C loop, ~5 µs a
mention) and a sender thread writes it to the child's stdin, so a slow or
still-starting child never blocks the reactor.

Protocol: length-prefixed pickle frames. Parent → child (stdin): one list of
mentions per frame; end of input ends the work. Child → parent (stdout): one
final frame ``(new, updated, unchanged, errors)`` once every batch is stored.
The child answers only at the end, so neither side can block on a full pipe
while the other waits. If the crawl process dies, the child sees end of input,
stores every complete batch it received and exits.

Run as ``python -m spiders.store_writer DB_PATH SOURCE`` (started by :class:`WriterProcess`).
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import struct
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from monitor.store import UpsertCounts, record_mentions

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADER = struct.Struct("<Q")
MAX_ERRORS = 200  # a crawl run keeps 50 messages; the rest only need counting


def store_batch(db: Any, source: str, batch: list[dict[str, Any]]) -> tuple[UpsertCounts, list[str]]:
    """Store one batch in one transaction; if that fails, item by item, so one bad item costs only itself."""
    counts, errors = UpsertCounts(), []
    try:
        counts.add(record_mentions(db, source, batch))
    except Exception as exc:  # noqa: BLE001 - one bad item must not cost the whole batch
        logger.warning("source %r: batch of %d failed (%s); storing items one by one", source, len(batch), exc)
        for mention in batch:
            try:
                counts.add(record_mentions(db, source, [mention]))
            except Exception as item_exc:  # noqa: BLE001
                errors.append(f"could not store {mention.get('external_id')!r}: {item_exc}")
    counts.mention_ids = []  # the crawl does not need them, and they would only cross the pipe
    return counts, errors


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame, or None at end of input (a frame cut short by a dying parent counts as the end)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


# ------------------------------------------------------------------- child


def serve(db_path: str, source: str, inbox: BinaryIO, outbox: BinaryIO) -> None:
    """Child side: store every batch read from ``inbox``, then write one result frame to ``outbox``."""
    from monitor.store import open_db

    total, errors = UpsertCounts(), []
    try:
        db = open_db(db_path, migrate=False)  # the crawl process migrated it before starting us
    except Exception as exc:  # noqa: BLE001 - reported to the crawl, which records it on the source
        db, errors = None, [f"store writer could not open {db_path}: {type(exc).__name__}: {exc}"]
    while (frame := read_frame(inbox)) is not None:
        if db is None:
            continue  # read to the end, so the sender never blocks; the error is reported below
        counts, batch_errors = store_batch(db, source, pickle.loads(frame))
        total.add(counts)
        errors.extend(batch_errors)
    if db is not None:
        db.conn.close()
    result = (total.new, total.updated, total.unchanged, errors[:MAX_ERRORS], len(errors))
    try:
        write_frame(outbox, pickle.dumps(result))
    except BrokenPipeError:
        pass  # the crawl process is gone; what was stored stays stored


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m spiders.store_writer DB_PATH SOURCE", file=sys.stderr)
        return 2
    outbox = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the result frame
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    gc.freeze()  # the imported modules stay; full GC passes need not rescan them for every batch
    serve(args[0], args[1], sys.stdin.buffer, outbox)
    return 0


# ------------------------------------------------------------------ parent


class WriterProcess:
    """Parent side: hand batches to a ``spiders.store_writer`` child and collect its result at the end.

    The pickled batches are kept until the child has reported: if it dies (killed, out of
    memory), :meth:`close` stores them all in this process instead. Upserts are idempotent, so
    batches the child had stored already are only read again; nothing a crawl read is dropped
    while its watermarks move on.
    """

    def __init__(self, db_path: str, source: str) -> None:
        self.source = source
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spiders.store_writer", db_path, source],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        # One sender thread keeps the batches in order; writing to a pipe releases the GIL.
        self.sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-send-{source}")
        self.sent: list[Future] = []
        self.payloads: list[bytes] = []
        self.lost = False  # set by close(): some item of some batch was not stored

    def submit(self, batch: list[dict[str, Any]]) -> None:
        payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        self.payloads.append(payload)
        self.sent.append(self.sender.submit(write_frame, self.proc.stdin, payload))

    def close(self, fallback_db: Any) -> tuple[UpsertCounts, list[str]]:
        """End the input and wait for the child to store everything; return its counts and error messages.

        Afterwards :attr:`lost` tells whether any item could not be stored (messages may also be notices).

        When the child does not report, every batch is stored through ``fallback_db`` instead.
        """
        self.sender.shutdown(wait=True)
        try:
            self.proc.stdin.close()
        except OSError:
            pass  # the child is gone already; handled below
        frame = read_frame(self.proc.stdout)
        self.proc.stdout.close()
        code = self.proc.wait()
        if frame is None:
            return self.store_here(fallback_db, code)
        new, updated, unchanged, messages, count = pickle.loads(frame)
        if count > len(messages):
            messages.append(f"... and {count - len(messages)} more storage errors")
        self.lost = count > 0
        return UpsertCounts(new=new, updated=updated, unchanged=unchanged), messages

    def store_here(self, db: Any, code: int) -> tuple[UpsertCounts, list[str]]:
        total, errors = UpsertCounts(), []
        for payload in self.payloads:
            counts, batch_errors = store_batch(db, self.source, pickle.loads(payload))
            total.add(counts)
            errors += batch_errors
        # Counts are this process's view: what the writer stored first now counts as unchanged.
        message = (
            f"store writer process exited with code {code} before reporting; its {len(self.payloads)} "
            "batch(es) were stored by the crawl process instead"
        )
        logger.warning("source %r: %s", self.source, message)
        self.lost = bool(errors)
        return total, [message, *errors]


if __name__ == "__main__":
    sys.exit(main())
