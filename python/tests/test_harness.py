"""The test harness's own checks (_server)."""

from __future__ import annotations

import pytest

import _server


def test_check_races(tmp_path):
    """A race report in a server's log fails the run (make race builds the
    server with the race detector); a log without one does not."""
    log = tmp_path / "server.log"
    log.write_text("audittrail: ready public=http://127.0.0.1:1 internal=http://127.0.0.1:2\n")
    _server.check_races(log)
    log.write_text("==================\n" + _server.RACE_REPORT + "\nWrite at 0x00c000 by goroutine 7:\n")
    with pytest.raises(AssertionError, match="1 data race"):
        _server.check_races(log)
    _server.check_races(tmp_path / "missing.log")  # no log: nothing to check
