from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

# The store the suite runs on: "sqlite" (the default) or "postgresql", where a throwaway PostgreSQL server is
# started for the session and every SQLite store path any test, CLI call or crawl process opens becomes a
# PostgreSQL database of its own (monitor/db/redirect.py). Tests about SQLite itself (its files, pragmas, WAL,
# a corrupt file) are marked ``sqlite_only`` with the reason, and skipped there.
STORE_ENV = "MONITOR_TEST_STORE"


def store_backend() -> str:
    value = os.environ.get(STORE_ENV, "").strip().lower() or "sqlite"
    if value not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"{STORE_ENV} must be 'sqlite' or 'postgresql', not {value!r}")
    return value


def store_exists(path: Path) -> bool:
    """Whether the store at ``path`` was created: the file, or on PostgreSQL the database standing in for it."""
    if store_backend() != "postgresql":
        return path.exists()
    import psycopg

    from monitor.db import redirect

    with psycopg.connect(os.environ[redirect.ENV], autocommit=True) as admin:
        sql = "select 1 from pg_database where datname = %s"
        return admin.execute(sql, [redirect.database_name(path)]).fetchone() is not None


def distinct_values(db, table: str, column: str) -> dict[str, str]:
    """``select source, group_concat(distinct column) … group by source`` on either engine (values sorted)."""
    found: dict[str, set[str]] = {}
    for source, value in db.execute(f"select distinct source, {column} from {table}").fetchall():
        found.setdefault(source, set())
        if value is not None:
            found[source].add(str(value))
    return {source: ",".join(sorted(values)) for source, values in found.items()}


def dump_store(db) -> str:
    """Every value in every table as text (sqlite3's ``iterdump`` on either engine): for "no secret is stored"."""
    lines = []
    for table in db.table_names():
        for row in db.execute(f'select * from "{table}"').fetchall():
            lines.append(" ".join(str(value) for value in row))
    return "\n".join(lines)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only(reason): a test of SQLite itself, skipped on PostgreSQL")
    if store_backend() != "postgresql":
        return
    from monitor.db import redirect

    from .pg import URL_ENV, throwaway_server

    server = throwaway_server()
    pg = server.__enter__()  # raises with the reason when no server can be started: a PostgreSQL run must not pass
    config._monitor_pg_server = server  # type: ignore[attr-defined]
    os.environ[redirect.ENV] = pg.admin_url  # inherited by every child process the tests start
    os.environ[URL_ENV] = pg.admin_url  # tests/pg.py's fixtures use the same server


def pytest_unconfigure(config: pytest.Config) -> None:
    server = getattr(config, "_monitor_pg_server", None)
    if server is not None:
        server.__exit__(None, None, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if store_backend() != "postgresql":
        return
    for item in items:
        if item.path.name.startswith("test_pg_"):
            # The engine comparisons: they ran in the default pass against their own PostgreSQL database beside
            # SQLite; here their SQLite side would be PostgreSQL again.
            item.add_marker(pytest.mark.skip(reason="compares SQLite with PostgreSQL: runs in the SQLite pass"))
            continue
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "a test of SQLite itself")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


@pytest.fixture(autouse=True, scope="module")
def _drop_redirected_stores():
    """On PostgreSQL: drop the module's databases afterwards (each is a copy of the migrated template)."""
    yield
    if store_backend() != "postgresql":
        return
    import psycopg

    from monitor.db import redirect

    with psycopg.connect(os.environ[redirect.ENV], autocommit=True) as admin:
        sql = "select datname from pg_database where starts_with(datname, %s) and datname <> %s"
        names = [row[0] for row in admin.execute(sql, [redirect.PREFIX, redirect.TEMPLATE])]
        for name in names:
            admin.execute(f'drop database if exists "{name}" with (force)')
    redirect.forget()


SHARED = REPO.parent / "shared"

TINY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    *"abcdefghijklmnopqrstuvwxyz0123456789.,!?'-@#",
    "the", "coffee", "was", "cold", "rude", "great", "staff", "wait", "love", "never", "again",
]  # fmt: skip


@pytest.fixture
def fresh_db(tmp_path):
    from monitor.store import open_db

    db = open_db(tmp_path / "test.db")
    yield db
    db.conn.close()


def build_tiny_model(path: Path, labels: list[str], seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT with our label names: tests the plumbing, not accuracy."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n")
    # transformers 5 takes the vocabulary itself and ignores vocab_file (leaving only the special tokens);
    # 4.x reads the file.
    tokenizer = BertTokenizerFast(
        vocab_file=str(vocab), vocab={token: i for i, token in enumerate(TINY_VOCAB)}, do_lower_case=True
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), ["negative", "neutral", "positive"])


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir):
    from monitor.classify.stage import Classifier
    from monitor.config import ModelConfig

    # The tiny model stands in for the multilingual one too, so no test loads the bundled weights by accident.
    return Classifier(ModelConfig(default=str(tiny_model_dir), multilingual=str(tiny_model_dir), max_length=64))


def write_config(tmp_path: Path, body: str, model: str | None = None) -> Path:
    path = tmp_path / "config.toml"
    # The tiny model also stands in for the multilingual one, so tests never load the bundled weights by accident.
    header = f'[model]\ndefault = "{model}"\nmultilingual = "{model}"\n' if model else ""
    path.write_text(header + body, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a module's end-to-end tests (modules call ``tests.browser.require_chromium``)."""
    from playwright.sync_api import sync_playwright

    from .browser import CHROMIUM, LAUNCH_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


TINY_UMSAB = ("arabic", "french", "german", "hindi", "italian", "portuguese", "spanish")


def _write_jsonl(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows), "utf-8")


@pytest.fixture
def tiny_sentiment_data(tmp_path: Path) -> Path:
    """Every corpus the multilingual training scripts read, a few rows each, under the layout of ../shared/data."""
    data = tmp_path / "data"
    en = [
        ("the service was awful and slow", "negative"),
        ("it is a tuesday", "neutral"),
        ("loved it, great staff", "positive"),
    ]
    _write_jsonl(data / "en" / "semeval2017_4a_train.jsonl", en * 2)
    _write_jsonl(data / "en" / "tweeteval_val.jsonl", en[:1])
    _write_jsonl(
        data / "en" / "reviews_stars_train.jsonl",
        [("terrible food, cold and late", "negative"), ("fine place", "neutral")],
    )
    _write_jsonl(
        data / "en" / "sst2_train.jsonl",
        [("a dull , lifeless and tiresome film", "negative"), ("a warm , funny and moving story", "positive")],
    )
    _write_jsonl(data / "en" / "sst2_dev.jsonl", [("bad", "negative")])
    zh = [("服务员态度很差，等了一个小时", "negative"), ("房间干净，早餐很好吃", "positive")]
    for name in ("chnsenticorp_train", "chnsenticorp_htl_all", "waimai_train", "online_shopping_10_cats"):
        _write_jsonl(data / "zh" / f"{name}.jsonl", zh)
    zh_dev = [("太吵了，不会再来", "negative"), ("位置好，服务周到", "positive")]
    _write_jsonl(data / "zh" / "chnsenticorp_dev.jsonl", zh_dev)
    for lang in TINY_UMSAB:
        rows = [("muy malo, nunca más", "negative"), ("hoy es lunes", "neutral"), ("me encanta", "positive")]
        _write_jsonl(data / "multi" / f"umsab_{lang}_train.jsonl", rows)
        _write_jsonl(data / "multi" / f"umsab_{lang}_val.jsonl", rows)
    return data
