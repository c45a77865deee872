from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

from h2o_audit_trail import _time
from h2o_audit_trail.event.event import Event, events_from_json
from h2o_audit_trail.event.event_type import EventType, event_types_to_json
from h2o_audit_trail.verify import LogProofs


@dataclass
class SearchEventsRequestFilter:
    """What to search for. Every condition given must hold (they are ANDed);
    a field left at None (or "", {} or []) does not filter.

    Regular expressions follow RE2 syntax and match anywhere in the value
    (anchor them with ^ and $ to match the whole value)."""

    start_event_time: Optional[datetime] = None
    """Only events with event_time >= start_event_time (timezone-aware).
    Default: 2025-07-01T00:00:00Z."""

    end_event_time: Optional[datetime] = None
    """Only events with event_time < end_event_time (timezone-aware).
    Default: now."""

    event_source_exact: Optional[str] = None
    """event_source equals this value."""

    event_source_regex: Optional[str] = None
    """event_source matches this RE2 regular expression."""

    resource_exact: Optional[str] = None
    """resource equals this value."""

    resource_regex: Optional[str] = None
    """resource matches this RE2 regular expression."""

    read_only: Optional[bool] = None
    """read_only equals this value."""

    status_code_regex: Optional[str] = None
    """status.code, written in decimal, matches this RE2 regular expression:
    "^(0|3)$" selects OK and INVALID_ARGUMENT, "^$" events without a status."""

    principal_exact: Optional[str] = None
    """principal equals this value."""

    principal_regex: Optional[str] = None
    """principal matches this RE2 regular expression."""

    source_ip_address_exact: Optional[str] = None
    """source_ip_address equals this value."""

    source_ip_address_regex: Optional[str] = None
    """source_ip_address matches this RE2 regular expression."""

    metadata_exact: Dict[str, str] = field(default_factory=dict)
    """Every key given is in the event's metadata with exactly this value."""

    metadata_regex: Dict[str, str] = field(default_factory=dict)
    """Every key given is in the event's metadata with a value matching this
    RE2 regular expression."""

    workspace_exact: Optional[str] = None
    """workspace equals this value, e.g. "workspaces/<uuid>" (no aliases)."""

    workspace_regex: Optional[str] = None
    """workspace matches this RE2 regular expression."""

    action_exact: Optional[str] = None
    """action equals this value."""

    action_regex: Optional[str] = None
    """action matches this RE2 regular expression, e.g. ".*CREATE$"."""

    include_types: List[EventType] = field(default_factory=list)
    """The event's type is one of these."""

    exclude_types: List[EventType] = field(default_factory=list)
    """The event's type is none of these."""


@dataclass
class SearchEventsResponse:
    """One page of search results."""

    events: List[Event]
    """The events of this page, newest first."""

    next_page_token: str
    """Pass it as page_token to get the next page; "" on the last page."""

    searched_until_time: datetime
    """How far back in time the search has progressed: the range
    [searched_until_time, end_event_time) has been scanned. Informational
    only; use next_page_token to continue."""

    proofs: Optional[LogProofs] = None
    """Not in the H2O client. With ``search_events(..., include_proofs=True)``:
    the verifiable log's proofs of the events (one signed checkpoint, each
    event's inclusion); check them with ``proofs.verify(verifier_key)``
    (module :mod:`h2o_audit_trail.verify`). None otherwise."""


_STRING_FIELDS = (
    ("event_source_exact", "eventSourceExact"),
    ("event_source_regex", "eventSourceRegex"),
    ("resource_exact", "resourceExact"),
    ("resource_regex", "resourceRegex"),
    ("status_code_regex", "statusCodeRegex"),
    ("principal_exact", "principalExact"),
    ("principal_regex", "principalRegex"),
    ("source_ip_address_exact", "sourceIpAddressExact"),
    ("source_ip_address_regex", "sourceIpAddressRegex"),
    ("workspace_exact", "workspaceExact"),
    ("workspace_regex", "workspaceRegex"),
    ("action_exact", "actionExact"),
    ("action_regex", "actionRegex"),
)


def filter_to_json(filter_: Optional[Any]) -> Dict[str, Any]:
    """The JSON of a filter as the H2O client sends it: {} for no filter,
    otherwise every field, null for the unset ones.

    ``filter_`` is read by attribute, so a filter of the H2O client works too.
    Naive datetimes are refused with a ValueError naming the field."""
    if filter_ is None:
        return {}
    body: Dict[str, Any] = {}
    for attr, key in (("start_event_time", "startEventTime"), ("end_event_time", "endEventTime")):
        value = getattr(filter_, attr, None)
        body[key] = None if value is None else _time.to_wire(value, f"filter_.{attr}")
    for attr, key in _STRING_FIELDS:
        value = getattr(filter_, attr, None)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"filter_.{attr} must be a str or None, not {type(value).__name__}")
        body[key] = value
    read_only = getattr(filter_, "read_only", None)
    body["readOnly"] = None if read_only is None else bool(read_only)
    for attr, key in (("metadata_exact", "metadataExact"), ("metadata_regex", "metadataRegex")):
        body[key] = dict(getattr(filter_, attr, None) or {})
    for attr, key in (("include_types", "includeTypes"), ("exclude_types", "excludeTypes")):
        body[key] = event_types_to_json(getattr(filter_, attr, None) or [])
    return body


def search_response_from_json(data: Dict[str, Any]) -> SearchEventsResponse:
    until = data.get("searchedUntilTime")
    proofs = data.get("proofs")
    return SearchEventsResponse(
        events=events_from_json(data.get("events")),
        next_page_token=data.get("nextPageToken") or "",
        searched_until_time=_time.from_wire(until) if until else None,  # type: ignore[arg-type]
        proofs=LogProofs.from_json(proofs, data.get("events")) if proofs is not None else None,
    )
