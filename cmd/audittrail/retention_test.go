package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/pgtest"
	"github.com/audittrail/audittrail/logsign"
	"github.com/audittrail/audittrail/pebblestore"
)

// TestRetentionEndToEnd: a server holding old and recent events is
// restarted with --retention; its first pass deletes the old ones at once
// and records a self-audit event saying so. Searches no longer show them
// (even when asked for their time), an old event is refused with the
// reason, a mirror crosses the deleted leaves only with --allow-deleted,
// and with the server stopped, verify store names the deleted seqs (and
// fails without --allow-deleted).
func TestRetentionEndToEnd(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testRetention(t, "") })
	t.Run("postgres", func(t *testing.T) { testRetention(t, pgtest.Start(t)) })
}

// testRetention runs the test on the embedded store (url "") or on the
// PostgreSQL database url, where the old events land in the default
// partition (no partition for their month), deleted row by row; dropping
// months is TestExpireDropsMonths' (package postgres).
func testRetention(t *testing.T, url string) {
	ctx := t.Context()
	dir := t.TempDir()
	start := func(args ...string) *Main {
		t.Helper()
		m, _ := newTestMain(nil)
		args = append([]string{"--dev", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
			"--reader-token", "reader", "--producer-token", "producer", "--store", url}, args...)
		if err := m.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(ctx); err != nil {
			m.Close()
			t.Fatal(err)
		}
		return m
	}
	old := time.Now().UTC().Add(-400 * 24 * time.Hour).Truncate(time.Second)
	recent := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	create := func(m *Main, at time.Time, from, n int) (string, error) {
		t.Helper()
		var items []string
		for i := from; i < from+n; i++ {
			items = append(items, fmt.Sprintf(`{"eventTime":%q,"eventSource":"retention-test","action":"actions/test/things/CREATE","principal":"users/alice","sourceIpAddress":"203.0.113.7","userAgent":"ua","resource":"res-%04d"}`,
				at.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i))
		}
		in := filepath.Join(t.TempDir(), "events.json")
		if err := os.WriteFile(in, []byte("["+strings.Join(items, ",")+"]"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errs, err := runCommand(t, "create", "--addr", m.InternalURL, "--token", "producer", in)
		return out + errs, err
	}
	waitLog := func(m *Main) {
		t.Helper()
		want := m.store.(audittrail.LogStore).LastSeq()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, c := m.Log.Checkpoint(); c != nil && c.Size >= want {
				return
			}
		}
		t.Fatalf("no checkpoint of size %d within 10s", want)
	}
	search := func(m *Main, args ...string) []*audittrail.Event {
		t.Helper()
		out, errs, err := runCommand(t, "search", append([]string{"--addr", m.PublicURL, "--token", "reader", "--all", "-o", "jsonl"}, args...)...)
		if err != nil {
			t.Fatalf("search %q: %v\n%s", args, err, errs)
		}
		return parseJSONL(t, out)
	}

	m := start()
	for _, c := range []struct {
		at      time.Time
		from, n int
	}{{old, 0, 30}, {recent, 30, 10}} {
		if out, err := create(m, c.at, c.from, c.n); err != nil {
			t.Fatalf("create: %v\n%s", err, out)
		}
	}
	waitLog(m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// The first pass runs at start: 30 deleted, and it says so.
	m = start("--retention", "90d")
	defer func() { m.Close() }()
	// The cutoff is in force once Run returns, the server serving: the
	// first pass, which deletes, may still be running.
	if c := m.store.(interface{ Cutoff() time.Time }).Cutoff(); c.Before(time.Now().Add(-90*24*time.Hour - time.Minute)) {
		t.Fatalf("the server serves with the retention cutoff at %v, before now minus the period", c)
	}
	var audit []*audittrail.Event
	for deadline := time.Now().Add(10 * time.Second); len(audit) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		audit = search(m, "--action", audittrail.ActionExpireEvents, "--since", "1h")
	}
	if len(audit) != 1 {
		t.Fatalf("%d retention self-audit events, want 1", len(audit))
	}
	a := audit[0]
	if a.Principal != audittrail.RetentionPrincipal || a.Metadata["deleted"] != "30" || a.Metadata["kept"] != "0" ||
		a.RequestParameters["retention"] != (90*24*time.Hour).String() || a.Status == nil || a.Status.Code != 0 {
		t.Fatalf("retention self-audit event: %+v", a)
	}
	// The old events' resources were theirs alone: the embedded store
	// erases them from its dictionaries (PostgreSQL keeps no values apart
	// from the rows it deletes).
	erased := "30"
	if url != "" {
		erased = "0"
	}
	if got := cmp.Or(a.Metadata["erased_values"], "0"); got != erased {
		t.Fatalf("retention self-audit event: erased_values %q, want %s", got, erased)
	}
	cutoff, err := time.Parse(time.RFC3339Nano, a.RequestParameters["cutoff"])
	if err != nil || time.Since(cutoff) < 90*24*time.Hour || time.Since(cutoff) > 90*24*time.Hour+time.Minute {
		t.Fatalf("cutoff %q: %v", a.RequestParameters["cutoff"], err)
	}
	res, err := http.Get(m.InternalURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"audittrail_retention_deleted_events_total 30\n", "audittrail_retention_failures_total 0\n",
		"audittrail_retention_erased_values_total " + erased + "\n",
		fmt.Sprintf("audittrail_retention_cutoff_timestamp_seconds %s", strconv.FormatFloat(float64(cutoff.Unix()), 'g', 6, 64)[:5])} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	got := search(m, "--event-source", "retention-test", "--start", old.Add(-time.Hour).Format(time.RFC3339))
	if len(got) != 10 {
		t.Fatalf("search after the pass: %d events, want the 10 recent ones", len(got))
	}
	for _, e := range got {
		if e.EventTime.Before(recent) {
			t.Fatalf("an old event is shown: %+v", e)
		}
	}
	if got := search(m, "--resource", "res-0003", "--start", old.Add(-time.Hour).Format(time.RFC3339)); len(got) != 0 {
		t.Fatalf("an old event found by its resource: %+v", got[0])
	}

	// An old event is refused with the reason; a recent one is stored.
	out, err := create(m, old, 100, 1)
	if err == nil || !strings.Contains(out, "before the retention cutoff") {
		t.Fatalf("create of an old event: %v\n%s", err, out)
	}
	if out, err := create(m, recent, 101, 1); err != nil {
		t.Fatalf("create of a recent event: %v\n%s", err, out)
	}
	waitLog(m)

	// A mirror: refused across the deleted leaves, made with
	// --allow-deleted, verified offline.
	keyFile := filepath.Join(dir, logsign.VerificationKeyFile)
	mirrorDir := filepath.Join(t.TempDir(), "mirror")
	mirror := func(args ...string) (string, error) {
		out, errs, err := runCommand(t, "mirror", append([]string{"--addr", m.PublicURL, "--token", "reader", "--dir", mirrorDir, "--log-key", keyFile}, args...)...)
		return out + errs, err
	}
	if out, err := mirror(); err == nil || !strings.Contains(err.Error(), "--allow-deleted") {
		t.Fatalf("mirror across deleted events: %v\n%s", err, out)
	}
	if out, err := mirror("--allow-deleted"); err != nil || !strings.Contains(out, "(30 of them deleted by the server: leaf hashes only)") {
		t.Fatalf("mirror --allow-deleted: %v\n%s", err, out)
	}
	verify := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errs bytes.Buffer
		if code := run(ctx, append([]string{"verify"}, args...), &out, &errs); code != wantCode {
			t.Fatalf("verify %q: exit %d, want %d\n%s%s", args, code, wantCode, out.String(), errs.String())
		}
		return out.String() + errs.String()
	}
	if out := verify(0, "mirror", "--key", keyFile, mirrorDir); !strings.Contains(out, "30 of them are leaf hashes only") {
		t.Fatalf("verify mirror printed:\n%s", out)
	}

	// The offline audit of the store.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	where := []string{"--data-dir", dir}
	if url != "" {
		where = []string{"--store", url, "--key", keyFile}
	}
	if out := verify(1, append([]string{"store"}, where...)...); !strings.Contains(out, "MISSING: leaf 0 (seq 1)") {
		t.Fatalf("verify store without --allow-deleted printed:\n%s", out)
	}
	out = verify(0, append([]string{"store", "--allow-deleted"}, where...)...)
	if !strings.Contains(out, "deleted: 30 events are gone (seqs 1-30)") || !strings.Contains(out, "store OK") {
		t.Fatalf("verify store --allow-deleted printed:\n%s", out)
	}
	if url != "" {
		return
	}
	// The cutoff outlives the server.
	st, err := pebblestore.Open(ctx, pebblestore.Config{Dir: filepath.Join(dir, storeDir)})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Cutoff().Equal(cutoff) {
		t.Errorf("stored cutoff %v, want %v", st.Cutoff(), cutoff)
	}
	st.Close()
}

// TestRetentionFlag: --retention takes days or a duration, refuses a
// period shorter than an hour and anything else with the reason.
func TestRetentionFlag(t *testing.T) {
	for _, c := range []struct {
		arg  string
		want time.Duration
		err  string
	}{
		{"90d", 90 * 24 * time.Hour, ""},
		{"2160h", 2160 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"0", 0, ""},
		{"30m", 0, "shorter than the minimum 1h0m0s"},
		{"ninety", 0, "is not a duration"},
		{"-5d", 0, "must be positive"},
		{"90098700d", 0, "too long: at most 106751d"}, // wrapped to 466h before FuzzParseAgo
	} {
		m, _ := newTestMain(nil)
		err := m.ParseFlags([]string{"--dev", "--retention", c.arg})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("--retention %s: %v, want %q", c.arg, err, c.err)
			}
			continue
		}
		if err != nil || m.Config.Retention != c.want {
			t.Errorf("--retention %s: %v, %v; want %v", c.arg, m.Config.Retention, err, c.want)
		}
	}
	m, _ := newTestMain(map[string]string{"AUDITTRAIL_RETENTION": "7d"})
	if err := m.ParseFlags([]string{"--dev"}); err != nil || m.Config.Retention != 7*24*time.Hour {
		t.Errorf("AUDITTRAIL_RETENTION=7d: %v, %v", m.Config.Retention, err)
	}
}
