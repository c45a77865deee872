"""Both clients against a server whose listeners serve TLS (the certificate
of testdata/tls, signed by its CA; see generate.py there): searches with the
CA given as ssl_ca_cert, and with verification off; refused without the CA.
The server splits TLS connections by their first request (server/split.go):
REST requests from Python reach net/http over HTTP/1.1."""

from __future__ import annotations

import os
import ssl
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

import _server
import h2o_audit_trail
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F

TLS_DIR = Path(__file__).resolve().parent / "testdata" / "tls"
CA = str(TLS_DIR / "ca.pem")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[_server.Server]:
    binary = _server.find_binary(REPO_ROOT)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"audittrail binary not found at {binary}", pytrace=False)
    cert, key = str(TLS_DIR / "server.pem"), str(TLS_DIR / "server-key.pem")
    srv = _server.start(binary, tmp_path_factory.mktemp("audittrail-tls"), [
        "--public-tls-cert", cert, "--public-tls-key", key, "--internal-tls-cert", cert, "--internal-tls-key", key])
    try:
        yield srv
    finally:
        _server.stop(srv)


@pytest.fixture(scope="module")
def tls_event(tls_server) -> str:
    """One event created over TLS through the internal listener; its resource."""
    assert tls_server.public.startswith("https://") and tls_server.internal.startswith("https://")
    resource = f"//tls/{uuid.uuid4()}"
    body = {"eventTime": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"), "eventSource": "tls-test",
            "action": "actions/tls/things/CREATE", "principal": "users/jane", "sourceIpAddress": "1.1.1.1",
            "resource": resource, "type": "TYPE_API"}
    status, answer = _server.raw_post(f"{tls_server.internal}/v1/events?eventId={uuid.uuid4()}", tls_server.producer_token,
                                      body, context=ssl.create_default_context(cafile=CA))
    assert status == 200, answer
    return resource


def tls_client(flavour, url: str, token: str, **ssl_args):
    """An EventClient of flavour for url, with the TLS arguments both clients take."""
    if flavour.name == "ours":
        return h2o_audit_trail.login(endpoint=url, token=token, **ssl_args).event_client
    cc = flavour.module("h2o_audit_trail.connection_config")
    client = flavour.module("h2o_audit_trail.event.client")
    return client.EventClient(connection_config=cc.ConnectionConfig(audit_trail_url=url, token_provider=lambda: token),
                              **ssl_args)


@pytest.mark.parametrize("ssl_args", [{"ssl_ca_cert": CA}, {"verify_ssl": False}], ids=["ca", "no-verify"])
def test_search_over_tls(flavour, tls_server, tls_event, ssl_args):
    client = tls_client(flavour, tls_server.public, tls_server.reader_token, **ssl_args)
    with flavour.activate():
        resp = client.search_events(flavour.module("h2o_audit_trail.event.search").SearchEventsRequestFilter(
            resource_exact=tls_event))
    assert [e.resource for e in resp.events] == [tls_event]


def test_unknown_ca_is_refused(flavour, tls_server, tls_event):
    # The system's roots do not hold the test CA: the handshake fails,
    # before any request (ours refuses already in login's /version probe).
    with pytest.raises(Exception) as exc:
        client = tls_client(flavour, tls_server.public, tls_server.reader_token)
        with flavour.activate():
            client.search_events(F(resource_exact=tls_event))
    chain, e = [], exc.value
    while e is not None and len(chain) < 10:
        chain.append(repr(e))
        e = e.__cause__ or e.__context__
    assert any("CERTIFICATE_VERIFY_FAILED" in r for r in chain), chain
