"""Classifications and the batch claims (``classify_claims``) that hand classifier workers their mentions."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from monitor.db import dialect_of

# The next batch nobody has classified or claimed. A claim covers an id range, so a mention that commits inside a
# live range after the claim was taken (PostgreSQL ids are not committed in order) waits for the range's release.
_PENDING_SQL = (
    "select m.id, m.title, m.text, m.rating, m.author_reach, m.lang from mentions m "
    "left join classifications c on c.mention_id = m.id where c.mention_id is null "
    "and not exists (select 1 from classify_claims k where m.id between k.first_id and k.last_id) "
    "order by m.id limit ?"
)


def claims(db: sqlite_utils.Database) -> list[tuple[str, str | None]]:
    """Every live batch claim as (holder, expires_at)."""
    rows = db.execute("select holder, expires_at from classify_claims").fetchall()
    return [(holder, expires_at) for holder, expires_at in rows]


def delete_claim(db: sqlite_utils.Database, holder: str) -> None:
    """Drop ``holder``'s claim (its batch becomes pending again unless its results were stored)."""
    db.execute("delete from classify_claims where holder = ?", [holder])


def pending_mentions(db: sqlite_utils.Database, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` mentions with no classification that no claim covers, in id order."""
    return list(db.query(_PENDING_SQL, [limit]))


def insert_claim(
    db: sqlite_utils.Database, holder: str, first_id: int, last_id: int, claimed_at: str, expires_at: str
) -> None:
    """Record ``holder``'s claim on the id range ``first_id``..``last_id``."""
    db.execute(
        "insert into classify_claims (holder, first_id, last_id, claimed_at, expires_at) values (?, ?, ?, ?, ?)",
        [holder, first_id, last_id, claimed_at, expires_at],
    )


def claim_held(db: sqlite_utils.Database, holder: str) -> bool:
    """Whether ``holder`` still has its claim; on PostgreSQL the claim row stays locked until the transaction ends.

    The lock (``for update``; SQLite has one writer anyway) keeps a check-then-store and a takeover apart."""
    for_update = " for update" if dialect_of(db).postgres else ""
    return db.execute(f"select 1 from classify_claims where holder = ?{for_update}", [holder]).fetchone() is not None


def store_classifications(db: sqlite_utils.Database, records: list[dict[str, Any]]) -> None:
    """Insert (or replace) classification rows, one per mention."""
    db["classifications"].insert_all(records, replace=True)


def set_mention_lang(db: sqlite_utils.Database, mention_id: int, lang: str) -> None:
    """Store the detected language of a mention whose source gave none."""
    db.execute("update mentions set lang = ? where id = ?", [lang, mention_id])
