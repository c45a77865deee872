package server

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
	"github.com/audittrail/audittrail/merkle"
)

// VerifiableLog is the verifiable log the LogService serves
// (logsign.Log; docs/design/verifiable-log.md).
type VerifiableLog interface {
	// Checkpoint is the latest signed checkpoint, nil before the first.
	Checkpoint() ([]byte, *merkle.Checkpoint)
	InclusionProof(seq, treeSize uint64) (*merkle.Inclusion, error)
	// InclusionProofs proves several seqs in one tree (a page of events).
	InclusionProofs(seqs []uint64, treeSize uint64) ([]*merkle.Inclusion, error)
	ConsistencyProof(first, second uint64) (*merkle.Consistency, error)
	// EventByID returns the committed event with this id, or nil.
	EventByID(ctx context.Context, id string) (*audittrail.Event, error)
	// LastSeq, EventsBySeq, EventsBySeqSparse and LeafHashes read the
	// log's entries, past events deleted by a retention policy.
	audittrail.DeletedLeafReader
}

// logService implements the LogService. Reading it needs the permission to
// search (audittrail.CanSearch); an inclusion proof is given only for an
// event inside the caller's search scope, and the log's entries only to a
// caller who may read every workspace (audittrail.CanReadLogEntries).
type logService struct {
	pb.UnimplementedLogServiceServer
	log VerifiableLog
	svc *audittrail.Service
}

func (s *logService) GetCheckpoint(ctx context.Context, _ *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	if err := audittrail.CanSearch(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	note, cp := s.log.Checkpoint()
	if cp == nil {
		return nil, toStatus(ctx, audittrail.Errorf(audittrail.EUnavailable, "no checkpoint signed yet"))
	}
	return &pb.GetCheckpointResponse{Checkpoint: string(note), TreeSize: cp.Size}, nil
}

func (s *logService) GetInclusionProof(ctx context.Context, req *pb.GetInclusionProofRequest) (*pb.GetInclusionProofResponse, error) {
	scope, err := audittrail.SearchScope(audittrail.PrincipalFromContext(ctx))
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	id, ok := strings.CutPrefix(req.GetName(), "events/")
	if !ok || id == "" {
		return nil, toStatus(ctx, audittrail.Errorf(audittrail.EInvalid, "name must be events/<id>"))
	}
	e, err := s.log.EventByID(ctx, id)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	if e == nil || !scope.Allows(e.Workspace) {
		return nil, toStatus(ctx, audittrail.Errorf(audittrail.ENotFound, "event %q not found", req.GetName()))
	}
	// An event newer than the latest signed checkpoint is not provable
	// yet, for a second or so: UNAVAILABLE, try again (it was 400, as
	// for a request that cannot succeed). A tree size is taken up to what
	// the log has integrated, which may be past this replica's latest
	// signed checkpoint (another replica signed it): InclusionProof checks.
	size := req.GetTreeSize()
	if size == 0 {
		var latest uint64
		if _, cp := s.log.Checkpoint(); cp != nil {
			latest = cp.Size
		}
		if e.Seq > latest {
			return nil, toStatus(ctx, audittrail.Errorf(audittrail.EUnavailable, "%s is seq %d (leaf index %d) of the log, and the latest signed checkpoint covers %d: it is not provable yet; try again in a few seconds", req.GetName(), e.Seq, e.Seq-1, latest))
		}
		size = latest
	} else if e.Seq > size {
		return nil, toStatus(ctx, audittrail.Errorf(audittrail.EInvalid, "%s is seq %d (leaf index %d) of the log, not in a tree of %d: give a tree_size of %d or more", req.GetName(), e.Seq, e.Seq-1, size, e.Seq))
	}
	p, err := s.log.InclusionProof(e.Seq, size)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetInclusionProofResponse{Seq: e.Seq, Proof: string(b)}, nil
}

func (s *logService) GetConsistencyProof(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	if err := audittrail.CanSearch(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	// A size out of range is the caller's (EInvalid, from the log); a
	// failure to read the tree is the server's.
	p, err := s.log.ConsistencyProof(req.GetFirst(), req.GetSecond())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.GetConsistencyProofResponse{Proof: string(b)}, nil
}

// GetLogEntries returns consecutive events in leaf order
// (audittrail.Service.LogEntries); the auditor role only.
func (s *logService) GetLogEntries(ctx context.Context, req *pb.GetLogEntriesRequest) (*pb.GetLogEntriesResponse, error) {
	if err := audittrail.CanReadLogEntries(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	res, err := s.svc.LogEntries(ctx, s.log, req.GetStart(), int(req.GetPageSize()))
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &pb.GetLogEntriesResponse{
		Start:         res.Start,
		Events:        wire.EventsToProto(res.Events),
		CommittedSize: res.CommittedSize,
	}
	for _, h := range res.Deleted {
		out.DeletedLeafHashes = append(out.DeletedLeafHashes, h[:])
	}
	switch {
	case req.GetIncludeProofs() && len(res.Deleted) > 0:
		if out.Proofs, err = deletedLeafProofs(s.log, res.Start, len(res.Deleted)); err != nil {
			return nil, toStatus(ctx, err)
		}
	case req.GetIncludeProofs():
		if out.Proofs, err = logProofs(s.log, res.Events, out.Events); err != nil {
			return nil, toStatus(ctx, err)
		}
	}
	return out, nil
}

// interceptedLog is the LogService as the gateway calls it: through the
// listener's interceptor chain, like intercepted.
type interceptedLog struct {
	pb.UnimplementedLogServiceServer
	s *intercepted
	l *logService
}

func (i *interceptedLog) GetCheckpoint(ctx context.Context, req *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	return invoke(ctx, i.s, pb.LogService_GetCheckpoint_FullMethodName, req, i.l.GetCheckpoint)
}

func (i *interceptedLog) GetInclusionProof(ctx context.Context, req *pb.GetInclusionProofRequest) (*pb.GetInclusionProofResponse, error) {
	return invoke(ctx, i.s, pb.LogService_GetInclusionProof_FullMethodName, req, i.l.GetInclusionProof)
}

func (i *interceptedLog) GetLogEntries(ctx context.Context, req *pb.GetLogEntriesRequest) (*pb.GetLogEntriesResponse, error) {
	return invoke(ctx, i.s, pb.LogService_GetLogEntries_FullMethodName, req, i.l.GetLogEntries)
}

func (i *interceptedLog) GetConsistencyProof(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	return invoke(ctx, i.s, pb.LogService_GetConsistencyProof_FullMethodName, req, i.l.GetConsistencyProof)
}
