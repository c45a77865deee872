package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/merkle"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestVerifiableLogEndToEnd runs the server, creates events, waits for a
// signed checkpoint covering them, proves each searched event's inclusion
// and the consistency of two checkpoints, and checks them with the merkle
// verifiers and "audittrail verify". Then, with the server stopped, it
// tampers with one stored record: "verify store" names its leaf.
func TestVerifiableLogEndToEnd(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	m, _ := newTestMain(nil)
	if err := m.ParseFlags([]string{"--dev", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatal(err)
	}
	defer m.Close()
	if m.Log == nil {
		t.Fatal("no verifiable log on the embedded store")
	}
	keyFile := filepath.Join(dir, logsign.VerificationKeyFile)
	if fi, err := os.Stat(filepath.Join(dir, logsign.SigningKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v %v", fi, err)
	}
	verifier := mustVerifier(t, keyFile)

	create := func(from, n int) {
		var items []string
		for i := from; i < from+n; i++ {
			items = append(items, fmt.Sprintf(`{"eventTime":"2026-01-02T03:04:%02dZ","eventSource":"verify-test","action":"create","principal":"alice","sourceIpAddress":"203.0.113.7","userAgent":"ua","resource":"res-unique-%04d"}`, i%60, i))
		}
		in := filepath.Join(t.TempDir(), "events.json")
		if err := os.WriteFile(in, []byte("["+strings.Join(items, ",")+"]"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errs, err := runCommand(t, "create", "--addr", m.InternalURL, "--token", m.Config.ProducerToken, in)
		if err != nil {
			t.Fatalf("create: %v\n%s%s", err, out, errs)
		}
	}
	ls := m.store.(audittrail.LogStore)
	waitCheckpoint := func() ([]byte, *merkle.Checkpoint) {
		want := ls.LastSeq()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if note, c := m.Log.Checkpoint(); c != nil && c.Size >= want {
				return note, c
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no checkpoint of size %d within 10s", want)
		return nil, nil
	}

	create(0, 10)
	note1, cp1 := waitCheckpoint()
	create(10, 15)
	note2, cp2 := waitCheckpoint()

	files := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cp1File, cp2File := write("cp1", note1), write("cp2", note2)
	verify := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errs bytes.Buffer
		code := run(ctx, append([]string{"verify"}, args...), &out, &errs)
		if code != wantCode {
			t.Fatalf("verify %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out.String(), errs.String())
		}
		return out.String() + errs.String()
	}
	if out := verify(0, "checkpoint", "--key", keyFile, cp2File); !strings.Contains(out, fmt.Sprintf("size %d,", cp2.Size)) {
		t.Errorf("verify checkpoint printed %q", out)
	}
	bad := bytes.Replace(note2, []byte("\n"+fmt.Sprint(cp2.Size)+"\n"), []byte("\n"+fmt.Sprint(cp2.Size+1)+"\n"), 1)
	verify(1, "checkpoint", "--key", keyFile, write("bad-cp", bad))
	// A checkpoint saved with a newline after its own (curl | jq -r
	// .checkpoint) is refused, saying why.
	if out := verify(1, "checkpoint", "--key", keyFile, write("jq-r-cp", append(bytes.Clone(note2), '\n'))); !strings.Contains(out, "the file ends with an empty line") {
		t.Errorf("verify checkpoint of a file with an empty last line printed %q", out)
	}

	// Consistency of the two checkpoints.
	cons, err := m.Log.ConsistencyProof(cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	o1, err1 := merkle.OpenCheckpoint(note1, verifier)
	o2, err2 := merkle.OpenCheckpoint(note2, verifier)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if err := merkle.VerifyConsistency(o1, o2, cons); err != nil {
		t.Fatal(err)
	}
	consJSON, _ := json.Marshal(cons)
	verify(0, "consistency", "--key", keyFile, cp1File, cp2File, write("cons.json", consJSON))
	verify(1, "consistency", "--key", keyFile, cp2File, cp1File, write("cons.json", consJSON))

	// Inclusion of every searched event, in the API JSON that search prints.
	out, errs, err := runCommand(t, "search", "--addr", m.PublicURL, "--token", m.Config.ReaderToken, "--all", "-o", "jsonl",
		"--start", "2026-01-01T00:00:00Z", "--until", "2026-01-03T00:00:00Z")
	if err != nil {
		t.Fatalf("search: %v\n%s", err, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 25 {
		t.Fatalf("search returned %d events, want 25:\n%s", len(lines), out)
	}
	all, err := ls.EventsBySeq(ctx, 1, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	seqOf := map[string]uint64{}
	var target *audittrail.Event
	for _, e := range all {
		seqOf[e.ID] = e.Seq
		if e.Resource == "res-unique-0017" {
			target = e
		}
	}
	for _, line := range lines {
		var ev struct{ Name string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		seq := seqOf[strings.TrimPrefix(ev.Name, "events/")]
		if seq == 0 {
			t.Fatalf("searched event %s is not in the log", ev.Name)
		}
		p, err := m.Log.InclusionProof(seq, cp2.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyEventInclusion(o2, all[seq-1], p); err != nil {
			t.Fatal(err)
		}
		pj, _ := json.Marshal(p)
		verify(0, "inclusion", "--key", keyFile, "--checkpoint", cp2File, "--event", write("ev.json", []byte(line)), "--proof", write("p.json", pj))
		forged := strings.Replace(line, `"action":"create"`, `"action":"delete"`, 1)
		verify(1, "inclusion", "--key", keyFile, "--checkpoint", cp2File, "--event", write("ev.json", []byte(forged)), "--proof", write("p.json", pj))
	}

	// The same through the REST API of both listeners.
	call := func(method, base, token, path, reqBody string, wantCode int) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(reqBody))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantCode {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, wantCode, body)
		}
		return body
	}
	get := func(base, token, path string, wantCode int, v any) {
		t.Helper()
		body := call("GET", base, token, path, "", wantCode)
		if v != nil {
			if err := json.Unmarshal(body, v); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, body)
			}
		}
	}
	reader := m.Config.ReaderToken
	var gotCP struct{ Checkpoint, TreeSize string }
	get(m.PublicURL, reader, "/v1/log/checkpoint", http.StatusOK, &gotCP)
	restCP, err := merkle.OpenCheckpoint([]byte(gotCP.Checkpoint), verifier)
	if err != nil || fmt.Sprint(restCP.Size) != gotCP.TreeSize || restCP.Size < cp2.Size {
		t.Fatalf("REST checkpoint %+v: %v", gotCP, err)
	}
	get(m.PublicURL, m.Config.ProducerToken, "/v1/log/checkpoint", http.StatusForbidden, nil)
	get(m.InternalURL, "wrong", "/v1/log/checkpoint", http.StatusUnauthorized, nil)
	var gotIncl struct{ Seq, Proof string }
	get(m.InternalURL, reader, fmt.Sprintf("/v1/log/inclusion?name=events/%s&treeSize=%d", target.ID, cp2.Size), http.StatusOK, &gotIncl)
	var restProof merkle.Inclusion
	if err := json.Unmarshal([]byte(gotIncl.Proof), &restProof); err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyEventInclusion(o2, target, &restProof); err != nil || gotIncl.Seq != fmt.Sprint(target.Seq) {
		t.Fatalf("REST inclusion proof %+v: %v", gotIncl, err)
	}
	get(m.PublicURL, reader, "/v1/log/inclusion?name=events/00000000-0000-4000-8000-000000000000", http.StatusNotFound, nil)
	var gotCons struct{ Proof string }
	get(m.PublicURL, reader, fmt.Sprintf("/v1/log/consistency?first=%d&second=%d", cp1.Size, cp2.Size), http.StatusOK, &gotCons)
	verify(0, "consistency", "--key", keyFile, cp1File, cp2File, write("cons-rest.json", []byte(gotCons.Proof)))
	// Sizes out of range are the caller's, said in the API's words.
	for path, want := range map[string]string{
		"/v1/log/consistency?first=5&second=4":                            "no consistency proof from 5 to 4 leaves",
		"/v1/log/consistency?first=1&second=999999":                       "no consistency proof from 1 to 999999 leaves",
		"/v1/log/inclusion?name=events/" + target.ID + "&treeSize=999999": "tree_size 999999 is larger than the log's tree",
	} {
		body := call("GET", m.PublicURL, reader, path, "", http.StatusBadRequest)
		if !strings.Contains(string(body), want) || strings.Contains(string(body), "logsign") {
			t.Errorf("GET %s: %s; want %q, without the package's name", path, body, want)
		}
	}

	// Saved REST answers with proofs verify offline, as a whole: a search
	// page, and a create's receipt. A changed byte of an event fails.
	post := func(base, token, path, body string) []byte {
		t.Helper()
		return call("POST", base, token, path, body, http.StatusOK)
	}
	page := post(m.PublicURL, reader, "/v1/events:search", `{"filter": {"resourceRegex": "^res-unique-"}, "pageSize": 20, "includeProofs": true}`)
	if !bytes.Contains(page, []byte(`"res-unique-0017"`)) {
		t.Fatalf("the page does not hold res-unique-0017: %s", page)
	}
	out = verify(0, "answer", "--key", keyFile, "--strict", write("page.json", page))
	if !strings.Contains(out, "answer OK: 20 events proven") || !strings.Contains(out, fmt.Sprintf("events/%s leaf %d proven", target.ID, target.Seq-1)) {
		t.Errorf("verify answer printed:\n%s", out)
	}
	verify(1, "answer", "--key", keyFile, write("page.json", bytes.Replace(page, []byte(`"res-unique-0017"`), []byte(`"res-unique-0018"`), 1)))
	verify(1, "answer", "--key", keyFile, write("page.json", bytes.Replace(page, []byte(`"includeProofs"`), []byte(`"x"`), 1)[:len(page)/2]))
	verify(1, "answer", "--key", keyFile, write("plain.json", post(m.PublicURL, reader, "/v1/events:search", `{"pageSize": 2}`)))
	// A search's answer with an event given twice, its inclusion too: every
	// proof holds, but a search returns each event once. A batch's receipts
	// with an event sent twice hold it twice, and verify.
	var doubled map[string]any
	if err := json.Unmarshal(page, &doubled); err != nil {
		t.Fatal(err)
	}
	evs, incs := doubled["events"].([]any), doubled["proofs"].(map[string]any)["inclusions"].([]any)
	doubled["events"], doubled["proofs"].(map[string]any)["inclusions"] = append(evs, evs[3]), append(incs, incs[3])
	doubledJSON, _ := json.Marshal(doubled)
	if out := verify(1, "answer", "--key", keyFile, write("doubled.json", doubledJSON)); !strings.Contains(out, "appears twice") {
		t.Errorf("verify answer of a page with an event twice printed:\n%s", out)
	}
	twice := `{"event": {"eventTime": "2026-01-02T12:00:00Z", "eventSource": "verify-test", "action": "twice", "principal": "users/r", "sourceIpAddress": "192.0.2.9"}, "eventId": "4b7c9d1e-2f3a-4b5c-8d6e-7f8091a2b3c4"}`
	receipts := post(m.InternalURL, m.Config.ProducerToken, "/v1/events:batchCreate", `{"includeReceipts": true, "requests": [`+twice+`,`+twice+`]}`)
	if out := verify(0, "answer", "--key", keyFile, write("receipts.json", receipts)); strings.Count(out, "events/4b7c9d1e-2f3a-4b5c-8d6e-7f8091a2b3c4 leaf") != 2 {
		t.Errorf("verify answer of receipts with an event twice printed:\n%s", out)
	}
	receipt := post(m.InternalURL, m.Config.ProducerToken, "/v1/events?eventId=7f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b&includeReceipt=true",
		`{"eventTime": "2026-01-02T12:00:00Z", "eventSource": "verify-test", "action": "receipt", "principal": "users/r", "sourceIpAddress": "192.0.2.9", "resource": "res-receipt"}`)
	out = verify(0, "answer", "--key", keyFile, "--strict", write("receipt.json", receipt))
	if !strings.Contains(out, "answer OK: 1 events proven") {
		t.Errorf("verify answer of a receipt printed:\n%s", out)
	}
	verify(1, "answer", "--key", keyFile, write("receipt.json", bytes.Replace(receipt, []byte(`"users/r"`), []byte(`"users/s"`), 1)))

	// Full audit with the server stopped, then tamper with one record.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if out := verify(0, "store", "--data-dir", dir); !strings.Contains(out, "store OK") || !strings.Contains(out, "; 0 events disagree") || !strings.Contains(out, "read every key of the store: ") {
		t.Errorf("verify store printed %q", out)
	}
	// A posting lost from an index (on a copy): the event is in the log,
	// but a search by its principal would miss it.
	lost := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(lost, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := pebblestore.DeletePosting(filepath.Join(lost, storeDir), audittrail.FieldPrincipal, target.Principal, target.Seq); err != nil {
		t.Fatal(err)
	}
	out = verify(1, "store", "--data-dir", lost)
	if want := fmt.Sprintf("INDEX MISSING: postings of principal: event seq %d (id %s)", target.Seq, target.ID); !strings.Contains(out, want) || strings.Contains(out, "store OK") {
		t.Errorf("verify store after deleting a posting printed:\n%s\nwant %q", out, want)
	}
	tamperPebble(t, filepath.Join(dir, storeDir), []byte("res-unique-0017"), []byte("res-unique-9999"))
	out = verify(1, "store", "--data-dir", dir)
	if want := fmt.Sprintf("first divergent leaf: %d (seq %d, event %s)", target.Seq-1, target.Seq, target.ID); !strings.Contains(out, want) {
		t.Errorf("verify store after tampering printed:\n%s\nwant %q", out, want)
	}
}

// TestVerifyStoreLeavesFormat: verify store leaves a data directory of an
// older release in its storage format. It moved it to this build's format,
// so that an operator who audited a directory with the new release before
// upgrading could no longer start the release that wrote it ("storage
// format 08 is not supported").
func TestVerifyStoreLeavesFormat(t *testing.T) {
	dir := t.TempDir()
	m := startDevMain(t, dir)
	runOK(t, "create", "--addr", m.InternalURL, "--token", m.Config.ProducerToken, "--sample", "50", "--seed", "1")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, storeDir)
	const older = 7 // a format this build reads and moves to its own at Open
	if err := pebblestore.RawSetFormat(db, older); err != nil {
		t.Fatal(err)
	}
	if out := runOK(t, "verify", "store", "--data-dir", dir); !strings.Contains(out, "audited 50 events") || !strings.Contains(out, "store OK") {
		t.Errorf("verify store printed %q", out)
	}
	if got, err := pebblestore.RawFormat(db); err != nil || got != older {
		t.Errorf("after verify store the storage format is %d (%v), want %d as before", got, err, older)
	}
}

// tamperPebble replaces old by new (same length) in every value of the
// Pebble database at dir.
func tamperPebble(t *testing.T, dir string, old, new []byte) {
	t.Helper()
	n, err := pebblestore.ReplaceInValues(dir, old, new)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("%q is not stored", old)
	}
}

var _ = context.Background
