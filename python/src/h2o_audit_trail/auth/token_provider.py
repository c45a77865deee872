"""An OIDC refresh-token grant (RFC 6749 section 6) that keeps an access
token fresh.

The token endpoint is the environment variable H2O_CLOUD_TOKEN_ENDPOINT_URL
when set, else the ``token_endpoint`` of the issuer's
``/.well-known/openid-configuration``. Each grant POSTs the form
``grant_type=refresh_token``, ``client_id``, ``refresh_token`` (and
``client_secret``, ``scope`` when given); the answer's ``access_token`` is
used until 5 seconds before it expires (``expires_in``, 30 s when absent),
and a ``refresh_token`` in the answer replaces the old one (rotation).
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import urllib.parse
from typing import Optional

from h2o_audit_trail import _http

TOKEN_ENDPOINT_URL_ENV = "H2O_CLOUD_TOKEN_ENDPOINT_URL"
#: Refresh this long before the access token expires.
EXPIRY_THRESHOLD = 5.0
#: Lifetime assumed when the token endpoint does not say (no expires_in).
EXPIRES_IN_FALLBACK = 30.0


class TokenEndpointError(Exception):
    """The token endpoint refused the grant with an OAuth 2.0 error
    (for example ``invalid_grant`` for an expired or revoked refresh token)."""

    def __init__(
        self,
        *,
        error: str,
        error_description: Optional[str] = None,
        error_uri: Optional[str] = None,
        status: Optional[int] = None,
    ) -> None:
        self.error = error
        self.error_description = error_description
        self.error_uri = error_uri
        self.status = status
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.error
        if self.error_description:
            text += f": {self.error_description}"
        if self.error_uri:
            text += f" ({self.error_uri})"
        return text


class TokenProvider:
    """Callable that returns a valid access token, refreshing it with the
    refresh token when needed. Thread-safe.

    Give either ``issuer_url`` (the token endpoint is discovered) or
    ``token_endpoint_url``."""

    def __init__(
        self,
        *,
        refresh_token: str,
        client_id: str,
        issuer_url: Optional[str] = None,
        client_secret: Optional[str] = None,
        token_endpoint_url: Optional[str] = None,
        scope: Optional[str] = None,
        http_ssl_context: Optional[ssl.SSLContext] = None,
        timeout: float = 30.0,
    ) -> None:
        if not refresh_token:
            raise ValueError("refresh_token is required")
        if not client_id:
            raise ValueError("client_id is required")
        if issuer_url and token_endpoint_url:
            raise ValueError("give either issuer_url or token_endpoint_url, not both")
        self._token_endpoint_url = token_endpoint_url or os.environ.get(TOKEN_ENDPOINT_URL_ENV) or None
        if not self._token_endpoint_url and not issuer_url:
            raise ValueError("issuer_url (or token_endpoint_url) is required")
        self._issuer_url = issuer_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._context = http_ssl_context
        self._timeout = timeout
        self._refresh_token = refresh_token
        self._access_token: Optional[str] = None
        self._expires_at = 0.0  # time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._access_token is None or time.monotonic() >= self._expires_at - EXPIRY_THRESHOLD:
                self._refresh()
            assert self._access_token is not None
            return self._access_token

    @property
    def token_endpoint_url(self) -> str:
        with self._lock:
            return self._endpoint()

    def _endpoint(self) -> str:
        if not self._token_endpoint_url:
            assert self._issuer_url
            url = self._issuer_url.rstrip("/") + "/.well-known/openid-configuration"
            resp = _http.send("GET", url, context=self._context, timeout=self._timeout, follow_redirects=True)
            doc = _json_or_none(resp.body)
            if not 200 <= resp.status <= 299 or not isinstance(doc, dict) or not doc.get("token_endpoint"):
                raise ConnectionError(
                    f"OIDC discovery failed: GET {url} answered {resp.status} {resp.body[:300]!r} "
                    "(expected JSON with token_endpoint)"
                )
            self._token_endpoint_url = str(doc["token_endpoint"])
        return self._token_endpoint_url

    def _refresh(self) -> None:
        endpoint = self._endpoint()
        form = {"grant_type": "refresh_token", "client_id": self._client_id, "refresh_token": self._refresh_token}
        if self._client_secret:
            form["client_secret"] = self._client_secret
        if self._scope:
            form["scope"] = self._scope
        started = time.monotonic()
        resp = _http.send(
            "POST",
            endpoint,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            data=urllib.parse.urlencode(form).encode("ascii"),
            context=self._context,
            timeout=self._timeout,
        )
        data = _json_or_none(resp.body)
        if not 200 <= resp.status <= 299:
            if 400 <= resp.status <= 499 and isinstance(data, dict) and data.get("error"):
                raise TokenEndpointError(
                    error=str(data["error"]),
                    error_description=data.get("error_description"),
                    error_uri=data.get("error_uri"),
                    status=resp.status,
                )
            raise ConnectionError(f"token endpoint {endpoint} answered {resp.status}: {resp.body[:300]!r}")
        if not isinstance(data, dict) or not data.get("access_token"):
            raise ConnectionError(f"token endpoint {endpoint} answered without access_token: {resp.body[:300]!r}")
        expires_in = data.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else EXPIRES_IN_FALLBACK
        except (TypeError, ValueError):
            lifetime = EXPIRES_IN_FALLBACK
        self._access_token = str(data["access_token"])
        self._expires_at = started + lifetime
        if data.get("refresh_token"):
            self._refresh_token = str(data["refresh_token"])


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None
