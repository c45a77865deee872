package pebblestore

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/audittrail/audittrail"
)

// inlineRecord encodes e with every value inline (no dictionary).
func inlineRecord(e *audittrail.Event) []byte {
	refs := &recordRefs{}
	for i := range refs.fields {
		refs.fields[i].inline = true
	}
	refs.ua.inline = true
	keys := make([]string, 0, len(e.Metadata))
	for k := range e.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		refs.meta = append(refs.meta, valueRef{inline: true})
		refs.pairs = append(refs.pairs, []byte(k+"\x00"+e.Metadata[k]))
	}
	return appendRecord(nil, e, refs, uuid.MustParse(e.ID))
}

// FuzzDecodeRecord: a record read from disk is decoded or refused with an
// error, never a panic, and what decodes is what encoding it again and
// decoding gives (the decoder's strings share one buffer per event: a
// string made from a buffer later overwritten would show here).
func FuzzDecodeRecord(f *testing.F) {
	const ns, seq = int64(1e18), 7
	at := time.Unix(0, ns).UTC()
	for _, e := range []*audittrail.Event{
		{ID: uuid.NewString(), EventTime: at},
		{
			ID: uuid.NewString(), EventTime: at, ReceiveTime: at.Add(time.Second), EventSource: "s", Action: "actions/a/b/GET",
			ReadOnly: true, Status: &audittrail.Status{Code: 5, Message: "not found"}, Principal: "users/1",
			SourceIP: "10.0.0.1", UserAgent: "curl", Resource: "workspaces/w/r", Workspace: "workspaces/w",
			Type: audittrail.TypeAPI, Metadata: map[string]string{"a": "1", "tenant": "acme", "": ""},
			RequestParameters: map[string]string{"page": "2", "q": "x\x00y"},
		},
		{ID: uuid.NewString(), EventTime: at, ReceiveTime: time.Date(1600, 1, 1, 0, 0, 0, 5, time.UTC), Metadata: map[string]string{}, RequestParameters: map[string]string{}},
	} {
		f.Add(inlineRecord(e))
	}
	f.Add([]byte{recordVersion, 0xff})
	snap := newDicts(DefaultDictionaryLimit).snapshot() // empty: a dictionary reference is an error
	f.Fuzz(func(t *testing.T, rec []byte) {
		e, err := decodeRecord(snap, rec, ns, seq)
		if err != nil {
			return
		}
		again, err := decodeRecord(snap, inlineRecord(e), ns, seq)
		if err != nil {
			t.Fatalf("re-encoded record of %+v: %v", e, err)
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Fatalf("decoded, encoded and decoded again differs (-first +again):\n%s", diff)
		}
	})
}

func TestArenaUUID(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var a strArena
	for range 1000 {
		var id uuid.UUID
		for i := range id {
			id[i] = byte(r.Uint32())
		}
		if got, want := a.uuid(id[:]), id.String(); got != want {
			t.Fatalf("uuid(%x) = %q, want %q", id[:], got, want)
		}
	}
}
