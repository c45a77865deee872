"""Exceptions raised by the client.

Every HTTP error answer of the server becomes a :class:`CustomApiException`
with the HTTP ``status``, its ``reason`` phrase, the response ``body`` (text)
and the response ``headers``. Its ``str()`` is ``"<status> (<reason>): <message>"``,
where ``message`` is the ``message`` of the JSON error body (a
``google.rpc.Status``) or, when the body is not such JSON, the raw body.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional


class ApiException(Exception):
    """An unsuccessful HTTP answer of the Audit Trail API."""

    status: Optional[int]
    reason: Optional[str]
    body: Optional[str]
    headers: Optional[Mapping[str, str]]

    def __init__(
        self,
        status: Optional[int] = None,
        reason: Optional[str] = None,
        body: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers

    @property
    def message(self) -> Optional[str]:
        """The ``message`` of the JSON error body; the raw body otherwise."""
        if self.body is None:
            return None
        parsed = _json_object(self.body)
        if parsed is not None and "message" in parsed:
            return str(parsed["message"])
        return self.body

    @property
    def code(self) -> Optional[int]:
        """The gRPC status code of the JSON error body (e.g. 3 for
        INVALID_ARGUMENT), or None when the body has none."""
        parsed = _json_object(self.body) if self.body is not None else None
        code = parsed.get("code") if parsed is not None else None
        return code if isinstance(code, int) else None

    def __str__(self) -> str:
        status_reason = f"{self.status} ({self.reason})"
        message = self.message
        if message is None:
            return status_reason
        return f"{status_reason}: {message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, reason={self.reason!r}, message={self.message!r})"


class CustomApiException(ApiException):
    """ApiException with a simplified error message:
    ``"<status> (<reason>): <message>"``.

    As in the H2O client it can be built from another :class:`ApiException`
    (``CustomApiException(e)``); the keyword arguments build it directly."""

    def __init__(
        self,
        e: Optional[ApiException] = None,
        *,
        status: Optional[int] = None,
        reason: Optional[str] = None,
        body: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        if e is not None:
            status, reason, body, headers = e.status, e.reason, e.body, e.headers
        super().__init__(status=status, reason=reason, body=body, headers=headers)


class TimeoutException(TimeoutError):
    """Raised when a request to the server does not complete in time."""

    def __init__(self, *, message: str = "Timeout exceeded") -> None:
        super().__init__(message)


def _json_object(text: str) -> Optional[Dict[str, Any]]:
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
