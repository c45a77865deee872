"""h2o_audit_trail.verify offline: Ed25519 against the RFC 8032 test
vectors, and the leaf encoding, tree hashing, proofs and checkpoints against
the golden vectors the Go package merkle writes (testdata/merkle/vectors.json,
read by merkle/golden_test.go too). Every invalid case of the file, and more
forgeries, must be rejected."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json

import pytest
from _logkeys import api_event, checkpoint_text, golden, new_key, sign_note

from h2o_audit_trail import _ed25519
from h2o_audit_trail.verify import (
    EMPTY_ROOT,
    ConsistencyProof,
    InclusionProof,
    LogProofs,
    MultiInclusionProof,
    VerificationError,
    Verifier,
    consistency_check,
    event_leaf_hash,
    inclusion_root,
    leaf_data,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint,
    root_hash,
    verify_consistency,
    verify_event_inclusion,
    verify_inclusion,
    verify_multi_inclusion,
)

G = golden()
ORIGIN = G["checkpoint"]["origin"]
VKEY = G["checkpoint"]["verifier_key"]
SKEY = G["checkpoint"]["signer_key_test_only"]
LEAVES = [base64.b64decode(e["leaf_hash"]) for e in G["events"]]
ROOTS = {r["size"]: base64.b64decode(r["root"]) for r in G["roots"]}
CP = open_checkpoint(G["checkpoint"]["signed_note"], VKEY)


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


# --- Ed25519 (RFC 8032 section 7.1) ------------------------------------------------------------

RFC8032 = [  # secret key, public key, message, signature
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
     "d25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
     "387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc659"
     "4a7c15e9716ed28dc027beceea1ec40a"),
    ("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd"
     "454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e030"
     "3dca179c138ac17ad9bef1177331a704"),
]


@pytest.mark.parametrize("sk,pk,msg,sig", RFC8032)
def test_ed25519_rfc8032(sk, pk, msg, sig):
    sk, pk, msg, sig = (bytes.fromhex(x) for x in (sk, pk, msg, sig))
    assert _ed25519.public_key(sk) == pk
    assert _ed25519.sign(sk, msg) == sig
    assert _ed25519.verify(pk, msg, sig)


@pytest.mark.parametrize("sk,pk,msg,sig", RFC8032)
def test_ed25519_rejects(sk, pk, msg, sig):
    pk, msg, sig = (bytes.fromhex(x) for x in (pk, msg, sig))
    assert not _ed25519.verify(pk, msg + b"x", sig)  # another message
    for i in (0, 31, 32, 63):  # a bit of R, of S
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert not _ed25519.verify(pk, msg, bytes(bad))
    other = _ed25519.public_key(b"\x07" * 32)
    assert not _ed25519.verify(other, msg, sig)  # another key
    # S + L: the same point equation, a non-canonical S, refused.
    s = int.from_bytes(sig[32:], "little") + _ed25519._L
    if s < 2**256:
        assert not _ed25519.verify(pk, msg, sig[:32] + s.to_bytes(32, "little"))
    assert not _ed25519.verify(pk[:31], msg, sig)
    assert not _ed25519.verify(pk, msg, sig[:63])
    assert not _ed25519.verify(b"\xff" * 32, msg, sig)  # y >= p: not a point encoding


# --- golden: leaves, roots, proofs ----------------------------------------------------------------


@pytest.mark.parametrize("i", range(len(G["events"])))
def test_golden_leaf(i):
    g = G["events"][i]
    data = leaf_data(api_event(g), g["seq"])
    assert data.hex() == g["leaf_data_hex"]
    assert leaf_hash(data).hex() == g["leaf_hash_hex"]
    assert event_leaf_hash(api_event(g), g["seq"]) == LEAVES[i]
    # login_principal is not covered; every other field is.
    ev = api_event(g)
    ev["loginPrincipal"] = "someone-else"
    assert event_leaf_hash(ev, g["seq"]) == LEAVES[i]
    for key, value in [("principal", "users/mallory"), ("eventSource", "x"), ("workspace", "workspaces/x"),
                       ("readOnly", not g["read_only"]), ("metadata", {"k": "v"}), ("type", "TYPE_SYSTEM" if g["type"] != 2 else "TYPE_API"),
                       ("receiveTime", "2030-01-01T00:00:00Z")]:
        changed = dict(ev, **{key: value})
        assert event_leaf_hash(changed, g["seq"]) != LEAVES[i], key
    assert event_leaf_hash(ev, g["seq"] + 1) != LEAVES[i]  # the position is in the leaf


def test_golden_times_parse_exactly():
    from h2o_audit_trail.verify import _instant

    for g in G["events"]:
        for key in ("event_time", "receive_time"):
            t = g[key]
            assert _instant(t["rfc3339"], key) == (t["seconds"], t["nanos"])
    # Offsets and precision: the same instant however written.
    assert _instant("2026-03-04T05:06:07.123456789+02:00", "t") == _instant("2026-03-04T03:06:07.123456789Z", "t")
    assert _instant("0001-01-01T00:00:00Z", "t") == (-62135596800, 0)


def test_golden_roots():
    for size, root in ROOTS.items():
        assert root_hash(LEAVES[:size]) == root
    assert ROOTS[0] == EMPTY_ROOT


def test_golden_inclusion_proofs():
    for case in G["inclusion_proofs"]:
        p = InclusionProof.from_json(case["proof"])
        leaf, root = base64.b64decode(case["leaf_hash"]), base64.b64decode(case["root"])
        assert inclusion_root(p.leaf_index, p.tree_size, leaf, p.hashes) == root
        if p.tree_size == CP.size:
            verify_inclusion(CP, p.leaf_index, leaf, p)
            verify_event_inclusion(CP, api_event(G["events"][p.leaf_index]), p)


def test_golden_multi_inclusion_proofs():
    for case in G["multi_inclusion_proofs"]:
        p = MultiInclusionProof.from_json(case["proof"])
        leaves = [(leaf["index"], base64.b64decode(leaf["leaf_hash"])) for leaf in case["leaves"]]
        assert list(p.hashes) == _multi(LEAVES[:p.tree_size], {i for i, _ in leaves})
        assert base64.b64decode(case["root"]) == ROOTS[p.tree_size]
        if p.tree_size == CP.size:
            paths = verify_multi_inclusion(CP, leaves, p)
            for i, h in leaves:
                assert list(paths[i].hashes) == _path(i)
                verify_inclusion(CP, i, h, paths[i])


def test_golden_consistency_proofs():
    for case in G["consistency_proofs"]:
        p = ConsistencyProof.from_json(case["proof"])
        old, new = base64.b64decode(case["old_root"]), base64.b64decode(case["new_root"])
        if 0 < p.old_size < p.new_size:
            consistency_check(p.old_size, old, p.new_size, new, p.hashes)
        if p.new_size == CP.size:
            verify_consistency(older_checkpoint(p.old_size), CP, p)


def test_golden_checkpoint():
    c = G["checkpoint"]
    assert (CP.origin, CP.size, b64(CP.root), CP.received_before) == (c["origin"], c["size"], c["root"], c["received_before"])
    assert CP.text() == c["text"] and CP.verified
    assert CP.root == root_hash(LEAVES)
    # Signing the golden text with the golden test key in Python gives the
    # very note Go signed (Ed25519 is deterministic).
    assert sign_note(c["text"], SKEY) == c["signed_note"]
    assert not parse_checkpoint(c["text"]).verified  # parsed, not signature-checked


def older_checkpoint(size: int):
    """The signed checkpoint of the golden tree at size (as Go's test does:
    horizon 7 - size ns before the golden one's)."""
    ns = CP.received_before_ns - (CP.size - size)
    secs, nanos = divmod(ns, 1_000_000_000)
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=secs)
    horizon = t.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
    return open_checkpoint(sign_note(checkpoint_text(ORIGIN, size, ROOTS[size], horizon), SKEY), VKEY)


@pytest.mark.parametrize("case", G["invalid"], ids=[c["name"] for c in G["invalid"]])
def test_golden_invalid_cases_rejected(case):
    with pytest.raises(VerificationError):
        kind = case["kind"]
        if kind == "checkpoint":
            open_checkpoint(case["signed_note"], VKEY)
        elif kind == "inclusion":
            verify_inclusion(CP, case["leaf_index"], base64.b64decode(case["leaf_hash"]), InclusionProof.from_json(case["inclusion"]))
        elif kind == "consistency":
            verify_consistency(older_checkpoint(case["old_size"]), CP, ConsistencyProof.from_json(case["consistency"]))
        elif kind == "multi_inclusion":
            leaves = [(leaf["index"], base64.b64decode(leaf["leaf_hash"])) for leaf in case["leaves"]]
            verify_multi_inclusion(CP, leaves, MultiInclusionProof.from_json(case["multi_inclusion"]))
        elif kind == "leaf":
            # The tampered event, with the real path of its leaf.
            g = case["event"]
            assert event_leaf_hash(api_event(g), g["seq"]) != LEAVES[g["seq"] - 1]
            verify_event_inclusion(CP, api_event(g), proof_of(g["seq"] - 1))
        else:
            pytest.fail(f"unknown kind {kind}")


def _path(index: int, leaves=None):
    """The audit path of leaf index in the golden tree (of 7 unless leaves
    are given), from the definition of RFC 6962 section 2.1.1."""

    def path(m, leaves):
        n = len(leaves)
        if n <= 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return path(m, leaves[:k]) + [root_hash(leaves[k:])]
        return path(m - k, leaves[k:]) + [root_hash(leaves[:k])]

    return path(index, LEAVES if leaves is None else leaves)


def _multi(leaves, proven, offset=0):
    """The multi-inclusion proof of the leaf indexes in proven, from its
    definition: a left-to-right walk of the RFC 6962 split that lists the
    root of every subtree holding no proven leaf."""
    if not any(offset + i in proven for i in range(len(leaves))):
        return [root_hash(leaves)]
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _multi(leaves[:k], proven, offset) + _multi(leaves[k:], proven, offset + k)


def test_multi_inclusion_every_subset():
    """Every set of leaves of every golden tree size: the proof verifies,
    gives each leaf its audit path, and fails with any hash changed, left
    out or added, or a leaf moved."""
    for size in range(1, 8):
        cp = CP if size == 7 else older_checkpoint(size)
        for mask in range(1, 1 << size):
            idx = [i for i in range(size) if mask >> i & 1]
            hashes = _multi(LEAVES[:size], set(idx))
            leaves = [(i, LEAVES[i]) for i in reversed(idx)]
            paths = verify_multi_inclusion(cp, leaves, MultiInclusionProof(size, tuple(hashes)))
            assert all(list(paths[i].hashes) == _path(i, LEAVES[:size]) for i in idx)
            for k in range(len(hashes)):
                bad = list(hashes)
                bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
                with pytest.raises(VerificationError, match="not proven"):
                    verify_multi_inclusion(cp, leaves, MultiInclusionProof(size, tuple(bad)))
            with pytest.raises(VerificationError, match="too many"):
                verify_multi_inclusion(cp, leaves, MultiInclusionProof(size, tuple(hashes + [LEAVES[0]])))
            if hashes:
                with pytest.raises(VerificationError, match="too few"):
                    verify_multi_inclusion(cp, leaves, MultiInclusionProof(size, tuple(hashes[1:])))
            if len(idx) < size:
                other = next(i for i in range(size) if i not in idx)
                moved = [(other, h) for _, h in leaves[:1]] + leaves[1:]
                with pytest.raises(VerificationError):
                    verify_multi_inclusion(cp, moved, MultiInclusionProof(size, tuple(hashes)))
    with pytest.raises(VerificationError, match="two different leaves"):
        verify_multi_inclusion(CP, [(1, LEAVES[1]), (1, LEAVES[2])], MultiInclusionProof(7, ()))
    with pytest.raises(VerificationError, match="tree size"):
        verify_multi_inclusion(CP, [(1, LEAVES[1])], MultiInclusionProof(6, tuple(_multi(LEAVES[:6], {1}))))


def test_reference_paths_verify():
    for i in range(7):
        verify_inclusion(CP, i, LEAVES[i], InclusionProof(i, 7, tuple(_path(i))))


# --- forgeries, one by one ---------------------------------------------------------------------


def proof_of(i: int) -> InclusionProof:
    return InclusionProof(i, 7, tuple(_path(i)))


def test_forged_inclusion_wrong_path():
    p = proof_of(3)
    for j in range(len(p.hashes)):
        hs = list(p.hashes)
        hs[j] = bytes([hs[j][0] ^ 1]) + hs[j][1:]
        with pytest.raises(VerificationError):
            verify_inclusion(CP, 3, LEAVES[3], InclusionProof(3, 7, tuple(hs)))
    with pytest.raises(VerificationError):  # too short
        verify_inclusion(CP, 3, LEAVES[3], InclusionProof(3, 7, p.hashes[:-1]))
    with pytest.raises(VerificationError):  # too long
        verify_inclusion(CP, 3, LEAVES[3], InclusionProof(3, 7, p.hashes + (LEAVES[0],)))
    with pytest.raises(VerificationError):  # reordered
        verify_inclusion(CP, 3, LEAVES[3], InclusionProof(3, 7, tuple(reversed(p.hashes))))
    with pytest.raises(VerificationError):  # another leaf's path
        verify_inclusion(CP, 3, LEAVES[3], InclusionProof(3, 7, proof_of(2).hashes))


def test_forged_inclusion_wrong_size():
    # A valid proof in the tree of 6 is not one in the tree of 7, whatever it claims.
    short = tuple(_path_in(3, 6))
    assert inclusion_root(3, 6, LEAVES[3], short) == ROOTS[6]
    for claimed in (6, 7):
        with pytest.raises(VerificationError):
            verify_inclusion(CP, 3, LEAVES[3], InclusionProof(3, claimed, short))
    with pytest.raises(VerificationError):  # a leaf beyond the tree
        verify_inclusion(CP, 7, LEAVES[0], InclusionProof(7, 7, ()))


def _path_in(index, size):
    return _path(index, LEAVES[:size])


def test_forged_other_checkpoint():
    # A valid, signed checkpoint of the same log at another size: the proofs
    # of the tree of 7 do not verify against it.
    six = older_checkpoint(6)
    with pytest.raises(VerificationError):
        verify_inclusion(six, 3, LEAVES[3], proof_of(3))
    with pytest.raises(VerificationError):
        verify_inclusion(six, 3, LEAVES[3], InclusionProof(3, 6, proof_of(3).hashes))
    # A checkpoint of size 7 with another root, signed by the log's key (a fork).
    fork = open_checkpoint(sign_note(checkpoint_text(ORIGIN, 7, ROOTS[6], CP.received_before), SKEY), VKEY)
    with pytest.raises(VerificationError):
        verify_inclusion(fork, 3, LEAVES[3], proof_of(3))
    with pytest.raises(VerificationError, match="forked"):
        verify_consistency(CP, fork, ConsistencyProof(7, 7, ()))
    # A later horizon on a smaller tree contradicts.
    late = open_checkpoint(sign_note(checkpoint_text(ORIGIN, 3, ROOTS[3], CP.received_before), SKEY), VKEY)
    p37 = next(ConsistencyProof.from_json(c["proof"]) for c in G["consistency_proofs"] if c["proof"]["old_size"] == 3)
    with pytest.raises(VerificationError, match="horizons"):
        verify_consistency(late, CP, p37)
    verify_consistency(older_checkpoint(3), CP, p37)
    # A signed size-3 checkpoint with another root (the log showed someone
    # else another tree): the proof to the real tree of 7 does not hold.
    other3 = open_checkpoint(sign_note(checkpoint_text(ORIGIN, 3, ROOTS[2], older_checkpoint(3).received_before), SKEY), VKEY)
    with pytest.raises(VerificationError, match="prefix"):
        verify_consistency(other3, CP, p37)
    with pytest.raises(VerificationError):  # reversed
        verify_consistency(CP, older_checkpoint(3), ConsistencyProof(7, 3, p37.hashes))


def test_forged_bad_signature():
    note = G["checkpoint"]["signed_note"]
    text, sigline = note.split("\n\n")
    name, sig = sigline.rstrip("\n").split(" ")[1:]
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 1
    forged = text + "\n\n\u2014 " + name + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(VerificationError, match="invalid signature"):
        open_checkpoint(forged, VKEY)
    # The text changed under a valid signature.
    with pytest.raises(VerificationError):
        open_checkpoint(note.replace("\n7\n", "\n8\n", 1), VKEY)
    # Signed by another key with the log's name: not a signature by the log's key.
    other_skey, other_vkey = new_key(ORIGIN, b"other")
    other = sign_note(G["checkpoint"]["text"], other_skey)
    with pytest.raises(VerificationError, match="no signature by the log's key"):
        open_checkpoint(other, VKEY)
    open_checkpoint(other, other_vkey)  # (it is a good signature by the other key)
    # A witness's extra signature is ignored; the log's must still be there.
    both = note + other.split("\n\n")[1]
    assert open_checkpoint(both, VKEY).size == 7
    with pytest.raises(VerificationError):
        open_checkpoint(text + "\n\n", VKEY)
    # A checkpoint signed by a key of another name.
    skey, vkey = new_key("other.example/log", b"x")
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(sign_note(G["checkpoint"]["text"], skey), vkey)


def test_key_ring_after_a_rotation():
    """A key file of several lines (the log's keys across a rotation of its
    signing key, current first) verifies a checkpoint signed by any of them,
    and a note signed by the new key and cosigned by the old one verifies with
    either key alone."""
    text = G["checkpoint"]["text"]
    new_skey, new_vkey = new_key(ORIGIN, b"new")
    old_note = G["checkpoint"]["signed_note"]  # by the golden key, the "old" one
    new_note = sign_note(text, new_skey)
    both = new_note + old_note.split("\n\n")[1]
    ring = Verifier.from_key(new_vkey + "\n" + VKEY + "\n")
    assert ring.name == ORIGIN and len(ring.keys()) == 2
    for note in (old_note, new_note, both):
        assert open_checkpoint(note, ring).size == 7
    assert open_checkpoint(both, VKEY).size == 7
    assert open_checkpoint(both, new_vkey).size == 7
    with pytest.raises(VerificationError, match="no signature by the log's key"):
        open_checkpoint(new_note, VKEY)
    # A bad signature by a key of the ring fails, even beside a good one.
    sigs = both.split("\n\n")[1].rstrip("\n").split("\n")
    name, sig = sigs[1].split(" ")[1:]
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 1
    forged = text + "\n\n" + sigs[0] + "\n\u2014 " + name + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(VerificationError, match="invalid signature"):
        open_checkpoint(forged, ring)
    _, elsewhere = new_key("other.example/log", b"x")
    for bad in (new_vkey + "\n" + elsewhere, new_vkey + "\n" + new_vkey, new_vkey + "\n\n" + VKEY, (new_vkey + "\n") * 17):
        with pytest.raises(VerificationError):
            Verifier.from_key(bad)


def test_unverified_checkpoints_are_refused():
    parsed = parse_checkpoint(G["checkpoint"]["text"])
    with pytest.raises(VerificationError, match="not signature-verified"):
        verify_inclusion(parsed, 3, LEAVES[3], proof_of(3))
    changed = dataclasses.replace(CP, size=6, root=ROOTS[6])
    assert not changed.verified
    with pytest.raises(VerificationError, match="not signature-verified"):
        verify_inclusion(changed, 3, LEAVES[3], InclusionProof(3, 6, tuple(_path_in(3, 6))))


@pytest.mark.parametrize("text", [
    "audittrail.example.com/golden\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\n",  # no horizon
    "audittrail.example.com/golden\n07\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-11-25T20:00:06.000000000Z\n",
    "audittrail.example.com/golden\n-7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-11-25T20:00:06.000000000Z\n",
    "audittrail.example.com/golden\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg\nreceived-before 2025-11-25T20:00:06.000000000Z\n",
    "audittrail.example.com/golden\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-11-25T20:00:06Z\n",
    "audittrail.example.com/golden\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-11-25T20:00:06.000000000Z\nextra\n",
    "audittrail.example.com/golden\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-11-25T20:00:06.000000000Z",
    "audittrail.example.com/golden\r\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-11-25T20:00:06.000000000Z\n",
    "bad origin\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-11-25T20:00:06.000000000Z\n",
    "o\n0\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-11-25T20:00:06.000000000Z\n",  # empty tree, other root
    "o\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2262-01-01T00:00:00.000000001Z\n",
    "o\n7\n99NZepT21s1qMCbFTfOv4UO1Z2Q9ewfIKapWScmRftg=\nreceived-before 2025-02-30T00:00:00.000000000Z\n",
])
def test_parse_checkpoint_is_strict(text):
    with pytest.raises(VerificationError):
        parse_checkpoint(text)


def test_proof_json_is_strict():
    good = {"leaf_index": 3, "tree_size": 7, "hashes": [b64(h) for h in _path(3)]}
    assert InclusionProof.from_json(json.dumps(good)) == proof_of(3)
    assert json.loads(proof_of(3).to_json()) == good
    for bad in [dict(good, extra=1), {k: v for k, v in good.items() if k != "hashes"}, dict(good, leaf_index=-1),
                dict(good, leaf_index=True), dict(good, hashes=[good["hashes"][0][:-1]]), dict(good, hashes=["A" * 44] * 129)]:
        with pytest.raises(VerificationError):
            InclusionProof.from_json(bad)


def test_verifier_key_is_checked():
    v = Verifier.from_key(VKEY + "\n")
    assert v.name == ORIGIN
    name, h, key = VKEY.split("+", 2)
    for bad in [f"{name}+{int(h, 16) ^ 1:08x}+{key}", f"{name}+{h}", f"{name}+{h}+{key[:-4]}", VKEY + " ", "a b+" + h + "+" + key]:
        with pytest.raises(VerificationError):
            Verifier.from_key(bad)


# --- LogProofs, as the server sends them -------------------------------------------------------


def answer(indexes=(6, 5, 4)):
    """A search answer for the golden events at these leaves, with proofs
    against the golden checkpoint."""
    events = [api_event(G["events"][i]) for i in indexes]
    proofs = {"checkpoint": G["checkpoint"]["signed_note"], "treeSize": "7", "inclusions": [
        {"name": events[n]["name"], "leafIndex": str(i), "pending": False} for n, i in enumerate(indexes)],
        "hashes": [b64(h) for h in _multi(LEAVES, set(indexes))]}
    return proofs, events


def test_log_proofs_verify():
    proofs, events = answer()
    r = LogProofs.from_json(proofs, events).verify(VKEY)
    assert r.checkpoint.size == 7 and r.proven == [e["name"] for e in events] and r.pending == []


def test_log_proofs_pending():
    proofs, events = answer()
    extra = dict(api_event(G["events"][0]), name="events/00000000-0000-4000-8000-000000000000")
    proofs["inclusions"].insert(0, {"name": extra["name"], "leafIndex": "7", "pending": True})
    r = LogProofs.from_json(proofs, [extra] + events).verify(VKEY)
    assert r.pending == [extra["name"]] and len(r.proven) == 3
    # Claiming pending what the checkpoint covers is refused.
    proofs["inclusions"][0]["leafIndex"] = "6"
    with pytest.raises(VerificationError, match="claimed pending"):
        LogProofs.from_json(proofs, [extra] + events).verify(VKEY)
    # Before the first signature, everything is pending.
    none = {"checkpoint": "", "treeSize": "0", "inclusions": [{"name": extra["name"], "leafIndex": "0", "pending": True}], "hashes": []}
    r = LogProofs.from_json(none, [extra]).verify(VKEY)
    assert r.checkpoint is None and r.pending == [extra["name"]]


FORGERIES = {
    "wrong path": lambda p, e: p["hashes"].__setitem__(0, b64(LEAVES[0])),
    "a hash left out": lambda p, e: p["hashes"].pop(),
    "a hash too many": lambda p, e: p["hashes"].append(b64(LEAVES[0])),
    "a hash repeated": lambda p, e: p["hashes"].insert(0, p["hashes"][0]),
    "wrong size": lambda p, e: p.__setitem__("treeSize", "6"),
    "wrong leaf index": lambda p, e: p["inclusions"][0].__setitem__("leafIndex", "5"),
    "other checkpoint": lambda p, e: p.update(checkpoint=sign_note(checkpoint_text(ORIGIN, 7, ROOTS[6], CP.received_before), SKEY)),
    "bad signature": lambda p, e: p.update(checkpoint=p["checkpoint"].replace("IJ0d", "IJ0e")),
    "tampered event": lambda p, e: e[2].update(principal="users/mallory"),
    "tampered time by 1 ns": lambda p, e: e[0].update(receiveTime=e[0]["receiveTime"].replace("999999999Z", "999999998Z")),
    "events swapped": lambda p, e: e.reverse(),
    "an event missing": lambda p, e: e.pop(),
    "no checkpoint": lambda p, e: p.update(checkpoint=""),
}


@pytest.mark.parametrize("name", FORGERIES)
def test_log_proofs_forgeries(name):
    proofs, events = answer()
    FORGERIES[name](proofs, events)
    with pytest.raises(VerificationError):
        LogProofs.from_json(proofs, events).verify(VKEY)


def test_log_proofs_other_key():
    proofs, events = answer()
    _, other = new_key(ORIGIN, b"someone")
    with pytest.raises(VerificationError):
        LogProofs.from_json(proofs, events).verify(other)


def test_frontier_matches_root_hash():
    """The streaming root of verify_log and verify_mirror equals the
    definition's, at every size up to 130 leaves."""
    import hashlib

    from h2o_audit_trail.verify import _Frontier, root_hash

    tree, leaves = _Frontier(), []
    assert tree.root() == root_hash([])
    for n in range(130):
        leaf = hashlib.sha256(n.to_bytes(8, "big")).digest()
        tree.append(leaf)
        leaves.append(leaf)
        assert tree.root() == root_hash(leaves), n
