"""Who answers what: team members from config, and auto-assignment of unassigned new items."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from monitor.config import TeamMember
from monitor.store import team as team_store


def covers(member: TeamMember, item: dict[str, Any], source_type: str | None = None) -> bool:
    """Whether ``member`` answers for this item's location, source and language (empty lists cover all)."""
    if member.locations and item.get("location") not in member.locations:
        return False
    if member.sources and not ({item.get("source"), source_type} & set(member.sources)):
        return False
    lang = (item.get("lang") or "").split("-")[0]
    return not (member.languages and lang and lang not in member.languages)


def specificity(member: TeamMember) -> int:
    return bool(member.locations) + bool(member.sources) + bool(member.languages)


def open_load(db: sqlite_utils.Database) -> dict[str, int]:
    """Member name → how many items are assigned to them and still open."""
    return team_store.assigned_counts(db)


def auto_assign(
    db: sqlite_utils.Database,
    team: list[TeamMember],
    item_ids: list[int] | None = None,
    source_types: dict[str, str] | None = None,
) -> int:
    """Give each unassigned new item to the member who covers it most specifically (a member named for the
    location before one who covers everything), the fewest open items among equals; returns how many were
    assigned.

    Without ``item_ids`` every open item that has no assignee is considered, not only those created in
    this run: a run killed between creating items and assigning them leaves them for the next run.
    """
    from monitor.queue.items import QueueError, assign

    if item_ids is not None and not item_ids:
        return 0
    source_types = source_types or {}
    load = open_load(db)
    assigned = 0
    for item in _unassigned(db, item_ids):
        candidates = [m for m in team if covers(m, item, source_types.get(item["source"]))]
        if not candidates:
            continue
        # Specialists first, then fewest open items; config order breaks ties so the choice is predictable.
        member = min(candidates, key=lambda m: (-specificity(m), load.get(m.name, 0)))
        try:
            assign(db, item["id"], member.name, actor="auto-assign")
        except QueueError:  # a person took or closed it meanwhile: theirs wins
            continue
        load[member.name] = load.get(member.name, 0) + 1
        assigned += 1
    return assigned


def _unassigned(db: sqlite_utils.Database, item_ids: list[int] | None) -> list[dict[str, Any]]:
    """New items without an assignee (of ``item_ids`` when given), oldest first, with what ``covers`` needs."""
    return team_store.unassigned_new_items(db, item_ids)
