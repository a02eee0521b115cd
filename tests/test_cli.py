import datetime as dt
import json

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import QueueConfig
from monitor.queue.items import refresh_queue
from monitor.store import open_db

from .conftest import REPO, write_config
from .helpers import XSS, add_classified


def all_commands(group=cli, prefix=()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands"):
            yield from all_commands(command, path)
        yield path


COMMANDS = sorted(all_commands())


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def config_path(tmp_path, tiny_model_dir):
    return write_config(tmp_path, '[storage]\npath = "m.db"\n', model=tiny_model_dir)


def invoke(runner, config_path, *args, **kwargs):
    return runner.invoke(cli, ["--config", str(config_path), *args], catch_exceptions=False, **kwargs)


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_has_help_with_an_example(runner, command):
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_is_documented_in_the_readme(command):
    assert f"monitor {' '.join(command)}" in (REPO / "README.md").read_text()


def test_contract_commands_exist():
    required = {("init",), ("crawl",), ("classify",), ("sentiment",), ("digest",), ("serve",), ("demo",)}
    required |= {("queue", sub) for sub in ("list", "show", "assign", "reply", "dismiss")}
    assert required <= set(COMMANDS)


def test_bad_config_exits_2_with_one_line(runner, tmp_path):
    path = write_config(tmp_path, '[[sources]]\nname = "x"\ntype = "reddit"\nsearch = ["a"]\nevery = "often"\n')
    result = runner.invoke(cli, ["--config", str(path), "init"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        'config error: sources[0].every: expected a duration like "15m" or "1h", got \'often\''
    )
    assert "Traceback" not in result.output


def test_missing_config_file(runner, tmp_path):
    result = runner.invoke(cli, ["--config", str(tmp_path / "nope.toml"), "init"])
    assert result.exit_code == 2 and "config file not found" in result.output


@pytest.mark.sqlite_only(reason="the store is a file beside the config")
def test_init_creates_database(runner, config_path):
    result = invoke(runner, config_path, "init")
    assert result.exit_code == 0 and "schema version" in result.output
    assert (config_path.parent / "m.db").exists()


def test_crawl_unknown_source_is_a_config_error(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "crawl", "nope"])
    assert result.exit_code == 2 and "no source named 'nope'" in result.output


def test_sentiment_file_to_file(runner, config_path, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": 1, "text": "the coffee was cold and the staff rude"}) + "\n\n"
        + json.dumps({"id": 2, "text": "咖啡太难喝了", "extra": [1]}) + "\n"
        + json.dumps({"id": 3, "text": "love it", "rating": 1}) + "\n"
    )  # fmt: skip
    out = tmp_path / "out.jsonl"
    result = invoke(runner, config_path, "sentiment", "--file", str(src), "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[1]["extra"] == [1]
    first = rows[0]
    assert first["label"] in {"complaint", "neutral", "praise"}
    assert set(first["probs"]) == {"complaint", "neutral", "praise"}
    assert first["score"] == pytest.approx(first["probs"][first["label"]])
    assert isinstance(first["topics"], list)
    assert rows[1]["lang"] == "zh" and rows[1]["label"] in {"complaint", "neutral", "praise"}  # multilingual model
    assert rows[2]["label"] == "complaint"  # one star wins over "love it"


def test_sentiment_arguments_to_stdout(runner, config_path):
    result = invoke(runner, config_path, "sentiment", "great coffee", "cold coffee")
    assert [json.loads(line)["text"] for line in result.output.splitlines()] == ["great coffee", "cold coffee"]


def test_sentiment_bad_jsonl_names_the_line(runner, config_path, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "ok"}\n{not json\n')
    result = runner.invoke(cli, ["--config", str(config_path), "sentiment", "--file", str(src)])
    assert result.exit_code == 1 and "in.jsonl:2: not valid JSON" in result.output


def test_queue_commands(runner, config_path):
    db = open_db(config_path.parent / "m.db")
    add_classified(db, "reviews", "1", XSS, "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    db.conn.close()
    listed = json.loads(invoke(runner, config_path, "queue", "list", "--format", "json").output)
    assert [i["text"] for i in listed] == [XSS]
    assert "#1" in invoke(runner, config_path, "queue", "list").output
    assert invoke(runner, config_path, "queue", "assign", "1", "sam").exit_code == 0
    assert "assigned" in invoke(runner, config_path, "queue", "show", "1").output
    assert invoke(runner, config_path, "queue", "reply", "1", "--text", "Sorry!").exit_code == 0
    result = runner.invoke(cli, ["--config", str(config_path), "queue", "dismiss", "1"])
    assert result.exit_code == 1 and "cannot move to dismissed" in result.output
    assert json.loads(invoke(runner, config_path, "queue", "list", "--format", "json").output) == []


def test_queue_notes_metrics_csv_and_reddit_only_posting(runner, config_path):
    db = open_db(config_path.parent / "m.db")
    add_classified(db, "reviews", "1", "=1+2 cold coffee", "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    db.conn.close()
    assert invoke(runner, config_path, "queue", "note", "1", "Called back", "--as", "dana").exit_code == 0
    assert "note" in invoke(runner, config_path, "queue", "show", "1").output
    assert "'=1+2 cold coffee" in invoke(runner, config_path, "queue", "list", "--format", "csv").output
    result = runner.invoke(cli, ["--config", str(config_path), "queue", "reply", "1", "--post", "--text", "Hi"])
    assert result.exit_code == 1 and "reviews" in result.output  # not a Reddit source: nothing posted
    assert invoke(runner, config_path, "queue", "reply", "1", "--text", "Sorry!", "--as", "dana").exit_code == 0
    metrics = json.loads(invoke(runner, config_path, "queue", "metrics", "--by", "assignee", "--format", "json").output)
    assert metrics["all"]["replied"] == 1 and metrics["all"]["response_rate"] == 1.0
    assert "all" in invoke(runner, config_path, "queue", "metrics").output


def test_hash_password_reads_the_terminal_and_prints_a_hash(runner):
    from werkzeug.security import check_password_hash

    result = runner.invoke(cli, ["hash-password", "--user", "dana"], input="correct horse\ncorrect horse\n")
    assert result.exit_code == 0
    name, hashed = result.stdout.strip().splitlines()[-1].split(":", 1)
    assert name == "dana" and check_password_hash(hashed, "correct horse")
    short = runner.invoke(cli, ["hash-password"], input="short\nshort\n")
    assert short.exit_code == 2 and "8 characters" in short.output


def test_classify_then_digest(runner, config_path, tmp_path):
    db = open_db(config_path.parent / "m.db")
    from monitor.store import record_mentions

    record_mentions(db, "reviews", [{"external_id": "1", "text": "cold coffee", "rating": 1, "kind": "review"}])
    db.conn.close()
    result = invoke(runner, config_path, "classify")
    assert "classified 1 mentions (complaint 1); 1 new queue items" in result.output
    assert "classified 0 mentions" in invoke(runner, config_path, "classify").output
    out = tmp_path / "digest.md"
    # The default day is yesterday (what the scheduled digest covers); this mention was first seen today.
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert invoke(runner, config_path, "digest", "--date", today, "--output", str(out)).exit_code == 0
    assert "cold coffee" in out.read_text()
    bad = runner.invoke(cli, ["--config", str(config_path), "digest", "--date", "yesterday"])
    assert bad.exit_code == 2 and "expected YYYY-MM-DD" in bad.output


def test_serve_refuses_public_address(runner, config_path):
    result = runner.invoke(cli, ["--config", str(config_path), "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "web.host" in result.output
