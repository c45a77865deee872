package merkle

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
)

// TestLeafDataLayout pins the encoding byte by byte, as docs/design/merkle.md
// documents it.
func TestLeafDataLayout(t *testing.T) {
	e := &audittrail.Event{
		ID:                "id",
		EventTime:         time.Unix(1, 2),
		ReceiveTime:       time.Unix(-1, 999999999),
		EventSource:       "s",
		Action:            "a",
		ReadOnly:          true,
		Status:            &audittrail.Status{Code: -1, Message: "m"},
		Principal:         "p",
		LoginPrincipal:    "ignored",
		SourceIP:          "i",
		UserAgent:         "",
		Resource:          "r",
		Workspace:         "w",
		RequestParameters: map[string]string{"k2": "v2", "k1": ""},
		Metadata:          nil,
		Type:              audittrail.TypeSystem,
		Seq:               0x0102030405060708,
	}
	want := strings.Join([]string{
		"01",               // version
		"00000002", "6964", // id
		"0000000000000001", "00000002", // event_time
		"ffffffffffffffff", "3b9ac9ff", // receive_time
		"00000001", "73", // event_source
		"00000001", "61", // action
		"01",                               // read_only
		"01", "ffffffff", "00000001", "6d", // status: present, code -1, message
		"00000001", "70", // principal
		"00000001", "69", // source_ip
		"00000000",       // user_agent
		"00000001", "72", // resource
		"00000001", "77", // workspace
		"00000002",                     // request_parameters: 2 entries
		"00000002", "6b31", "00000000", //   k1 = ""
		"00000002", "6b32", "00000002", "7632", //   k2 = v2
		"00000000",         // metadata: none
		"00000002",         // type
		"0102030405060708", // seq
	}, "")
	if got := hex.EncodeToString(LeafData(e)); got != want {
		t.Fatalf("LeafData =\n%s\nwant\n%s", got, want)
	}
	e.Status = nil
	if got := hex.EncodeToString(LeafData(e)); !strings.Contains(got, "610100000000017000") {
		t.Fatalf("absent status must encode as one 00 byte: %s", got)
	}
}

// eventFields are the fields of Event the leaf covers; LoginPrincipal is
// resolved at search time and deliberately not covered. A new field of Event
// fails TestLeafDataCoversEveryField until the encoding decides about it.
var eventFields = []string{"ID", "EventTime", "ReceiveTime", "EventSource", "Action", "ReadOnly", "Status",
	"Principal", "SourceIP", "UserAgent", "Resource", "Workspace", "RequestParameters", "Metadata", "Type", "Seq"}

func TestLeafDataCoversEveryField(t *testing.T) {
	typ := reflect.TypeFor[audittrail.Event]()
	var names []string
	for i := 0; i < typ.NumField(); i++ {
		if n := typ.Field(i).Name; n != "LoginPrincipal" {
			names = append(names, n)
		}
	}
	if !reflect.DeepEqual(names, eventFields) {
		t.Fatalf("Event fields changed: %v; update LeafData (new version), the docs and this test", names)
	}
	base := sampleEvent(6) // has status, metadata and request parameters
	mutations := map[string][]func(e *audittrail.Event){
		"ID":          {func(e *audittrail.Event) { e.ID = e.ID[:35] + "f" }},
		"EventTime":   {func(e *audittrail.Event) { e.EventTime = e.EventTime.Add(1) }, func(e *audittrail.Event) { e.EventTime = e.EventTime.Add(time.Second) }},
		"ReceiveTime": {func(e *audittrail.Event) { e.ReceiveTime = e.ReceiveTime.Add(1) }, func(e *audittrail.Event) { e.ReceiveTime = e.ReceiveTime.Add(-time.Hour) }},
		"EventSource": {func(e *audittrail.Event) { e.EventSource += "x" }},
		"Action":      {func(e *audittrail.Event) { e.Action = "x" + e.Action[1:] }},
		"ReadOnly":    {func(e *audittrail.Event) { e.ReadOnly = !e.ReadOnly }},
		"Status": {func(e *audittrail.Event) { e.Status = nil }, func(e *audittrail.Event) {
			e.Status = &audittrail.Status{Code: e.Status.Code + 1, Message: e.Status.Message}
		}, func(e *audittrail.Event) {
			e.Status = &audittrail.Status{Code: e.Status.Code, Message: e.Status.Message + "."}
		}, func(e *audittrail.Event) { e.Status = &audittrail.Status{} }},
		"Principal":         {func(e *audittrail.Event) { e.Principal = "" }},
		"SourceIP":          {func(e *audittrail.Event) { e.SourceIP = "private" }},
		"UserAgent":         {func(e *audittrail.Event) { e.UserAgent = e.UserAgent[:len(e.UserAgent)-1] + "3" }},
		"Resource":          {func(e *audittrail.Event) { e.Resource += "/" }},
		"Workspace":         {func(e *audittrail.Event) { e.Workspace = "" }},
		"RequestParameters": {func(e *audittrail.Event) { e.RequestParameters = nil }, func(e *audittrail.Event) { e.RequestParameters = map[string]string{"name": "e6", "cpu": "5"} }, func(e *audittrail.Event) { e.RequestParameters = map[string]string{"name": "e6", "cpu": "4", "x": ""} }},
		"Metadata":          {func(e *audittrail.Event) { e.Metadata = map[string]string{"region": "eu", "team": "0", "a_kez": "v"} }},
		"Type":              {func(e *audittrail.Event) { e.Type = 1 }},
		"Seq":               {func(e *audittrail.Event) { e.Seq++ }},
	}
	want := LeafHash(base)
	for _, f := range eventFields {
		ms := mutations[f]
		if len(ms) == 0 {
			t.Errorf("no mutation for field %s", f)
		}
		for i, m := range ms {
			e := cloneEvent(base)
			m(e)
			if LeafHash(e) == want {
				t.Errorf("changing %s (mutation %d) leaves the leaf hash unchanged", f, i)
			}
		}
	}
	e := cloneEvent(base)
	e.LoginPrincipal = "users/someone"
	if LeafHash(e) != want {
		t.Error("LoginPrincipal, resolved at search time, must not change the leaf")
	}
}

// TestLeafDataTamperOneByte flips each byte of each string field: every flip
// changes the leaf.
func TestLeafDataTamperOneByte(t *testing.T) {
	base := sampleEvent(6)
	want := LeafHash(base)
	fields := map[string]func(e *audittrail.Event) *string{
		"ID": func(e *audittrail.Event) *string { return &e.ID }, "EventSource": func(e *audittrail.Event) *string { return &e.EventSource },
		"Action": func(e *audittrail.Event) *string { return &e.Action }, "Principal": func(e *audittrail.Event) *string { return &e.Principal },
		"SourceIP": func(e *audittrail.Event) *string { return &e.SourceIP }, "UserAgent": func(e *audittrail.Event) *string { return &e.UserAgent },
		"Resource": func(e *audittrail.Event) *string { return &e.Resource }, "Workspace": func(e *audittrail.Event) *string { return &e.Workspace },
		"Status.Message": func(e *audittrail.Event) *string { return &e.Status.Message },
	}
	for name, get := range fields {
		for i := range len(*get(base)) {
			e := cloneEvent(base)
			b := []byte(*get(e))
			b[i] ^= 0x01
			*get(e) = string(b)
			if LeafHash(e) == want {
				t.Errorf("flipping byte %d of %s leaves the leaf unchanged", i, name)
			}
		}
	}
	for _, k := range []string{"region", "team", "a_key"} {
		e := cloneEvent(base)
		v := []byte(e.Metadata[k])
		v[0] ^= 1
		e.Metadata[k] = string(v)
		if LeafHash(e) == want {
			t.Errorf("flipping metadata[%s] leaves the leaf unchanged", k)
		}
	}
}

func TestLeafDataCanonical(t *testing.T) {
	a := sampleEvent(6)
	b := cloneEvent(a)
	// Same instants in other locations, with monotonic readings: same leaf.
	b.EventTime = a.EventTime.In(time.FixedZone("X", 3600))
	now := time.Now()
	b.ReceiveTime = now.Add(a.ReceiveTime.Sub(now)) // carries a monotonic reading
	// Maps built in another order.
	b.Metadata = map[string]string{}
	for _, k := range []string{"team", "a_key", "region"} {
		b.Metadata[k] = a.Metadata[k]
	}
	for i := 0; i < 20; i++ {
		if !bytes.Equal(LeafData(a), LeafData(b)) {
			t.Fatal("equal events encode differently")
		}
	}
	// nil and empty maps are the same.
	c, d := cloneEvent(a), cloneEvent(a)
	c.Metadata, d.Metadata = nil, map[string]string{}
	if !bytes.Equal(LeafData(c), LeafData(d)) {
		t.Fatal("nil and empty maps encode differently")
	}
}

// TestLeafDataInjective tries shifting bytes between neighbouring fields and
// between keys and values.
func TestLeafDataInjective(t *testing.T) {
	a, b := sampleEvent(6), sampleEvent(6)
	a.EventSource, a.Action = "ab", "c"
	b.EventSource, b.Action = "a", "bc"
	if bytes.Equal(LeafData(a), LeafData(b)) {
		t.Fatal("field boundary not encoded")
	}
	a, b = sampleEvent(6), sampleEvent(6)
	a.Metadata, b.Metadata = map[string]string{"ab": "c"}, map[string]string{"a": "bc"}
	if bytes.Equal(LeafData(a), LeafData(b)) {
		t.Fatal("map key/value boundary not encoded")
	}
	a, b = sampleEvent(6), sampleEvent(6)
	a.Metadata, a.RequestParameters = map[string]string{"k": "v"}, nil
	b.Metadata, b.RequestParameters = nil, map[string]string{"k": "v"}
	if bytes.Equal(LeafData(a), LeafData(b)) {
		t.Fatal("maps not distinguished")
	}
	a, b = sampleEvent(6), sampleEvent(6)
	a.Status = &audittrail.Status{}
	b.Status = nil
	if bytes.Equal(LeafData(a), LeafData(b)) {
		t.Fatal("status presence not encoded")
	}
}

func TestLeafIndex(t *testing.T) {
	for _, c := range []struct {
		seq  uint64
		want uint64
		ok   bool
	}{{0, 0, false}, {1, 0, true}, {42, 41, true}, {MaxTreeSize, MaxTreeSize - 1, true}, {MaxTreeSize + 1, 0, false}} {
		i, ok := LeafIndex(&audittrail.Event{Seq: c.seq})
		if i != c.want || ok != c.ok {
			t.Errorf("LeafIndex(seq %d) = %d, %v", c.seq, i, ok)
		}
	}
}

func cloneEvent(e *audittrail.Event) *audittrail.Event {
	c := *e
	if e.Status != nil {
		s := *e.Status
		c.Status = &s
	}
	if e.Metadata != nil {
		c.Metadata = map[string]string{}
		for k, v := range e.Metadata {
			c.Metadata[k] = v
		}
	}
	if e.RequestParameters != nil {
		c.RequestParameters = map[string]string{}
		for k, v := range e.RequestParameters {
			c.RequestParameters[k] = v
		}
	}
	return &c
}
