"""The self-audit of searches (spec §6.4, T-internal): one search_events()
call by the official client produces exactly one SEARCH event of the server,
visible to a search shortly after; a refused search is recorded too."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from h2o_audit_trail.event.search import SearchEventsRequestFilter as F

from compat_helpers import post
from compat_model import SELF_AUDIT_ACTION, SELF_AUDIT_SOURCE

UTC = timezone.utc


def _audit_events(client, start, end, **kw):
    return client.search_events(filter_=F(
        start_event_time=start, end_event_time=end,
        event_source_exact=SELF_AUDIT_SOURCE, action_exact=SELF_AUDIT_ACTION, **kw,
    ), page_size=1000).events


def test_one_search_one_event(client):
    start = datetime.now(UTC)
    client.search_events(filter_=F(resource_regex="^//self-audit-probe/"), page_size=7)
    time.sleep(0.5)
    got = _audit_events(client, start, datetime.now(UTC))
    assert len(got) == 1, [e.name for e in got]
    e = got[0]
    assert e.event_time >= start
    assert e.principal == "users/reader"
    assert e.read_only is True
    assert e.status.code == 0
    assert e.source_ip_address == "private"  # loopback, redacted
    assert e.user_agent.startswith("OpenAPI-Generator/")
    assert e.request_parameters["filter.resource_regex"] == "^//self-audit-probe/"
    assert e.request_parameters["page_size"] == "7"


def test_refused_search_is_recorded(server, client):
    start = datetime.now(UTC)
    r = post(server.public, "/v1/events:search", "not-a-token", {})
    assert r.status_code == 401
    r = post(server.public, "/v1/events:search", server.producer_token, {})
    assert r.status_code == 403
    time.sleep(0.3)
    got = _audit_events(client, start, datetime.now(UTC))
    by_code = sorted((e.status.code, e.principal) for e in got)
    assert by_code == [(7, "services/producer"), (16, "anonymous")], by_code
