"""Helpers shared by the compatibility tests: the standalone construction of
the official client, raw HTTP calls, the paging loop and the comparison of a
server answer with the brute-force oracle."""

from __future__ import annotations

import json
from datetime import datetime
from typing import List, Optional, Tuple
from urllib.parse import urljoin

import requests

from h2o_audit_trail.connection_config import ConnectionConfig
from h2o_audit_trail.event.client import EventClient

from compat_model import (
    SELF_AUDIT_ACTION,
    SELF_AUDIT_SOURCE,
    Rec,
    World,
    matches,
)

HTTP_TIMEOUT = 30  # seconds, for raw requests


# --- the official client, standalone -------------------------------------------


def standalone_client(endpoint: str, token: str) -> EventClient:
    """The official client for a standalone server, built the way
    h2o_audit_trail.login_custom() builds it once it has an access token.

    login_custom(endpoint, refresh_token, issuer_url, client_id, ...) does:
      1. endpoint = endpoint.rstrip("/");
      2. h2o_authn.TokenProvider(issuer_url=..., refresh_token=...) and one
         call of it to test the refresh;
      3. requests.get(urljoin(endpoint, "version")) must answer 2xx;
      4. EventClient(ConnectionConfig(audit_trail_url=endpoint,
         token_provider=<the provider>)).
    This helper does 1, 3 and 4 unchanged and replaces step 2 with a token
    provider that returns the given bearer token: the client calls the
    provider before every request and sends "Authorization: Bearer <token>".
    The server's built-in issuer would answer step 2 (test_login.py runs the
    real login() and login_custom()), but skipping the exchange lets the
    tests send exactly the token they mean, invalid and empty ones included,
    and reach the internal listener, which serves no issuer.
    """
    endpoint = endpoint.rstrip("/")
    resp = requests.get(urljoin(endpoint, "version"), timeout=HTTP_TIMEOUT)
    assert 200 <= resp.status_code <= 299, (
        f"login probe GET {urljoin(endpoint, 'version')} answered {resp.status_code}: {resp.text!r}"
    )
    cfg = ConnectionConfig(audit_trail_url=endpoint, token_provider=lambda: token)
    return EventClient(connection_config=cfg)


# --- raw HTTP ------------------------------------------------------------------------


def post(base: str, path: str, token: Optional[str], body, params=None) -> requests.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(base + path, data=data, headers=headers, params=params, timeout=HTTP_TIMEOUT)


def describe(resp: requests.Response) -> str:
    """Request and response in one line, for assertion messages."""
    req = resp.request
    body = req.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body and len(body) > 600:
        body = body[:600] + "..."
    text = resp.text if len(resp.text) <= 800 else resp.text[:800] + "..."
    return f"{req.method} {req.url} body={body!r} -> {resp.status_code} {text!r}"


def assert_rpc_status(resp: requests.Response, http_status: int, grpc_code: int) -> dict:
    """resp is an error with the given HTTP status whose body is the JSON form
    of google.rpc.Status: exactly {code, message, details}."""
    assert resp.status_code == http_status, describe(resp)
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {describe(resp)}")
    assert isinstance(body, dict), describe(resp)
    assert set(body) == {"code", "message", "details"}, f"keys {sorted(body)}: {describe(resp)}"
    assert body["code"] == grpc_code, describe(resp)
    assert isinstance(body["message"], str) and body["message"], describe(resp)
    assert isinstance(body["details"], list), describe(resp)
    return body


# --- searching -------------------------------------------------------------------------


def search_all(client: EventClient, flt, page_size: int, max_pages: int = 500) -> Tuple[list, list]:
    """Follows next_page_token to the end. Returns (all events, pages)."""
    pages = []
    events = []
    token = ""
    for _ in range(max_pages):
        resp = client.search_events(filter_=flt, page_size=page_size, page_token=token)
        pages.append(resp)
        events.extend(resp.events)
        token = resp.next_page_token
        assert isinstance(token, str), f"next_page_token is {token!r}"
        if token == "":
            return events, pages
    raise AssertionError(f"search did not finish within {max_pages} pages (page_size={page_size})")


def aware(dt) -> bool:
    return isinstance(dt, datetime) and dt.tzinfo is not None and dt.utcoffset() is not None


def assert_event_equals(e, r: Rec) -> None:
    """A client Event (h2o_audit_trail.event.event.Event) returned by the
    server has every field of record r."""
    where = f"event {r.name}"
    assert e.name == r.name, where
    assert aware(e.event_time), f"{where}: event_time {e.event_time!r} is not a timezone-aware datetime"
    assert e.event_time == r.event_time, f"{where}: event_time {e.event_time.isoformat()} != {r.event_time.isoformat()}"
    assert aware(e.receive_time), f"{where}: receive_time {e.receive_time!r} is not set"
    assert e.event_source == r.event_source, where
    assert e.action == r.action, where
    assert e.read_only is r.read_only, f"{where}: read_only {e.read_only!r} != {r.read_only!r}"
    if r.status is None:
        # Created without status. On the wire the key is omitted (client:
        # None) or an empty status; never null (the client raises on null).
        assert e.status is None or (e.status.code, e.status.message) == (0, ""), f"{where}: status {e.status!r}"
    else:
        assert e.status is not None, f"{where}: status missing, want {r.status}"
        assert (e.status.code, e.status.message) == r.status, f"{where}: status {e.status!r} != {r.status}"
    assert e.principal == r.principal, where
    assert isinstance(e.login_principal, str), f"{where}: login_principal {e.login_principal!r}"
    assert e.source_ip_address == r.source_ip_address, where
    assert e.user_agent == r.user_agent, where
    assert e.resource == r.resource, where
    assert e.workspace == r.workspace, f"{where}: workspace {e.workspace!r} != {r.workspace!r} (resource {r.resource!r})"
    assert dict(e.request_parameters) == r.request_parameters, where
    assert dict(e.metadata) == r.metadata, where
    assert e.type.value == r.type, f"{where}: type {e.type!r} != {r.type}"


def rec_of(e) -> Rec:
    """A client Event as a Rec, to run the oracle's predicate on events the
    tests did not create (self-audit events)."""
    status = None if e.status is None else (e.status.code, e.status.message)
    return Rec(
        event_id=e.name[len("events/"):],
        event_time=e.event_time,
        event_source=e.event_source,
        action=e.action,
        read_only=e.read_only,
        status=status,
        principal=e.principal,
        source_ip_address=e.source_ip_address,
        user_agent=e.user_agent or "",
        resource=e.resource or "",
        workspace=e.workspace or "",
        request_parameters=dict(e.request_parameters or {}),
        metadata=dict(e.metadata or {}),
        type=e.type.value,
    )


def assert_results(world: World, events: list, want: List[Rec], flt, end: Optional[datetime] = None) -> None:
    """events (as returned, in order) are exactly want, newest first, each
    field round-tripped. The only other events tolerated are the server's own
    audit events of searches (spec §6.4), and only when they match flt."""
    names = [e.name for e in events]
    dups = {n for n in names if names.count(n) > 1}
    assert not dups, f"events returned more than once: {sorted(dups)}"
    ours = [e for e in events if e.name in world.by_name]
    for e in events:
        if e.name in world.by_name:
            continue
        assert e.event_source == SELF_AUDIT_SOURCE and e.action == SELF_AUDIT_ACTION, (
            f"unexpected event {e.name} ({e.event_source} {e.action}) not created by the tests"
        )
        assert matches(flt, rec_of(e), end), f"self-audit event {e.name} does not match the filter"
    got = [e.name for e in ours]
    exp = [r.name for r in want]
    if got != exp:
        missing = [n for n in exp if n not in got]
        extra = [n for n in got if n not in exp]
        raise AssertionError(
            f"got {len(got)} events, want {len(exp)}; missing {missing}, unexpected {extra}, "
            f"order ok: {[n for n in got if n in exp] == [n for n in exp if n in got]}"
        )
    for a, b in zip(events, events[1:]):
        assert a.event_time >= b.event_time, f"not newest first: {a.name} {a.event_time} before {b.name} {b.event_time}"
    for e, r in zip(ours, want):
        assert_event_equals(e, r)
