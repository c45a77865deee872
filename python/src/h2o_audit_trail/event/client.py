from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from h2o_audit_trail import _http, tail
from h2o_audit_trail.connection_config import ConnectionConfig
from h2o_audit_trail.event.create import (
    BatchCreateEventsResponse,
    CreateEventRequest,
    batch_response_from_json,
    create_requests_to_json,
)
from h2o_audit_trail.event.event import Event, event_from_json, event_to_json
from h2o_audit_trail.event.search import (
    SearchEventsRequestFilter,
    SearchEventsResponse,
    filter_to_json,
    search_response_from_json,
)
from h2o_audit_trail.exception import ApiException
from h2o_audit_trail.verify import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    LogPage,
    LogProofs,
    PendingError,
    VerificationError,
    Verifier,
    _leaf_hash_from_b64,
    open_checkpoint,
    verify_consistency,
    verify_event_inclusion,
)


#: The largest page the server returns; a larger page_size means this.
MAX_PAGE_SIZE = 1000


class EventClient:
    """Searches (and, on an internal endpoint with a producer token, creates)
    Events.

    Every call raises :class:`h2o_audit_trail.exception.CustomApiException`
    when the server answers with an error, ``ConnectionError`` when it cannot
    be reached and :class:`h2o_audit_trail.exception.TimeoutException` when
    it does not answer within ``timeout`` seconds. Answers 429 and 503 are
    retried up to ``max_retries`` times, after the wait the server asks for
    in ``Retry-After`` or else an exponential backoff.
    """

    def __init__(
        self,
        connection_config: ConnectionConfig,
        verify_ssl: bool = True,
        ssl_ca_cert: Optional[str] = None,
        *,
        timeout: float = _http.DEFAULT_TIMEOUT,
        max_retries: int = _http.DEFAULT_MAX_RETRIES,
    ):
        """Initializes EventClient.

        Args:
            connection_config: Audit Trail URL and token provider.
            verify_ssl: False disables TLS certificate verification.
            ssl_ca_cert: Path to a CA bundle of trusted certificates.
            timeout: Seconds to wait for the server (each connect and read).
            max_retries: Retries of a request answered with 429 or 503.
        """
        self._transport = _http.Transport(
            connection_config.audit_trail_url,
            connection_config.token_provider,
            context=_http.ssl_context(verify_ssl, ssl_ca_cert),
            timeout=timeout,
            max_retries=max_retries,
        )

    @property
    def audit_trail_url(self) -> str:
        return self._transport.base_url

    def __repr__(self) -> str:
        return f"EventClient(audit_trail_url={self._transport.base_url!r})"

    def create_event(self, event_id: str, event: Event) -> Event:
        """Creates an Event.

        Creation is for internal producers: the public endpoint answers 405
        (CustomApiException with status 405).

        Args:
            event_id: ID of the new event, a UUID4 such as
                "b096430b-c7a8-47f2-a129-d9ae58cf454f".
            event: The event to create.
        Returns:
            Event: the created Event, with name, receive_time and workspace set.
        """
        body = event_to_json(event)
        answer = self._transport.post("/v1/events", body, query={"eventId": event_id})
        return event_from_json(answer.get("event") or {})

    def create_event_with_receipt(self, event_id: str, event: Event) -> Tuple[Event, LogProofs]:
        """Creates an Event and returns it with its receipt (not in the H2O
        client): the server waits, a few seconds at most, until a signed
        checkpoint of its verifiable log covers the event, and returns the
        event's inclusion proof. Check it with ``receipt.verify(key)``
        (:mod:`h2o_audit_trail.verify`). When the wait runs out the event is
        stored all the same and its inclusion is pending: call again with the
        same event_id and event.

        Returns:
            (Event, LogProofs): the created event and its receipt.
        """
        body = event_to_json(event)
        answer = self._transport.post("/v1/events", body, query={"eventId": event_id, "includeReceipt": "true"})
        data = answer.get("event") or {}
        return event_from_json(data), LogProofs.from_json(answer.get("receipt") or {}, [data])

    def batch_create_events(self, requests: List[CreateEventRequest]) -> BatchCreateEventsResponse:
        """Creates up to 1000 Events in one call.

        A request that fails does not stop the others: it is reported in
        ``failed_requests`` under its index.

        Args:
            requests: The events to create, each with its event_id.
        Returns:
            BatchCreateEventsResponse: created events and failed requests.
        """
        body = {"requests": create_requests_to_json(list(requests))}
        return batch_response_from_json(self._transport.post("/v1/events:batchCreate", body))

    def search_events(
        self,
        filter_: Optional[SearchEventsRequestFilter] = None,
        page_size: int = 0,
        page_token: str = "",
        *,
        include_proofs: bool = False,
    ) -> SearchEventsResponse:
        """Searches Events, newest first, one page at a time.

        Args:
            filter_: What to search for; None searches everything from
                2025-07-01T00:00:00Z until now.
            page_size: Most events in the answer: 0 means 50; above 1000
                means 1000.
            page_token: "" for the first page, then the next_page_token of
                the previous answer (with the same filter).
            include_proofs: Not in the H2O client. True asks for the
                verifiable log's proofs of the returned events (``proofs``
                of the answer; see :mod:`h2o_audit_trail.verify`). Events
                less than about a second old may be pending.
        Returns:
            SearchEventsResponse: events, next_page_token ("" on the last
            page) and searched_until_time (and proofs when asked for).
        """
        # The server coerces above MAX_PAGE_SIZE, but the wire's int32
        # cannot carry 2**31 and more: they are coerced here.
        body = {"filter": filter_to_json(filter_), "pageSize": min(int(page_size), MAX_PAGE_SIZE),
                "pageToken": page_token or ""}
        if include_proofs:
            body["includeProofs"] = True
        return search_response_from_json(self._transport.post("/v1/events:search", body))

    def iter_events(
        self,
        filter_: Optional[SearchEventsRequestFilter] = None,
        page_size: int = 100,
        *,
        verify_with: Union[None, str, Verifier] = None,
        allow_pending: bool = True,
    ) -> Iterator[Event]:
        """Every Event matching filter_, newest first, fetching page after
        page (page_size events each) as the iteration goes on.

        Not in the H2O client. Equivalent to calling search_events() with each
        next_page_token until it is empty.

        verify_with (the log's public key, the ``log-verification.key`` text,
        or a Verifier) proves the iteration: every page is fetched with its
        proofs, which are checked before any of its events is yielded, and
        whenever a page's checkpoint is not the one seen before, a
        consistency proof between the two is fetched and checked, so that all
        events are proven against one history of the log. A failed check
        raises h2o_audit_trail.verify.VerificationError. An event a page
        calls pending (beyond its checkpoint) that a checkpoint verified
        earlier in the iteration covers (a replica behind, or a server hiding
        a change) is proven against that one (get_inclusion_proof). Events
        still pending (usually less than about a second old, but on any page:
        the server chooses its page's checkpoint) are yielded unproven, or,
        with allow_pending=False, raise VerificationError (ask again a second
        later)."""
        token = ""
        seen: Optional[Checkpoint] = None
        while True:
            page = self.search_events(filter_=filter_, page_size=page_size, page_token=token,
                                      include_proofs=verify_with is not None)
            if verify_with is not None:
                if page.proofs is None:
                    raise VerificationError("the server returned no proofs")
                result = page.proofs.verify(verify_with)
                if result.checkpoint is not None:
                    seen = self._consistent(seen, result.checkpoint)
                pending = self._prove_pending(page.proofs, seen)
                if pending and not allow_pending:
                    raise PendingError(f"{len(pending)} events not in a signed checkpoint yet: {pending[0]}, ...")
            yield from page.events
            if not page.next_page_token:
                return
            if page.next_page_token == token:
                raise RuntimeError("the server returned the page token it was given; stopping to avoid a loop")
            token = page.next_page_token

    def _prove_pending(self, proofs: LogProofs, seen: Optional[Checkpoint]) -> List[str]:
        """The names of a verified page's pending events left unproven. One
        that the verified checkpoint seen covers is proven against it: a
        proof that does not hold raises VerificationError; a server that
        answers with an error (a replica behind seen) leaves it pending."""
        left = []
        for inc, ev in zip(proofs.inclusions, proofs.events):
            if not inc.pending:
                continue
            if seen is None or inc.leaf_index >= seen.size:
                left.append(inc.name)
                continue
            try:
                proof = self.get_inclusion_proof(inc.name, seen.size)
            except ApiException:
                left.append(inc.name)
                continue
            what = f"{inc.name}, claimed pending at leaf {inc.leaf_index} of a tree of {seen.size} the iteration verified"
            if proof.leaf_index != inc.leaf_index or proof.tree_size != seen.size:
                raise VerificationError(f"{what}, is proven at leaf {proof.leaf_index} of a tree of {proof.tree_size}")
            try:
                verify_event_inclusion(seen, ev, proof)
            except VerificationError as e:
                raise VerificationError(f"{what}: {e}") from None
        return left

    def _consistent(self, seen: Optional[Checkpoint], cp: Checkpoint) -> Checkpoint:
        """Checks that the verified checkpoints seen (the largest so far) and
        cp are of one history; returns the larger."""
        if seen is None:
            return cp
        older, newer = (cp, seen) if cp.size < seen.size else (seen, cp)
        if older.size == newer.size and older.root == newer.root:
            return seen
        if older.size == 0:  # from the empty tree: the proof is empty
            verify_consistency(older, newer, ConsistencyProof(0, newer.size, ()))
        else:
            verify_consistency(older, newer, self.get_consistency_proof(older.size, newer.size))
        return newer

    # The verifiable log (docs/design/verifiable-log.md). Not in the H2O
    # client. Each answer is checked by h2o_audit_trail.verify: a checkpoint
    # is only evidence once its signature is verified with the log's public
    # key, which the caller must obtain out of band (not from this server).

    def get_checkpoint(self, key: Union[str, Verifier]) -> Checkpoint:
        """The latest signed checkpoint of the log, verified with key (the
        log's public key, the ``log-verification.key`` text, or a Verifier).

        Raises h2o_audit_trail.verify.VerificationError when the signature
        or the checkpoint's format does not verify."""
        return open_checkpoint(self._checkpoint_note(), key)

    def _checkpoint_note(self) -> str:
        """The latest signed checkpoint as the server returns it (the signed
        note's text), unverified."""
        return _answer_str(self._transport.get("/v1/log/checkpoint"), "checkpoint")

    def get_inclusion_proof(self, event_name: str, tree_size: int = 0) -> InclusionProof:
        """The audit path of the event named event_name ("events/<id>") in the
        tree of tree_size leaves (0: the latest checkpoint's size). Check it
        with verify.verify_event_inclusion(checkpoint, event, proof) against
        a verified checkpoint of that size."""
        query = {"name": event_name}
        if tree_size:
            query["treeSize"] = str(int(tree_size))
        answer = self._transport.get("/v1/log/inclusion", query)
        return InclusionProof.from_json(_answer_str(answer, "proof"))

    def get_consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        """The proof that the tree of first leaves is a prefix of the tree of
        second leaves. Check it with verify.verify_consistency(older, newer,
        proof) on two verified checkpoints."""
        answer = self._transport.get("/v1/log/consistency", {"first": str(int(first)), "second": str(int(second))})
        return ConsistencyProof.from_json(_answer_str(answer, "proof"))

    def get_log_entries(self, start: int = 0, page_size: int = 0) -> Tuple[List[Dict[str, Any]], int]:
        """Events of the log in leaf order from leaf start (0 is the first
        event; the event at leaf i has seq i + 1), at most page_size of them
        (0: the server's default of 100; at most 1000), as the server's JSON
        (dicts with lowerCamelCase keys, which verify.verify_log checks:
        Python datetimes would drop the nanoseconds the leaves cover), and
        the number of events committed when they were read. Fewer events
        (none) when the log has no more yet. Needs the auditor role; the
        server records every call as a self-audit event. Raises
        VerificationError when the event of leaf start was deleted by the
        server's retention (serve --retention, or a PostgreSQL month dropped by hand):
        get_log_page returns the leaf hashes left in their place."""
        page = self.get_log_page(start, page_size)
        if page.deleted_leaf_hashes:
            end = start + len(page.deleted_leaf_hashes) - 1
            raise VerificationError(f"the events of leaves {start}..{end} were deleted by the server's retention; "
                                    "only their leaf hashes are left (get_log_page)")
        return page.events, page.committed_size

    def get_log_page(self, start: int = 0, page_size: int = 0) -> LogPage:
        """get_log_entries with the leaves whose events the server deleted
        under a retention policy: a page of either events or, when the event
        of leaf start was deleted, the log's leaf hashes of the run of
        deleted leaves from start (LogPage.deleted_leaf_hashes, 32 bytes
        each). verify.verify_log takes them in the events' place as
        ``{"deletedLeafHash": <base64>}`` (LogPage.entries), as an
        ``audittrail mirror --allow-deleted`` directory holds them."""
        events, committed, _, deleted = self._log_entries(start, page_size, False)
        return LogPage(events=events, deleted_leaf_hashes=deleted, committed_size=committed)

    def get_log_entries_with_proofs(self, start: int = 0, page_size: int = 0,
                                    allow_deleted: bool = False) -> Tuple[List[Dict[str, Any]], int, LogProofs]:
        """get_log_entries with the entries' proofs: their inclusion in the
        latest signed checkpoint, checked with LogProofs.verify(key) (and
        that each inclusion's leaf_index is its entry's position). With
        allow_deleted, a page of leaves whose events the server's retention
        deleted comes as ``{"deletedLeafHash": <base64>}`` entries, proven
        like events (their inclusions have no name); without it, such a page
        raises VerificationError."""
        events, committed, proofs, deleted = self._log_entries(start, page_size, True)
        if deleted and not allow_deleted:
            raise VerificationError(f"the events of leaves {start}..{start + len(deleted) - 1} were deleted by the server's retention; "
                                    "only their leaf hashes are left (get_log_page, or allow_deleted=True)")
        assert proofs is not None
        return proofs.events, committed, proofs

    def _log_entries(self, start: int, page_size: int, proofs: bool) -> Tuple[List[Dict[str, Any]], int, Optional[LogProofs], List[bytes]]:
        query = {"start": str(int(start))}
        if page_size:
            query["pageSize"] = str(int(page_size))
        if proofs:
            query["includeProofs"] = "true"
        answer = self._transport.get("/v1/log/entries", query)
        events = answer.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise VerificationError("the server's answer has no list of events")
        if str(answer.get("start", "0")) != str(int(start)):
            raise VerificationError(f"asked for the entries from leaf {start}, the server answered from {answer.get('start')!r}")
        committed = int(answer.get("committedSize", 0))
        deleted_b64 = answer.get("deletedLeafHashes", [])
        if not isinstance(deleted_b64, list) or not all(isinstance(h, str) for h in deleted_b64):
            raise VerificationError("the server's answer has no list of deleted leaf hashes")
        deleted = [_leaf_hash_from_b64(h) for h in deleted_b64]
        if deleted and events:
            raise VerificationError(f"the server's page from leaf {start} holds both events and deleted leaves")
        if not proofs:
            return events, committed, None, deleted
        data = answer.get("proofs")
        if not isinstance(data, dict):
            raise VerificationError("the server's answer has no proofs")
        entries = LogPage(events=events, deleted_leaf_hashes=deleted, committed_size=committed).entries
        return events, committed, LogProofs.from_json(data, entries), deleted

    def iter_window(self, older: Checkpoint, newer: Checkpoint, key: Union[str, Verifier],
                    allow_deleted: bool = False) -> Iterator[Dict[str, Any]]:
        """The events (server JSON) between two verified checkpoints the
        caller holds: seqs older.size+1 to newer.size, which the horizons
        make exactly the events received in [older.received_before,
        newer.received_before). The two are checked consistent first; each
        page's proofs are checked, against a checkpoint consistent with
        newer, before any of its events is yielded, each event at its own
        position. So the window is proven complete: an event left out,
        changed or moved raises VerificationError. Needs the auditor role.
        A leaf whose event the server's retention deleted (serve
        --retention, or a PostgreSQL month dropped by hand) raises VerificationError too, unless
        allow_deleted: it is then yielded as ``{"deletedLeafHash":
        <base64>}``, its hash proven at its position like an event. older
        may be ``verify.empty_checkpoint(origin)``: the window then starts at
        the log's first event. Entries the server's latest checkpoint does
        not cover yet (a replica behind the one that served newer) raise
        PendingError, a VerificationError that is no evidence against the
        log: try again. Not in the H2O client (Go: client.VerifiedWindow)."""
        if older.size > newer.size:
            raise VerificationError("a window needs two checkpoints, the older first")
        if older.received_before_ns > newer.received_before_ns:
            raise VerificationError("the newer checkpoint's horizon is before the older one's")
        seen = self._consistent(older, newer)
        nxt = older.size
        while nxt < newer.size:
            n = min(newer.size - nxt, 1000)
            if allow_deleted:
                events, _, proofs = self.get_log_entries_with_proofs(nxt, n, allow_deleted=True)
            else:
                events, _, proofs = self.get_log_entries_with_proofs(nxt, n)
            if not events or len(events) > n:
                raise VerificationError(f"the server returns {len(events)} entries from leaf {nxt} for {n} asked")
            result = proofs.verify(key)
            if result.pending:
                raise PendingError(f"{len(result.pending)} entries of the window are not in the latest checkpoint yet: try again")
            seen = self._consistent(seen, result.checkpoint)
            for i, inc in enumerate(proofs.inclusions):
                if inc.leaf_index != nxt + i:
                    raise VerificationError(f"the entry at leaf {nxt + i} is proven at leaf {inc.leaf_index}")
            yield from events
            nxt += len(events)

    def follow(
        self,
        key: Union[str, Verifier],
        state_file: Union[str, "os.PathLike[str]"],
        *,
        interval: float = 5.0,
        from_start: bool = False,
        allow_deleted: bool = False,
        once: bool = False,
        stop: Union[None, Callable[[], bool], Any] = None,
    ) -> Iterator[Dict[str, Any]]:
        """Follows the log, as ``audittrail tail --state state_file`` does:
        yields every event the log receives (server JSON, as iter_window),
        in the log's order, once a signed checkpoint covers it and its proof
        is checked, round after round, every interval seconds. Not in the
        H2O client.

        Each round reads the server's latest checkpoint (verified with key:
        the log's public key, the ``log-verification.key`` text, or a
        Verifier, with its witness policy if it has one) and yields the
        events of the window (iter_window) between the checkpoint kept in
        state_file and that one: each event proven at its own position, the
        two checkpoints proven to be of one history, so nothing can be left
        out, changed or added unnoticed. After the round's last event was
        yielded (when the iteration asks for the next), the latest checkpoint
        replaces the state file, durably (a temporary file synced and
        renamed over it, the directory synced).

        state_file holds the signed checkpoint as the server signed it,
        exactly as ``audittrail tail --state`` keeps it: either can go on
        from the other's file. It is reopened with key's log keys only
        (``key.with_witnesses(None)``: a witness policy added since applies
        to new checkpoints). Without the file, a follower starts at the
        server's latest checkpoint (only events received from then on), or
        with from_start at the log's first event.

        Delivery is at least once: a consumer that stops iterating during a
        round (break, close(), a crash) gets that round's events again from
        a follower restarted on the same file, and so does one whose round
        failed on a transient error (each event's ``name`` is unique, for
        consumers that must not see one twice). Every page of up to 1000
        events the follower reads is recorded by the server as a self-audit
        event, which the next round yields in turn: even on an idle server
        a follower sees one new event per round, the record of its own last
        read. Needs the auditor role.

        The lock of ``state_file + ".lock"`` (flock, shared with ``audittrail
        tail``) is taken when the iteration starts and held until it ends
        (exhausted, closed or collected): a second follower of the same file
        raises h2o_audit_trail.tail.StateLockedError.

        Raises VerificationError when a check fails (a forged or forked log,
        a state file that does not verify), leaving state_file as it was;
        so do leaves whose events the server's retention deleted, unless
        allow_deleted: their leaf hashes are then proven in place, they are
        not yielded, and a warning names them. Errors of the server or the
        network (ConnectionError, TimeoutException, answers 5xx and 429) and
        a window not covered yet (PendingError) are logged as warnings (the
        ``logging`` logger ``h2o_audit_trail.tail``) and the round is tried
        again at the next one. A latest checkpoint without the cosignatures
        key's witness policy requires (NotWitnessedError), or behind the
        state's (a replica behind), is waited for: a warning, and the state
        stays as it is. Other errors (401, 403, ...) are raised.

        Args:
            key: The log's public key (or a Verifier).
            state_file: Path of the state file (created when missing; its
                directory must exist).
            interval: Seconds between rounds (> 0).
            from_start: Without a state file, start at the log's first
                event instead of the latest checkpoint.
            allow_deleted: Cross leaves whose events the retention deleted.
            once: Run one round and return: a transient error of the
                round is raised instead of tried again, and a checkpoint
                waited for (not cosigned, behind) ends it without events.
            stop: A threading.Event, or a callable returning True, checked
                before each round and while waiting between rounds: the
                iteration returns once it is set. (To stop in the middle of
                a round, stop iterating: the round is yielded again next
                time.)
        Returns:
            An iterator of the events (dicts with lowerCamelCase keys).
        """
        verifier = key if isinstance(key, Verifier) else Verifier.from_key(key)
        if not interval > 0:
            raise ValueError(f"interval {interval!r}: give a positive number of seconds")
        tail._check_stop(stop)
        return tail.follow(self, verifier, state_file, interval=float(interval), from_start=from_start,
                           allow_deleted=allow_deleted, once=once, stop=stop)


def _answer_str(answer: Dict[str, Any], key: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise VerificationError(f"the server's answer has no {key!r} string")
    return value
