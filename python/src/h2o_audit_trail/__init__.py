"""Python client for the audittrail service.

The package is importable as ``h2o_audit_trail`` and has the public API of the
published H2O Audit Trail client (``h2o-audit-trail`` 1.5.3), so code written
for that client runs unchanged::

    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter

    clients = h2o_audit_trail.login(endpoint="http://127.0.0.1:8080", token="...")
    response = clients.event_client.search_events(
        filter_=SearchEventsRequestFilter(principal_exact="users/john.doe"))

It depends on the Python standard library only.
"""

from h2o_audit_trail._version import (
    COMPATIBLE_WITH,  # noqa: F401
    __version__,  # noqa: F401
)
from h2o_audit_trail.login import (
    Clients,  # noqa: F401
    login,  # noqa: F401
    login_custom,  # noqa: F401
)

__all__ = ["Clients", "login", "login_custom", "__version__"]
