from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Dict, List, Optional

from h2o_audit_trail import _time
from h2o_audit_trail.event.event_type import EventType, event_type_from_json, event_type_to_json
from h2o_audit_trail.model.status import Status, status_from_json, status_to_json


@dataclass(repr=False)
class Event:
    """One audited action: who did what, to which resource, when, from where
    and with which outcome.

    The first seven fields are required when an event is created. ``name``,
    ``receive_time``, ``workspace`` and ``login_principal`` are set by the
    server. Times are timezone-aware datetimes; the server returns them in UTC.
    """

    event_time: datetime
    """When the event occurred (timezone-aware)."""

    event_source: str
    """Canonical name of the container image the event comes from, e.g.
    "h2oai-enginemanager-server" or "thirdparty-chainguard-bitnamikeycloak"."""

    action: str
    """The requested action, named as registered with AuthZ where that
    applies, e.g. "actions/enginemanager/daiEngines/CREATE"."""

    read_only: bool
    """True when the action changes nothing."""

    status: Optional[Status]
    """Outcome of the request (code and message). None for events stored
    without a status."""

    principal: str
    """The authenticated principal, e.g. "users/<uuid>" or "services/appstore"."""

    source_ip_address: str
    """Address the request came from; private addresses are stored as "private"."""

    name: str = ""
    """Resource name, "events/{event_id}" (set by the server)."""

    login_principal: str = ""
    """User-friendly login of the principal, resolved by the server when
    searching ("" when unknown)."""

    receive_time: Optional[datetime] = None
    """When the server received the event (set by the server)."""

    resource: str = ""
    """Target of the request as a full resource name or collection name, e.g.
    "//engine-manager/workspaces/<uuid>/daiEngines/<engine>". Aliases such as
    "workspaces/default" must be resolved by the producer."""

    request_parameters: Dict[str, str] = field(default_factory=dict)
    """The request's parameters, as far as the producer records them."""

    user_agent: str = ""
    """The agent the request was made with."""

    metadata: Dict[str, str] = field(default_factory=dict)
    """Service-specific data. Keys: 1-63 characters of lowercase letters,
    digits and "_", starting with a letter, ending with a letter or digit."""

    workspace: str = ""
    """Workspace the event relates to, "workspaces/<id>", derived by the server
    from ``resource`` (or from ``workspace_override``); "" for none."""

    type: EventType = EventType.TYPE_API
    """Whether a user's request (TYPE_API) or the system (TYPE_SYSTEM) caused it."""

    workspace_override: Optional[str] = None
    """Create only (not in the H2O client): sets ``workspace`` explicitly
    instead of deriving it from ``resource``; "" means no workspace. Never
    returned by the server."""

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}"] if self.name else []
        for f in fields(self):
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            if f.name == "workspace_override":
                if value is None:  # "" is meaningful: no workspace
                    continue
            elif f.name not in _ALWAYS_SHOWN and value in (None, "", {}):
                continue
            parts.append(f"{f.name}={_show(value)}")
        return "Event(" + ", ".join(parts) + ")"

    __str__ = __repr__


_ALWAYS_SHOWN = {"event_time", "event_source", "action", "read_only", "status", "principal", "source_ip_address"}


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return _time.format_utc(value)
    if isinstance(value, EventType):
        return value.value
    if isinstance(value, Status):
        return f"Status(code={value.code}" + (f", message={value.message!r})" if value.message else ")")
    return repr(value)


def event_to_json(event: Any, field_prefix: str = "event") -> Dict[str, Any]:
    """The JSON of an event for CreateEvent: the input fields only.

    ``event`` is read by attribute, so an Event of the H2O client works too."""
    body: Dict[str, Any] = {
        "eventTime": _time.to_wire(event.event_time, f"{field_prefix}.event_time"),
        "eventSource": event.event_source,
        "action": event.action,
        "readOnly": bool(event.read_only),
        "principal": event.principal,
        "sourceIpAddress": event.source_ip_address,
        "resource": getattr(event, "resource", "") or "",
        "requestParameters": dict(getattr(event, "request_parameters", None) or {}),
        "userAgent": getattr(event, "user_agent", "") or "",
        "metadata": dict(getattr(event, "metadata", None) or {}),
        "type": event_type_to_json(getattr(event, "type", EventType.TYPE_API)),
    }
    status = getattr(event, "status", None)
    if status is not None:
        body["status"] = status_to_json(status)
    override = getattr(event, "workspace_override", None)
    if override is not None:
        body["workspaceOverride"] = override
    return body


def event_from_json(data: Dict[str, Any]) -> Event:
    """An Event from the server's JSON (lowerCamelCase keys). Missing keys read
    as their zero value; a missing status reads as None."""
    status = data.get("status")
    receive_time = data.get("receiveTime")
    event_time = data.get("eventTime")
    return Event(
        event_time=_time.from_wire(event_time) if event_time else None,  # type: ignore[arg-type]
        event_source=data.get("eventSource") or "",
        action=data.get("action") or "",
        read_only=bool(data.get("readOnly", False)),
        status=status_from_json(status) if isinstance(status, dict) else None,
        principal=data.get("principal") or "",
        source_ip_address=data.get("sourceIpAddress") or "",
        name=data.get("name") or "",
        login_principal=data.get("loginPrincipal") or "",
        receive_time=_time.from_wire(receive_time) if receive_time else None,
        resource=data.get("resource") or "",
        request_parameters=dict(data.get("requestParameters") or {}),
        user_agent=data.get("userAgent") or "",
        metadata=dict(data.get("metadata") or {}),
        workspace=data.get("workspace") or "",
        type=event_type_from_json(data.get("type")),
    )


def events_from_json(items: Optional[List[Dict[str, Any]]]) -> List[Event]:
    return [event_from_json(item) for item in items or []]
