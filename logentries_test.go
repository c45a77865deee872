package audittrail_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/audittrail/audittrail"
)

func TestCanReadLogEntries(t *testing.T) {
	for _, c := range []struct {
		name string
		p    *audittrail.Principal
		want string
	}{
		{"no principal", nil, audittrail.EUnauthenticated},
		{"auditor", &audittrail.Principal{Name: "users/a", Roles: []audittrail.Role{audittrail.RoleAuditor}}, ""},
		{"auditor and workspace auditor", &audittrail.Principal{Name: "users/b", Roles: []audittrail.Role{audittrail.RoleWorkspaceAuditor, audittrail.RoleAuditor}, Workspaces: []string{"workspaces/w"}}, ""},
		{"workspace auditor", &audittrail.Principal{Name: "users/c", Roles: []audittrail.Role{audittrail.RoleWorkspaceAuditor}, Workspaces: []string{"workspaces/w"}}, audittrail.EPermissionDenied},
		{"producer", &audittrail.Principal{Name: "services/p", Roles: []audittrail.Role{audittrail.RoleProducer}}, audittrail.EPermissionDenied},
		{"admin", &audittrail.Principal{Name: "users/d", Roles: []audittrail.Role{audittrail.RoleAdmin}}, audittrail.EPermissionDenied},
	} {
		if got := audittrail.ErrorCode(audittrail.CanReadLogEntries(c.p)); got != c.want {
			t.Errorf("%s: code %q, want %q", c.name, got, c.want)
		}
	}
}

// sparseLog is a log of n events whose seqs in deleted are gone (a
// retention policy): an audittrail.DeletedLeafReader.
type sparseLog struct {
	n       uint64
	deleted map[uint64]bool
}

func (l *sparseLog) LastSeq() uint64 { return l.n }

func (l *sparseLog) EventsBySeq(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	return nil, errors.New("EventsBySeq called on a sparse log")
}

func (l *sparseLog) EventsBySeqSparse(ctx context.Context, from, to uint64) ([]*audittrail.Event, error) {
	var out []*audittrail.Event
	for seq := from; seq <= to; seq++ {
		if l.deleted[seq] {
			out = append(out, nil)
		} else {
			out = append(out, &audittrail.Event{ID: fmt.Sprint(seq), Seq: seq})
		}
	}
	return out, nil
}

func (l *sparseLog) LeafHashes(ctx context.Context, from, to uint64) ([][32]byte, error) {
	var out [][32]byte
	for leaf := from; leaf < to; leaf++ {
		out = append(out, [32]byte{byte(leaf)})
	}
	return out, nil
}

// TestLogEntriesDeleted pages through a log with deleted events: a page is
// a run of events or a run of deleted leaves (their leaf hashes), never
// both, and the pages cover every leaf once.
func TestLogEntriesDeleted(t *testing.T) {
	log := &sparseLog{n: 20, deleted: map[uint64]bool{}}
	for _, seq := range []uint64{4, 5, 6, 12, 20} {
		log.deleted[seq] = true
	}
	svc := &audittrail.Service{}
	for _, c := range []struct {
		start   uint64
		size    int
		events  []uint64 // seqs
		deleted []uint64 // leaves
	}{
		{0, 10, []uint64{1, 2, 3}, nil},
		{2, 2, []uint64{3}, nil},
		{3, 10, nil, []uint64{3, 4, 5}},
		{4, 1, nil, []uint64{4}},
		{6, 100, []uint64{7, 8, 9, 10, 11}, nil},
		{11, 10, nil, []uint64{11}},
		{12, 10, []uint64{13, 14, 15, 16, 17, 18, 19}, nil},
		{19, 10, nil, []uint64{19}},
		{20, 10, nil, nil},
	} {
		page, err := svc.LogEntries(t.Context(), log, c.start, c.size)
		if err != nil {
			t.Fatalf("from %d: %v", c.start, err)
		}
		var seqs, leaves []uint64
		for _, e := range page.Events {
			seqs = append(seqs, e.Seq)
		}
		for i, h := range page.Deleted {
			if h != ([32]byte{byte(c.start + uint64(i))}) {
				t.Errorf("from %d: deleted leaf %d has the hash of leaf %d", c.start, c.start+uint64(i), h[0])
			}
			leaves = append(leaves, c.start+uint64(i))
		}
		if !slices.Equal(seqs, c.events) || !slices.Equal(leaves, c.deleted) || page.Len() != len(seqs)+len(leaves) || page.CommittedSize != 20 {
			t.Errorf("from %d, %d: events %v, deleted leaves %v; want %v, %v", c.start, c.size, seqs, leaves, c.events, c.deleted)
		}
	}
}
