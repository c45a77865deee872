"""Paging with next_page_token, page sizes and stable paging, through the
official client."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from h2o_audit_trail.event.search import SearchEventsRequestFilter as F

from compat_helpers import assert_results, describe, post, search_all
from compat_model import UTC, expected, stored_record
from compat_seed import BULK_SOURCE, EM, make


def test_pagination_loop_page_size_3(client, world):
    start = world.seeded_at - timedelta(days=5)
    flt = F(start_event_time=start)
    now = datetime.now(UTC)
    want = expected(world.snapshot(), flt, end=now)
    assert len(want) > 30

    seen = []
    token = ""
    prev_until = None
    for i in range(200):
        resp = client.search_events(filter_=flt, page_size=3, page_token=token)
        assert len(resp.events) <= 3, f"page {i} has {len(resp.events)} events"
        until = resp.searched_until_time
        assert until.tzinfo is not None and until >= start, f"page {i}: searched_until_time {until}"
        if prev_until is not None:
            assert until <= prev_until, f"page {i}: searched_until_time went forward {prev_until} -> {until}"
        for e in resp.events:
            assert e.event_time >= until, f"page {i}: {e.name} at {e.event_time} is older than searched_until_time {until}"
        prev_until = until
        seen.extend(resp.events)
        token = resp.next_page_token
        if token == "":
            assert until == start, "the last page's searched_until_time must equal start_event_time"
            break
    else:
        raise AssertionError("paging did not end within 200 pages")
    # Every expected event exactly once, newest first, fields intact.
    assert_results(world, seen, want, flt, end=now)


def test_equal_event_times_across_pages(client, world):
    # The four seeded events at one instant (three in the first batch, one in
    # the second) come newest first by the server's sequence number, one per
    # page, none twice.
    times = {}
    for s in world.base:
        times.setdefault(s.event_time, []).append(s)
    tie_time, group = max(times.items(), key=lambda kv: len(kv[1]))
    assert len(group) == 4
    flt = F(start_event_time=tie_time, end_event_time=tie_time + timedelta(microseconds=1))
    events, pages = search_all(client, flt, 1)
    assert all(len(p.events) <= 1 for p in pages)
    assert [e.name for e in events] == [f"events/{s.event_id}" for s in reversed(group)]
    assert_results(world, events, expected(world.snapshot(), flt), flt)


def test_paging_is_stable_while_events_arrive(server, client, world):
    start = world.seeded_at - timedelta(days=5)
    flt = F(start_event_time=start, event_source_exact=EM)
    want = expected(world.snapshot(), flt, end=datetime.now(UTC))
    first = client.search_events(filter_=flt, page_size=3)
    assert first.next_page_token != ""

    # A new matching event after the first page: newer than the end of the
    # range fixed by the first page, so the pages that follow must not show it.
    t = datetime.now(UTC)
    s = make(t, "z", source=EM, action="actions/enginemanager/daiEngines/CREATE", read_only=False,
             principal="users/late.arrival", ip="203.0.113.5", status={"code": 0, "message": ""},
             resource="//engine-manager/workspaces/late/daiEngines/e")
    resp = post(server.internal, "/v1/events", server.producer_token, s.body, params={"eventId": s.event_id})
    assert resp.status_code == 200, describe(resp)
    world.add(stored_record(s.event_id, s.event_time, s.body))

    events = list(first.events)
    token = first.next_page_token
    while token:
        page = client.search_events(filter_=flt, page_size=3, page_token=token)
        events.extend(page.events)
        token = page.next_page_token
    assert_results(world, events, want, flt)

    # A fresh search sees it.
    fresh = client.search_events(filter_=flt, page_size=3)
    assert fresh.events[0].name == f"events/{s.event_id}"


def test_page_size_over_1000_is_coerced(client, world, bulk):
    flt = F(event_source_exact=BULK_SOURCE)
    want = expected(world.snapshot(), flt)
    assert len(want) == 1005
    first = client.search_events(filter_=flt, page_size=5000)
    assert len(first.events) == 1000
    assert first.next_page_token != ""
    second = client.search_events(filter_=flt, page_size=5000, page_token=first.next_page_token)
    assert len(second.events) == 5
    assert second.next_page_token == ""
    assert second.searched_until_time == datetime(2025, 7, 1, tzinfo=UTC)
    assert_results(world, first.events + second.events, want, flt)


def test_page_size_zero_means_50(client, world, bulk):
    flt = F(event_source_exact=BULK_SOURCE)
    resp = client.search_events(filter_=flt, page_size=0)
    assert len(resp.events) == 50
    assert resp.next_page_token != ""
    assert_results(world, resp.events, expected(world.snapshot(), flt)[:50], flt)


def test_page_size_1000_exactly(client, world, bulk):
    flt = F(event_source_exact=BULK_SOURCE, metadata_exact={"batch": "0"})
    resp = client.search_events(filter_=flt, page_size=1000)
    # Exactly 1000 events match: all on one page. A token may follow (the
    # contract allows a last page that is empty), but then it leads to an
    # empty last page.
    assert len(resp.events) == 1000
    events = list(resp.events)
    if resp.next_page_token:
        last = client.search_events(filter_=flt, page_size=1000, page_token=resp.next_page_token)
        assert last.events == [] and last.next_page_token == ""
    assert_results(world, events, expected(world.snapshot(), flt), flt)


def test_page_token_survives_producer_traffic_on_older_events(server, client, world):
    # An event that arrives during paging with an event_time inside the part
    # of the range not yet scanned is legitimately found by later pages;
    # nothing already returned is repeated.
    start = world.seeded_at - timedelta(days=5)
    flt = F(start_event_time=start, principal_exact="users/paging.probe")
    t0 = world.seeded_at - timedelta(days=1)
    seeds = [make(t0 - timedelta(minutes=i), "z", source=EM, action="actions/enginemanager/daiEngines/GET",
                  read_only=True, principal="users/paging.probe", ip="203.0.113.6",
                  status={"code": 0, "message": ""}) for i in range(5)]
    body = {"requests": [{"eventId": s.event_id, "event": s.body} for s in seeds]}
    resp = post(server.internal, "/v1/events:batchCreate", server.producer_token, body)
    assert resp.status_code == 200 and resp.json()["failedRequests"] == {}, describe(resp)
    for s in seeds:
        world.add(stored_record(s.event_id, s.event_time, s.body))

    first = client.search_events(filter_=flt, page_size=2)
    assert [e.name for e in first.events] == [f"events/{s.event_id}" for s in seeds[:2]]
    older = make(t0 - timedelta(hours=2), "z", source=EM, action="actions/enginemanager/daiEngines/GET",
                 read_only=True, principal="users/paging.probe", ip="203.0.113.6",
                 status={"code": 0, "message": ""}, event_id=str(uuid.uuid4()))
    resp = post(server.internal, "/v1/events", server.producer_token, older.body, params={"eventId": older.event_id})
    assert resp.status_code == 200, describe(resp)
    world.add(stored_record(older.event_id, older.event_time, older.body))

    events = list(first.events)
    token = first.next_page_token
    while token:
        page = client.search_events(filter_=flt, page_size=2, page_token=token)
        events.extend(page.events)
        token = page.next_page_token
    assert [e.name for e in events] == [f"events/{s.event_id}" for s in seeds + [older]]
