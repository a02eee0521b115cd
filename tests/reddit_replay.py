"""Replay recorded Reddit traffic (betamax cassettes) from a loopback HTTP server.

PRAW pointed at this server (``reddit_url`` and ``oauth_url`` = its base URL)
receives the exact bytes Reddit once sent, so the collector's mapping is tested
against real payloads rather than our idea of them. Requests are matched by
method, path and the query parameters that select the data (``raw_json`` and the
token form body are ignored). Requests nothing matches get a 404 and are listed
in ``server.unmatched`` so a test can say what PRAW asked for.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Copies of PRAW's cassettes, kept in the repository so the tests run on a plain clone (tests/fixtures/README.md).
CASSETTE_DIR = Path(__file__).resolve().parent / "fixtures" / "reddit"

# Parameters that do not change which data Reddit returns.
IGNORED_PARAMS = {"raw_json"}
# Response headers worth replaying: PRAW reads the rate-limit ones, requests the content type.
REPLAYED_HEADERS = {"content-type", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset", "retry-after"}

Key = tuple[str, str, frozenset[tuple[str, str]]]


def _key(method: str, url: str) -> Key:
    parts = urlsplit(url)
    # Reddit treats "/r/all/comments" and "/r/all/comments/" alike, and PRAW's paths vary between versions.
    path = parts.path.rstrip("/").lower() or "/"
    params = frozenset((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in IGNORED_PARAMS)
    return method.upper(), path, params


def load_interactions(*names: str) -> list[dict[str, Any]]:
    """Interactions of the named cassettes (file names with or without ``.json``), in recorded order."""
    interactions = []
    for name in names:
        path = CASSETTE_DIR / (name if name.endswith(".json") else f"{name}.json")
        interactions.extend(json.loads(path.read_text(encoding="utf-8"))["interactions"])
    return interactions


class ReplayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, interactions: list[dict[str, Any]], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _ReplayHandler)
        # Same key recorded twice (a re-fetched page) is answered in recorded order; the last answer repeats.
        self.answers: dict[Key, deque[dict[str, Any]]] = defaultdict(deque)
        for interaction in interactions:
            request = interaction["request"]
            self.answers[_key(request["method"], request["uri"])].append(interaction["response"])
        self.requests: list[tuple[str, str]] = []
        self.unmatched: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def answer(self, method: str, target: str) -> dict[str, Any] | None:
        with self.lock:
            self.requests.append((method, target))
            queue = self.answers.get(_key(method, target))
            if not queue:
                self.unmatched.append((method, target))
                return None
            return queue.popleft() if len(queue) > 1 else queue[0]


class _ReplayHandler(BaseHTTPRequestHandler):
    server: ReplayServer
    protocol_version = "HTTP/1.1"

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # the token form body; drained so keep-alive stays in sync
        response = self.server.answer(self.command, self.path)
        if response is None:
            status, body, headers = 404, b'{"message": "Not Found", "error": 404}', {"Content-Type": "application/json"}
        else:
            status = response["status"]["code"]
            body = response["body"].get("string", "").encode("utf-8")
            headers = {
                name: values[0] if isinstance(values, list) else values
                for name, values in response["headers"].items()
                if name.lower() in REPLAYED_HEADERS
            }
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _reply

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        pass  # test output stays readable; server.requests has the traffic


def start_replay(*cassettes: str) -> tuple[ReplayServer, str]:
    """Serve the named cassettes on a free loopback port; returns the server and its base URL."""
    server = ReplayServer(load_interactions(*cassettes))
    # A short poll interval makes shutdown() return quickly (tests start and stop many servers).
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="reddit-replay", daemon=True
    ).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}"


@contextmanager
def replaying(*cassettes: str) -> Iterator[tuple[ReplayServer, str]]:
    server, base_url = start_replay(*cassettes)
    try:
        yield server, base_url
    finally:
        server.shutdown()
        server.server_close()
