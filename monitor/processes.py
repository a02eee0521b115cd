"""Whether a process on this machine still runs: how crawl runs, alert claims and worker claims left by a killed
process (``kill -9``, an out-of-memory kill) are told apart from live ones."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs here. A zombie counts as gone: a killed child stays one until its parent (PID 1,
    for an orphaned crawl) reaps it. Linux says so in /proc; elsewhere signal 0 is the best we can ask."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]
