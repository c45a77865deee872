"""Fixtures: the real audittrail server (binary from $AUDITTRAIL_BIN, default
bin/audittrail of the repository), seeded through its internal listener; the
official H2O client next to ours; an in-process OIDC issuer and discovery
service.

Tests that take the ``flavour`` fixture run twice: with our client and with
the official ``h2o-audit-trail`` 1.5.3 against the same server.

With $AUDITTRAIL_TEST_STORE set to the URL of an empty PostgreSQL database,
the session's server runs on the PostgreSQL store there, and so do the
servers the tests marked ``store`` start (each on a new database of the same
cluster, _server.store_args); only those tests and the session server's run
(the others check the client alone, or a transport); `make python-test` does
so through internal/pgcluster/cmd/withpostgres after the run on the embedded
store."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _official  # noqa: E402
import _server  # noqa: E402
from _idp import IdP  # noqa: E402
from _oracle import World  # noqa: E402
from _seed import base_seeds, bulk_seeds  # noqa: E402

import h2o_audit_trail  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO_ROOT / "python"
BULK_COUNT = 250
# A postgres:// URL of an empty database for the session's server (above).
STORE = os.environ.get("AUDITTRAIL_TEST_STORE", "")

if not hasattr(h2o_audit_trail, "COMPATIBLE_WITH"):
    raise RuntimeError(
        f"h2o_audit_trail resolves to {h2o_audit_trail.__file__}, which is not this project's client: the "
        "official h2o-audit-trail is installed in this environment over it. Install the official one apart "
        "(pip install --target DIR h2o-audit-trail==1.5.3, then H2O_AUDIT_TRAIL_OFFICIAL=DIR)."
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[_server.Server]:
    binary = _server.find_binary(REPO_ROOT)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"audittrail binary not found at {binary}: build it (go build -o bin/audittrail ./cmd/audittrail) "
                    "or set AUDITTRAIL_BIN", pytrace=False)
    srv = _server.start(binary, tmp_path_factory.mktemp("audittrail"), ["--store", STORE] if STORE else [])
    try:
        yield srv
    finally:
        _server.stop(srv)


def pytest_report_header(config):
    return "audittrail store: " + ("PostgreSQL (AUDITTRAIL_TEST_STORE)" if STORE else "embedded")


def on_store(item) -> bool:
    """Whether the test depends on the store: it uses the session's server,
    or starts servers of its own on the store under test (marker store)."""
    return "server" in getattr(item, "fixturenames", ()) or item.get_closest_marker("store") is not None


def pytest_collection_modifyitems(config, items):
    """On the PostgreSQL store, keeps the tests that depend on the store."""
    if not STORE:
        return
    kept = [i for i in items if on_store(i)]
    dropped = [i for i in items if not on_store(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def seed(srv: _server.Server, world: World, seeds: list) -> None:
    """Creates seeds in one batch through the internal listener (raw HTTP,
    producer token) and records them."""
    body = {"requests": [{"eventId": s.rec.event_id, "event": s.body} for s in seeds]}
    status, answer = _server.raw_post(srv.internal + "/v1/events:batchCreate", srv.producer_token, body)
    assert status == 200, f"seeding: {status} {answer}"
    assert answer["failedRequests"] == {}, f"seeding: {answer['failedRequests']}"
    assert [e["name"] for e in answer["events"]] == [s.rec.name for s in seeds]
    for s in seeds:
        world.add(s.rec)


@pytest.fixture(scope="session")
def world(server) -> World:
    """The seeded events, and every event a test creates later."""
    w = World()
    w.seeded_at = datetime.now(timezone.utc)
    seed(server, w, base_seeds(w.seeded_at))
    seed(server, w, bulk_seeds(w.seeded_at, BULK_COUNT))
    return w


@pytest.fixture(scope="session")
def official() -> _official.Official:
    if os.environ.get("AUDITTRAIL_PY_SKIP_OFFICIAL") == "1":
        pytest.skip("AUDITTRAIL_PY_SKIP_OFFICIAL=1: the runs with the official client are switched off")
    try:
        return _official.Official(_official.install_dir())
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


class Flavour:
    """One of the two clients: ours, or the official one."""

    def __init__(self, name: str, official: Any = None) -> None:
        self.name = name
        self._official = official

    def __repr__(self) -> str:
        return self.name

    def activate(self) -> Any:
        return self._official.activate() if self._official else contextlib.nullcontext()

    def module(self, name: str) -> Any:
        return self._official.module(name) if self._official else importlib.import_module(name)

    def standalone(self, url: str, token: str) -> Any:
        """An EventClient for a standalone server with a static token."""
        if self._official is None:
            return h2o_audit_trail.login(endpoint=url, token=token).event_client
        # As tests/compat builds it: what login_custom() does after its token
        # exchange (probe GET /version, then EventClient with a token provider).
        with urllib.request.urlopen(url + "/version", timeout=30) as resp:
            assert 200 <= resp.status <= 299
        cc = self.module("h2o_audit_trail.connection_config")
        client = self.module("h2o_audit_trail.event.client")
        config = cc.ConnectionConfig(audit_trail_url=url, token_provider=lambda: token)
        return client.EventClient(connection_config=config)


@pytest.fixture(scope="session", params=["ours", "official"])
def flavour(request) -> Flavour:
    if request.param == "ours":
        return Flavour("ours")
    return Flavour("official", request.getfixturevalue("official"))


@pytest.fixture(scope="session")
def _idp(server) -> Iterator[IdP]:
    idp = IdP(server.public, server.reader_token)
    yield idp
    idp.close()


@pytest.fixture
def idp(_idp) -> IdP:
    """The in-process issuer and discovery service, reset for each test."""
    _idp.reset()
    return _idp


@pytest.fixture
def cloud_env(monkeypatch, tmp_path, idp) -> IdP:
    """Environment variables as on a machine configured for the in-process
    H2O AI Cloud environment (no CLI configuration file)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("H2OCONFIG", "H2O_CLOUD_DISCOVERY", "H2O_CLOUD_TOKEN_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("H2O_CLOUD_ENVIRONMENT", idp.base)
    monkeypatch.setenv("H2O_CLOUD_CLIENT_PLATFORM_TOKEN", idp.platform_token)
    return idp


@pytest.fixture(autouse=True)
def _server_log_on_failure(request):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        request.node.add_report_section("call", "audittrail server log (tail)", srv.log_tail())


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
