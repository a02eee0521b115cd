# ruff: noqa: F811 -- the fixtures from tests/pg.py are imported by name, and test arguments name them

"""The adapter's pieces: parameter translation, storage URLs and config, the table helpers on PostgreSQL."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError, loads_config
from monitor.db.params import adapt, translate
from monitor.db.url import StorageURLError, check_url, is_postgres_url, redact
from monitor.store import open_db

from .pg import pg_server, pg_url  # noqa: F401

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("sql", "expected", "style"),
    [
        ("select * from t where a = ? and b in (?, ?)", "select * from t where a = %s and b in (%s, %s)", "qmark"),
        ("select 1 where id > :rev or x = :rev", "select 1 where id > %(rev)s or x = %(rev)s", "named"),
        ("select '?', ':n', \"a?b\" from t where c = ?", "select '?', ':n', \"a?b\" from t where c = %s", "qmark"),
        ("select 'it''s ?' || ?", "select 'it''s ?' || %s", "qmark"),
        ("select x::text, '50%' from t where y like ?", "select x::text, '50%%' from t where y like %s", "qmark"),
        ("select 5 % 3 -- why? :no\n, ?", "select 5 %% 3 -- why? :no\n, %s", "qmark"),
        ("select /* ? */ 1", "select /* ? */ 1", "none"),
        ("do $f$ select ? $f$", "do $f$ select ? $f$", "none"),
    ],
)
def test_parameter_marks_are_translated_outside_quotes(sql, expected, style):
    assert translate(sql) == (expected, style)


def test_parameter_styles_cannot_be_mixed():
    with pytest.raises(ValueError, match="mixes"):
        translate("select ? , :a")
    with pytest.raises(ValueError):
        adapt("select :a", [1])
    assert adapt("select 1", None) == ("select 1", [])


def test_storage_urls():
    assert is_postgres_url("postgresql://monitor@db/monitor") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("monitor.db") and not is_postgres_url("/srv/postgresql://x")
    assert check_url("postgresql://monitor@db.example:5432/monitor?sslmode=require")
    for bad in (f"postgresql://monitor:{SECRET}@db/monitor", f"postgresql://db/monitor?password={SECRET}"):
        with pytest.raises(StorageURLError) as caught:
            check_url(bad)
        assert SECRET not in str(caught.value) and "PGPASSWORD" in str(caught.value)
    with pytest.raises(StorageURLError, match="names no database"):
        check_url("postgresql://db.example")
    with pytest.raises(StorageURLError, match="valid URL"):
        check_url("postgresql://db.example:99999/monitor")
    assert SECRET not in redact(f"postgresql://monitor:{SECRET}@db/monitor?password={SECRET}&sslmode=require")
    assert redact("postgresql://monitor@db/monitor") == "postgresql://monitor@db/monitor"


def test_config_storage_url():
    config = loads_config('[storage]\nurl = "postgresql://monitor@db.example/monitor"\n')
    assert config.storage_url == config.storage_target == "postgresql://monitor@db.example/monitor"
    assert loads_config("").storage_target == loads_config("").storage_path
    with pytest.raises(ConfigError) as caught:
        loads_config(f'[storage]\nurl = "postgresql://monitor:{SECRET}@db.example/monitor"\n')
    assert str(caught.value).startswith("storage.url: must not contain a password") and SECRET not in str(caught.value)
    with pytest.raises(ConfigError, match=r"storage\.url: set either path \(SQLite\) or url"):
        loads_config('[storage]\npath = "m.db"\nurl = "postgresql://monitor@db.example/monitor"\n')
    with pytest.raises(ConfigError, match=r"storage\.url: expected a URL like"):
        loads_config('[storage]\nurl = "mysql://db/monitor"\n')


def test_password_comes_only_from_the_environment(pg_url, monkeypatch):
    import psycopg

    from monitor.store import open_db

    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    with pytest.raises(psycopg.OperationalError) as caught:
        open_db(pg_url)
    assert "password" in str(caught.value)


def test_table_helpers_on_postgres(pg_url):
    from monitor.store import open_db, utcnow

    db = open_db(pg_url)
    assert db["meta"].exists() and not db["nope"].exists()
    assert db["mentions"].pks == ["id"] and db["shift_attributions"].pks == ["mention_id", "shift", "shift_date"]
    assert db["mentions"].columns_dict["rating"] is float and db["mentions"].columns_dict["id"] is int
    first = db["crawl_runs"].insert({"source": "a", "started_at": utcnow(), "status": "ok"}).last_pk
    assert db["crawl_runs"].insert({"source": "b", "status": "ok"}).last_pk == first + 1
    db["meta"].upsert({"key": "k", "value": "1"}, pk="key")
    db["meta"].upsert({"key": "k", "value": "2"}, pk="key")
    assert db.execute("select value from meta where key = ?", ["k"]).fetchone()[0] == "2"
    db["source_state"].insert_all([{"source": "s", "key": "a", "value": "1"}, {"source": "s", "key": "b"}])
    db["source_state"].insert_all([{"source": "s", "key": "a", "value": "9"}], replace=True)
    assert [(r["key"], r["value"]) for r in db["source_state"].rows] == [("a", "9"), ("b", None)]
    assert db["source_state"].count == 2
    db.executemany("update source_state set value = ? where key = ?", [["x", "a"], ["y", "b"]])
    assert [r["value"] for r in db.query("select value from source_state order by key")] == ["x", "y"]
    assert list(db.query("select :v::text as v", {"v": "50%"})) == [{"v": "50%"}]


def test_insert_all_and_upsert_all_in_chunks_end_as_row_by_row(pg_url: str, tmp_path, monkeypatch) -> None:
    """Multi-row statements (several chunks here), mixed column sets and repeated keys end as SQLite's row by row."""
    from monitor.db import pg as pg_module

    monkeypatch.setattr(pg_module, "ROWS_PER_STATEMENT", 7)
    records = [{"source": "s", "key": f"k{i % 23}", "value": str(i)} for i in range(60)]  # keys repeat
    records[30] = {"source": "s", "key": "k5"}  # another column set in the middle: value keeps or is null
    results = []
    for target in (tmp_path / "s.db", pg_url):
        db = open_db(target)
        db["source_state"].insert_all(records[:20])
        db["source_state"].insert_all(records[20:], replace=True)
        meta = db["meta"]
        meta.upsert_all([{"key": f"m{i % 4}", "value": str(i)} for i in range(10)], pk="key")
        state = sorted(tuple(r.values()) for r in db.query("select source, key, value from source_state"))
        marks = sorted(tuple(r.values()) for r in db.query("select key, value from meta where key like 'm%'"))
        results.append((state, marks))
        if isinstance(target, str):
            assert meta.last_pk == "m1"  # the last record's key, as upsert leaves it
        db.close()
    assert results[0] == results[1]
    assert len(results[0][0]) == 23 and results[0][1] == [("m0", "8"), ("m1", "9"), ("m2", "6"), ("m3", "7")]
