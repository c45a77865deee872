package merkle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"golang.org/x/mod/sumdb/tlog"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/merkle")

var goldenPath = filepath.Join("..", "testdata", "merkle", "vectors.json")

// The golden file: everything a second implementation (the Python tests)
// needs to check its leaf encoding, tree hashing, proofs and checkpoints
// against this one. docs/design/merkle.md describes the encodings.
type golden struct {
	Comment     string              `json:"comment"`
	LeafVersion int                 `json:"leaf_version"`
	Events      []goldenEvent       `json:"events"`
	Roots       []goldenRoot        `json:"roots"`
	Inclusion   []goldenInclusion   `json:"inclusion_proofs"`
	Consistency []goldenConsistency `json:"consistency_proofs"`
	Multi       []goldenMulti       `json:"multi_inclusion_proofs"`
	Checkpoint  goldenCheckpoint    `json:"checkpoint"`
	Invalid     []goldenInvalid     `json:"invalid"`
}

type goldenTime struct {
	RFC3339 string `json:"rfc3339"`
	Seconds int64  `json:"seconds"`
	Nanos   int32  `json:"nanos"`
}

type goldenStatus struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

type goldenEvent struct {
	ID                string            `json:"id"`
	EventTime         goldenTime        `json:"event_time"`
	ReceiveTime       goldenTime        `json:"receive_time"`
	EventSource       string            `json:"event_source"`
	Action            string            `json:"action"`
	ReadOnly          bool              `json:"read_only"`
	Status            *goldenStatus     `json:"status"`
	Principal         string            `json:"principal"`
	LoginPrincipal    string            `json:"login_principal"`
	SourceIP          string            `json:"source_ip_address"`
	UserAgent         string            `json:"user_agent"`
	Resource          string            `json:"resource"`
	Workspace         string            `json:"workspace"`
	RequestParameters map[string]string `json:"request_parameters"`
	Metadata          map[string]string `json:"metadata"`
	Type              int32             `json:"type"`
	Seq               uint64            `json:"seq"`
	LeafDataHex       string            `json:"leaf_data_hex"`
	LeafHashHex       string            `json:"leaf_hash_hex"`
	LeafHash          tlog.Hash         `json:"leaf_hash"`
}

type goldenRoot struct {
	Size    uint64    `json:"size"`
	Root    tlog.Hash `json:"root"`
	RootHex string    `json:"root_hex"`
}

type goldenInclusion struct {
	LeafHash tlog.Hash `json:"leaf_hash"`
	Root     tlog.Hash `json:"root"`
	Proof    Inclusion `json:"proof"`
}

type goldenConsistency struct {
	OldRoot tlog.Hash   `json:"old_root"`
	NewRoot tlog.Hash   `json:"new_root"`
	Proof   Consistency `json:"proof"`
}

// goldenMulti is a multi-inclusion proof of Leaves (in the order a page
// lists them, not necessarily ascending) in the tree of Proof.TreeSize.
type goldenMulti struct {
	Leaves []goldenLeaf   `json:"leaves"`
	Root   tlog.Hash      `json:"root"`
	Proof  MultiInclusion `json:"proof"`
}

type goldenLeaf struct {
	Index uint64    `json:"index"`
	Hash  tlog.Hash `json:"leaf_hash"`
}

func toGoldenLeaves(ls []Leaf) []goldenLeaf {
	out := make([]goldenLeaf, len(ls))
	for i, l := range ls {
		out[i] = goldenLeaf(l)
	}
	return out
}

func fromGoldenLeaves(gs []goldenLeaf) []Leaf {
	out := make([]Leaf, len(gs))
	for i, g := range gs {
		out[i] = Leaf(g)
	}
	return out
}

type goldenCheckpoint struct {
	Origin         string    `json:"origin"`
	Size           uint64    `json:"size"`
	Root           tlog.Hash `json:"root"`
	ReceivedBefore string    `json:"received_before"`
	Text           string    `json:"text"`
	SignedNote     string    `json:"signed_note"`
	VerifierKey    string    `json:"verifier_key"`
	SignerKey      string    `json:"signer_key_test_only"`
}

// goldenInvalid is a case every verifier must reject. Kind "checkpoint":
// SignedNote must not open with the golden verifier key. Kind "inclusion":
// Proof must not verify LeafHash at LeafIndex against the golden
// checkpoint. Kind "consistency": Proof must not verify the checkpoint of
// OldSize (root from "roots") against the golden checkpoint. Kind
// "multi_inclusion": MultiInclusion must not verify Leaves against the golden
// checkpoint. Kind "leaf":
// Event's leaf hash must not be the one of the golden leaf Seq-1.
type goldenInvalid struct {
	Name        string          `json:"name"`
	Kind        string          `json:"kind"`
	Description string          `json:"description"`
	SignedNote  string          `json:"signed_note,omitempty"`
	LeafIndex   *uint64         `json:"leaf_index,omitempty"`
	LeafHash    *tlog.Hash      `json:"leaf_hash,omitempty"`
	Inclusion   *Inclusion      `json:"inclusion,omitempty"`
	OldSize     *uint64         `json:"old_size,omitempty"`
	Consistency *Consistency    `json:"consistency,omitempty"`
	Leaves      []goldenLeaf    `json:"leaves,omitempty"`
	Multi       *MultiInclusion `json:"multi_inclusion,omitempty"`
	Event       *goldenEvent    `json:"event,omitempty"`
}

const goldenOrigin = "audittrail.example.com/golden"

func goldenEvents() []*audittrail.Event {
	t := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return v
	}
	return []*audittrail.Event{
		{ // the least an event holds: no status, no maps, no user agent, no workspace
			ID: "0b9e2c3a-6f1d-4e8a-9c7b-1a2b3c4d5e6f", EventTime: t("2025-11-25T20:00:00Z"), ReceiveTime: t("2025-11-25T20:00:00.000000001Z"),
			EventSource: "engine-manager", Action: "GetEngine", Principal: "users/alice", SourceIP: "203.0.113.7",
			Resource: "//engine-manager/engines/e1", Seq: 1,
		},
		{ // everything set, non-ASCII text, nanoseconds
			ID: "1c0f3d4b-7a2e-4f9b-8d8c-2b3c4d5e6f70", EventTime: t("2025-11-25T19:59:58.123456789Z"), ReceiveTime: t("2025-11-25T20:00:01.5Z"),
			EventSource: "engine-manager", Action: "CreateEngine", Status: &audittrail.Status{Code: 7, Message: "permission denied: ünïcødé ✓"},
			Principal: "users/bob", LoginPrincipal: "bob@example.com", SourceIP: "2001:db8::1", UserAgent: "h2o-cli/1.2 (linux)",
			Resource: "//engine-manager/workspaces/w1/daiEngines/e2", Workspace: "workspaces/w1",
			RequestParameters: map[string]string{"name": "e2", "cpu": "4", "gpu": ""},
			Metadata:          map[string]string{"region": "eu-west", "team": "ml"},
			Type:              audittrail.TypeAPI, Seq: 2,
		},
		{ // status present with code 0 and no message: not the same as no status
			ID: "2d1a4e5c-8b3f-4a0c-9e9d-3c4d5e6f7081", EventTime: t("2025-11-25T20:00:02Z"), ReceiveTime: t("2025-11-25T20:00:02.25Z"),
			EventSource: "scheduler", Action: "RunJob", ReadOnly: true, Status: &audittrail.Status{},
			Principal: "services/scheduler", SourceIP: "private", Resource: "workspaces/w2/jobs/j1", Workspace: "workspaces/w2",
			Type: audittrail.TypeSystem, Seq: 3,
		},
		{ // request parameter keys that sort differently by bytes than by case or locale
			ID: "3e2b5f6d-9c40-4b1d-8fae-4d5e6f708192", EventTime: t("1970-01-01T00:00:00Z"), ReceiveTime: t("2025-11-25T20:00:03Z"),
			EventSource: "engine-manager", Action: "UpdateEngine", Status: &audittrail.Status{Code: -1, Message: "negative code"},
			Principal: "users/carol", SourceIP: "198.51.100.20", Resource: "workspaces/w1/daiEngines/e3", Workspace: "workspaces/w1",
			RequestParameters: map[string]string{"b": "1", "B": "2", "a": "3", "_": "4", "ä": "5", "aa": "6"},
			Type:              audittrail.TypeAPI, Seq: 4,
		},
		{ // a workspace override that differs from the resource's
			ID: "4f3c6a7e-0d51-4c2e-9fbf-5e6f708192a3", EventTime: t("2261-12-31T23:59:59.999999999Z"), ReceiveTime: t("2025-11-25T20:00:03.000000001Z"),
			EventSource: "audit", Action: "Export", Principal: "users/dave", SourceIP: "192.0.2.1", UserAgent: "curl/8.0",
			Resource: "workspaces/w3/exports/x1", Workspace: "workspaces/override",
			Metadata: map[string]string{"k": ""}, Type: audittrail.TypeUnspecified, Seq: 5,
		},
		{
			ID: "5a4d7b8f-1e62-4d3f-80c0-6f708192a3b4", EventTime: t("2025-11-25T20:00:04.000001Z"), ReceiveTime: t("2025-11-25T20:00:04.000001Z"),
			EventSource: "engine-manager", Action: "DeleteEngine", Status: &audittrail.Status{Code: 5, Message: "not found"},
			Principal: "users/alice", SourceIP: "203.0.113.7", Resource: "//engine-manager/workspaces/w1/daiEngines/e2", Workspace: "workspaces/w1",
			Type: audittrail.TypeAPI, Seq: 6,
		},
		{
			ID: "6b5e8c90-2f73-4e40-91d1-708192a3b4c5", EventTime: t("2025-11-25T20:00:05Z"), ReceiveTime: t("2025-11-25T20:00:05.999999999Z"),
			EventSource: "engine-manager", Action: "ListEngines", ReadOnly: true, Status: &audittrail.Status{Code: 0, Message: "OK"},
			Principal: "users/erin", SourceIP: "::ffff:203.0.113.9", Resource: "workspaces/w4", Workspace: "workspaces/w4",
			RequestParameters: map[string]string{"page_size": "50"}, Metadata: map[string]string{"source": "ui"},
			Type: audittrail.TypeAPI, Seq: 7,
		},
	}
}

func toGoldenTime(t time.Time) goldenTime {
	return goldenTime{RFC3339: t.UTC().Format(time.RFC3339Nano), Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

func toGoldenEvent(e *audittrail.Event) goldenEvent {
	g := goldenEvent{
		ID: e.ID, EventTime: toGoldenTime(e.EventTime), ReceiveTime: toGoldenTime(e.ReceiveTime),
		EventSource: e.EventSource, Action: e.Action, ReadOnly: e.ReadOnly, Principal: e.Principal,
		LoginPrincipal: e.LoginPrincipal, SourceIP: e.SourceIP, UserAgent: e.UserAgent, Resource: e.Resource,
		Workspace: e.Workspace, RequestParameters: e.RequestParameters, Metadata: e.Metadata, Type: int32(e.Type), Seq: e.Seq,
	}
	if e.Status != nil {
		g.Status = &goldenStatus{Code: e.Status.Code, Message: e.Status.Message}
	}
	data := LeafData(e)
	h := tlog.RecordHash(data)
	g.LeafDataHex, g.LeafHashHex, g.LeafHash = hex.EncodeToString(data), hex.EncodeToString(h[:]), h
	return g
}

// fromGoldenEvent is what a reader of the file does: it rebuilds the event
// from the JSON fields alone.
func fromGoldenEvent(g *goldenEvent) *audittrail.Event {
	e := &audittrail.Event{
		ID: g.ID, EventTime: time.Unix(g.EventTime.Seconds, int64(g.EventTime.Nanos)), ReceiveTime: time.Unix(g.ReceiveTime.Seconds, int64(g.ReceiveTime.Nanos)),
		EventSource: g.EventSource, Action: g.Action, ReadOnly: g.ReadOnly, Principal: g.Principal, LoginPrincipal: g.LoginPrincipal,
		SourceIP: g.SourceIP, UserAgent: g.UserAgent, Resource: g.Resource, Workspace: g.Workspace,
		RequestParameters: g.RequestParameters, Metadata: g.Metadata, Type: audittrail.EventType(g.Type), Seq: g.Seq,
	}
	if g.Status != nil {
		e.Status = &audittrail.Status{Code: g.Status.Code, Message: g.Status.Message}
	}
	return e
}

func seededKey(t testing.TB, seed string) (skey, vkey string) {
	s := sha256.Sum256([]byte(seed))
	skey, vkey, err := GenerateKey(bytes.NewReader(s[:]), goldenOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

func makeGolden(t testing.TB) []byte {
	events := goldenEvents()
	leaves := leafHashes(events)
	tree := &MemStore{}
	if _, err := Integrate(tree, 0, leaves); err != nil {
		t.Fatal(err)
	}
	g := golden{
		Comment: "Golden vectors of the audit trail's verifiable log (package merkle; docs/design/merkle.md). " +
			"Regenerate with: go test ./merkle -run TestGolden -update. The signer key is a test key, public on purpose.",
		LeafVersion: LeafVersion,
	}
	for _, e := range events {
		g.Events = append(g.Events, toGoldenEvent(e))
	}
	roots := map[uint64]tlog.Hash{}
	for n := uint64(0); n <= uint64(len(events)); n++ {
		r, err := TreeRoot(tree, n)
		if err != nil {
			t.Fatal(err)
		}
		roots[n] = r
		g.Roots = append(g.Roots, goldenRoot{Size: n, Root: r, RootHex: hex.EncodeToString(r[:])})
	}
	for _, c := range [][2]uint64{{0, 1}, {0, 7}, {3, 7}, {6, 7}, {4, 5}, {2, 4}, {5, 6}} {
		p, err := InclusionProof(tree, c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		g.Inclusion = append(g.Inclusion, goldenInclusion{LeafHash: leaves[c[0]], Root: roots[c[1]], Proof: *p})
	}
	for _, c := range [][2]uint64{{1, 7}, {3, 7}, {4, 7}, {6, 7}, {2, 5}, {0, 7}, {7, 7}, {1, 2}} {
		p, err := ConsistencyProof(tree, c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		g.Consistency = append(g.Consistency, goldenConsistency{OldRoot: roots[c[0]], NewRoot: roots[c[1]], Proof: *p})
	}
	multi := func(size uint64, indexes ...uint64) ([]Leaf, *MultiInclusion) {
		ls := make([]Leaf, len(indexes))
		for i, x := range indexes {
			ls[i] = Leaf{Index: x, Hash: leaves[x]}
		}
		sorted := slices.Clone(indexes)
		slices.Sort(sorted)
		p, err := ProveMultiInclusion(tree, size, sorted)
		if err != nil {
			t.Fatal(err)
		}
		return ls, p
	}
	for _, c := range []struct {
		size    uint64
		indexes []uint64
	}{{7, []uint64{6, 4, 1}}, {7, []uint64{6, 5, 4, 3, 2, 1, 0}}, {7, []uint64{5}}, {7, []uint64{3, 2}}, {6, []uint64{5, 0}}, {1, []uint64{0}}} {
		ls, p := multi(c.size, c.indexes...)
		g.Multi = append(g.Multi, goldenMulti{Leaves: toGoldenLeaves(ls), Root: roots[c.size], Proof: *p})
	}

	skey, vkey := seededKey(t, "audittrail golden key")
	signer, err := NewSigner([]byte(skey))
	if err != nil {
		t.Fatal(err)
	}
	horizon := events[6].ReceiveTime.Add(1)
	cp := &Checkpoint{Origin: goldenOrigin, Size: 7, Root: roots[7], ReceivedBefore: horizon}
	text, err := cp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Sign(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	g.Checkpoint = goldenCheckpoint{Origin: goldenOrigin, Size: 7, Root: roots[7], ReceivedBefore: horizon.UTC().Format(HorizonLayout),
		Text: string(text), SignedNote: string(msg), VerifierKey: vkey, SignerKey: skey}

	u := func(v uint64) *uint64 { return &v }
	hp := func(h tlog.Hash) *tlog.Hash { return &h }
	// Invalid cases.
	tamperedText, _ := (&Checkpoint{Origin: goldenOrigin, Size: 7, Root: roots[6], ReceivedBefore: horizon}).Marshal()
	tampered := bytes.Replace(msg, text, tamperedText, 1)
	otherSkey, _ := seededKey(t, "another key with the log's name")
	otherSigner, _ := NewSigner([]byte(otherSkey))
	otherMsg, _ := Sign(cp, otherSigner)
	p37, _ := InclusionProof(tree, 3, 7)
	flipped := cloneInclusion(p37)
	flipped.Hashes[1][31] ^= 1
	p36, _ := InclusionProof(tree, 3, 6)
	wrongSize := cloneInclusion(p36)
	wrongSize.TreeSize = 7
	wrongIndex := cloneInclusion(p37)
	wrongIndex.LeafIndex = 2
	c37, _ := ConsistencyProof(tree, 3, 7)
	cflip := cloneConsistency(c37)
	cflip.Hashes[0][0] ^= 0x80
	c47, _ := ConsistencyProof(tree, 4, 7)
	cwrong := cloneConsistency(c47)
	cwrong.OldSize = 3
	page, mp := multi(7, 6, 4, 1)
	mflip := &MultiInclusion{TreeSize: 7, Hashes: slices.Clone(mp.Hashes)}
	mflip.Hashes[2][7] ^= 4
	mextra := &MultiInclusion{TreeSize: 7, Hashes: append(slices.Clone(mp.Hashes), leaves[0])}
	otherLeaf := slices.Clone(page)
	otherLeaf[1].Hash = leaves[5]
	m6leaves, m6 := multi(6, 5, 4, 1)
	m6.TreeSize = 7
	tamperedEvent := cloneEvent(events[1])
	tamperedEvent.Principal = "users/mallory"
	te := toGoldenEvent(tamperedEvent)
	g.Invalid = []goldenInvalid{
		{Name: "checkpoint_tampered_root", Kind: "checkpoint", Description: "the signed note with its root replaced by the root of size 6", SignedNote: string(tampered)},
		{Name: "checkpoint_other_key", Kind: "checkpoint", Description: "the checkpoint signed by another key with the log's name", SignedNote: string(otherMsg)},
		{Name: "inclusion_bit_flipped", Kind: "inclusion", Description: "proof of leaf 3 with one bit of a hash flipped", LeafIndex: u(3), LeafHash: hp(leaves[3]), Inclusion: flipped},
		{Name: "inclusion_other_tree_size", Kind: "inclusion", Description: "a valid proof of leaf 3 in the tree of size 6, claiming size 7", LeafIndex: u(3), LeafHash: hp(leaves[3]), Inclusion: wrongSize},
		{Name: "inclusion_other_index", Kind: "inclusion", Description: "the proof of leaf 3 presented for leaf 3's hash at index 2", LeafIndex: u(2), LeafHash: hp(leaves[3]), Inclusion: wrongIndex},
		{Name: "inclusion_other_leaf", Kind: "inclusion", Description: "the proof of leaf 3 with the hash of leaf 4", LeafIndex: u(3), LeafHash: hp(leaves[4]), Inclusion: p37},
		{Name: "consistency_bit_flipped", Kind: "consistency", Description: "proof from size 3 with one bit flipped", OldSize: u(3), Consistency: cflip},
		{Name: "consistency_other_old_size", Kind: "consistency", Description: "the proof from size 4 presented from size 3", OldSize: u(3), Consistency: cwrong},
		{Name: "multi_bit_flipped", Kind: "multi_inclusion", Description: "proof of leaves 6, 4, 1 with one bit of its third hash flipped", Leaves: toGoldenLeaves(page), Multi: mflip},
		{Name: "multi_hash_too_many", Kind: "multi_inclusion", Description: "proof of leaves 6, 4, 1 with leaf 0's hash appended", Leaves: toGoldenLeaves(page), Multi: mextra},
		{Name: "multi_leaf_left_out", Kind: "multi_inclusion", Description: "proof of leaves 6, 4, 1 presented for leaves 6 and 4", Leaves: toGoldenLeaves(page[:2]), Multi: mp},
		{Name: "multi_other_leaf", Kind: "multi_inclusion", Description: "proof of leaves 6, 4, 1 with leaf 5's hash at index 4", Leaves: toGoldenLeaves(otherLeaf), Multi: mp},
		{Name: "multi_other_tree_size", Kind: "multi_inclusion", Description: "a valid proof of leaves 5, 4, 1 in the tree of size 6, claiming size 7", Leaves: toGoldenLeaves(m6leaves), Multi: m6},
		{Name: "leaf_tampered_principal", Kind: "leaf", Description: "event seq 2 with its principal changed: its leaf hash is not leaf 1's", Event: &te},
	}
	out, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestGolden(t *testing.T) {
	want := makeGolden(t)
	if *update {
		if err := os.WriteFile(goldenPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenPath)
	}
	got, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test ./merkle -run TestGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what this code produces: the encoding changed (if intended, bump LeafVersion, update docs/design/merkle.md and run with -update)", goldenPath)
	}
	var g golden
	d := json.NewDecoder(bytes.NewReader(got))
	d.DisallowUnknownFields()
	if err := d.Decode(&g); err != nil {
		t.Fatal(err)
	}
	// Read back as an independent implementation would.
	var leaves []tlog.Hash
	for i := range g.Events {
		ge := &g.Events[i]
		e := fromGoldenEvent(ge)
		if ts, _ := time.Parse(time.RFC3339Nano, ge.EventTime.RFC3339); !ts.Equal(e.EventTime) {
			t.Fatalf("event %d: event_time fields disagree", i)
		}
		if hex.EncodeToString(LeafData(e)) != ge.LeafDataHex {
			t.Fatalf("event %d: leaf data differs", i)
		}
		data, _ := hex.DecodeString(ge.LeafDataHex)
		if data[0] != 1 {
			t.Fatalf("event %d: version byte %d", i, data[0])
		}
		h := sha256.Sum256(append([]byte{0}, data...))
		if hex.EncodeToString(h[:]) != ge.LeafHashHex || tlog.Hash(h) != ge.LeafHash {
			t.Fatalf("event %d: leaf hash differs", i)
		}
		leaves = append(leaves, h)
	}
	for _, r := range g.Roots {
		if refRoot(leaves[:r.Size]) != r.Root {
			t.Fatalf("root of size %d differs from the reference", r.Size)
		}
	}
	v, err := NewVerifier([]byte(g.Checkpoint.VerifierKey))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint([]byte(g.Checkpoint.SignedNote), v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != g.Checkpoint.Size || cp.Root != g.Checkpoint.Root || cp.Root != refRoot(leaves) {
		t.Fatal("golden checkpoint does not match the tree")
	}
	for _, p := range g.Inclusion {
		if !hashesEqual(p.Proof.Hashes, refPath(int(p.Proof.LeafIndex), leaves[:p.Proof.TreeSize])) {
			t.Fatalf("inclusion proof %+v differs from the reference", p.Proof)
		}
		if tlog.CheckRecord(p.Proof.Hashes, int64(p.Proof.TreeSize), p.Root, int64(p.Proof.LeafIndex), p.LeafHash) != nil {
			t.Fatalf("inclusion proof %+v does not verify", p.Proof)
		}
		if p.Proof.TreeSize == cp.Size {
			if err := VerifyInclusion(cp, p.Proof.LeafIndex, p.LeafHash, &p.Proof); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range g.Consistency {
		if !hashesEqual(p.Proof.Hashes, refConsistency(int(p.Proof.OldSize), leaves[:p.Proof.NewSize])) {
			t.Fatalf("consistency proof %+v differs from the reference", p.Proof)
		}
	}
	for _, m := range g.Multi {
		ls := fromGoldenLeaves(m.Leaves)
		set := map[int]bool{}
		for _, l := range ls {
			if l.Hash != leaves[l.Index] {
				t.Fatalf("multi-inclusion leaf %d has another hash", l.Index)
			}
			set[int(l.Index)] = true
		}
		if !hashesEqual(m.Proof.Hashes, refMulti(leaves[:m.Proof.TreeSize], 0, set)) || m.Root != refRoot(leaves[:m.Proof.TreeSize]) {
			t.Fatalf("multi-inclusion proof %+v differs from the reference", m.Proof)
		}
		if m.Proof.TreeSize == cp.Size {
			if _, err := VerifyMultiInclusion(cp, ls, &m.Proof); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Every invalid case is rejected.
	oldCP := func(size uint64) *Checkpoint {
		skey, _ := seededKey(t, "audittrail golden key")
		s, _ := NewSigner([]byte(skey))
		c, _ := signRoot(t, s, v, size, g.Roots[size].Root, cp.ReceivedBefore.Add(-time.Duration(7-size)))
		return c
	}
	for _, c := range g.Invalid {
		var err error
		switch c.Kind {
		case "checkpoint":
			_, err = OpenCheckpoint([]byte(c.SignedNote), v)
		case "inclusion":
			err = VerifyInclusion(cp, *c.LeafIndex, *c.LeafHash, c.Inclusion)
		case "consistency":
			err = VerifyConsistency(oldCP(*c.OldSize), cp, c.Consistency)
		case "multi_inclusion":
			_, err = VerifyMultiInclusion(cp, fromGoldenLeaves(c.Leaves), c.Multi)
		case "leaf":
			e := fromGoldenEvent(c.Event)
			if LeafHash(e) == leaves[e.Seq-1] {
				err = nil
			} else {
				p, _ := InclusionProof(buildTree(t, leaves), e.Seq-1, cp.Size)
				err = VerifyEventInclusion(cp, e, p)
			}
		default:
			t.Fatalf("unknown kind %q", c.Kind)
		}
		if err == nil {
			t.Errorf("invalid case %s verified", c.Name)
		}
	}
}
