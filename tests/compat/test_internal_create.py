"""Event creation on the internal listener (producer token): the official
client's create calls and their wire format, validation, idempotent retries,
conflicts and the batch limit."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from h2o_audit_trail.event.create import CreateEventRequest
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.event_type import EventType
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.model.rpc_status import RPCStatus
from h2o_audit_trail.model.status import Status

from compat_helpers import assert_event_equals, assert_results, assert_rpc_status, describe, post
from compat_model import UTC, Rec, redact_ip, stored_record, wire_time
from compat_seed import EM, W_DOC, make

UUID_MESSAGE = "event_id must be in UUIDv4 format"


def client_event(marker: str, **kw) -> Event:
    args = dict(event_time=datetime.now(timezone.utc) - timedelta(seconds=1), event_source=EM,
                action="actions/enginemanager/daiEngines/CREATE", read_only=False,
                status=Status(code=0), principal="users/john.doe", source_ip_address="10.0.1.50",
                resource=f"//engine-manager/workspaces/{W_DOC}/daiEngines/{marker}",
                request_parameters={"displayName": "My engine"}, user_agent="h2o-cli/1.2.0",
                metadata={"engine_version": "1.10.7"}, type=EventType.TYPE_API)
    args.update(kw)
    return Event(**args)


def rec_of_client_event(event_id: str, ev: Event) -> Rec:
    return Rec(
        event_id=event_id, event_time=ev.event_time, event_source=ev.event_source, action=ev.action,
        read_only=ev.read_only, status=(ev.status.code, ev.status.message), principal=ev.principal,
        source_ip_address=redact_ip(ev.source_ip_address), user_agent=ev.user_agent, resource=ev.resource,
        workspace=f"workspaces/{W_DOC}", request_parameters=dict(ev.request_parameters),
        metadata=dict(ev.metadata), type=ev.type.value,
    )


def event_body(**kw) -> dict:
    body = {"eventTime": wire_time(datetime.now(UTC) - timedelta(seconds=1)), "eventSource": EM,
            "action": "actions/enginemanager/daiEngines/DELETE", "readOnly": False,
            "status": {"code": 0, "message": ""}, "principal": "users/alice.smith",
            "sourceIpAddress": "203.0.113.20"}
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}


def create(server, body, event_id=None, token=None, param="eventId"):
    event_id = event_id or str(uuid.uuid4())
    return event_id, post(server.internal, "/v1/events", server.producer_token if token is None else token,
                          body, params={param: event_id})


# --- the official client on the internal listener --------------------------------------


def test_client_create_event(producer_client, client, world):
    event_id = str(uuid.uuid4())
    ev = client_event("client-create")
    got = producer_client.create_event(event_id=event_id, event=ev)
    r = world.add(rec_of_client_event(event_id, ev))
    assert_event_equals(got, r)
    assert got.source_ip_address == "private"
    # And the reader sees the same event.
    found = client.search_events(filter_=F(resource_exact=ev.resource), page_size=10)
    assert_results(world, found.events, [r], F(resource_exact=ev.resource))


def test_client_batch_create_partial_failure(producer_client, client, world):
    ids = [str(uuid.uuid4()), str(uuid.uuid4()), "invalid"]
    evs = [client_event(f"batch-{i}") for i in range(3)]
    resp = producer_client.batch_create_events(
        requests=[CreateEventRequest(event_id=i, event=e) for i, e in zip(ids, evs)])
    assert resp.failed_requests == {2: RPCStatus(code=3, message=UUID_MESSAGE)}
    recs = [world.add(rec_of_client_event(i, e)) for i, e in zip(ids[:2], evs[:2])]
    assert [e.name for e in resp.events] == [r.name for r in recs]
    for e, r in zip(resp.events, recs):
        assert_event_equals(e, r)


def test_client_batch_create_without_failures_has_empty_map(producer_client, world):
    event_id = str(uuid.uuid4())
    ev = client_event("batch-ok")
    resp = producer_client.batch_create_events(requests=[CreateEventRequest(event_id=event_id, event=ev)])
    world.add(rec_of_client_event(event_id, ev))
    assert resp.failed_requests == {}
    assert [e.name for e in resp.events] == [f"events/{event_id}"]


# --- the wire of the create calls ------------------------------------------------------


def test_batch_failed_requests_keyed_by_index_strings(server, world):
    ok = [make(datetime.now(UTC) - timedelta(seconds=2), "z", source=EM, action="actions/x/CREATE",
               read_only=False, principal="users/x", ip="203.0.113.30", status={"code": 0, "message": ""})
          for _ in range(2)]
    reqs = [{"eventId": "not-a-uuid", "event": event_body()},
            {"eventId": ok[0].event_id, "event": ok[0].body},
            {"eventId": str(uuid.uuid1()), "event": event_body()},
            {"eventId": ok[1].event_id, "event": ok[1].body},
            {"eventId": str(uuid.uuid4()), "event": event_body(eventSource="")}]
    resp = post(server.internal, "/v1/events:batchCreate", server.producer_token, {"requests": reqs})
    assert resp.status_code == 200, describe(resp)
    for s in ok:
        world.add(stored_record(s.event_id, s.event_time, s.body))
    body = resp.json()
    assert set(body) == {"events", "failedRequests"}, describe(resp)
    assert [e["name"] for e in body["events"]] == [f"events/{s.event_id}" for s in ok]
    failed = body["failedRequests"]
    assert sorted(failed) == ["0", "2", "4"], describe(resp)
    assert failed["0"]["code"] == 3 and failed["0"]["message"] == UUID_MESSAGE
    assert failed["2"]["code"] == 3 and failed["2"]["message"] == UUID_MESSAGE
    assert failed["4"]["code"] == 3 and "event_source is required" in failed["4"]["message"]
    for v in failed.values():
        assert set(v) == {"code", "message", "details"} and v["details"] == [], v


def test_create_event_id_query_parameter_spellings(server, world):
    for param in ("eventId", "event_id"):
        body = event_body(resource=f"probe/{param}")
        event_id, resp = create(server, body, param=param)
        assert resp.status_code == 200, describe(resp)
        out = resp.json()
        assert set(out) == {"event"}, describe(resp)
        assert out["event"]["name"] == f"events/{event_id}"
        world.add(stored_record(event_id, datetime.fromisoformat(body["eventTime"].replace("Z", "+00:00")), body))


def test_create_returns_server_set_fields(server, world):
    body = event_body(resource="workspaces/w1/daiEngine/e1",
                      # Output-only fields a producer sends are ignored.
                      name="events/something-else", receiveTime="2000-01-01T00:00:00Z",
                      workspace="workspaces/forged", loginPrincipal="forged")
    before = datetime.now(UTC)
    event_id, resp = create(server, body)
    after = datetime.now(UTC)
    assert resp.status_code == 200, describe(resp)
    e = resp.json()["event"]
    assert e["name"] == f"events/{event_id}"
    assert e["workspace"] == "workspaces/w1"
    assert e["loginPrincipal"] != "forged"
    receive = datetime.fromisoformat(e["receiveTime"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= receive <= after + timedelta(seconds=1)
    clean = {k: v for k, v in body.items() if k not in ("name", "receiveTime", "workspace", "loginPrincipal")}
    world.add(stored_record(event_id, datetime.fromisoformat(body["eventTime"].replace("Z", "+00:00")), clean))


def test_status_is_optional(server, client, world):
    body = event_body(status=None, resource="probe/no-status")
    event_id, resp = create(server, body)
    assert resp.status_code == 200, describe(resp)
    r = world.add(stored_record(event_id, datetime.fromisoformat(body["eventTime"].replace("Z", "+00:00")), body))
    flt = F(status_code_regex="^$", resource_exact="probe/no-status")
    found = client.search_events(filter_=flt)
    assert_results(world, found.events, [r], flt)
    assert client.search_events(filter_=F(status_code_regex="^0$", resource_exact="probe/no-status")).events == []


@pytest.mark.parametrize("key,field", [
    ("eventTime", "event_time"),
    ("eventSource", "event_source"),
    ("action", "action"),
    ("principal", "principal"),
    ("sourceIpAddress", "source_ip_address"),
])
@pytest.mark.parametrize("how", ["omitted", "empty"])
def test_required_fields(server, world, key, field, how):
    body = event_body()
    if how == "omitted":
        del body[key]
    elif key == "eventTime":
        body[key] = None  # JSON null: unset
    else:
        body[key] = ""
    _, resp = create(server, body)
    msg = assert_rpc_status(resp, 400, 3)["message"]
    assert f"{field} is required" in msg, describe(resp)


@pytest.mark.parametrize("ip", ["not-an-ip", "10.0.0.256", "203.0.113.1/24", "localhost", "Private"])
def test_source_ip_must_be_an_address_or_private(server, world, ip):
    _, resp = create(server, event_body(sourceIpAddress=ip))
    msg = assert_rpc_status(resp, 400, 3)["message"]
    assert "source_ip_address" in msg


@pytest.mark.parametrize("ip,stored", [
    ("private", "private"), ("10.1.2.3", "private"), ("172.31.255.255", "private"), ("192.168.0.1", "private"),
    ("127.0.0.1", "private"), ("::1", "private"), ("fe80::abcd", "private"), ("fd00::1", "private"),
    ("169.254.169.254", "private"), ("203.0.113.9", "203.0.113.9"), ("172.32.0.1", "172.32.0.1"),
    ("2001:db8::2", "2001:db8::2"),
])
def test_private_addresses_are_redacted(server, world, ip, stored):
    body = event_body(sourceIpAddress=ip, resource="probe/redaction")
    event_id, resp = create(server, body)
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["event"]["sourceIpAddress"] == stored
    r = world.add(stored_record(event_id, datetime.fromisoformat(body["eventTime"].replace("Z", "+00:00")), body))
    assert r.source_ip_address == stored  # the model agrees


@pytest.mark.parametrize("key", ["Region", "1region", "region_", "_region", "re-gion", "re gion", "", "a" * 64,
                                 "région"])
def test_metadata_key_rule(server, world, key):
    _, resp = create(server, event_body(metadata={key: "v"}))
    msg = assert_rpc_status(resp, 400, 3)["message"]
    assert "metadata" in msg


def test_metadata_keys_at_the_limits(server, world):
    md = {"a": "1", "a" * 63: "2", "k8s_namespace_2": "3", "z9": "4"}
    body = event_body(metadata=md, resource="probe/metadata-limits")
    event_id, resp = create(server, body)
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["event"]["metadata"] == md
    world.add(stored_record(event_id, datetime.fromisoformat(body["eventTime"].replace("Z", "+00:00")), body))


@pytest.mark.parametrize("event_id", ["invalid", str(uuid.uuid1()), "b096430b-c7a8-47f2-a129-d9ae58cf454", ""])
def test_create_with_bad_event_id(server, world, event_id):
    resp = post(server.internal, "/v1/events", server.producer_token, event_body(), params={"eventId": event_id})
    assert assert_rpc_status(resp, 400, 3)["message"] == UUID_MESSAGE


def test_identical_retry_returns_the_stored_event(server, world):
    body = event_body(resource="probe/retry", metadata={"attempt": "same"})
    event_id, first = create(server, body)
    assert first.status_code == 200, describe(first)
    world.add(stored_record(event_id, datetime.fromisoformat(body["eventTime"].replace("Z", "+00:00")), body))
    _, again = create(server, body, event_id=event_id)
    assert again.status_code == 200, describe(again)
    assert again.json() == first.json()  # same receiveTime: the stored event, not a new one
    # Also inside a batch.
    resp = post(server.internal, "/v1/events:batchCreate", server.producer_token,
                {"requests": [{"eventId": event_id, "event": body}]})
    assert resp.status_code == 200, describe(resp)
    assert resp.json() == {"events": [first.json()["event"]], "failedRequests": {}}


def test_duplicate_id_with_other_content_is_409(server, world):
    body = event_body(resource="probe/conflict")
    event_id, first = create(server, body)
    assert first.status_code == 200, describe(first)
    world.add(stored_record(event_id, datetime.fromisoformat(body["eventTime"].replace("Z", "+00:00")), body))
    _, resp = create(server, dict(body, action="actions/enginemanager/daiEngines/GET"), event_id=event_id)
    assert_rpc_status(resp, 409, 6)
    # In a batch the conflict is a per-item failure with code 6.
    resp = post(server.internal, "/v1/events:batchCreate", server.producer_token,
                {"requests": [{"eventId": event_id, "event": dict(body, principal="users/other")}]})
    assert resp.status_code == 200, describe(resp)
    assert resp.json()["events"] == []
    assert resp.json()["failedRequests"]["0"]["code"] == 6


def test_batch_over_1000_is_400_and_writes_nothing(server, client, world):
    marker = f"h2oai-over-limit-{uuid.uuid4().hex[:8]}"
    t = datetime.now(UTC) - timedelta(minutes=1)
    reqs = [{"eventId": str(uuid.uuid4()), "event": event_body(eventSource=marker, eventTime=wire_time(t))}
            for _ in range(1001)]
    resp = post(server.internal, "/v1/events:batchCreate", server.producer_token, {"requests": reqs})
    msg = assert_rpc_status(resp, 400, 3)["message"]
    assert "1000" in msg, describe(resp)
    assert client.search_events(filter_=F(event_source_exact=marker), page_size=1000).events == []


def test_reader_token_cannot_create(server, world):
    _, resp = create(server, event_body(), token=server.reader_token)
    assert_rpc_status(resp, 403, 7)


@pytest.mark.parametrize("token", ["", "wrong"])
def test_create_needs_a_valid_token(server, world, token):
    resp = post(server.internal, "/v1/events", token or None, event_body(), params={"eventId": str(uuid.uuid4())})
    assert_rpc_status(resp, 401, 16)

