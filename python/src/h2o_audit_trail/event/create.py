from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from h2o_audit_trail.event.event import Event, event_to_json, events_from_json
from h2o_audit_trail.model.rpc_status import RPCStatus, rpc_status_from_json


@dataclass
class CreateEventRequest:
    """One event to create in a batch."""

    event_id: str
    """ID of the new event: a UUID4 such as "b096430b-c7a8-47f2-a129-d9ae58cf454f".
    The event's name becomes "events/{event_id}"."""

    event: Event
    """The event to create."""


@dataclass
class BatchCreateEventsResponse:
    """Result of a batch: created events and failed requests."""

    events: List[Event]
    """The created events, in request order."""

    failed_requests: Dict[int, RPCStatus]
    """Why requests failed, by their 0-based index in the batch."""


def create_requests_to_json(requests: List[Any]) -> List[Dict[str, Any]]:
    return [
        {"eventId": r.event_id, "event": event_to_json(r.event, f"requests[{i}].event")}
        for i, r in enumerate(requests)
    ]


def batch_response_from_json(data: Dict[str, Any]) -> BatchCreateEventsResponse:
    failed = data.get("failedRequests") or {}
    return BatchCreateEventsResponse(
        events=events_from_json(data.get("events")),
        failed_requests={int(index): rpc_status_from_json(status) for index, status in failed.items()},
    )
