"""EventClient.follow, the Python `audittrail tail`, against the real server:
a new state starts at the latest checkpoint; each round yields exactly the
leaves between the state's checkpoints before and after it (the events
created, and the self-audit events of the follower's own reads), none
twice; a consumer stopping mid-round gets the round again (at least once);
from_start yields the whole log in leaf order; the Go `audittrail tail` and
follow take over each other's state file and lock; a tampered state is
refused and left as it was; a witness or a replica behind is waited for, a
transient error retried, a fork refused. The server is this module's own
(its events would disturb the oracle of the other tests)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import struct
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List

import _server
import pytest
from _logkeys import checkpoint_text, new_key, sign_note
from conftest import REPO_ROOT

import h2o_audit_trail
from h2o_audit_trail import _ed25519
from h2o_audit_trail.exception import CustomApiException
from h2o_audit_trail.tail import StateLockedError, read_state
from h2o_audit_trail.verify import (
    EMPTY_ROOT,
    VerificationError,
    Verifier,
    WitnessPolicy,
    empty_checkpoint,
    open_checkpoint,
)

UTC = timezone.utc
SELF_AUDIT = "actions/audittrail/logEntries/LIST"  # the record of a read of the log's entries
pytestmark = pytest.mark.store


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = _server.start(_server.find_binary(REPO_ROOT), tmp_path_factory.mktemp("audittrail-tail"), _server.store_args())
    try:
        yield s
    finally:
        _server.stop(s)


@pytest.fixture(scope="module")
def keyfile(srv) -> Path:
    return srv.data_dir / "log-verification.key"


@pytest.fixture(scope="module")
def key(keyfile) -> Verifier:
    return Verifier.from_key(keyfile.read_text())


@pytest.fixture(scope="module")
def client(srv):
    return h2o_audit_trail.login(endpoint=srv.public, token=srv.reader_token).event_client


def create(srv, n: int, tag: str) -> List[str]:
    base = datetime.now(UTC) - timedelta(minutes=1)
    reqs = [{"eventId": str(uuid.uuid4()), "event": {
        "eventTime": (base + timedelta(microseconds=i)).isoformat(), "eventSource": "tail-tests",
        "action": f"actions/tail/{tag}", "principal": "users/tail", "sourceIpAddress": "203.0.113.9",
        "resource": f"//tail/{tag}/{i}", "userAgent": "pytest"}} for i in range(n)]
    status, answer = _server.raw_post(srv.internal + "/v1/events:batchCreate", srv.producer_token, {"requests": reqs})
    assert status == 200 and answer["failedRequests"] == {}, answer
    return [e["name"] for e in answer["events"]]


def wait_signed(client, key) -> int:
    """Waits until the latest checkpoint covers every committed event (as
    the Go test does: the read of the committed size is itself recorded);
    returns its size."""
    deadline = time.monotonic() + 20
    while True:
        committed = client.get_log_page(1 << 40, 1).committed_size
        try:
            cp = client.get_checkpoint(key)
            if cp.size >= committed:
                return cp.size
        except CustomApiException:  # none signed yet
            pass
        assert time.monotonic() < deadline, f"no checkpoint covers the {committed} committed events"
        time.sleep(0.05)


def size_of(state: Path, key: Verifier) -> int:
    cp = read_state(state, key)
    assert cp is not None
    return cp.size


def names(events) -> List[str]:
    events = list(events)
    assert all(isinstance(e, dict) and e.get("name", "").startswith("events/") for e in events), events
    return [e["name"] for e in events]


class Rounds:
    """Runs rounds on one state file, checking each the way the Go test
    does: it yields exactly the leaves between the state's checkpoint before
    and after it, each event for the first time."""

    def __init__(self, client, key, state: Path):
        self.client, self.key, self.state = client, key, state
        self.seen: set = set()

    def before(self) -> int:
        return size_of(self.state, self.key) if self.state.exists() else 0

    def check(self, got: List[str], before: int) -> List[str]:
        after = size_of(self.state, self.key)
        assert len(got) == after - before, f"a round from size {before} to {after} yielded {len(got)} events"
        assert len(set(got)) == len(got) and not self.seen & set(got), "an event yielded twice"
        self.seen |= set(got)
        return got

    def once(self, **kw) -> List[str]:
        before = self.before()
        return self.check(names(self.client.follow(self.key, self.state, once=True, **kw)), before)


def go_tail(srv, keyfile: Path, state: Path, *args: str) -> subprocess.CompletedProcess:
    host = srv.public[len("http://"):]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITTRAIL_")}
    return subprocess.run([str(_server.find_binary(REPO_ROOT)), "tail", "--addr", host, "--token", srv.reader_token,
                           "--log-key", str(keyfile), "--state", str(state), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def go_names(out: str) -> List[str]:
    return [json.loads(line)["name"] for line in out.splitlines()]


def test_follow_rounds(srv, client, key, tmp_path):
    state = tmp_path / "state"
    r = Rounds(client, key, state)
    create(srv, 3, "before")
    latest = wait_signed(client, key)

    # A new state starts at the latest checkpoint: nothing old is yielded.
    assert list(client.follow(key, state, once=True)) == []
    assert size_of(state, key) >= latest and open_checkpoint(state.read_text(), key).size == size_of(state, key)
    assert not (tmp_path / "state.lock").read_bytes()  # the lock file, empty, left in place (as Go's)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "state.lock"]  # no temporary file left

    # Events created later are yielded, in the order created; the rest are
    # the self-audit records of reads (wait_signed's, and the rounds' own).
    first = create(srv, 20, "first")
    wait_signed(client, key)
    got = r.once()
    assert [n for n in got if n in first] == first
    second = create(srv, 15, "second")
    wait_signed(client, key)
    got2 = r.once()
    assert [n for n in got2 if n in second] == second
    events = {e["name"]: e for e in client.iter_window(empty_checkpoint(key.name), client.get_checkpoint(key), key)}
    assert all(events[n]["action"] == SELF_AUDIT for n in got + got2 if n not in first + second)

    # Nothing created: the round yields the record of the last round's read.
    wait_signed(client, key)
    got3 = r.once()
    assert got3 and all(events.get(n, {"action": SELF_AUDIT})["action"] == SELF_AUDIT for n in got3)

    # A consumer that stops mid-round: the state is left as it was, the
    # lock released, and the next follower yields the round again.
    third = create(srv, 12, "third")
    wait_signed(client, key)
    before, text = r.before(), state.read_bytes()
    it = client.follow(key, state, once=True)
    partial = [next(it)["name"] for _ in range(5)]
    it.close()
    assert state.read_bytes() == text
    again = names(client.follow(key, state, once=True))
    assert again[:5] == partial
    r.check(again, before)
    assert [n for n in again if n in third] == third

    # Following until stopped: what arrives is yielded, round after round.
    stop = threading.Event()
    deadline = time.monotonic() + 30
    batches = [create(srv, 10, "fourth")]
    before = r.before()
    got = []
    for event in client.follow(key, state, interval=0.1, stop=lambda: stop.is_set() or time.monotonic() > deadline):
        got.append(event["name"])
        if event["name"] == batches[-1][-1]:
            if len(batches) == 2:
                stop.set()
            else:
                batches.append(create(srv, 10, "fifth"))
    assert stop.is_set(), f"the follower did not yield the new events: {got}"
    r.check(got, before)
    for batch in batches:
        assert [n for n in got if n in batch] == batch

    # A stop already set: no round at all.
    text = state.read_bytes()
    ev = threading.Event()
    ev.set()
    assert list(client.follow(key, state, stop=ev)) == [] and state.read_bytes() == text


def test_from_start(srv, client, key, tmp_path):
    create(srv, 5, "from-start")
    wait_signed(client, key)
    state = tmp_path / "state"
    got = names(client.follow(key, state, from_start=True, once=True))
    size = size_of(state, key)
    assert len(got) == size
    log, start = [], 0
    while start < size:
        page, _ = client.get_log_entries(start, min(1000, size - start))
        log += page
        start += len(page)
    assert got == names(log[:size])  # the whole log, in leaf (seq) order


def test_state_files_shared_with_the_go_tail(srv, client, key, keyfile, tmp_path):
    """A Go `audittrail tail --once` goes on from the state follow wrote,
    and follow from the one Go wrote, with no gap and no repeat; each
    refuses to run while the other holds the state's lock."""
    state = tmp_path / "state"
    r = Rounds(client, key, state)
    assert list(client.follow(key, state, once=True)) == []  # Python starts the state
    made = create(srv, 8, "go")
    wait_signed(client, key)
    before = r.before()
    out = go_tail(srv, keyfile, state, "--once")
    assert out.returncode == 0, out.stderr
    got = r.check(go_names(out.stdout), before)
    assert [n for n in got if n in made] == made
    made = create(srv, 8, "py")
    wait_signed(client, key)
    got = r.once()
    assert [n for n in got if n in made] == made

    # Go starts a state with --from-start; Python goes on from it.
    go_state = tmp_path / "go-state"
    out = go_tail(srv, keyfile, go_state, "--once", "--from-start")
    assert out.returncode == 0, out.stderr
    assert len(go_names(out.stdout)) == size_of(go_state, key)
    made = create(srv, 4, "after-go")
    wait_signed(client, key)
    before = size_of(go_state, key)
    got = names(client.follow(key, go_state, once=True))
    assert len(got) == size_of(go_state, key) - before and [n for n in got if n in made] == made

    # A Python follower mid-round holds the lock: the Go tail refuses.
    create(srv, 3, "locked")
    wait_signed(client, key)
    text = state.read_bytes()
    it = client.follow(key, state, once=True)
    next(it)
    out = go_tail(srv, keyfile, state, "--once")
    assert out.returncode == 1 and "another tail is running" in out.stderr, out.stderr
    it.close()
    assert state.read_bytes() == text

    # A running Go tail holds it: follow refuses.
    create(srv, 2, "go-running")
    wait_signed(client, key)
    proc = subprocess.Popen([str(_server.find_binary(REPO_ROOT)), "tail", "--addr", srv.public[len("http://"):],
                             "--token", srv.reader_token, "--log-key", str(keyfile), "--state", str(go_state),
                             "--interval", "100ms"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline()  # it printed: it holds the lock
        with pytest.raises(StateLockedError, match="another follower"):
            list(client.follow(key, go_state, once=True))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_second_follower(srv, client, key, tmp_path):
    state = tmp_path / "state"
    first = client.follow(key, state, from_start=True, once=True)
    next(first)  # mid-round: holds the lock
    with pytest.raises(StateLockedError, match=r"state\.lock: another follower"):
        next(client.follow(key, state, from_start=True, once=True))
    assert not state.exists()
    first.close()
    assert names(client.follow(key, state, from_start=True, once=True))  # free again


def test_tampered_state(srv, client, key, keyfile, tmp_path):
    state = tmp_path / "state"
    assert names(client.follow(key, state, once=True)) == []
    good = state.read_text()
    text, sigs = good.split("\n\n", 1)
    lines = text.split("\n")

    def other_root() -> str:
        root = bytearray(base64.b64decode(lines[2]))
        root[0] ^= 1
        return "\n".join(lines[:2] + [base64.b64encode(bytes(root)).decode()] + lines[3:]) + "\n\n" + sigs

    def bad_signature() -> str:
        name, b64 = sigs.rstrip("\n").split(" ")[1:]
        sig = bytearray(base64.b64decode(b64))
        sig[-1] ^= 1
        return text + "\n\n\u2014 " + name + " " + base64.b64encode(bytes(sig)).decode() + "\n"

    def other_key() -> str:  # another key with the log's name
        skey, _ = new_key(key.name)
        return sign_note(text + "\n", skey)

    for tamper in (other_root, bad_signature, other_key):
        forged = tamper()
        state.write_text(forged)
        with pytest.raises(VerificationError, match="state file's checkpoint does not verify"):
            list(client.follow(key, state, once=True))
        assert state.read_text() == forged, tamper.__name__
        out = go_tail(srv, keyfile, state, "--once")  # the Go tail refuses it too
        assert out.returncode == 1 and "verification failed" in out.stderr and out.stdout == "", out.stderr
        assert state.read_text() == forged
    state.write_text(good)
    list(client.follow(key, state, once=True))  # the lock was released each time


def test_waiting_and_retrying(srv, client, key, tmp_path, caplog, monkeypatch):
    """A latest checkpoint not cosigned as the policy requires, or behind
    the state's, is waited for (the state kept, no error); a connection
    error is retried at the next round (raised with once=True); a fork is
    refused."""
    caplog.set_level(logging.WARNING, logger="h2o_audit_trail.tail")
    state = tmp_path / "state"
    list(client.follow(key, state, once=True))
    old_note = state.read_text()
    create(srv, 3, "waiting")
    wait_signed(client, key)
    list(client.follow(key, state, once=True))
    text = state.read_bytes()
    assert size_of(state, key) > open_checkpoint(old_note, key).size

    # A witness policy the server's checkpoints do not meet: the state,
    # saved without it, still opens; the latest is waited for.
    seed = os.urandom(32)
    wkey = b"\x04" + _ed25519.public_key(seed)
    wname = "witness.test/absent"
    whash = struct.unpack(">I", hashlib.sha256(wname.encode() + b"\n" + wkey).digest()[:4])[0]
    policy = WitnessPolicy.from_text(f"witness w1 {wname}+{whash:08x}+{base64.b64encode(wkey).decode()} "
                                     "https://w1.example/\nquorum w1\n")
    create(srv, 2, "unwitnessed")
    wait_signed(client, key)
    assert list(client.follow(key.with_witnesses(policy), state, once=True)) == []
    assert state.read_bytes() == text and "not cosigned as the witness policy requires: waiting" in caplog.text

    # A replica behind the state's: waited for.
    monkeypatch.setattr(client, "_checkpoint_note", lambda: old_note)
    assert list(client.follow(key, state, once=True)) == []
    assert state.read_bytes() == text and "is behind the state's" in caplog.text

    # A fork: a checkpoint of the state's size with another root, signed
    # with the log's own private key.
    cp = read_state(state, key)
    skey = (srv.data_dir / "log-signing.key").read_text()
    forked = sign_note(checkpoint_text(key.name, cp.size, hashlib.sha256(b"fork").digest(), cp.received_before), skey)
    assert open_checkpoint(forked, key).size == cp.size
    monkeypatch.setattr(client, "_checkpoint_note", lambda: forked)
    with pytest.raises(VerificationError, match="forked"):
        list(client.follow(key, state, once=True))
    assert state.read_bytes() == text
    monkeypatch.undo()

    # A connection error: raised by a single round, retried by a follower.
    honest = client._checkpoint_note
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("cannot reach the server (test)")
        return honest()

    monkeypatch.setattr(client, "_checkpoint_note", flaky)
    with pytest.raises(ConnectionError):
        list(client.follow(key, state, once=True))
    assert state.read_bytes() == text
    calls.clear()
    got = list(client.follow(key, state, interval=0.05, stop=lambda: len(calls) >= 2))
    assert len(calls) == 2 and "cannot reach the server (test) (trying again in 0.05 s)" in caplog.text
    assert len(got) == size_of(state, key) - cp.size and got  # the second round went on
    assert [e["name"] for e in got if e["action"] == "actions/tail/unwitnessed"]


def test_deleted_leaves(srv, client, key, tmp_path, caplog, monkeypatch):
    """Leaves whose events the server's retention deleted (the answers
    rewritten as test_log_proofs does; the real deletion is
    test_retention's): refused, unless allow_deleted, which proves their
    leaf hashes, yields the other events and warns."""
    from h2o_audit_trail.verify import event_leaf_hash

    caplog.set_level(logging.WARNING, logger="h2o_audit_trail.tail")
    state = tmp_path / "state"
    list(client.follow(key, state, once=True))
    start = size_of(state, key)
    create(srv, 6, "deleted")
    wait_signed(client, key)
    get = client._transport.get

    def deleting(path, query=None):
        answer = get(path, query)
        if path == "/v1/log/entries" and int(query["start"]) == start:
            hashes = [event_leaf_hash(e, start + i + 1) for i, e in enumerate(answer["events"])]
            answer["deletedLeafHashes"] = [base64.b64encode(h).decode() for h in hashes]
            answer["events"] = []
            for inc in answer["proofs"]["inclusions"]:
                inc["name"] = ""
        return answer

    monkeypatch.setattr(client._transport, "get", deleting)
    text = state.read_bytes()
    with pytest.raises(VerificationError, match="deleted by the server's retention"):
        list(client.follow(key, state, once=True))
    assert state.read_bytes() == text
    assert list(client.follow(key, state, once=True, allow_deleted=True)) == []  # the window is one page
    end = size_of(state, key)
    assert end > start and f"{end - start} leaves whose events the server's retention deleted (leaves {start}-{end - 1})" in caplog.text


def test_arguments(client, key, tmp_path):
    with pytest.raises(ValueError, match="interval"):
        client.follow(key, tmp_path / "s", interval=0)
    with pytest.raises(TypeError, match="stop"):
        client.follow(key, tmp_path / "s", stop=42)
    with pytest.raises(VerificationError):
        client.follow("not a key", tmp_path / "s")
    with pytest.raises(FileNotFoundError):
        next(client.follow(key, tmp_path / "missing" / "s"))


def test_empty_checkpoint(key):
    cp = empty_checkpoint(key.name)
    assert (cp.size, cp.root, cp.verified) == (0, EMPTY_ROOT, True)
    # merkle.EmptyCheckpoint's text
    assert cp.text() == f"{key.name}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nreceived-before 1970-01-01T00:00:00.000000000Z\n"
    with pytest.raises(VerificationError):
        empty_checkpoint("bad origin")
