"""Translate the code's SQLite parameter marks (``?`` and ``:name``) into psycopg's (``%s`` / ``%(name)s``).

Every module writes SQL with sqlite3's marks; translating once here (cached per SQL string) keeps ~180
call sites and the SQLite path unchanged. Marks inside quoted strings, quoted identifiers, comments and
dollar-quoted bodies are left alone, ``::`` casts are not names, and a literal ``%`` is doubled because
psycopg reads ``%`` as the start of a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@lru_cache(maxsize=4096)
def translate(sql: str) -> tuple[str, str]:
    """``sql`` with psycopg marks, and its style: ``"none"``, ``"qmark"`` or ``"named"``.

    Mixing ``?`` and ``:name`` in one statement raises ValueError (sqlite3 refuses it too)."""
    out: list[str] = []
    style = "none"
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":  # a string literal or quoted identifier: copy through the closing quote ('' escapes)
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif ch == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
            close = sql.find(tag.group(0), tag.end())
            end = n if close < 0 else close + len(tag.group(0))
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif ch == "?":
            style = _style(style, "qmark")
            out.append("%s")
            i += 1
        elif ch == ":" and sql.startswith("::", i):
            out.append("::")
            i += 2
        elif ch == ":" and (name := _NAME.match(sql, i + 1)):
            style = _style(style, "named")
            out.append(f"%({name.group(0)})s")
            i = name.end()
        elif ch == "%":
            out.append("%%")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), style


def _style(current: str, found: str) -> str:
    if current not in ("none", found):
        raise ValueError("SQL mixes ? and :name parameters")
    return found


def adapt(sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> tuple[str, Sequence[Any] | Mapping[str, Any]]:
    """The psycopg form of ``sql`` and its parameters. Always returns parameters (an empty list when none):
    psycopg only un-doubles ``%%`` when it is given some."""
    query, style = translate(sql)
    if params is None:
        params = {} if style == "named" else []
    elif style == "named" and not isinstance(params, Mapping):
        raise ValueError("SQL uses :name parameters but got a sequence")
    elif style == "qmark" and isinstance(params, Mapping):
        raise ValueError("SQL uses ? parameters but got a mapping")
    return query, params
