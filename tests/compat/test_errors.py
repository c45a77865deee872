"""Errors as the official client sees them: CustomApiException with the HTTP
status, and the server's message in str(exception)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from h2o_audit_trail.event.create import CreateEventRequest
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.exception import CustomApiException
from h2o_audit_trail.model.status import Status

from compat_helpers import standalone_client


def docs_event(**kw) -> Event:
    # The event of the Creating Events guide.
    args = dict(event_time=datetime.now(timezone.utc), event_source="h2oai-enginemanager-server",
                action="actions/enginemanager/daiEngines/CREATE", read_only=False, status=Status(code=0),
                principal="users/john.doe", source_ip_address="10.0.1.50")
    args.update(kw)
    return Event(**args)


def message_of(exc: CustomApiException) -> str:
    body = json.loads(exc.body)
    assert set(body) == {"code", "message", "details"}, exc.body
    return body["message"]


TOKENS = {
    "reader": lambda srv: srv.reader_token,
    "producer": lambda srv: srv.producer_token,
    "invalid": lambda srv: "not-a-valid-token",
    "empty": lambda srv: "",
}


@pytest.mark.parametrize("who", list(TOKENS))
def test_public_create_event_is_405(server, world, who):
    c = standalone_client(server.public, TOKENS[who](server))
    event_id = str(uuid.uuid4())
    with pytest.raises(CustomApiException) as exc:
        c.create_event(event_id=event_id, event=docs_event(resource=f"probe/{event_id}"))
    assert exc.value.status == 405, str(exc.value)
    assert json.loads(exc.value.body) == {"code": 12, "message": "Method Not Allowed", "details": []}
    assert str(exc.value) == "405 (Method Not Allowed): Method Not Allowed"
    # Nothing was stored.
    reader = standalone_client(server.public, server.reader_token)
    found = reader.search_events(filter_=F(resource_exact=f"probe/{event_id}"), page_size=10)
    assert found.events == []


@pytest.mark.parametrize("who", list(TOKENS))
def test_public_batch_create_events_is_405(server, world, who):
    c = standalone_client(server.public, TOKENS[who](server))
    reqs = [CreateEventRequest(event_id=str(uuid.uuid4()), event=docs_event(resource="probe/batch405"))
            for _ in range(2)]
    with pytest.raises(CustomApiException) as exc:
        c.batch_create_events(requests=reqs)
    assert exc.value.status == 405, str(exc.value)
    assert json.loads(exc.value.body) == {"code": 12, "message": "Method Not Allowed", "details": []}
    reader = standalone_client(server.public, server.reader_token)
    assert reader.search_events(filter_=F(resource_exact="probe/batch405")).events == []


@pytest.mark.parametrize("field,flt", [
    ("action_regex", F(action_regex="(")),
    ("principal_regex", F(principal_regex="[a-")),
    ("event_source_regex", F(event_source_regex="a**")),
    ("resource_regex", F(resource_regex="(?P<x")),
    ("source_ip_address_regex", F(source_ip_address_regex="\\")),
    ("workspace_regex", F(workspace_regex="x{2,1}")),
    ("status_code_regex", F(status_code_regex="^(0|3$")),
    ("metadata_regex", F(metadata_regex={"region": "("})),
    # RE2 has no backreferences or lookarounds (valid in Python's re).
    ("action_regex", F(action_regex="(a)\\1")),
    ("principal_regex", F(principal_regex="(?=users)")),
])
def test_invalid_regex_is_400_naming_the_field(client, field, flt):
    with pytest.raises(CustomApiException) as exc:
        client.search_events(filter_=flt)
    assert exc.value.status == 400, str(exc.value)
    msg = message_of(exc.value)
    assert field in msg, f"message {msg!r} does not name {field}"
    assert json.loads(exc.value.body)["code"] == 3
    assert str(exc.value) == f"400 (Bad Request): {msg}"


@pytest.mark.parametrize("token", ["not-a-valid-token", "", "Bearer x"])
def test_bad_token_is_401(server, world, token):
    c = standalone_client(server.public, token)
    with pytest.raises(CustomApiException) as exc:
        c.search_events()
    assert exc.value.status == 401, str(exc.value)
    assert json.loads(exc.value.body)["code"] == 16


def test_producer_token_cannot_search(server, world):
    # Only the reader token may search; the producer token may only create,
    # on the internal listener.
    c = standalone_client(server.public, server.producer_token)
    with pytest.raises(CustomApiException) as exc:
        c.search_events()
    assert exc.value.status in (401, 403), str(exc.value)


def test_page_token_with_another_filter_is_400(client, world):
    start = world.seeded_at - timedelta(days=5)
    first = client.search_events(filter_=F(start_event_time=start), page_size=2)
    assert first.next_page_token
    for other in (F(start_event_time=start, principal_exact="users/john.doe"),
                  F(start_event_time=start - timedelta(seconds=1)),
                  F(start_event_time=start, read_only=False),
                  None):
        with pytest.raises(CustomApiException) as exc:
            client.search_events(filter_=other, page_size=2, page_token=first.next_page_token)
        assert exc.value.status == 400, f"{other}: {exc.value}"
        assert json.loads(exc.value.body)["code"] == 3
    # The same filter with the token still works, with another page size too.
    again = client.search_events(filter_=F(start_event_time=start), page_size=5, page_token=first.next_page_token)
    assert again.events and again.events[0].name not in {e.name for e in first.events}


@pytest.mark.parametrize("token", ["garbage", "AAAA", "x" * 200])
def test_garbled_page_token_is_400(client, world, token):
    with pytest.raises(CustomApiException) as exc:
        client.search_events(page_token=token)
    assert exc.value.status == 400, str(exc.value)


def test_tampered_page_token_is_400(client, world):
    start = world.seeded_at - timedelta(days=5)
    first = client.search_events(filter_=F(start_event_time=start), page_size=2)
    tok = first.next_page_token
    assert tok
    i = len(tok) // 2
    flipped = tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1:]
    with pytest.raises(CustomApiException) as exc:
        client.search_events(filter_=F(start_event_time=start), page_size=2, page_token=flipped)
    assert exc.value.status == 400, str(exc.value)


@pytest.mark.parametrize("size", [-1, -1000])
def test_negative_page_size_is_400(client, world, size):
    with pytest.raises(CustomApiException) as exc:
        client.search_events(page_size=size)
    assert exc.value.status == 400, str(exc.value)
    assert "page_size" in message_of(exc.value)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(hours=1)])
def test_start_not_before_end_is_400(client, world, delta):
    end = datetime.now(timezone.utc) - timedelta(days=1)
    with pytest.raises(CustomApiException) as exc:
        client.search_events(filter_=F(start_event_time=end + delta, end_event_time=end))
    assert exc.value.status == 400, str(exc.value)
    assert "start_event_time" in message_of(exc.value)


def test_start_in_the_future_without_end_is_400(client, world):
    # The end defaults to now, so a start after now is start >= end.
    with pytest.raises(CustomApiException) as exc:
        client.search_events(filter_=F(start_event_time=datetime.now(timezone.utc) + timedelta(days=1)))
    assert exc.value.status == 400, str(exc.value)


def test_naive_datetime_is_400(client, world):
    # The client serialises a naive datetime without an offset
    # ("2026-01-02T03:04:05.000006"), which is not RFC 3339; like the
    # protojson decoder of a grpc-gateway server, ours rejects it. The
    # documentation always uses timezone-aware datetimes.
    with pytest.raises(CustomApiException) as exc:
        client.search_events(filter_=F(start_event_time=datetime.now() - timedelta(days=1)))
    assert exc.value.status == 400, str(exc.value)
    assert json.loads(exc.value.body)["code"] == 3
