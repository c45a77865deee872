package audittrail

// Fuzz targets. Run one with
//
//	go test -run='^$' -fuzz='^FuzzPageToken$' -fuzztime=30s .
//
// Their seed corpora are in the f.Add calls (and in testdata/fuzz/ for inputs
// the fuzzer found).

import (
	"bytes"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// FuzzFilterCompile: compiling any filter never panics; failures are EInvalid
// with a message naming a filter field; compiled queries are well formed and
// can be matched.
func FuzzFilterCompile(f *testing.F) {
	f.Add(uint8(0), "", "", "", "", "", uint8(0), int8(0), int8(0), int64(0), int64(0))
	f.Add(uint8(5), ".*CREATE$", "actions/x", "^(0|3)$", "env", "^prod$", uint8(1), int8(1), int8(2), int64(1751328000e9), int64(1756684800e9))
	f.Add(uint8(1), "(", "", "^$", "", "", uint8(2), int8(0), int8(0), int64(0), int64(0))
	f.Add(uint8(2), "a{1001}", "", "[", "k", "*", uint8(0), int8(3), int8(-1), int64(-1), int64(1))
	f.Add(uint8(3), `\p{Greek}+|(?i)x`, "", `\d+`, "a\xff", "(?P<n>x)", uint8(0), int8(0), int8(0), int64(1e18), int64(9e18))
	f.Add(uint8(4), strings.Repeat("a", MaxRegexLen+1), "", "", "", "", uint8(0), int8(0), int8(0), int64(0), int64(0))
	f.Add(uint8(6), `(?s).`, "\x00", "x*", "k", "", uint8(1), int8(2), int8(2), int64(5), int64(5))
	f.Add(uint8(0), "\xff", "", "", "", "", uint8(0), int8(0), int8(0), int64(0), int64(0))
	end := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, field uint8, expr, exact, status, mdKey, mdExpr string, ro uint8, inc, exc int8, start, stop int64) {
		var fl Filter
		i := Field(field % uint8(NumFields))
		fl.Regex[i] = expr
		fl.Exact[(i+1)%NumFields] = exact
		fl.StatusCodeRegex = status
		if mdKey != "" {
			fl.MetadataRegex = map[string]string{mdKey: mdExpr}
			fl.MetadataExact = map[string]string{mdKey: exact}
		}
		switch ro % 3 {
		case 1:
			fl.ReadOnly = new(bool)
		case 2:
			yes := true
			fl.ReadOnly = &yes
		}
		if inc != 0 {
			fl.IncludeTypes = []EventType{EventType(inc % 4)}
		}
		if exc != 0 {
			fl.ExcludeTypes = []EventType{EventType(exc % 4)}
		}
		if start != 0 {
			s := time.Unix(0, start)
			fl.StartTime = &s
		}
		if stop != 0 {
			s := time.Unix(0, stop)
			fl.EndTime = &s
		}
		_ = fl.Fingerprint()
		q, err := fl.Compile(end)
		if err != nil {
			if q != nil {
				t.Fatalf("a query with the error %v", err)
			}
			if ErrorCode(err) != EInvalid {
				t.Fatalf("error %v: code %q, want %q", err, ErrorCode(err), EInvalid)
			}
			msg := ErrorMessage(err)
			if !strings.HasPrefix(msg, "filter.") {
				t.Fatalf("message %q does not name a filter field", msg)
			}
			allValid := true
			for _, s := range []string{expr, exact, status, mdKey, mdExpr} {
				allValid = allValid && utf8.ValidString(s)
			}
			if allValid && !utf8.ValidString(msg) {
				t.Fatalf("message %q is not valid UTF-8 though every input is", msg)
			}
			return
		}
		if !q.Start.Before(q.End) || q.Start.Before(MinEventTime) || q.End.After(MaxEventTime) {
			t.Fatalf("query range [%v, %v)", q.Start, q.End)
		}
		if (q.Regex[i] != nil) != (expr != "") || (q.Status != nil) != (status != "") {
			t.Fatalf("regexes compiled %v/%v for %q/%q", q.Regex[i], q.Status, expr, status)
		}
		if q.Types&^7 != 0 {
			t.Fatalf("types %b", q.Types)
		}
		if len(expr) > MaxRegexLen || len(status) > MaxRegexLen || len(mdExpr) > MaxRegexLen {
			t.Fatal("a regular expression over the length limit compiled")
		}
		e := &Event{EventTime: q.Start, EventSource: exact, Resource: expr, Principal: status, Action: mdExpr,
			Metadata: map[string]string{mdKey: exact}, Status: &Status{Code: int32(inc)}, Type: EventType(uint8(exc) % 3)}
		_ = q.Match(e)
		e.Status, e.Metadata = nil, nil
		_ = q.Match(e)
	})
}

// FuzzPageToken: opening any string never panics and yields a cursor only
// for a token sealed with the key, in exactly the form sealing produced;
// sealed tokens round-trip and are refused under another key.
func FuzzPageToken(f *testing.F) {
	key := bytes.Repeat([]byte{7}, PageTokenKeySize)
	otherKey := bytes.Repeat([]byte{8}, PageTokenKeySize)
	for _, tok := range sampleTokens() {
		f.Add(sealPageToken(key, tok), tok.Cursor.Time, tok.Cursor.Seq, tok.End, "users/alice")
		f.Add(sealPageToken(otherKey, tok), tok.Cursor.Time, tok.Cursor.Seq, tok.End, "")
	}
	f.Add("", int64(0), uint64(0), int64(0), "")
	f.Add("garbage", int64(-1), uint64(1), int64(1), "services/x")
	f.Add(strings.Repeat("A", 87), int64(1), uint64(1<<63), int64(-1), "\xff")
	f.Fuzz(func(t *testing.T, s string, tm int64, seq uint64, end int64, principal string) {
		got, err := openPageToken(key, s)
		if err == nil {
			if again := sealPageToken(key, got); again != s {
				t.Fatalf("opened %q to %+v, but the key seals that as %q: the token was not issued in this form", s, got, again)
			}
		} else {
			if ErrorCode(err) != EInvalid {
				t.Fatalf("open(%q): %v, want EInvalid", s, err)
			}
			if got != (pageToken{}) {
				t.Fatalf("open(%q): a cursor %+v with the error", s, got)
			}
		}
		tok := pageToken{Cursor: Cursor{Time: tm, Seq: seq}, End: end, Principal: principalDigest(principal)}
		copy(tok.Filter[:], s)
		sealed := sealPageToken(key, tok)
		back, err := openPageToken(key, sealed)
		if err != nil || back != tok {
			t.Fatalf("round trip of %+v: %+v, %v", tok, back, err)
		}
		if _, err := openPageToken(otherKey, sealed); err == nil {
			t.Fatalf("a token sealed with one key opened with another")
		}
	})
}

// FuzzPrepareNewEvent: preparing any event never panics; refusals are
// EInvalid; accepted events satisfy every limit (checked here independently
// of the validation code) and prepare again to the same content.
func FuzzPrepareNewEvent(f *testing.F) {
	f.Add("b096430b-c7a8-47f2-a129-d9ae58cf454f", "h2oai-enginemanager-server", "actions/enginemanager/daiEngines/CREATE",
		"users/alice", "1.1.1.1", "curl/8", "//engine-manager/workspaces/w1/daiEngines/e1", "", false,
		"env", "prod", "q", "1", uint8(1), true, int32(0), "", int32(1), int64(1754006400), int64(123456789), false)
	f.Add("B096430B-C7A8-47F2-A129-D9AE58CF454F", "s", "a", "p", "10.0.0.1", "", "workspaces/w2", "workspaces/w9", true,
		"a_1", "", "", "", uint8(3), false, int32(-1), "msg", int32(2), int64(0), int64(0), true)
	f.Add("invalid", "", "", "", "", "", "", "", false, "", "", "", "", uint8(0), false, int32(0), "", int32(0), int64(-1), int64(0), false)
	f.Add("00000000-0000-4000-8000-000000000000", "\xff", "a", "p", "private", "", "", "w", true,
		"Bad", "x", "\xff", "", uint8(65), true, int32(3), "\xff", int32(3), int64(9223372036), int64(999999999), true)
	f.Add("00000000-0000-4000-8000-000000000000", "s", "a", "p", "fe80::1%eth0", "", "", "workspaces/", true,
		strings.Repeat("k", 63), strings.Repeat("v", MaxMapValueLen), strings.Repeat("r", 256), "", uint8(64), true, int32(0), "", int32(0), int64(1), int64(0), true)
	f.Fuzz(func(t *testing.T, id, src, action, principal, ip, ua, resource, ws string, hasWS bool,
		mdKey, mdVal, rpKey, rpVal string, n uint8, hasStatus bool, code int32, msg string, typ int32, sec, nsec int64, redact bool) {
		in := NewEvent{Event: Event{
			EventTime: time.Unix(sec, nsec), EventSource: src, Action: action, Principal: principal, SourceIP: ip,
			UserAgent: ua, Resource: resource, Type: EventType(typ), ReadOnly: n%2 == 0,
		}}
		if hasWS {
			in.WorkspaceOverride = &ws
		}
		if hasStatus {
			in.Event.Status = &Status{Code: code, Message: msg}
		}
		count := int(n) % 70
		if count > 0 {
			in.Event.Metadata = map[string]string{mdKey: mdVal}
			in.Event.RequestParameters = map[string]string{rpKey: rpVal}
			for i := 1; i < count; i++ {
				in.Event.Metadata[mdKey+strconv.Itoa(i)] = mdVal
				in.Event.RequestParameters[rpKey+strconv.Itoa(i)] = rpVal
			}
		}
		received := time.Unix(1756684800, 5)
		e, err := PrepareNewEvent(id, in, received, redact)
		if err != nil {
			if e != nil || ErrorCode(err) != EInvalid {
				t.Fatalf("refusal %v (code %q) with event %v; want EInvalid and no event", err, ErrorCode(err), e)
			}
			return
		}
		checkPreparedEvent(t, id, in, received, redact, e)
		// Preparing the stored event again (as a retry does) gives the same
		// content.
		again, err := PrepareNewEvent(e.ID, NewEvent{Event: *e, WorkspaceOverride: &e.Workspace}, received.Add(time.Hour), redact)
		if err != nil {
			t.Fatalf("a prepared event does not prepare again: %v", err)
		}
		if !again.SameContent(e) {
			t.Fatalf("preparing again changed the content:\n%+v\n%+v", e, again)
		}
	})
}

// checkPreparedEvent checks the limits of docs/limits.md on an accepted event.
func checkPreparedEvent(t *testing.T, id string, in NewEvent, received time.Time, redact bool, e *Event) {
	t.Helper()
	if e.ID != strings.ToLower(id) || len(e.ID) != 36 || e.ID[14] != '4' {
		t.Fatalf("id %q from %q", e.ID, id)
	}
	if !e.ReceiveTime.Equal(received) || e.Seq != 0 || e.LoginPrincipal != "" {
		t.Fatalf("server fields %v %d %q", e.ReceiveTime, e.Seq, e.LoginPrincipal)
	}
	if !e.EventTime.Equal(in.Event.EventTime) || e.EventTime.Location() != time.UTC {
		t.Fatalf("event_time %v from %v", e.EventTime, in.Event.EventTime)
	}
	if e.EventTime.Before(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)) || !e.EventTime.Before(time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("event_time %v out of range", e.EventTime)
	}
	for name, v := range map[string]string{"event_source": e.EventSource, "action": e.Action, "principal": e.Principal, "source_ip_address": e.SourceIP} {
		if v == "" {
			t.Fatalf("%s is empty", name)
		}
	}
	total := 0
	for _, s := range []struct {
		v   string
		max int
	}{{e.EventSource, 1024}, {e.Action, 1024}, {e.Principal, 1024}, {in.Event.SourceIP, 1024}, {e.UserAgent, 1024}, {e.Resource, 2048}, {e.Workspace, 2048}} {
		if len(s.v) > s.max || !utf8.ValidString(s.v) {
			t.Fatalf("%q: longer than %d or not UTF-8", s.v, s.max)
		}
		total += len(s.v)
	}
	if in.Event.SourceIP != "private" {
		a, err := netip.ParseAddr(in.Event.SourceIP)
		if err != nil {
			t.Fatalf("source_ip_address %q accepted", in.Event.SourceIP)
		}
		a = a.Unmap()
		priv := a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified()
		want := in.Event.SourceIP
		if redact && priv {
			want = "private"
		}
		if e.SourceIP != want {
			t.Fatalf("source_ip_address %q stored as %q (redact %v)", in.Event.SourceIP, e.SourceIP, redact)
		}
	}
	wantWS := DeriveWorkspace(e.Resource)
	if in.WorkspaceOverride != nil {
		wantWS = *in.WorkspaceOverride
	}
	if e.Workspace != wantWS || (e.Workspace != "" && !strings.HasPrefix(e.Workspace, "workspaces/")) {
		t.Fatalf("workspace %q, want %q", e.Workspace, wantWS)
	}
	if e.Type < 0 || e.Type > 2 {
		t.Fatalf("type %d", e.Type)
	}
	if e.Status != nil {
		if len(e.Status.Message) > 4096 || !utf8.ValidString(e.Status.Message) {
			t.Fatal("status message over the limit or not UTF-8")
		}
		total += len(e.Status.Message)
	}
	if len(e.Metadata) > 64 || len(e.RequestParameters) > 64 {
		t.Fatalf("%d metadata entries, %d request parameters", len(e.Metadata), len(e.RequestParameters))
	}
	for k, v := range e.Metadata {
		if !validMetadataKey(k) || len(v) > 4096 || !utf8.ValidString(v) {
			t.Fatalf("metadata %q: %q accepted", k, v)
		}
		total += len(k) + len(v)
	}
	for k, v := range e.RequestParameters {
		if k == "" || len(k) > 256 || !utf8.ValidString(k) || len(v) > 4096 || !utf8.ValidString(v) {
			t.Fatalf("request parameter %q: %q accepted", k, v)
		}
		total += len(k) + len(v)
	}
	if total > 64<<10 {
		t.Fatalf("event of %d bytes accepted", total)
	}
}

// validMetadataKey is the key rule of spec §2.1, without regular expressions:
// 1-63 characters of a-z, 0-9 and _, starting with a letter and ending with a
// letter or digit.
func validMetadataKey(k string) bool {
	if len(k) < 1 || len(k) > 63 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		lower, digit := c >= 'a' && c <= 'z', c >= '0' && c <= '9'
		switch {
		case i == 0 && !lower:
			return false
		case i == len(k)-1 && !lower && !digit:
			return false
		case !lower && !digit && c != '_':
			return false
		}
	}
	return true
}

// FuzzValidationRules: the written-out checks of event.go decide as the
// regexps and the uuid package they replaced, and DeriveWorkspace as its
// earlier form over strings.Split.
func FuzzValidationRules(f *testing.F) {
	workspaceRE := regexp.MustCompile(`^workspaces/[^/]+$`)
	metadataKeyRE := regexp.MustCompile(`^[a-z]([a-z0-9_]{0,61}[a-z0-9])?$`)
	validUUIDv4 := func(id string) bool {
		u, err := uuid.Parse(id)
		return err == nil && u.Version() == 4 && u.Variant() == uuid.RFC4122 && len(id) == 36 && u.String() == strings.ToLower(id)
	}
	deriveBySplit := func(resource string) string {
		segs := strings.Split(resource, "/")
		for i := 0; i+1 < len(segs); i++ {
			if segs[i] == "workspaces" && segs[i+1] != "" {
				if strings.HasPrefix(resource, "//") && i == 2 {
					continue
				}
				return "workspaces/" + segs[i+1]
			}
		}
		return ""
	}
	for _, s := range []string{
		"workspaces/w1", "workspaces/", "workspaces/a/b", "workspaces/\n", "workspaces/\xff", "xworkspaces/w",
		"a", "a_", "a_b", "a1", "1a", "A", strings.Repeat("k", 63), strings.Repeat("k", 64), "tenant", "request_id",
		"b096430b-c7a8-47f2-a129-d9ae58cf454f", "B096430B-C7A8-47F2-A129-D9AE58CF454F", "b096430b-c7a8-37f2-a129-d9ae58cf454f",
		"b096430b-c7a8-47f2-c129-d9ae58cf454f", "{b096430b-c7a8-47f2-a129-d9ae58cf454f}", "b096430bc7a847f2a129d9ae58cf454f",
		"urn:uuid:b096430b-c7a8-47f2-a129-d9ae58cf454f", "b096430b-c7a8-47f2-a129-d9ae58cf454g",
		"//engine-manager/workspaces/w1/daiEngines/e1", "//workspaces/workspaces/w2", "workspaces/w1/x", "/workspaces/w3",
		"//svc/workspaces/", "//svc/workspaces//x", "workspaces", "//svc/a/workspaces/w4/workspaces/w5", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isWorkspaceName(s), workspaceRE.MatchString(s); got != want {
			t.Errorf("isWorkspaceName(%q) = %v, the regexp says %v", s, got, want)
		}
		if got, want := isMetadataKey(s), metadataKeyRE.MatchString(s); got != want {
			t.Errorf("isMetadataKey(%q) = %v, the regexp says %v", s, got, want)
		}
		if got, want := isUUIDv4(s), validUUIDv4(s); got != want {
			t.Errorf("isUUIDv4(%q) = %v, uuid.Parse says %v", s, got, want)
		}
		if got, want := DeriveWorkspace(s), deriveBySplit(s); got != want {
			t.Errorf("DeriveWorkspace(%q) = %q, by strings.Split %q", s, got, want)
		}
	})
}
