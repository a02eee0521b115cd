"""The demo's own lookup: the queue item of one known review."""

from __future__ import annotations

from typing import Any


def queue_item_by_external_id(db: Any, source: str, external_id_like: str) -> dict[str, Any] | None:
    """``id``, ``state``, ``first_replied_at`` of the first queue item whose mention of ``source`` has an external
    id matching the LIKE pattern ``external_id_like``; None when there is none."""
    rows = list(
        db.query(
            "select q.id, q.state, q.first_replied_at from queue_items q join mentions m on m.id = q.mention_id "
            "where m.source = ? and m.external_id like ? order by q.id limit 1",
            [source, external_id_like],
        )
    )
    return rows[0] if rows else None
