"""Proofs of the verifiable log against the real server: searches with
include_proofs=True, create receipts, checkpoints and consistency proofs,
verified with the public key of the server's data directory; forged proofs
rejected. The server is this module's own (its events would disturb the
oracle of the other tests)."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import _server
import pytest
from conftest import REPO_ROOT

import h2o_audit_trail
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.model.status import Status
from h2o_audit_trail.verify import (
    ConsistencyProof,
    LogProofs,
    VerificationError,
    Verifier,
    open_checkpoint,
    verify_consistency,
)

UTC = timezone.utc
SOURCE = "verify-tests"
pytestmark = pytest.mark.store


@pytest.fixture(scope="module")
def log_server(tmp_path_factory):
    srv = _server.start(_server.find_binary(REPO_ROOT), tmp_path_factory.mktemp("audittrail-log"), _server.store_args())
    try:
        yield srv
    finally:
        _server.stop(srv)


@pytest.fixture(scope="module")
def key(log_server) -> Verifier:
    return Verifier.from_key((log_server.data_dir / "log-verification.key").read_text())


def seed(srv, n: int, resource: str) -> list:
    base = datetime.now(UTC) - timedelta(minutes=5)
    reqs = []
    for i in range(n):
        reqs.append({"eventId": str(uuid.uuid4()), "event": {
            "eventTime": (base + timedelta(microseconds=i)).isoformat(), "eventSource": SOURCE, "action": f"actions/test/{i}",
            "readOnly": i % 2 == 0, "status": {"code": i % 3, "message": "ünïcødé" if i == 1 else ""},
            "principal": "users/alice", "sourceIpAddress": "203.0.113.9", "resource": resource,
            "requestParameters": {"b": "1", "B": "2", "ä": str(i)}, "metadata": {"k": "v"}, "type": "TYPE_API",
            "userAgent": "pytest"}})
    status, answer = _server.raw_post(srv.internal + "/v1/events:batchCreate", srv.producer_token, {"requests": reqs})
    assert status == 200 and answer["failedRequests"] == {}, answer
    return [e["name"] for e in answer["events"]]


def proven_page(client, key, flt, page_size=50):
    deadline = time.monotonic() + 15
    while True:
        page = client.search_events(filter_=flt, page_size=page_size, include_proofs=True)
        result = page.proofs.verify(key)
        if not result.pending:
            return page, result
        assert time.monotonic() < deadline, f"still pending: {result.pending}"
        time.sleep(0.1)


def test_search_with_proofs(log_server, key):
    # Other events before the page's: its proof is not empty.
    seed(log_server, 3, "proofs/before")
    names = seed(log_server, 12, "proofs/search")
    client = h2o_audit_trail.login(endpoint=log_server.public, token=log_server.reader_token).event_client
    flt = F(resource_exact="proofs/search")
    page, result = proven_page(client, key, flt)
    assert [e.name for e in page.events] == list(reversed(names))
    assert result.proven == [e.name for e in page.events]
    assert result.checkpoint.size >= 12 and result.checkpoint.origin == key.name
    # Leaf index = seq - 1: the batch is consecutive, newest first.
    leaves = [inc.leaf_index for inc in page.proofs.inclusions]
    assert leaves == list(range(leaves[0], leaves[0] - 12, -1))

    # Without the flag: no proofs, same events.
    plain = client.search_events(filter_=flt, page_size=50)
    assert plain.proofs is None and plain.events == page.events

    # Forged answers are rejected: each change on a fresh copy of the raw JSON.
    raw = raw_search(log_server, {"filter": {"resourceExact": "proofs/search"}, "includeProofs": True})
    LogProofs.from_json(raw["proofs"], raw["events"]).verify(key)

    def flip_hash(r):
        h = bytearray(base64.b64decode(r["proofs"]["hashes"][0]))
        h[0] ^= 1
        r["proofs"]["hashes"][0] = base64.b64encode(bytes(h)).decode()

    def other_checkpoint(r):
        seed(log_server, 1, "proofs/other")
        deadline = time.monotonic() + 15
        while True:
            cp = raw_get(log_server, "/v1/log/checkpoint")
            if int(cp["treeSize"]) > int(r["proofs"]["treeSize"]):
                r["proofs"]["checkpoint"], r["proofs"]["treeSize"] = cp["checkpoint"], cp["treeSize"]
                return
            assert time.monotonic() < deadline
            time.sleep(0.1)

    def bad_signature(r):
        text, sig = r["proofs"]["checkpoint"].split("\n\n")
        name, b64 = sig.rstrip("\n").split(" ")[1:]
        raw_sig = bytearray(base64.b64decode(b64))
        raw_sig[-1] ^= 1
        r["proofs"]["checkpoint"] = text + "\n\n\u2014 " + name + " " + base64.b64encode(bytes(raw_sig)).decode() + "\n"

    forgeries = {
        "wrong path": flip_hash,
        "a hash repeated": lambda r: r["proofs"]["hashes"].insert(0, r["proofs"]["hashes"][0]),
        "a hash left out": lambda r: r["proofs"]["hashes"].pop(),
        "wrong size": lambda r: r["proofs"].update(treeSize=str(int(r["proofs"]["treeSize"]) + 1)),
        "wrong leaf index": lambda r: r["proofs"]["inclusions"][2].update(leafIndex=str(int(r["proofs"]["inclusions"][2]["leafIndex"]) - 1)),
        "other checkpoint": other_checkpoint,
        "bad signature": bad_signature,
        "tampered event": lambda r: r["events"][5].update(action="actions/test/forged"),
        "tampered receive time (1 ns)": lambda r: r["events"][5].update(receiveTime=shift_ns(r["events"][5]["receiveTime"])),
        "claimed pending": lambda r: r["proofs"]["inclusions"][0].update(pending=True),
        # Every proof holds (a multi-proof proves each leaf it is given), but
        # a search returns each event once.
        "an event twice": lambda r: (r["events"].append(r["events"][3]), r["proofs"]["inclusions"].append(r["proofs"]["inclusions"][3])),
    }
    for name, forge in forgeries.items():
        r = json.loads(json.dumps(raw))
        forge(r)
        with pytest.raises(VerificationError):
            LogProofs.from_json(r["proofs"], r["events"]).verify(key)
            pytest.fail(f"forgery {name!r} verified")
    # Receipts of a batch that sent an event twice hold it twice: allowed
    # there, and only there.
    r = json.loads(json.dumps(raw))
    forgeries["an event twice"](r)
    with pytest.raises(VerificationError, match="appears twice"):
        LogProofs.from_json(r["proofs"], r["events"]).verify(key)
    LogProofs.from_json(r["proofs"], r["events"], receipts=True).verify(key)
    # Another key with the log's name does not verify the log's checkpoint.
    from _logkeys import new_key

    _, other = new_key(key.name, b"not the log")
    with pytest.raises(VerificationError):
        LogProofs.from_json(raw["proofs"], raw["events"]).verify(other)


def shift_ns(text: str) -> str:
    # "...:SS.fffffffffZ" or "...:SSZ" -> one nanosecond later, as protojson writes it
    from h2o_audit_trail.verify import _instant

    secs, nanos = _instant(text, "t")
    nanos += 1
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=secs)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def raw_search(srv, body):
    status, answer = _server.raw_post(srv.public + "/v1/events:search", srv.reader_token, body)
    assert status == 200, answer
    return answer


def raw_get(srv, path):
    req = urllib.request.Request(srv.public + path, headers={"Authorization": f"Bearer {srv.reader_token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_default_answer_has_only_the_h2o_keys(log_server):
    seed(log_server, 1, "proofs/keys")
    for body in ({"filter": {"resourceExact": "proofs/keys"}}, {"filter": {"resourceExact": "proofs/keys"}, "includeProofs": False}):
        assert sorted(raw_search(log_server, body)) == ["events", "nextPageToken", "searchedUntilTime"]
    with_proofs = raw_search(log_server, {"filter": {"resourceExact": "proofs/keys"}, "includeProofs": True})
    assert sorted(with_proofs) == ["events", "nextPageToken", "proofs", "searchedUntilTime"]


def test_create_with_receipt(log_server, key):
    producer = h2o_audit_trail.login(endpoint=log_server.internal, token=log_server.producer_token).event_client
    event = Event(event_time=datetime.now(UTC), event_source=SOURCE, action="actions/test/receipt", read_only=False,
                  status=Status(code=0), principal="users/bob", source_ip_address="198.51.100.1", resource="proofs/receipt")
    event_id = str(uuid.uuid4())
    created, receipt = producer.create_event_with_receipt(event_id, event)
    assert created.name == "events/" + event_id
    result = receipt.verify(key)
    assert result.proven == [created.name] and result.pending == []
    # The plain create (a retry here) returns the same event, without receipt.
    again = producer.create_event(event_id, event)
    assert again == created
    # The receipt proves this event only.
    other = dict(receipt.events[0], principal="users/mallory")
    with pytest.raises(VerificationError):
        receipt.verify(key, [other])


def test_checkpoints_are_consistent(log_server, key):
    first = open_checkpoint(raw_get(log_server, "/v1/log/checkpoint")["checkpoint"], key)
    seed(log_server, 3, "proofs/consistency")
    deadline = time.monotonic() + 15
    while True:
        second = open_checkpoint(raw_get(log_server, "/v1/log/checkpoint")["checkpoint"], key)
        if second.size > first.size:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proof = ConsistencyProof.from_json(raw_get(log_server, f"/v1/log/consistency?first={first.size}&second={second.size}")["proof"])
    verify_consistency(first, second, proof)
    with pytest.raises(VerificationError):
        verify_consistency(second, first, proof)
    if proof.hashes:
        bad = ConsistencyProof(proof.old_size, proof.new_size, (bytes(32),) + proof.hashes[1:])
        with pytest.raises(VerificationError):
            verify_consistency(first, second, bad)


def test_client_log_methods(log_server, key):
    """EventClient.get_checkpoint, get_inclusion_proof and
    get_consistency_proof return what the verify module checks."""
    from _logkeys import new_key

    from h2o_audit_trail.exception import CustomApiException
    from h2o_audit_trail.verify import InclusionProof, verify_event_inclusion

    client = h2o_audit_trail.login(endpoint=log_server.public, token=log_server.reader_token).event_client
    first = client.get_checkpoint(key)
    assert first.verified
    names = seed(log_server, 3, "proofs/client-methods")
    events = {e["name"]: e for e in raw_search(log_server, {"filter": {"resourceExact": "proofs/client-methods"}})["events"]}
    assert sorted(events) == sorted(names)
    deadline = time.monotonic() + 15
    while True:
        cp = client.get_checkpoint(key)
        try:
            proofs = {n: client.get_inclusion_proof(n, cp.size) for n in names}
            break
        except CustomApiException:  # not in that tree yet
            assert time.monotonic() < deadline
            time.sleep(0.1)
    for n, proof in proofs.items():
        assert proof.tree_size == cp.size
        verify_event_inclusion(cp, events[n], proof)
        with pytest.raises(VerificationError):  # another event's proof
            other = next(p for m, p in proofs.items() if m != n)
            verify_event_inclusion(cp, events[n], InclusionProof(other.leaf_index, other.tree_size, other.hashes))
    # tree_size 0 is the latest checkpoint's.
    assert client.get_inclusion_proof(names[0]).tree_size >= cp.size
    consistency = client.get_consistency_proof(first.size, cp.size)
    verify_consistency(first, cp, consistency)
    # A checkpoint is evidence only under the log's key.
    _, other_key = new_key("audittrail/log")
    with pytest.raises(VerificationError):
        client.get_checkpoint(other_key)
    with pytest.raises(CustomApiException) as e:
        client.get_inclusion_proof("events/" + str(uuid.uuid4()))
    assert e.value.status == 404
    with pytest.raises(CustomApiException) as e:
        client.get_consistency_proof(cp.size, first.size) if cp.size > first.size else client.get_consistency_proof(2, 1)
    assert e.value.status == 400


def test_iter_events_verified(log_server, key, monkeypatch):
    """iter_events(verify_with=key) yields what iter_events yields, every
    page checked, also when the log signs new checkpoints between pages
    (checked consistent with the earlier ones); a tampered page, a bad
    consistency proof and another key each raise VerificationError."""
    names = seed(log_server, 20, "proofs/iter")
    client = h2o_audit_trail.login(endpoint=log_server.public, token=log_server.reader_token).event_client
    flt = F(resource_exact="proofs/iter")
    proven_page(client, key, flt)  # a checkpoint covers the 20 events
    plain = [e.name for e in client.iter_events(flt, page_size=6)]
    assert plain == list(reversed(names))

    def next_checkpoint():
        size = client.get_checkpoint(key).size
        seed(log_server, 2, "proofs/iter-more")
        deadline = time.monotonic() + 15
        while client.get_checkpoint(key).size <= size:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    got, consistency_proofs = [], []
    original = client.get_consistency_proof
    monkeypatch.setattr(client, "get_consistency_proof",
                        lambda a, b: consistency_proofs.append((a, b)) or original(a, b))
    for e in client.iter_events(flt, page_size=6, verify_with=key, allow_pending=False):
        got.append(e.name)
        if len(got) in (6, 12):
            next_checkpoint()
    assert got == plain
    assert len(consistency_proofs) == 2, consistency_proofs

    # A bad consistency proof between two pages' checkpoints.
    monkeypatch.setattr(client, "get_consistency_proof",
                        lambda a, b: ConsistencyProof(a, b, (bytes(32),) * len(original(a, b).hashes)))
    with pytest.raises(VerificationError):
        for i, _ in enumerate(client.iter_events(flt, page_size=6, verify_with=key)):
            if i == 0:
                next_checkpoint()
    monkeypatch.setattr(client, "get_consistency_proof", original)

    # A page whose event was changed on the way.
    search = client.search_events

    def tampered(*args, **kwargs):
        page = search(*args, **kwargs)
        page.proofs.events[1]["principal"] = "users/mallory"
        return page

    monkeypatch.setattr(client, "search_events", tampered)
    with pytest.raises(VerificationError):
        list(client.iter_events(flt, page_size=6, verify_with=key))
    monkeypatch.setattr(client, "search_events", search)

    # Pages after the first call every event pending, without a
    # checkpoint (as a replica behind would, or a server hiding a change):
    # the events the first page's checkpoint covers are proven against it;
    # a changed one raises.
    def behind(changed):
        def answer(*args, **kwargs):
            page = search(*args, **kwargs)
            if kwargs.get("page_token"):
                if changed:
                    page.proofs.events[0]["principal"] = "users/mallory"
                page.proofs = replace(page.proofs, checkpoint="", tree_size=0, hashes=(),
                                      inclusions=[replace(i, pending=True) for i in page.proofs.inclusions])
            return page
        return answer

    monkeypatch.setattr(client, "search_events", behind(False))
    assert [e.name for e in client.iter_events(flt, page_size=6, verify_with=key, allow_pending=False)] == plain
    monkeypatch.setattr(client, "search_events", behind(True))
    with pytest.raises(VerificationError, match="claimed pending"):
        list(client.iter_events(flt, page_size=6, verify_with=key))
    monkeypatch.setattr(client, "search_events", search)

    from _logkeys import new_key

    _, other = new_key(key.name, b"not the log")
    with pytest.raises(VerificationError):
        next(client.iter_events(flt, page_size=6, verify_with=other))


def test_log_entries_verify_the_whole_log(log_server, key):
    """get_log_entries returns every event in leaf order, and verify_log
    recomputes the checkpoint's root from them (the same tree as Go's);
    an event changed, left out or moved is refused."""
    from h2o_audit_trail.exception import CustomApiException
    from h2o_audit_trail.verify import verify_log

    client = h2o_audit_trail.login(endpoint=log_server.public, token=log_server.reader_token).event_client
    names = seed(log_server, 40, "proofs/log-entries")
    deadline = time.monotonic() + 15
    while True:
        cp = client.get_checkpoint(key)
        _, committed = client.get_log_entries(0, 1)
        if committed >= cp.size:
            entries = []
            while len(entries) < cp.size:
                page, committed = client.get_log_entries(len(entries), 7)
                assert page and committed >= cp.size
                entries.extend(page[: cp.size - len(entries)])
            if set(names) <= {e["name"] for e in entries}:
                break
        assert time.monotonic() < deadline, "no checkpoint covers the seeded events"
        time.sleep(0.1)
    verify_log(cp, entries)

    i = next(i for i, e in enumerate(entries) if e["name"] == names[5])
    changed = [dict(e) for e in entries]
    changed[i]["resource"] += "x"
    swapped = list(entries)
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    for bad in (changed, entries[:i] + entries[i + 1 :] + [entries[-1]], swapped, entries[:-1]):
        with pytest.raises(VerificationError):
            verify_log(cp, bad)

    with pytest.raises(CustomApiException) as e:  # a producer may not read them
        h2o_audit_trail.login(endpoint=log_server.public, token=log_server.producer_token).event_client.get_log_entries()
    assert e.value.status == 403
    assert client.get_log_entries(1 << 40, 10)[0] == []

    # get_log_page: the same events (this store deletes none), and
    # verify_log takes a deleted leaf's hash in its event's place.
    from h2o_audit_trail.verify import event_leaf_hash

    page = client.get_log_page(i, 3)
    assert [e["name"] for e in page.events] == [e["name"] for e in entries[i : i + 3]]
    assert page.deleted_leaf_hashes == [] and len(page) == 3 and page.committed_size >= cp.size
    with_deleted = list(entries)
    with_deleted[i] = {"deletedLeafHash": base64.b64encode(event_leaf_hash(entries[i], i + 1)).decode()}
    verify_log(cp, with_deleted)
    with_deleted[i] = {"deletedLeafHash": base64.b64encode(event_leaf_hash(entries[i + 1], i + 1)).decode()}
    with pytest.raises(VerificationError):
        verify_log(cp, with_deleted)


def test_verify_mirror_of_the_go_cli(log_server, key, tmp_path):
    """A directory written by `audittrail mirror` (Go) verifies with
    verify.verify_mirror (Python): the export is checkable by a second
    implementation; changed copies are refused."""
    import shutil
    import subprocess

    from h2o_audit_trail.verify import verify_mirror

    seed(log_server, 25, "proofs/mirror")
    binary = _server.find_binary(REPO_ROOT)
    mirror = tmp_path / "mirror"
    keyfile = str(log_server.data_dir / "log-verification.key")
    host = log_server.public.removeprefix("http://")

    def mirror_until(done, what: str):
        """Runs `audittrail mirror` until done(checkpoint, lines) holds;
        returns the last run's output, checkpoint and lines."""
        deadline = time.monotonic() + 15
        while True:
            out = subprocess.run([str(binary), "mirror", "--addr", host, "--token", log_server.reader_token,
                                  "--dir", str(mirror), "--log-key", keyfile], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            cp = verify_mirror(mirror, key)
            lines = (mirror / "entries.jsonl").read_bytes().splitlines(keepends=True)
            if done(cp, lines):
                return out, cp, lines
            assert time.monotonic() < deadline, what
            time.sleep(0.2)

    out, cp, lines = mirror_until(lambda cp, lines: any(b"proofs/mirror" in line for line in lines),
                                  "the mirror never held the seeded events")
    assert cp.size == len(lines) and f"{cp.size} entries" in out.stdout

    def tampered(name: str, entries: list) -> Path:
        d = tmp_path / name
        shutil.copytree(mirror, d)
        (d / "entries.jsonl").write_bytes(b"".join(entries))
        return d

    i = next(i for i, line in enumerate(lines) if b"proofs/mirror" in line)
    changed = list(lines)
    changed[i] = changed[i].replace(b'"resource":"proofs/mirror"', b'"resource":"proofs/mirrors"')
    twice = list(lines)
    twice[i] = twice[i].replace(b'{"name":', b'{"resource":"x","name":', 1)
    for name, entries in [("changed", changed), ("removed", lines[:i] + lines[i + 1 :]), ("twice", twice),
                          ("swapped", lines[:i] + [lines[i + 1], lines[i]] + lines[i + 2 :]), ("short", lines[:-1] + [lines[-1][:-5]])]:
        with pytest.raises(VerificationError):
            verify_mirror(tampered(name, entries), key)
    # Lines after the checkpoint's are an unfinished update: not checked.
    assert verify_mirror(tampered("longer", lines + [b"not json\n"]), key).size == cp.size

    # The checkpoint file gone, or put back to an older checkpoint: the
    # entries are checked against state.json's (the newer), so a changed
    # line past the older one is found; nothing at all is not verified.
    d = tampered("no-checkpoint", lines)
    (d / "checkpoint").unlink()
    assert verify_mirror(d, key).size == cp.size
    (d / "state.json").unlink()
    with pytest.raises(VerificationError, match="no checkpoint"):
        verify_mirror(d, key)
    with pytest.raises(VerificationError, match="no mirror"):
        verify_mirror(tmp_path / "nonexistent", key)

    # A leaf whose event the server deleted (retention) is its leaf hash
    # alone, as `audittrail mirror --allow-deleted` writes it (the Go test
    # TestVerifiableLogPostgres makes such a mirror of a PostgreSQL store):
    # it verifies when the hash is the leaf's, and not otherwise.
    from h2o_audit_trail.verify import event_leaf_hash

    def deleted_line(h: bytes) -> bytes:
        return b'{"deletedLeafHash":"' + base64.b64encode(h) + b'"}\n'

    def non_canonical(line: bytes) -> bytes:
        # The same 32 bytes with a padding bit set in the last character
        # (its two low bits carry no data): decoders that do not check read
        # the same hash.
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        at = line.index(b'="}') - 1
        return line[:at] + alphabet[alphabet.index(line[at]) + 1 :][:1] + line[at + 1 :]

    leaf = event_leaf_hash(json.loads(lines[i]), i + 1)
    with_deleted = list(lines)
    with_deleted[i] = deleted_line(leaf)
    assert verify_mirror(tampered("deleted", with_deleted), key).size == cp.size
    for name, line in [("deleted-other-hash", deleted_line(bytes([leaf[0] ^ 1]) + leaf[1:])),
                       ("deleted-short-hash", deleted_line(leaf[:31])),
                       ("deleted-extra-key", deleted_line(leaf).replace(b'"}', b'","x":1}')),
                       ("deleted-not-base64", b'{"deletedLeafHash":"not base64!"}\n'),
                       ("deleted-non-canonical", non_canonical(deleted_line(leaf)))]:
        bad = list(lines)
        bad[i] = line
        with pytest.raises(VerificationError):
            verify_mirror(tampered(name, bad), key)


    # A newer update, then its checkpoint file put back to the older one and
    # a line past it changed: refused (state.json holds the newer one).
    older_text = (mirror / "checkpoint").read_bytes()
    seed(log_server, 5, "proofs/mirror-2")
    _, _, grown = mirror_until(lambda newer, _: newer.size > cp.size, "the mirror never grew")
    rolled = tampered("rolled-back", grown[:-1] + [grown[-1].replace(b'"principal":"', b'"principal":"x', 1)])
    (rolled / "checkpoint").write_bytes(older_text)
    with pytest.raises(VerificationError):
        verify_mirror(rolled, key)

def test_iter_window(log_server, key):
    """iter_window yields exactly the events between two checkpoints,
    proven; answers altered to move or change an entry are refused."""
    import dataclasses

    from h2o_audit_trail.exception import CustomApiException

    client = h2o_audit_trail.login(endpoint=log_server.public, token=log_server.reader_token).event_client

    def checkpoint_at_least(size):
        deadline = time.monotonic() + 15
        while True:
            try:
                cp = client.get_checkpoint(key)
                if cp.size >= size:
                    return cp
            except CustomApiException:  # none signed yet
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)

    seed(log_server, 1, "proofs/window-before")
    older = checkpoint_at_least(1)
    names = seed(log_server, 30, "proofs/window")
    newer = checkpoint_at_least(older.size + 30)
    events = list(client.iter_window(older, newer, key))
    assert len(events) == newer.size - older.size
    assert set(names) <= {e["name"] for e in events}

    honest = client.get_log_entries_with_proofs

    def altered(edit):
        def call(start, page_size):
            return edit(*honest(start, page_size))
        return call

    def change(events, committed, proofs):
        events[0]["resource"] += "x"
        return events, committed, proofs

    def move(events, committed, proofs):
        events[0], events[1] = events[1], events[0]
        inclusions = (proofs.inclusions[1], proofs.inclusions[0]) + tuple(proofs.inclusions[2:])
        return events, committed, dataclasses.replace(proofs, inclusions=inclusions, events=events)

    for edit in (change, move):
        client.get_log_entries_with_proofs = altered(edit)
        with pytest.raises(VerificationError):
            list(client.iter_window(older, newer, key))
    client.get_log_entries_with_proofs = honest
    with pytest.raises(VerificationError):
        list(client.iter_window(newer, older, key))

    # Leaves whose events the server's retention deleted: the server's
    # answer for the window's first page rewritten as a PostgreSQL store with
    # a dropped month answers (deletedLeafHashes, nameless inclusions; the
    # real deletion is tested in Go, TestVerifiableLogPostgres).
    from h2o_audit_trail.verify import event_leaf_hash

    transport_get = client._transport.get

    def deleting(edit=None):
        def get(path, query):
            answer = transport_get(path, query)
            if path == "/v1/log/entries" and int(query["start"]) == older.size:
                hashes = [event_leaf_hash(e, older.size + i + 1) for i, e in enumerate(answer["events"])]
                answer["deletedLeafHashes"] = [base64.b64encode(h).decode() for h in hashes]
                answer["events"] = []
                for inc in answer["proofs"]["inclusions"]:
                    inc["name"] = ""
                if edit:
                    edit(answer)
            return answer
        return get

    client._transport.get = deleting()
    try:
        with pytest.raises(VerificationError, match="deleted by the server's retention"):
            list(client.iter_window(older, newer, key))
        entries = list(client.iter_window(older, newer, key, allow_deleted=True))
        assert len(entries) == newer.size - older.size
        assert all(set(e) == {"deletedLeafHash"} for e in entries)  # one page: all of the window
        for name, edit in [
            ("another hash", lambda a: a["deletedLeafHashes"].__setitem__(3, base64.b64encode(bytes(32)).decode())),
            ("a named inclusion", lambda a: a["proofs"]["inclusions"][2].__setitem__("name", names[0])),
            ("hashes swapped", lambda a: a["deletedLeafHashes"].reverse()),
        ]:
            client._transport.get = deleting(edit)
            with pytest.raises(VerificationError):
                list(client.iter_window(older, newer, key, allow_deleted=True))
    finally:
        client._transport.get = transport_get


def test_rotated_signing_key(tmp_path):
    """The server's signing key rotated (docs/configuration.md, "Rotating the
    log's signing key"): during the rotation the checkpoints verify with the
    old public key alone, with the new one alone, and with the two-key file
    the server writes; after it, with the new key and the two-key file, not
    the old key; each is consistent with the checkpoint signed before."""
    binary = _server.find_binary(REPO_ROOT)
    store = _server.store_args()
    srv = _server.start(binary, tmp_path / "before", store)
    data = srv.data_dir

    def checkpoint_covering(srv, key, names):
        client = h2o_audit_trail.login(endpoint=srv.public, token=srv.reader_token).event_client
        deadline = time.monotonic() + 15
        while True:
            page = client.search_events(filter_=F(resource_exact=names), page_size=50, include_proofs=True)
            result = page.proofs.verify(key)
            if not result.pending:
                return client, result.checkpoint
            assert time.monotonic() < deadline, f"still pending: {result.pending}"
            time.sleep(0.1)

    try:
        seed(srv, 4, "rotation/a")
        old_key = Verifier.from_key((data / "log-verification.key").read_text())
        _, first = checkpoint_covering(srv, old_key, "rotation/a")
    finally:
        _server.stop(srv)
    old_private = tmp_path / "old-signing.key"
    (data / "log-signing.key").rename(old_private)

    srv = _server.start(binary, tmp_path / "during", ["--data-dir", str(data), "--log-previous-key", str(old_private), *store])
    try:
        ring = Verifier.from_key((data / "log-verification.key").read_text())
        new_key = ring.keys()[0]
        assert [k.key_hash for k in ring.keys()] == [new_key.key_hash, old_key.key_hash]
        seed(srv, 4, "rotation/b")
        for key in (old_key, new_key, ring):
            client, during = checkpoint_covering(srv, key, "rotation/b")
            verify_consistency(first, during, client.get_consistency_proof(first.size, during.size))
    finally:
        _server.stop(srv)

    srv = _server.start(binary, tmp_path / "after", ["--data-dir", str(data), *store])
    try:
        seed(srv, 4, "rotation/c")
        for key in (new_key, ring):
            client, after = checkpoint_covering(srv, key, "rotation/c")
            verify_consistency(during, after, client.get_consistency_proof(during.size, after.size))
        with pytest.raises(VerificationError, match="no signature by the log's key"):
            client.get_checkpoint(old_key)
    finally:
        _server.stop(srv)
