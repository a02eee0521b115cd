"""The triage inbox: a small server-rendered Flask app over the store.

Mention text is hostile: Jinja2 autoescape is on for every template, links
only keep http(s) URLs, and a Content-Security-Policy forbids inline script.
Every state change is a POST carrying the session's CSRF token.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, abort, g, redirect, render_template, request, session, url_for

from monitor.config import Config, ConfigError
from monitor.escaping import safe_url
from monitor.queue.items import STATES, QueueError, assign, dismiss, item_detail, list_items, mark_replied
from monitor.shifts.stage import mention_shift
from monitor.store import open_db

SECRET_ENV = "MONITOR_SECRET_KEY"
PAGE_SIZE = 50


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_address(host: str) -> None:
    """Refuse to expose the inbox beyond this machine while it has no login."""
    if not is_loopback(host):
        raise ConfigError(
            "web.host",
            f"refusing to bind {host!r}: the inbox has no login yet, so it only listens on loopback "
            "(127.0.0.1, ::1, localhost); put it behind an authenticating proxy instead",
        )


def create_app(config: Config) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get(SECRET_ENV) or secrets.token_hex(32)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Strict"
    app.config["MONITOR"] = config
    app.jinja_env.filters["safe_url"] = safe_url
    app.jinja_env.filters["fromjson"] = lambda value: json.loads(value) if value else []
    app.jinja_env.globals["csrf_token"] = _csrf_token
    zones = {loc.id: loc.timezone for loc in config.locations}

    def local_time(iso: str | None, location: str | None) -> str:
        """A UTC timestamp shown in the location's own time zone, where managers think in shifts."""
        if not iso:
            return ""
        when = datetime.fromisoformat(iso)
        if location in zones:
            when = when.astimezone(ZoneInfo(zones[location]))
            return when.strftime("%a %d %b %H:%M %Z")
        return when.strftime("%a %d %b %H:%M UTC")

    app.jinja_env.filters["local_time"] = local_time

    def db():
        if "db" not in g:
            g.db = open_db(config.storage_path, migrate=False)
        return g.db

    @app.teardown_appcontext
    def close_db(_exc: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.conn.close()

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
        return response

    @app.get("/")
    def inbox():
        state = request.args.get("state", "open")
        states = ("new", "assigned") if state == "open" else (state,) if state in STATES else ("new", "assigned")
        page = max(int(request.args.get("page", "1") or 1), 1) if request.args.get("page", "1").isdigit() else 1
        filters = {k: request.args.get(k) or None for k in ("source", "label", "assignee", "q")}
        items = list_items(
            db(),
            states=states,
            source=filters["source"],
            label=filters["label"],
            assignee=filters["assignee"],
            search=filters["q"],
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        sources = [r["source"] for r in db().query("select distinct source from mentions order by source")]
        now = datetime.now(UTC).isoformat()
        return render_template(
            "inbox.html", items=items, state=state, filters=filters, sources=sources, page=page, now=now,
            states=STATES, page_size=PAGE_SIZE,
        )  # fmt: skip

    @app.get("/items/<int:item_id>")
    def item(item_id: int):
        try:
            detail = item_detail(db(), item_id)
        except QueueError:
            abort(404)
        detail["shift"] = mention_shift(db(), detail["mention_id"])
        return render_template("item.html", item=detail, now=datetime.now(UTC).isoformat())

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
        return _act(item_id, lambda: assign(db(), item_id, user, actor="web"))

    @app.post("/items/<int:item_id>/reply")
    def reply_item(item_id: int):
        text = (request.form.get("text") or "").strip()
        if not text:
            abort(400, description="reply text is required")
        return _act(item_id, lambda: mark_replied(db(), item_id, text, actor="web"))

    @app.post("/items/<int:item_id>/dismiss")
    def dismiss_item(item_id: int):
        return _act(item_id, lambda: dismiss(db(), item_id, actor="web", reason=request.form.get("reason", "")))

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

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
    check_bind_address(host)
    waitress_serve(create_app(config), host=host, port=port, threads=8, ident="mention-monitor")
