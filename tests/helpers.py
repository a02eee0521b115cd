"""Shared test data builders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from monitor.store import record_mentions

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def add_classified(db, source, external_id, text, label, probs=None, rating=None, kind="review", hours_ago=1.0,
                   urgency=(), topics=(), url=None, reach=None, posted_at=None):  # fmt: skip
    """Store a mention with a given classification (bypassing the model); ``posted_at`` (a datetime) overrides
    ``hours_ago``."""
    posted = (posted_at or datetime.now(UTC) - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat()
    [mention_id] = record_mentions(
        db,
        source,
        [{"external_id": external_id, "text": text, "kind": kind, "rating": rating, "posted_at": posted,
          "url": url, "author": "pat", "author_reach": reach}],
    ).mention_ids  # fmt: skip
    probs = probs or {"complaint": 0.9, "neutral": 0.05, "praise": 0.05}
    db["classifications"].insert(
        {"mention_id": mention_id, "label": label, "score": probs.get(label),
         "probs": json.dumps(probs), "topics": json.dumps(list(topics)), "urgency": json.dumps(list(urgency)),
         "lang": "en", "model": "test", "classified_at": posted},
        replace=True,
    )  # fmt: skip
    return mention_id


def sla_allowances(db) -> dict:
    """Each queue item's SLA allowance (due time minus post time), by mention id.

    Compare allowances, not due times: each ``add_classified`` call stamps its own "now", so two
    mentions added in a row can be a second apart on a slow store.
    """
    posted = {r["id"]: datetime.fromisoformat(r["posted_at"]) for r in db["mentions"].rows}
    return {r["mention_id"]: datetime.fromisoformat(r["sla_due_at"]) - posted[r["mention_id"]]
            for r in db["queue_items"].rows}  # fmt: skip
