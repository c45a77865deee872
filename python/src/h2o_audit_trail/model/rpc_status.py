from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict


@dataclass
class RPCStatus:
    """A google.rpc.Status: why one request of a batch failed."""

    code: int
    """google.rpc.Code of the failure, e.g. 3 (INVALID_ARGUMENT) or 6 (ALREADY_EXISTS)."""

    message: str = ""
    """Human-readable description of the failure."""


def rpc_status_from_json(data: Dict[str, Any]) -> RPCStatus:
    return RPCStatus(code=int(data.get("code") or 0), message=data.get("message") or "")
