"""CI version of the kill -9 campaign (tests/faults/kill_trials.py): two crawl trials (fresh, incremental) and
one queue / auto-assign trial on small sizes. The full campaign: ``python tests/faults/kill_trials.py``."""

from __future__ import annotations

from tests.faults.kill_trials import QUICK, campaign


def test_kills_lose_nothing_and_leave_nothing_undone(tmp_path) -> None:
    trials, table = campaign(2, 0, 1, sizes=QUICK, seed=11, workdir=tmp_path)
    print(table)
    assert len(trials) == 3
    assert not [t for t in trials if t.failures], table
