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
