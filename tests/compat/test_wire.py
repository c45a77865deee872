"""Raw HTTP checks of the wire format the official client depends on:
unauthenticated GET /version, google.rpc.Status error bodies, the 405 on the
public create paths, input key spellings and nulls, and complete Event JSON
in responses."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import urljoin

import pytest
import requests

from compat_helpers import HTTP_TIMEOUT, assert_rpc_status, describe, post
from compat_model import EVENT_OUTPUT_KEYS, UTC, stored_record, wire_time
from compat_seed import make

SEARCH = "/v1/events:search"
ENUM_VALUES = {"TYPE_UNSPECIFIED", "TYPE_API", "TYPE_SYSTEM"}

FILTER_KEYS_CAMEL = [
    "startEventTime", "endEventTime", "eventSourceExact", "eventSourceRegex", "resourceExact",
    "resourceRegex", "readOnly", "statusCodeRegex", "principalExact", "principalRegex",
    "sourceIpAddressExact", "sourceIpAddressRegex", "metadataExact", "metadataRegex", "workspaceExact",
    "workspaceRegex", "actionExact", "actionRegex", "includeTypes", "excludeTypes",
]


def names(resp: requests.Response, world) -> list:
    """The names of the returned events the tests created (the server's own
    audit events of searches, if any, differ from one search to the next)."""
    assert resp.status_code == 200, describe(resp)
    return [e["name"] for e in resp.json()["events"] if e["name"] in world.by_name]


# --- GET /version ------------------------------------------------------------------------


def test_version_without_auth(server):
    resp = requests.get(server.public + "/version", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, describe(resp)
    body = resp.json()
    assert isinstance(body.get("version"), str) and body["version"], describe(resp)


@pytest.mark.parametrize("endpoint_suffix", ["", "/"])
def test_version_at_the_url_the_client_probes(server, endpoint_suffix):
    # login()/login_custom() probe urljoin(<audit trail url>, "version") with
    # no Authorization header; for a URL at the host root that is /version.
    url = urljoin(server.public + endpoint_suffix, "version")
    assert url == server.public + "/version"
    assert requests.get(url, timeout=HTTP_TIMEOUT).status_code == 200


def test_version_ignores_a_bad_token(server):
    resp = requests.get(server.public + "/version", headers={"Authorization": "Bearer nope"}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, describe(resp)


# --- the public create paths -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events?eventId=" + str(uuid.uuid4()), "/v1/events:batchCreate"])
@pytest.mark.parametrize("who", ["none", "reader", "producer", "invalid"])
def test_public_create_paths_are_405(server, world, path, who):
    token = {"none": None, "reader": server.reader_token, "producer": server.producer_token,
             "invalid": "invalid-token"}[who]
    body = {"requests": []} if path.endswith("batchCreate") else {
        "eventTime": wire_time(datetime.now(UTC)), "eventSource": "x", "action": "y", "readOnly": False,
        "principal": "users/x", "sourceIpAddress": "203.0.113.1"}
    resp = post(server.public, path, token, body)
    assert resp.status_code == 405, describe(resp)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), describe(resp)
    assert resp.json() == {"code": 12, "message": "Method Not Allowed", "details": []}, describe(resp)


# --- error bodies ----------------------------------------------------------------------


def test_error_body_invalid_argument(server, world):
    resp = post(server.public, SEARCH, server.reader_token, {"filter": {"actionRegex": "("}})
    body = assert_rpc_status(resp, 400, 3)
    assert "action_regex" in body["message"]


def test_error_body_missing_token(server, world):
    assert_rpc_status(post(server.public, SEARCH, None, {}), 401, 16)


def test_error_body_bad_token(server, world):
    assert_rpc_status(post(server.public, SEARCH, "wrong", {}), 401, 16)


def test_error_body_malformed_json(server, world):
    assert_rpc_status(post(server.public, SEARCH, server.reader_token, "{not json"), 400, 3)


def test_error_body_wrong_json_type(server, world):
    assert_rpc_status(post(server.public, SEARCH, server.reader_token, {"pageSize": "many"}), 400, 3)


def test_error_body_bad_timestamp(server, world):
    resp = post(server.public, SEARCH, server.reader_token, {"filter": {"startEventTime": "yesterday"}})
    assert_rpc_status(resp, 400, 3)


def test_error_body_unknown_path(server, world):
    resp = post(server.public, "/v1/nothing-here", server.reader_token, {})
    assert_rpc_status(resp, 404, 5)


# --- request spelling -----------------------------------------------------------------


def test_snake_case_input_keys(server, world):
    start = wire_time(world.seeded_at - timedelta(days=3), "utc-offset")
    camel = {"filter": {"startEventTime": start, "principalRegex": "^users/", "readOnly": False,
                        "metadataRegex": {"region": "."}, "includeTypes": ["TYPE_API", "TYPE_SYSTEM"],
                        "excludeTypes": ["TYPE_SYSTEM"], "statusCodeRegex": "^(0|3|5|7|13)$",
                        "sourceIpAddressRegex": ".", "workspaceRegex": "^workspaces/"},
             "pageSize": 1000, "pageToken": ""}
    snake = {"filter": {"start_event_time": start, "principal_regex": "^users/", "read_only": False,
                        "metadata_regex": {"region": "."}, "include_types": ["TYPE_API", "TYPE_SYSTEM"],
                        "exclude_types": ["TYPE_SYSTEM"], "status_code_regex": "^(0|3|5|7|13)$",
                        "source_ip_address_regex": ".", "workspace_regex": "^workspaces/"},
             "page_size": 1000, "page_token": ""}
    want = names(post(server.public, SEARCH, server.reader_token, camel), world)
    assert want, "the filter should select some seeded events"
    assert names(post(server.public, SEARCH, server.reader_token, snake), world) == want


def test_snake_case_page_token(server, world):
    start = wire_time(world.seeded_at - timedelta(days=5))
    # readOnly false keeps the server's own self-audit events of searches
    # (read-only, spec §6.4) out of the pages.
    first = post(server.public, SEARCH, server.reader_token,
                 {"filter": {"startEventTime": start, "readOnly": False}, "pageSize": 2})
    assert first.status_code == 200, describe(first)
    tok = first.json()["nextPageToken"]
    assert tok
    a = post(server.public, SEARCH, server.reader_token,
             {"filter": {"startEventTime": start, "readOnly": False}, "pageSize": 2, "pageToken": tok})
    b = post(server.public, SEARCH, server.reader_token,
             {"filter": {"start_event_time": start, "read_only": False}, "page_size": 2, "page_token": tok})
    assert names(a, world) == names(b, world) and names(a, world)


def _drain(server, body, world) -> list:
    """names() of every page of a search."""
    out = []
    for _ in range(100):
        resp = post(server.public, SEARCH, server.reader_token, body)
        out.extend(names(resp, world))
        tok = resp.json()["nextPageToken"]
        if not tok:
            return out
        body = dict(body, pageToken=tok)
    raise AssertionError("search did not finish")


def test_null_for_every_filter_field(server, world):
    # Every page: one page of 1000 could end at another event for each
    # search, as each search adds its own self-audit event (spec §6.4).
    base = {"filter": {}, "pageSize": 1000}
    nulls = {"filter": {k: None for k in FILTER_KEYS_CAMEL}, "pageSize": 1000}
    want = _drain(server, base, world)
    assert want
    assert _drain(server, nulls, world) == want


def test_nulls_as_the_client_sends_them(server, world):
    # What SearchEventsRequestFilter() serialises to when only some fields
    # are set: null strings and read_only, {} maps, [] lists.
    start = wire_time(world.seeded_at - timedelta(days=2), "utc-offset")
    body = {"filter": {k: None for k in FILTER_KEYS_CAMEL}, "pageSize": 1000, "pageToken": ""}
    body["filter"].update(startEventTime=start, principalExact="users/john.doe", metadataExact={},
                          metadataRegex={}, includeTypes=[], excludeTypes=[])
    got = names(post(server.public, SEARCH, server.reader_token, body), world)
    want = names(post(server.public, SEARCH, server.reader_token,
                      {"filter": {"startEventTime": start, "principalExact": "users/john.doe"}, "pageSize": 1000}), world)
    assert got == want and got


@pytest.mark.parametrize("body", [
    {},
    {"filter": None},
    {"filter": None, "pageSize": None, "pageToken": None},
    {"filter": {}, "pageSize": 0, "pageToken": ""},
])
def test_empty_and_null_requests(server, world, body):
    # Three events newer than the self-audit events of the searches so far:
    # after a few dozen searches the first page holds only those, and the
    # comparison below would be of two empty lists.
    now = datetime.now(UTC)
    fresh = [make(now - timedelta(milliseconds=3 - i), "z", source="compat-null-requests",
                  action="actions/compat/requests/NULL", read_only=True, principal="users/null-requests",
                  ip="203.0.113.44", status={"code": 0, "message": ""})
             for i in range(3)]
    resp = post(server.internal, "/v1/events:batchCreate", server.producer_token,
                {"requests": [{"eventId": s.event_id, "event": s.body} for s in fresh]})
    assert resp.status_code == 200 and resp.json().get("failedRequests") == {}, describe(resp)
    for s in fresh:
        world.add(stored_record(s.event_id, s.event_time, s.body))
    newest_first = [f"events/{s.event_id}" for s in reversed(fresh)]

    base_resp = post(server.public, SEARCH, server.reader_token, {"filter": {}})
    resp = post(server.public, SEARCH, server.reader_token, body)
    assert len(resp.json()["events"]) == len(base_resp.json()["events"]) == 50, "the default page size"
    base, got = names(base_resp, world), names(resp, world)
    assert base[:3] == newest_first == got[:3]
    # The first search's own self-audit event is newer than everything the
    # second one returns, and takes a place of the page: one event fewer.
    assert got == base[:len(got)] and len(base) - len(got) <= 1, (got, base)


def test_enum_values_by_name_in_requests(server, world):
    body = {"filter": {"includeTypes": ["TYPE_SYSTEM"]}, "pageSize": 1000}
    resp = post(server.public, SEARCH, server.reader_token, body)
    assert resp.status_code == 200, describe(resp)
    assert {e["type"] for e in resp.json()["events"]} == {"TYPE_SYSTEM"}


# --- response shape --------------------------------------------------------------------


def check_event_json(e: dict, statusless: set) -> None:
    where = f"event {e.get('name')}"
    missing = [k for k in EVENT_OUTPUT_KEYS if k not in e]
    if e.get("name") in statusless:
        # Created without status: the one key that may be absent (the
        # client then reads None); it must never be null.
        missing = [k for k in missing if k != "status"]
    assert not missing, f"{where}: keys missing: {missing} in {sorted(e)}"
    assert not [k for k in e if "_" in k], f"{where}: keys not lowerCamelCase: {sorted(e)}"
    nulls = [k for k, v in e.items() if v is None and k != "workspaceOverride"]
    assert not nulls, f"{where}: null values for {nulls} (the client rejects null for these)"
    for k in ("name", "eventSource", "action", "principal", "loginPrincipal", "sourceIpAddress", "userAgent",
              "resource", "workspace"):
        assert isinstance(e[k], str), f"{where}: {k} = {e[k]!r}"
    assert isinstance(e["readOnly"], bool), where
    for k in ("requestParameters", "metadata"):
        assert isinstance(e[k], dict) and all(isinstance(v, str) for v in e[k].values()), f"{where}: {k}"
    assert e["type"] in ENUM_VALUES, f"{where}: type {e['type']!r} (enums are sent by name)"
    if "status" in e:
        assert isinstance(e["status"], dict), f"{where}: status {e['status']!r}"
        assert set(e["status"]) <= {"code", "message", "details"}, f"{where}: status {e['status']!r}"
        assert isinstance(e["status"].get("code", 0), int), where
    for k in ("eventTime", "receiveTime"):
        assert isinstance(e[k], str), f"{where}: {k} = {e[k]!r}"
        dt = datetime.fromisoformat(e[k].replace("Z", "+00:00"))
        assert dt.tzinfo is not None, f"{where}: {k} {e[k]!r} has no offset"


def test_every_event_key_present(server, world):
    statusless = {r.name for r in world.records if r.status is None}
    assert statusless
    start = wire_time(world.seeded_at - timedelta(days=5))
    resp = post(server.public, SEARCH, server.reader_token, {"filter": {"startEventTime": start}, "pageSize": 1000})
    assert resp.status_code == 200, describe(resp)
    body = resp.json()
    assert set(body) >= {"events", "nextPageToken", "searchedUntilTime"}, sorted(body)
    assert body["nextPageToken"] == ""
    events = body["events"]
    seeded = {f"events/{s.event_id}" for s in world.base}
    assert seeded <= {e["name"] for e in events}
    for e in events:
        check_event_json(e, statusless)
    # Empty values keep their keys, with the empty value of their type.
    by_name = {e["name"]: e for e in events}
    empties = 0
    for s in world.base:
        e = by_name[f"events/{s.event_id}"]
        for key in ("userAgent", "resource", "requestParameters", "metadata"):
            if s.body.get(key) in ("", {}):
                assert e[key] == s.body[key], f"{e['name']}: {key} = {e[key]!r}"
                empties += 1
        if "type" not in s.body:
            assert e["type"] == "TYPE_UNSPECIFIED", f"{e['name']}: type {e['type']!r}"
            empties += 1
        if s.body.get("readOnly") is False:
            assert e["readOnly"] is False
        if s.body.get("status") == {"code": 0, "message": ""}:
            assert e["status"] == {"code": 0, "message": ""}, f"{e['name']}: status {e['status']!r}"
    assert empties > 20


def test_status_less_events_never_null(server, world):
    resp = post(server.public, SEARCH, server.reader_token,
                {"filter": {"statusCodeRegex": "^$"}, "pageSize": 1000})
    assert resp.status_code == 200, describe(resp)
    events = resp.json()["events"]
    assert events
    for e in events:
        assert e.get("status", {}) is not None, f"{e['name']}: \"status\": null crashes the client's deserializer"
        if "status" in e:
            assert e["status"].get("code", 0) == 0 and e["status"].get("message", "") == "", e


def test_empty_result_has_every_key(server, world):
    resp = post(server.public, SEARCH, server.reader_token,
                {"filter": {"principalExact": "users/nobody-" + str(uuid.uuid4())}})
    assert resp.status_code == 200, describe(resp)
    body = resp.json()
    assert body["events"] == [], describe(resp)
    assert body["nextPageToken"] == "", describe(resp)
    assert body["searchedUntilTime"] in ("2025-07-01T00:00:00Z", "2025-07-01T00:00:00.000Z",
                                         "2025-07-01T00:00:00.000000Z", "2025-07-01T00:00:00.000000000Z"), describe(resp)


def test_microsecond_round_trip_on_the_wire(server, world):
    # Every spelling the seed used (Z, +00:00, +05:30, -07:00, 9 digits,
    # 3 digits, none) comes back as the same instant, to the microsecond.
    start = wire_time(world.seeded_at - timedelta(days=5))
    resp = post(server.public, SEARCH, server.reader_token, {"filter": {"startEventTime": start}, "pageSize": 1000})
    by_name = {e["name"]: e for e in resp.json()["events"]}
    for s in world.base:
        got = by_name[f"events/{s.event_id}"]["eventTime"]
        dt = datetime.fromisoformat(got.replace("Z", "+00:00"))
        assert dt == s.event_time, f"sent {s.body['eventTime']}, got {got}"
