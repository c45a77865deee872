"""login() and login_custom(): a ready EventClient for a server.

The simplest way, for a standalone audittrail server with a static token::

    clients = h2o_audit_trail.login(endpoint="http://127.0.0.1:8080", token="...")

The H2O AI Cloud ways work as with the H2O client: ``login()`` with discovery
(arguments, environment variables, the H2O CLI configuration) and
``login_custom()`` with an OIDC refresh token.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from h2o_audit_trail import _http
from h2o_audit_trail.connection_config import ConnectionConfig, discover_platform_connection, get_connection
from h2o_audit_trail.event.client import EventClient


class Clients:
    """The clients login() returns."""

    def __init__(self, event_client: EventClient) -> None:
        self.event_client = event_client

    def __repr__(self) -> str:
        return f"Clients(event_client={self.event_client!r})"


def login(
    environment: Optional[str] = None,
    token_provider: Optional[Callable[[], Any]] = None,
    platform_token: Optional[str] = None,
    config_path: Optional[str] = None,
    verify_ssl: bool = True,
    ssl_ca_cert: Optional[str] = None,
    *,
    endpoint: Optional[str] = None,
    token: Optional[str] = None,
    timeout: float = _http.DEFAULT_TIMEOUT,
    max_retries: int = _http.DEFAULT_MAX_RETRIES,
) -> Clients:
    """Initializes Audit Trail clients.

    Standalone server (simplest): give ``endpoint`` and ``token``::

        login(endpoint="http://127.0.0.1:8080", token="<reader token>")

    (``token_provider`` may replace ``token``.) Nothing is discovered then.

    H2O AI Cloud: without ``endpoint``, the Audit Trail URL and the
    credentials are discovered as by the H2O client: the discovery service is
    ``environment`` or the environment variables H2O_CLOUD_DISCOVERY /
    H2O_CLOUD_ENVIRONMENT or the H2O CLI configuration (``config_path``,
    H2OCONFIG, ``~/.h2oai/h2o-cli-config.toml``); the refresh token is
    ``platform_token``, else H2O_CLOUD_CLIENT_PLATFORM_TOKEN, else the CLI
    configuration's; it is exchanged for access tokens at the discovered OIDC
    issuer. ``token_provider`` (any callable returning an access token) takes
    priority over ``platform_token``, and ``token`` over both.

    Args:
        environment: H2O AI Cloud environment URL, e.g. https://cloud.h2o.ai.
        token_provider: Callable returning an access token.
        platform_token: H2O platform token (an OIDC refresh token).
        config_path: Path to the H2O CLI configuration file.
        verify_ssl: False disables TLS certificate verification.
        ssl_ca_cert: Path to a CA bundle of trusted certificates.
        endpoint: (keyword only) URL of the Audit Trail server; skips discovery.
        token: (keyword only) A static bearer token.
        timeout: (keyword only) Seconds to wait for the server.
        max_retries: (keyword only) Retries of requests answered 429 or 503.

    Raises:
        FileNotFoundError: The H2O CLI configuration file named does not exist.
        ValueError: Conflicting or missing arguments, invalid configuration file.
        LookupError: The service endpoint cannot be discovered.
        ConnectionError: The server (or discovery, or the issuer) cannot be reached.
    """
    context = _http.ssl_context(verify_ssl, ssl_ca_cert)
    provider: Optional[Callable[[], Any]] = token_provider
    if token is not None:
        if token_provider is not None:
            raise ValueError("give either token or token_provider, not both")
        if not token:
            raise ValueError("token is empty")
        static = token
        provider = lambda: static  # noqa: E731
    if endpoint is not None:
        if environment is not None or config_path is not None or platform_token is not None:
            raise ValueError(
                "endpoint= skips discovery: it cannot be combined with environment, config_path or "
                "platform_token (use login_custom() to exchange a refresh token at an OIDC issuer)"
            )
        if provider is None:
            raise ValueError("endpoint= needs token= (a bearer token) or token_provider=")
        provider()
        cfg = ConnectionConfig(audit_trail_url=endpoint.rstrip("/"), token_provider=provider)
    else:
        cfg = discover_platform_connection(
            environment_url=environment,
            config_path=config_path,
            platform_token=platform_token,
            token_provider=provider,
            ssl_context=context,
        )
    return _init_clients(cfg, verify_ssl, ssl_ca_cert, timeout, max_retries)


def login_custom(
    endpoint: str,
    refresh_token: str,
    issuer_url: str,
    client_id: str,
    client_secret: Optional[str] = None,
    verify_ssl: bool = True,
    ssl_ca_cert: Optional[str] = None,
    *,
    timeout: float = _http.DEFAULT_TIMEOUT,
    max_retries: int = _http.DEFAULT_MAX_RETRIES,
) -> Clients:
    """Initializes Audit Trail clients with an OIDC refresh token.

    The refresh token is exchanged for an access token at the issuer's token
    endpoint (found in ``<issuer_url>/.well-known/openid-configuration``)
    right away, and again whenever the access token is about to expire.

    Args:
        endpoint: URL of the Audit Trail server, e.g. https://audittrail.cloud.h2o.ai.
        refresh_token: The OIDC refresh token.
        issuer_url: The OIDC issuer URL.
        client_id: The OIDC client the refresh token was issued to.
        client_secret: Its secret, for a confidential client.
        verify_ssl: False disables TLS certificate verification.
        ssl_ca_cert: Path to a CA bundle of trusted certificates.
        timeout: (keyword only) Seconds to wait for the server.
        max_retries: (keyword only) Retries of requests answered 429 or 503.

    Raises:
        h2o_audit_trail.auth.TokenEndpointError: The issuer refused the refresh token.
        ConnectionError: The server or the issuer cannot be reached.
    """
    cfg = get_connection(
        audit_trail_url=endpoint.rstrip("/"),
        refresh_token=refresh_token,
        issuer_url=issuer_url,
        client_id=client_id,
        client_secret=client_secret,
        verify_ssl=verify_ssl,
        ssl_ca_cert=ssl_ca_cert,
    )
    return _init_clients(cfg, verify_ssl, ssl_ca_cert, timeout, max_retries)


def _init_clients(
    cfg: ConnectionConfig, verify_ssl: bool, ssl_ca_cert: Optional[str], timeout: float, max_retries: int
) -> Clients:
    # Like the H2O client: the server must answer GET /version (no token) first.
    _http.probe_version(cfg.audit_trail_url, _http.ssl_context(verify_ssl, ssl_ca_cert), timeout)
    event_client = EventClient(
        connection_config=cfg,
        verify_ssl=verify_ssl,
        ssl_ca_cert=ssl_ca_cert,
        timeout=timeout,
        max_retries=max_retries,
    )
    return Clients(event_client=event_client)
