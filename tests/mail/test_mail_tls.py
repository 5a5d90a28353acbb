"""Email over TLS against real servers on this machine: STARTTLS on an `smtp://` server that is not a
local relay (127.0.0.2, so it must offer STARTTLS and show a certificate the system trusts), and
`smtps://` (TLS from the first byte). The certificates are made by the test with `cryptography`,
signed by a test authority that the process trusts through `SSL_CERT_FILE`."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mail_helpers import MAIL, QUEUE, Mailbox, free_port

from consent_db.models import OutboxMessage
from consent_db.session import unit_of_work
from gatekeeper.mail import outbox
from gatekeeper.runtime import Runtime
from workers import JobQueue

HOST = "127.0.0.2"  # loopback, but not one of the local relay addresses: STARTTLS is required


@dataclass(frozen=True)
class Pki:
    authority: Path  # the test authority's certificate (what SSL_CERT_FILE trusts)
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Gatekeeper test authority"))
        .issuer_name(_name("Gatekeeper test authority"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("mail.school.example"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.authority.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    return context


@dataclass
class Running:
    url: str
    mailbox: Mailbox


@pytest.fixture
def trusted(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process trusts the test authority (as an operator would add their own CA)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.authority))


def _serve(**kwargs: Any) -> Iterator[Running]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname=HOST, port=port, **kwargs)
    controller.start()
    try:
        yield Running(f"{'smtps' if 'ssl_context' in kwargs else 'smtp'}://{HOST}:{port}", mailbox)
    finally:
        controller.stop()


@pytest.fixture
def starttls_server(pki: Pki) -> Iterator[Running]:
    yield from _serve(tls_context=_server_context(pki), require_starttls=True)


@pytest.fixture
def plain_server() -> Iterator[Running]:
    yield from _serve()


@pytest.fixture
def smtps_server(pki: Pki) -> Iterator[Running]:
    yield from _serve(ssl_context=_server_context(pki), server_hostname=HOST)


def _send(settings: Any, url: str) -> OutboxMessage:
    """Queue one message through a runtime sending to `url`, run the jobs, and read its row back."""
    rt = Runtime(settings.with_(mail={**MAIL, "smtp_url": url}, queue=QUEUE), sender=JobQueue)
    try:
        now = datetime.now(UTC)
        with unit_of_work(rt.sessions) as session:
            message_id = outbox.queue_message(
                session,
                to=["parent@example.org"],
                subject="A test",
                text="Hello",
                kind="test",
                settings=rt.settings.mail,
                now=now,
                actor="test",
            ).id
        JobQueue.of(rt).drain()
        with unit_of_work(rt.sessions) as session:
            row = session.get(OutboxMessage, message_id)
            assert row is not None
            session.expunge(row)
            return row
    finally:
        rt.db.dispose()


def test_starttls_to_a_trusted_server_delivers(
    settings: Any, starttls_server: Running, trusted: None
) -> None:
    row = _send(settings, starttls_server.url)
    assert row.state == "sent", row.answer
    [message] = starttls_server.mailbox.received
    assert message["Message-ID"] == row.message_id


def test_a_server_that_does_not_offer_starttls_gets_nothing(
    settings: Any, plain_server: Running, trusted: None
) -> None:
    row = _send(settings, plain_server.url)
    assert row.state in ("queued", "failed") and row.sent_at is None
    assert row.answer is not None and "STARTTLS" in row.answer
    assert plain_server.mailbox.received == []


def test_a_certificate_the_system_does_not_trust_gets_nothing(
    settings: Any, starttls_server: Running
) -> None:
    row = _send(settings, starttls_server.url)
    assert row.state != "sent" and row.sent_at is None
    assert row.answer is not None and "certificate" in row.answer.lower()
    assert starttls_server.mailbox.received == []


def test_smtps_delivers_over_tls_from_the_first_byte(
    settings: Any, smtps_server: Running, trusted: None
) -> None:
    row = _send(settings, smtps_server.url)
    assert row.state == "sent", row.answer
    assert len(smtps_server.mailbox.received) == 1
