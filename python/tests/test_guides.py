"""Every code example of the Quick Start and Searching Events guides runs
unchanged, with our client and with the official one, logging in through
discovery and the refresh-token grant, and returns exactly the events a
brute-force search over the seeded events expects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional, Tuple

import guide_examples as ex
import pytest
from _oracle import DEFAULT_START, SELF_AUDIT_SOURCE, assert_events, expected, norm
from _seed import ALICE, EM, JOHN, W_DOC

from h2o_audit_trail.event.search import SearchEventsRequestFilter as F

UTC = timezone.utc


@dataclass
class Case:
    example: Callable[[], dict]
    response: str  # the example's variable holding the (first) response
    oracle: Callable[[datetime], Optional[F]]  # the filter, for the brute-force search
    page_size: int
    min_expected: int = 1
    selects_all: bool = False  # the filter is meant to select its whole time range

    def __repr__(self) -> str:
        return self.example.__name__


CASES = [
    Case(ex.quickstart_complete_example, "search_response",
         lambda now: F(start_event_time=now - timedelta(days=1), principal_exact=JOHN), 50),
    Case(ex.quickstart_last_hour, "response", lambda now: F(start_event_time=now - timedelta(hours=1)), 100,
         min_expected=5, selects_all=True),
    Case(ex.quickstart_action_regex, "response", lambda now: F(action_regex=".*CREATE$"), 50, min_expected=5),
    Case(ex.quickstart_workspace, "response", lambda now: F(workspace_exact=f"workspaces/{W_DOC}"), 50, min_expected=3),
    Case(ex.guide_basic_search, "response", lambda now: F(principal_exact=JOHN), 50, min_expected=5),
    Case(ex.guide_time_range, "response",
         lambda now: F(start_event_time=now - timedelta(days=1), end_event_time=now), 100,
         min_expected=20, selects_all=True),
    Case(ex.guide_exact_match_filters, "response", lambda now: F(principal_exact=ALICE, event_source_exact=EM), 50,
         min_expected=3),
]


def run(flavour, fn: Callable[[], dict]) -> dict:
    with flavour.activate():
        import h2o_audit_trail

        # The example really runs the client it is meant to.
        assert hasattr(h2o_audit_trail, "COMPATIBLE_WITH") == (flavour.name == "ours")
        return fn()


@pytest.fixture
def searches(flavour, monkeypatch):
    """Records (client, filter_, page_size) of every search_events() call, so
    that a test can go on paging with exactly the filter an example sent
    (page tokens are bound to it)."""
    cls = flavour.module("h2o_audit_trail.event.client").EventClient
    original = cls.search_events
    calls = []

    def spy(self, filter_=None, page_size=0, page_token=""):
        calls.append((self, filter_, page_size))
        return original(self, filter_=filter_, page_size=page_size, page_token=page_token)

    monkeypatch.setattr(cls, "search_events", spy)
    return calls


def rest_of_pages(call, first) -> Tuple[list, object]:
    """The events of first and of every page after it, and the last page."""
    client, flt, size = call
    events, resp = list(first.events), first
    while resp.next_page_token:
        resp = client.search_events(filter_=flt, page_size=size, page_token=resp.next_page_token)
        events.extend(resp.events)
    return events, resp


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_single_page_example(flavour, cloud_env, world, searches, case: Case):
    now = datetime.now(UTC)
    flt = case.oracle(now)
    want = expected(world, flt, end=now)
    assert len(want) >= case.min_expected, f"seed data gives {len(want)} events for {flt}"
    if not case.selects_all:
        time_range = F(start_event_time=flt.start_event_time, end_event_time=flt.end_event_time)
        everything = expected(world, time_range, end=now)
        assert len(want) < len(everything), "seed data: the example's filter selects everything"
    assert len(want) <= case.page_size, "seed data: the answer should fit one page"

    ns = run(flavour, case.example)

    resp = ns[case.response]
    assert len(resp.events) <= case.page_size
    if case.selects_all:
        # The server's audit events of the test session's searches are in
        # the time range too and may fill more than a page.
        events, last = rest_of_pages(searches[-1], resp)
    else:
        events, last = resp.events, resp
        assert resp.next_page_token == ""
    assert_events(events, want, flt, now)
    start = ns.get("start_time")
    if start is not None:
        assert last.searched_until_time == start
    # Every token refresh went through the issuer with the platform client.
    assert [g.form.get("client_id") for g in cloud_env.grants] == ["hac-platform-public"]


def test_default_time_range_example(flavour, cloud_env, world, searches):
    now = datetime.now(UTC)
    want = expected(world, None, end=now)

    ns = run(flavour, ex.guide_default_time_range)

    resp = ns["response"]
    assert len(resp.events) == 50
    assert resp.next_page_token != ""
    events, last = rest_of_pages(searches[-1], resp)
    assert_events(events, want, None, now)
    assert last.searched_until_time == DEFAULT_START


def test_error_handling_example(flavour, cloud_env, world):
    ns = run(flavour, ex.quickstart_error_handling)

    error = ns["error"]
    assert isinstance(error, flavour.module("h2o_audit_trail.exception").CustomApiException)
    assert error.status == 400
    assert error.reason == "Bad Request"
    assert str(error).startswith("400 (Bad Request): filter.action_regex is not a valid RE2 regular expression")


def test_pagination_example(flavour, cloud_env, world):
    now = datetime.now(UTC)
    ns = run(flavour, ex.guide_pagination)

    flt = ns["search_filter"]
    want = expected(world, flt, end=now)
    assert len(want) > 200, "seed data: the pagination example should need several pages"
    assert_events(ns["all_events"], want, flt, now)
    last = ns["response"]
    assert last.next_page_token == ""
    assert last.searched_until_time == flt.start_event_time


def test_both_clients_return_the_same(official, server, world):
    """The same searches with both clients give identical pages, down to
    receive_time (the end time is fixed, so the server's audit events of
    these very searches stay out)."""
    ours = __import__("conftest").Flavour("ours")
    theirs = __import__("conftest").Flavour("official", official)
    end = datetime.now(UTC)
    start = end - timedelta(days=30)
    for flt in (F(start_event_time=start, end_event_time=end),
                F(start_event_time=start, end_event_time=end, status_code_regex="^$"),
                F(start_event_time=start, end_event_time=end, metadata_regex={"region": "^us-"}, read_only=False)):
        pages = {}
        for fl in (ours, theirs):
            client = fl.standalone(server.public, server.reader_token)
            token, got = "", []
            while True:
                resp = client.search_events(filter_=flt, page_size=37, page_token=token)
                got.append([dict(norm(e), receive_time=e.receive_time) for e in resp.events])
                token = resp.next_page_token
                if not token:
                    break
            pages[fl.name] = got
        assert pages["ours"] == pages["official"], f"the clients differ for {flt}"
        all_events = [e for page in pages["ours"] for e in page if e["event_source"] != SELF_AUDIT_SOURCE]
        assert len(all_events) == len(expected(world, flt, end=end))
