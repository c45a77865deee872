"""A small OIDC issuer and H2O AI Cloud discovery service, served in-process
over HTTP for the login tests.

Until the Go server is an issuer itself, this is what login_custom() and
login() talk to: ``/.well-known/openid-configuration``, a token endpoint
that implements the refresh-token grant (RFC 6749 section 6: validates the
client and the refresh token, rotates refresh tokens, answers the server's
reader token as access_token), and the discovery documents
``/.ai.h2o.cloud.discovery/v1/environment|services|clients`` pointing at the
real audittrail server."""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

PUBLIC_CLIENT = "hac-platform-public"
CONFIDENTIAL_CLIENT = "audit-reporter"
CONFIDENTIAL_SECRET = "s3cr3t-for-tests"
DISCOVERY = "/.ai.h2o.cloud.discovery"
REALM = "/auth/realms/hac"


@dataclass
class Grant:
    """One call of the token endpoint, as the issuer saw it."""

    form: Dict[str, str]
    status: int
    issued_refresh_token: Optional[str] = None


class IdP:
    def __init__(self, audit_trail_url: str, access_token: str) -> None:
        self.audit_trail_url = audit_trail_url
        self.access_token = access_token
        self.expires_in: Optional[int] = 300
        self.register_audit_trail = True
        self.grants: List[Grant] = []
        self.requests: List[str] = []  # "GET /path?query"
        self._tokens: Dict[str, tuple] = {}  # refresh token -> (client id, reusable)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.issuer = self.base + REALM
        self.token_endpoint = self.issuer + "/protocol/openid-connect/token"
        self.platform_token = self.new_refresh_token(PUBLIC_CLIENT)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        self.expires_in = 300
        self.register_audit_trail = True
        self.grants.clear()
        self.requests.clear()

    def new_refresh_token(self, client_id: str = PUBLIC_CLIENT, reusable: bool = True) -> str:
        """A refresh token the issuer accepts. A reusable one (like an
        offline platform token) stays valid after use; otherwise it is
        single-use, as the rotated ones the issuer hands out are."""
        token = "rt-" + secrets.token_urlsafe(16)
        with self._lock:
            self._tokens[token] = (client_id, reusable)
        return token

    # --- token endpoint -------------------------------------------------------

    def token_answer(self, form: Dict[str, str]) -> tuple:
        def error(status: int, code: str, description: str) -> tuple:
            self.grants.append(Grant(form, status))
            return status, {"error": code, "error_description": description}

        if form.get("grant_type") != "refresh_token":
            return error(400, "unsupported_grant_type", f"grant_type {form.get('grant_type')!r}")
        client_id = form.get("client_id")
        if client_id == CONFIDENTIAL_CLIENT:
            if form.get("client_secret") != CONFIDENTIAL_SECRET:
                return error(401, "unauthorized_client", "Invalid client secret")
        elif client_id != PUBLIC_CLIENT:
            return error(401, "invalid_client", f"unknown client {client_id!r}")
        with self._lock:
            entry = self._tokens.get(form.get("refresh_token", ""))
            if entry is None:
                return error(400, "invalid_grant", "Token is not active")
            owner, reusable = entry
            if owner != client_id:
                return error(400, "invalid_grant", "Token client and authorized client don't match")
            if not reusable:
                del self._tokens[form["refresh_token"]]
        rotated = self.new_refresh_token(client_id, reusable=False)
        self.grants.append(Grant(form, 200, rotated))
        answer = {"access_token": self.access_token, "token_type": "Bearer", "refresh_token": rotated,
                  "refresh_expires_in": 1800, "scope": "openid offline_access"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return 200, answer

    # --- discovery ---------------------------------------------------------------

    def discovery_answer(self, path: str, query: Dict[str, str]) -> tuple:
        if path == "v1/environment":
            return 200, {"environment": {
                "h2oCloudEnvironment": self.base,
                "issuerUrl": self.issuer,
                "h2oCloudPlatformOauth2Scope": "openid offline_access",
                "h2oCloudVersion": "test",
            }}
        if path == "v1/services":  # two pages; the last one has no nextPageToken
            if query.get("pageToken") == "page-2":
                services = []
                if self.register_audit_trail:
                    services.append({"name": "services/audit-trail", "displayName": "Audit Trail",
                                     "uri": self.audit_trail_url, "version": "dev"})
                return 200, {"services": services}
            return 200, {"services": [{"name": "services/engine-manager", "displayName": "Engine Manager",
                                       "uri": self.base + "/engine-manager"}], "nextPageToken": "page-2"}
        if path == "v1/clients":
            return 200, {"clients": [
                {"name": "clients/platform", "displayName": "Platform", "oauth2ClientId": PUBLIC_CLIENT},
                {"name": "clients/cli", "displayName": "CLI", "oauth2ClientId": "hac-cli"},
            ]}
        if path in ("v1/links", "v1/components"):
            return 200, {path[3:]: []}
        return 404, {"code": 5, "message": "Not Found"}


def _handler(idp: IdP) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            idp.requests.append(f"GET {self.path}")
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == REALM + "/.well-known/openid-configuration":
                self._send(200, {"issuer": idp.issuer, "token_endpoint": idp.token_endpoint,
                                 "grant_types_supported": ["refresh_token"]})
            elif url.path.startswith(DISCOVERY + "/"):
                self._send(*idp.discovery_answer(url.path[len(DISCOVERY) + 1:], query))
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            idp.requests.append(f"POST {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            if url.path != urllib.parse.urlsplit(idp.token_endpoint).path:
                self._send(404, {"error": "not found"})
            elif "application/x-www-form-urlencoded" not in (self.headers.get("Content-Type") or ""):
                self._send(400, {"error": "invalid_request", "error_description": "not a form"})
            else:
                self._send(*idp.token_answer(dict(urllib.parse.parse_qsl(raw))))

    return Handler
