package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/merkle"
)

// Proofs are what the verifiable log (docs/design/verifiable-log.md) says
// about events the server returned: one signed checkpoint and, for each
// event, its position in the log and an inclusion proof against that
// checkpoint. A search returns them with SearchEventsWithProofs, a create as
// its receipt (CreateEventWithReceipt, BatchCreateEventsWithReceipts).
//
// Nothing in Proofs is trusted before Verify: it checks the checkpoint's
// signature with the log's public key, and the events' leaves, computed from
// the events as returned, against the checkpoint's root.
type Proofs struct {
	// Checkpoint is the signed checkpoint (note text) every inclusion is
	// against; nil before the log's first signature.
	Checkpoint []byte
	// TreeSize is the checkpoint's tree size as the server states it.
	TreeSize uint64
	// Inclusions has one entry per event, in the order of the events.
	Inclusions []Inclusion
	// Hashes is the multi-inclusion proof of all the events not pending
	// together (merkle.MultiInclusion): each hash the events' audit paths
	// need, once.
	Hashes []tlog.Hash
	// Receipts is set for the receipts of a batch create, which hold an
	// event twice when the batch sent it twice. Otherwise (a search's
	// proofs, a page of the log) Verify refuses a leaf that appears twice.
	Receipts bool
}

// Inclusion is one event's position and proof.
type Inclusion struct {
	// Name is the event's resource name, "events/<id>".
	Name string
	// LeafIndex is the event's leaf: its sequence number minus 1.
	LeafIndex uint64
	// Pending is true when the checkpoint does not cover the event yet (it
	// was committed less than about a second before); Proof stays nil then.
	Pending bool
	// Proof is the event's own RFC 6962 audit path in the checkpoint's tree,
	// which Verify derives from the shared proof (Proofs.Hashes): nil before
	// a successful Verify. Its JSON form is the file "audittrail verify
	// inclusion --proof" reads, to prove this one event to someone else.
	Proof *merkle.Inclusion
}

// Pending returns the names of the events the checkpoint does not cover
// yet. After a successful Verify these are exactly the unproven events.
func (p *Proofs) Pending() []string {
	var out []string
	for _, in := range p.Inclusions {
		if in.Pending {
			out = append(out, in.Name)
		}
	}
	return out
}

// Verify checks the proofs of events, the events they came with (in the
// same order), with the log's public key (merkle.NewVerifier of the file
// log-verification.key of the server's data directory):
//
//   - the checkpoint carries a valid signature by that key, and the stated
//     tree size is the signed one;
//   - every event not pending is, with exactly its returned content, the
//     leaf at LeafIndex of the checkpoint's tree (the leaf covers the
//     sequence number LeafIndex+1, so the position is proven too);
//   - every event claimed pending is indeed beyond the checkpoint's tree:
//     the server cannot decline to prove what its checkpoint covers.
//
// On success it sets each proven event's own audit path (Inclusion.Proof).
// It returns the verified checkpoint (nil when the log had signed nothing
// yet) and the number of pending, unproven events. A caller that needs every
// event proven requires pending == 0, or asks again a second later (the log
// signs about once a second while events arrive). Keep the checkpoint
// to check later ones against it (Client.ConsistencyProof).
func (p *Proofs) Verify(verifier note.Verifier, events []*audittrail.Event) (cp *merkle.Checkpoint, pending int, err error) {
	if p != nil && len(p.Inclusions) != len(events) {
		return nil, 0, fmt.Errorf("client: %d inclusions for %d events", len(p.Inclusions), len(events))
	}
	return p.verify(verifier, func(i int, in *Inclusion) (tlog.Hash, error) {
		e := events[i]
		if e == nil || in.Name != e.Name() {
			return tlog.Hash{}, fmt.Errorf("client: inclusion %d is for %s, not for the event at the same position", i, in.Name)
		}
		leaf := e.Clone()
		leaf.Seq = in.LeafIndex + 1
		return merkle.LeafHash(leaf), nil
	})
}

// VerifyDeleted is Verify for a page of leaves whose events the server's
// retention deleted (audittrail.LogEntries.Deleted): hashes are the leaf
// hashes of the leaves from start on, and each inclusion must be the
// nameless one of its leaf. What is proven is that these hashes are those
// leaves of the signed tree, not what the events were.
func (p *Proofs) VerifyDeleted(verifier note.Verifier, start uint64, hashes [][32]byte) (cp *merkle.Checkpoint, pending int, err error) {
	if p != nil && len(p.Inclusions) != len(hashes) {
		return nil, 0, fmt.Errorf("client: %d inclusions for %d deleted leaves", len(p.Inclusions), len(hashes))
	}
	return p.verify(verifier, func(i int, in *Inclusion) (tlog.Hash, error) {
		if in.Name != "" || in.LeafIndex != start+uint64(i) {
			return tlog.Hash{}, fmt.Errorf("client: inclusion %d is for %q at leaf %d, not for the deleted leaf %d", i, in.Name, in.LeafIndex, start+uint64(i))
		}
		return hashes[i], nil
	})
}

// verify checks the inclusions against the checkpoint, the leaf hash of
// inclusion i (not pending) being leafHash(i).
func (p *Proofs) verify(verifier note.Verifier, leafHash func(i int, in *Inclusion) (tlog.Hash, error)) (cp *merkle.Checkpoint, pending int, err error) {
	if p == nil {
		return nil, 0, fmt.Errorf("client: no proofs")
	}
	if len(p.Checkpoint) > 0 {
		if cp, err = merkle.OpenCheckpoint(p.Checkpoint, verifier); err != nil {
			return nil, 0, fmt.Errorf("client: %w", err)
		}
		if cp.Size != p.TreeSize {
			return nil, 0, fmt.Errorf("client: stated tree size %d, the signed checkpoint has %d", p.TreeSize, cp.Size)
		}
	}
	leaves := make([]merkle.Leaf, 0, len(p.Inclusions))
	proven := make([]int, 0, len(p.Inclusions)) // positions of leaves in p.Inclusions
	// The multi-proof accepts a leaf given twice (it proves each leaf it
	// is given), so a repeat is refused here: a search's answer holds each
	// event, and each leaf, once.
	seen := make(map[uint64]int, len(p.Inclusions))
	for i := range p.Inclusions {
		in := &p.Inclusions[i]
		if j, ok := seen[in.LeafIndex]; ok && !p.Receipts {
			return nil, 0, fmt.Errorf("client: leaf %d appears twice in the answer (inclusions %d and %d): a search returns each event once", in.LeafIndex, j, i)
		}
		seen[in.LeafIndex] = i
		h, err := leafHash(i, in)
		if err != nil {
			return nil, 0, err
		}
		if in.Pending {
			if cp != nil && in.LeafIndex < cp.Size {
				return nil, 0, fmt.Errorf("client: %s is claimed pending at leaf %d, but the checkpoint covers %d leaves", in.Name, in.LeafIndex, cp.Size)
			}
			pending++
			continue
		}
		if cp == nil {
			return nil, 0, fmt.Errorf("client: %s has a proof but there is no checkpoint", in.Name)
		}
		if in.LeafIndex >= cp.Size {
			return nil, 0, fmt.Errorf("client: %s at leaf %d is not pending, but the checkpoint covers %d leaves", in.Name, in.LeafIndex, cp.Size)
		}
		leaves = append(leaves, merkle.Leaf{Index: in.LeafIndex, Hash: h})
		proven = append(proven, i)
	}
	if cp == nil {
		if len(p.Hashes) > 0 {
			return nil, 0, fmt.Errorf("client: proof hashes but no checkpoint")
		}
		return nil, pending, nil
	}
	paths, err := merkle.VerifyMultiInclusion(cp, leaves, &merkle.MultiInclusion{TreeSize: p.TreeSize, Hashes: p.Hashes})
	if err != nil {
		return nil, 0, fmt.Errorf("client: %w: an event, its position or the proof is not what the log signed", err)
	}
	for k, i := range proven {
		p.Inclusions[i].Proof = paths[k]
	}
	return cp, pending, nil
}

// proofsFromProto converts the wire form. Hashes must be 32 bytes long, and
// no more than the events' single proofs would hold.
func proofsFromProto(p *pb.LogProofs) (*Proofs, error) {
	if p == nil {
		return nil, audittrail.Errorf(audittrail.EInternal, "the server returned no proofs")
	}
	out := &Proofs{TreeSize: p.GetTreeSize(), Inclusions: make([]Inclusion, len(p.GetInclusions()))}
	if p.GetCheckpoint() != "" {
		out.Checkpoint = []byte(p.GetCheckpoint())
	}
	for i, in := range p.GetInclusions() {
		out.Inclusions[i] = Inclusion{Name: in.GetName(), LeafIndex: in.GetLeafIndex(), Pending: in.GetPending()}
	}
	if len(p.GetHashes()) > len(out.Inclusions)*merkle.MaxProofHashes {
		return nil, audittrail.Errorf(audittrail.EInternal, "the server returned a proof of %d hashes for %d events", len(p.GetHashes()), len(out.Inclusions))
	}
	out.Hashes = make([]tlog.Hash, len(p.GetHashes()))
	for i, h := range p.GetHashes() {
		if len(h) != tlog.HashSize {
			return nil, audittrail.Errorf(audittrail.EInternal, "the server returned a malformed proof: hash %d has %d bytes", i, len(h))
		}
		copy(out.Hashes[i][:], h)
	}
	return out, nil
}

// ParseAnswer reads a saved REST answer that carries proofs, its JSON as the
// server sent it: a search with "includeProofs": true, a create with
// includeReceipt, or a batch create with "includeReceipts": true. It returns
// the answer's events and their proofs, to check with Proofs.Verify: an
// answer kept as evidence can be checked later, offline, with the log's
// public key alone ("audittrail verify answer" does).
func ParseAnswer(raw []byte) ([]*audittrail.Event, *Proofs, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, nil, audittrail.Errorf(audittrail.EInvalid, "not a JSON answer: %v", err)
	}
	var (
		events []*pb.Event
		proofs *pb.LogProofs
		err    error
	)
	switch {
	case keys["proofs"] != nil:
		var m pb.SearchEventsResponse
		err = protojson.Unmarshal(raw, &m)
		events, proofs = m.GetEvents(), m.GetProofs()
	case keys["receipts"] != nil:
		var m pb.BatchCreateEventsResponse
		err = protojson.Unmarshal(raw, &m)
		events, proofs = m.GetEvents(), m.GetReceipts()
	case keys["receipt"] != nil:
		var m pb.CreateEventResponse
		err = protojson.Unmarshal(raw, &m)
		events, proofs = []*pb.Event{m.GetEvent()}, m.GetReceipt()
	default:
		return nil, nil, audittrail.Errorf(audittrail.EInvalid, "the answer carries no proofs: save a search with \"includeProofs\": true, or a create with a receipt")
	}
	if err != nil {
		return nil, nil, audittrail.Errorf(audittrail.EInvalid, "not an answer of the API: %v", err)
	}
	out, err := eventsFromProto(events)
	if err != nil {
		return nil, nil, err
	}
	p, err := proofsFromProto(proofs)
	if err != nil {
		return nil, nil, err
	}
	p.Receipts = keys["receipts"] != nil && keys["proofs"] == nil
	return out, p, nil
}

// ProvenEvent is an event of VerifiedEvents with what proves it.
type ProvenEvent struct {
	// Event is the event; nil when Deleted.
	Event *audittrail.Event
	// Deleted is set for a leaf whose event the server's retention deleted
	// (VerifiedWindow with WithDeletedLeaves): LeafHash is its leaf hash,
	// proven at its position by Checkpoint and Proof.
	Deleted  bool
	LeafHash tlog.Hash
	// Checkpoint is the verified checkpoint whose tree holds the event; nil
	// when the event was pending (committed within about the last second,
	// not yet covered by a signed checkpoint when its page was fetched).
	Checkpoint *merkle.Checkpoint
	// Proof is the event's audit path in Checkpoint's tree (the file
	// "audittrail verify inclusion" reads); nil when pending.
	Proof *merkle.Inclusion
}

// VerifiedEvents is Events with proofs: every page comes with the proofs of
// its events, which are checked with verifier (the log's public key) before
// any event of the page is yielded, and whenever a page's checkpoint is not
// the one seen before, a consistency proof between the two is fetched and
// checked, so that the whole iteration is proven against one history of the
// log. A failed check ends the iteration with an error. An event a page
// calls pending (beyond its checkpoint) that a checkpoint verified earlier
// in the iteration covers (a replica behind, or a server hiding a change)
// is proven against that one (InclusionProof) before it is yielded. Events
// still pending are yielded with a nil Checkpoint: unproven. They are
// usually the newest, but may come on any page (a server chooses its page's
// checkpoint); a caller that needs every event proven treats a pending one
// as unverified: it stops, waits a second and starts again.
func (c *Client) VerifiedEvents(ctx context.Context, filter audittrail.Filter, pageSize int, verifier note.Verifier) iter.Seq2[ProvenEvent, error] {
	return func(yield func(ProvenEvent, error) bool) {
		req := audittrail.SearchEventsRequest{Filter: filter, PageSize: pageSize}
		var seen *merkle.Checkpoint // the largest checkpoint checked so far
		for {
			resp, p, err := c.SearchEventsWithProofs(ctx, req)
			if err == nil {
				var cp *merkle.Checkpoint
				if cp, _, err = p.Verify(verifier, resp.Events); err == nil && cp != nil {
					seen, err = consistent(seen, cp, func(older, newer uint64) (*merkle.Consistency, error) {
						return c.ConsistencyProof(ctx, older, newer)
					})
				}
				if err == nil {
					for i, e := range resp.Events {
						in := p.Inclusions[i]
						pe := ProvenEvent{Event: e, Proof: in.Proof}
						if !in.Pending {
							pe.Checkpoint = cp
						} else if seen != nil && in.LeafIndex < seen.Size {
							// Pending for this page's checkpoint, but
							// covered by one the iteration verified: a
							// replica behind, or a server hiding a change.
							if pe, err = c.provePending(ctx, e, in.LeafIndex, seen); err != nil {
								break
							}
						}
						if !yield(pe, nil) {
							return
						}
					}
				}
			}
			if err != nil {
				yield(ProvenEvent{}, err)
				return
			}
			if resp.NextPageToken == "" {
				return
			}
			req.PageToken = resp.NextPageToken
		}
	}
}

// provePending proves event e, claimed pending at leaf by a page, in the
// tree of the verified checkpoint seen, which covers that leaf. A server
// that cannot prove it yet (a replica behind seen: EUnavailable, or any
// other failure to answer) leaves it pending, as the page said; a proof that
// does not hold is an error.
func (c *Client) provePending(ctx context.Context, e *audittrail.Event, leaf uint64, seen *merkle.Checkpoint) (ProvenEvent, error) {
	pe := ProvenEvent{Event: e}
	proof, seq, err := c.InclusionProof(ctx, e.Name(), seen.Size)
	if err != nil {
		return pe, ctx.Err()
	}
	leafEvent := e.Clone()
	leafEvent.Seq = leaf + 1
	if seq != leaf+1 || proof.TreeSize != seen.Size {
		return pe, fmt.Errorf("client: %s, claimed pending at leaf %d, is proven at seq %d in a tree of %d", e.Name(), leaf, seq, proof.TreeSize)
	}
	if err := merkle.VerifyEventInclusion(seen, leafEvent, proof); err != nil {
		return pe, fmt.Errorf("client: %s, claimed pending at leaf %d of a tree of %d that the iteration verified: %w", e.Name(), leaf, seen.Size, err)
	}
	pe.Checkpoint, pe.Proof = seen, proof
	return pe, nil
}

// consistent checks that the verified checkpoints seen (the largest so far,
// nil at first) and cp are of one history, with a consistency proof from
// fetch when they differ, and returns the larger.
func consistent(seen, cp *merkle.Checkpoint, fetch func(older, newer uint64) (*merkle.Consistency, error)) (*merkle.Checkpoint, error) {
	if seen == nil {
		return cp, nil
	}
	older, newer := seen, cp
	if cp.Size < seen.Size {
		older, newer = cp, seen
	}
	if older.Size == newer.Size && older.Root == newer.Root {
		return seen, nil
	}
	proof, err := fetch(older.Size, newer.Size)
	if err == nil {
		err = merkle.VerifyConsistency(older, newer, proof)
	}
	if err != nil {
		return nil, fmt.Errorf("client: the checkpoints of size %d and %d of one iteration: %w", older.Size, newer.Size, err)
	}
	return newer, nil
}

// SearchEventsWithProofs is SearchEvents with proofs: each returned event's
// inclusion in the latest signed checkpoint, which the caller checks with
// Proofs.Verify. Events committed within about the last second may be
// pending. A server without a verifiable log (its store keeps none) answers
// audittrail.EUnimplemented.
func (c *Client) SearchEventsWithProofs(ctx context.Context, req audittrail.SearchEventsRequest) (*audittrail.SearchEventsResponse, *Proofs, error) {
	return c.search(ctx, req, true)
}

// CreateEventWithReceipt is CreateEvent with a receipt: the server waits (a
// bounded time, about a second usually, at most a few) until a signed
// checkpoint covers the event, and returns the event's inclusion proof. When
// the wait runs out the event is stored all the same and its inclusion is
// pending: calling again with the same id and event asks again.
func (c *Client) CreateEventWithReceipt(ctx context.Context, id string, e audittrail.NewEvent) (*audittrail.Event, *Proofs, error) {
	req := &pb.CreateEventRequest{EventId: id, Event: wire.NewEventToProto(&e), IncludeReceipt: true}
	var resp *pb.CreateEventResponse
	err := c.retry.do(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.rpc.CreateEvent(ctx, req, opts...)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	ev, err := eventFromProto(resp.GetEvent())
	if err != nil {
		return nil, nil, err
	}
	p, err := proofsFromProto(resp.GetReceipt())
	if err != nil {
		return nil, nil, err
	}
	return ev, p, nil
}

// BatchCreateEventsWithReceipts is BatchCreateEvents with receipts: one
// inclusion per stored event (BatchResult.Events), in order, as
// CreateEventWithReceipt.
func (c *Client) BatchCreateEventsWithReceipts(ctx context.Context, reqs []audittrail.CreateRequest) (*audittrail.BatchResult, *Proofs, error) {
	return c.batchCreate(ctx, reqs, true)
}

// Checkpoint returns the log's latest signed checkpoint (note text); open
// it with merkle.OpenCheckpoint and the log's public key. It needs the
// permission to search.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	var resp *pb.GetCheckpointResponse
	err := c.retry.do(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.log.GetCheckpoint(ctx, &pb.GetCheckpointRequest{}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return []byte(resp.GetCheckpoint()), nil
}

// InclusionProof returns the audit path of the event named name
// ("events/<id>") in the log's tree of treeSize leaves (0: the latest signed
// checkpoint's size), and the event's seq; merkle.VerifyEventInclusion checks
// it against a verified checkpoint of that size. It needs the permission to
// search (and to see the event). An event the server's latest checkpoint
// does not cover yet is audittrail.EUnavailable.
func (c *Client) InclusionProof(ctx context.Context, name string, treeSize uint64) (*merkle.Inclusion, uint64, error) {
	var resp *pb.GetInclusionProofResponse
	err := c.retry.do(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Name: name, TreeSize: treeSize}, opts...)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	var p merkle.Inclusion
	if err := p.UnmarshalJSON([]byte(resp.GetProof())); err != nil {
		return nil, 0, audittrail.Errorf(audittrail.EInternal, "the server returned a malformed inclusion proof: %v", err)
	}
	return &p, resp.GetSeq(), nil
}

// ConsistencyProof returns the proof that the log's tree of first leaves is
// a prefix of its tree of second leaves; merkle.VerifyConsistency checks it
// between two verified checkpoints of these sizes. It needs the permission
// to search.
func (c *Client) ConsistencyProof(ctx context.Context, first, second uint64) (*merkle.Consistency, error) {
	var resp *pb.GetConsistencyProofResponse
	err := c.retry.do(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{First: first, Second: second}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	var p merkle.Consistency
	if err := p.UnmarshalJSON([]byte(resp.GetProof())); err != nil {
		return nil, audittrail.Errorf(audittrail.EInternal, "the server returned a malformed consistency proof: %v", err)
	}
	return &p, nil
}

// LogEntries returns up to pageSize events of the log from leaf start on,
// in leaf order, each with its Seq (leaf index + 1), and the number of
// events committed when they were read; fewer than pageSize (none) when the
// log has no more yet. 0 asks for the server's default of
// audittrail.DefaultLogEntries; the server returns at most
// audittrail.MaxLogEntries. It needs the auditor role, and the server
// records every call as a self-audit event. logmirror checks the entries
// against the signed checkpoints. When the event of leaf start was deleted
// by the server's retention it fails (ENotFound) naming the deleted leaves:
// LogPage returns their leaf hashes.
func (c *Client) LogEntries(ctx context.Context, start uint64, pageSize int) (events []*audittrail.Event, committed uint64, err error) {
	page, _, err := c.logEntries(ctx, start, pageSize, false)
	if err != nil {
		return nil, 0, err
	}
	if err := noDeleted(page); err != nil {
		return nil, 0, err
	}
	return page.Events, page.CommittedSize, nil
}

// LogPage is LogEntries with the leaves whose events were deleted by the
// server's retention (a dropped month of the PostgreSQL store): a page of
// either events or, when the event of leaf start was deleted, the log's
// leaf hashes of the run of deleted leaves from start (LogEntries.Deleted),
// which a mirror hashes into the tree in their place.
func (c *Client) LogPage(ctx context.Context, start uint64, pageSize int) (*audittrail.LogEntries, error) {
	page, _, err := c.logEntries(ctx, start, pageSize, false)
	return page, err
}

// LogEntriesWithProofs is LogEntries with the entries' inclusion in the
// latest signed checkpoint, which the caller checks with Proofs.Verify (and
// that each inclusion's LeafIndex is its entry's position). VerifiedWindow
// uses it to prove a whole window of the log.
func (c *Client) LogEntriesWithProofs(ctx context.Context, start uint64, pageSize int) ([]*audittrail.Event, uint64, *Proofs, error) {
	page, p, err := c.logEntries(ctx, start, pageSize, true)
	if err != nil {
		return nil, 0, nil, err
	}
	if err := noDeleted(page); err != nil {
		return nil, 0, nil, err
	}
	return page.Events, page.CommittedSize, p, nil
}

// noDeleted is the error of a page of deleted leaves for the calls that
// return events only.
func noDeleted(page *audittrail.LogEntries) error {
	if n := uint64(len(page.Deleted)); n > 0 {
		return audittrail.Errorf(audittrail.ENotFound, "the events of leaves %d..%d were deleted by the server's retention; "+
			"only their leaf hashes are left (LogPage)", page.Start, page.Start+n-1)
	}
	return nil
}

func (c *Client) logEntries(ctx context.Context, start uint64, pageSize int, proofs bool) (*audittrail.LogEntries, *Proofs, error) {
	if pageSize < 0 || pageSize > 1<<31-1 {
		return nil, nil, audittrail.Errorf(audittrail.EInvalid, "page_size %d is out of range", pageSize)
	}
	var resp *pb.GetLogEntriesResponse
	err := c.retry.do(ctx, func(ctx context.Context, opts ...grpc.CallOption) (err error) {
		resp, err = c.log.GetLogEntries(ctx, &pb.GetLogEntriesRequest{Start: start, PageSize: int32(pageSize), IncludeProofs: proofs}, opts...)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if resp.GetStart() != start {
		return nil, nil, audittrail.Errorf(audittrail.EInternal, "asked for the log's entries from leaf %d, the server answered from leaf %d", start, resp.GetStart())
	}
	page := &audittrail.LogEntries{Start: start, CommittedSize: resp.GetCommittedSize()}
	if len(resp.GetEvents()) > 0 && len(resp.GetDeletedLeafHashes()) > 0 {
		return nil, nil, audittrail.Errorf(audittrail.EInternal, "the server's page of the log from leaf %d holds both events and deleted leaves", start)
	}
	for _, h := range resp.GetDeletedLeafHashes() {
		if len(h) != 32 {
			return nil, nil, audittrail.Errorf(audittrail.EInternal, "the server's leaf hash of a deleted leaf has %d bytes, not 32", len(h))
		}
		page.Deleted = append(page.Deleted, [32]byte(h))
	}
	if page.Events, err = eventsFromProto(resp.GetEvents()); err != nil {
		return nil, nil, err
	}
	for i, e := range page.Events {
		e.Seq = start + uint64(i) + 1
	}
	var p *Proofs
	if proofs {
		if p, err = proofsFromProto(resp.GetProofs()); err != nil {
			return nil, nil, err
		}
	}
	return page, p, nil
}

// VerifiedWindow yields every event of the log between two checkpoints the
// caller holds and has verified (merkle.OpenCheckpoint): the events with
// seqs older.Size+1 to newer.Size, which the checkpoints' horizons make
// exactly the events received in [older.ReceivedBefore,
// newer.ReceivedBefore). It first checks that newer extends older (a
// consistency proof, merkle.VerifyWindow); then each page of entries comes
// with its proofs, checked before any of its events is yielded: every event
// proven at its own position in the tree of the page's checkpoint, which
// is checked consistent with newer. So the iteration is complete, not just
// correct: an event left out of the window, added to it or moved would fail
// a check. A failed check, or an event not yet covered by a checkpoint (a
// replica behind: EUnavailable, try again), ends it with an error, as does a leaf whose
// event the server's retention deleted unless WithDeletedLeaves is given. It
// needs the auditor role; every page read is a self-audit event.
func (c *Client) VerifiedWindow(ctx context.Context, older, newer *merkle.Checkpoint, verifier note.Verifier, opts ...WindowOption) iter.Seq2[ProvenEvent, error] {
	var cfg windowConfig
	for _, o := range opts {
		o(&cfg)
	}
	return func(yield func(ProvenEvent, error) bool) {
		fail := func(err error) { yield(ProvenEvent{}, err) }
		if older == nil || newer == nil || older.Size > newer.Size {
			fail(fmt.Errorf("client: a window needs two checkpoints, the older first"))
			return
		}
		var proof *merkle.Consistency
		if older.Size > 0 && older.Size < newer.Size {
			var err error
			if proof, err = c.ConsistencyProof(ctx, older.Size, newer.Size); err != nil {
				fail(err)
				return
			}
		} else { // equal sizes, or from the empty tree: the proof is empty
			proof = &merkle.Consistency{OldSize: older.Size, NewSize: newer.Size}
		}
		if _, err := merkle.VerifyWindow(older, newer, proof); err != nil {
			fail(fmt.Errorf("client: the window's checkpoints: %w", err))
			return
		}
		seen := newer
		for next := older.Size; next < newer.Size; {
			n := min(newer.Size-next, audittrail.MaxLogEntries)
			page, p, err := c.logEntries(ctx, next, int(n), true)
			if err == nil && !cfg.deleted {
				err = noDeleted(page)
			}
			if err != nil {
				fail(err)
				return
			}
			events, deleted := page.Events, page.Deleted
			if got := uint64(page.Len()); got == 0 || got > n {
				fail(fmt.Errorf("client: the server returns %d entries from leaf %d, inside the checkpoint of size %d, for %d asked", got, next, newer.Size, n))
				return
			}
			var cp *merkle.Checkpoint
			var pending int
			if len(deleted) > 0 {
				cp, pending, err = p.VerifyDeleted(verifier, next, deleted)
			} else {
				cp, pending, err = p.Verify(verifier, events)
			}
			if err == nil && pending > 0 {
				// A replica behind the one that served newer: not a verdict.
				err = audittrail.Errorf(audittrail.EUnavailable, "%d entries of the window are not in the server's latest checkpoint yet: try again", pending)
			}
			if err == nil {
				seen, err = consistent(seen, cp, func(o, n uint64) (*merkle.Consistency, error) { return c.ConsistencyProof(ctx, o, n) })
			}
			for i, in := range p.Inclusions {
				if err == nil && in.LeafIndex != next+uint64(i) {
					err = fmt.Errorf("client: the entry at leaf %d is proven at leaf %d", next+uint64(i), in.LeafIndex)
				}
			}
			if err != nil {
				fail(err)
				return
			}
			for i, e := range events {
				if !yield(ProvenEvent{Event: e, Checkpoint: cp, Proof: p.Inclusions[i].Proof}, nil) {
					return
				}
			}
			for i, h := range deleted {
				if !yield(ProvenEvent{Deleted: true, LeafHash: h, Checkpoint: cp, Proof: p.Inclusions[i].Proof}, nil) {
					return
				}
			}
			next += uint64(page.Len())
		}
	}
}

// WindowOption tunes VerifiedWindow.
type WindowOption func(*windowConfig)

type windowConfig struct{ deleted bool }

// WithDeletedLeaves lets a window cross leaves whose events the server's
// retention deleted (a dropped month of the PostgreSQL store): each is
// yielded as a ProvenEvent with Deleted set and its leaf hash, proven at its
// position like an event. Without it such a leaf ends the window with an
// error (ENotFound) naming it.
func WithDeletedLeaves() WindowOption { return func(c *windowConfig) { c.deleted = true } }
