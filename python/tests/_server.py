"""The real audittrail server for the tests: `audittrail serve` on free ports
(port 0, the ready line tells which) with a fresh data directory, and raw
HTTP helpers that do not go through the client under test."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
_READY = re.compile(r"audittrail: ready public=(\S+) internal=(\S+)")


@dataclass
class Server:
    public: str  # http://127.0.0.1:<port>, no trailing slash
    internal: str
    reader_token: str
    producer_token: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen = field(repr=False)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError as e:
            return f"(no log: {e})"


def find_binary(repo_root: Path) -> Path:
    binary = Path(os.environ.get("AUDITTRAIL_BIN", repo_root / "bin" / "audittrail"))
    if not binary.is_absolute():
        binary = repo_root / binary
    return binary


def store_args() -> list:
    """The flags that put a server a test starts itself on the store under
    test: none on the embedded store (the server's data directory holds it);
    with $AUDITTRAIL_TEST_STORE (a PostgreSQL database, `make python-test`'s
    second run), `--store` with a new empty database of the same cluster,
    made with createdb from $WITHPOSTGRES_BIN (withpostgres sets both). A
    test that restarts its server on the same data gives it the same
    flags."""
    store = os.environ.get("AUDITTRAIL_TEST_STORE", "")
    if not store:
        return []
    programs = os.environ.get("WITHPOSTGRES_BIN", "")
    if not programs:
        raise RuntimeError("AUDITTRAIL_TEST_STORE is set without WITHPOSTGRES_BIN: run the suite through "
                           "internal/pgcluster/cmd/withpostgres, which sets both")
    name = "t" + secrets.token_hex(6)
    subprocess.run([os.path.join(programs, "createdb"), "--maintenance-db=" + store, name], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)
    url = urllib.parse.urlsplit(store)
    return ["--store", urllib.parse.urlunsplit(url._replace(path="/" + name))]


def start(binary: Path, base: Path, extra_args: Sequence[str] = ()) -> Server:
    """Starts `audittrail serve` (with extra_args) and waits for its ready line."""
    data_dir = base / "data"
    data_dir.mkdir(parents=True)
    log_path = base / "server.log"
    reader, producer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    cmd = [
        str(binary), "serve",
        "--data-dir", str(data_dir),
        "--public-addr", "127.0.0.1:0",
        "--internal-addr", "127.0.0.1:0",
        "--reader-token", reader,
        "--producer-token", producer,
        *extra_args,
    ]
    # The flags are authoritative: keep a developer's AUDITTRAIL_* settings out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITTRAIL_")}
    log = open(log_path, "ab")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env, cwd=base)
    found: dict = {}
    ready = threading.Event()

    def pump() -> None:  # copies stdout to the log, noting the ready line
        assert proc.stdout is not None
        for raw in proc.stdout:
            log.write(raw)
            log.flush()
            m = _READY.search(raw.decode("utf-8", "replace"))
            if m and not ready.is_set():
                found["urls"] = m.groups()
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    server = Server("", "", reader, producer, data_dir, log_path, proc)
    if not ready.wait(STARTUP_TIMEOUT) or "urls" not in found:
        stop(server)
        raise RuntimeError(
            f"audittrail serve did not print its ready line within {STARTUP_TIMEOUT}s "
            f"(exit code {proc.poll()}); command: {cmd}\nlog:\n{server.log_tail()}"
        )
    server.public, server.internal = (u.rstrip("/") for u in found["urls"])
    return server


def stop(server: Server) -> None:
    """Stops the server (SIGTERM, then SIGKILL after STOP_TIMEOUT) and fails
    if it reported a data race (check_races)."""
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    check_races(server.log_path)


# How the race detector begins a report: a server built with `go build -race`
# (`make race`) writes one to stderr when it sees a data race, and exits with
# status 66 only at its end, which a killed server never reaches.
RACE_REPORT = "WARNING: DATA RACE"


def check_races(log_path: Path) -> None:
    """Raises AssertionError if the server's log holds a race report."""
    try:
        n = log_path.read_text(errors="replace").count(RACE_REPORT)
    except OSError:
        return
    if n:
        raise AssertionError(f"audittrail serve reported {n} data race(s): see {log_path}")


def raw_post(url: str, token: Optional[str], body: Any, timeout: float = 30,
             context: Optional[ssl.SSLContext] = None) -> Tuple[int, Any]:
    """POST JSON with plain urllib; returns (status, parsed JSON or text).
    context verifies an https URL's server."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text
