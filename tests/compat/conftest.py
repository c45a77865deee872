"""Session fixtures of the compatibility suite: one audittrail server for the
whole session, the seeded events and the model of what the server holds.

The suite builds nothing. It runs the binary named by $AUDITTRAIL_BIN
(default: bin/audittrail under the repository root; `make python-test` builds
it with `go build -o bin/audittrail ./cmd/audittrail`), on the embedded store,
or on the PostgreSQL database whose URL is $AUDITTRAIL_TEST_STORE (`make
python-test` runs the suite a second time so, through
internal/pgcluster/cmd/withpostgres, which makes a throwaway cluster).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compat_helpers import describe, post, standalone_client  # noqa: E402
from compat_model import UTC, World, stored_record  # noqa: E402
from compat_seed import base_seeds, bulk_seeds  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60  # seconds until /readyz must answer 200
STOP_TIMEOUT = 20  # seconds between SIGTERM and SIGKILL
# A postgres:// URL of an empty database: the server runs on the PostgreSQL
# store there instead of the embedded one.
STORE = os.environ.get("AUDITTRAIL_TEST_STORE", "")


def pytest_report_header(config):
    return "audittrail store: " + ("PostgreSQL (AUDITTRAIL_TEST_STORE)" if STORE else "embedded")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    public: str  # http://127.0.0.1:<port>, no trailing slash
    internal: str
    reader_token: str
    producer_token: str
    data_dir: Path
    log_path: Path

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError as e:
            return f"(no log: {e})"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    binary = Path(os.environ.get("AUDITTRAIL_BIN", REPO_ROOT / "bin" / "audittrail"))
    if not binary.is_absolute():
        binary = REPO_ROOT / binary
    if not os.access(binary, os.X_OK):
        pytest.fail(
            f"audittrail binary not found at {binary}: build it with "
            f"`go build -o bin/audittrail ./cmd/audittrail` (or `make build`), or set AUDITTRAIL_BIN",
            pytrace=False,
        )
    base = tmp_path_factory.mktemp("audittrail")
    data_dir = base / "data"
    data_dir.mkdir()
    log_path = base / "server.log"
    public_port, internal_port = _free_port(), _free_port()
    while internal_port == public_port:
        internal_port = _free_port()
    srv = Server(
        public=f"http://127.0.0.1:{public_port}",
        internal=f"http://127.0.0.1:{internal_port}",
        reader_token=secrets.token_urlsafe(32),
        producer_token=secrets.token_urlsafe(32),
        data_dir=data_dir,
        log_path=log_path,
    )
    cmd = [
        str(binary), "serve",
        "--data-dir", str(data_dir),
        "--public-addr", f"127.0.0.1:{public_port}",
        "--internal-addr", f"127.0.0.1:{internal_port}",
        "--reader-token", srv.reader_token,
        "--producer-token", srv.producer_token,
    ]
    if STORE:
        cmd += ["--store", STORE]
    # The flags are authoritative; keep a developer's AUDITTRAIL_* settings
    # (tokens, addresses, data dir) out of the test server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITTRAIL_")}
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=base)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no answer"
        while True:
            if proc.poll() is not None:
                pytest.fail(f"audittrail serve exited with {proc.returncode} before it was ready; "
                            f"command: {cmd}\nlog:\n{srv.log_tail()}", pytrace=False)
            try:
                r = requests.get(srv.public + "/readyz", timeout=2)
                if r.status_code == 200:
                    break
                last = f"{r.status_code} {r.text[:200]!r}"
            except requests.RequestException as e:
                last = repr(e)
            if time.monotonic() > deadline:
                pytest.fail(f"GET {srv.public}/readyz did not answer 200 within {STARTUP_TIMEOUT}s "
                            f"(last: {last})\nlog:\n{srv.log_tail()}", pytrace=False)
            time.sleep(0.1)
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        # A server built with `go build -race` (`make race`) reports a data
        # race on stderr when it sees one; the report fails the session.
        races = log_path.read_text(errors="replace").count("WARNING: DATA RACE")
        if races:
            pytest.fail(f"audittrail serve reported {races} data race(s): see {log_path}", pytrace=False)


def create_batch(srv: Server, world: World, seeds) -> list:
    """Creates seeds through the internal listener's REST batchCreate with the
    producer token, checks the answer and records the events in world."""
    body = {"requests": [{"eventId": s.event_id, "event": s.body} for s in seeds]}
    resp = post(srv.internal, "/v1/events:batchCreate", srv.producer_token, body)
    assert resp.status_code == 200, describe(resp)
    out = resp.json()
    assert out.get("failedRequests") == {}, f"seeding failed: {describe(resp)}"
    got = [e["name"] for e in out["events"]]
    assert got == [f"events/{s.event_id}" for s in seeds], "batchCreate must return the events in request order"
    for s in seeds:
        world.add(stored_record(s.event_id, s.event_time, s.body))
    return out["events"]


@pytest.fixture(scope="session")
def world(server) -> World:
    """The seeded events, and every event a test adds later."""
    w = World()
    w.seeded_at = datetime.now(UTC)
    batches = base_seeds(w.seeded_at)
    w.base = []
    for batch in batches:
        create_batch(server, w, batch)
        w.base.extend(batch)
    return w


@pytest.fixture(scope="session")
def bulk(server, world):
    """1005 more events (20 days ago), for the page size limits."""
    seeds = bulk_seeds(datetime.now(UTC), 1005)
    create_batch(server, world, seeds[:1000])
    create_batch(server, world, seeds[1000:])
    return seeds


@pytest.fixture(scope="session")
def client(server, world):
    """The official client against the public listener, reader token."""
    return standalone_client(server.public, server.reader_token)


@pytest.fixture(scope="session")
def producer_client(server, world):
    """The official client against the internal listener, producer token."""
    return standalone_client(server.internal, server.producer_token)


@pytest.fixture(autouse=True)
def _server_log_on_failure(request, server):
    """Appends the server log tail to a failing test's report."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        request.node.add_report_section("call", "audittrail server log (tail)", server.log_tail())


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
