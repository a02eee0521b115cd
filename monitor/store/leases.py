"""Lease rows (the scheduler lease, workers' locks): read, upsert, renew and delete by compare-and-set.

Callers hold ``write_transaction(db, scope=f"lease:{name}")`` around a read-then-write, so two processes can
never both believe they took one lease. Times are stored as ISO text in one fixed format (they sort as text).
"""

from __future__ import annotations

from typing import Any


def lease_row(db: Any, name: str) -> tuple[str, str] | None:
    """``(holder, expires_at)`` of lease ``name``, or None when nobody holds it."""
    row = db.execute("select holder, expires_at from leases where name = ?", [name]).fetchone()
    return (row[0], row[1]) if row is not None else None


def lease_holder(db: Any, name: str) -> str | None:
    row = lease_row(db, name)
    return row[0] if row else None


def upsert_lease(db: Any, name: str, holder: str, now: str, expires: str) -> None:
    """Make ``holder`` the holder until ``expires``; ``acquired_at`` stays when it already was the holder."""
    db.execute(
        "insert into leases (name, holder, acquired_at, renewed_at, expires_at) values (?, ?, ?, ?, ?) "
        "on conflict (name) do update set holder = excluded.holder, renewed_at = excluded.renewed_at, "
        "expires_at = excluded.expires_at, acquired_at = case when leases.holder = excluded.holder "
        "then leases.acquired_at else excluded.acquired_at end",
        [name, holder, now, now, expires],
    )


def renew_lease(db: Any, name: str, holder: str, now: str, expires: str) -> bool:
    """Extend the lease when the row still names ``holder``; False when it names someone else (lost)."""
    cursor = db.execute(
        "update leases set renewed_at = ?, expires_at = ? where name = ? and holder = ?",
        [now, expires, name, holder],
    )
    return cursor.rowcount == 1


def delete_lease(db: Any, name: str, holder: str) -> bool:
    """Give lease ``name`` back when ``holder`` still holds it; False if not."""
    cursor = db.execute("delete from leases where name = ? and holder = ?", [name, holder])
    return cursor.rowcount == 1
