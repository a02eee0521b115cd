"""The Reddit collector: search queries and subreddit listings read through PRAW.

Reddit's API needs OAuth, pagination and rate-limit handling that PRAW and
prawcore already do well, so this is plain PRAW rather than a Scrapy spider.
Each query or listing is read on its own: one that fails becomes an error
message naming the source and the listing, and the others still run. Secrets
come from the environment variables named in the source's options and never
appear in messages or logs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import praw
import prawcore
import sqlite_utils
from praw.exceptions import PRAWException, RedditAPIException
from praw.models import Comment, Redditor, Subreddit
from praw.models.base import PRAWBase
from praw.models.reddit.base import RedditBase

from monitor.brands import brand_for
from monitor.config import ConfigError, SourceConfig, secret_from_env
from monitor.crawl import claim_crawl_run, close_interrupted_runs
from monitor.keywords import passes_keyword_rules
from monitor.store import (
    UpsertCounts,
    finish_crawl_run,
    get_source_state,
    record_mentions,
    set_source_state,
    start_crawl_run,
)
from spiders.backfill import describe, is_backfill

log = logging.getLogger(__name__)

# Links shown to people always point at reddit.com, even when the API is a test server.
PUBLIC_URL = "https://www.reddit.com"
DEFAULT_USER_AGENT = "mention-monitor/0.1 (+https://github.com/mention-monitor)"
# A 429 asking us to wait this long or less is waited out once; longer, and the rest of the run is skipped
# (the next scheduled crawl picks up where this one stopped).
MAX_RETRY_AFTER = 30.0
# PRAW bookkeeping set on Submission objects; not part of Reddit's JSON.
PRAW_ATTRIBUTES = {"comment_limit", "comment_sort"}
# Env var names for replying as a Reddit account, used when the source does not name its own.
# Per listing: "1" once a crawl read it without errors; until then old items it finds are backfill.
CRAWLED_KEY = "crawled:"
REPLY_ENV_DEFAULTS = {
    "refresh_token_env": "REDDIT_REFRESH_TOKEN",
    "username_env": "REDDIT_USERNAME",
    "password_env": "REDDIT_PASSWORD",
}


class RedditReplyError(Exception):
    """A reply could not be posted; ``str()`` is a one-line message for the person who clicked reply."""


class _StopRun(Exception):
    """Reading more listings in this run would fail the same way (bad credentials, rate limited)."""


# ------------------------------------------------------------------ client


def make_reddit(source: SourceConfig, **auth: str) -> praw.Reddit:
    """A PRAW client for ``source``: read-only (client credentials) unless ``auth`` adds a user."""
    return praw.Reddit(
        client_id=secret_from_env(source, "client_id_env"),
        client_secret=secret_from_env(source, "client_secret_env"),
        user_agent=source.user_agent or DEFAULT_USER_AGENT,
        oauth_url=source.options.get("oauth_url", "https://oauth.reddit.com"),
        reddit_url=source.options.get("reddit_url", "https://www.reddit.com"),
        check_for_updates=False,
        check_for_async=False,
        **auth,
    )


Listing = tuple[str, str, Callable[[], Iterator[Any]]]


def _listings(reddit: praw.Reddit, source: SourceConfig) -> list[Listing]:
    """(label, brand, generator factory) for every query and listing the source reads.

    Labels appear in messages; the brand is that of the query or subreddit (``brands``).
    """
    limit = source.options.get("limit", 100)
    out: list[Listing] = []
    for query in source.options.get("search", []):
        brand = brand_for(source, query)
        out.append(
            (f'search "{query}"', brand, lambda q=query: reddit.subreddit("all").search(q, sort="new", limit=limit))
        )
    for name in source.options.get("subreddits", []):
        sub = name.strip().removeprefix("/").removeprefix("r/").strip("/")
        brand = brand_for(source, name)
        out.append((f"r/{sub}/new", brand, lambda s=sub: reddit.subreddit(s).new(limit=limit)))
        if source.options.get("comments", True):
            out.append((f"r/{sub}/comments", brand, lambda s=sub: reddit.subreddit(s).comments(limit=limit)))
    return out


# ----------------------------------------------------------------- mapping


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data, reading only what PRAW already holds (a missing attribute would fetch)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Redditor):
        return vars(value).get("name")
    if isinstance(value, Subreddit):
        return vars(value).get("display_name")
    if isinstance(value, RedditBase):
        return vars(value).get("name") or vars(value).get("id")
    if isinstance(value, PRAWBase):
        return {k: _plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


def raw_data(item: Any) -> dict[str, Any]:
    """The item's JSON data as PRAW received it, with author/subreddit objects turned back into names."""
    fields = vars(item)
    raw = {k: _plain(v) for k, v in fields.items() if not k.startswith("_") and k not in PRAW_ATTRIBUTES}
    if "_replies" in fields:  # PRAW moves a comment's "replies" aside; listings send "" when there are none
        replies = fields["_replies"]
        raw["replies"] = [_plain(r) for r in replies] if replies else ""
    return raw


def _author_reach(author: Any) -> int | None:
    # Karma is only known if PRAW already loaded the redditor; one request per author would cost too much.
    known = vars(author) if isinstance(author, Redditor) else {}
    if isinstance(known.get("link_karma"), int) and isinstance(known.get("comment_karma"), int):
        return known["link_karma"] + known["comment_karma"]
    return None


def _posted_at(created: Any) -> str | None:
    """``created_utc`` as UTC ISO 8601; None for a time no calendar holds (the item itself is kept)."""
    try:
        return datetime.fromtimestamp(int(created), UTC).isoformat() if created is not None else None
    except (OverflowError, OSError, TypeError, ValueError):
        return None


def to_mention(item: Any, source: SourceConfig, brand: str | None = None) -> dict[str, Any]:
    """Map a PRAW Submission or Comment to a mention dict for :func:`monitor.store.record_mentions`.

    ``brand`` is that of the query or subreddit that found it (default: the source's ``brand``).
    """
    raw = raw_data(item)
    is_comment = isinstance(item, Comment) or str(raw.get("name", "")).startswith("t1_")
    fullname = raw.get("name") or f"{'t1' if is_comment else 't3'}_{raw['id']}"
    author = raw.get("author")
    permalink = raw.get("permalink")
    if permalink:
        url = permalink if permalink.startswith("http") else PUBLIC_URL + permalink
    else:
        # Older comment listings carry no permalink; Reddit resolves any slug in this form.
        post_id = str(raw.get("link_id", "")).removeprefix("t3_")
        url = f"{PUBLIC_URL}/r/{raw.get('subreddit')}/comments/{post_id}/_/{raw['id']}/"
    created = raw.get("created_utc")
    if is_comment:
        title, text = None, raw.get("body")
    else:
        title = raw.get("title")
        text = raw.get("selftext") or title  # a link post's only words are its title
    return {
        "external_id": fullname,
        "url": url,
        "kind": "comment" if is_comment else "post",
        "author": author if author and author != "[deleted]" else None,
        "author_reach": _author_reach(vars(item).get("author")),
        "title": title,
        "text": text,
        "rating": None,
        "lang": None,
        "posted_at": _posted_at(created),
        "experienced_at": None,
        "location": source.location or None,
        "brand": (source.brand if brand is None else brand) or None,
        "parent_id": raw.get("parent_id") if is_comment else None,
        "raw": raw,
    }


# ------------------------------------------------------------------ errors


def describe_error(exc: BaseException) -> str:
    """A short, secret-free reason for a failed Reddit request."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(exc, prawcore.TooManyRequests):
        wait = f"; Reddit asks to wait {exc.retry_after} s" if exc.retry_after else ""
        return f"rate limited by Reddit (HTTP 429){wait}"
    if isinstance(exc, prawcore.BadJSON):
        return f"Reddit sent a malformed response (HTTP {status}, not valid JSON)"
    if isinstance(exc, prawcore.ServerError):
        return f"Reddit server error (HTTP {status}), still failing after retries"
    if isinstance(exc, prawcore.Redirect):
        return f"subreddit does not exist (Reddit redirected to {exc.path})"
    if isinstance(exc, prawcore.NotFound):
        return "not found (HTTP 404)"
    if isinstance(exc, prawcore.Forbidden):
        return "access denied (HTTP 403): the subreddit is private, quarantined or banned"
    if isinstance(exc, prawcore.OAuthException):
        return f"Reddit refused the access token request ({exc})"
    if isinstance(exc, prawcore.ResponseException):
        return f"unexpected HTTP {status} response from Reddit"
    if isinstance(exc, prawcore.RequestException):
        return f"could not reach Reddit ({type(exc.original_exception).__name__})"
    return f"{type(exc).__name__}: {exc}"


def _is_auth_failure(exc: BaseException) -> bool:
    if isinstance(exc, prawcore.OAuthException):
        return True
    response = getattr(exc, "response", None)
    return isinstance(exc, prawcore.ResponseException) and "/api/v1/access_token" in str(getattr(response, "url", ""))


def _retry_after(exc: prawcore.TooManyRequests) -> float | None:
    try:
        return float(exc.retry_after) if exc.retry_after else None
    except ValueError:
        return None


# --------------------------------------------------------------- collecting


def _read_listing(
    source: SourceConfig,
    label: str,
    brand: str,
    factory: Callable[[], Iterator[Any]],
    seen: set[str],
    mentions: list[dict[str, Any]],
    errors: list[str],
    first_crawl: bool = False,
    started: datetime | None = None,
) -> bool:
    """Read one listing into ``mentions``; items read before a failure are kept.

    Returns whether every item could be read (False: some item was skipped). On the listing's
    first crawl, items posted more than 48 hours before ``started`` are marked ``backfill``.
    """
    generator = factory()
    waited = False
    complete = True
    started = started or datetime.now(UTC)
    while True:
        try:
            for item in generator:
                try:
                    mention = to_mention(item, source, brand)
                except Exception as exc:  # noqa: BLE001 - one hostile item costs only itself
                    complete = False
                    errors.append(f"{source.name}: {label}: skipped an item in an unexpected shape ({describe(exc)})")
                    continue
                if is_backfill(mention["posted_at"], first_crawl, started):
                    mention["backfill"] = True
                if mention["external_id"] not in seen:
                    seen.add(mention["external_id"])
                    mentions.append(mention)
            return complete
        except prawcore.TooManyRequests as exc:
            wait = _retry_after(exc)
            if waited or wait is None or wait > MAX_RETRY_AFTER:
                raise _StopRun(describe_error(exc)) from None
            # A ListingGenerator re-requests the page that failed when iterated again, so nothing repeats.
            log.info("%s: %s rate limited; waiting %.0f s as Reddit asks", source.name, label, wait)
            time.sleep(wait)
            waited = True


def collect_reddit(
    source: SourceConfig,
    first_crawl: Callable[[str], bool] | None = None,
    clean: set[str] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read every search query and subreddit listing of ``source``; returns (mentions, error messages).

    Mentions are deduplicated by fullname. A failing query or listing adds one
    message naming the source and the listing; the others still run. Bad
    credentials or a long rate-limit stop the run early, keeping what was read.
    ``first_crawl(label)`` says whether a listing was never read cleanly (its old items
    are then backfill); the labels of listings read without any error are added to ``clean``.
    """
    started = datetime.now(UTC)
    try:
        reddit = make_reddit(source)
    except ConfigError as exc:
        return [], [str(exc)]
    mentions: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: set[str] = set()
    listings = _listings(reddit, source)
    for position, (label, brand, factory) in enumerate(listings):
        try:
            first = first_crawl(label) if first_crawl is not None else False
            read_all = _read_listing(source, label, brand, factory, seen, mentions, errors, first, started)
            if read_all and clean is not None:
                clean.add(label)
        except _StopRun as stop:
            errors.append(f"{source.name}: {label} failed: {stop}")
            skipped = [name for name, _, _ in listings[position + 1 :]]
            if skipped:
                errors.append(f"{source.name}: skipped {', '.join(skipped)} until the next crawl (rate limited)")
            break
        except (prawcore.PrawcoreException, PRAWException) as exc:
            if _is_auth_failure(exc):
                env = f"{source.options.get('client_id_env')} / {source.options.get('client_secret_env')}"
                errors.append(
                    f"{source.name}: Reddit rejected the app credentials from {env} ({describe_error(exc)}); "
                    f"{label} and the listings after it were not read"
                )
                break
            errors.append(f"{source.name}: {label} failed: {describe_error(exc)}")
        except Exception as exc:  # one broken listing must not stop the others
            log.exception("%s: unexpected error reading %s", source.name, label)
            errors.append(f"{source.name}: {label} failed: {describe_error(exc)}")
    for message in errors:
        log.warning("%s", message)
    log.info("%s: read %d Reddit items from %d listings", source.name, len(mentions), len(listings))
    return mentions, errors


def run_reddit_source(db: sqlite_utils.Database, source: SourceConfig) -> dict[str, Any]:
    """Crawl ``source`` once: record a crawl run and store the mentions; returns counts and messages."""
    close_interrupted_runs(db)
    run_id = start_crawl_run(db, source.name)
    claim_crawl_run(db, run_id)
    counts, errors = UpsertCounts(), []
    try:
        clean: set[str] = set()

        def first_crawl(label: str) -> bool:
            return get_source_state(db, source.name, CRAWLED_KEY + label) != "1"

        mentions, errors = collect_reddit(source, first_crawl, clean)
        mentions = [m for m in mentions if passes_keyword_rules(source, m)]
        counts = record_mentions(db, source.name, mentions)
        for label in sorted(clean):  # stored: later crawls of these listings find news, not history
            set_source_state(db, source.name, CRAWLED_KEY + label, "1")
    except Exception as exc:  # the run must still be closed with a message
        log.exception("%s: storing Reddit mentions failed", source.name)
        errors = [*errors, f"{source.name}: storing mentions failed: {type(exc).__name__}: {exc}"]
    finish_crawl_run(db, run_id, counts, errors)
    status = db.execute("select status from crawl_runs where id = ?", [run_id]).fetchone()[0]
    return {
        "new": counts.new,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "errors": len(errors),
        "messages": errors,
        "status": status,
    }


# ------------------------------------------------------------------ replies


def _reply_auth(source: SourceConfig) -> dict[str, str]:
    names = {option: source.options.get(option) or default for option, default in REPLY_ENV_DEFAULTS.items()}
    refresh_token = os.environ.get(names["refresh_token_env"])
    if refresh_token:
        return {"refresh_token": refresh_token}
    username, password = os.environ.get(names["username_env"]), os.environ.get(names["password_env"])
    if username and password:
        return {"username": username, "password": password}
    raise ConfigError(
        f"{source.key}.refresh_token_env",
        f"replying needs a Reddit account: set {names['refresh_token_env']} (an OAuth refresh token) or "
        f"{names['username_env']} and {names['password_env']} (source {source.name!r})",
    )


def post_reply(source: SourceConfig, parent_fullname: str, text: str) -> str:
    """Post ``text`` as a reply to a post (``t3_…``) or comment (``t1_…``); returns the new comment's fullname.

    Uses the account from a refresh token, or username and password, read from
    the environment variables named by the source's ``refresh_token_env`` /
    ``username_env`` / ``password_env`` options (defaults REDDIT_REFRESH_TOKEN,
    REDDIT_USERNAME, REDDIT_PASSWORD). Raises :class:`ConfigError` when no account
    is configured and :class:`RedditReplyError` when Reddit refuses.
    """
    kind, _, ident = parent_fullname.partition("_")
    if kind not in {"t1", "t3"} or not ident:
        raise RedditReplyError(
            f"{source.name}: cannot reply to {parent_fullname!r}: expected a post (t3_...) or comment (t1_...) id"
        )
    if not text.strip():
        raise RedditReplyError(f"{source.name}: the reply to {parent_fullname} is empty")
    reddit = make_reddit(source, **_reply_auth(source))
    target = reddit.comment(ident) if kind == "t1" else reddit.submission(ident)
    try:
        comment = target.reply(text)
    except RedditAPIException as exc:
        raise RedditReplyError(f"{source.name}: Reddit refused the reply to {parent_fullname}: {exc}") from None
    except (prawcore.PrawcoreException, PRAWException) as exc:
        if _is_auth_failure(exc):
            reason = f"Reddit rejected the account credentials ({describe_error(exc)})"
        else:
            reason = describe_error(exc)
        raise RedditReplyError(f"{source.name}: reply to {parent_fullname} failed: {reason}") from None
    if comment is None:
        raise RedditReplyError(
            f"{source.name}: Reddit accepted the reply to {parent_fullname} but returned no comment "
            "(it may be held for moderation)"
        )
    return comment.fullname
