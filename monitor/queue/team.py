"""Who answers what: team members from config, and auto-assignment of new items."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from monitor.config import TeamMember


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
    return {
        row["assignee"]: row["n"]
        for row in db.query(
            "select assignee, count(*) as n from queue_items where state = 'assigned' group by assignee"
        )
    }


def auto_assign(
    db: sqlite_utils.Database,
    team: list[TeamMember],
    item_ids: list[int],
    source_types: dict[str, str] | None = None,
) -> int:
    """Give each new item to the member who covers it most specifically (a member named for the location
    before one who covers everything), the fewest open items among equals; returns how many were assigned."""
    from monitor.queue.items import assign

    if not item_ids:
        return 0
    source_types = source_types or {}
    load = open_load(db)
    assigned = 0
    for item_id in item_ids:
        rows = list(
            db.query(
                # A post without a location may have been placed by the shift stage (keywords, business ids).
                "select q.state, m.source, coalesce(nullif(m.location, ''), e.location) as location, "
                "coalesce(c.lang, m.lang) as lang from queue_items q "
                "join mentions m on m.id = q.mention_id left join classifications c on c.mention_id = m.id "
                "left join incident_estimates e on e.mention_id = m.id where q.id = ?",
                [item_id],
            )
        )
        if not rows or rows[0]["state"] != "new":
            continue
        item = rows[0]
        candidates = [m for m in team if covers(m, item, source_types.get(item["source"]))]
        if not candidates:
            continue
        # Specialists first, then fewest open items; config order breaks ties so the choice is predictable.
        member = min(candidates, key=lambda m: (-specificity(m), load.get(m.name, 0)))
        assign(db, item_id, member.name, actor="auto-assign")
        load[member.name] = load.get(member.name, 0) + 1
        assigned += 1
    return assigned
