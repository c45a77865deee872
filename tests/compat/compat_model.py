"""A model of what the server must store and return, written independently
of the server: the brute-force search oracle the compatibility tests compare
the server's answers with.

Everything here follows docs/compat.md: the stored form of an event (workspace
derived from the resource or taken from workspaceOverride, private source
addresses redacted to "private"), the filter semantics (unanchored RE2
regexes, empty strings do not filter, status code matched as a decimal string
with "" for events without status, every metadata key must match, include /
exclude types, tri-state read_only) and the order (newest event_time first,
ties broken by the server's sequence number, higher first).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Dict, Iterable, List, Optional

UTC = timezone.utc

# The default start of a search range (docs: "July 1st, 2025 at 00:00:00 UTC").
DEFAULT_START = datetime(2025, 7, 1, tzinfo=UTC)

# The Event keys the server must emit for every event (lowerCamelCase, from
# the attribute_map of the client's gen/model/v1_event.py, minus the
# input-only workspaceOverride).
EVENT_OUTPUT_KEYS = (
    "name",
    "eventTime",
    "receiveTime",
    "eventSource",
    "action",
    "readOnly",
    "status",
    "principal",
    "loginPrincipal",
    "sourceIpAddress",
    "userAgent",
    "resource",
    "workspace",
    "requestParameters",
    "metadata",
    "type",
)

SELF_AUDIT_SOURCE = "h2oai-audittrail-server"
SELF_AUDIT_ACTION = "actions/audittrail/events/SEARCH"


# --- stored form -------------------------------------------------------------


def derive_workspace(resource: str) -> str:
    """The workspace the server derives from a resource name: the first
    "workspaces/<id>" segment pair; for "//service/..." names only the
    segments after the service name count."""
    segs = resource.split("/")
    if resource.startswith("//"):
        segs = segs[3:]
    for i in range(len(segs) - 1):
        if segs[i] == "workspaces" and segs[i + 1] != "":
            return "workspaces/" + segs[i + 1]
    return ""


_PRIVATE_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",  # RFC 1918
        "127.0.0.0/8",
        "::1/128",  # loopback
        "169.254.0.0/16",
        "fe80::/10",  # link-local
        "fc00::/7",  # unique local (RFC 4193)
    )
]


def redact_ip(addr: str) -> str:
    """The source address as stored: "private" for private, loopback and
    link-local addresses (IPv4-mapped IPv6 addresses are judged by their IPv4
    address), unchanged otherwise. Python's ipaddress.is_private is not used
    on purpose: it also covers documentation ranges, which are not private."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for net in _PRIVATE_NETS:
        if ip.version == net.version and ip in net:
            return "private"
    return addr


@dataclass
class Rec:
    """One event as the server must return it."""

    event_id: str
    event_time: datetime  # aware
    event_source: str
    action: str
    read_only: bool
    status: Optional[tuple]  # (code, message) or None: created without status
    principal: str
    source_ip_address: str  # as stored (redacted)
    user_agent: str = ""
    resource: str = ""
    workspace: str = ""
    request_parameters: Dict[str, str] = field(default_factory=dict)
    metadata: Dict[str, str] = field(default_factory=dict)
    type: str = "TYPE_UNSPECIFIED"
    seq: int = 0  # order of acceptance by the server

    @property
    def name(self) -> str:
        return "events/" + self.event_id

    def status_code_string(self) -> str:
        return "" if self.status is None else str(self.status[0])


def stored_record(event_id: str, event_time: datetime, body: dict) -> Rec:
    """The record the server must store for a create request whose JSON event
    is body (lowerCamelCase keys) and whose event time is event_time."""
    status = body.get("status")
    if "workspaceOverride" in body and body["workspaceOverride"] is not None:
        workspace = body["workspaceOverride"]
    else:
        workspace = derive_workspace(body.get("resource", ""))
    return Rec(
        event_id=event_id,
        event_time=event_time,
        event_source=body["eventSource"],
        action=body["action"],
        read_only=bool(body.get("readOnly", False)),
        status=None if status is None else (status.get("code", 0), status.get("message", "")),
        principal=body["principal"],
        source_ip_address=redact_ip(body["sourceIpAddress"]),
        user_agent=body.get("userAgent", ""),
        resource=body.get("resource", ""),
        workspace=workspace,
        request_parameters=dict(body.get("requestParameters", {})),
        metadata=dict(body.get("metadata", {})),
        type=body.get("type", "TYPE_UNSPECIFIED"),
    )


class World:
    """Every event the tests have had the server accept, in acceptance order."""

    def __init__(self) -> None:
        self.records: List[Rec] = []
        self.by_name: Dict[str, Rec] = {}

    def add(self, rec: Rec) -> Rec:
        assert rec.name not in self.by_name, f"{rec.name} recorded twice"
        rec.seq = len(self.records) + 1
        self.records.append(rec)
        self.by_name[rec.name] = rec
        return rec

    def snapshot(self) -> List[Rec]:
        return list(self.records)


# --- search oracle -----------------------------------------------------------


def _matches(pattern: Optional[str], value: str) -> bool:
    # Unanchored ("find") semantics. The patterns the tests use mean the same
    # in Python's re and in RE2.
    return re.search(pattern, value) is not None


def _type_value(t) -> str:
    return t.value if hasattr(t, "value") else str(t)


def matches(flt, r: Rec, end: Optional[datetime] = None) -> bool:
    """Whether record r satisfies filter flt (the client's
    SearchEventsRequestFilter, or None). end stands in for the server's "now"
    when the filter has no end time (None: no upper bound)."""
    if flt is None:
        return r.event_time >= DEFAULT_START and (end is None or r.event_time < end)
    start = flt.start_event_time or DEFAULT_START
    stop = flt.end_event_time or end
    if r.event_time < start or (stop is not None and r.event_time >= stop):
        return False
    for exact, regex, value in (
        (flt.event_source_exact, flt.event_source_regex, r.event_source),
        (flt.resource_exact, flt.resource_regex, r.resource),
        (flt.principal_exact, flt.principal_regex, r.principal),
        (flt.source_ip_address_exact, flt.source_ip_address_regex, r.source_ip_address),
        (flt.workspace_exact, flt.workspace_regex, r.workspace),
        (flt.action_exact, flt.action_regex, r.action),
    ):
        if exact and value != exact:  # "" and None: no filter
            return False
        if regex and not _matches(regex, value):
            return False
    if flt.read_only is not None and r.read_only != flt.read_only:
        return False
    if flt.status_code_regex and not _matches(flt.status_code_regex, r.status_code_string()):
        return False
    for k, v in (flt.metadata_exact or {}).items():
        if r.metadata.get(k) != v:
            return False
    for k, v in (flt.metadata_regex or {}).items():
        if k not in r.metadata or not _matches(v, r.metadata[k]):
            return False
    include = {_type_value(t) for t in (flt.include_types or [])}
    exclude = {_type_value(t) for t in (flt.exclude_types or [])}
    if include and r.type not in include:
        return False
    if r.type in exclude:
        return False
    return True


def newest_first(recs: Iterable[Rec]) -> List[Rec]:
    return sorted(recs, key=lambda r: (r.event_time, r.seq), reverse=True)


def expected(world_records: Iterable[Rec], flt, end: Optional[datetime] = None) -> List[Rec]:
    """Brute force: every record that matches, newest first."""
    return newest_first(r for r in world_records if matches(flt, r, end))


# --- wire formatting ---------------------------------------------------------

_OFFSETS = {
    "ist": timezone(timedelta(hours=5, minutes=30)),
    "pdt": timezone(timedelta(hours=-7)),
}


def wire_time(dt: datetime, style: str = "z") -> str:
    """An RFC 3339 rendering of dt in one of several equivalent styles, so
    that seeding exercises what producers may send."""
    dt = dt.astimezone(UTC)
    if style == "z":  # 2026-01-02T03:04:05.123456Z
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if style == "utc-offset":  # +00:00, as Python's isoformat() writes it
        return dt.isoformat()
    if style in _OFFSETS:  # same instant, another offset
        return dt.astimezone(_OFFSETS[style]).isoformat()
    if style == "ms":  # 3 fractional digits; dt must be a whole millisecond
        assert dt.microsecond % 1000 == 0
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    if style == "s":  # no fraction; dt must be a whole second
        assert dt.microsecond == 0
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "ns":  # 9 fractional digits, the last three zero
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    raise ValueError(style)
