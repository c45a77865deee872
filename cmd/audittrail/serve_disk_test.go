package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/audittrail/audittrail/internal/testserver"
)

// TestServeDiskReserve runs the binary with a disk reserve larger than any
// file system's free space, so that the embedded store behaves as on a full
// disk: a producer's create is refused with RESOURCE_EXHAUSTED (429) and a
// message that says why and what to do, and so is a search, whose audit
// record cannot be written (fail closed). The server stays up.
func TestServeDiskReserve(t *testing.T) {
	srv := testserver.Start(t, "--min-free-disk-mib", "1073741824") // 1 PiB
	event := map[string]any{
		"eventTime": "2026-03-01T12:00:00Z", "eventSource": "svc", "action": "actions/x/y/CREATE",
		"principal": "users/disk", "sourceIpAddress": "1.2.3.4", "status": map[string]any{"code": 0},
	}
	code, st := postStatus(t, srv.InternalURL+"/v1/events?eventId="+uuid.NewString(), srv.ProducerToken, event)
	if code != http.StatusTooManyRequests || st.Code != 8 ||
		!strings.Contains(st.Message, "MiB free, less than the 1073741824 MiB kept in reserve: events are refused until space is freed") {
		t.Errorf("create on a full disk: HTTP %d, status %+v; want 429, RESOURCE_EXHAUSTED (8) naming the reserve", code, st)
	}
	// The reader is told the search could not be audited; the reason is
	// the operators' (the log names it), not the reader's.
	code, st = postStatus(t, srv.PublicURL+"/v1/events:search", srv.ReaderToken, map[string]any{"pageSize": 5})
	if code != http.StatusServiceUnavailable || st.Code != 14 || !strings.Contains(st.Message, "could not be audited") {
		t.Errorf("search on a full disk: HTTP %d, status %+v; want 503, UNAVAILABLE (14): not audited", code, st)
	}
	if !strings.Contains(srv.Logs(), "file system is nearly full: appends are refused until space is freed") {
		t.Errorf("the log does not say the disk is nearly full:\n%s", srv.Logs())
	}
	// Monitoring sees it coming: the free space and the reserve are gauges.
	res, err := http.Get(srv.InternalURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	free := regexp.MustCompile(`(?m)^audittrail_store_disk_free_bytes (\S+)$`).FindSubmatch(metrics)
	if free == nil || string(free[1]) == "NaN" || string(free[1]) == "0" ||
		!regexp.MustCompile(`(?m)^audittrail_store_disk_reserve_bytes 1\.125899906842624e\+15$`).Match(metrics) {
		t.Errorf("the disk gauges are missing or wrong:\n%s", regexp.MustCompile(`(?m)^audittrail_store_disk.*$`).FindAll(metrics, -1))
	}
	if srv.Exited() {
		t.Fatal("the server exited")
	}
}

// TestServeBadDiskReserve: a reserve below -1 is a usage error.
func TestServeBadDiskReserve(t *testing.T) {
	m, _ := newTestMain(nil)
	if err := m.ParseFlags([]string{"--dev", "--data-dir", t.TempDir(), "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
		"--min-free-disk-mib", "-2"}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "--min-free-disk-mib -2: give a size in MiB") {
		t.Errorf("Run with --min-free-disk-mib -2 = %v", err)
	}
}

// TestServeBadCacheSize: a cache size whose bytes do not fit in an int64
// is a usage error, as one below 0 is; it overflowed to 0 or below, which
// the store reads as "the default", so 16 EiB (2^44 MiB) gave 256 MiB
// without a word.
func TestServeBadCacheSize(t *testing.T) {
	for _, mib := range []string{"-1", "17592186044416", "99999999999999"} {
		m, _ := newTestMain(nil)
		if err := m.ParseFlags([]string{"--dev", "--data-dir", t.TempDir(), "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
			"--cache-mib", mib}); err != nil {
			t.Fatal(err)
		}
		err := m.Run(context.Background())
		m.Close()
		if err == nil || !strings.Contains(err.Error(), "--cache-mib "+mib+": give a size in MiB") {
			t.Errorf("Run with --cache-mib %s = %v", mib, err)
		}
	}
}

// postStatus posts body and decodes the google.rpc.Status of an error answer.
func postStatus(t *testing.T, url, token string, body any) (int, struct {
	Code    int
	Message string
}) {
	t.Helper()
	var st struct {
		Code    int
		Message string
	}
	code, answer := post(t, url, token, body)
	if code != http.StatusOK {
		if err := json.Unmarshal(answer, &st); err != nil {
			t.Fatalf("POST %s: %d, not a google.rpc.Status: %s", url, code, answer)
		}
	}
	return code, st
}
