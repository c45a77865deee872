"""Retention against the real server binary: a server holding old and recent
events restarts with --retention 30d. Both clients (ours and the published
one) then search as before and get only the recent events, whatever time
range they ask for; the pass that deleted the old ones is a self-audit event
an auditor can find; a create of an old event is 400 with a google.rpc.Status
saying why; a verified window across the deleted events fails unless
allow_deleted, which proves their leaf hashes in their place."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import _server
import pytest
from conftest import REPO_ROOT, STORE

import h2o_audit_trail
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.verify import VerificationError, Verifier

UTC = timezone.utc
SOURCE = "retention-tests"
pytestmark = pytest.mark.store


def create(srv, at: datetime, n: int, resource: str):
    reqs = [{"eventId": str(uuid.uuid4()), "event": {
        "eventTime": (at + timedelta(seconds=i)).isoformat(), "eventSource": SOURCE,
        "action": "actions/test/things/CREATE", "principal": "users/alice", "sourceIpAddress": "203.0.113.9",
        "resource": resource, "userAgent": "pytest"}} for i in range(n)]
    return _server.raw_post(srv.internal + "/v1/events:batchCreate", srv.producer_token, {"requests": reqs})


def covering_checkpoint(client, key, size: int):
    deadline = time.monotonic() + 15
    while True:
        cp = client.get_checkpoint(key)
        if cp.size >= size:
            return cp
        assert time.monotonic() < deadline, f"no checkpoint of {size} leaves"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def retained(tmp_path_factory):
    """A server restarted with --retention 30d after 20 old and 5 recent
    events; yields it with the checkpoint signed before the old events."""
    binary = _server.find_binary(REPO_ROOT)
    base = tmp_path_factory.mktemp("audittrail-retention")
    store = _server.store_args()
    srv = _server.start(binary, base / "before", store)
    data = srv.data_dir
    key = Verifier.from_key((data / "log-verification.key").read_text())
    try:
        client = h2o_audit_trail.login(endpoint=srv.public, token=srv.reader_token).event_client
        status, answer = create(srv, datetime.now(UTC) - timedelta(hours=2), 1, "retention/first")
        assert status == 200 and answer["failedRequests"] == {}, answer
        first = covering_checkpoint(client, key, 1)
        for at, n, res in ((datetime.now(UTC) - timedelta(days=400), 20, "retention/old"),
                           (datetime.now(UTC) - timedelta(hours=1), 5, "retention/recent")):
            status, answer = create(srv, at, n, res)
            assert status == 200 and answer["failedRequests"] == {}, answer
        covering_checkpoint(client, key, first.size + 25)
    finally:
        _server.stop(srv)
    srv = _server.start(binary, base / "after", ["--data-dir", str(data), "--retention", "30d", *store])
    try:
        yield srv, key, first
    finally:
        _server.stop(srv)


def test_searches_show_only_what_is_kept(flavour, retained):
    srv, _, _ = retained
    client = flavour.standalone(srv.public, srv.reader_token)
    F_ = flavour.module("h2o_audit_trail.event.search").SearchEventsRequestFilter
    with flavour.activate():
        page = client.search_events(filter_=F_(event_source_exact=SOURCE,
                                               start_event_time=datetime.now(UTC) - timedelta(days=500)),
                                    page_size=100)
    assert sorted(e.resource for e in page.events) == ["retention/first"] + ["retention/recent"] * 5


def test_the_deletion_is_audited(retained):
    srv, _, _ = retained
    client = h2o_audit_trail.login(endpoint=srv.public, token=srv.reader_token).event_client
    deadline = time.monotonic() + 15
    while True:
        page = client.search_events(filter_=F(action_exact="actions/audittrail/events/DELETE"), page_size=10)
        if page.events or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(page.events) == 1, page.events
    e = page.events[0]
    assert e.principal == "services/audittrail-retention"
    # The old events' resource was theirs alone: the embedded store erased
    # it (PostgreSQL keeps no dictionary of values to erase).
    want = {"deleted": "20", "kept": "0"} if STORE else {"deleted": "20", "kept": "0", "erased_values": "1"}
    assert e.metadata == want
    assert e.request_parameters["retention"] == "720h0m0s"
    assert e.status.code == 0


def test_an_old_event_is_refused_with_the_reason(retained):
    srv, _, _ = retained
    status, answer = create(srv, datetime.now(UTC) - timedelta(days=31), 1, "retention/late")
    assert status == 200, answer
    failed = answer["failedRequests"]["0"]
    assert failed["code"] == 3, failed
    assert "before the retention cutoff" in failed["message"]
    status, answer = create(srv, datetime.now(UTC) - timedelta(days=29), 1, "retention/in-time")
    assert status == 200 and answer["failedRequests"] == {}, answer


def test_window_across_deleted_events(retained):
    srv, key, first = retained
    client = h2o_audit_trail.login(endpoint=srv.public, token=srv.reader_token).event_client
    latest = client.get_checkpoint(key)
    with pytest.raises(VerificationError):
        list(client.iter_window(first, latest, key))
    entries = list(client.iter_window(first, latest, key, allow_deleted=True))
    assert len(entries) == latest.size - first.size
    deleted = [x for x in entries if "deletedLeafHash" in x]
    assert len(deleted) == 20
    # The deleted leaves are the 20 right after the first event, in their
    # places; the recent events follow.
    assert all("deletedLeafHash" in x for x in entries[:20])
    assert [x["resource"] for x in entries[20:25]] == ["retention/recent"] * 5
