"""Following the verifiable log, as ``audittrail tail`` does (not in the H2O
client): the state file, its lock and the rounds of
:meth:`h2o_audit_trail.event.client.EventClient.follow`.

The state file holds the last signed checkpoint a follower yielded the
events up to, as the server signed it (the note's text and signatures),
exactly as ``audittrail tail --state FILE`` keeps it: a Go tail and a Python
follower can take over each other's state file. ``FILE.lock`` keeps a
second follower (of either kind) off the same file.

Warnings (a round that failed and is tried again, a witness or a replica
being waited for, deleted leaves crossed) go to the ``logging`` logger
``h2o_audit_trail.tail``.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Tuple, Union

from h2o_audit_trail.exception import ApiException, TimeoutException
from h2o_audit_trail.verify import (
    Checkpoint,
    NotWitnessedError,
    PendingError,
    VerificationError,
    Verifier,
    empty_checkpoint,
    open_checkpoint,
)

__all__ = ["StateLockedError", "read_state"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
Stop = Union[None, Callable[[], bool], Any]  # None, a callable, or a threading.Event


class StateLockedError(RuntimeError):
    """Another follower (:meth:`EventClient.follow` in this or another
    process, or ``audittrail tail``) holds the lock of the state file
    (``state_file + ".lock"``): two followers of one state file would yield
    every event twice."""


def read_state(state_file: PathLike, key: Union[str, Verifier]) -> Optional[Checkpoint]:
    """The checkpoint a follower of state_file goes on from: the file's
    signed checkpoint, verified with the log's keys of key (the log's
    public key, the ``log-verification.key`` text, or a Verifier) and
    without its witness policy, if it has one: the checkpoint was accepted
    when it was saved, and a policy added since applies to the checkpoints
    read from then on (Go: merkle.Unwitnessed). None when the file does not
    exist. Raises VerificationError, naming the file, when it does not
    verify (another log's checkpoint, a changed one)."""
    verifier = key if isinstance(key, Verifier) else Verifier.from_key(key)
    path = os.fspath(state_file)
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        return open_checkpoint(text, verifier.with_witnesses(None))
    except VerificationError as e:
        raise VerificationError(f"{path}: the state file's checkpoint does not verify: {e}") from e


def _lock(path: str) -> Optional[int]:
    """Takes the exclusive lock of the file path (created when missing),
    held until the returned descriptor is closed (or the process ends).
    None where flock is missing: one follower at a time is then the
    caller's to ensure (as with ``audittrail tail``)."""
    try:
        import fcntl
    except ImportError:  # not a Unix
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateLockedError(f"{path}: another follower (EventClient.follow or audittrail tail) "
                               "is running with this state file") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _replace(path: str, data: bytes) -> None:
    """Writes data to path durably, replacing any file there: a new
    temporary file in the same directory is written and synced, renamed
    over path, and the directory synced. Readers see the old file or the
    new one, never a mix; after a crash path holds one of the two."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if os.name == "posix":  # a directory cannot be opened for fsync elsewhere
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _transient(e: BaseException) -> bool:
    """An error of the server or the network that the next round may not
    meet: no answer, or an answer 5xx or 429."""
    if isinstance(e, (ConnectionError, TimeoutException)):
        return True
    return isinstance(e, ApiException) and e.status is not None and (e.status >= 500 or e.status == 429)


def _check_stop(stop: Stop) -> Callable[[], bool]:
    """stop (None, a threading.Event or a callable returning True to stop)
    as a callable; raises TypeError for anything else."""
    if stop is None:
        return lambda: False
    is_set = getattr(stop, "is_set", None)
    if callable(is_set):
        return lambda: bool(is_set())
    if callable(stop):
        return lambda: bool(stop())
    raise TypeError("stop must be None, a threading.Event or a callable returning True to stop")


def _wait(stop: Any, stopped: Callable[[], bool], seconds: float) -> bool:
    """Waits seconds, or until stop is set; returns whether it is."""
    wait = getattr(stop, "wait", None)
    if stop is not None and callable(getattr(stop, "is_set", None)) and callable(wait):
        return bool(wait(seconds))
    deadline = time.monotonic() + seconds
    while True:
        if stopped():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 0.1 if stop is not None else left))


def follow(client: Any, verifier: Verifier, state_file: PathLike, *, interval: float, from_start: bool,
           allow_deleted: bool, once: bool, stop: Stop) -> Iterator[Dict[str, Any]]:
    """The generator of EventClient.follow (which documents it), its
    arguments checked."""
    path = os.fspath(state_file)
    stopped = _check_stop(stop)
    fd = _lock(path + ".lock")
    try:
        older = read_state(path, verifier)
        while not stopped():
            save: Optional[Tuple[str, Checkpoint]] = None
            try:
                save = yield from _round(client, verifier, older, from_start, allow_deleted)
            except NotWitnessedError as e:
                # A witness down or slow: wait for a checkpoint the policy
                # accepts rather than stop (a round in progress is yielded
                # again).
                logger.warning("the server's checkpoint is not cosigned as the witness policy requires: waiting (%s)", e)
            except PendingError as e:
                if once:
                    raise
                logger.warning("%s (trying again in %s s)", e, interval)
            except Exception as e:
                if not _transient(e) or once:
                    raise
                logger.warning("%s: %s (trying again in %s s)", type(e).__name__, e, interval)
            if save is not None:
                note, latest = save
                _replace(path, note.encode("utf-8"))
                older = latest
            if once or _wait(stop, stopped, interval):
                return
    finally:
        if fd is not None:
            os.close(fd)


def _round(client: Any, verifier: Verifier, older: Optional[Checkpoint], from_start: bool,
           allow_deleted: bool) -> Generator[Dict[str, Any], None, Optional[Tuple[str, Checkpoint]]]:
    """Yields the events between older and the server's latest checkpoint;
    returns the latest (its signed note and the checkpoint) to be made the
    state, or None when the state stays as it is."""
    note = client._checkpoint_note()
    latest = open_checkpoint(note, verifier)
    start = older
    if start is None:
        if not from_start:
            return note, latest  # a new follower starts at the latest checkpoint
        start = empty_checkpoint(latest.origin)
    elif latest.size == start.size and latest.root != start.root:
        raise VerificationError(f"two checkpoints of size {latest.size} with different roots (the state's and the "
                                "server's latest): the log forked")
    elif latest.size < start.size or (latest.size == start.size and latest.received_before_ns < start.received_before_ns):
        # A replica behind the one that served the state's checkpoint (or a
        # rolled-back log, which the next window's consistency proof
        # finds). A larger tree with an earlier horizon is not behind but
        # contradicts the state: iter_window refuses it.
        logger.warning("the server's latest checkpoint (size %d, received before %s) is behind the state's "
                       "(size %d, received before %s): waiting", latest.size, latest.received_before,
                       start.size, start.received_before)
        return None
    elif latest.size == start.size and latest.received_before == start.received_before:
        return None  # the same checkpoint
    deleted: List[Tuple[int, int]] = []
    leaf = start.size
    for entry in client.iter_window(start, latest, verifier, allow_deleted=allow_deleted):
        if "deletedLeafHash" in entry:  # proven in its place, the event gone
            if deleted and deleted[-1][1] + 1 == leaf:
                deleted[-1] = (deleted[-1][0], leaf)
            else:
                deleted.append((leaf, leaf))
        else:
            yield entry
        leaf += 1
    if deleted:
        logger.warning("%d leaves whose events the server's retention deleted (leaves %s): their leaf hashes are "
                       "proven in place, their events are gone", sum(b - a + 1 for a, b in deleted),
                       ", ".join(f"{a}-{b}" for a, b in deleted))
    return note, latest
