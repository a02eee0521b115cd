"""The store layer holds every SQL statement: stages call functions of ``monitor/store/`` (issue 14).

A stage that writes SQL itself ties the product to one engine again (every PostgreSQL difference lives in the
store and ``monitor/db/``), so this test fails on SQL anywhere else under ``monitor/``: a call of ``execute`` /
``query`` / ``executescript`` / ``executemany``, a database's ``.conn``, a ``db["table"]`` helper, or SQL text.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

MONITOR = Path(__file__).resolve().parents[1] / "monitor"
STORE_LAYER = (MONITOR / "store", MONITOR / "db")
SQL_CALLS = {"execute", "executemany", "executescript", "query"}
SQL_TEXT = re.compile(
    r"\b(select\b[\s\S]+\bfrom\b|insert\s+(or\s+\w+\s+)?into\b|update\s+\w+\s+set\b|delete\s+from\b"
    r"|create\s+(unique\s+)?(table|index|view|trigger)\b|alter\s+table\b|drop\s+(table|index)\b)",
    re.IGNORECASE,
)


def _is_database(node: ast.AST) -> bool:
    """``db``, ``self.db``, ``db()``, ``store`` and the like: the names stages give a database."""
    if isinstance(node, ast.Call):
        node = node.func
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name in {"db", "database", "store", "conn", "connection", "_db"} or name.endswith("_db")


def sql_outside_store(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(MONITOR.parent)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            if _is_database(node.func.value):
                found.append(f"{where} .{node.func.attr}(...)")
        elif isinstance(node, ast.Attribute) and node.attr == "conn" and _is_database(node.value):
            found.append(f"{where} .conn")
        elif isinstance(node, ast.Subscript) and _is_database(node.value):
            found.append(f"{where} database[...] table helper")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.search(node.value):
            found.append(f"{where} SQL text {node.value[:60]!r}")
    return found


def test_no_sql_outside_the_store_layer() -> None:
    stage_files = [
        path for path in sorted(MONITOR.rglob("*.py")) if not any(layer in path.parents for layer in STORE_LAYER)
    ]
    assert len(stage_files) > 40  # the scan sees the stages
    found = [hit for path in stage_files for hit in sql_outside_store(path)]
    assert not found, "SQL outside monitor/store/ (move it into a store function):\n" + "\n".join(found)


def test_the_scan_finds_sql(tmp_path: Path) -> None:
    sample = MONITOR / "_scan_sample.py"
    try:
        sample.write_text(
            "def f(db):\n"
            "    db.execute('delete from leases')\n"
            "    db['mentions'].insert({})\n"
            "    db.conn.close()\n"
            "    return 'select id from mentions where source = ?'\n",
            encoding="utf-8",
        )
        hits = sql_outside_store(sample)
    finally:
        sample.unlink()
    assert len(hits) == 5, hits  # the call, its SQL text, the table helper, .conn, the SQL constant
