"""What the server holds, written independently of the server and of the
clients: the expected stored form of every event the tests created, and a
brute-force search over them to compare the server's answers with.

Filter semantics (docs/compat.md, section 2.4): all conditions ANDed;
None / "" / {} / [] do not filter; regexes are unanchored RE2 (the patterns
used here mean the same in Python's re); the status code is matched as a
decimal string, "" for events without status; every metadata key must be
present and match; start inclusive, end exclusive, default start
2025-07-01T00:00:00Z; newest first, ties by order of acceptance, newest
accepted first."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional

UTC = timezone.utc
DEFAULT_START = datetime(2025, 7, 1, tzinfo=UTC)
SELF_AUDIT_SOURCE = "h2oai-audittrail-server"


@dataclass
class Rec:
    """One event as the server must return it."""

    event_id: str
    event_time: datetime
    event_source: str
    action: str
    read_only: bool
    status: Optional[tuple]  # (code, message); None: stored without status
    principal: str
    source_ip_address: str  # as stored ("private" for private addresses)
    user_agent: str = ""
    resource: str = ""
    workspace: str = ""
    request_parameters: Dict[str, str] = field(default_factory=dict)
    metadata: Dict[str, str] = field(default_factory=dict)
    type: str = "TYPE_API"
    seq: int = 0

    @property
    def name(self) -> str:
        return "events/" + self.event_id

    def view(self) -> dict:
        """The fields a client returns, in the form norm() gives them."""
        return {
            "name": self.name,
            "event_time": self.event_time.astimezone(UTC),
            "event_source": self.event_source,
            "action": self.action,
            "read_only": self.read_only,
            "status": self.status,
            "principal": self.principal,
            "login_principal": "",
            "source_ip_address": self.source_ip_address,
            "user_agent": self.user_agent,
            "resource": self.resource,
            "workspace": self.workspace,
            "request_parameters": dict(self.request_parameters),
            "metadata": dict(self.metadata),
            "type": self.type,
        }


class World:
    """Every event the tests had the server accept, in acceptance order."""

    def __init__(self) -> None:
        self.records: List[Rec] = []
        self.by_name: Dict[str, Rec] = {}
        self.seeded_at: Optional[datetime] = None

    def add(self, rec: Rec) -> None:
        assert rec.name not in self.by_name, f"{rec.name} recorded twice"
        rec.seq = len(self.records) + 1
        self.records.append(rec)
        self.by_name[rec.name] = rec


def _type_name(t: Any) -> str:
    return t.value if hasattr(t, "value") else str(t)


def matches(flt: Any, r: Rec, end: datetime) -> bool:
    """Whether r satisfies flt (a SearchEventsRequestFilter of either client,
    or None); end stands for the server's "now" when flt has no end time."""
    start = getattr(flt, "start_event_time", None) or DEFAULT_START
    stop = getattr(flt, "end_event_time", None) or end
    if not (start <= r.event_time < stop):
        return False
    if flt is None:
        return True
    for attr, value in (
        ("event_source", r.event_source),
        ("resource", r.resource),
        ("principal", r.principal),
        ("source_ip_address", r.source_ip_address),
        ("workspace", r.workspace),
        ("action", r.action),
    ):
        exact, regex = getattr(flt, attr + "_exact"), getattr(flt, attr + "_regex")
        if exact and value != exact:
            return False
        if regex and re.search(regex, value) is None:
            return False
    if flt.read_only is not None and r.read_only != flt.read_only:
        return False
    code = "" if r.status is None else str(r.status[0])
    if flt.status_code_regex and re.search(flt.status_code_regex, code) is None:
        return False
    if any(r.metadata.get(k) != v for k, v in (flt.metadata_exact or {}).items()):
        return False
    if any(k not in r.metadata or re.search(v, r.metadata[k]) is None for k, v in (flt.metadata_regex or {}).items()):
        return False
    include = {_type_name(t) for t in flt.include_types or []}
    exclude = {_type_name(t) for t in flt.exclude_types or []}
    return (not include or r.type in include) and r.type not in exclude


def expected(world: World, flt: Any, end: datetime) -> List[Rec]:
    """Brute force: every record matching flt, newest first."""
    hits = [r for r in world.records if matches(flt, r, end)]
    return sorted(hits, key=lambda r: (r.event_time, r.seq), reverse=True)


def norm(e: Any) -> dict:
    """An Event of either client in a comparable form. Checks on the way
    that the times are timezone-aware."""
    assert e.event_time.tzinfo is not None, f"{e.name}: naive event_time {e.event_time!r}"
    assert e.receive_time is not None and e.receive_time.tzinfo is not None, f"{e.name}: {e.receive_time!r}"
    status = None if e.status is None else (e.status.code, e.status.message)
    return {
        "name": e.name,
        "event_time": e.event_time.astimezone(UTC),
        "event_source": e.event_source,
        "action": e.action,
        "read_only": e.read_only,
        "status": status,
        "principal": e.principal,
        "login_principal": e.login_principal,
        "source_ip_address": e.source_ip_address,
        "user_agent": e.user_agent,
        "resource": e.resource,
        "workspace": e.workspace,
        "request_parameters": dict(e.request_parameters or {}),
        "metadata": dict(e.metadata or {}),
        "type": _type_name(e.type),
    }


def assert_events(events: Iterable[Any], want: List[Rec], flt: Any = None, end: Optional[datetime] = None) -> None:
    """events (as returned, in order) are exactly want, field by field. The
    server's own audit events of searches (it records every search) are
    left out of the comparison; given the filter and its end, they are
    checked to match it."""
    events = list(events)
    for e in events:
        if e.event_source == SELF_AUDIT_SOURCE and end is not None:
            assert matches(flt, rec_of(e), end), f"self-audit event {e.name} does not match {flt}"
    got = [norm(e) for e in events if e.event_source != SELF_AUDIT_SOURCE]
    names = [g["name"] for g in got]
    assert len(set(names)) == len(names), f"events returned twice: {sorted(n for n in names if names.count(n) > 1)}"
    exp = [r.name for r in want]
    if names != exp:
        missing = [n for n in exp if n not in names]
        extra = [n for n in names if n not in exp]
        raise AssertionError(f"got {len(names)} events, want {len(exp)}; missing {missing}, unexpected {extra}")
    for g, r in zip(got, want):
        assert g == r.view(), f"{r.name}:\n got  {g}\n want {r.view()}"


def rec_of(e: Any) -> Rec:
    """The record of an event a test created without predicting its stored
    form (README snippets): taken from the server's answer."""
    return Rec(
        event_id=e.name[len("events/"):], event_time=e.event_time, event_source=e.event_source, action=e.action,
        read_only=e.read_only, status=None if e.status is None else (e.status.code, e.status.message),
        principal=e.principal, source_ip_address=e.source_ip_address, user_agent=e.user_agent,
        resource=e.resource, workspace=e.workspace, request_parameters=dict(e.request_parameters),
        metadata=dict(e.metadata), type=_type_name(e.type),
    )
