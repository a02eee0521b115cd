"""The triage inbox: a small server-rendered Flask app over the store.

Mention text is hostile: Jinja2 autoescape is on for every template, links
only keep http(s) URLs, and a Content-Security-Policy forbids inline script.
Every state change is a POST carrying the session's CSRF token. With users
configured every page but /healthz needs a login; off loopback users are
required (see monitor/web/auth.py).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Response, abort, flash, g, redirect, render_template, request, session, url_for
from werkzeug.routing import IntegerConverter

from monitor.config import LABELS, Config
from monitor.escaping import safe_url
from monitor.queue.channels import channel_for, platform_name
from monitor.queue.export import queue_csv
from monitor.queue.items import BULK_LIMIT, QueueError, add_note, assign, bulk_change, dismiss, mark_replied, transition
from monitor.queue.listing import (
    OPEN_STATES,
    SLA_BUCKETS,
    STATES,
    InboxFilter,
    author_mentions,
    inbox_counts,
    item_detail,
    list_items,
    open_matches,
    sla_clock,
)
from monitor.queue.metrics import human_minutes, response_metrics
from monitor.queue.replying import (
    ReplyFailed,
    delete_reply,
    edit_reply,
    editable,
    platform_of_item,
    post_reply_now,
    reply_page_url,
    source_type_of,
)
from monitor.queue.templates import (
    MISSING_CONTACT,
    follows_template,
    load_templates,
    placeholder_values,
    suggest_reply,
)
from monitor.shifts.stage import mention_shift
from monitor.store.pool import StoreConnections
from monitor.store.replies import get_reply
from monitor.web.auth import (
    LoginThrottle,
    check_bind_address,
    check_password,
    credential_fingerprint,
    end_sessions,
    is_loopback,
    is_loopback_host_header,
    is_proxied,
    load_users,
    safe_redirect_target,
    session_generation,
)
from monitor.web.dashboards import blueprint as dashboards_blueprint
from monitor.web.inbox_view import day, flag_name, platform, reply_limit, tabs, time_filter, topic_name, words

SECRET_ENV = "MONITOR_SECRET_KEY"
PAGE_SIZE = 50
EXPORT_LIMIT = 100_000
TOPICS = (
    "wait_time", "staff_attitude", "staff_knowledge", "not_resolved", "product_quality", "price_billing",
    "cleanliness_ambience", "delivery_logistics", "app_website", "other",
)  # fmt: skip
FILTER_KEYS = ("q", "source", "location", "brand", "label", "topic", "assignee", "sla")
# Waitress's own defaults, except that proxy headers reach the app: it deletes X-Forwarded-* and Forwarded
# from untrusted peers, which hid a reverse proxy from the login-less inbox's loopback-only guard.
WAITRESS_OPTIONS = {"threads": 8, "ident": "mention-monitor", "clear_untrusted_proxy_headers": False}


class RowIdConverter(IntegerConverter):
    """``<int:...>`` limited to SQLite's INTEGER range: a larger id is simply not found (404), where
    passing it to SQLite raised OverflowError (HTTP 500)."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 - werkzeug's signature
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def _clean_arg(value: str | None) -> str:
    """A query-string value without control characters (a NUL made SQLite's full-text parser fail)."""
    return "".join(" " if ch < " " or ch == "\x7f" else ch for ch in (value or "")).strip()


__all__ = ["check_bind_address", "create_app", "is_loopback", "serve"]


def create_app(config: Config, users: dict[str, str] | None = None) -> Flask:
    """The inbox app. ``users`` (name → password hash) defaults to the ones in the environment."""
    app = Flask(__name__)
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    app.config["SECRET_KEY"] = os.environ.get(SECRET_ENV) or secrets.token_hex(32)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    # Lax, not Strict: a link from chat or email must open the item logged in; every change is a POST
    # with a CSRF token anyway.
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = config.web.cookie_secure
    app.config["PERMANENT_SESSION_LIFETIME"] = config.web.session_lifetime
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False  # a login lasts session_lifetime, not "while used"
    app.config["MONITOR"] = config
    if config.web.proxies:
        # Trust exactly as many X-Forwarded-* hops as there are proxies we run: the client address (login
        # throttling, logs), the scheme (Secure cookies, redirects) and host come from them; a client's own
        # X-Forwarded-For beyond those hops is ignored. Never on by default: without a proxy anyone could set them.
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = config.web.proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)  # type: ignore[method-assign]
    users = load_users(config.web) if users is None else users
    throttle = LoginThrottle()
    templates = load_templates(config.queue.templates_path)
    team = [member.name for member in config.team]
    location_names = {loc.id: loc.name or loc.id for loc in config.locations}
    contacts = {loc.id: loc.contact for loc in config.locations if loc.contact}
    zones = {loc.id: loc.timezone for loc in config.locations}
    brands = sorted({s.brand for s in config.sources if s.brand})

    app.jinja_env.filters["safe_url"] = safe_url
    app.jinja_env.filters["fromjson"] = lambda value: json.loads(value) if value else []
    app.jinja_env.filters["duration"] = human_minutes  # one duration format for terminal, web and digest
    # One time format on every inbox page: local (the location's zone, where managers think in shifts,
    # else [schedule] timezone), with the UTC time on hover.
    app.jinja_env.filters["when"] = time_filter(zones, config.schedule.timezone)
    app.jinja_env.filters["topic"] = topic_name  # "Waiting time", not wait_time
    app.jinja_env.filters["flag"] = flag_name
    app.jinja_env.filters["day"] = day
    app.jinja_env.filters["words"] = words  # "Unclassified language", not unclassified_language
    app.jinja_env.globals["csrf_token"] = _csrf_token
    app.jinja_env.globals["current_user"] = lambda: session.get("user")
    app.jinja_env.globals["login_enabled"] = bool(users)
    app.jinja_env.globals["platform_of"] = lambda source: platform(config.queue.source_types.get(source or ""))
    app.jinja_env.globals["sla_clock"] = sla_clock

    connections = StoreConnections(config.storage_target, max_size=WAITRESS_OPTIONS["threads"])
    app.extensions["monitor_connections"] = connections

    def db():
        if "db" not in g:
            g.db = connections.get()
        return g.db

    def actor() -> str:
        return session.get("user") or "web"

    @app.teardown_appcontext
    def close_db(_exc: BaseException | None) -> None:
        store = g.pop("db", None)
        if store is not None:
            connections.put(store)

    @app.before_request
    def require_login():
        if request.endpoint in ("healthz", "static", "login"):
            return None
        if not users:
            # No logins: only this machine may talk to the inbox. The Host check stops DNS rebinding (a web
            # page that re-points its own name at 127.0.0.1); forwarding headers mean a proxy is in front.
            if not is_loopback(request.remote_addr or "") or is_proxied(request.headers):
                abort(403, description="the inbox has no users configured, so it only answers this machine")
            if not is_loopback_host_header(request.host):
                abort(403, description="unexpected Host header; open the inbox as http://127.0.0.1:PORT/")
            return None
        user = session.get("user")
        fresh = time.time() - session.get("login_at", 0) < config.web.session_lifetime.total_seconds()
        valid = (
            user in users
            and fresh
            and secrets.compare_digest(
                session.get("credential", ""), credential_fingerprint(app.secret_key, users[user])
            )
            # ended by a logout since this cookie was issued?
            and secrets.compare_digest(session.get("generation", ""), session_generation(db(), user) or "-")
        )
        if not valid:
            session.pop("user", None)
            if request.method == "POST":
                abort(401, description="log in first")
            return redirect(url_for("login", next=request.full_path if request.args else request.path))
        return None

    @app.before_request
    def check_csrf() -> None:
        if request.method == "POST":
            sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
            expected = session.get("csrf_token")
            if not expected or not secrets.compare_digest(sent, expected):
                abort(403, description="missing or invalid CSRF token")

    @app.after_request
    def security_headers(response):
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if request.endpoint not in ("static",):
            response.headers["Cache-Control"] = "no-store"
        return response

    # ------------------------------------------------------------ login

    @app.route("/login", methods=["GET", "POST"])
    def login():
        target = safe_redirect_target(request.args.get("next"))
        if not users:
            return redirect(target)
        error = None
        if request.method == "POST":
            client = request.remote_addr or "?"
            name = (request.form.get("user") or "").strip()
            if throttle.blocked(client, name):
                abort(429, description="too many failed logins; wait a few minutes")
            if check_password(users, name, request.form.get("password") or ""):
                throttle.succeeded(client, name)
                session.clear()  # a fresh session (and CSRF token) on login
                session.permanent = True
                session["user"] = name
                session["login_at"] = time.time()
                session["credential"] = credential_fingerprint(app.secret_key, users[name])
                session["generation"] = session_generation(db(), name, create=True)
                return redirect(target)
            throttle.failed(client, name)
            error = "Unknown user or wrong password."
        return render_template("login.html", error=error, target=target), 401 if error else 200

    @app.post("/logout")
    def logout():
        if session.get("user") in users:
            end_sessions(db(), session["user"])  # server-side: a copy of this cookie stops working too
        session.clear()
        return redirect(url_for("login"))

    # ------------------------------------------------------------ inbox

    def inbox_filter() -> tuple[str, InboxFilter, dict[str, str]]:
        state = request.args.get("state", "open")
        states = OPEN_STATES if state not in STATES else (state,)
        values = {k: _clean_arg(request.args.get(k)) for k in FILTER_KEYS}
        if values["assignee"] == "me":
            values["assignee"] = session.get("user") or ""
        filters = InboxFilter(
            states=states,
            source=values["source"] or None,
            location=values["location"] or None,
            brand=values["brand"] or None,
            label=values["label"] if values["label"] in LABELS else None,
            topic=values["topic"] if values["topic"] in TOPICS else None,
            assignee=values["assignee"] or None,
            sla=values["sla"] if values["sla"] in SLA_BUCKETS else None,
            search=values["q"] or None,
        )
        return ("open" if state not in STATES else state), filters, {k: v for k, v in values.items() if v}

    @app.get("/")
    def inbox():
        state, filters, active = inbox_filter()
        page_arg = request.args.get("page", "1")
        page = min(max(int(page_arg), 1), 100_000) if page_arg.isascii() and page_arg.isdigit() else 1
        now = datetime.now(UTC)
        matched = open_matches(db(), filters)  # PostgreSQL: the search over the open items, once for both
        items = list_items(db(), filters=filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, now=now,
                           matched=matched)  # fmt: skip
        state_tabs, sla_tabs = tabs(inbox_counts(db(), filters, now, matched), state, filters.sla,
                                    lambda **args: url_for("inbox", **args), active)  # fmt: skip
        return render_template(
            "inbox.html", items=items, state=state, filters=active, page=page, page_size=PAGE_SIZE,
            now=now, states=STATES, sources=[s.name for s in config.sources], locations=location_names,
            brands=brands, labels=LABELS, topics=TOPICS, team=team, state_tabs=state_tabs, sla_tabs=sla_tabs,
            chips=filter_chips(active, state), bulk_limit=BULK_LIMIT, here=request.full_path,
        )  # fmt: skip

    def filter_chips(active: dict[str, str], state: str) -> list[tuple[str, str, str]]:
        """(what, value, link without it) for each active filter but SLA, which has its own chips."""
        names = {"q": "Search", "source": "Source", "location": "Location", "brand": "Brand", "label": "Label",
                 "topic": "Topic", "assignee": "Assignee"}  # fmt: skip
        shown = {"location": location_names.get(active.get("location", ""), ""),
                 "topic": topic_name(active.get("topic", "")) if active.get("topic") else ""}  # fmt: skip
        return [
            (names[key], shown.get(key) or value,
             url_for("inbox", state=state, **{k: v for k, v in active.items() if k != key}))
            for key, value in active.items() if key in names
        ]  # fmt: skip

    @app.post("/bulk")
    def bulk():
        """Assign or dismiss the items ticked in the list, then back to the same list with what happened."""
        action = request.form.get("action", "")
        ids = [int(v) for v in request.form.getlist("ids") if v.isascii() and v.isdigit() and len(v) < 19]
        back = safe_redirect_target(request.form.get("next"))
        if not ids:
            flash("Nothing selected: tick the items first.", "error")
            return redirect(back)
        user = (request.form.get("user") or "").strip()
        if action == "assign" and team and user not in team:
            abort(400, description=f"{user!r} is not on the team (configured: {', '.join(team)})")
        try:
            result = bulk_change(db(), ids, action, actor(), user=user or None,
                                 reason=request.form.get("reason", ""))  # fmt: skip
        except QueueError as exc:
            abort(400, description=str(exc))
        flash(result.message(f"assigned to {user}" if action == "assign" else "dismissed"),
              "ok" if result.done else "error")  # fmt: skip
        return redirect(back)

    @app.get("/export.csv")
    def export_csv():
        _state, filters, _active = inbox_filter()
        items = list_items(db(), filters=filters, limit=EXPORT_LIMIT)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        return Response(
            queue_csv(items),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="queue-{stamp}.csv"'},
        )

    def suggestion_for(detail: dict[str, Any]):
        source_type = source_type_of(config, detail["source"])
        facts = {
            **detail,
            "topics": json.loads(detail["topics"] or "[]"),
            "flags": json.loads(detail["urgency"] or "[]"),
            "source_type": source_type,
            # Reddit posts carry no location; the shift stage may have placed them by keywords.
            "location": detail["location"] or (detail.get("shift") or {}).get("location"),
        }
        values = placeholder_values(facts, location_names, contacts, config.queue.contact, config.digest.brand)
        return suggest_reply(db(), templates, facts, values) if templates else None

    @app.get("/items/<int:item_id>")
    def item(item_id: int):
        try:
            detail = item_detail(db(), item_id)
        except QueueError:
            abort(404)
        detail["shift"] = mention_shift(db(), detail["mention_id"])
        source_type = source_type_of(config, detail["source"])
        source = next((s for s in config.sources if s.name == detail["source"]), None)
        channel = channel_for(source_type, source)
        for reply in detail["replies"]:
            reply["can_edit"], reply["can_delete"] = editable(source_type, reply)
        # The same person elsewhere on this platform: the sources of this type (or this source alone when it
        # is no longer configured).
        same_platform = [n for n, t in config.queue.source_types.items() if source_type and t == source_type]
        others = author_mentions(db(), same_platform or [detail["source"]], detail["author"], detail["mention_id"])
        limit, limit_platform = reply_limit(source_type)
        return render_template(
            "item.html", item=detail, now=datetime.now(UTC), suggestion=suggestion_for(detail),
            team=team, can_post=channel is not None, reply_url=reply_page_url(source_type, detail),
            source_type=source_type, missing_contact=MISSING_CONTACT,
            platform=platform_name(channel) if channel else None, max_length=channel.max_length if channel else None,
            limit=limit, limit_platform=limit_platform, author_others=others, locations=location_names,
        )  # fmt: skip

    def _act(item_id: int, action) -> Any:
        try:
            action()
        except QueueError as exc:
            abort(409, description=str(exc))
        return redirect(url_for("item", item_id=item_id))

    @app.post("/items/<int:item_id>/assign")
    def assign_item(item_id: int):
        user = (request.form.get("user") or "").strip()
        if not user:
            abort(400, description="user is required")
        if team and user not in team:
            abort(400, description=f"{user!r} is not on the team (configured: {', '.join(team)})")
        return _act(item_id, lambda: assign(db(), item_id, user, actor=actor()))

    @app.post("/items/<int:item_id>/reply")
    def reply_item(item_id: int):
        text = (request.form.get("text") or "").strip()
        if not text:
            abort(400, description="reply text is required")
        template = request.form.get("template") or None
        if template:
            # Count the reply as the template's only if it still mostly says what the template said.
            try:
                detail = item_detail(db(), item_id)
            except QueueError:
                abort(404)
            detail["shift"] = mention_shift(db(), detail["mention_id"])
            template_text = next((t.text for t in templates if t.id == template), None)
            suggestion = suggestion_for(detail)
            reference = suggestion.text if suggestion and suggestion.template_id == template else template_text
            if reference is None or not follows_template(text, reference):
                template = None
        if request.form.get("send") == "post":
            try:
                post_reply_now(db(), config, item_id, text, actor=actor(), template=template)
            except ReplyFailed as exc:
                flash(f"Not posted: {exc}", "error")
                return redirect(url_for("item", item_id=item_id))
            except QueueError as exc:
                abort(409, description=str(exc))
            flash(f"Reply posted to {platform_of_item(db(), config, item_id)}.", "ok")
            return redirect(url_for("item", item_id=item_id))
        return _act(item_id, lambda: mark_replied(db(), item_id, text, actor=actor(), template=template))

    def _change_reply(item_id: int, reply_id: int, action, done: str) -> Any:
        """Edit or delete a posted reply; the reply must belong to the item in the URL."""
        reply = get_reply(db(), reply_id)
        if reply is None or reply["queue_item_id"] != item_id:
            abort(404)
        try:
            action()
        except ReplyFailed as exc:
            flash(f"Not changed: {exc}", "error")
            return redirect(url_for("item", item_id=item_id))
        except QueueError as exc:
            abort(409, description=str(exc))
        flash(done, "ok")
        return redirect(url_for("item", item_id=item_id))

    @app.post("/items/<int:item_id>/replies/<int:reply_id>/edit")
    def edit_reply_item(item_id: int, reply_id: int):
        text = (request.form.get("text") or "").strip()
        if not text:
            abort(400, description="reply text is required")
        return _change_reply(item_id, reply_id, lambda: edit_reply(db(), config, reply_id, text, actor=actor()),
                             "Reply edited on the platform.")  # fmt: skip

    @app.post("/items/<int:item_id>/replies/<int:reply_id>/delete")
    def delete_reply_item(item_id: int, reply_id: int):
        return _change_reply(item_id, reply_id, lambda: delete_reply(db(), config, reply_id, actor=actor()),
                             "Reply deleted on the platform.")  # fmt: skip

    @app.post("/items/<int:item_id>/dismiss")
    def dismiss_item(item_id: int):
        return _act(item_id, lambda: dismiss(db(), item_id, actor=actor(), reason=request.form.get("reason", "")))

    @app.post("/items/<int:item_id>/reopen")
    def reopen_item(item_id: int):
        return _act(item_id, lambda: transition(db(), item_id, "new", actor=actor(), detail="reopened by hand"))

    @app.post("/items/<int:item_id>/note")
    def note_item(item_id: int):
        return _act(item_id, lambda: add_note(db(), item_id, request.form.get("text") or "", author=actor()))

    # ------------------------------------------------------------ metrics

    @app.get("/metrics")
    def metrics():
        days_arg = request.args.get("days", "30")
        days = min(max(int(days_arg), 1), 3650) if days_arg.isascii() and days_arg.isdigit() else 30
        group = request.args.get("by") if request.args.get("by") in ("assignee", "source", "location") else "assignee"
        now = datetime.now(UTC)
        overall, groups = response_metrics(db(), now - timedelta(days=days), now + timedelta(seconds=1), group, now)
        return render_template("metrics.html", overall=overall, groups=groups, days=days, group=group)

    app.register_blueprint(dashboards_blueprint)  # /trends, /shifts, /sources, the /metrics chart

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.errorhandler(401)
    @app.errorhandler(403)
    @app.errorhandler(409)
    @app.errorhandler(429)
    def error_page(exc):
        return render_template("error.html", error=exc), exc.code

    return app


def _csrf_token() -> str:
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def serve(config: Config, host: str | None = None, port: int | None = None) -> None:
    """Serve the inbox with waitress (a production WSGI server) until interrupted."""
    from waitress import serve as waitress_serve

    host = host or config.web.host
    port = port if port is not None else config.web.port
    users = load_users(config.web)
    check_bind_address(host, users, config.web.users_env)
    waitress_serve(create_app(config, users), host=host, port=port, **WAITRESS_OPTIONS)
