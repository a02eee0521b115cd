"""CI version of the concurrency soak (tests/faults/soak.py): 20 s of the daemon, the inbox, 4 web users and
CLI writers on one database. The full soak: ``python tests/faults/soak.py`` (3 minutes)."""

from __future__ import annotations

import os

from tests.faults.soak import soak


def test_no_5xx_no_lock_errors_no_lost_writes(tmp_path) -> None:
    result = soak(float(os.environ.get("SOAK_SECONDS", "20")), tmp_path)
    print(result.table())
    assert result.counts.requests > 20 and result.counts.notes_ok, result.table()
    assert not any(result.failures().values()), result.table()
