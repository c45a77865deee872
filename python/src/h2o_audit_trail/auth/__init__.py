"""Access tokens: the OIDC refresh-token grant used by login() and login_custom()."""

from h2o_audit_trail.auth.token_provider import TokenEndpointError, TokenProvider

__all__ = ["TokenEndpointError", "TokenProvider"]
