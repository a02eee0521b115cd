"""Emailing the digest: the real smtplib client against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.cli import cli
from monitor.config import ConfigError, QueueConfig, load_config, loads_config
from monitor.digest import send
from monitor.digest.send import DigestSendError, deliver_digest, digest_subject
from monitor.queue.items import refresh_queue
from monitor.store import open_db

from .conftest import write_config
from .helpers import XSS, add_classified

USER, PASSWORD = "digest-bot", "s3cret-Pa55word"
TODAY = dt.datetime.now(dt.UTC).date()


# ----------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    """Retries must not wait in tests; records the delays asked for."""
    delays: list[float] = []
    monkeypatch.setattr(send, "_sleep", delays.append)
    return delays


@pytest.fixture(autouse=True)
def smtp_env(monkeypatch):
    monkeypatch.delenv("MONITOR_SMTP_USER", raising=False)
    monkeypatch.delenv("MONITOR_SMTP_PASSWORD", raising=False)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost: (cert file, server context, client context)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    return cert_file, server_ctx, client_ctx


class Handler:
    """Keeps what the server received; refuses the recipients listed in ``refuse`` (code -> addresses)."""

    def __init__(self, refuse: dict[str, set[str]] | None = None, temporary_once: bool = False) -> None:
        self.refuse = refuse or {}
        self.temporary_once = temporary_once
        self.received: list[dict] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.temporary_once:
            self.temporary_once = False
            return "451 4.3.0 try again later"
        for reply, addresses in self.refuse.items():
            if address in addresses:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "message": email.message_from_bytes(envelope.original_content, policy=email.policy.default),
                "tls": server.transport.get_extra_info("cipher") is not None,
                "login": session.auth_data.login if session.authenticated else None,
            }
        )
        return "250 Message accepted"


class LoopbackController(Controller):
    """aiosmtpd's threaded server on 127.0.0.1, on the free port the OS picks (port 0)."""

    def __init__(self, handler, **kwargs) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture
def smtp_server():
    """Start servers: ``smtp_server(handler, **aiosmtpd SMTP/Controller options)``; all stopped afterwards."""
    started = []

    def start(handler: Handler, **kwargs) -> LoopbackController:
        controller = LoopbackController(handler, **kwargs)
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def db(tmp_path):
    db = open_db(tmp_path / "m.db")
    # Posted on TODAY (UTC, fixed at collection) even when a midnight falls between collection and this test,
    # or just before it.
    start_of_today = dt.datetime.combine(TODAY, dt.time(0, 0, 1), dt.UTC)
    end_of_today = dt.datetime.combine(TODAY, dt.time(23, 59, 59), dt.UTC)
    posted = min(max(start_of_today, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)), end_of_today)
    add_classified(db, "reviews", "1", f"Waited an hour {XSS}", "complaint", rating=1, posted_at=posted)
    add_classified(db, "reviews", "2", "cold coffee", "complaint", rating=2, posted_at=posted)
    add_classified(db, "reviews", "3", "Lovely staff", "praise", posted_at=posted)
    refresh_queue(db, QueueConfig())
    db.execute("update queue_items set sla_due_at = '2000-01-01T00:00:00+00:00' where mention_id = 2")
    db.conn.commit()
    yield db
    db.conn.close()


def load_config_text(body: str, tmp_path=None):
    return loads_config(body) if tmp_path is None else load_config(write_config(tmp_path, body))


def digest_config(port: int, security: str = "none", recipients=("manager@acme.example",), extra: str = "") -> str:
    listed = ", ".join(f'"{r}"' for r in recipients)
    return (
        f'[digest]\nbrand = "Acme Coffee"\noutput_dir = "out"\nrecipients = [{listed}]\n'
        f'sender = "Acme Digest <digest@acme.example>"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        f'smtp_security = "{security}"\nsmtp_timeout = "5s"\n{extra}'
    )


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------- delivering


def test_starttls_with_login_delivers_a_multipart_digest(tmp_path, db, cert, smtp_server, monkeypatch):
    _cert_file, server_ctx, client_ctx = cert
    handler = Handler()
    server = smtp_server(handler, tls_context=server_ctx, require_starttls=True, authenticator=authenticator,
                         auth_required=True, auth_require_tls=True)  # fmt: skip
    monkeypatch.setenv("MONITOR_SMTP_USER", USER)
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", PASSWORD)
    config = load_config_text(
        digest_config(server.port, "starttls", ["manager@acme.example", "Dana <dana@acme.example>"]), tmp_path
    )

    path, sent_to = deliver_digest(config, db, TODAY, ssl_context=client_ctx)

    assert path == tmp_path / "out" / f"digest-{TODAY}.html" and path.exists()
    assert sent_to == ["manager@acme.example", "dana@acme.example"]
    [got] = handler.received
    assert got["tls"] and got["login"] == USER.encode()
    assert got["mail_from"] == "digest@acme.example"
    assert got["rcpt_tos"] == ["manager@acme.example", "dana@acme.example"]
    message = got["message"]
    assert message["Subject"] == f"Acme Coffee digest — {TODAY:%a %d %b}: 2 complaints, 1 overdue"
    assert message["From"] == "Acme Digest <digest@acme.example>"
    assert message["To"] == "manager@acme.example, dana@acme.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@acme.example>")
    assert abs(message["Date"].datetime - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert message.get_content_type() == "multipart/alternative"
    # No topics, shifts or brands in this store: no charts, so no multipart/related (tests/test_digest_people.py).
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert plain.startswith("Acme Coffee — daily digest") and "Waited an hour" in plain
    assert 'Waited an hour <script>alert("x")</script>' in plain  # text/plain: shown as written, never run
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    # The file and the email are the same digest.
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in path.read_text()


def test_implicit_tls(tmp_path, db, cert, smtp_server):
    _cert_file, server_ctx, client_ctx = cert
    handler = Handler()
    server = smtp_server(handler, ssl_context=server_ctx)
    config = load_config_text(digest_config(server.port, "tls"), tmp_path)
    _path, sent_to = deliver_digest(config, db, TODAY, ssl_context=client_ctx)
    assert sent_to == ["manager@acme.example"] and handler.received[0]["tls"]


def test_untrusted_certificate_is_refused(tmp_path, db, cert, smtp_server, no_sleep):
    _cert_file, server_ctx, _client_ctx = cert
    handler = Handler()
    server = smtp_server(handler, ssl_context=server_ctx)
    config = load_config_text(digest_config(server.port, "tls"), tmp_path)
    with pytest.raises(DigestSendError, match=r"TLS certificate of SMTP server 127\.0\.0\.1:\d+ is not trusted"):
        deliver_digest(config, db, TODAY)  # the system CA store does not know our self-signed cert
    assert handler.received == [] and no_sleep == []


def test_starttls_required_but_not_offered(tmp_path, db, smtp_server):
    server = smtp_server(Handler())
    config = load_config_text(digest_config(server.port, "starttls"), tmp_path)
    with pytest.raises(DigestSendError, match='does not offer STARTTLS .*use "tls"') as info:
        deliver_digest(config, db, TODAY)
    assert info.value.path.exists()


def test_plain_smtp_without_login(tmp_path, db, smtp_server):
    handler = Handler()
    server = smtp_server(handler)
    config = load_config_text(digest_config(server.port, "none"), tmp_path)
    path, sent_to = deliver_digest(config, db, TODAY, tmp_path / "d.md")
    assert sent_to == ["manager@acme.example"]
    assert path.read_text().startswith("# Acme Coffee — daily digest")  # the file keeps its own format
    assert not handler.received[0]["tls"] and handler.received[0]["login"] is None
    assert handler.received[0]["message"].get_content_type() == "multipart/alternative"


def test_no_recipients_writes_the_file_only(tmp_path, db):
    config = load_config_text('[digest]\noutput_dir = "out"\n', tmp_path)
    path, sent_to = deliver_digest(config, db, TODAY)
    assert path.exists() and sent_to == []
    with pytest.raises(ConfigError) as info:
        deliver_digest(config, db, TODAY, send=True)
    assert info.value.key == "digest.recipients"


# ------------------------------------------------------------------ failures


def test_wrong_password_names_the_keys_and_never_the_password(tmp_path, db, cert, smtp_server, monkeypatch,
                                                              caplog, no_sleep):  # fmt: skip
    _cert_file, server_ctx, client_ctx = cert
    handler = Handler()
    server = smtp_server(handler, tls_context=server_ctx, require_starttls=True, authenticator=authenticator,
                         auth_required=True)  # fmt: skip
    wrong = "not-the-" + PASSWORD
    monkeypatch.setenv("MONITOR_SMTP_USER", USER)
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", wrong)
    config = load_config_text(digest_config(server.port, "starttls"), tmp_path)
    with pytest.raises(DigestSendError) as info:
        deliver_digest(config, db, TODAY, ssl_context=client_ctx)
    text = str(info.value)
    assert f"SMTP server 127.0.0.1:{server.port} refused the login for user 'digest-bot' (535" in text
    assert "digest.smtp_user_env" in text and "digest.smtp_password_env" in text
    assert wrong not in text and wrong not in repr(info.value) and wrong not in caplog.text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert info.value.path.exists() and handler.received == []
    assert no_sleep == []  # a bad login is not retried
    assert wrong not in repr(send.smtp_settings(config.digest))


def test_every_recipient_refused(tmp_path, db, smtp_server, no_sleep):
    handler = Handler(refuse={"550 5.1.1 no such user": {"manager@acme.example"}})
    server = smtp_server(handler)
    config = load_config_text(digest_config(server.port), tmp_path)
    with pytest.raises(DigestSendError) as info:
        deliver_digest(config, db, TODAY)
    assert str(info.value) == (
        f"SMTP server 127.0.0.1:{server.port} refused every recipient: "
        "manager@acme.example (550 5.1.1 no such user); check digest.recipients"
    )
    assert info.value.path.exists() and handler.received == [] and no_sleep == []


def test_some_recipients_refused(tmp_path, db, smtp_server):
    handler = Handler(refuse={"550 5.1.1 no such user": {"gone@acme.example"}})
    server = smtp_server(handler)
    config = load_config_text(digest_config(server.port, recipients=["gone@acme.example", "dana@acme.example"]),
                              tmp_path)  # fmt: skip
    with pytest.raises(DigestSendError, match=r"refused recipient\(s\) gone@acme\.example \(550") as info:
        deliver_digest(config, db, TODAY)
    assert info.value.sent_to == ["dana@acme.example"]
    assert handler.received[0]["rcpt_tos"] == ["dana@acme.example"]


def test_temporary_failure_is_tried_again(tmp_path, db, smtp_server, no_sleep):
    handler = Handler(temporary_once=True)
    server = smtp_server(handler)
    config = load_config_text(digest_config(server.port), tmp_path)
    _path, sent_to = deliver_digest(config, db, TODAY)
    assert sent_to == ["manager@acme.example"] and len(handler.received) == 1
    assert no_sleep == [send.RETRY_DELAYS[0]]


def test_connection_refused(tmp_path, db, no_sleep):
    port = free_port()
    config = load_config_text(digest_config(port), tmp_path)
    with pytest.raises(DigestSendError) as info:
        deliver_digest(config, db, TODAY)
    assert str(info.value) == (
        f"cannot connect to SMTP server 127.0.0.1:{port} (digest.smtp_host, digest.smtp_port): connection refused"
    )
    assert info.value.path == tmp_path / "out" / f"digest-{TODAY}.html" and info.value.path.exists()
    assert no_sleep == []


def test_timeout_names_the_key(tmp_path, db, monkeypatch, no_sleep):
    monkeypatch.setattr(send, "RETRY_DELAYS", (0.0,))
    with socket.socket() as silent:  # accepts connections (backlog) but never says hello
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        config = load_config_text(digest_config(port).replace('smtp_timeout = "5s"', 'smtp_timeout = "1s"'), tmp_path)
        with pytest.raises(DigestSendError) as info:
            deliver_digest(config, db, TODAY)
    assert str(info.value) == (
        f"SMTP server 127.0.0.1:{port} (digest.smtp_host, digest.smtp_port) did not answer within 1s "
        "(digest.smtp_timeout) (after 2 attempts)"
    )
    assert no_sleep == [0.0] and info.value.path.exists()


# ------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('recipients = ["manager@acme.example", "not an address"]\nsmtp_host = "h"\nsender = "d@a.example"\n',
         "digest.recipients[1]", 'expected an email address like "manager@acme.example"'),
        ('recipients = "manager@acme.example"\n', "digest.recipients", "expected a list of strings"),
        ('recipients = ["m@acme.example"]\nsender = "d@acme.example"\n', "digest.smtp_host", "required when"),
        ('recipients = ["m@acme.example"]\nsmtp_host = "h"\n', "digest.sender", "required when"),
        ('sender = "Digest <d@acme.example>\\nBcc: x@evil.example"\n', "digest.sender", "expected an email address"),
        ('sender = "a@b.example, c@d.example"\n', "digest.sender", "expected an email address"),
        ('smtp_security = "ssl"\n', "digest.smtp_security", "expected one of starttls, tls, none"),
        ("smtp_port = 0\n", "digest.smtp_port", "expected a port number"),
        ('smtp_password_env = "my password"\n', "digest.smtp_password_env", "name of an environment variable"),
        ('smtp_timeout = "soon"\n', "digest.smtp_timeout", "expected a duration"),
        ('smtp_host = "smtp acme"\n', "digest.smtp_host", "expected a host name"),
    ],
)  # fmt: skip
def test_bad_digest_config_names_the_key(body, key, fragment):
    with pytest.raises(ConfigError) as info:
        loads_config("[digest]\n" + body)
    assert info.value.key == key and fragment in str(info.value)


def test_good_digest_config():
    config = loads_config(
        '[digest]\nrecipients = ["m@acme.example", "Dana Lee <dana@acme.example>"]\nsmtp_host = "smtp.acme.example"\n'
        'sender = "Acme Digest <digest@acme.example>"\nsmtp_security = "tls"\nsmtp_port = 465\n'
    )
    assert config.digest.recipients == ["m@acme.example", "Dana Lee <dana@acme.example>"]
    assert (config.digest.smtp_port, config.digest.smtp_timeout) == (465, dt.timedelta(seconds=30))
    defaults = loads_config("").digest
    assert (defaults.smtp_port, defaults.smtp_security, defaults.recipients) == (587, "starttls", [])


def test_login_needs_a_password_and_tls(monkeypatch):
    base = '[digest]\nrecipients = ["m@acme.example"]\nsender = "d@acme.example"\n'
    config = loads_config(base + 'smtp_host = "smtp.acme.example"\n')
    monkeypatch.setenv("MONITOR_SMTP_USER", USER)
    with pytest.raises(ConfigError, match="MONITOR_SMTP_PASSWORD is not set") as info:
        send.smtp_settings(config.digest)
    assert info.value.key == "digest.smtp_password_env"
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", PASSWORD)
    plain = loads_config(base + 'smtp_host = "smtp.acme.example"\nsmtp_security = "none"\n')
    with pytest.raises(ConfigError, match="unencrypted") as info:
        send.smtp_settings(plain.digest)
    assert info.value.key == "digest.smtp_security" and PASSWORD not in str(info.value)
    settings = send.smtp_settings(config.digest)
    assert (settings.user, settings.password, settings.recipients) == (USER, PASSWORD, ["m@acme.example"])


def test_subject_counts_and_stays_one_line():
    data = {"brand": "Acme\r\nBcc: x@evil.example", "day": "2026-11-22", "counts": {"complaint": 1},
            "overdue": [], "overdue_total": 3}  # fmt: skip
    assert digest_subject(data) == "Acme Bcc: x@evil.example digest — Sun 22 Nov: 1 complaint, 3 overdue"
    assert digest_subject({**data, "brand": "", "counts": {}}).startswith("Mention monitor digest — ")


# ---------------------------------------------------------------------- CLI


def test_cli_digest_send(tmp_path, db, smtp_server):
    handler = Handler()
    server = smtp_server(handler)
    path = write_config(tmp_path, '[storage]\npath = "m.db"\n' + digest_config(server.port))
    out = tmp_path / "today.html"
    result = CliRunner().invoke(cli, ["--config", str(path), "digest", "--output", str(out), "--send"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"digest written to {out}",
        f"digest emailed to manager@acme.example via 127.0.0.1:{server.port} (none)",
    ]
    assert out.exists() and len(handler.received) == 1
    # Without --send the CLI only writes, even with recipients configured.
    again = CliRunner().invoke(cli, ["--config", str(path), "digest", "--output", str(out)])
    assert again.exit_code == 0 and len(handler.received) == 1


def test_cli_send_failure_keeps_the_file(tmp_path, db):
    port = free_port()
    path = write_config(tmp_path, '[storage]\npath = "m.db"\n' + digest_config(port))
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)  # what `monitor digest` covers without --date
    result = CliRunner().invoke(cli, ["--config", str(path), "digest", "--send"])
    assert result.exit_code == 1
    written = tmp_path / "out" / f"digest-{yesterday}.html"
    assert f"digest written to {written} (not sent)" in result.output
    assert f"Error: cannot connect to SMTP server 127.0.0.1:{port}" in result.output and written.exists()


def test_cli_send_without_recipients_is_a_config_error(tmp_path, db):
    path = write_config(tmp_path, '[storage]\npath = "m.db"\n[digest]\noutput_dir = "out"\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "digest", "--send"])
    assert result.exit_code == 2
    assert result.output.startswith("config error: digest.recipients: no recipients configured")


def test_a_non_ascii_password_is_a_config_error_that_does_not_echo_it(monkeypatch, tmp_path):
    from monitor.config import ConfigError, loads_config
    from monitor.digest.send import smtp_settings

    config = loads_config(
        '[digest]\nrecipients = ["a@acme.example"]\nsender = "s@acme.example"\nsmtp_host = "127.0.0.1"\n'
        'smtp_user_env = "T_SMTP_USER"\nsmtp_password_env = "T_SMTP_PASSWORD"\n',
        tmp_path / "config.toml",
    )
    monkeypatch.setenv("T_SMTP_USER", "digest")
    monkeypatch.setenv("T_SMTP_PASSWORD", "pässwörd-9")
    with pytest.raises(ConfigError) as info:
        smtp_settings(config.digest)
    assert "T_SMTP_PASSWORD" in str(info.value) and "pässwörd" not in str(info.value)
