"""What our client adds to the H2O client's API: iter_events(), retries with
backoff on 429 and 503 honouring Retry-After, timeouts, a readable repr."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Tuple

import pytest
from _oracle import SELF_AUDIT_SOURCE, assert_events, expected
from _seed import BULK

import h2o_audit_trail
from h2o_audit_trail import _http
from h2o_audit_trail.connection_config import ConnectionConfig
from h2o_audit_trail.event.client import EventClient
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.event_type import EventType
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.exception import CustomApiException, TimeoutException
from h2o_audit_trail.model.status import Status

UTC = timezone.utc
EMPTY_PAGE = {"events": [], "nextPageToken": "", "searchedUntilTime": "2025-07-01T00:00:00Z"}


# --- iter_events against the real server ----------------------------------------------------


def test_iter_events_follows_pages(server, world):
    client = h2o_audit_trail.login(endpoint=server.public, token=server.reader_token).event_client
    flt = F(event_source_exact=BULK, metadata_exact={"batch": "1"})
    want = expected(world, flt, end=datetime.now(UTC))
    assert len(want) == 100
    assert_events(list(client.iter_events(flt, page_size=7)), want)


def test_iter_events_is_lazy(server, world):
    client = h2o_audit_trail.login(endpoint=server.public, token=server.reader_token).event_client
    end = datetime.now(UTC)
    it = client.iter_events(F(end_event_time=end), page_size=3)
    assert iter(it) is it  # a generator: nothing is fetched before the first next()
    first = []
    for e in it:  # a few pages: the server's audit events of searches come first
        if e.event_source != SELF_AUDIT_SOURCE:
            first.append(e)
            if len(first) == 4:
                break
    want = expected(world, F(end_event_time=end), end=end)
    assert [e.name for e in first] == [r.name for r in want[:4]]


@pytest.mark.parametrize("page_size", [1001, 2**31, 2**40])
def test_page_size_above_the_maximum_means_the_maximum(server, world, page_size):
    # "values above 1000 will be coerced to 1000", however large: the wire's
    # page_size is an int32, which the server cannot decode past 2**31 - 1.
    client = h2o_audit_trail.login(endpoint=server.public, token=server.reader_token).event_client
    flt = F(event_source_exact=BULK)
    want = expected(world, flt, end=datetime.now(UTC))
    assert len(want) > 100
    assert_events(client.search_events(filter_=flt, page_size=page_size).events, want[:1000])
    assert_events(list(client.iter_events(flt, page_size=page_size)), want)


# --- a scripted server for retries and timeouts ----------------------------------------------


class Scripted:
    """Answers each request with the next scripted (status, headers, body,
    delay) and records when requests arrived."""

    def __init__(self, script: List[Tuple[int, dict, object, float]]) -> None:
        self.script = list(script)
        self.arrivals: List[float] = []
        self.headers: List[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._answer()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self):
                outer.arrivals.append(time.monotonic())
                outer.headers.append(dict(self.headers))
                status, headers, body, delay = outer.script.pop(0) if outer.script else (200, {}, EMPTY_PAGE, 0)
                time.sleep(delay)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def client(self, **kw) -> EventClient:
        return EventClient(ConnectionConfig(self.url, lambda: "tok"), **kw)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(*script):
        s = Scripted(list(script))
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


UNAVAILABLE = {"code": 14, "message": "try later", "details": []}
EXHAUSTED = {"code": 8, "message": "slow down", "details": []}


def test_retry_after_seconds_is_honoured(scripted):
    s = scripted((503, {"Retry-After": "1"}, UNAVAILABLE, 0), (200, {}, EMPTY_PAGE, 0))
    resp = s.client().search_events()
    assert resp.events == [] and resp.next_page_token == ""
    assert len(s.arrivals) == 2
    assert s.arrivals[1] - s.arrivals[0] >= 0.95
    assert all(h["Authorization"] == "Bearer tok" for h in s.headers)


def test_retry_after_http_date_is_honoured(scripted):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    s = scripted((429, {"Retry-After": when}, EXHAUSTED, 0), (200, {}, EMPTY_PAGE, 0))
    s.client().search_events()
    assert len(s.arrivals) == 2
    assert s.arrivals[1] - s.arrivals[0] >= 0.9  # the date has a resolution of one second


def test_exponential_backoff_without_retry_after(scripted):
    s = scripted((503, {}, UNAVAILABLE, 0), (429, {}, EXHAUSTED, 0), (200, {}, EMPTY_PAGE, 0))
    s.client(max_retries=2).search_events()
    waits = [b - a for a, b in zip(s.arrivals, s.arrivals[1:])]
    assert len(waits) == 2
    assert 0.24 <= waits[0] <= 0.9  # 0.5 s with jitter (x0.5 .. x1)
    assert 0.49 <= waits[1] <= 1.4  # 1 s with jitter


def test_gives_up_after_max_retries(scripted):
    s = scripted(*[(429, {"Retry-After": "0"}, EXHAUSTED, 0)] * 5)
    with pytest.raises(CustomApiException) as exc:
        s.client(max_retries=2).search_events()
    assert exc.value.status == 429
    assert str(exc.value) == "429 (Too Many Requests): slow down"
    assert exc.value.headers["Retry-After"] == "0"
    assert len(s.arrivals) == 3


def test_too_long_retry_after_is_not_waited_for(scripted):
    s = scripted((503, {"Retry-After": "3600"}, UNAVAILABLE, 0))
    started = time.monotonic()
    with pytest.raises(CustomApiException) as exc:
        s.client().search_events()
    assert exc.value.status == 503
    assert time.monotonic() - started < 2
    assert len(s.arrivals) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 405, 500, 504])
def test_other_errors_are_not_retried(scripted, status):
    s = scripted((status, {"Retry-After": "0"}, {"code": 2, "message": "no", "details": []}, 0))
    with pytest.raises(CustomApiException) as exc:
        s.client().search_events()
    assert exc.value.status == status
    assert len(s.arrivals) == 1


def test_create_is_retried_too(scripted):
    created = {"event": {"name": "events/x", "eventTime": "2026-01-01T00:00:00Z", "type": "TYPE_API"}}
    s = scripted((503, {"Retry-After": "0"}, UNAVAILABLE, 0), (200, {}, created, 0))
    e = s.client().create_event("x", Event(datetime.now(UTC), "s", "a", False, Status(0), "users/u", "8.8.8.8"))
    assert e.name == "events/x" and len(s.arrivals) == 2


def test_timeout(scripted):
    s = scripted((200, {}, EMPTY_PAGE, 3))
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        s.client(timeout=0.5).search_events()
    assert time.monotonic() - started < 2.5


def test_login_passes_timeout_and_retries(scripted):
    s = scripted((200, {}, {"version": "x"}, 0), (503, {"Retry-After": "0"}, UNAVAILABLE, 0),
                 (200, {}, EMPTY_PAGE, 0))
    client = h2o_audit_trail.login(endpoint=s.url, token="tok", timeout=5, max_retries=1).event_client
    client.search_events()
    assert len(s.arrivals) == 3
    with pytest.raises(ValueError):
        h2o_audit_trail.login(endpoint=s.url, token="tok", max_retries=-1)


def test_retry_after_parsing():
    from email.message import Message

    def h(value):
        m = Message()
        m["Retry-After"] = value
        return m

    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert _http.retry_after_seconds(h("7")) == 7
    assert _http.retry_after_seconds(h("Wed, 25 Nov 2026 12:00:30 GMT"), now) == 30
    assert _http.retry_after_seconds(h("Wed, 25 Nov 2026 11:00:00 GMT"), now) == 0
    assert _http.retry_after_seconds(h("soon")) is None
    assert _http.retry_after_seconds(Message()) is None


# --- repr -------------------------------------------------------------------------------------


def test_event_repr_is_readable(server, world):
    client = h2o_audit_trail.login(endpoint=server.public, token=server.reader_token).event_client
    e = client.search_events(F(event_source_exact=BULK), page_size=1).events[0]
    text = repr(e)
    assert text.startswith(f"Event(name='{e.name}', event_time=20")
    assert "datetime.datetime" not in text
    assert "receive_time=20" in text and "Z," in text
    assert "status=Status(code=0)" in text
    assert "type=TYPE_SYSTEM" in text
    assert "user_agent" not in text  # empty fields are left out
    assert str(e) == text

    local = Event(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))), "src", "act", True,
                  Status(3, "bad"), "users/u", "8.8.8.8", workspace_override="", type=EventType.TYPE_UNSPECIFIED)
    assert repr(local) == ("Event(event_time=2026-01-02T01:04:05Z, event_source='src', action='act', read_only=True, "
                           "status=Status(code=3, message='bad'), principal='users/u', source_ip_address='8.8.8.8', "
                           "type=TYPE_UNSPECIFIED, workspace_override='')")


def test_clients_repr(server):
    clients = h2o_audit_trail.login(endpoint=server.public, token=server.reader_token)
    assert repr(clients) == f"Clients(event_client=EventClient(audit_trail_url='{server.public}'))"
