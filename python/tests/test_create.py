"""Creating events: refused with 405 on the public endpoint, done on the
internal endpoint with the producer token; a batch reports a bad id in
failed_requests. With both clients."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from _oracle import Rec, assert_events, expected, norm

from h2o_audit_trail.event.create import CreateEventRequest
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.event_type import EventType
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.model.status import Status

UTC = timezone.utc
PRODUCER_SOURCE = "h2oai-pytest-producer"


def doc_event(**overrides) -> Event:
    """The event of the Creating Events guide, in the past so it does not
    show up in the "last hour" examples."""
    fields = dict(
        event_time=datetime.now(UTC) - timedelta(days=6, microseconds=uuid.uuid4().int % 10**6),
        event_source=PRODUCER_SOURCE,
        action="actions/enginemanager/daiEngines/CREATE",
        read_only=False,
        status=Status(code=0),
        principal="users/john.doe",
        source_ip_address="10.0.1.50",
        resource=f"//engine-manager/workspaces/w-{uuid.uuid4().hex[:8]}/daiEngines/e1",
        request_parameters={"displayName": "my engine"},
        user_agent="pytest",
        metadata={"engine_version": "1.10.7"},
        type=EventType.TYPE_API,
    )
    fields.update(overrides)
    return Event(**fields)


def stored(event_id: str, e: Event) -> Rec:
    """What the server must make of e: workspace from the resource, the
    private address redacted."""
    ws = e.resource.split("/workspaces/", 1)[1].split("/", 1)[0] if "/workspaces/" in e.resource else ""
    return Rec(
        event_id=event_id, event_time=e.event_time, event_source=e.event_source, action=e.action,
        read_only=e.read_only, status=None if e.status is None else (e.status.code, e.status.message),
        principal=e.principal,
        source_ip_address="private" if e.source_ip_address.startswith("10.") else e.source_ip_address,
        user_agent=e.user_agent, resource=e.resource, workspace=f"workspaces/{ws}" if ws else "",
        request_parameters=dict(e.request_parameters), metadata=dict(e.metadata), type=e.type.value,
    )


def test_create_on_public_endpoint_is_405(flavour, server, world):
    client = flavour.standalone(server.public, server.reader_token)
    exc_type = flavour.module("h2o_audit_trail.exception").CustomApiException
    with pytest.raises(exc_type) as exc:
        client.create_event(event_id=str(uuid.uuid4()), event=doc_event())
    assert exc.value.status == 405
    assert str(exc.value) == "405 (Method Not Allowed): Method Not Allowed"

    with pytest.raises(exc_type) as exc:
        client.batch_create_events(requests=[CreateEventRequest(event_id=str(uuid.uuid4()), event=doc_event())])
    assert exc.value.status == 405


def test_create_on_public_endpoint_is_405_even_with_producer_token(flavour, server):
    client = flavour.standalone(server.public, server.producer_token)
    with pytest.raises(flavour.module("h2o_audit_trail.exception").CustomApiException) as exc:
        client.create_event(event_id=str(uuid.uuid4()), event=doc_event())
    assert exc.value.status == 405


def test_create_event_on_internal_endpoint(flavour, server, world):
    producer = flavour.standalone(server.internal, server.producer_token)
    event_id = str(uuid.uuid4())
    event = doc_event()

    created = producer.create_event(event_id=event_id, event=event)

    rec = stored(event_id, event)
    assert norm(created) == rec.view()
    assert created.receive_time > created.event_time
    world.add(rec)
    # Visible to a reader right away.
    reader = flavour.standalone(server.public, server.reader_token)
    flt = F(resource_exact=event.resource)
    assert_events(reader.search_events(filter_=flt).events, [rec])


def test_batch_create_reports_bad_id(flavour, server, world):
    producer = flavour.standalone(server.internal, server.producer_token)
    ids = [str(uuid.uuid4()), str(uuid.uuid4()), "invalid"]
    events = [doc_event(), doc_event(status=Status(code=7, message="denied"), read_only=True), doc_event()]

    resp = producer.batch_create_events(
        requests=[CreateEventRequest(event_id=i, event=e) for i, e in zip(ids, events)]
    )

    assert [norm(e) for e in resp.events] == [stored(i, e).view() for i, e in zip(ids[:2], events[:2])]
    assert list(resp.failed_requests) == [2]
    failure = resp.failed_requests[2]
    assert (failure.code, failure.message) == (3, "event_id must be in UUIDv4 format")
    for i, e in zip(ids[:2], events[:2]):
        world.add(stored(i, e))


def test_created_events_are_found_by_search(flavour, server, world):
    event_id, event = str(uuid.uuid4()), doc_event(principal=f"users/{flavour.name}")
    flavour.standalone(server.internal, server.producer_token).create_event(event_id=event_id, event=event)
    world.add(stored(event_id, event))
    reader = flavour.standalone(server.public, server.reader_token)
    flt = F(event_source_exact=PRODUCER_SOURCE)
    want = expected(world, flt, end=datetime.now(UTC))
    assert_events(reader.search_events(filter_=flt, page_size=1000).events, want)


# --- ours only -----------------------------------------------------------------------


def test_duplicate_id_with_other_content_is_409(server, world):
    import h2o_audit_trail
    from h2o_audit_trail.exception import CustomApiException

    producer = h2o_audit_trail.login(endpoint=server.internal, token=server.producer_token).event_client
    event_id, event = str(uuid.uuid4()), doc_event()
    first = producer.create_event(event_id, event)
    world.add(stored(event_id, event))
    assert producer.create_event(event_id, event) == first  # an idempotent retry
    with pytest.raises(CustomApiException) as exc:
        producer.create_event(event_id, doc_event(action="actions/other/DELETE"))
    assert exc.value.status == 409
    assert exc.value.code == 6


def test_event_without_status_and_workspace_override(server, world):
    """Beyond the H2O client: status=None stores an event without status
    (found with status_code_regex "^$"), and workspace_override sets the
    workspace."""
    import h2o_audit_trail

    producer = h2o_audit_trail.login(endpoint=server.internal, token=server.producer_token).event_client
    event_id = str(uuid.uuid4())
    event = doc_event(status=None, workspace_override="workspaces/override-1")
    created = producer.create_event(event_id, event)
    assert created.status is None
    assert created.workspace == "workspaces/override-1"
    assert created.workspace_override is None  # input only
    rec = stored(event_id, event)
    rec.workspace = "workspaces/override-1"
    world.add(rec)
    reader = h2o_audit_trail.login(endpoint=server.public, token=server.reader_token).event_client
    found = reader.search_events(F(status_code_regex="^$", workspace_exact="workspaces/override-1")).events
    assert_events(found, [rec])


def test_naive_event_time_is_refused_before_sending(server):
    import h2o_audit_trail

    producer = h2o_audit_trail.login(endpoint=server.internal, token=server.producer_token).event_client
    with pytest.raises(ValueError, match=r"event\.event_time must be a timezone-aware datetime"):
        producer.create_event(str(uuid.uuid4()), doc_event(event_time=datetime.now()))
    with pytest.raises(ValueError, match=r"requests\[1\]\.event\.event_time"):
        producer.batch_create_events([
            CreateEventRequest(str(uuid.uuid4()), doc_event()),
            CreateEventRequest(str(uuid.uuid4()), doc_event(event_time=datetime(2026, 1, 1))),
        ])
