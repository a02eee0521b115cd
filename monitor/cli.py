"""The ``monitor`` command line. It only parses options and calls library functions."""

from __future__ import annotations

import functools
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from monitor.config import Config, ConfigError, ModelConfig, find_config_path, load_config
from monitor.terminal import local_time, shorten, sla_words, terminal_safe

EXIT_CONFIG = 2


def handle_errors(func):
    """Turn expected errors into one clear line and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from monitor.classify.model import ModelLoadError
        from monitor.db import errors as db_errors
        from monitor.queue.items import QueueError

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"config error: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        except ModelLoadError as exc:
            click.echo(f"model error: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        except QueueError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except db_errors.connect_errors() as exc:  # PostgreSQL down or refusing us; empty (no-op) on SQLite
            click.echo(f"database error: {_one_line(str(exc))}", err=True)
            sys.exit(1)

    return wrapper


def _one_line(text: str, limit: int = 300) -> str:
    """libpq's messages span lines ("connection failed: ...\\n\\tIs the server running ..."): one line for the CLI."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def get_config(ctx: click.Context) -> Config:
    return load_config(ctx.obj["config_path"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default ./config.toml, or $MONITOR_CONFIG).")  # fmt: skip
@click.version_option(package_name="mention-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Watch what people say about a business online and help answer it.

    \b
    Example:
        monitor --config config.toml crawl
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


@cli.command()
@click.pass_context
@handle_errors
def init(ctx: click.Context) -> None:
    """Create or migrate the database: the SQLite file of [storage] path, or the PostgreSQL database of
    [storage] url (password from PGPASSWORD or ~/.pgpass).

    \b
    Example:
        monitor init
    """
    from monitor.db import describe, is_postgres_url
    from monitor.store import SCHEMA_VERSION, migrate_db, open_db

    config = get_config(ctx)
    target = config.storage_target
    db = open_db(target, migrate=False)
    try:
        applied = migrate_db(db)
    finally:
        db.close()
    # SQLite prints the file as it always did; PostgreSQL says so, with the URL redacted (it never holds a
    # password, config refuses one, but describe() would hide one anyway).
    where = f"PostgreSQL {describe(target)}" if is_postgres_url(target) else describe(target)
    click.echo(f"{where}: schema version {SCHEMA_VERSION}" + (f" (applied {applied})" if applied else ""))


@cli.command()
@click.argument("sources", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def crawl(ctx: click.Context, sources: tuple[str, ...], fmt: str) -> None:
    """Crawl all enabled sources now, or the named ones.

    Prints new, updated and error counts per source; exits 1 if any source failed.

    \b
    Example:
        monitor crawl acme-reviews reddit-acme
    """
    from monitor.cycle import crawl_sources
    from monitor.store import open_db

    config = get_config(ctx)
    open_db(config.storage_target).close()
    results = crawl_sources(config, list(sources) or None)
    if fmt == "json":
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        click.echo(f"{'source':<24} {'new':>6} {'updated':>8} {'errors':>7}  status")
        for name, r in results.items():
            click.echo(f"{name:<24} {r['new']:>6} {r['updated']:>8} {r['errors']:>7}  {r['status']}")
            for message in r.get("messages", [])[:5]:
                click.echo(f"    ! {message}", err=True)
    if any(r["status"] == "failed" for r in results.values()):
        sys.exit(1)


@cli.command()
@click.pass_context
@handle_errors
def classify(ctx: click.Context) -> None:
    """Classify every mention that has no classification yet (safe to re-run).

    \b
    Example:
        monitor classify
    """
    from monitor.classify.stage import classifier_from_config
    from monitor.cycle import process_new_mentions
    from monitor.store import open_db

    config = get_config(ctx)
    db = open_db(config.storage_target)
    processed = process_new_mentions(db, config, classifier_from_config(config))
    counts, queued = processed.classified, processed.queue
    labels = ", ".join(f"{k} {v}" for k, v in sorted(counts.by_label.items())) or "nothing new"
    extra = "".join(
        f", {n} {what}"
        for n, what in (
            (queued.assigned, "auto-assigned"),
            (queued.reopened, "reopened"),
            (queued.recoveries, "recoveries"),
        )
        if n
    )
    click.echo(f"classified {counts.classified} mentions ({labels}); {queued.created} new queue items{extra}")


@cli.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "in_file", type=click.File("r", encoding="utf-8"), help="JSONL input: objects with a text key.")
@click.option("--output", type=click.File("w", encoding="utf-8"), default="-", help="JSONL output (default stdout).")
@click.pass_context
@handle_errors
def sentiment(ctx: click.Context, texts: tuple[str, ...], in_file, output) -> None:
    """Classify arbitrary text: each output line is the input plus label, score, probs and topics.

    \b
    Examples:
        monitor sentiment "waited 40 minutes and the barista was rude"
        monitor sentiment --file in.jsonl --output out.jsonl
    """
    from monitor.classify.stage import UNCLASSIFIED_LANGUAGE, Classifier, classify_objects

    path = find_config_path(ctx.obj["config_path"])
    if ctx.obj["config_path"] or path.exists():
        config = get_config(ctx)
        classifier = Classifier(config.model, base_dir=config.base_dir)
    else:
        classifier = Classifier(ModelConfig())
    objects = [{"text": t} for t in texts]
    if in_file is not None:
        for number, line in enumerate(in_file, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise click.ClickException(f"{in_file.name}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise click.ClickException(f"{in_file.name}:{number}: expected an object with a string 'text'")
            objects.append(obj)
    if not objects:
        raise click.UsageError("give TEXT arguments or --file")
    uncovered: dict[str, int] = {}
    for row in classify_objects(objects, classifier):
        line = json.dumps(row, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate read from the file: written \u-escaped, as it was given
            line = json.dumps(row)
        output.write(line + "\n")
        if row["label"] == UNCLASSIFIED_LANGUAGE:
            uncovered[row["lang"]] = uncovered.get(row["lang"], 0) + 1
    if uncovered:
        langs = ", ".join(f"{lang} ({n})" for lang, n in sorted(uncovered.items()))
        click.echo(
            f"note: no configured model covers {langs}: labelled {UNCLASSIFIED_LANGUAGE}, not guessed "
            "(add a model for the language in [model] languages)",
            err=True,
        )


@cli.group()
def queue() -> None:
    """Work the reply queue from a terminal.

    \b
    Example:
        monitor queue list --format json
    """


@queue.command("list")
@click.option("--state", type=click.Choice(["open", "new", "assigned", "replied", "dismissed"]), default="open")
@click.option("--source", default=None)
@click.option("--label", default=None)
@click.option("--assignee", default=None)
@click.option("--location", default=None)
@click.option("--brand", default=None)
@click.option("--topic", default=None)
@click.option("--sla", type=click.Choice(["overdue", "due_soon", "on_time"]), default=None)
@click.option("--search", default=None, help="Full-text search in mention text.")
@click.option("--limit", default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def queue_list(ctx, state, source, label, assignee, location, brand, topic, sla, search, limit, fmt) -> None:
    """List open items by priority (csv output neutralises spreadsheet formulas).

    \b
    Example:
        monitor queue list --label complaint --sla overdue --limit 20
        monitor queue list --format csv --limit 100000 > queue.csv
    """
    from monitor.queue.export import queue_csv
    from monitor.queue.listing import OPEN_STATES, InboxFilter, list_items
    from monitor.store import open_db

    config = get_config(ctx)
    states = OPEN_STATES if state == "open" else (state,)
    filters = InboxFilter(states, source, location, brand, label, topic, assignee, sla, search)
    items = list_items(open_db(config.storage_target), filters=filters, limit=limit)
    if fmt == "json":
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    if fmt == "csv":
        click.echo(queue_csv(items), nl=False)
        return
    now = datetime.now(UTC)
    click.echo(f"{'id':<6} {'priority':>8} {'state':<9} {'source':<18} {'location':<12} {'SLA':<15} text")
    for it in items:
        text = shorten(it["text"] or it["title"], 60)
        click.echo(f"#{it['id']:<5} {it['priority']:>8.2f} {it['state']:<9} {shorten(it['source'], 18):<18} "
                   f"{shorten(it['location'] or '-', 12):<12} {sla_words(it, now):<15} {text}")  # fmt: skip


@queue.command("show")
@click.argument("item_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
@handle_errors
def queue_show(ctx, item_id: int, fmt: str) -> None:
    """Show one queue item with its mention, history and replies.

    \b
    Example:
        monitor queue show 12
    """
    from monitor.queue.listing import item_detail
    from monitor.shifts.stage import mention_shift
    from monitor.store import open_db

    config = get_config(ctx)
    db = open_db(config.storage_target)
    item = item_detail(db, item_id)
    if fmt == "json":
        click.echo(json.dumps(item, indent=2, ensure_ascii=False))
        return
    tz, safe = config.schedule.timezone, terminal_safe
    if not item["sla_due_at"]:
        due = "no SLA clock (no trustworthy post time)"
    elif item["state"] in ("replied", "dismissed"):
        due = f"was due {local_time(item['sla_due_at'], tz)}"
    else:
        due = f"due {local_time(item['sla_due_at'], tz)} ({sla_words(item, datetime.now(UTC))})"
    # A Reddit post has no location of its own; the shifts stage may have placed it (keywords, business ids).
    location = item["location"] or (mention_shift(db, item["mention_id"]) or {}).get("location") or "no location"
    click.echo(f"#{item['id']} {item['state']} · priority {item['priority']:.2f} · {due}")
    facts = [item["source"], location, item["kind"], safe(item["author"]) or "anonymous"]
    facts += [f"posted {local_time(item['posted_at'], tz)}" if item["posted_at"] else "no post time", safe(item["url"])]
    click.echo(" · ".join(fact for fact in facts if fact))
    click.echo(f"label {item['label']} ({item['score'] or 0:.2f}) topics {item['topics']} flags {item['urgency']}")
    if item["title"]:
        click.echo(safe(item["title"]))
    click.echo(safe(item["text"]))
    if item["recovery"]:
        r = item["recovery"]
        click.echo(f"recovery: {r['outcome']} (rating {r['rating_before']} -> {r['rating_after']})")
    for note in item["notes"]:
        click.echo(f"  note {local_time(note['at'], tz)} {safe(note['author'])}: {safe(note['text'])}")
    for event in item["events"]:
        click.echo(f"  {local_time(event['at'], tz)} {safe(event['actor'])}: {event['action']} "
                   f"{safe(event['detail'])}")  # fmt: skip


@queue.command("assign")
@click.argument("item_id", type=int)
@click.argument("user")
@click.pass_context
@handle_errors
def queue_assign(ctx, item_id: int, user: str) -> None:
    """Assign an item to a team member.

    \b
    Example:
        monitor queue assign 12 sam
    """
    from monitor.queue.items import assign
    from monitor.store import open_db

    assign(open_db(get_config(ctx).storage_target), item_id, user)
    click.echo(f"#{item_id} assigned to {user}")


@queue.command("reply")
@click.argument("item_id", type=int)
@click.option("--text", required=True, help="The reply text.")
@click.option(
    "--post",
    is_flag=True,
    help="Post it through the platform's reply API (sources with a reply channel) instead of recording it.",
)
@click.option("--as", "actor", default="cli", show_default=True, help="Your name for the audit log.")
@click.pass_context
@handle_errors
def queue_reply(ctx, item_id: int, text: str, post: bool, actor: str) -> None:
    """Record a reply you made on the platform, or post it (--post: Reddit, Google Business Profile, Google
    Play, … any source whose type has a reply channel), and mark the item replied.

    \b
    Example:
        monitor queue reply 12 --text "Sorry about the wait, Sam. We've fixed the rota."
        monitor queue reply 14 --post --text "Thanks - DM us your order number?"
    """
    from monitor.queue.items import mark_replied
    from monitor.queue.replying import platform_of_item, post_reply_now
    from monitor.store import open_db

    config = get_config(ctx)
    db = open_db(config.storage_target)
    if post:
        reply_id = post_reply_now(db, config, item_id, text, actor=actor)
        click.echo(f"#{item_id} replied on {platform_of_item(db, config, item_id)} ({terminal_safe(reply_id)})")
        return
    mark_replied(db, item_id, text, actor=actor)
    click.echo(f"#{item_id} replied")


@queue.command("note")
@click.argument("item_id", type=int)
@click.argument("text")
@click.option("--as", "actor", default="cli", show_default=True, help="Your name for the audit log.")
@click.pass_context
@handle_errors
def queue_note(ctx, item_id: int, text: str, actor: str) -> None:
    """Add an internal note to an item (seen by the team only).

    \b
    Example:
        monitor queue note 12 "Called the store; the manager will phone her back."
    """
    from monitor.queue.items import add_note
    from monitor.store import open_db

    add_note(open_db(get_config(ctx).storage_target), item_id, text, author=actor)
    click.echo(f"#{item_id} note added")


@queue.command("metrics")
@click.option("--days", default=30, show_default=True, help="Items created in the last N days.")
@click.option("--by", "group_by", type=click.Choice(["assignee", "source", "location"]), default=None)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def queue_metrics(ctx, days: int, group_by: str | None, fmt: str) -> None:
    """Response metrics: first-response time, response rate, SLA breaches, recoveries.

    \b
    Example:
        monitor queue metrics --days 7 --by assignee
    """
    from monitor.queue.metrics import human_minutes, response_metrics
    from monitor.store import open_db

    now = datetime.now(UTC)
    db = open_db(get_config(ctx).storage_target)
    overall, groups = response_metrics(db, now - timedelta(days=days), now + timedelta(seconds=1), group_by, now)
    if fmt == "json":
        payload = {"all": overall.as_dict(), "groups": {k: v.as_dict() for k, v in groups.items()}}
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"{'group':<20} {'items':>6} {'replied':>7} {'rate':>6} {'median FRT':>10} {'p90 FRT':>8} "
               f"{'breaches':>8} {'recovered':>9}")  # fmt: skip
    for key, m in [("(all)", overall), *groups.items()]:
        rate = f"{m.response_rate:.0%}" if m.response_rate is not None else "-"
        med, p90 = human_minutes(m.median_first_response_minutes), human_minutes(m.p90_first_response_minutes)
        click.echo(f"{key:<20} {m.items:>6} {m.replied:>7} {rate:>6} {med:>10} {p90:>8} {m.sla_breaches:>8} "
                   f"{m.recoveries.get('recovered', 0):>9}")  # fmt: skip


@queue.command("dismiss")
@click.argument("item_id", type=int)
@click.option("--reason", default="", help="Why it needs no reply.")
@click.pass_context
@handle_errors
def queue_dismiss(ctx, item_id: int, reason: str) -> None:
    """Dismiss an item that needs no reply.

    \b
    Example:
        monitor queue dismiss 12 --reason spam
    """
    from monitor.queue.items import dismiss
    from monitor.store import open_db

    dismiss(open_db(get_config(ctx).storage_target), item_id, reason=reason)
    click.echo(f"#{item_id} dismissed")


def _parse_day(value: str | None, option: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint=option) from None


@cli.command()
@click.option("--since", default=None, help="First shift date YYYY-MM-DD (default 30 days before --until).")
@click.option("--until", default=None, help="Last shift date YYYY-MM-DD (default today).")
@click.option("--location", default=None, help="Only this [[locations]] id.")
@click.option("--incidents", is_flag=True, help="List incidents (clusters of complaints) instead of shift rates.")
@click.option("--heatmap", type=click.Path(dir_okay=False), default=None,
              help="Also write a weekday x hour PNG of complaints by estimated incident time.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def shifts(ctx, since, until, location, incidents, heatmap, fmt) -> None:
    """Complaint rate per location and shift, with 95% intervals and flags; or incidents.

    Estimates and attributes any mention not yet placed on a shift first.

    \b
    Example:
        monitor shifts --since 2026-11-01 --location downtown --heatmap complaints.png
        monitor shifts --incidents --format json
    """
    from monitor.shifts.incidents import list_incidents
    from monitor.shifts.png import write_heatmap_png
    from monitor.shifts.report import (
        INCIDENT_COLUMNS,
        complaint_heatmap,
        date_range,
        format_csv,
        format_incidents,
        format_table,
        shift_report,
    )
    from monitor.shifts.stage import estimate_and_attribute
    from monitor.store import open_db

    config = get_config(ctx)
    first, last = date_range(_parse_day(since, "--since"), _parse_day(until, "--until"))
    db = open_db(config.storage_target)
    estimate_and_attribute(db, config)
    if incidents:
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        rows = list_incidents(db, start, datetime.combine(last, datetime.min.time(), tzinfo=UTC) + timedelta(days=1),
                              location)  # fmt: skip
        render = {"table": format_incidents, "csv": lambda r: format_csv(r, INCIDENT_COLUMNS)}
    else:
        rows = shift_report(db, config, first, last, location)
        render = {"table": format_table, "csv": format_csv}
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        click.echo(render[fmt](rows).rstrip("\n"))
    if heatmap:
        names = {loc.id: loc.name or loc.id for loc in config.locations}
        zones = {loc.id: loc.timezone for loc in config.locations}
        grids = complaint_heatmap(db, config, first, last, location)
        title = f"Complaints by estimated incident time, {first} to {last}"
        path = write_heatmap_png(grids, Path(heatmap), title, names=names, zones=zones)
        click.echo(f"heatmap written to {path}", err=True)


@cli.command()
@click.option(
    "--date",
    "day",
    default=None,
    help="Day YYYY-MM-DD in [schedule] timezone (default yesterday, the day the scheduled digest covers).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="File to write (.html, .md for Markdown, .txt for plain text).",
)
@click.option("--send", is_flag=True, help="Also email it to [digest] recipients over SMTP (after writing the file).")
@click.pass_context
@handle_errors
def digest(ctx, day: str | None, output: str | None, send: bool) -> None:
    """Build the daily digest (yesterday's by default) as HTML, Markdown or plain text, and optionally email it.

    \b
    Example:
        monitor digest --date 2026-11-21 --output digest.md
        MONITOR_SMTP_USER=digest MONITOR_SMTP_PASSWORD=... monitor digest --send
    """
    from monitor.cycle import default_digest_path
    from monitor.digest.send import DigestSendError, deliver_digest, smtp_settings
    from monitor.store import open_db

    config = get_config(ctx)
    try:
        # Yesterday by default: a finished day, as `monitor run` sends it (today's would be a partial day).
        when = (date.fromisoformat(day) if day
                else datetime.now(ZoneInfo(config.schedule.timezone)).date() - timedelta(days=1))  # fmt: skip
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {day!r}", param_hint="--date") from None
    settings = smtp_settings(config.digest) if send else None  # a config error stops before any work
    path = Path(output) if output else default_digest_path(config, when)
    try:
        path, sent_to = deliver_digest(config, open_db(config.storage_target), when, path, send=send)
    except DigestSendError as exc:
        click.echo(f"digest written to {exc.path}" + ("" if exc.sent_to else " (not sent)"))
        raise click.ClickException(str(exc)) from None
    click.echo(f"digest written to {path}")
    if settings:
        click.echo(f"digest emailed to {', '.join(sent_to)} via {settings.server} ({settings.security})")


@cli.command()
@click.option("--host", default=None, help="Address to bind (default [web] host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default [web] port, 8080).")
@click.pass_context
@handle_errors
def serve(ctx, host: str | None, port: int | None) -> None:
    """Serve the triage inbox web app.

    \b
    Example:
        monitor serve --port 8080
    """
    from monitor.store import open_db
    from monitor.web.app import serve as serve_inbox
    from monitor.web.auth import check_bind_address, load_users

    config = get_config(ctx)
    check_bind_address(host or config.web.host, load_users(config.web), config.web.users_env)
    open_db(config.storage_target).close()
    click.echo(f"inbox on http://{host or config.web.host}:{port or config.web.port}/ (Ctrl-C stops)")
    serve_inbox(config, host, port)


@cli.command()
@click.option("--days", default=30, show_default=True, help="How many days back from today.")
@click.option("--brand", "brands", multiple=True, help="Only these brands (repeat for several).")
@click.option("--by", type=click.Choice(["day", "week"]), default="day", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write FILE.csv or FILE.png.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def trends(ctx, days: int, brands: tuple[str, ...], by: str, output: str | None, fmt: str) -> None:
    """Net sentiment and share of voice per brand and competitor, with complaint spikes flagged.

    \b
    Example:
        monitor trends --days 30
        monitor trends --by week --days 90 --output trends.png
        monitor trends --brand "Acme Coffee" --brand "Rival Roasters" --output trends.csv
    """
    from monitor.store import open_db
    from monitor.trends.export import write_trends_csv, write_trends_png
    from monitor.trends.report import trends_report

    config = get_config(ctx)
    report = trends_report(open_db(config.storage_target), config.trends, days, by, list(brands) or None)
    if output:
        path = Path(output)
        if path.suffix.lower() == ".png":
            write_trends_png(path, report.points, report.spikes)
        elif path.suffix.lower() == ".csv":
            write_trends_csv(path, report.points, report.spikes)
        else:
            raise click.UsageError("--output must end in .csv or .png")
        click.echo(f"wrote {path}", err=True)
    if fmt == "json":
        payload = {"by": by, "brands": report.brand_summary(), "points": [p.as_dict() for p in report.points],
                   "spikes": [s.as_dict() for s in report.spikes]}  # fmt: skip
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'brand':<24} {'mentions':>8} {'net':>6} {'voice':>6} {'spikes':>6}")
    for row in report.brand_summary():
        net = "-" if row["net_sentiment"] is None else f"{row['net_sentiment']:+.0f}"
        click.echo(f"{str(row['brand'])[:24]:<24} {row['mentions']:>8} {net:>6} {row['share_of_voice']:>6.0%} "
                   f"{row['spikes']:>6}")  # fmt: skip
    for spike in report.spikes:
        click.echo(f"spike: {spike.brand} {spike.period}: {spike.complaints} complaints "
                   f"(normal {spike.baseline:g}, p={spike.p_value:.1g})")  # fmt: skip


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only list what each channel would get; send and record nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def alerts(ctx, dry_run: bool, fmt: str) -> None:
    """Send alerts now (urgent items, incidents, spikes, SLA breaches), each once per channel.

    `monitor run` does this every [alerts] every and after each processing pass; see docs/alerts.md.

    \b
    Example:
        monitor alerts --dry-run
        MONITOR_ALERT_WEBHOOK_URL=https://hooks.slack.com/services/... monitor alerts
    """
    from monitor.alerts.render import no_channel_reason, no_channel_summary
    from monitor.alerts.run import run_alerts
    from monitor.store import open_db

    config = get_config(ctx)
    db = open_db(config.storage_target)
    try:
        result = run_alerts(config, db, dry_run=dry_run)
    finally:
        db.close()
    # Without a channel nothing can go, but a dry run still lists what would: that is how one tries alerts out.
    no_channel = "" if config.alerts.channels else no_channel_reason(config)
    if fmt == "json":
        payload = {"dry_run": dry_run, "alerts": [a.as_dict() for a in result.alerts],
                   "channels": {name: {**r.as_dict(), "pending_keys": [[a.kind, a.key] for a in r.pending]}
                                for name, r in result.channels.items()},
                   "no_channel": no_channel or None}  # fmt: skip
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
    else:
        for alert in result.alerts:
            states = []
            for name, r in result.channels.items():
                if alert in r.delivered:
                    states.append(f"{name} sent now")
                elif alert in r.pending:
                    states.append(f"{name} {'would send' if dry_run else 'failed'}")
                else:
                    states.append(f"{name} sent before")
            state = ", ".join(states) or "would send (no channel)"
            click.echo(f"{alert.kind:<11} {state:<36} {terminal_safe(alert.title)}")
        if no_channel:
            click.echo(no_channel_summary(config, no_channel, len(result.alerts), dry_run))
        for name, r in result.channels.items():
            verb = "would send" if dry_run else "sent"
            click.echo(f"{name}: {verb} {len(r.pending) if dry_run else r.sent} of {len(r.pending)} pending"
                       + "".join(f"\n  error: {e}" for e in r.errors))  # fmt: skip
    if not result.ok:
        sys.exit(1)


@cli.command()
@click.option("--list", "list_only", is_flag=True, help="Print the jobs and their next runs, then exit.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="With --list: json prints the jobs as JSON.")  # fmt: skip
@click.option("--verbose", is_flag=True, help="Log each job run (default: warnings and errors, plus a line per job).")
@click.pass_context
@handle_errors
def run(ctx, list_only: bool, fmt: str, verbose: bool) -> None:
    """The scheduler daemon: crawl each source on its schedule, classify, queue, write the daily digest.

    Runs until Ctrl-C or SIGTERM (running jobs finish first). Schedules come from each source's
    every / cron and the [schedule] section; --list prints times in [schedule] timezone.

    \b
    Example:
        monitor run --list
        monitor run --list --format json
        monitor run
    """
    import logging

    from monitor.scheduler import build_scheduler, run_daemon, schedule_listing
    from monitor.store import open_db

    config = get_config(ctx)
    if list_only:
        from apscheduler.schedulers.background import BackgroundScheduler

        now = datetime.now(UTC)
        jobs = schedule_listing(config, build_scheduler(config, BackgroundScheduler(timezone=UTC)), now)
        if fmt == "json":
            click.echo(json.dumps({"timezone": config.schedule.timezone, "jobs": jobs}, indent=2, ensure_ascii=False))
            return
        click.echo(f"{'job':<28} {'next run':<22} schedule  (times in {config.schedule.timezone})")
        for job in jobs:
            click.echo(f"{job['id']:<28} {job['next_run_local']:<22} {job['schedule']}")
            if job["note"]:
                click.echo(f"{'':<28} ↳ {job['note']}")
        return
    if fmt != "table":
        raise click.UsageError("--format applies to --list only")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    for noisy in ("apscheduler", "scrapy", "urllib3", "prawcore", "transformers"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    open_db(config.storage_target).close()  # create / migrate before the first crawl
    click.echo(f"scheduler running for {config.path} (Ctrl-C stops)", err=True)
    run_daemon(config)


@cli.command()
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (forked; one that dies is restarted).")  # fmt: skip
@click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Jobs each process runs at once (a crawl mostly waits on its Scrapy child).")  # fmt: skip
@click.option("--verbose", is_flag=True, help="Log each job (default: warnings and errors, plus a line per job).")
@click.pass_context
@handle_errors
def worker(ctx: click.Context, processes: int, threads: int, verbose: bool) -> None:
    """(Server mode) run the crawl and processing jobs `monitor run` enqueues on [workers] broker.

    Any number of workers, on any machine that reads the same config and reaches the store and the broker.
    Runs until Ctrl-C or SIGTERM (running jobs finish first).

    \b
    Example:
        monitor worker
        monitor worker --processes 4
    """
    import logging

    from monitor.workers.run import run_worker

    config = get_config(ctx)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")  # fmt: skip
    for noisy in ("dramatiq", "scrapy", "urllib3", "prawcore", "transformers"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    click.echo(f"worker running for {config.path} on {config.workers.broker or '(no broker)'} (Ctrl-C stops)", err=True)
    sys.exit(run_worker(config, processes=processes, threads=threads))


@cli.command("hash-password")
@click.option("--user", default=None, help="Print name:hash ready for MONITOR_USERS.")
@handle_errors
def hash_password_command(user: str | None) -> None:
    """Make a password hash for an inbox user (the password is read from the terminal, never stored).

    \b
    Example:
        export MONITOR_USERS="dana:$(monitor hash-password)"
        monitor hash-password --user sam      # prints sam:<hash>
    """
    from monitor.web.auth import hash_password

    password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"{user}:{hashed}" if user else hashed)


@cli.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default="demo", show_default=True,
              help="Folder for the demo's config, database and digest.")  # fmt: skip
@click.option("--port", type=int, default=8080, show_default=True, help="Inbox port.")
@click.option("--no-serve", is_flag=True, help="Stop after the cycle instead of serving the inbox.")
@handle_errors
def demo(workdir: str, port: int, no_serve: bool) -> None:
    """Run one full cycle against built-in local demo sources, then serve the inbox.

    \b
    Example:
        monitor demo --port 8080
    """
    from monitor.demo.run import run_demo

    run_demo(Path(workdir), inbox_port=port, serve_inbox=not no_serve, echo=click.echo)


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
