"""Where the server is and how to get a token for it."""

from __future__ import annotations

import ssl
from typing import Any, Callable, NamedTuple, Optional

from h2o_audit_trail import _discovery, _http
from h2o_audit_trail.auth.token_provider import TokenProvider

#: Key of the platform client in the discovery service ("clients/platform").
PLATFORM_CLIENT_NAME = "platform"
#: Key of the Audit Trail service in the discovery service ("services/audit-trail").
AUDIT_TRAIL_SERVICE_NAME = "audit-trail"


class ConnectionConfig(NamedTuple):
    """The Audit Trail URL and a callable returning a bearer token. The
    callable is called before every request, so it may refresh the token."""

    audit_trail_url: str
    token_provider: Callable[[], Any]


def get_connection(
    audit_trail_url: str,
    refresh_token: str,
    issuer_url: str,
    client_id: str,
    client_secret: Optional[str],
    verify_ssl: bool,
    ssl_ca_cert: Optional[str],
) -> ConnectionConfig:
    """A ConnectionConfig whose token provider does the OIDC refresh-token
    grant at the issuer; the first grant is done here, so a bad refresh token
    fails now (TokenEndpointError)."""
    tp = TokenProvider(
        issuer_url=issuer_url,
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
        http_ssl_context=_http.ssl_context(verify_ssl, ssl_ca_cert),
    )
    tp()
    return ConnectionConfig(audit_trail_url=audit_trail_url, token_provider=tp)


def discover_platform_connection(
    environment_url: Optional[str] = None,
    config_path: Optional[str] = None,
    platform_token: Optional[str] = None,
    token_provider: Optional[Callable[[], Any]] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
) -> ConnectionConfig:
    """A ConnectionConfig from H2O AI Cloud discovery: the URL of
    ``services/audit-trail``, and as token provider ``token_provider``, or a
    refresh-token grant for ``platform_token`` (else the discovered platform
    credentials) with the ``clients/platform`` OAuth client at the
    environment's issuer. The token provider is called once here."""
    d = _discovery.discover(environment=environment_url, config_path=config_path, ssl_context=ssl_context)

    service = d.services.get(AUDIT_TRAIL_SERVICE_NAME)
    if service is None:
        raise LookupError("Audit Trail service is not registered in discovery service")
    if not service.uri:
        raise ConnectionError("Unable to discover Audit Trail server URL connection value.")

    if token_provider is not None:
        token_provider()
        return ConnectionConfig(audit_trail_url=service.uri, token_provider=token_provider)

    if not platform_token:
        platform_token = d.credentials.get(PLATFORM_CLIENT_NAME)
    if not platform_token:
        raise ValueError(
            "Please set the 'platform_token' argument or configure the H2O CLI "
            "(or set H2O_CLOUD_CLIENT_PLATFORM_TOKEN)."
        )

    platform_client = d.clients.get(PLATFORM_CLIENT_NAME)
    if platform_client is None:
        raise LookupError("platform client is not registered in discovery service")
    if not platform_client.oauth2_client_id:
        raise ConnectionError("Unable to discover platform oauth2_client_id connection value.")

    tp = TokenProvider(
        issuer_url=d.environment.issuer_url,
        client_id=platform_client.oauth2_client_id,
        refresh_token=platform_token,
        http_ssl_context=ssl_context,
    )
    tp()
    return ConnectionConfig(audit_trail_url=service.uri, token_provider=tp)
