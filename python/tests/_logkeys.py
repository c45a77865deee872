"""Test helpers for the verifiable log: signing checkpoints with a note
private key (the golden vectors' test key, or a fresh one), and converting a
golden event to the server's JSON."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Dict, Tuple

from h2o_audit_trail import _ed25519

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_PATH = REPO_ROOT / "testdata" / "merkle" / "vectors.json"

_TYPE_NAMES = {0: "TYPE_UNSPECIFIED", 1: "TYPE_API", 2: "TYPE_SYSTEM"}


def golden() -> Dict[str, Any]:
    return json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))


def parse_signer_key(text: str) -> Tuple[str, int, bytes]:
    """(name, key hash, 32-byte seed) of "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>"."""
    parts = text.strip().split("+", 4)
    assert parts[:2] == ["PRIVATE", "KEY"] and len(parts) == 5, text
    raw = base64.b64decode(parts[4])
    assert raw[0] == 1 and len(raw) == 33
    return parts[2], int(parts[3], 16), raw[1:]


def new_key(name: str, seed: bytes = b"") -> Tuple[str, str]:
    """A fresh (signer key text, verifier key text) pair named name."""
    seed = hashlib.sha256(seed or os.urandom(32)).digest()
    key = b"\x01" + _ed25519.public_key(seed)
    h = struct.unpack(">I", hashlib.sha256(name.encode() + b"\n" + key).digest()[:4])[0]
    skey = f"PRIVATE+KEY+{name}+{h:08x}+" + base64.b64encode(b"\x01" + seed).decode()
    vkey = f"{name}+{h:08x}+" + base64.b64encode(key).decode()
    return skey, vkey


def sign_note(text: str, signer_key: str) -> str:
    """The C2SP signed note of text, signed by the private key text."""
    name, h, seed = parse_signer_key(signer_key)
    sig = _ed25519.sign(seed, text.encode("utf-8"))
    return text + "\n\u2014 " + name + " " + base64.b64encode(struct.pack(">I", h) + sig).decode() + "\n"


def checkpoint_text(origin: str, size: int, root: bytes, horizon: str) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\nreceived-before {horizon}\n"


def api_event(g: Dict[str, Any]) -> Dict[str, Any]:
    """A golden event as the server's JSON (lowerCamelCase, RFC 3339 times,
    enum names, every key present, status left out when absent)."""
    out: Dict[str, Any] = {
        "name": "events/" + g["id"],
        "eventTime": g["event_time"]["rfc3339"],
        "receiveTime": g["receive_time"]["rfc3339"],
        "eventSource": g["event_source"],
        "action": g["action"],
        "readOnly": g["read_only"],
        "principal": g["principal"],
        "loginPrincipal": g["login_principal"],
        "sourceIpAddress": g["source_ip_address"],
        "userAgent": g["user_agent"],
        "resource": g["resource"],
        "workspace": g["workspace"],
        "requestParameters": g["request_parameters"] or {},
        "metadata": g["metadata"] or {},
        "type": _TYPE_NAMES[g["type"]],
    }
    if g["status"] is not None:
        out["status"] = dict(g["status"])
    return out
