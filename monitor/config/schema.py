"""The config schema as data: every key of every table, with its checker, default and description.

Tests check from these tables that every key is documented in ``docs/config.md`` and in the example
``config.toml``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from monitor.brands import check_brand_table
from monitor.config.checkers import (
    MULTILINGUAL_DEFAULT,
    _bool,
    _broker_url,
    _clock,
    _count_at_least,
    _cron,
    _duration,
    _email_list,
    _env_name,
    _host,
    _label_map,
    _lang_codes,
    _lang_models,
    _model_device,
    _model_quantize,
    _non_negative,
    _nonempty_str,
    _optional_env_name,
    _optional_host,
    _optional_url,
    _overlap,
    _port,
    _positive_int,
    _sender,
    _smtp_security,
    _storage_url,
    _str,
    _str_list,
    _threshold,
    _timezone,
    _urgency_flags,
    _url,
    _url_list,
    _webhook_format,
    _weekdays,
)

# key -> (checker, default, description). A default of REQUIRED means required.

REQUIRED = object()

SECTIONS: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "storage": {
        "path": (_nonempty_str, "monitor.db", "SQLite database file, relative to the config file"),
        "url": (_storage_url, "", 'PostgreSQL: "postgresql://user@host/db" (password from PGPASSWORD)'),
    },
    "model": {
        "default": (_nonempty_str, "bundled", '"bundled" (models/sentiment-en), a local model directory, or a hub id'),
        "label_map": (_label_map, None, "map the model's labels to complaint/neutral/praise"),
        "languages": (_lang_models, {}, 'per-language models, e.g. { zh = "models/sentiment-zh" }'),
        "batch_size": (_positive_int, 32, "texts per inference batch"),
        "max_length": (_positive_int, 256, "tokens per text; longer text keeps its head and tail"),
        "threads": (_positive_int, 2, "CPU threads for inference"),
        "multilingual": (_str, "bundled", '"bundled" (models/sentiment-multi), a model directory, or "" for none'),
        "multilingual_languages": (_lang_codes, list(MULTILINGUAL_DEFAULT), "languages the multilingual model takes"),
        "device": (_model_device, "auto", '"auto" (a GPU when there is one), "cpu" or "cuda"'),
        "quantize": (_model_quantize, "none", '"none" or "int8" (dynamic int8 on CPU: faster, slightly less exact)'),
    },
    "queue": {
        "sla_social": (_duration, timedelta(hours=1), "time to answer a complaint on social platforms"),
        "sla_review": (_duration, timedelta(hours=24), "time to answer a review"),
        "complaint_threshold": (_threshold, 0.5, "minimum complaint probability to queue a mention"),
        "sla_by_source": (
            None,
            {},
            'SLA per source type or name, e.g. { yelp = "12h", "reddit-acme" = "30m" } (overrides the two above)',
        ),
        "sla_urgent": (
            _duration,
            timedelta(minutes=30),
            "SLA for items flagged safety_health or legal_threat (when shorter than their normal SLA)",
        ),
        "templates_dir": (_str, "", 'folder of suggested-reply templates (*.toml); "" uses the bundled English set'),
        "contact": (_str, "", "contact channel offered in suggested replies as {contact}, e.g. care@acme.example"),
        "auto_assign": (
            _bool,
            False,
            "assign each new item to the [[team]] member who covers it and has the fewest open items",
        ),
    },
    "digest": {
        "output_dir": (_nonempty_str, "digests", "where digest files are written, relative to the config file"),
        "brand": (_str, "", "own brand shown in the digest title"),
        "recipients": (_email_list, [], "who `monitor digest --send` and `monitor run` email the digest to"),
        "sender": (_sender, "", 'From address, e.g. "Acme Digest <digest@acme.example>" (required with recipients)'),
        "smtp_host": (_optional_host, "", "SMTP server host name (required with recipients)"),
        "smtp_port": (_port, 587, "SMTP server port (587 for starttls, 465 for tls, 25 for none)"),
        "smtp_security": (
            _smtp_security,
            "starttls",
            "starttls, tls (implicit TLS) or none (plain: local relays only)",
        ),
        "smtp_user_env": (_optional_env_name, "MONITOR_SMTP_USER", "env var with the SMTP login (unset: no login)"),
        "smtp_password_env": (_optional_env_name, "MONITOR_SMTP_PASSWORD", "env var with the SMTP password"),
        "smtp_timeout": (_duration, timedelta(seconds=30), "give up on an unresponsive SMTP server after this"),
        "inbox_url": (_optional_url, "", "the inbox's address, for links in the digest (default: alerts.inbox_url)"),
    },
    "web": {
        "host": (_host, "127.0.0.1", "address the inbox binds to"),
        "port": (_port, 8080, "port the inbox listens on"),
        "users_env": (
            _env_name,
            "MONITOR_USERS",
            "environment variable listing inbox users as name:password-hash pairs, comma-separated "
            "(`monitor hash-password` makes a hash); login is required when users are set and off loopback",
        ),
        "session_lifetime": (_duration, timedelta(hours=12), "how long an inbox login lasts"),
        "cookie_secure": (_bool, False, "mark the session cookie Secure (set it when a TLS proxy is in front)"),
        "proxies": (
            _count_at_least(0),
            0,
            "reverse proxies in front of the inbox whose X-Forwarded-For/-Proto/-Host/-Prefix are trusted (ProxyFix)",
        ),
    },
    "shifts": {
        "default_visit_lag": (_duration, timedelta(hours=2), "assumed time from visit to post when nothing says"),
        "incident_min_complaints": (_count_at_least(2), 3, "complaints at one location that make an incident"),
        "incident_window": (_duration, timedelta(hours=3), "time span those complaints must fall within"),
        "min_shift_mentions": (_count_at_least(1), 20, "mentions a shift needs before it can be flagged"),
        "min_shift_complaints": (_count_at_least(1), 5, "complaints a shift needs before it can be flagged"),
        "alpha": (_threshold, 0.05, "significance level of the flag test, Bonferroni-corrected per location"),
        "roster": (_str, "", "optional CSV of who worked which shift (date, location, shift, staff)"),
    },
    "trends": {
        "timezone": (_timezone, "UTC", "IANA time zone whose calendar days (and Monday weeks) trends count in"),
        "baseline_periods": (
            _count_at_least(3),
            14,
            "past days (or weeks) a brand's normal complaint count is taken from",
        ),
        "spike_alpha": (
            _threshold,
            0.001,
            "a period is a spike when a normal period reaches its count with lower probability",
        ),
        "min_spike_complaints": (_count_at_least(1), 5, "complaints a period needs before it can be a spike"),
    },
    "schedule": {
        "default_every": (_duration, timedelta(hours=1), "crawl interval of sources with neither every nor cron"),
        "process_every": (
            _duration,
            timedelta(minutes=5),
            "how often `monitor run` classifies, places on shifts and refreshes queue priorities",
        ),
        "digest_at": (_clock, 8 * 60, 'local time the daily digest (for the day before) is written, "HH:MM"'),
        "crawl_group": (
            _count_at_least(1),
            1,
            "sources on the same every / cron crawled by one job in one process (each crawl's start-up paid once)",
        ),
        "timezone": (_timezone, "UTC", "IANA time zone of digest_at and of the digest's day"),
    },
    "alerts": {
        "enabled": (_bool, True, "send alerts (they also need recipients or webhook_url_env)"),
        "every": (_duration, timedelta(minutes=5), "how often `monitor run` checks for alerts"),
        "urgent_items": (_bool, True, "alert on a new queue item carrying one of `flags`"),
        "flags": (_urgency_flags, ["safety_health", "legal_threat"], "urgency flags that alert"),
        "incidents": (_bool, True, "alert on a new incident ([shifts] incident_min_complaints in incident_window)"),
        "spikes": (_bool, True, "alert on a complaint spike for a brand today ([trends])"),
        "spike_brands": (_str_list, [], "brands whose spikes alert (empty: every brand)"),
        "sla_breaches": (_bool, False, "alert when an open item has just passed its SLA"),
        "sla_min_priority": (_non_negative, 0.0, "only items with at least this priority at their deadline"),
        "max_age": (_duration, timedelta(hours=24), "ignore what happened longer ago than this"),
        "recipients": (_email_list, [], "email addresses (SMTP settings from [digest])"),
        "webhook_url_env": (_optional_env_name, "", "env var holding the webhook URL"),
        "webhook_format": (_webhook_format, "text", '"text" ({"text": ...}, Slack / Teams) or "full"'),
        "webhook_timeout": (_duration, timedelta(seconds=10), "give up on a webhook that does not answer"),
        "inbox_url": (_optional_url, "", "the inbox's address, for links to items in alerts"),
        "excerpt_chars": (_count_at_least(40), 280, "mention text quoted per alert, at most"),
    },
    "workers": {
        "broker": (_broker_url, "", "Redis URL: `monitor run` enqueues jobs there, `monitor worker` runs them"),
    },
}

LOCATION_KEYS: dict[str, tuple[Any, Any, str]] = {
    "id": (_nonempty_str, REQUIRED, "identifier used by sources' location key"),
    "name": (_nonempty_str, None, "display name (default: the id)"),
    "timezone": (_timezone, REQUIRED, "IANA time zone, e.g. America/New_York"),
    "sources": (_str_list, [], "sources whose mentions belong here (besides those naming it as location)"),
    "business_ids": (_str_list, [], "platform business / place ids of this location, matched in URLs and raw data"),
    "keywords": (_str_list, [], "words that place a mention without a location here, e.g. terminal 4"),
    "contact": (_str, "", "this location's contact channel for suggested replies (default [queue] contact)"),
}
# A location's [[locations.shifts]] tables are checked against SHIFT_KEYS by _check_shifts.

SHIFT_KEYS: dict[str, tuple[Any, Any, str]] = {
    "name": (_nonempty_str, REQUIRED, "shift name, unique within the location"),
    "start": (_clock, REQUIRED, 'local start time "HH:MM"'),
    "end": (_clock, REQUIRED, 'local end time "HH:MM"; at or before start means the next day'),
    "weekdays": (_weekdays, tuple(range(7)), 'days the shift starts on, e.g. ["mon", "tue"] (default all)'),
}

TEAM_KEYS: dict[str, tuple[Any, Any, str]] = {
    "name": (_nonempty_str, REQUIRED, "the member's name, as shown in the inbox and the audit log"),
    "locations": (_str_list, [], "location ids this member answers for (empty: all)"),
    "sources": (_str_list, [], "source names or types this member answers for (empty: all)"),
    "languages": (_str_list, [], 'languages this member answers in, e.g. ["en", "es"] (empty: all)'),
}

SOURCE_KEYS: dict[str, tuple[Any, Any, str]] = {
    "name": (_nonempty_str, REQUIRED, "unique name; used by `monitor crawl NAME`"),
    "type": (_nonempty_str, REQUIRED, "source type (see docs/sources.md)"),
    "enabled": (_bool, True, "false skips the source in scheduled and bulk crawls"),
    "every": (_duration, None, 'crawl interval, e.g. "15m"'),
    "cron": (_cron, None, 'crawl schedule as a cron expression, e.g. "*/15 * * * *"'),
    "brand": (_str, "", "own brand or a competitor's name"),
    "location": (_str, "", "a [[locations]] id"),
    "visit_lag": (_duration, None, "assumed time from visit to post for this source (default [shifts])"),
    "exclude": (_str_list, [], "drop mentions containing any of these words or phrases (cuts noise)"),
    "require": (_str_list, [], "keep only mentions containing at least one of these (empty: keep all)"),
    "user_agent": (_nonempty_str, "mention-monitor/0.1 (+https://github.com/mention-monitor)", "User-Agent sent"),
}

# One source can watch several brands: a mention gets the brand of the term or id that found it.
BRANDS_DOC = 'brand per search term or id, e.g. { "Rival Coffee" = ["rival coffee"] } (the rest: brand)'

SOURCE_TYPES: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "reddit": {
        "search": (_str_list, [], "Reddit search queries"),
        "subreddits": (_str_list, [], "subreddits whose new posts and comments are read"),
        "client_id_env": (_env_name, "REDDIT_CLIENT_ID", "environment variable holding the OAuth client id"),
        "client_secret_env": (_env_name, "REDDIT_CLIENT_SECRET", "environment variable holding the client secret"),
        "oauth_url": (_url, "https://oauth.reddit.com", "API host (override only for tests)"),
        "reddit_url": (_url, "https://www.reddit.com", "token host (override only for tests)"),
        "limit": (_positive_int, 100, "items read per query or listing per crawl"),
        "comments": (_bool, True, "also read comments of subreddit listings"),
        "refresh_token_env": (_env_name, "REDDIT_REFRESH_TOKEN", "env var with an OAuth refresh token (replying)"),
        "username_env": (_env_name, "REDDIT_USERNAME", "env var with the account name (replying, script apps)"),
        "password_env": (_env_name, "REDDIT_PASSWORD", "env var with the account password (replying, script apps)"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "app_store": {
        "app_ids": (_str_list, REQUIRED, 'numeric App Store ids, e.g. ["284882215"]'),
        "countries": (_str_list, ["us"], "two-letter storefront codes; each has its own ~500 recent reviews"),
        "base_url": (_url, "https://itunes.apple.com", "API host (override only for tests)"),
        "max_pages": (_positive_int, 10, "pages of 50 reviews per app and country (Apple serves at most 10)"),
        "overlap": (_overlap, 20, "already-seen reviews read past before paging stops (catches edits)"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "google_places": {
        "place_ids": (_str_list, REQUIRED, "Google place ids"),
        "api_key_env": (_env_name, "GOOGLE_PLACES_API_KEY", "environment variable holding the API key"),
        "language": (_str, "", "languageCode for review text (empty: the reviews' own language)"),
        "base_url": (_url, "https://places.googleapis.com", "API host (override only for tests)"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "yelp": {
        "business_ids": (_str_list, REQUIRED, "Yelp business ids or aliases"),
        "api_key_env": (_env_name, "YELP_API_KEY", "environment variable holding the Fusion API key"),
        "locale": (_str, "", "review locale, e.g. en_US (empty: Yelp's default)"),
        "base_url": (_url, "https://api.yelp.com", "API host (override only for tests)"),
        # Yelp's time_created is the business's local wall time, with no offset.
        "timezone": (
            lambda key, value: _timezone(key, value) if value != "" else "",
            "",
            "IANA time zone of the businesses, for Yelp's local review times "
            "(empty: the zone of the business's or the source's [[locations]] entry; UTC without one)",
        ),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "trustpilot": {
        "business_unit_ids": (_str_list, REQUIRED, "Trustpilot business unit ids"),
        "api_key_env": (_env_name, "TRUSTPILOT_API_KEY", "environment variable holding the API key"),
        "base_url": (_url, "https://api.trustpilot.com", "API host (override only for tests)"),
        "max_pages": (_positive_int, 20, "pages of reviews read per crawl"),
        "overlap": (_overlap, 20, "already-seen reviews read past before paging stops (catches edits)"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
        # Owner mode: the private reviews API (every review, the company's replies) and replying, with OAuth.
        "owner": (_bool, False, "read the business's own reviews through the private API and reply (OAuth)"),
        "api_secret_env": (_env_name, "TRUSTPILOT_API_SECRET", "environment variable holding the API secret"),
        "business_user_id": (_str, "", "Trustpilot business user id that signs replies (owner mode)"),
    },
    "app_store_connect": {
        "app_id": (_nonempty_str, REQUIRED, "the app's Apple id (App Store Connect, App Information)"),
        "issuer_id_env": (_env_name, "ASC_ISSUER_ID", "environment variable holding the API key's issuer id"),
        "key_id_env": (_env_name, "ASC_KEY_ID", "environment variable holding the API key id"),
        "private_key_path_env": (_env_name, "ASC_PRIVATE_KEY_PATH", "environment variable with the .p8 key's path"),
        "base_url": (_url, "https://api.appstoreconnect.apple.com", "API host (override only for tests)"),
        "max_pages": (_positive_int, 20, "pages of 200 reviews read per crawl"),
        "overlap": (_overlap, 20, "already-seen reviews read past before paging stops (catches edits)"),
    },
    "hackernews": {
        "search": (_str_list, REQUIRED, "Algolia search queries (stories and comments)"),
        "base_url": (_url, "https://hn.algolia.com", "API host (override only for tests)"),
        "max_pages": (_positive_int, 5, "result pages read per query per crawl"),
        "overlap": (_overlap, 20, "already-seen items read past before paging stops"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "mastodon": {
        "base_url": (_url, REQUIRED, "the instance, e.g. https://mastodon.social"),
        "tags": (_str_list, [], "hashtags (without #) whose public timelines are read"),
        "search": (_str_list, [], "full-text search queries (needs an access token on most instances)"),
        "access_token_env": (_env_name, "MASTODON_ACCESS_TOKEN", "environment variable holding an access token"),
        "max_pages": (_positive_int, 5, "pages read per tag or query per crawl"),
        "overlap": (_overlap, 20, "already-seen posts read past before paging stops"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "bluesky": {
        "search": (_str_list, REQUIRED, "app.bsky.feed.searchPosts queries"),
        "base_url": (_url, "https://public.api.bsky.app", "AppView host for searchPosts"),
        "auth_url": (_url, "https://bsky.social", "PDS host for app-password login"),
        "handle_env": (_env_name, "BLUESKY_HANDLE", "environment variable holding the account handle"),
        "app_password_env": (_env_name, "BLUESKY_APP_PASSWORD", "environment variable holding an app password"),
        "max_pages": (_positive_int, 5, "pages read per query per crawl"),
        "overlap": (_overlap, 20, "already-seen posts read past before paging stops"),
        "brands": (check_brand_table, {}, BRANDS_DOC),
    },
    "feed": {
        "urls": (_url_list, REQUIRED, "RSS or Atom feed URLs (news alerts, blogs)"),
    },
    "google_business": {
        "account": (_nonempty_str, REQUIRED, "Business Profile account id (the number in accounts/{id})"),
        "location_ids": (_str_list, REQUIRED, "Business Profile location ids (the numbers in locations/{id})"),
        "client_id_env": (_env_name, "GOOGLE_CLIENT_ID", "environment variable holding the OAuth client id"),
        "client_secret_env": (_env_name, "GOOGLE_CLIENT_SECRET", "environment variable holding the client secret"),
        "refresh_token_env": (_env_name, "GOOGLE_REFRESH_TOKEN", "env var with the owner's OAuth refresh token"),
        "base_url": (_url, "https://mybusiness.googleapis.com", "API host (override only for tests)"),
        "token_url": (_url, "https://oauth2.googleapis.com/token", "OAuth token endpoint (override only for tests)"),
        "page_size": (_positive_int, 50, "reviews per page (Google serves at most 50)"),
        "max_pages": (_positive_int, 100, "pages read per location per crawl (first crawl: all reviews)"),
    },
    "google_play": {
        "package_names": (_str_list, REQUIRED, 'Android package names, e.g. ["com.acme.app"]'),
        "key_file_env": (_env_name, "GOOGLE_PLAY_KEY_FILE", "env var with the path of the service account's JSON key"),
        "translation_language": (_str, "", "translate review text to this language, e.g. en (empty: as written)"),
        "base_url": (_url, "https://androidpublisher.googleapis.com", "API host (override only for tests)"),
        "token_url": (_url, "https://oauth2.googleapis.com/token", "OAuth token endpoint (override only for tests)"),
        "max_results": (_positive_int, 100, "reviews per page"),
        "max_pages": (_positive_int, 20, "pages read per app per crawl (the API keeps one week of reviews)"),
    },
    "schema_org": {
        "urls": (_url_list, REQUIRED, "pages with schema.org Review markup"),
        "follow_pagination": (_bool, True, 'follow rel="next" / "next page" links'),
        "max_pages": (_positive_int, 20, "pages followed per start URL"),
        "obey_robots": (_bool, True, "obey robots.txt (keep true)"),
    },
}


def all_documented_keys() -> list[str]:
    """Every config key as a dotted path, for the documentation tests."""
    keys = [f"{section}.{key}" for section, schema in SECTIONS.items() for key in schema]
    keys += [f"locations.{key}" for key in LOCATION_KEYS]
    keys += [f"locations.shifts.{key}" for key in SHIFT_KEYS]
    keys += [f"team.{key}" for key in TEAM_KEYS]
    keys += [f"sources.{key}" for key in SOURCE_KEYS]
    keys += [f"sources.{key}" for schema in SOURCE_TYPES.values() for key in schema]
    return sorted(set(keys))
