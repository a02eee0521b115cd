"""Mitigations named in docs/security.md that had no test of their own."""

from __future__ import annotations

import pytest

from monitor.alerts.deliver import webhook_url
from monitor.config import ConfigError, loads_config

from .test_schema_org import make_spider, run_parse, saved_response

WEBHOOK_ENV = "TEST_SECURITY_WEBHOOK_URL"


@pytest.mark.parametrize(
    "next_url",
    ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8080/", "http://intranet.example/admin",
     "//evil.example/p2"],
)  # fmt: skip
def test_a_crawled_page_cannot_send_the_crawler_to_another_host(next_url):
    """SSRF through crawled content: a "next page" link off the configured site is not followed."""
    page = saved_response("http://reviews.example/p1", f'<html><body><a rel="next" href="{next_url}">next</a>'.encode())
    _mentions, requests = run_parse(make_spider(), page)
    assert requests == []
    same_site = saved_response("http://reviews.example/p1", b'<html><body><a rel="next" href="/p2">next</a>')
    assert [r.url for r in run_parse(make_spider(), same_site)[1]] == ["http://reviews.example/p2"]


@pytest.mark.parametrize(
    "url, allowed",
    [("http://hooks.example/T0/secret", False), ("ftp://hooks.example/x", False), ("https://hooks.example/T0", True),
     ("http://127.0.0.1:9000/hook", True), ("http://[::1]:9000/hook", True)],
)  # fmt: skip
def test_a_webhook_url_holding_a_token_never_travels_in_clear_text_off_this_machine(monkeypatch, url, allowed):
    config = loads_config(f'[alerts]\nwebhook_url_env = "{WEBHOOK_ENV}"\n')
    monkeypatch.setenv(WEBHOOK_ENV, url)
    if allowed:
        assert webhook_url(config) == url
        return
    with pytest.raises(ConfigError) as info:
        webhook_url(config)
    assert info.value.key == "alerts.webhook_url_env" and "secret" not in str(info.value)
