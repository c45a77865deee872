"""Errors: bad token, invalid regular expressions, naive datetimes, the
text of CustomApiException, an unreachable server."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest

import h2o_audit_trail
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.exception import ApiException, CustomApiException, TimeoutException

UTC = timezone.utc


def test_bad_token_is_401(flavour, server):
    client = flavour.standalone(server.public, "not-the-token")
    with pytest.raises(flavour.module("h2o_audit_trail.exception").CustomApiException) as exc:
        client.search_events()
    assert exc.value.status == 401
    assert str(exc.value).startswith("401 (Unauthorized): ")


def test_producer_token_cannot_search(flavour, server):
    exc_type = flavour.module("h2o_audit_trail.exception").CustomApiException
    with pytest.raises(exc_type) as exc:
        flavour.standalone(server.public, server.producer_token).search_events()
    assert exc.value.status == 403


@pytest.mark.parametrize("flt,field", [
    (F(action_regex="(unclosed"), "filter.action_regex"),
    (F(principal_regex="[z-a]"), "filter.principal_regex"),
    (F(metadata_regex={"region": "(?P<x"}), "filter.metadata_regex"),
])
def test_invalid_regex_is_400_naming_the_field(flavour, server, flt, field):
    client = flavour.standalone(server.public, server.reader_token)
    with pytest.raises(flavour.module("h2o_audit_trail.exception").CustomApiException) as exc:
        client.search_events(filter_=flt)
    assert exc.value.status == 400
    assert field in str(exc.value)


def test_start_after_end_is_400(flavour, server):
    client = flavour.standalone(server.public, server.reader_token)
    now = datetime.now(UTC)
    with pytest.raises(flavour.module("h2o_audit_trail.exception").CustomApiException) as exc:
        client.search_events(filter_=F(start_event_time=now, end_event_time=now - timedelta(hours=1)))
    assert exc.value.status == 400
    assert "start_event_time" in str(exc.value)


@pytest.mark.parametrize("year", [1, 999])
def test_time_before_year_1000_is_400_naming_the_field(flavour, server, year):
    # Sent as RFC 3339 (a four-digit year), the server names the field and its range.
    client = flavour.standalone(server.public, server.reader_token)
    with pytest.raises(flavour.module("h2o_audit_trail.exception").CustomApiException) as exc:
        client.search_events(filter_=F(start_event_time=datetime(year, 1, 1, tzinfo=UTC)))
    assert exc.value.status == 400
    assert "filter.start_event_time" in str(exc.value) and "out of range" in str(exc.value)


def test_naive_datetime_is_refused_with_the_field_name(server):
    client = h2o_audit_trail.login(endpoint=server.public, token=server.reader_token).event_client
    with pytest.raises(ValueError, match=r"filter_\.start_event_time must be a timezone-aware datetime"):
        client.search_events(filter_=F(start_event_time=datetime.now() - timedelta(hours=1)))
    with pytest.raises(ValueError, match=r"filter_\.end_event_time"):
        client.search_events(filter_=F(end_event_time=datetime(2026, 1, 1)))
    with pytest.raises(TypeError, match=r"filter_\.start_event_time must be a datetime"):
        client.search_events(filter_=F(start_event_time="2026-01-01T00:00:00Z"))  # type: ignore[arg-type]


def test_official_client_sends_naive_datetimes_and_the_server_refuses(official, server):
    """What ours prevents: the H2O client sends a naive datetime as is, the
    server answers 400."""
    client = __import__("conftest").Flavour("official", official).standalone(server.public, server.reader_token)
    with pytest.raises(official.module("h2o_audit_trail.exception").CustomApiException) as exc:
        client.search_events(filter_=F(start_event_time=datetime.now() - timedelta(hours=1)))
    assert exc.value.status == 400


def test_aware_datetimes_in_any_zone_are_accepted(server, world):
    client = h2o_audit_trail.login(endpoint=server.public, token=server.reader_token).event_client
    ist = timezone(timedelta(hours=5, minutes=30))
    start = (datetime.now(UTC) - timedelta(days=2)).astimezone(ist)
    resp = client.search_events(filter_=F(start_event_time=start), page_size=1000)
    assert resp.searched_until_time == start
    assert resp.searched_until_time.tzinfo == UTC  # returned in UTC
    assert all(e.event_time.tzinfo == UTC for e in resp.events)


@pytest.mark.parametrize("body,text", [
    ('{"code": 3, "message": "bad filter", "details": []}', "400 (Bad Request): bad filter"),
    ("plain text", "400 (Bad Request): plain text"),
    ('{"error": "no message key"}', '400 (Bad Request): {"error": "no message key"}'),
    ("[1, 2]", "400 (Bad Request): [1, 2]"),
    (None, "400 (Bad Request)"),
])
def test_custom_api_exception_text(body, text, official):
    ours = CustomApiException(ApiException(400, "Bad Request", body, {"Content-Type": "application/json"}))
    assert str(ours) == text
    assert (ours.status, ours.reason, ours.body) == (400, "Bad Request", body)
    # The official class, given the same values, says the same (except where
    # it fails on a JSON body that is not an object).
    if body != "[1, 2]":
        theirs = official.module("h2o_audit_trail.exception").CustomApiException(ours)
        assert str(theirs) == text


def test_unreachable_server_is_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(ConnectionError, match="Server is not reachable"):
        h2o_audit_trail.login(endpoint=f"http://127.0.0.1:{port}", token="t")
    from h2o_audit_trail.connection_config import ConnectionConfig
    from h2o_audit_trail.event.client import EventClient

    client = EventClient(ConnectionConfig(f"http://127.0.0.1:{port}", lambda: "t"))
    with pytest.raises(ConnectionError):
        client.search_events()


def test_timeout_exception_is_a_timeout_error():
    assert issubclass(TimeoutException, TimeoutError)
    assert str(TimeoutException()) == "Timeout exceeded"
