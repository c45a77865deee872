"""The official client's login() and login_custom() against a standalone
server: the server is its own OIDC issuer for its API tokens (discovery
document, JWKS, token endpoint taking an API token as refresh token) and
serves the H2O Cloud discovery documents, so the unmodified client logs in
with nothing but the server's URL and a token (docs/security.md).

These tests run their own server (with an administrator token, to create API
tokens with `audittrail token create`); one test uses the session server of
conftest.py with its static reader token as platform token.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

import h2o_audit_trail
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.exception import CustomApiException

from compat_helpers import post, describe
from compat_model import SELF_AUDIT_ACTION, SELF_AUDIT_SOURCE
from conftest import REPO_ROOT, STARTUP_TIMEOUT, STOP_TIMEOUT, _free_port

UTC = timezone.utc
CLIENT_ID = "audittrail"  # the built-in issuer's default OAuth client id


class Standalone:
    def __init__(self, base: Path):
        self.binary = str(Path(os.environ.get("AUDITTRAIL_BIN", REPO_ROOT / "bin" / "audittrail")))
        pp, ip = _free_port(), _free_port()
        while ip == pp:
            ip = _free_port()
        self.public = f"http://127.0.0.1:{pp}"
        self.internal = f"http://127.0.0.1:{ip}"
        self.admin_token = secrets.token_urlsafe(32)
        self.producer_token = secrets.token_urlsafe(32)
        self.log_path = base / "server.log"
        cmd = [
            self.binary, "serve",
            "--data-dir", str(base / "data"),
            "--public-addr", f"127.0.0.1:{pp}",
            "--internal-addr", f"127.0.0.1:{ip}",
            "--admin-token", self.admin_token,
            "--producer-token", self.producer_token,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITTRAIL_")}
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=base)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"serve exited early:\n{self.log_tail()}"
            try:
                if requests.get(self.public + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"server not ready:\n{self.log_tail()}"
            time.sleep(0.1)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError as e:
            return f"(no log: {e})"

    def token(self, *args: str) -> str:
        """Runs `audittrail token ARGS` against the server, returns stdout."""
        out = subprocess.run(
            [self.binary, "token", *args, "--addr", self.internal, "--token", self.admin_token],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, f"audittrail token {args}: {out.returncode}\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def create_token(self, principal: str, *roles_and_flags: str) -> dict:
        return json.loads(self.token("create", "--principal", principal, *roles_and_flags, "-o", "json"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    s = Standalone(tmp_path_factory.mktemp("audittrail-login"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(autouse=True)
def _no_h2o_config(monkeypatch, tmp_path):
    """Keep a developer's H2O CLI configuration and H2O_CLOUD_* variables
    out of the discovery done by login()."""
    for k in list(os.environ):
        if k.startswith("H2O_CLOUD_") or k == "H2OCONFIG":
            monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.h2oai/h2o-cli-config.toml


def _seed(srv: Standalone, workspace: str) -> str:
    eid = str(uuid.uuid4())
    body = {
        "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "eventSource": "h2oai-login-test",
        "action": "actions/login-test/CREATE",
        "readOnly": False,
        "status": {"code": 0},
        "principal": "users/someone",
        "sourceIpAddress": "8.8.8.8",
        "resource": f"//login-test/{workspace}/things/1",
    }
    resp = post(srv.internal, "/v1/events", srv.producer_token, body, params={"eventId": eid})
    assert resp.status_code == 200, describe(resp)
    return f"events/{eid}"


def _names(client, flt) -> list:
    return [e.name for e in client.search_events(filter_=flt, page_size=1000).events]


def test_login_with_platform_token(standalone):
    name = _seed(standalone, "workspaces/w1")
    tok = standalone.create_token("users/alice", "--role", "auditor", "--ttl", "1d")
    clients = h2o_audit_trail.login(environment=standalone.public, platform_token=tok["secret"])
    got = _names(clients.event_client, F(event_source_exact="h2oai-login-test"))
    assert name in got


def test_login_custom(standalone):
    name = _seed(standalone, "workspaces/w1")
    tok = standalone.create_token("users/carol", "--role", "auditor")
    clients = h2o_audit_trail.login_custom(
        endpoint=standalone.public + "/",
        refresh_token=tok["secret"],
        issuer_url=standalone.public,
        client_id=CLIENT_ID,
    )
    got = _names(clients.event_client, F(event_source_exact="h2oai-login-test"))
    assert name in got


def test_login_workspace_auditor_sees_only_its_workspace(standalone):
    mine = _seed(standalone, "workspaces/w1")
    other = _seed(standalone, "workspaces/w2")
    tok = standalone.create_token("users/wendy", "--role", "workspace_auditor", "--workspace", "w1")
    ec = h2o_audit_trail.login(environment=standalone.public, platform_token=tok["secret"]).event_client
    got = _names(ec, F(event_source_exact="h2oai-login-test"))
    assert mine in got and other not in got
    # Naming another workspace is not an error: it finds nothing.
    assert _names(ec, F(workspace_exact="workspaces/w2")) == []


def test_revoked_token_stops_at_once(standalone):
    tok = standalone.create_token("users/dave", "--role", "auditor")
    ec = h2o_audit_trail.login(environment=standalone.public, platform_token=tok["secret"]).event_client
    ec.search_events(filter_=F(event_source_exact="h2oai-login-test"))
    standalone.token("revoke", tok["apiToken"]["id"])
    # The access token the client holds (valid for minutes) is refused now.
    with pytest.raises(CustomApiException) as exc:
        ec.search_events(filter_=F(event_source_exact="h2oai-login-test"))
    assert "401" in str(exc.value)
    # And the API token can no longer be exchanged.
    with pytest.raises(Exception):
        h2o_audit_trail.login(environment=standalone.public, platform_token=tok["secret"])


def test_login_records_searches_of_the_principal(standalone):
    tok = standalone.create_token("users/erin", "--role", "auditor")
    ec = h2o_audit_trail.login_custom(
        endpoint=standalone.public, refresh_token=tok["secret"], issuer_url=standalone.public, client_id=CLIENT_ID,
    ).event_client
    start = datetime.now(UTC)
    ec.search_events(filter_=F(action_exact="actions/login-test/CREATE"))
    time.sleep(0.5)
    got = ec.search_events(filter_=F(
        start_event_time=start, end_event_time=datetime.now(UTC),
        event_source_exact=SELF_AUDIT_SOURCE, action_exact=SELF_AUDIT_ACTION, principal_exact="users/erin",
    )).events
    assert len(got) == 1, [(e.name, e.principal) for e in got]
    e = got[0]
    assert e.read_only is True and e.status.code == 0
    assert e.request_parameters.get("filter.action_exact") == "actions/login-test/CREATE"
    assert e.source_ip_address == "private"


def test_token_endpoint_refusals(standalone):
    url = standalone.public + "/oauth2/token"
    for data, err in [
        ({"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": "atk_nope"}, "invalid_grant"),
        ({"grant_type": "password", "client_id": CLIENT_ID, "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "client_id": "someone-else", "refresh_token": "x"}, "invalid_client"),
    ]:
        r = requests.post(url, data=data, timeout=10)
        assert r.status_code == 400 and r.json()["error"] == err, r.text


def test_login_with_static_reader_token(server, world):
    """The session server's static reader token works as a platform token
    too: the built-in issuer exchanges it for an access token."""
    ec = h2o_audit_trail.login(environment=server.public, platform_token=server.reader_token).event_client
    assert ec.search_events(filter_=F(event_source_exact="no-such-source")).events == []
