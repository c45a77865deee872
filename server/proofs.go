package server

import (
	"context"
	"slices"
	"time"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/merkle"
)

// Proofs attached to events (docs/design/verifiable-log.md, "Proofs with
// events"): SearchEvents with include_proofs, and the receipts of
// CreateEvent and BatchCreateEvents with include_receipt(s). Every event of
// a response is proven against the same checkpoint, the latest signed one
// when the response is built.

// DefaultReceiptWait bounds how long a create with a receipt waits for a
// signed checkpoint covering its events. The log integrates every 200 ms and
// signs about once a second while events arrive, so a second and a bit
// is the usual wait; the bound leaves room for a loaded integrator.
const DefaultReceiptWait = 3 * time.Second

// receiptPoll is how often a waiting create looks at the latest checkpoint.
const receiptPoll = 25 * time.Millisecond

// receiptMargin is the time a create with a receipt keeps, before its
// caller's deadline, to answer (pending) rather than run out of time.
const receiptMargin = 100 * time.Millisecond

var errNoLog = audittrail.Errorf(audittrail.EUnimplemented,
	"this server keeps no verifiable log (its store does not support it): proofs and receipts are not available")

// logProofs proves events against the latest signed checkpoint, with one
// multi-inclusion proof for all of them (merkle.MultiInclusion). An event
// the checkpoint does not cover yet (seq > size) is pending: its leaf index
// without a proof. Before the first signature every event is pending.
// protos are the events as the answer carries them (for their names).
func logProofs(log VerifiableLog, events []*audittrail.Event, protos []*pb.Event) (*pb.LogProofs, error) {
	if len(protos) != len(events) {
		return nil, audittrail.Errorf(audittrail.EInternal, "%d events to prove, %d in the answer", len(events), len(protos))
	}
	return leafProofs(log, len(events), func(i int) (string, uint64) { return protos[i].GetName(), events[i].Seq })
}

// deletedLeafProofs proves the n leaves from leaf start on, whose events a
// retention policy deleted (GetLogEntries' deleted_leaf_hashes): as
// logProofs, each inclusion without a name.
func deletedLeafProofs(log VerifiableLog, start uint64, n int) (*pb.LogProofs, error) {
	return leafProofs(log, n, func(i int) (string, uint64) { return "", start + uint64(i) + 1 })
}

// leafProofs proves n leaves, the i-th named name with sequence number seq
// by leaf(i), as logProofs says.
func leafProofs(log VerifiableLog, n int, leaf func(i int) (name string, seq uint64)) (*pb.LogProofs, error) {
	note, cp := log.Checkpoint()
	out := &pb.LogProofs{Inclusions: make([]*pb.EventInclusion, n), Hashes: [][]byte{}}
	var size uint64
	if cp != nil {
		out.Checkpoint, out.TreeSize, size = string(note), cp.Size, cp.Size
	}
	covered := make([]uint64, 0, n) // seqs of the leaves the checkpoint covers
	ins := make([]pb.EventInclusion, n)
	for i := range n {
		name, seq := leaf(i)
		if seq == 0 {
			return nil, audittrail.Errorf(audittrail.EInternal, "event %s has no sequence number", name)
		}
		in := &ins[i]
		in.Name, in.LeafIndex = name, seq-1
		if seq > size {
			in.Pending = true
		} else {
			covered = append(covered, seq)
		}
		out.Inclusions[i] = in
	}
	if len(covered) == 0 {
		return out, nil
	}
	// A page is newest first; the proof walks the tree in leaf order. A
	// batch may return one stored event twice (a retried request).
	slices.Sort(covered)
	covered = slices.Compact(covered)
	var err error
	if c, ok := log.(cachedProver); ok {
		// From the log's proof cache: a handful of its nodes for a page of
		// recent events, uncopied.
		out.Hashes, err = c.CachedMultiProofHashes(covered, size)
	} else {
		var proofs []*merkle.Inclusion
		if proofs, err = log.InclusionProofs(covered, size); err == nil {
			leaves := make([]uint64, len(proofs))
			paths := make([][][]byte, len(proofs))
			for i, p := range proofs {
				leaves[i] = p.LeafIndex
				paths[i] = make([][]byte, len(p.Hashes))
				for k := range p.Hashes {
					paths[i][k] = p.Hashes[k][:]
				}
			}
			out.Hashes, err = merkle.MultiInclusionFromPaths(size, leaves, paths)
		}
	}
	if err != nil {
		return nil, audittrail.Errorf(audittrail.EInternal, "inclusion proof of %d events in the tree of size %d: %v", len(covered), size, err)
	}
	return out, nil
}

// cachedProver is a VerifiableLog that proves from a cache of the tree's
// shared hashes (logsign.Log.CachedMultiProofHashes): the hashes of the
// multi-inclusion proof of seqs (ascending), shared with the cache (read
// only).
type cachedProver interface {
	CachedMultiProofHashes(seqs []uint64, treeSize uint64) ([][]byte, error)
}

// receipts waits until a signed checkpoint covers every one of events, for
// at most wait (and not past the caller's deadline, less receiptMargin),
// and then proves them. What is still not covered is returned pending (the
// events are stored all the same: a retry of the create with the same ids
// asks again). A caller that hangs up gets ctx's error.
func receipts(ctx context.Context, log VerifiableLog, wait time.Duration, events []*audittrail.Event, protos []*pb.Event) (*pb.LogProofs, error) {
	var last uint64
	for _, e := range events {
		last = max(last, e.Seq)
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Add(-receiptMargin).Before(deadline) {
		deadline = d.Add(-receiptMargin)
	}
	var t *time.Ticker
	for {
		if _, cp := log.Checkpoint(); last == 0 || cp != nil && cp.Size >= last {
			break
		}
		if !time.Now().Before(deadline) {
			break
		}
		if t == nil {
			t = time.NewTicker(receiptPoll)
			defer t.Stop()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return logProofs(log, events, protos)
}
