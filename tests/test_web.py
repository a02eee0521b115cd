import html as html_lib
import re

import pytest

from monitor.config import ConfigError, QueueConfig, loads_config
from monitor.queue.items import refresh_queue
from monitor.store import open_db
from monitor.web.app import check_bind_address, create_app

from .helpers import XSS, add_classified


@pytest.fixture
def client(tmp_path):
    config = loads_config(f'[storage]\npath = "{tmp_path / "web.db"}"\n', tmp_path / "config.toml")
    db = open_db(config.storage_path)
    add_classified(db, "reviews", "1", XSS, "complaint", rating=1, url="javascript:alert(2)")
    add_classified(db, "reddit", "2", "Is the airport store open before 6am?", "neutral", kind="post",
                   urgency=["question"], probs={"complaint": 0.1, "neutral": 0.8, "praise": 0.1})  # fmt: skip
    refresh_queue(db, QueueConfig())
    db.conn.close()
    app = create_app(config)
    app.testing = True
    return app.test_client()


def csrf(client, path):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_inbox_lists_items_with_mention_text_escaped(client):
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "Is the airport store open before 6am?" in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_detail_page_escapes_and_neutralises_links(client):
    html = client.get("/items/1").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "javascript:" not in html


def test_filters_and_search(client):
    assert "airport" not in client.get("/?source=reviews").get_data(as_text=True)
    assert "airport" in client.get("/?q=airport").get_data(as_text=True)
    assert "Inbox zero" in client.get("/?q=nothingmatches").get_data(as_text=True)
    assert client.get('/?q="unbalanced').status_code == 200


def test_post_without_csrf_token_is_refused(client):
    assert client.post("/items/1/dismiss").status_code == 403
    assert client.post("/items/1/dismiss", data={"csrf_token": "forged"}).status_code == 403


def test_triage_with_csrf_token(client):
    token = csrf(client, "/items/1")
    assert client.post("/items/1/assign", data={"csrf_token": token, "user": "sam"}).status_code == 302
    response = client.post("/items/1/reply", data={"csrf_token": token, "text": "Sorry! Fixed."})
    assert response.status_code == 302
    html = client.get("/items/1").get_data(as_text=True)
    assert 'id="state">replied<' in html and "Sorry! Fixed." in html
    assert client.post("/items/1/assign", data={"csrf_token": token, "user": "kim"}).status_code == 409


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com", "::"])
def test_non_loopback_bind_is_refused(host):
    with pytest.raises(ConfigError, match="web.host"):
        check_bind_address(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_bind_is_allowed(host):
    check_bind_address(host)


def test_non_loopback_bind_is_allowed_with_users():
    check_bind_address("0.0.0.0", {"dana": "scrypt:32768:8:1$salt$hash"})


# ------------------------------------------------------------- the team's work

TEAM_CONFIG = """
[storage]
path = "{db}"
[queue]
contact = "care@acme.example"
[[locations]]
id = "downtown"
name = "Acme Downtown"
timezone = "America/New_York"
contact = "downtown@acme.example"
[[team]]
name = "dana"
[[team]]
name = "sam"
"""


@pytest.fixture
def team_app(tmp_path):
    config = loads_config(TEAM_CONFIG.format(db=tmp_path / "web.db"), tmp_path / "config.toml")
    db = open_db(config.storage_path)
    add_classified(db, "reviews", "1", "Waited 40 minutes", "complaint", rating=1, topics=["wait_time"])
    add_classified(db, "reviews", "2", "=cmd|' /C calc'!A0 rude staff", "complaint", rating=2)
    db.execute("update mentions set location = 'downtown', author = 'Pat <b>' where id = 1")
    refresh_queue(db, QueueConfig())
    db.conn.close()
    app = create_app(config, users={})
    app.testing = True
    return app


def test_suggested_reply_is_filled_in_and_escaped(team_app):
    html = team_app.test_client().get("/items/1").get_data(as_text=True)
    assert "Pat &lt;b&gt;" in html and "Pat <b>" not in html
    assert "downtown@acme.example" in html and "Acme Downtown" in html
    assert re.search(r'name="template" value="wait-time-\d"', html)
    assert 'id="reply-page"' not in html  # a schema_org page with no URL: nothing to open


def test_assign_only_to_team_members_and_notes(team_app):
    client = team_app.test_client()
    token = csrf(client, "/items/1")
    assert client.post("/items/1/assign", data={"csrf_token": token, "user": "kim"}).status_code == 400
    assert client.post("/items/1/assign", data={"csrf_token": token, "user": "dana"}).status_code == 302
    assert client.post("/items/1/note", data={"csrf_token": token, "text": "<i>called</i> her"}).status_code == 302
    html = client.get("/items/1").get_data(as_text=True)
    assert 'id="assignee">dana<' in html and "&lt;i&gt;called&lt;/i&gt; her" in html
    assert client.post("/items/1/note", data={"csrf_token": token, "text": " "}).status_code == 409


def test_reply_records_the_template_and_reopen(team_app):
    client = team_app.test_client()
    html = client.get("/items/1").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    template = re.search(r'name="template" value="([^"]+)"', html).group(1)
    suggested = html_lib.unescape(re.search(r'id="reply-text"[^>]*>([^<]*)</textarea>', html).group(1))
    edited = suggested.replace("Hi ", "Hello ", 1) + " Thanks again."  # edited, but still the template's words
    client.post("/items/1/reply", data={"csrf_token": token, "text": edited, "template": template})
    db = open_db(team_app.config["MONITOR"].storage_path, migrate=False)
    assert [(r["text"], r["template"]) for r in db["replies"].rows] == [(edited, template)]
    assert client.post("/items/1/reopen", data={"csrf_token": token}).status_code == 302
    assert "Reopen" not in client.get("/items/1").get_data(as_text=True)
    # the next suggestion for a wait-time complaint rotates to the other template
    html = client.get("/items/1").get_data(as_text=True)
    assert re.search(r'name="template" value="([^"]+)"', html).group(1) != template


def test_export_csv_neutralises_formulas(team_app):
    response = team_app.test_client().get("/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    assert ",'=cmd|' /C calc'!A0 rude staff\r\n" in body
    assert "Waited 40 minutes" in body


def test_metrics_page(team_app):
    client = team_app.test_client()
    token = csrf(client, "/items/1")
    client.post("/items/1/assign", data={"csrf_token": token, "user": "dana"})
    client.post("/items/1/reply", data={"csrf_token": token, "text": "Sorry"})
    html = client.get("/metrics?by=assignee").get_data(as_text=True)
    assert 'id="response-rate">50%<' in html
    assert "<td>dana</td>" in html and "(none)" in html
    assert client.get("/metrics?days=abc&by=<script>").status_code == 200


def test_non_loopback_clients_are_refused_without_users(team_app):
    client = team_app.test_client()
    assert client.get("/", environ_base={"REMOTE_ADDR": "10.0.0.5"}).status_code == 403
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "10.0.0.5"}).status_code == 200
    # a proxy on this machine forwards other clients: refused too
    assert client.get("/", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403


@pytest.mark.parametrize("host, status", [("127.0.0.1:8080", 200), ("localhost:8080", 200), ("[::1]:8080", 200),
                                          ("rebind.attacker.example", 403), ("evil.example:8080", 403)])  # fmt: skip
def test_dns_rebinding_is_refused_without_users(team_app, host, status):
    assert team_app.test_client().get("/", headers={"Host": host}).status_code == status


# ------------------------------------------------------------------- logins


@pytest.fixture
def login_app(tmp_path, monkeypatch):
    from monitor.web.auth import hash_password

    monkeypatch.setenv("MONITOR_USERS", f"dana:{hash_password('correct horse')}, sam:{hash_password('battery staple')}")
    config = loads_config(TEAM_CONFIG.format(db=tmp_path / "web.db"), tmp_path / "config.toml")
    db = open_db(config.storage_path)
    add_classified(db, "reviews", "1", "Waited 40 minutes", "complaint", rating=1)
    refresh_queue(db, QueueConfig())
    db.conn.close()
    app = create_app(config)
    app.testing = True
    return app


def login(client, user, password):
    token = csrf(client, "/login")
    return client.post("/login?next=/items/1", data={"csrf_token": token, "user": user, "password": password})


def test_login_is_required_when_users_are_configured(login_app):
    client = login_app.test_client()
    response = client.get("/items/1")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/export.csv").status_code == 302
    assert client.get("/healthz").status_code == 200
    assert login(client, "dana", "wrong password").status_code == 401
    assert login(client, "nobody", "correct horse").status_code == 401
    response = login(client, "dana", "correct horse")
    assert response.status_code == 302 and response.headers["Location"] == "/items/1"
    html = client.get("/items/1").get_data(as_text=True)
    assert "Log out dana" in html


def test_actions_are_logged_under_the_login_name(login_app):
    client = login_app.test_client()
    login(client, "sam", "battery staple")
    token = csrf(client, "/items/1")
    client.post("/items/1/assign", data={"csrf_token": token, "user": "dana"})
    html = client.get("/items/1").get_data(as_text=True)
    assert " · sam · assigned · assigned to dana" in html
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/items/1").status_code == 302


def test_post_without_login_is_refused(login_app):
    client = login_app.test_client()
    token = csrf(client, "/login")
    assert client.post("/items/1/dismiss", data={"csrf_token": token}).status_code == 401


def test_repeated_failed_logins_are_throttled(login_app):
    client = login_app.test_client()
    for _ in range(5):
        assert login(client, "dana", "guess").status_code == 401
    assert login(client, "dana", "correct horse").status_code == 429


@pytest.mark.parametrize("target", ["//evil.example/", "/%09/evil.example", "/%5Cevil.example", "https://evil.example",
                                    "/%0a/evil.example", "/\\evil"])  # fmt: skip
def test_open_redirects_are_refused(login_app, target):
    client = login_app.test_client()
    token = csrf(client, "/login")
    response = client.post(f"/login?next={target}", data={"csrf_token": token, "user": "dana",
                                                           "password": "correct horse"})  # fmt: skip
    assert response.headers["Location"] == "/"


def test_a_changed_password_or_an_old_login_ends_the_session(login_app, monkeypatch):
    from monitor.web.auth import hash_password

    client = login_app.test_client()
    login(client, "dana", "correct horse")
    assert client.get("/items/1").status_code == 200
    with client.session_transaction() as sess:
        sess["login_at"] -= 13 * 3600  # past the 12 h session lifetime
    assert client.get("/items/1").status_code == 302

    login(client, "dana", "correct horse")
    users = {"dana": hash_password("a new password"), "sam": "x$y"}
    app = create_app(login_app.config["MONITOR"], users=users)
    app.secret_key = login_app.secret_key
    app.testing = True
    other = app.test_client()
    with client.session_transaction() as old, other.session_transaction() as new:
        new.update(old)  # the same signed cookie, presented after the password changed
    assert other.get("/items/1").status_code == 302


def test_one_persons_typos_do_not_lock_out_the_team(login_app):
    client = login_app.test_client()
    for _ in range(5):
        login(client, "dana", "guess")
    assert login(client, "dana", "correct horse").status_code == 429
    assert login(client, "sam", "battery staple").status_code == 302


@pytest.mark.parametrize(
    "value, fragment",
    [("dana", "entry 1 is not name:hash"), ("dana:hunter2", "holds no password hash"), ("a:x$y, :z$w", "entry 2")],
)
def test_bad_user_lists_name_the_variable_but_not_the_secret(value, fragment):
    from monitor.config import WebConfig
    from monitor.web.auth import load_users

    with pytest.raises(ConfigError) as info:
        load_users(WebConfig(), {"MONITOR_USERS": value})
    assert "MONITOR_USERS" in str(info.value) and fragment in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_rewritten_reply_is_not_counted_as_the_template(team_app):
    client = team_app.test_client()
    html = client.get("/items/1").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    template = re.search(r'name="template" value="([^"]+)"', html).group(1)
    client.post(
        "/items/1/reply", data={"csrf_token": token, "text": "Totally my own words here.", "template": template}
    )
    db = open_db(team_app.config["MONITOR"].storage_path, migrate=False)
    assert [r["template"] for r in db["replies"].rows] == [None]


def test_odd_numbers_in_the_query_string_do_not_break_pages(team_app):
    client = team_app.test_client()
    assert client.get("/?page=99999999999999999999").status_code == 200
    assert client.get("/metrics?days=²").status_code == 200


def _proxied_app(tmp_path, monkeypatch, proxies: int):
    from monitor.web.auth import hash_password

    monkeypatch.setenv("MONITOR_USERS", f"dana:{hash_password('correct horse')}")
    config = loads_config(TEAM_CONFIG.format(db=tmp_path / "web.db"), tmp_path / "config.toml")
    config.web.proxies = proxies
    open_db(config.storage_path).conn.close()
    app = create_app(config)
    app.testing = True
    return app


def _login_from(client, forwarded_for: str, password: str):
    headers = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"}
    token = csrf(client, "/login")
    return client.post(
        "/login", data={"csrf_token": token, "user": "dana", "password": password}, headers=headers,
        environ_base={"REMOTE_ADDR": "10.0.0.2"},  # the proxy
    )  # fmt: skip


def test_behind_one_trusted_proxy_each_client_is_throttled_on_its_own_address(tmp_path, monkeypatch):
    app = _proxied_app(tmp_path, monkeypatch, proxies=1)
    attacker, colleague = app.test_client(), app.test_client()
    for _ in range(5):
        assert _login_from(attacker, "203.0.113.9", "guess").status_code == 401
    assert _login_from(attacker, "203.0.113.9", "correct horse").status_code == 429
    # Same proxy address, another client: not locked out by the attacker's failures; redirects say https.
    response = _login_from(colleague, "198.51.100.7", "correct horse")
    assert response.status_code == 302


def test_without_proxies_set_a_forged_forwarded_for_changes_nothing(tmp_path, monkeypatch):
    app = _proxied_app(tmp_path, monkeypatch, proxies=0)
    client = app.test_client()
    for n in range(5):  # a client rotating X-Forwarded-For cannot dodge the throttle
        assert _login_from(client, f"203.0.113.{n}", "guess").status_code == 401
    assert _login_from(client, "203.0.113.99", "correct horse").status_code == 429


def test_one_trusted_hop_ignores_addresses_a_client_put_in_front(tmp_path, monkeypatch):
    app = _proxied_app(tmp_path, monkeypatch, proxies=1)
    client = app.test_client()
    for n in range(5):  # the proxy appends the real address; spoofed ones before it are not trusted
        assert _login_from(client, f"192.0.2.{n}, 203.0.113.9", "guess").status_code == 401
    assert _login_from(client, "192.0.2.77, 203.0.113.9", "correct horse").status_code == 429
