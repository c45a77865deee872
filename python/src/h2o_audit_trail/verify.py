"""Verification of the audittrail verifiable log, with the log's public key
alone (not in the H2O client).

Every event the server commits is a leaf of an append-only RFC 6962 Merkle
tree; the server signs a checkpoint of the tree (its size and root) at least
once per second while events arrive. A search with ``include_proofs=True``
returns, with its events, one signed checkpoint and each event's inclusion
proof; this module checks them::

    from h2o_audit_trail.verify import Verifier

    verifier = Verifier.from_key(open("log-verification.key").read())
    page = event_client.search_events(filter_, include_proofs=True)
    result = page.proofs.verify(verifier)   # raises VerificationError
    result.checkpoint.size, result.proven, result.pending

The public key is the file ``<data-dir>/log-verification.key`` of the server
(obtain it from the operator, not from the server you are checking).

What this module implements, each as the Go package ``merkle`` does
(docs/design/merkle.md), and tested against its golden vectors:

- Ed25519 signatures (RFC 8032, pure Python) and C2SP signed notes
  (:class:`Verifier`, :func:`open_checkpoint`);
- witness cosignatures (c2sp.org/tlog-cosignature, Ed25519) and witness
  policies (:class:`WitnessPolicy`, the policy file of ``audittrail serve
  --witness-policy``): ``Verifier.from_key(...).with_witnesses(policy)``
  accepts only checkpoints that the policy's quorum of witnesses cosigned
  (as Go's merkle.Witnessed, ``--witness-policy`` of the Go client);
- the checkpoint format, parsed strictly (:func:`parse_checkpoint`);
- RFC 6962 inclusion and consistency proofs (:func:`verify_inclusion`,
  :func:`verify_consistency`) against verified checkpoints only;
- the leaf encoding of an event, from the event's JSON as the server returns
  it (:func:`leaf_data`). It needs the JSON, not an
  :class:`~h2o_audit_trail.event.event.Event`: the leaf covers the times at
  nanosecond precision, and Python datetimes keep microseconds.

It depends on the standard library only.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import hashlib
import json
import os
import re
import struct
import urllib.parse
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from h2o_audit_trail import _ed25519

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "EMPTY_ROOT",
    "EventInclusion",
    "InclusionProof",
    "LEAF_VERSION",
    "LogPage",
    "LogProofs",
    "MultiInclusionProof",
    "NotWitnessedError",
    "PendingError",
    "Verified",
    "VerificationError",
    "Verifier",
    "Witness",
    "WitnessPolicy",
    "event_leaf_hash",
    "leaf_data",
    "leaf_hash",
    "empty_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "root_hash",
    "verify_consistency",
    "verify_event_inclusion",
    "verify_inclusion",
    "verify_log",
    "verify_mirror",
    "verify_multi_inclusion",
]


class VerificationError(Exception):
    """A signature, checkpoint or proof does not verify, or is malformed."""


class NotWitnessedError(VerificationError):
    """The checkpoint carries a valid signature by the log's key, but not
    the witnesses' cosignatures the verifier's :class:`WitnessPolicy`
    requires. Not evidence against the log (a witness may be down, or late):
    not a checkpoint to trust yet either; ask again later (Go:
    merkle.ErrNotWitnessed)."""


class PendingError(VerificationError):
    """Events that were to be proven are not in the server's latest signed
    checkpoint yet (pending): the server has not signed them yet, or a
    replica behind the one that served a newer checkpoint answered. Not
    evidence against the log: ask again later. Raised by the client's
    ``iter_window`` and by ``iter_events(allow_pending=False)``."""


LEAF_VERSION = 1
MAX_TREE_SIZE = (1 << 62) - 1
MAX_PROOF_HASHES = 128
HORIZON_KEYWORD = "received-before"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_MAX_ORIGIN = 255
_MAX_CHECKPOINT_TEXT = 1024
_MAX_NOTE = 16 << 10
_MAX_SIGNATURES = 100
_MAX_RING_KEYS = 16  # keys in one key file (merkle.MaxRingKeys)
_SIG_PREFIX = "\u2014 ".encode("utf-8")  # em dash, space
_ALG_ED25519 = 1
_NS = 1_000_000_000
_EPOCH_DAYS = date(1970, 1, 1).toordinal()
_MIN_HORIZON_NS = 0  # 1970-01-01T00:00:00Z
_MIN_HORIZON = "1970-01-01T00:00:00.000000000Z"  # merkle.MinHorizon, as a checkpoint writes it
_MAX_HORIZON_NS = (date(2262, 1, 1).toordinal() - _EPOCH_DAYS) * 86400 * _NS


# --- hashes ------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of a leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of a tree with these leaf hashes (the definition of
    RFC 6962 section 2.1, for tests and audits of small trees)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return bytes(leaf_hashes[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _node(root_hash(leaf_hashes[:k]), root_hash(leaf_hashes[k:]))


def _b64_hash(text: Any, what: str) -> bytes:
    """A hash in canonical, padded standard base64 (44 characters)."""
    if not isinstance(text, str) or len(text) != 44:
        raise VerificationError(f"{what}: a hash is 44 base64 characters")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as e:
        raise VerificationError(f"{what}: malformed base64") from e
    if len(raw) != 32 or base64.b64encode(raw).decode() != text:
        raise VerificationError(f"{what}: not a canonical 32-byte hash")
    return raw


def _hash_text(h: bytes) -> str:
    return base64.b64encode(h).decode()


# --- keys and signed notes ---------------------------------------------------------------------


def _valid_name(name: str) -> bool:
    return (
        0 < len(name.encode("utf-8")) <= _MAX_ORIGIN
        and "+" not in name
        and not any(c.isspace() for c in name)
        and name.isprintable()
    )


def _key_hash(name: str, key: bytes) -> int:
    return struct.unpack(">I", hashlib.sha256(name.encode("utf-8") + b"\n" + key).digest()[:4])[0]


@dataclass(frozen=True)
class Verifier:
    """The log's public key: a C2SP note verifier key
    ``<name>+<hash>+<base64(0x01 || Ed25519 public key)>``, as in the file
    ``log-verification.key``.

    After a rotation of the log's signing key the file may list several keys
    of the log, one per line, the current one first: ``previous`` holds the
    others, and a checkpoint verifies when it carries a valid signature by
    any of them.

    ``witness_policy`` (set with :meth:`with_witnesses`) makes every
    checkpoint opened with this verifier also need the cosignatures of the
    policy's quorum of witnesses (:class:`WitnessPolicy`), wherever the
    verifier goes: :func:`open_checkpoint`, :meth:`LogProofs.verify`,
    :func:`verify_mirror`, the client's ``get_checkpoint``, ``iter_events``
    and ``iter_window``."""

    name: str
    key_hash: int
    public_key: bytes
    previous: Tuple["Verifier", ...] = ()
    witness_policy: Optional["WitnessPolicy"] = None

    @classmethod
    def from_key(cls, text: Union[str, bytes]) -> "Verifier":
        """Parses the key file's content: one key per line (at most
        16), optionally newline-terminated, all named after the log."""
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if text.endswith("\n"):
            text = text[:-1]
        lines = text.split("\n")
        if len(lines) > 1:
            if len(lines) > _MAX_RING_KEYS:
                raise VerificationError(f"a key file holds at most {_MAX_RING_KEYS} keys, one per line")
            keys = [cls.from_key(line) for line in lines]
            if any(k.name != keys[0].name for k in keys):
                raise VerificationError("a log's keys share its name")
            if len({k.key_hash for k in keys}) != len(keys):
                raise VerificationError("a key is listed twice")
            return cls(keys[0].name, keys[0].key_hash, keys[0].public_key, tuple(keys[1:]))
        if not text or any(c in text for c in "\n\r\t "):
            raise VerificationError("a key file holds one key on one line")
        parts = text.split("+", 2)
        if len(parts) != 3 or not _valid_name(parts[0]) or not re.fullmatch(r"[0-9a-fA-F]{8}", parts[1]):
            raise VerificationError("malformed verifier key")
        name, hash_hex, key_b64 = parts
        try:
            key = base64.b64decode(key_b64, validate=True)
        except ValueError as e:
            raise VerificationError("malformed verifier key") from e
        if len(key) != 33 or key[0] != _ALG_ED25519:
            raise VerificationError("not an Ed25519 verifier key")
        if int(hash_hex, 16) != _key_hash(name, key):
            raise VerificationError("verifier key hash does not match the key")
        return cls(name=name, key_hash=int(hash_hex, 16), public_key=key[1:])

    def keys(self) -> Tuple["Verifier", ...]:
        """This key and the previous ones (without the witness policy)."""
        return (Verifier(self.name, self.key_hash, self.public_key),) + self.previous

    def with_witnesses(self, policy: Optional["WitnessPolicy"]) -> "Verifier":
        """This verifier (the same log keys) requiring, of every checkpoint,
        the cosignatures policy asks for (Go's merkle.Witnessed); None
        returns it without a policy (merkle.Unwitnessed)."""
        if policy is not None and not isinstance(policy, WitnessPolicy):
            raise TypeError("with_witnesses takes a WitnessPolicy (WitnessPolicy.from_file) or None")
        return dataclasses.replace(self, witness_policy=policy)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return _ed25519.verify(self.public_key, message, signature)


def _split_note(msg: bytes) -> Tuple[bytes, bytes]:
    """The text of the signed note msg (its lines before the blank line,
    with the final newline) and its signature block (after the blank line),
    after the checks of the whole note's encoding."""
    if len(msg) > _MAX_NOTE:
        raise VerificationError("signed note too large")
    try:
        decoded = msg.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VerificationError("signed note is not UTF-8") from e
    if any(c < " " and c != "\n" for c in decoded):
        raise VerificationError("signed note has control characters")
    split = msg.rfind(b"\n\n")
    if split < 0:
        raise VerificationError("malformed signed note: no signature block")
    text, sigs = msg[: split + 1], msg[split + 2:]
    if not sigs or not sigs.endswith(b"\n"):
        raise VerificationError("malformed signed note: no signature")
    return text, sigs


def _note_signatures(sigs: bytes) -> Iterator[Tuple[str, int, bytes]]:
    """(name, key hash, signature) of each line of a signature block, in
    order, raising VerificationError at the first malformed line."""
    lines = sigs[:-1].split(b"\n")
    if len(lines) > _MAX_SIGNATURES:
        raise VerificationError("malformed signed note: too many signatures")
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError("malformed signed note: bad signature line")
        name, _, b64 = line[len(_SIG_PREFIX):].decode("utf-8").partition(" ")
        try:
            sig = base64.b64decode(b64, validate=True)
        except ValueError as e:
            raise VerificationError("malformed signed note: bad signature encoding") from e
        if not _valid_name(name) or not b64 or len(sig) < 5:
            raise VerificationError("malformed signed note: bad signature line")
        yield name, struct.unpack(">I", sig[:4])[0], sig[4:]


def _open_note(msg: bytes, verifier: Verifier) -> str:
    """The text of the signed note msg, after checking that it carries a
    valid signature by verifier (C2SP signed-note; other keys' signatures
    are ignored, a bad one by verifier's key fails). Witnesses'
    cosignatures are verifier.witness_policy's to check (open_checkpoint)."""
    text, sigs = _split_note(msg)
    found = False
    keys = verifier.keys()
    for name, key_hash, sig in _note_signatures(sigs):
        key = next((k for k in keys if k.name == name and k.key_hash == key_hash), None)
        if key is None:
            continue  # another key's signature (a witness): not ours to check
        if not key.verify(text, sig):
            raise VerificationError(f"invalid signature by {name}")
        found = True
    if not found:
        raise VerificationError(f"no signature by the log's key {verifier.name}")
    return text.decode("utf-8")


# --- witness cosignatures ----------------------------------------------------------------------

_MAX_POLICY = 64 << 10  # bytes of a policy file (witness.maxPolicySize)
_ALG_COSIGNATURE_V1 = 4  # an Ed25519 cosignature/v1 key (c2sp.org/tlog-cosignature)
_COSIGNATURE_SIZE = 8 + 64  # timestamp || Ed25519 signature, after the key hash
_POLICY_KEYWORDS = frozenset(("witness", "group", "any", "all", "none", "quorum", "log"))
_THRESHOLD = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Witness:
    """One witness of a :class:`WitnessPolicy`: its cosignature/v1 Ed25519
    key (c2sp.org/tlog-cosignature)."""

    name: str
    """Its name in the policy file (what error messages say)."""
    key_name: str
    """The name in its cosignature lines: the vkey's name."""
    key_hash: int
    """The key ID in its cosignatures: the first 4 bytes of
    SHA-256(key_name || "\\n" || 0x04 || public_key), big endian."""
    public_key: bytes = field(repr=False)
    """The 32-byte Ed25519 public key."""
    url: str
    """The witness's URL prefix as the policy gives it (the log posts to
    <url>/add-checkpoint; verifiers do not use it)."""

    @classmethod
    def from_vkey(cls, name: str, vkey: str, url: str = "") -> "Witness":
        """The witness name with the vkey ``<key name>+<hash>+<base64(type ||
        public key)>`` of type 0x04 (cosignature/v1, as ``audittrail
        witness`` prints it) or 0x01 (a plain Ed25519 note key, used as a
        cosignature/v1 key, so its key ID is computed with 0x04)."""
        key_name, _, rest = vkey.partition("+")
        hash_hex, _, key_b64 = rest.partition("+")
        if not _valid_name(key_name) or not re.fullmatch(r"[0-9a-fA-F]{8}", hash_hex) or not key_b64:
            raise VerificationError(f"witness {name}: malformed vkey {vkey!r}: want <name>+<8 hex digits>+<base64 key>")
        try:
            key = base64.b64decode(key_b64, validate=True)
        except ValueError:
            raise VerificationError(f"witness {name}: the vkey's key is not base64") from None
        if not key or key[0] not in (_ALG_ED25519, _ALG_COSIGNATURE_V1):
            alg = f"0x{key[0]:02x}" if key else "none"
            raise VerificationError(f"witness {name}: the vkey's key type is {alg}, not an Ed25519 cosignature/v1 key (0x04) "
                                    "or Ed25519 key (0x01)")
        if len(key) != 33:
            raise VerificationError(f"witness {name}: the vkey's Ed25519 key has {len(key) - 1} bytes, not 32")
        public_key = key[1:]
        key_hash = _key_hash(key_name, bytes([_ALG_COSIGNATURE_V1]) + public_key)
        stated = int(hash_hex, 16)
        # A type-0x01 vkey states the hash of its own encoding (as any note
        # key does); accept the cosignature/v1 one too.
        if stated != key_hash and not (key[0] == _ALG_ED25519 and stated == _key_hash(key_name, key)):
            raise VerificationError(f"witness {name}: the vkey's hash {hash_hex} does not match its key")
        return cls(name=name, key_name=key_name, key_hash=key_hash, public_key=public_key, url=url)

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether signature (after the key ID: timestamp || Ed25519
        signature) is this witness's cosignature of the note text (the note's
        lines with the final newline): the signed message is
        ``cosignature/v1\\ntime <timestamp>\\n`` followed by text."""
        if len(signature) != _COSIGNATURE_SIZE:
            return False
        timestamp = struct.unpack(">Q", signature[:8])[0]
        message = b"cosignature/v1\ntime %d\n" % timestamp + text
        return _ed25519.verify(self.public_key, message, signature[8:])

    def cosigned(self, signed_note: Union[str, bytes]) -> bool:
        """Whether signed_note carries a valid cosignature by this witness
        (the first signature line by its key decides, as in Go's note.Open;
        a malformed note carries none)."""
        return bool(_cosigners((self,), signed_note))


# A policy component: a witness (its index in WitnessPolicy.witnesses) or a
# group (threshold, components).
_Component = Union[int, Tuple[int, Tuple[Any, ...]]]


@dataclass(frozen=True)
class WitnessPolicy:
    """A witness policy: the witnesses and the quorum of their cosignatures a
    checkpoint must carry (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature),
    in the policy file format of Sigsum as transparency-dev/formats/witness
    reads it, the file ``audittrail serve --witness-policy`` and the Go
    client's ``--witness-policy`` take::

        # comments run to the end of the line
        witness w1 witness1.example/w+1a2b3c4d+BAn... https://witness1.example/
        witness w2 witness2.example/w+5e6f7a8b+BAn... https://witness2.example/
        group both all w1 w2
        quorum both

    A witness line names a witness, its vkey (``audittrail witness`` prints
    the line) and its URL; a group line gives a threshold (a number, "any"
    or "all") of earlier witnesses and groups; the quorum line names the
    witness or group a checkpoint must satisfy, or "none"; log lines are
    ignored. Use it with :meth:`Verifier.with_witnesses`, or :meth:`check`
    a signed note directly."""

    witnesses: Tuple[Witness, ...]
    """In the file's order."""
    quorum: str
    """The name of the component required ("none": nothing is)."""
    _root: Any = field(repr=False)  # the quorum component; (0, ()) for none

    @classmethod
    def from_text(cls, text: Union[str, bytes]) -> "WitnessPolicy":
        """Parses the text of a policy file; raises VerificationError."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        if len(text) > _MAX_POLICY:
            raise VerificationError(f"witness policy: {len(text)} bytes, more than the {_MAX_POLICY} a policy may have")
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError("witness policy: not UTF-8 text") from None
        witnesses: List[Witness] = []
        components: Dict[str, _Component] = {}
        quorum = ""

        def fail(lineno: int, msg: str) -> VerificationError:
            return VerificationError(f"witness policy: line {lineno}: {msg}")

        def new_name(lineno: int, kind: str, name: str) -> str:
            if name in _POLICY_KEYWORDS:
                raise fail(lineno, f"invalid {kind} name {name!r}: a keyword")
            if name in components:
                raise fail(lineno, f"duplicate component name {name!r}")
            return name

        for lineno, raw in enumerate(decoded.split("\n"), 1):
            line = raw.strip().partition("#")[0]
            fields = line.split()
            if not fields:
                continue
            keyword = fields[0]
            if keyword == "log":
                continue  # the log's own key: the verifier's business
            if keyword == "witness":
                if len(fields) != 4:
                    raise fail(lineno, f"invalid witness definition {line.strip()!r}: want witness NAME VKEY URL")
                name = new_name(lineno, "witness", fields[1])
                url = fields[3]
                if not _http_url(url):
                    raise fail(lineno, f"witness {name}: the URL {url!r} is not an http or https URL")
                try:
                    w = Witness.from_vkey(name, fields[2], url)
                except VerificationError as e:
                    raise fail(lineno, str(e)) from None
                components[name] = len(witnesses)
                witnesses.append(w)
            elif keyword == "group":
                if len(fields) < 3:
                    raise fail(lineno, f"invalid group definition {line.strip()!r}: want group NAME N|any|all CHILD...")
                name = new_name(lineno, "group", fields[1])
                threshold, children = fields[2], fields[3:]
                if threshold == "any":
                    n = 1
                elif threshold == "all":
                    n = len(children)
                elif _THRESHOLD.fullmatch(threshold) and len(threshold.lstrip("0")) <= 3 and int(threshold) <= 255:
                    n = int(threshold)
                else:
                    raise fail(lineno, f"invalid threshold {threshold!r} for group {name}: want a number, any or all")
                if n > len(children):
                    raise fail(lineno, f"group {name} with {len(children)} children cannot have threshold {n}")
                if n == 0:
                    # Satisfied by no cosignature at all, while reading as a requirement.
                    raise fail(lineno, f"group {name} has threshold 0: it would accept a checkpoint without any "
                                       f"cosignature (write \"quorum none\" for no requirement)")
                members = []
                for i, child in enumerate(children):
                    if child in children[:i]:
                        # It would count its one cosignature twice.
                        raise fail(lineno, f"group {name}: {child} is listed twice")
                    if child in _POLICY_KEYWORDS:
                        raise fail(lineno, f"invalid component name {child!r}: a keyword")
                    if child not in components:
                        raise fail(lineno, f"unknown component {child!r} in group {name} (define it on an earlier line)")
                    members.append(components[child])
                components[name] = (n, tuple(members))
            elif keyword == "quorum":
                if len(fields) != 2:
                    raise fail(lineno, f"invalid quorum definition {line.strip()!r}: want quorum NAME or quorum none")
                quorum = fields[1]
            else:
                raise fail(lineno, f"unknown keyword {keyword!r}")
        if not quorum:
            raise VerificationError("witness policy: the policy must define a quorum (quorum NAME, or quorum none)")
        if quorum == "none":
            root: _Component = (0, ())
        elif quorum in _POLICY_KEYWORDS:
            raise VerificationError(f"witness policy: invalid quorum name {quorum!r}: a keyword")
        elif quorum not in components:
            raise VerificationError(f"witness policy: the quorum component {quorum!r} is not defined")
        else:
            root = components[quorum]
            if isinstance(root, int):
                root = (1, (root,))
        seen: Dict[Any, str] = {}
        for w in witnesses:
            for k in (w.key_hash, w.public_key):
                if k in seen:
                    raise VerificationError(f"witness policy: witnesses {seen[k]} and {w.name} have the same key")
                seen[k] = w.name
        return cls(tuple(witnesses), quorum, root)

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"]) -> "WitnessPolicy":
        """Reads and parses a policy file; raises VerificationError (naming
        the file) for a bad policy, OSError when it cannot be read."""
        with open(os.fspath(path), "rb") as f:
            text = f.read(_MAX_POLICY + 1)
        if len(text) > _MAX_POLICY:
            raise VerificationError(f"{os.fspath(path)}: witness policy: more than the {_MAX_POLICY} bytes a policy may have")
        try:
            return cls.from_text(text)
        except VerificationError as e:
            raise VerificationError(f"{os.fspath(path)}: {e}") from None

    def cosigners(self, signed_note: Union[str, bytes]) -> Tuple[str, ...]:
        """The names of the policy's witnesses whose valid cosignature
        signed_note carries, in the policy's order. For each witness the
        first signature line with its key name and key ID decides (Go's
        note.Open); lines of other keys are ignored; a malformed note has
        none."""
        return _cosigners(self.witnesses, signed_note)

    def satisfied(self, signed_note: Union[str, bytes]) -> bool:
        """Whether signed_note carries the cosignatures of the quorum."""
        if self._root == (0, ()):
            return True
        return self._satisfied(self._root, set(self.cosigners(signed_note)))

    def _satisfied(self, c: _Component, cosigned: Set[str]) -> bool:
        if isinstance(c, int):
            return self.witnesses[c].name in cosigned
        n, children = c
        return sum(1 for child in children if self._satisfied(child, cosigned)) >= n

    def check(self, signed_note: Union[str, bytes]) -> None:
        """Returns when signed_note (a checkpoint with its signatures)
        carries the cosignatures the quorum requires; otherwise raises
        :class:`NotWitnessedError` naming the witnesses that cosigned it and
        those that did not. It does not check the log's signature
        (:func:`open_checkpoint` does, with a verifier
        :meth:`~Verifier.with_witnesses`)."""
        if self._root == (0, ()):
            return
        have = self.cosigners(signed_note)
        if self._satisfied(self._root, set(have)):
            return
        missing = [w.name for w in self.witnesses if w.name not in have]
        by = "witnesses " + ", ".join(have) if have else "no witness"
        raise NotWitnessedError(f"the checkpoint is cosigned by {by}, short of the policy's quorum "
                                f"{json.dumps(self.quorum, ensure_ascii=False)} (not cosigned by {', '.join(missing)})")


def _cosigners(witnesses: Sequence[Witness], signed_note: Union[str, bytes]) -> Tuple[str, ...]:
    """The names of the witnesses whose valid cosignature signed_note
    carries (WitnessPolicy.cosigners)."""
    msg = signed_note.encode("utf-8") if isinstance(signed_note, str) else bytes(signed_note)
    try:
        text, sigs = _split_note(msg)
        lines = list(_note_signatures(sigs))
    except VerificationError:
        return ()
    first: Dict[Tuple[str, int], bytes] = {}
    for name, key_hash, sig in lines:
        first.setdefault((name, key_hash), sig)
    return tuple(w.name for w in witnesses
                 if (w.key_name, w.key_hash) in first and w.verify(text, first[w.key_name, w.key_hash]))


def _http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc.rpartition("@")[2])


# --- checkpoints -------------------------------------------------------------------------------

_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_HORIZON = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{9})Z")


def _horizon_ns(text: str) -> int:
    m = _HORIZON.fullmatch(text)
    if m is None:
        raise VerificationError(f"checkpoint horizon {text!r} is not in the form 2006-01-02T15:04:05.000000000Z")
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        days = date(y, mo, d).toordinal() - _EPOCH_DAYS
    except ValueError as e:
        raise VerificationError(f"checkpoint horizon {text!r} is not a date") from e
    if h > 23 or mi > 59 or s > 59:
        raise VerificationError(f"checkpoint horizon {text!r} is not a time")
    ns = ((days * 86400 + h * 3600 + mi * 60 + s) * _NS) + int(m.group(7))
    if not _MIN_HORIZON_NS <= ns <= _MAX_HORIZON_NS:
        raise VerificationError(f"checkpoint horizon {text!r} is out of range")
    return ns


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint of the log: the tree of ``size`` leaves has root
    ``root``, and its leaves are the events received before
    ``received_before``. Only one returned by :func:`open_checkpoint` is
    signature-verified; the verifiers refuse any other."""

    origin: str
    size: int
    root: bytes
    received_before: str
    """The receive-time horizon, as in the text (UTC, nine fractional digits)."""
    _signed: Optional[str] = field(default=None, repr=False, compare=False)

    @property
    def received_before_ns(self) -> int:
        """The horizon in nanoseconds since 1970-01-01T00:00:00Z."""
        return _horizon_ns(self.received_before)

    @property
    def root_base64(self) -> str:
        return _hash_text(self.root)

    def text(self) -> str:
        """The checkpoint's note text (without signatures)."""
        return f"{self.origin}\n{self.size}\n{_hash_text(self.root)}\n{HORIZON_KEYWORD} {self.received_before}\n"

    @property
    def verified(self) -> bool:
        """True when the checkpoint came from :func:`open_checkpoint`."""
        return self._signed is not None and self._signed == self.text()


def parse_checkpoint(text: Union[str, bytes]) -> Checkpoint:
    """Parses a checkpoint's note text strictly (exactly the four lines the
    log writes, docs/design/merkle.md). The result is not verified."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise VerificationError("checkpoint text is not UTF-8") from e
    if len(text.encode("utf-8")) > _MAX_CHECKPOINT_TEXT:
        raise VerificationError("checkpoint text too long")
    if not text.endswith("\n"):
        raise VerificationError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 4:
        raise VerificationError(f"checkpoint text has {len(lines)} lines, want 4")
    origin, size_text, root_text, horizon_line = lines
    if not _valid_name(origin):
        raise VerificationError(f"checkpoint origin {origin!r} is invalid")
    if not _SIZE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise VerificationError(f"checkpoint size {size_text!r} is malformed")
    size = int(size_text)
    root = _b64_hash(root_text, "checkpoint root")
    prefix = HORIZON_KEYWORD + " "
    if not horizon_line.startswith(prefix):
        raise VerificationError(f"checkpoint line 4 must be {HORIZON_KEYWORD!r} and a time")
    horizon = horizon_line[len(prefix):]
    _horizon_ns(horizon)
    if size == 0 and root != EMPTY_ROOT:
        raise VerificationError("checkpoint of the empty tree must have the empty root")
    cp = Checkpoint(origin=origin, size=size, root=root, received_before=horizon)
    if cp.text() != text:
        raise VerificationError("checkpoint text is not canonical")
    return cp


def open_checkpoint(signed_note: Union[str, bytes], verifier: Union[Verifier, str]) -> Checkpoint:
    """Checks that signed_note (the checkpoint as the server returns it)
    carries a valid signature by verifier, parses it strictly, and checks
    that its origin is the key's name; when verifier has a witness policy
    (:meth:`Verifier.with_witnesses`), checks last that it carries the
    cosignatures the policy requires, raising :class:`NotWitnessedError`
    (a VerificationError) otherwise. Returns the verified checkpoint."""
    if not isinstance(verifier, Verifier):
        verifier = Verifier.from_key(verifier)
    msg = signed_note.encode("utf-8") if isinstance(signed_note, str) else bytes(signed_note)
    text = _open_note(msg, verifier)
    cp = parse_checkpoint(text)
    if cp.origin != verifier.name:
        raise VerificationError(f"checkpoint origin {cp.origin!r} is not the key name {verifier.name!r}")
    if verifier.witness_policy is not None:
        try:
            verifier.witness_policy.check(msg)
        except NotWitnessedError as e:
            raise NotWitnessedError(f"signed checkpoint of {cp.size} leaves: not cosigned as the witness policy requires: {e}") from None
    return Checkpoint(cp.origin, cp.size, cp.root, cp.received_before, _signed=text)


def empty_checkpoint(origin: str) -> Checkpoint:
    """The checkpoint of the empty tree of the log named origin (the log
    key's name, ``Verifier.name``): size 0, :data:`EMPTY_ROOT`, horizon
    1970-01-01T00:00:00.000000000Z. It is verified without a signature,
    since every tree of the log extends the empty one and every event was
    received after that horizon: the older end of a window that starts at
    the log's first event (the client's ``iter_window``). Go:
    merkle.EmptyCheckpoint."""
    if not isinstance(origin, str) or not _valid_name(origin):
        raise VerificationError(f"checkpoint origin {origin!r} is invalid")
    cp = Checkpoint(origin=origin, size=0, root=EMPTY_ROOT, received_before=_MIN_HORIZON)
    return dataclasses.replace(cp, _signed=cp.text())


def _require_verified(*cps: Checkpoint) -> None:
    for cp in cps:
        if not isinstance(cp, Checkpoint) or not cp.verified:
            raise VerificationError("checkpoint is not signature-verified: obtain it from open_checkpoint")


# --- proofs ------------------------------------------------------------------------------------


def _uint(value: Any, what: str) -> int:
    """A JSON unsigned integer: a number, or a decimal string (protojson's
    form of uint64)."""
    if isinstance(value, bool):
        raise VerificationError(f"{what} is not an integer")
    if isinstance(value, str) and re.fullmatch(r"0|[1-9][0-9]*", value):
        value = int(value)
    if not isinstance(value, int) or value < 0 or value > MAX_TREE_SIZE:
        raise VerificationError(f"{what} is not an integer in range")
    return value


def _hash_list(items: Any, what: str, limit: int = MAX_PROOF_HASHES) -> List[bytes]:
    if not isinstance(items, list):
        raise VerificationError(f"{what}: hashes must be a list")
    if len(items) > limit:
        raise VerificationError(f"{what}: more than {limit} hashes")
    return [_b64_hash(h, f"{what} hash {i}") for i, h in enumerate(items)]


def _strict_object(data: Union[str, bytes, Mapping[str, Any]], keys: Tuple[str, ...], what: str) -> Mapping[str, Any]:
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise VerificationError(f"{what}: not JSON") from e
    if not isinstance(data, Mapping) or set(data) != set(keys):
        raise VerificationError(f"{what}: want exactly the keys {', '.join(keys)}")
    return data


@dataclass(frozen=True)
class InclusionProof:
    """An RFC 6962 audit path: leaf ``leaf_index`` of the tree of
    ``tree_size`` leaves. Its JSON form (the API's GetInclusionProof, the
    ``audittrail verify inclusion --proof`` file) is
    ``{"leaf_index": N, "tree_size": M, "hashes": ["<base64>", ...]}``."""

    leaf_index: int
    tree_size: int
    hashes: Tuple[bytes, ...]

    @classmethod
    def from_json(cls, data: Union[str, bytes, Mapping[str, Any]]) -> "InclusionProof":
        obj = _strict_object(data, ("leaf_index", "tree_size", "hashes"), "inclusion proof")
        return cls(_uint(obj["leaf_index"], "leaf_index"), _uint(obj["tree_size"], "tree_size"),
                   tuple(_hash_list(obj["hashes"], "inclusion proof")))

    def to_json(self) -> str:
        return json.dumps({"leaf_index": self.leaf_index, "tree_size": self.tree_size,
                           "hashes": [_hash_text(h) for h in self.hashes]})


@dataclass(frozen=True)
class ConsistencyProof:
    """An RFC 6962 consistency proof from the tree of ``old_size`` leaves to
    the tree of ``new_size``. JSON form:
    ``{"old_size": N, "new_size": M, "hashes": ["<base64>", ...]}``."""

    old_size: int
    new_size: int
    hashes: Tuple[bytes, ...]

    @classmethod
    def from_json(cls, data: Union[str, bytes, Mapping[str, Any]]) -> "ConsistencyProof":
        obj = _strict_object(data, ("old_size", "new_size", "hashes"), "consistency proof")
        return cls(_uint(obj["old_size"], "old_size"), _uint(obj["new_size"], "new_size"),
                   tuple(_hash_list(obj["hashes"], "consistency proof")))


def inclusion_root(leaf_index: int, tree_size: int, leaf: bytes, hashes: Sequence[bytes]) -> bytes:
    """The root that the audit path hashes lead to from leaf at leaf_index
    in a tree of tree_size leaves (RFC 9162 section 2.1.3.2). Raises
    VerificationError when the path has the wrong length."""
    if leaf_index >= tree_size:
        raise VerificationError(f"leaf {leaf_index} is not in a tree of size {tree_size}")
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in hashes:
        if sn == 0:
            raise VerificationError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof too short")
    return r


def verify_inclusion(cp: Checkpoint, leaf_index: int, leaf: bytes, proof: InclusionProof) -> None:
    """Checks that the verified checkpoint's tree has the leaf hash leaf at
    leaf_index. The size and root come from the checkpoint, never from the
    proof: a proof for another size or leaf is refused."""
    _require_verified(cp)
    if leaf_index >= cp.size:
        raise VerificationError(f"leaf {leaf_index} is not in the checkpoint's tree of size {cp.size}")
    if proof.tree_size != cp.size:
        raise VerificationError(f"inclusion proof is for tree size {proof.tree_size}, the checkpoint has {cp.size}")
    if proof.leaf_index != leaf_index:
        raise VerificationError(f"inclusion proof is for leaf {proof.leaf_index}, not {leaf_index}")
    if len(proof.hashes) > MAX_PROOF_HASHES:
        raise VerificationError("inclusion proof too long")
    if inclusion_root(leaf_index, cp.size, leaf, proof.hashes) != cp.root:
        raise VerificationError(f"leaf {leaf_index} is not proven in the tree of size {cp.size}")


@dataclass(frozen=True)
class MultiInclusionProof:
    """The proof that the tree of ``tree_size`` leaves holds several leaves
    at once (the events of a page, or of a batch receipt): each hash their
    audit paths need, once. Walking the tree from the root, left subtree
    before right (RFC 9162 section 2.1.1 splits), down every subtree that
    holds a proven leaf, the hashes are those of the subtrees met that hold
    none, in that order (docs/design/merkle.md). JSON form:
    ``{"tree_size": M, "hashes": ["<base64>", ...]}``."""

    tree_size: int
    hashes: Tuple[bytes, ...]

    @classmethod
    def from_json(cls, data: Union[str, bytes, Mapping[str, Any]], max_leaves: int = 1000) -> "MultiInclusionProof":
        obj = _strict_object(data, ("tree_size", "hashes"), "multi-inclusion proof")
        return cls(_uint(obj["tree_size"], "tree_size"),
                   tuple(_hash_list(obj["hashes"], "multi-inclusion proof", max_leaves * MAX_PROOF_HASHES)))


def verify_multi_inclusion(cp: Checkpoint, leaves: Sequence[Tuple[int, bytes]], proof: MultiInclusionProof) -> Dict[int, InclusionProof]:
    """Checks that the verified checkpoint's tree holds every one of leaves
    (pairs of leaf index and leaf hash, in any order; an index may repeat
    only with the same hash) with the multi-inclusion proof. Returns each
    leaf's own audit path by leaf index (an :class:`InclusionProof` that
    :func:`verify_inclusion` accepts)."""
    _require_verified(cp)
    if proof.tree_size != cp.size:
        raise VerificationError(f"multi-inclusion proof is for tree size {proof.tree_size}, the checkpoint has {cp.size}")
    by_index: Dict[int, bytes] = {}
    for index, h in leaves:
        if not isinstance(index, int) or isinstance(index, bool) or index < 0 or index >= cp.size:
            raise VerificationError(f"leaf {index} is not in the checkpoint's tree of size {cp.size}")
        if by_index.setdefault(index, bytes(h)) != bytes(h):
            raise VerificationError(f"two different leaves at index {index}")
    if not by_index:
        if proof.hashes:
            raise VerificationError("a multi-inclusion proof of no leaves must be empty")
        return {}
    indexes = sorted(by_index)
    paths: Dict[int, List[bytes]] = {i: [] for i in indexes}
    hashes = iter(proof.hashes)

    def walk(lo: int, hi: int, ls: List[int]) -> bytes:
        # ls: the proven leaf indexes in [lo, hi), ascending.
        if not ls:
            h = next(hashes, None)
            if h is None:
                raise VerificationError("malformed multi-inclusion proof: too few hashes")
            return h
        if hi - lo == 1:
            return by_index[ls[0]]
        mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))
        m = bisect.bisect_left(ls, mid)
        left, right = walk(lo, mid, ls[:m]), walk(mid, hi, ls[m:])
        # Appended after the hashes below: each path comes out leaf side first.
        for i in ls[:m]:
            paths[i].append(right)
        for i in ls[m:]:
            paths[i].append(left)
        return _node(left, right)

    root = walk(0, cp.size, indexes)
    if next(hashes, None) is not None:
        raise VerificationError("malformed multi-inclusion proof: too many hashes")
    if root != cp.root:
        raise VerificationError(f"the {len(indexes)} leaves are not proven in the tree of size {cp.size}")
    return {i: InclusionProof(i, cp.size, tuple(paths[i])) for i in indexes}


def consistency_check(old_size: int, old_root: bytes, new_size: int, new_root: bytes, hashes: Sequence[bytes]) -> None:
    """Checks an RFC 6962 consistency proof between two roots, 0 < old_size
    < new_size (RFC 9162 section 2.1.4.2)."""
    if not 0 < old_size < new_size:
        raise VerificationError(f"no consistency proof from size {old_size} to size {new_size}")
    path = list(hashes)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    if not path:
        raise VerificationError("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise VerificationError(f"tree of size {old_size} is not proven a prefix of the tree of size {new_size}")


def verify_consistency(older: Checkpoint, newer: Checkpoint, proof: ConsistencyProof) -> None:
    """Checks that the tree of the verified checkpoint older is a prefix of
    the tree of the verified checkpoint newer: same origin, sizes as in the
    proof, equal roots for equal sizes, and horizons that do not contradict
    each other (a larger tree cannot have an earlier or equal horizon)."""
    _require_verified(older, newer)
    if older.origin != newer.origin:
        raise VerificationError(f"checkpoints of different logs ({older.origin!r}, {newer.origin!r})")
    if older.size > newer.size:
        raise VerificationError(f"checkpoint of size {older.size} is not older than one of size {newer.size}")
    if proof.old_size != older.size or proof.new_size != newer.size:
        raise VerificationError(f"consistency proof is for sizes {proof.old_size}..{proof.new_size}, "
                                f"the checkpoints have {older.size}..{newer.size}")
    if len(proof.hashes) > MAX_PROOF_HASHES:
        raise VerificationError("consistency proof too long")
    if older.size == newer.size:
        if proof.hashes:
            raise VerificationError("consistency proof between equal sizes must be empty")
        if older.root != newer.root:
            raise VerificationError(f"two checkpoints of size {older.size} with different roots: the log forked")
    elif older.size == 0:
        if proof.hashes:
            raise VerificationError("consistency proof from the empty tree must be empty")
    else:
        consistency_check(older.size, older.root, newer.size, newer.root, proof.hashes)
    if older.size < newer.size and not older.received_before_ns < newer.received_before_ns:
        raise VerificationError(f"horizons contradict: size {older.size} received before {older.received_before}, "
                                f"size {newer.size} received before {newer.received_before}")


# --- the leaf of an event ----------------------------------------------------------------------

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})")
_EVENT_TYPES = {"TYPE_UNSPECIFIED": 0, "TYPE_API": 1, "TYPE_SYSTEM": 2}


def _instant(text: Any, what: str) -> Tuple[int, int]:
    """An RFC 3339 timestamp as (Unix seconds, nanoseconds), exactly."""
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise VerificationError(f"{what} is not an RFC 3339 timestamp: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        days = date(y, mo, d).toordinal() - _EPOCH_DAYS
    except ValueError as e:
        raise VerificationError(f"{what} is not a date: {text!r}") from e
    if h > 23 or mi > 59 or s > 59:
        raise VerificationError(f"{what} is not a time: {text!r}")
    seconds = days * 86400 + h * 3600 + mi * 60 + s
    zone = m.group(8)
    if zone not in ("Z", "z"):
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds, int((m.group(7) or "").ljust(9, "0"))


def _str(value: Any, what: str) -> bytes:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise VerificationError(f"{what} is not a string")
    b = value.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def _map(value: Any, what: str) -> bytes:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise VerificationError(f"{what} is not an object")
    items = sorted(((_str(k, what)[4:], v) for k, v in value.items()), key=lambda kv: kv[0])
    out = struct.pack(">I", len(items))
    for k, v in items:
        out += struct.pack(">I", len(k)) + k + _str(v, what)
    return out


def _int32(value: Any, what: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise VerificationError(f"{what} is not a 32-bit integer")
    return value


def leaf_data(event: Mapping[str, Any], seq: int) -> bytes:
    """The leaf data (encoding version 1, docs/design/merkle.md) of an event
    given as the server's JSON (the dict of a search answer's event, with
    lowerCamelCase keys) at sequence number seq (its leaf index + 1).

    Every field is covered except loginPrincipal. Missing keys read as their
    zero value, a missing status as no status (that is how the server writes
    them)."""
    name = event.get("name")
    if not isinstance(name, str) or not name.startswith("events/") or name == "events/":
        raise VerificationError(f"event name {name!r} is not events/<id>")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_TREE_SIZE:
        raise VerificationError(f"seq {seq!r} is out of range")
    out = bytes([LEAF_VERSION]) + _str(name[len("events/"):], "name")
    for key in ("eventTime", "receiveTime"):
        value = event.get(key)
        secs, nanos = _instant(value, key) if value is not None else (-62135596800, 0)  # Go's zero time
        out += struct.pack(">qI", secs, nanos)
    out += _str(event.get("eventSource"), "eventSource") + _str(event.get("action"), "action")
    read_only = event.get("readOnly", False)
    if not isinstance(read_only, bool):
        raise VerificationError("readOnly is not a boolean")
    out += b"\x01" if read_only else b"\x00"
    status = event.get("status")
    if status is None:
        out += b"\x00"
    elif isinstance(status, Mapping):
        out += b"\x01" + struct.pack(">i", _int32(status.get("code", 0), "status.code")) + _str(status.get("message"), "status.message")
    else:
        raise VerificationError("status is not an object")
    for key in ("principal", "sourceIpAddress", "userAgent", "resource", "workspace"):
        out += _str(event.get(key), key)
    out += _map(event.get("requestParameters"), "requestParameters") + _map(event.get("metadata"), "metadata")
    etype = event.get("type", "TYPE_UNSPECIFIED")
    if isinstance(etype, str):
        if etype not in _EVENT_TYPES:
            raise VerificationError(f"unknown event type {etype!r}")
        etype = _EVENT_TYPES[etype]
    out += struct.pack(">i", _int32(etype, "type")) + struct.pack(">Q", seq)
    return out


def event_leaf_hash(event: Mapping[str, Any], seq: int) -> bytes:
    """The RFC 6962 leaf hash of an event (server JSON) at seq."""
    return leaf_hash(leaf_data(event, seq))


class _Frontier:
    """The right edge of a growing tree: the roots of its perfect subtrees,
    largest first (merkle.Frontier in Go), so that a root is computed in
    one pass over the leaves, keeping at most 64 hashes."""

    def __init__(self) -> None:
        self.size = 0
        self.hashes: List[bytes] = []

    def append(self, leaf: bytes) -> None:
        h, n = leaf, self.size
        while n & 1:
            h = _node(self.hashes.pop(), h)
            n >>= 1
        self.hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = _node(left, h)
        return h


def _leaf_hash_from_b64(text: str) -> bytes:
    """A leaf hash in the API's JSON of bytes (standard base64, 32 bytes)."""
    try:
        h = base64.b64decode(text, validate=True)
    except ValueError as err:
        raise VerificationError(f"a leaf hash that is not base64: {text!r}") from err
    if len(h) != 32:
        raise VerificationError(f"a leaf hash of {len(h)} bytes, not 32")
    if base64.b64encode(h).decode() != text:  # one spelling per hash, as Go's mirror reads it
        raise VerificationError(f"a leaf hash in a non-canonical base64 spelling: {text!r}")
    return h


@dataclass(frozen=True)
class LogPage:
    """One page of the log's leaves (``EventClient.get_log_page``): events,
    or the leaf hashes of leaves whose events the server deleted under a
    retention policy, never both."""

    events: List[Dict[str, Any]]
    """The events (server JSON) of the page's leaves, in leaf order."""
    deleted_leaf_hashes: List[bytes]
    """When the page's first leaf was deleted: the leaf hashes of the run of
    deleted leaves (32 bytes each), in leaf order."""
    committed_size: int
    """The number of events committed when the page was read."""

    @property
    def entries(self) -> List[Dict[str, Any]]:
        """The page's leaves as verify_log takes them: the events, or
        ``{"deletedLeafHash": <base64>}`` per deleted leaf."""
        if self.deleted_leaf_hashes:
            return [{_DELETED_KEY: base64.b64encode(h).decode()} for h in self.deleted_leaf_hashes]
        return list(self.events)

    def __len__(self) -> int:
        return len(self.events) + len(self.deleted_leaf_hashes)


# _DELETED_KEY is the one key of an entry standing for a leaf whose event
# was deleted (a line of an "audittrail mirror --allow-deleted" directory).
_DELETED_KEY = "deletedLeafHash"


def _check_log(cp: Checkpoint, events: Iterable[Mapping[str, Any]]) -> Tuple[int, int]:
    """verify_log over any iterable, in one pass; returns the leaves
    checked and how many of them were deleted leaves."""
    _require_verified(cp)
    horizon = cp.received_before_ns
    last = None
    tree = _Frontier()
    deleted = 0
    for e in events:
        i = tree.size
        if i >= cp.size:
            raise VerificationError(f"more events than the checkpoint's {cp.size} leaves")
        if _DELETED_KEY in e:
            if len(e) != 1 or not isinstance(e[_DELETED_KEY], str):
                raise VerificationError(f"leaf {i}: a deleted leaf is {{\"{_DELETED_KEY}\": <base64>}} and nothing else")
            tree.append(_leaf_hash_from_b64(e[_DELETED_KEY]))
            deleted += 1
            continue
        received = e.get("receiveTime")
        secs, nanos = _instant(received, f"the receiveTime of leaf {i}")
        t = secs * _NS + nanos
        if last is not None and t < last:
            raise VerificationError(f"leaf {i} was received at {received}, before leaf {i - 1}")
        if t >= horizon:
            raise VerificationError(f"leaf {i} was received at {received}, not before the checkpoint's horizon {cp.received_before}")
        last = t
        tree.append(event_leaf_hash(e, i + 1))
    if tree.size != cp.size:
        raise VerificationError(f"{tree.size} events for a checkpoint of {cp.size} leaves")
    if tree.root() != cp.root:
        raise VerificationError(f"the {cp.size} events do not hash to the checkpoint's root {cp.root_base64}")
    return tree.size, deleted


def verify_log(cp: Checkpoint, events: Sequence[Mapping[str, Any]]) -> None:
    """Checks that events (server JSON, as ``EventClient.get_log_entries``
    returns them, from leaf 0) are exactly the leaves of the verified
    checkpoint's tree: as many as its size, each at seq = its position + 1,
    received in order and before its horizon, hashing to its root. What a
    mirror checks (``audittrail mirror``): nothing the log holds was left
    out, nothing was changed. A leaf whose event the server deleted under a
    retention policy is given as ``{"deletedLeafHash": <base64>}``
    (``LogPage.entries``): its hash still has to fit the root."""
    _check_log(cp, events)


def _strict_pairs(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise VerificationError("an object with a key given twice")
    return dict(pairs)


def verify_mirror(directory: Union[str, "os.PathLike[str]"], verifier: Union[Verifier, str]) -> Checkpoint:
    """Checks a directory written by ``audittrail mirror`` (or a copy of it,
    from cold storage, say), reading it once: its ``checkpoint`` file is
    signed by the log's key, and the first checkpoint-size lines of
    ``entries.jsonl`` are exactly that tree's events (as verify_log). Lines
    after them are an update that did not finish, not checked. Returns the
    verified checkpoint; raises VerificationError otherwise. The entries are
    checked against the newer of the two signed checkpoints the directory
    keeps (``checkpoint`` and the copy in ``state.json``): a ``checkpoint``
    file put back to an older one does not leave the entries it no longer
    covers unchecked. The same check as ``audittrail verify mirror``, by a
    second implementation. A line
    ``{"deletedLeafHash": <base64>}`` (``audittrail mirror
    --allow-deleted``) stands for a leaf whose event the server had deleted
    (retention): its hash still has to fit the root."""
    d = os.fspath(directory)
    if not os.path.isdir(d):
        raise VerificationError(f"no mirror at {d}: not a directory")
    cp = _newest_mirror_checkpoint(d, verifier)

    def events() -> Iterator[Mapping[str, Any]]:
        with open(os.path.join(d, "entries.jsonl"), "rb") as f:
            for i, line in enumerate(f):
                if i >= cp.size:
                    return
                if not line.endswith(b"\n"):
                    raise VerificationError(f"entries.jsonl line {i + 1} is cut short")
                try:
                    e = json.loads(line, object_pairs_hook=_strict_pairs)
                except ValueError as err:
                    raise VerificationError(f"entries.jsonl line {i + 1} is not JSON: {err}") from err
                if not isinstance(e, dict):
                    raise VerificationError(f"entries.jsonl line {i + 1} is not an object")
                yield e

    _check_log(cp, events())
    return cp


def _newest_mirror_checkpoint(d: str, verifier: Union[Verifier, str]) -> Checkpoint:
    """The newer of a mirror's two signed checkpoints (logmirror's
    newestCheckpoint): the file ``checkpoint`` and the copy in
    ``state.json``, which an update replaces first."""
    found = []
    try:
        with open(os.path.join(d, "checkpoint"), "rb") as f:
            found.append(open_checkpoint(f.read(), verifier))
    except FileNotFoundError:
        pass
    try:
        with open(os.path.join(d, "state.json"), "rb") as f:
            state = json.loads(f.read())
    except FileNotFoundError:
        state = None
    except ValueError as err:
        raise VerificationError(f"state.json is not JSON: {err}") from err
    if state is not None:
        if not isinstance(state, dict) or not isinstance(state.get("checkpoint"), str):
            raise VerificationError("state.json has no checkpoint")
        saved = open_checkpoint(state["checkpoint"].encode(), verifier)
        if state.get("size") != saved.size:
            raise VerificationError(f"state.json records {state.get('size')} entries, its checkpoint {saved.size}")
        found.append(saved)
    if not found:
        raise VerificationError("the mirror has no checkpoint (neither checkpoint nor state.json): nothing is verified")
    if len(found) == 2:
        a, b = found
        if a.origin != b.origin:
            raise VerificationError(f"checkpoint is of log {a.origin!r}, state.json's of {b.origin!r}")
        if a.size == b.size and a.root != b.root:
            raise VerificationError(f"checkpoint and state.json's are both of size {a.size} with different roots: "
                                    "the log showed two different histories")
    return max(found, key=lambda c: c.size)


def verify_event_inclusion(cp: Checkpoint, event: Mapping[str, Any], proof: InclusionProof) -> None:
    """Checks that event (server JSON) is the leaf proof.leaf_index of the
    verified checkpoint's tree, at sequence number leaf_index + 1: its
    content and its position are proven together."""
    verify_inclusion(cp, proof.leaf_index, event_leaf_hash(event, proof.leaf_index + 1), proof)


# --- proofs attached to answers ----------------------------------------------------------------


@dataclass(frozen=True)
class EventInclusion:
    """One event's position in the log and its proof (``LogProofs.inclusions``)."""

    name: str
    """The event's resource name, "events/<id>"."""
    leaf_index: int
    """The event's leaf: its sequence number minus 1."""
    pending: bool
    """True when the checkpoint does not cover the event yet (it is less than
    about a second old): not proven; ask again later."""


@dataclass(frozen=True)
class Verified:
    """What :meth:`LogProofs.verify` proved."""

    checkpoint: Optional[Checkpoint]
    """The verified checkpoint, None before the log's first signature."""
    proven: List[str]
    """Names of the events proven included, with their content, in it."""
    pending: List[str]
    """Names of the events the checkpoint does not cover yet (not proven)."""


@dataclass(frozen=True)
class LogProofs:
    """The proofs a search with ``include_proofs=True`` (or a create with a
    receipt) returns: one signed checkpoint, per event its leaf index, and
    one multi-inclusion proof of all the events not pending. Nothing here is
    trusted before :meth:`verify`."""

    checkpoint: str
    """The signed checkpoint (note text); "" before the log's first signature."""
    tree_size: int
    """The checkpoint's tree size as the server states it."""
    inclusions: List[EventInclusion]
    """One per event, in the order of the answer's events."""
    hashes: Tuple[bytes, ...] = ()
    """The multi-inclusion proof of the events not pending (see
    :class:`MultiInclusionProof`)."""
    events: List[Dict[str, Any]] = field(default_factory=list, repr=False)
    """The answer's events as the server sent them (JSON), which the leaves
    are computed from."""
    receipts: bool = False
    """True for the receipts of a batch create, which hold an event twice
    when the batch sent it twice. Otherwise (a search's proofs, a page of the
    log) :meth:`verify` refuses a leaf that appears twice."""

    @classmethod
    def from_json(cls, proofs: Mapping[str, Any], events: Optional[List[Dict[str, Any]]] = None,
                  receipts: bool = False) -> "LogProofs":
        """From the API's JSON (``proofs`` of a search answer, ``receipt`` or
        ``receipts`` of a create answer, with ``receipts=True`` for the
        latter) and the answer's events."""
        if not isinstance(proofs, Mapping):
            raise VerificationError("proofs is not an object")
        inclusions = []
        for i, item in enumerate(proofs.get("inclusions") or []):
            if not isinstance(item, Mapping):
                raise VerificationError(f"inclusion {i} is not an object")
            inclusions.append(EventInclusion(
                name=str(item.get("name") or ""),
                leaf_index=_uint(item.get("leafIndex", 0), f"inclusion {i} leafIndex"),
                pending=bool(item.get("pending", False)),
            ))
        hashes = _hash_list(proofs.get("hashes") or [], "proofs", max(1, len(inclusions)) * MAX_PROOF_HASHES)
        return cls(checkpoint=str(proofs.get("checkpoint") or ""),
                   tree_size=_uint(proofs.get("treeSize", 0), "treeSize"),
                   inclusions=inclusions, hashes=tuple(hashes), events=list(events or []), receipts=receipts)

    def verify(self, verifier: Union[Verifier, str], events: Optional[Sequence[Mapping[str, Any]]] = None) -> Verified:
        """Checks the proofs with the log's public key (a :class:`Verifier`
        or the key text): the checkpoint's signature and stated size; every
        event not pending as the leaf at its leaf index (its content, as
        returned, and its position); every event claimed pending as beyond
        the checkpoint's tree. events defaults to the answer's events.
        Raises VerificationError; returns what was proven and what is
        pending."""
        evs = list(self.events if events is None else events)
        if len(evs) != len(self.inclusions):
            raise VerificationError(f"{len(self.inclusions)} inclusions for {len(evs)} events")
        cp: Optional[Checkpoint] = None
        if self.checkpoint:
            cp = open_checkpoint(self.checkpoint, verifier)
            if cp.size != self.tree_size:
                raise VerificationError(f"stated tree size {self.tree_size}, the signed checkpoint has {cp.size}")
        proven, pending, leaves = [], [], []
        # The multi-proof accepts a leaf given twice (it proves each leaf it
        # is given), so a repeat is refused here: a search's answer holds
        # each event, and each leaf, once.
        seen: Dict[int, int] = {}
        for i, (inc, ev) in enumerate(zip(self.inclusions, evs)):
            if inc.leaf_index in seen and not self.receipts:
                raise VerificationError(f"leaf {inc.leaf_index} appears twice in the answer (inclusions "
                                        f"{seen[inc.leaf_index]} and {i}): a search returns each event once")
            seen.setdefault(inc.leaf_index, i)
            deleted = isinstance(ev, Mapping) and _DELETED_KEY in ev
            if not isinstance(ev, Mapping) or (inc.name != "" if deleted else ev.get("name") != inc.name):
                raise VerificationError(f"inclusion {i} is for {inc.name!r}, not for the entry at the same position")
            if inc.pending:
                if cp is not None and inc.leaf_index < cp.size:
                    raise VerificationError(f"{inc.name} is claimed pending at leaf {inc.leaf_index}, "
                                            f"but the checkpoint covers {cp.size} leaves")
                pending.append(inc.name)
                continue
            if cp is None:
                raise VerificationError(f"{inc.name} has a proof but there is no checkpoint")
            try:
                if deleted:
                    if len(ev) != 1 or not isinstance(ev[_DELETED_KEY], str):
                        raise VerificationError(f"a deleted leaf is {{\"{_DELETED_KEY}\": <base64>}} and nothing else")
                    leaves.append((inc.leaf_index, _leaf_hash_from_b64(ev[_DELETED_KEY])))
                else:
                    leaves.append((inc.leaf_index, event_leaf_hash(ev, inc.leaf_index + 1)))
            except VerificationError as e:
                raise VerificationError(f"{inc.name or f'deleted leaf {inc.leaf_index}'}: {e}") from None
            proven.append(inc.name)
        if cp is None:
            if self.hashes:
                raise VerificationError("proof hashes but no checkpoint")
        else:
            try:
                verify_multi_inclusion(cp, leaves, MultiInclusionProof(self.tree_size, self.hashes))
            except VerificationError as e:
                raise VerificationError(f"{e}: an event, its position or the proof is not what the log signed") from None
        return Verified(checkpoint=cp, proven=proven, pending=pending)
