"""Every example of the Quick Start and Searching Events guides, run with the
official client against our server, compared with a brute-force search over
the events the suite created."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from h2o_audit_trail.event.event_type import EventType
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F

from compat_helpers import assert_results, search_all
from compat_model import UTC, expected
from compat_seed import ALICE, EM, JOHN, KEYCLOAK, W_B, W_DOC


def run(client, world, flt, page_size, *, min_expected=1, must_exclude=True):
    """Searches with flt to the last page and compares with the oracle.
    min_expected and must_exclude guard the seed data: the example must
    select something, and (unless it is meant to select everything) not
    everything."""
    now = datetime.now(UTC)
    want = expected(world.snapshot(), flt, end=now)
    assert len(want) >= min_expected, f"seed data gives only {len(want)} events for {flt}"
    start = flt.start_event_time if flt is not None else None
    if must_exclude:
        everything = expected(world.snapshot(), F(start_event_time=start, end_event_time=flt.end_event_time), end=now)
        assert len(want) < len(everything), f"seed data: {flt} selects every event of its time range"
    events, pages = search_all(client, flt, page_size)
    limit = 50 if page_size == 0 else min(page_size, 1000)
    for p in pages:
        assert len(p.events) <= limit, f"a page has {len(p.events)} events, page_size {page_size}"
    assert_results(world, events, want, flt, end=now)
    last = pages[-1]
    assert last.searched_until_time == (start or datetime(2025, 7, 1, tzinfo=UTC))
    return events


# --- Quick Start -----------------------------------------------------------------------


def test_quickstart_last_24_hours_for_principal(client, world):
    run(client, world, F(start_event_time=datetime.now(timezone.utc) - timedelta(days=1),
                         principal_exact="users/john.doe"), page_size=50)


def test_quickstart_last_hour(client, world):
    run(client, world, F(start_event_time=datetime.now(timezone.utc) - timedelta(hours=1)),
        page_size=100, must_exclude=False, min_expected=5)


def test_quickstart_action_regex_create(client, world):
    run(client, world, F(action_regex=".*CREATE$"), page_size=50)


def test_quickstart_workspace_exact(client, world):
    run(client, world, F(workspace_exact=f"workspaces/{W_DOC}"), page_size=50)


# --- Searching Events guide ----------------------------------------------------------


def test_guide_basic_principal(client, world):
    run(client, world, F(principal_exact="users/john.doe"), page_size=50)


def test_guide_time_range_last_24_hours(client, world):
    start_time = datetime.now(timezone.utc) - timedelta(days=1)
    end_time = datetime.now(timezone.utc)
    run(client, world, F(start_event_time=start_time, end_event_time=end_time), page_size=100,
        must_exclude=False, min_expected=10)


def test_guide_exact_match_filters_combined(client, world):
    run(client, world, F(principal_exact=ALICE, event_source_exact=EM, workspace_exact=f"workspaces/{W_B}"),
        page_size=50)


def test_guide_status_ok_or_invalid_argument(client, world):
    events = run(client, world, F(status_code_regex="^(0|3)$"), page_size=50)
    assert {e.status.code for e in events if e.status is not None} <= {0, 3}


def test_guide_status_absent(client, world):
    events = run(client, world, F(status_code_regex="^$"), page_size=50, min_expected=4)
    assert {e.event_source for e in events} >= {KEYCLOAK}


def test_guide_metadata_exact(client, world):
    run(client, world, F(metadata_exact={"region": "us-east-1"}), page_size=50)


def test_guide_metadata_exact_all_keys_must_match(client, world):
    run(client, world, F(metadata_exact={"engine_version": "1.10.7", "region": "ap-south-1"}), page_size=50)


def test_guide_metadata_regex(client, world):
    run(client, world, F(metadata_regex={"engine_version": r"^1\.10\."}), page_size=50)


def test_guide_metadata_regex_all_keys_must_match(client, world):
    run(client, world, F(metadata_regex={"engine_version": ".*1.*", "region": "^(us|eu)-"}), page_size=50)


def test_guide_include_types_system(client, world):
    run(client, world, F(include_types=[EventType.TYPE_SYSTEM]), page_size=50)


def test_guide_include_types_api_or_system(client, world):
    run(client, world, F(include_types=[EventType.TYPE_API, EventType.TYPE_SYSTEM]), page_size=50)


def test_guide_exclude_types_api(client, world):
    run(client, world, F(exclude_types=[EventType.TYPE_API]), page_size=50)


def test_guide_exclude_types_api_and_system(client, world):
    events = run(client, world, F(exclude_types=[EventType.TYPE_API, EventType.TYPE_SYSTEM]), page_size=50)
    assert {e.type for e in events} == {EventType.TYPE_UNSPECIFIED}


def test_guide_read_only_true(client, world):
    events = run(client, world, F(read_only=True), page_size=50)
    assert all(e.read_only is True for e in events)


def test_guide_read_only_false(client, world):
    events = run(client, world, F(read_only=False, start_event_time=world.seeded_at - timedelta(days=5)),
                 page_size=50)
    assert all(e.read_only is False for e in events)


def test_guide_default_search_no_filter(client, world):
    # event_client.search_events() with no filter: 2025-07-01 .. now, 50 per page.
    run(client, world, None, page_size=0, must_exclude=False, min_expected=40)


# --- the rules behind the examples ------------------------------------------------------


@pytest.mark.parametrize("name,flt", [
    ("event_source_exact", F(event_source_exact=KEYCLOAK)),
    ("event_source_regex", F(event_source_regex="^h2oai-(appstore|enginemanager)-")),
    ("resource_exact", F(resource_exact="rsrc1")),
    ("resource_regex_unanchored", F(resource_regex="daiEngines/engine-")),
    ("resource_regex_empty_value", F(resource_regex="^$")),
    ("principal_regex_unanchored", F(principal_regex="john")),
    ("source_ip_exact_private", F(source_ip_address_exact="private")),
    ("source_ip_regex", F(source_ip_address_regex=r"^(203\.0\.113\.|2001:db8:)")),
    ("workspace_regex", F(workspace_regex=f"{W_DOC[:8]}|{W_B[:8]}")),
    ("workspace_regex_empty_value", F(workspace_regex="^$")),
    ("workspace_override", F(workspace_exact="workspaces/5c2e6a77-1f0e-4b7a-9e3d-0a4b1c2d3e4f")),
    ("workspace_relative_resource", F(workspace_exact="workspaces/w1")),
    ("workspace_service_named_workspaces", F(workspace_exact="workspaces/w9")),
    ("action_exact", F(action_exact="actions/enginemanager/daiEngines/DELETE")),
    ("action_regex_get", F(action_regex="/GET$")),
    ("status_code_regex_errors", F(status_code_regex="^(5|7|13)$")),
    ("exact_and_regex_together", F(principal_exact=JOHN, principal_regex="^users/")),
    ("and_of_many", F(event_source_exact=EM, read_only=False, status_code_regex="^0$",
                      include_types=[EventType.TYPE_API])),
    ("include_and_exclude", F(include_types=[EventType.TYPE_API, EventType.TYPE_SYSTEM],
                              exclude_types=[EventType.TYPE_SYSTEM])),
])
def test_filter_field(client, world, name, flt):
    run(client, world, flt, page_size=50)


def test_empty_strings_do_not_filter(client, world):
    start = world.seeded_at - timedelta(days=5)
    blank = F(start_event_time=start, event_source_exact="", event_source_regex="", resource_exact="",
              resource_regex="", status_code_regex="", principal_exact="", principal_regex="",
              source_ip_address_exact="", source_ip_address_regex="", workspace_exact="", workspace_regex="",
              action_exact="", action_regex="", metadata_exact={}, metadata_regex={},
              include_types=[], exclude_types=[])
    run(client, world, blank, page_size=100, must_exclude=False, min_expected=40)


def test_filter_times_with_offsets(client, world):
    # The client sends aware datetimes with their own offset (isoformat()).
    ist = timezone(timedelta(hours=5, minutes=30))
    pdt = timezone(timedelta(hours=-7))
    start = (world.seeded_at - timedelta(days=2)).astimezone(ist)
    end = (world.seeded_at - timedelta(hours=3)).astimezone(pdt)
    run(client, world, F(start_event_time=start, end_event_time=end), page_size=100, must_exclude=False)


def test_time_bounds_start_inclusive_end_exclusive(client, world):
    r = sorted(world.base, key=lambda s: s.event_time)[len(world.base) // 2]
    t = r.event_time
    hit = run(client, world, F(start_event_time=t, end_event_time=t + timedelta(microseconds=1)), page_size=10,
              must_exclude=False)
    assert f"events/{r.event_id}" in [e.name for e in hit]
    miss = client.search_events(filter_=F(start_event_time=t - timedelta(seconds=1), end_event_time=t),
                                page_size=1000)
    assert f"events/{r.event_id}" not in [e.name for e in miss.events]
