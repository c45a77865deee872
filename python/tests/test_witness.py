"""Witness cosignatures (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature)
checked by h2o_audit_trail.verify: the policy file's parsing (the format of
`audittrail serve --witness-policy`), cosignatures made here with the test's
own keys, and, end to end, the real binary: `audittrail witness` cosigning
the checkpoints of `audittrail serve --witness-policy`, which the Python
verifier with the same policy accepts, and refuses once a cosignature it
requires is missing or altered. Where it applies, the Go client
(`audittrail verify checkpoint --witness-policy`) is asked the same question
and must answer the same."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, List, Optional

import _server
import pytest
from _logkeys import checkpoint_text, new_key, sign_note
from conftest import REPO_ROOT

import h2o_audit_trail
from h2o_audit_trail import _ed25519
from h2o_audit_trail.event.search import SearchEventsRequestFilter as F
from h2o_audit_trail.verify import (
    EMPTY_ROOT,
    NotWitnessedError,
    VerificationError,
    Verifier,
    Witness,
    WitnessPolicy,
    open_checkpoint,
)

UTC = timezone.utc
SIG_PREFIX = "\u2014 "

# --- keys and cosignatures made here ----------------------------------------------------------


def key_hash(name: str, key: bytes) -> int:
    return struct.unpack(">I", hashlib.sha256(name.encode() + b"\n" + key).digest()[:4])[0]


@dataclass
class TestWitness:
    """A witness key of the test's own: it cosigns notes as the spec says
    (independently of the package's code, which only verifies)."""

    __test__ = False  # not a test class

    key_name: str
    seed: bytes = field(default_factory=lambda: os.urandom(32))
    alg: int = 4  # the type of its vkey: 4 (cosignature/v1) or 1 (plain Ed25519)

    @property
    def public_key(self) -> bytes:
        return _ed25519.public_key(self.seed)

    @property
    def key_id(self) -> int:  # always computed with 0x04
        return key_hash(self.key_name, b"\x04" + self.public_key)

    @property
    def vkey(self) -> str:
        key = bytes([self.alg]) + self.public_key
        return f"{self.key_name}+{key_hash(self.key_name, key):08x}+" + base64.b64encode(key).decode()

    def line(self, name: str, url: str = "https://witness.example/") -> str:
        return f"witness {name} {self.vkey} {url}\n"

    def cosign(self, note_text: str, timestamp: Optional[int] = None, signed_time: Optional[int] = None) -> str:
        """The signature line of its cosignature of note_text; signed_time
        (default timestamp) is the time in the signed message."""
        t = int(time.time()) if timestamp is None else timestamp
        msg = b"cosignature/v1\ntime %d\n" % (t if signed_time is None else signed_time) + note_text.encode()
        payload = struct.pack(">IQ", self.key_id, t) + _ed25519.sign(self.seed, msg)
        return f"{SIG_PREFIX}{self.key_name} {base64.b64encode(payload).decode()}\n"


LOG_SKEY, LOG_VKEY = new_key("audittrail/log", b"witness-tests")
CP_TEXT = checkpoint_text("audittrail/log", 0, EMPTY_ROOT, "2026-11-28T00:00:00.000000000Z")
W1, W2, W3 = TestWitness("witness.test/w1"), TestWitness("witness.test/w2"), TestWitness("witness.test/w3")


def log_signed(text: str = CP_TEXT) -> str:
    """text signed by the log's key: a note whose last line is the log's signature."""
    return sign_note(text, LOG_SKEY)


def with_lines(note: str, *lines: str) -> str:
    return note + "".join(lines)


def edit_cosignature(note: str, key_name: str, edit) -> str:
    """note with the payload of key_name's signature line replaced by edit(payload)."""
    out = []
    for line in note.split("\n"):
        if line.startswith(SIG_PREFIX + key_name + " "):
            payload = bytearray(base64.b64decode(line.rsplit(" ", 1)[1]))
            line = SIG_PREFIX + key_name + " " + base64.b64encode(bytes(edit(payload))).decode()
        out.append(line)
    return "\n".join(out)


def flip(i: int):
    def edit(payload: bytearray) -> bytearray:
        payload[i] ^= 0x01
        return payload
    return edit


# --- the policy file ---------------------------------------------------------------------------



def proven_page(client, resource: str, verifier):
    """The first page of the events on resource with proofs, once none of
    them is pending (at most 30 s), and its verification with verifier."""
    deadline = time.monotonic() + 30
    while True:
        page = client.search_events(filter_=F(resource_exact=resource), page_size=50, include_proofs=True)
        result = page.proofs.verify(verifier)
        if not result.pending:
            return page, result
        assert time.monotonic() < deadline, result.pending
        time.sleep(0.2)

def test_parse_policies():
    p = WitnessPolicy.from_text(
        "# the team's witnesses\n"
        "log audittrail/log+01234567+AAAA  # ignored\n"
        + W1.line("w1", "https://w1.example/").replace("\n", "  # trailing comment\n")
        + "   " + W2.line("w2", "http://127.0.0.1:7380/x")
        + "\n\t\n"
        + "group both all w1 w2\ngroup one any w1 w2\ngroup top 2 both one\n"
        "quorum top\r\n")
    assert [w.name for w in p.witnesses] == ["w1", "w2"] and p.quorum == "top"
    w1 = p.witnesses[0]
    assert (w1.key_name, w1.key_hash, w1.public_key, w1.url) == ("witness.test/w1", W1.key_id, W1.public_key, "https://w1.example/")
    assert WitnessPolicy.from_text(b"quorum none\n").witnesses == ()
    # The last quorum line holds, and it may come before its component.
    assert WitnessPolicy.from_text("quorum none\nquorum w1\n" + W1.line("w1")).quorum == "w1"
    # A plain Ed25519 vkey (type 0x01, its hash of its own encoding) is used
    # as a cosignature/v1 key: its key ID is computed with 0x04.
    plain = TestWitness("witness.test/plain", alg=1)
    w = WitnessPolicy.from_text(plain.line("p") + "quorum p\n").witnesses[0]
    assert w.key_hash == plain.key_id != key_hash(plain.key_name, b"\x01" + plain.public_key)
    assert Witness.from_vkey("p", plain.vkey) == Witness("p", plain.key_name, plain.key_id, plain.public_key, "")
    # Equal policies are equal, and verifiers holding them too (hashable).
    assert WitnessPolicy.from_text(W1.line("w1") + "quorum w1\n") == WitnessPolicy.from_text(W1.line("w1") + "quorum w1\n")


def test_policy_file(tmp_path):
    path = tmp_path / "policy"
    path.write_text(W1.line("w1") + "quorum w1\n")
    assert WitnessPolicy.from_file(path).quorum == "w1"
    assert WitnessPolicy.from_file(str(path)).witnesses[0].name == "w1"
    path.write_text(W1.line("w1"))
    with pytest.raises(VerificationError, match=re.escape(str(path)) + ": witness policy: .*must define a quorum"):
        WitnessPolicy.from_file(path)
    path.write_bytes(b"#" * (70 << 10))
    with pytest.raises(VerificationError, match="more than the 65536 bytes"):
        WitnessPolicy.from_file(path)
    with pytest.raises(OSError):
        WitnessPolicy.from_file(tmp_path / "missing")


def vkey_with(key: bytes, name: str = "witness.test/x", hash_of: Optional[bytes] = None) -> str:
    return f"{name}+{key_hash(name, key if hash_of is None else hash_of):08x}+" + base64.b64encode(key).decode()


_PK = W1.public_key
_ALG6, _ALG2, _SHORT = vkey_with(b"\x06" + _PK), vkey_with(b"\x02" + _PK), vkey_with(b"\x04" + _PK[:31])
_BAD_HASH = vkey_with(b"\x04" + _PK, hash_of=b"\x04" + bytes(32))
_SAME_KEY = vkey_with(b"\x04" + _PK, "witness.test/other")
# (policy text, what the error says; go: whether the Go client refuses it too)
BAD_POLICIES = [
    ("", "must define a quorum", True),
    ("# nothing\n" + W1.line("w1"), "must define a quorum", True),
    (W1.line("w1") + "quorum w2\n", "quorum component 'w2' is not defined", True),
    (W1.line("w1") + "quorum all\n", "invalid quorum name 'all'", True),
    (W1.line("w1") + "quorum w1 w1\n", "invalid quorum definition", True),
    ("quorum\n", "invalid quorum definition", True),
    (f"witness w1 {W1.vkey}\nquorum w1\n", "line 1: invalid witness definition", True),
    (f"witness w1 {W1.vkey} https://w.example/ extra\nquorum w1\n", "invalid witness definition", True),
    (W1.line("group") + "quorum none\n", "invalid witness name 'group'", True),
    (W1.line("none") + "quorum none\n", "invalid witness name 'none'", True),
    (W1.line("w1") + W2.line("w1") + "quorum w1\n", "line 2: duplicate component name 'w1'", True),
    (W1.line("w1") + "group w1 any w1\nquorum w1\n", "duplicate component name 'w1'", True),
    (W1.line("w1") + "group g any w2\nquorum g\n", "unknown component 'w2' in group g", True),
    ("group g any w1\n" + W1.line("w1") + "quorum g\n", "line 1: unknown component 'w1'", True),
    (W1.line("w1") + "group g 1 any\nquorum g\n", "invalid component name 'any'", True),
    (W1.line("w1") + "group g 2 w1\nquorum g\n", "group g with 1 children cannot have threshold 2", True),
    # A member listed twice would count its one cosignature twice.
    (W1.line("w1") + W2.line("w2") + "group g 2 w1 w1 w2\nquorum g\n", "group g: w1 is listed twice", True),
    # A threshold of 0 would demand nothing while reading as a requirement.
    (W1.line("w1") + "group g 0 w1\nquorum g\n", "group g has threshold 0", True),
    ("group g all\nquorum g\n", "group g has threshold 0", True),
    (W1.line("w1") + "group g 00 w1\nquorum g\n", "group g has threshold 0", True),
    (W1.line("w1") + "group g x w1\nquorum g\n", "invalid threshold 'x' for group g", True),
    (W1.line("w1") + "group g -1 w1\nquorum g\n", "invalid threshold '-1'", True),
    (W1.line("w1") + "group g 1.0 w1\nquorum g\n", "invalid threshold", True),
    (W1.line("w1") + "group g 256 " + "w1 " * 256 + "\nquorum g\n", "invalid threshold '256'", True),
    (W1.line("w1") + "group g " + "9" * 5000 + " w1\nquorum g\n", "invalid threshold", True),
    ("group g\nquorum g\n", "invalid group definition", True),
    ("witnesses w1\nquorum none\n", "unknown keyword 'witnesses'", True),
    (W1.line("w1", "ftp://w1.example/") + "quorum w1\n", "the URL 'ftp://w1.example/' is not an http or https URL", True),
    (W1.line("w1", "w1.example:7380") + "quorum w1\n", "not an http or https URL", True),
    (W1.line("w1", "https:///path") + "quorum w1\n", "not an http or https URL", True),
    (W1.line("w1", "http://w1.example:port/") + "quorum w1\n", "not an http or https URL", True),
    ("witness w1 notakey https://w1.example/\nquorum w1\n", "witness w1: malformed vkey", True),
    ("witness w1 name+1234567+AAAA https://w1.example/\nquorum w1\n", "malformed vkey", True),
    ("witness w1 name+12345678+not-base64! https://w1.example/\nquorum w1\n", "not base64", True),
    (f"witness w1 {_ALG6} https://w1.example/\nquorum w1\n", "key type is 0x06", True),
    (f"witness w1 {_ALG2} https://w1.example/\nquorum w1\n", "key type is 0x02", True),
    (f"witness w1 {_SHORT} https://w1.example/\nquorum w1\n", "has 31 bytes, not 32", True),
    # Stricter than Go (transparency-dev/formats does not check the hash a
    # vkey states).
    (f"witness w1 {_BAD_HASH} https://w1.example/\nquorum w1\n",
     "the vkey's hash", False),
    (W1.line("w1") + W1.line("w2") + "group g all w1 w2\nquorum g\n", "witnesses w1 and w2 have the same key", True),
    # One key under two names (a cosignature does not name its witness):
    # refused by both.
    (W1.line("w1") + f"witness w2 {_SAME_KEY} https://w2.example/\nquorum none\n",
     "witnesses w1 and w2 have the same key", True),
    ("#" * (70 << 10), "more than the 65536 a policy may have", True),
]


@pytest.mark.parametrize("text,want,go", BAD_POLICIES, ids=[w for _, w, _ in BAD_POLICIES])
def test_bad_policies(text, want, go):
    with pytest.raises(VerificationError) as e:
        WitnessPolicy.from_text(text)
    assert want in str(e.value) and str(e.value).startswith("witness policy: ")


def test_policy_not_utf8():
    with pytest.raises(VerificationError, match="not UTF-8"):
        WitnessPolicy.from_text(b"quorum none # \xff\n")


def test_bad_policies_are_refused_by_go_too(tmp_path):
    """The Go client refuses the same policies (but the documented stricter
    case), and accepts the good ones: one file serves both."""
    binary = _server.find_binary(REPO_ROOT)
    pub = tmp_path / "log.pub"
    pub.write_text(LOG_VKEY + "\n")
    cp = tmp_path / "cp"
    cp.write_text(with_lines(log_signed(), W1.cosign(CP_TEXT)))
    policy = tmp_path / "policy"

    def go_verify(text: str) -> subprocess.CompletedProcess:
        policy.write_text(text)
        return subprocess.run([str(binary), "verify", "checkpoint", "--key", str(pub), "--witness-policy", str(policy), str(cp)],
                              capture_output=True, text=True, timeout=60)

    for text, want, go in BAD_POLICIES:
        if not go:
            continue
        out = go_verify(text)
        assert out.returncode == 1 and "witness policy" in out.stderr, (want, out.stdout, out.stderr)
    for text in (W1.line("w1") + "quorum w1\n", "quorum none\n",
                 W1.line("w1") + W2.line("w2") + "group g any w1 w2\nquorum g\n"):
        out = go_verify(text)
        assert out.returncode == 0, (text, out.stderr)
        open_checkpoint(cp.read_text(), Verifier.from_key(LOG_VKEY).with_witnesses(WitnessPolicy.from_text(text)))


# --- cosignatures ------------------------------------------------------------------------------


def policy_of(*lines: str) -> WitnessPolicy:
    return WitnessPolicy.from_text(W1.line("w1") + W2.line("w2") + W3.line("w3") + "".join(lines))


def test_groups():
    note = with_lines(log_signed(), W1.cosign(CP_TEXT), W3.cosign(CP_TEXT))  # w2 did not cosign
    assert policy_of("quorum none\n").cosigners(note) == ("w1", "w3")
    for quorum, ok in [
        ("quorum w1\n", True),
        ("quorum w2\n", False),
        ("group g 2 w1 w2 w3\nquorum g\n", True),
        ("group g all w1 w2 w3\nquorum g\n", False),
        ("group g any w2\nquorum g\n", False),
        ("group a any w2\ngroup g all a w1\nquorum g\n", False),
        ("group a any w2 w3\ngroup g all a w1\nquorum g\n", True),
        ("group a all w1 w3\ngroup b any a w2\nquorum b\n", True),
        ("quorum none\n", True),
    ]:
        p = policy_of(quorum)
        assert p.satisfied(note) is ok, quorum
        if ok:
            p.check(note)
        else:
            with pytest.raises(NotWitnessedError):
                p.check(note)


def test_check_message():
    both = WitnessPolicy.from_text(W1.line("w1") + W2.line("w2") + "group both all w1 w2\nquorum both\n")
    with pytest.raises(NotWitnessedError) as e:
        both.check(with_lines(log_signed(), W1.cosign(CP_TEXT)))
    assert str(e.value) == 'the checkpoint is cosigned by witnesses w1, short of the policy\'s quorum "both" (not cosigned by w2)'
    with pytest.raises(NotWitnessedError) as e:
        both.check(log_signed())
    assert str(e.value) == 'the checkpoint is cosigned by no witness, short of the policy\'s quorum "both" (not cosigned by w1, w2)'
    assert isinstance(e.value, VerificationError)


def test_what_counts_as_a_cosignature():
    p = WitnessPolicy.from_text(W1.line("w1") + "quorum w1\n")
    note = log_signed()
    good = with_lines(note, W1.cosign(CP_TEXT, timestamp=1_790_000_000))
    assert p.cosigners(good) == ("w1",)
    assert p.witnesses[0].cosigned(good)
    # One flipped byte anywhere in the payload: key ID (then no line of w1's
    # key at all), timestamp, signature.
    for i in (0, 3, 4, 11, 12, 40, 75):
        assert p.cosigners(edit_cosignature(good, W1.key_name, flip(i))) == (), i
    # Cut short, or longer.
    assert p.cosigners(edit_cosignature(good, W1.key_name, lambda b: b[:-1])) == ()
    assert p.cosigners(edit_cosignature(good, W1.key_name, lambda b: b + b"\x00")) == ()
    # The timestamp in the line is the one signed.
    assert p.cosigners(with_lines(note, W1.cosign(CP_TEXT, timestamp=5, signed_time=6))) == ()
    # Another note's cosignature, or a plain Ed25519 signature by the key.
    other = checkpoint_text("audittrail/log", 1, hashlib.sha256(b"\x00x").digest(), "2026-11-28T00:00:00.000000000Z")
    assert p.cosigners(with_lines(note, W1.cosign(other))) == ()
    plain = struct.pack(">IQ", W1.key_id, 0) + _ed25519.sign(W1.seed, CP_TEXT.encode())
    assert p.cosigners(with_lines(note, f"{SIG_PREFIX}{W1.key_name} {base64.b64encode(plain).decode()}\n")) == ()
    # The same key under another name, or w1's signature under another name.
    assert p.cosigners(with_lines(note, TestWitness("witness.test/x", seed=W1.seed).cosign(CP_TEXT))) == ()
    renamed = W1.cosign(CP_TEXT).replace(W1.key_name, "witness.test/x")
    assert p.cosigners(with_lines(note, renamed)) == ()
    # Lines of other keys, even odd ones, are ignored; for w1's key the
    # first line decides (as Go's note.Open).
    odd = f"{SIG_PREFIX}other.example/k {base64.b64encode(b'12345').decode()}\n"
    assert p.cosigners(with_lines(note, odd, W2.cosign(CP_TEXT), W1.cosign(CP_TEXT))) == ("w1",)
    bad = edit_cosignature(with_lines(note, W1.cosign(CP_TEXT)), W1.key_name, flip(20))
    assert p.cosigners(with_lines(bad, W1.cosign(CP_TEXT))) == ()
    assert p.cosigners(with_lines(note, W1.cosign(CP_TEXT), W1.cosign(CP_TEXT, timestamp=7, signed_time=8))) == ("w1",)
    # A malformed note carries no cosignature (and does not crash).
    for malformed in ("", "no signatures\n", good.replace("\n\n", "\n"), good + "junk\n", good.replace(SIG_PREFIX + W1.key_name, "- x"),
                      good[:-1], b"\xff" + good.encode()):
        assert p.cosigners(malformed) == ()
        with pytest.raises(NotWitnessedError, match="no witness"):
            p.check(malformed)
    WitnessPolicy.from_text("quorum none\n").check("not even a note")


def test_extension_lines_are_signed():
    """The cosigned message is the whole note text, extension lines
    included (parse_checkpoint refuses them, but the policy check does not
    read the checkpoint)."""
    p = WitnessPolicy.from_text(W1.line("w1") + "quorum w1\n")
    text = CP_TEXT + "extension line\n"
    note = sign_note(text, LOG_SKEY)
    assert p.cosigners(with_lines(note, W1.cosign(text))) == ("w1",)
    assert p.cosigners(with_lines(note, W1.cosign(CP_TEXT))) == ()


def test_verifier_with_witnesses():
    policy = WitnessPolicy.from_text(W1.line("w1") + W2.line("w2") + "group any1 any w1 w2\nquorum any1\n")
    plain = Verifier.from_key(LOG_VKEY)
    v = plain.with_witnesses(policy)
    assert v.witness_policy is policy and plain.witness_policy is None
    assert v.with_witnesses(None) == plain and v != plain
    assert {v, plain, v.with_witnesses(None)} == {v, plain}
    note = log_signed()
    cosigned = with_lines(note, W2.cosign(CP_TEXT))
    assert open_checkpoint(cosigned, v).verified
    assert open_checkpoint(note, plain).size == 0  # no policy: as before
    with pytest.raises(NotWitnessedError) as e:
        open_checkpoint(note, v)
    assert str(e.value) == ('signed checkpoint of 0 leaves: not cosigned as the witness policy requires: the checkpoint is '
                            'cosigned by no witness, short of the policy\'s quorum "any1" (not cosigned by w1, w2)')
    # The log's signature is checked first: a bad one is not "not witnessed".
    forged = with_lines(sign_note(CP_TEXT, new_key("audittrail/log")[0]), W2.cosign(CP_TEXT))
    with pytest.raises(VerificationError) as e:
        open_checkpoint(forged, v)
    assert not isinstance(e.value, NotWitnessedError) and "no signature by the log's key" in str(e.value)
    # A ring of the log's keys keeps the policy, and so does every key of it.
    old_skey, old_vkey = new_key("audittrail/log")
    ring = Verifier.from_key(LOG_VKEY + "\n" + old_vkey + "\n").with_witnesses(policy)
    assert len(ring.previous) == 1 and ring.witness_policy is policy
    old_note = sign_note(CP_TEXT, old_skey)
    assert open_checkpoint(with_lines(old_note, W1.cosign(CP_TEXT)), ring).verified
    with pytest.raises(NotWitnessedError):
        open_checkpoint(old_note, ring)
    with pytest.raises(TypeError):
        plain.with_witnesses(W1.line("w1") + "quorum w1\n")


# --- end to end: the real witness and server ---------------------------------------------------

WITNESS_READY = re.compile(r"audittrail witness: ready url=(\S+) key=(\S+) logs=(\S*)")
STARTUP_TIMEOUT = 60.0


@dataclass
class WitnessProc:
    proc: subprocess.Popen
    url: str
    vkey: str
    policy_line: str
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=_server.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _server.check_races(self.log_path)


def start_witness(binary: Path, base: Path, name: str, log_pub: Path) -> WitnessProc:
    """Runs `audittrail witness` on a free port and waits for its two ready lines."""
    base.mkdir(parents=True, exist_ok=True)
    short = name.rsplit("/", 1)[-1]
    log_path = base / f"{short}.log"
    log = open(log_path, "ab")
    cmd = [str(binary), "witness", "--name", name, "--key", str(base / f"{short}.key"), "--log-key", str(log_pub),
           "--state", str(base / f"{short}-state"), "--listen", "127.0.0.1:0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITTRAIL_")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env, cwd=base)
    found: dict = {}
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            log.write(raw)
            log.flush()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            m = WITNESS_READY.search(line)
            if m:
                found["url"], found["vkey"] = m.group(1), m.group(2)
            if line.startswith("policy line: "):
                found["line"] = line[len("policy line: "):] + "\n"
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(STARTUP_TIMEOUT) or "line" not in found or "url" not in found:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise RuntimeError(f"audittrail witness did not print its ready lines (exit {proc.poll()}): {cmd}\n{log_path.read_text(errors='replace')}")
    return WitnessProc(proc, found["url"], found["vkey"], found["line"], log_path)


@dataclass
class Stack:
    """A log (audittrail serve --witness-policy) and its witness w1."""

    binary: Path
    base: Path
    pub: Path
    policy_file: Path
    policy: WitnessPolicy
    witness: WitnessProc
    server: _server.Server
    created: int = 0

    @property
    def key(self) -> Verifier:
        return Verifier.from_key(self.pub.read_text())

    @property
    def witnessed(self) -> Verifier:
        return self.key.with_witnesses(self.policy)

    def client(self):
        return h2o_audit_trail.login(endpoint=self.server.public, token=self.server.reader_token).event_client

    def seed(self, n: int, resource: str) -> List[str]:
        base = datetime.now(UTC) - timedelta(minutes=5)
        reqs = [{"eventId": str(uuid.uuid4()), "event": {
            "eventTime": (base + timedelta(microseconds=i)).isoformat(), "eventSource": "witness-tests",
            "action": f"actions/witness/{i}", "readOnly": True, "principal": "users/alice", "resource": resource,
            "sourceIpAddress": "203.0.113.9", "type": "TYPE_API"}} for i in range(n)]
        status, answer = _server.raw_post(self.server.internal + "/v1/events:batchCreate", self.server.producer_token,
                                          {"requests": reqs})
        assert status == 200 and answer["failedRequests"] == {}, answer
        self.created += n
        return [e["name"] for e in answer["events"]]

    def raw_checkpoint(self) -> Optional[str]:
        """GET /v1/log/checkpoint; None before the log's first checkpoint (503)."""
        req = urllib.request.Request(self.server.public + "/v1/log/checkpoint",
                                     headers={"Authorization": f"Bearer {self.server.reader_token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())["checkpoint"]
        except urllib.error.HTTPError as e:
            if e.code == 503 and b"no checkpoint signed yet" in e.read():
                return None
            raise

    def checkpoint(self, min_size: int, cosigned: Optional[bool] = True, timeout: float = 30) -> str:
        """The latest checkpoint once it covers min_size leaves and (unless
        cosigned is None) is cosigned by w1 or not, as asked; signed by the
        log's key in any case."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.raw_checkpoint()
            if text is not None:
                cp = open_checkpoint(text, self.key)
                if cp.size >= min_size and (cosigned is None or self.policy.satisfied(text) == cosigned):
                    return text
            assert time.monotonic() < deadline, f"no checkpoint of {min_size} leaves cosigned={cosigned} within {timeout} s; latest:\n{text}"
            if cosigned:
                self.seed(1, "witness/nudge")  # a new checkpoint to cosign
            time.sleep(0.2)

    def go_verify(self, note: str, policy_file: Path) -> subprocess.CompletedProcess:
        """`audittrail verify checkpoint --witness-policy` of the Go client."""
        cp_file = self.base / f"cp-{uuid.uuid4()}"
        cp_file.write_text(note)
        return subprocess.run([str(self.binary), "verify", "checkpoint", "--key", str(self.pub), "--witness-policy", str(policy_file),
                               str(cp_file)], capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def witness_stack(base: Path) -> Iterator[Stack]:
    binary = _server.find_binary(REPO_ROOT)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"audittrail binary not found at {binary}: build it (make build) or set AUDITTRAIL_BIN", pytrace=False)
    base.mkdir(parents=True, exist_ok=True)
    log_key, pub = base / "log-signing.key", base / "log.pub"
    out = subprocess.run([str(binary), "keygen", str(log_key)], capture_output=True, text=True, timeout=60, check=True)
    pub.write_text(out.stdout)
    witness: Optional[WitnessProc] = None
    server: Optional[_server.Server] = None
    try:
        witness = start_witness(binary, base / "witness", "witness.test/w1", pub)
        assert witness.policy_line.startswith(f"witness w1 {witness.vkey} {witness.url}"), witness.policy_line
        policy_file = base / "policy"
        policy_file.write_text("# the team's witness\n" + witness.policy_line + "quorum w1\n")
        server = _server.start(binary, base / "server", ["--log-key", str(log_key), "--witness-policy", str(policy_file), *_server.store_args()])
        yield Stack(binary, base, pub, policy_file, WitnessPolicy.from_file(policy_file), witness, server)
    finally:
        if server is not None:
            _server.stop(server)
        if witness is not None:
            witness.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with witness_stack(tmp_path_factory.mktemp("witness-e2e")) as s:
        s.seed(30, "witness/first")
        yield s


@pytest.mark.store
def test_cosigned_checkpoints_verify(stack):
    note = stack.checkpoint(stack.created)
    assert stack.policy.cosigners(note) == ("w1",)
    w = stack.policy.witnesses[0]
    assert (w.name, w.key_name, w.url) == ("w1", "witness.test/w1", stack.witness.url)
    cp = open_checkpoint(note, stack.witnessed)
    assert cp.verified and cp.size >= 30
    assert stack.go_verify(note, stack.policy_file).returncode == 0
    # Everything that opens a checkpoint with the verifier: the client's
    # get_checkpoint, search proofs, iterations, log pages.
    client = stack.client()
    assert client.get_checkpoint(stack.witnessed).size >= cp.size
    page, result = proven_page(client, "witness/first", stack.witnessed)
    assert len(result.proven) == 30 and stack.policy.satisfied(page.proofs.checkpoint)
    assert len(list(client.iter_events(F(resource_exact="witness/first"), page_size=7, verify_with=stack.witnessed))) == 30
    _, _, proofs = client.get_log_entries_with_proofs(0, 10)
    assert proofs.verify(stack.witnessed).checkpoint.size >= 30


@pytest.mark.store
def test_mirror_of_the_go_cli(stack, tmp_path):
    """A mirror written by `audittrail mirror --witness-policy` keeps the
    cosigned checkpoint: verify_mirror with the policy accepts it, with a
    policy it does not meet refuses it."""
    from h2o_audit_trail.verify import verify_mirror

    mirror = tmp_path / "mirror"
    host = stack.server.public[len("http://"):]
    out = subprocess.run([str(stack.binary), "mirror", "--addr", host, "--token", stack.server.reader_token, "--dir", str(mirror),
                          "--log-key", str(stack.pub), "--witness-policy", str(stack.policy_file)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cp = verify_mirror(mirror, stack.witnessed)
    assert cp.size >= 30 and stack.policy.satisfied((mirror / "checkpoint").read_text())
    other = WitnessPolicy.from_text(W1.line("other") + "quorum other\n")
    with pytest.raises(NotWitnessedError, match=r"not cosigned by other\)"):
        verify_mirror(mirror, stack.key.with_witnesses(other))
    assert verify_mirror(mirror, stack.key) == cp


@pytest.mark.store
def test_a_policy_requiring_another_witness(stack, tmp_path):
    """A second witness the log does not ask (a real one, run just for its
    key): a policy requiring both refuses the checkpoints, naming it, in
    Python as in Go; one requiring either accepts them."""
    w2 = start_witness(stack.binary, tmp_path / "w2", "witness.test/w2", stack.pub)
    w2.stop()
    note = stack.checkpoint(stack.created)
    strict_file = tmp_path / "strict-policy"
    strict_file.write_text(stack.witness.policy_line + w2.policy_line + "group both all w1 w2\nquorum both\n")
    strict = WitnessPolicy.from_file(strict_file)
    want = 'the checkpoint is cosigned by witnesses w1, short of the policy\'s quorum "both" (not cosigned by w2)'
    with pytest.raises(NotWitnessedError) as e:
        open_checkpoint(note, stack.key.with_witnesses(strict))
    assert want in str(e.value)
    with pytest.raises(NotWitnessedError, match=re.escape(want)):
        stack.client().get_checkpoint(stack.key.with_witnesses(strict))
    out = stack.go_verify(note, strict_file)
    assert out.returncode == 1 and want in out.stderr, out.stderr
    either = WitnessPolicy.from_text(stack.witness.policy_line + w2.policy_line + "group either any w1 w2\nquorum either\n")
    open_checkpoint(note, stack.key.with_witnesses(either))


@pytest.mark.store
def test_an_altered_cosignature_does_not_count(stack):
    note = stack.checkpoint(stack.created)
    key_name = stack.policy.witnesses[0].key_name
    open_checkpoint(note, stack.witnessed)
    # One flipped byte of the payload: in the key ID, the timestamp, the signature.
    for i in (2, 10, 12, 50, 75):
        altered = edit_cosignature(note, key_name, flip(i))
        assert altered != note
        with pytest.raises(NotWitnessedError, match="cosigned by no witness"):
            open_checkpoint(altered, stack.witnessed)
        assert open_checkpoint(altered, stack.key).size == open_checkpoint(note, stack.key).size  # the log's signature holds
        assert stack.go_verify(altered, stack.policy_file).returncode == 1
    # Without the line at all.
    stripped = "".join(line for line in note.splitlines(keepends=True) if not line.startswith(SIG_PREFIX + key_name + " "))
    assert stripped != note
    with pytest.raises(NotWitnessedError, match="cosigned by no witness"):
        open_checkpoint(stripped, stack.witnessed)
    open_checkpoint(stripped, stack.key)


@pytest.mark.store
def test_checkpoints_signed_while_the_witness_is_down(tmp_path):
    """The witness stops: the log goes on signing checkpoints, without its
    cosignature, which the verifier with the policy refuses everywhere
    (NotWitnessedError: not evidence against the log), and the one
    without accepts."""
    with witness_stack(tmp_path / "down") as s:
        s.seed(5, "witness/before")
        before = open_checkpoint(s.checkpoint(s.created), s.witnessed)
        s.witness.stop()
        names = s.seed(5, "witness/after")
        note = s.checkpoint(s.created, cosigned=False)
        cp = open_checkpoint(note, s.key)
        assert cp.size > before.size
        with pytest.raises(NotWitnessedError, match=r'cosigned by no witness, short of the policy\'s quorum "w1" \(not cosigned by w1\)'):
            open_checkpoint(note, s.witnessed)
        assert s.go_verify(note, s.policy_file).returncode == 1
        client = s.client()
        # The events' proofs, against an uncosigned checkpoint.
        page, result = proven_page(client, "witness/after", s.key)
        assert sorted(result.proven) == sorted(names) and not s.policy.satisfied(page.proofs.checkpoint)
        with pytest.raises(NotWitnessedError):
            page.proofs.verify(s.witnessed)
        with pytest.raises(NotWitnessedError):
            client.get_checkpoint(s.witnessed)
        # A policy that requires nothing accepts it.
        open_checkpoint(note, s.key.with_witnesses(WitnessPolicy.from_text("quorum none\n")))
