"""RFC 3339 timestamps on the wire; timezone-aware datetimes in Python."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def require_aware(value: object, field: str) -> datetime:
    """Returns value if it is a timezone-aware datetime, else raises.

    A naive datetime has no defined instant, so it is refused instead of being
    guessed (the server would reject it too, less clearly)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{field} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(
            f"{field} must be a timezone-aware datetime, for example datetime.now(timezone.utc); "
            f"got the naive datetime {value.isoformat()}"
        )
    return value


def to_wire(value: object, field: str) -> str:
    """The RFC 3339 UTC form of an aware datetime, microsecond precision."""
    dt = require_aware(value, field).astimezone(timezone.utc)
    # Not strftime's %Y, which gives years before 1000 fewer than four digits.
    return f"{dt.year:04d}-" + dt.strftime("%m-%dT%H:%M:%S.%fZ")


def from_wire(text: str) -> datetime:
    """Parses an RFC 3339 timestamp into an aware UTC datetime. Digits beyond
    microseconds are dropped (Python datetimes have microsecond precision)."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    frac = (m.group(7) or "")[:6].ljust(6, "0")
    if m.group(8):
        offset = timedelta(0)
    else:
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if m.group(9) == "-":
            offset = -offset
    # A leap second (":60") is folded into the last representable instant.
    dt = datetime(year, month, day, hour, minute, min(second, 59), int(frac), tzinfo=timezone(offset))
    return dt.astimezone(timezone.utc)


def format_utc(dt: datetime) -> str:
    """Short, readable rendering for repr(): 2026-11-25T10:00:00.123456Z."""
    if dt.tzinfo is None:
        return dt.isoformat() + " (naive)"
    dt = dt.astimezone(timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}"
    return text + "Z"
