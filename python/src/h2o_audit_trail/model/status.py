from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict


@dataclass
class Status:
    """Outcome of the audited request (a google.rpc.Code and a message)."""

    code: int
    """google.rpc.Code of the audited request: 0 OK, 3 INVALID_ARGUMENT, 7 PERMISSION_DENIED, ..."""

    message: str = ""
    """Error message of the audited request; empty on success."""


def status_to_json(status: Status) -> Dict[str, Any]:
    return {"code": int(status.code), "message": status.message or ""}


def status_from_json(data: Dict[str, Any]) -> Status:
    return Status(code=int(data.get("code") or 0), message=data.get("message") or "")
