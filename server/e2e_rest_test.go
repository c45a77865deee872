package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/testserver"
	"github.com/audittrail/audittrail/server"
)

func TestE2EVersionHealthMetrics(t *testing.T) {
	srv := testserver.Start(t)
	for _, base := range []string{srv.PublicURL, srv.InternalURL} {
		// The Python client's login probe: no Authorization header.
		r := call(t, "GET", base+"/version", "", "")
		if r.status != http.StatusOK {
			t.Fatalf("GET /version: %s", r)
		}
		if v, _ := r.json(t)["version"].(string); v == "" {
			t.Errorf("GET /version: no version in %s", r.body)
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if r := call(t, "GET", base+path, "", ""); r.status != http.StatusOK {
				t.Errorf("GET %s%s: %s", base, path, r)
			}
		}
	}
	// Produce some traffic to count.
	call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken, `{}`)
	r := call(t, "GET", srv.InternalURL+"/metrics", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %s", r)
	}
	for _, want := range []string{
		`audittrail_requests_total{code="200",listener="public",method="POST /v1/events:search",protocol="http"} 1`,
		`audittrail_request_duration_seconds_count{code="200",listener="public",method="POST /v1/events:search",protocol="http"} 1`,
		// The search's self-audit event is the only event stored.
		"audittrail_events_stored 1",
		"audittrail_store_append_duration_seconds_count 1",
		`audittrail_self_audit_events_total{action="actions/audittrail/events/SEARCH"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Metrics are for operators, on the internal listener only.
	wantStatus(t, call(t, "GET", srv.PublicURL+"/metrics", "", ""), http.StatusNotFound, 5, "Not Found")
}

// TestE2EPrefetchMetrics drains a result in pages of 500 over REST from the
// server binary (which reads ahead from pages of 500) and reads the counts
// of the pages read ahead on /metrics: the two full pages with a next page
// each started a read ahead, and the two requests that followed took them.
func TestE2EPrefetchMetrics(t *testing.T) {
	srv := testserver.Start(t)
	for b := range 2 {
		var reqs []string
		for i := range 600 {
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(b*600+i) * time.Second).Format(time.RFC3339)
			reqs = append(reqs, fmt.Sprintf(`{"eventId": %q, "event": %s}`, newID(), eventBody(at, "drained")))
		}
		if r := call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, `{"requests": [`+strings.Join(reqs, ",")+`]}`); r.status != http.StatusOK {
			t.Fatalf("batch: %s", r)
		}
	}
	var pages []int
	for token := ""; ; {
		r := searchREST(t, srv, srv.PublicURL, fmt.Sprintf(`{"filter": {"resourceExact": "drained"}, "pageSize": 500, "pageToken": %q}`, token))
		pages = append(pages, len(names(t, r)))
		token, _ = r["nextPageToken"].(string)
		if token == "" {
			break
		}
	}
	if !slices.Equal(pages, []int{500, 500, 200}) {
		t.Fatalf("pages of %v events, want 500, 500, 200", pages)
	}
	m := call(t, "GET", srv.InternalURL+"/metrics", "", "")
	for _, want := range []string{
		`audittrail_search_prefetch_pages_total{outcome="started"} 2`,
		`audittrail_search_prefetch_pages_total{outcome="taken"} 2`,
		`audittrail_search_prefetch_pages_total{outcome="failed"} 0`,
		`audittrail_search_prefetch_pages_total{outcome="mismatched"} 0`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestE2EPublicCreateIs405(t *testing.T) {
	srv := testserver.Start(t)
	id := newID()
	for _, path := range []string{"/v1/events?eventId=" + id, "/v1/events:batchCreate"} {
		for _, token := range []string{"", "wrong", srv.ReaderToken, srv.ProducerToken} {
			body := eventBody("2026-01-01T00:00:00Z", "r")
			if strings.Contains(path, "batch") {
				body = fmt.Sprintf(`{"requests": [{"eventId": %q, "event": %s}]}`, id, body)
			}
			r := call(t, "POST", srv.PublicURL+path, token, body)
			wantStatus(t, r, http.StatusMethodNotAllowed, 12, "Method Not Allowed")
			if v := r.json(t); v["message"] != "Method Not Allowed" {
				t.Errorf("message %q, want exactly Method Not Allowed", v["message"])
			}
			// No method creates on the public listener: an empty Allow.
			if allow, ok := r.header["Allow"]; !ok || len(allow) != 1 || allow[0] != "" {
				t.Errorf("Allow %q, want present and empty", allow)
			}
		}
	}
	// Nothing was created.
	resp := searchREST(t, srv, srv.PublicURL, `{}`)
	if n := names(t, resp); len(n) != 0 {
		t.Errorf("search after refused creates: %v", n)
	}
}

func TestE2EAuthentication(t *testing.T) {
	srv := testserver.Start(t)
	search := `{"filter": {}}`
	for _, base := range []string{srv.PublicURL, srv.InternalURL} {
		for _, token := range []string{"", "wrong", srv.ReaderToken + "x"} {
			r := call(t, "POST", base+"/v1/events:search", token, search)
			wantStatus(t, r, http.StatusUnauthorized, 16, "bearer token")
			if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", h)
			}
		}
		// Another scheme is not a bearer token.
		req, _ := http.NewRequest("POST", base+"/v1/events:search", strings.NewReader(search))
		req.Header.Set("Authorization", "Basic "+srv.ReaderToken)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Basic auth: %d, want 401", resp.StatusCode)
		}
	}
	// Unauthenticated comes before validation.
	wantStatus(t, call(t, "POST", srv.InternalURL+"/v1/events?eventId=bad", "", `{}`), http.StatusUnauthorized, 16, "bearer token")

	// Authenticated, but not allowed.
	r := call(t, "POST", srv.InternalURL+"/v1/events?eventId="+newID(), srv.ReaderToken, eventBody("2026-01-01T00:00:00Z", "r"))
	wantStatus(t, r, http.StatusForbidden, 7, `"users/reader" may not create events`)
	r = call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ReaderToken, `{"requests": []}`)
	wantStatus(t, r, http.StatusForbidden, 7, "may not create events")
	for _, base := range []string{srv.PublicURL, srv.InternalURL} {
		r := call(t, "POST", base+"/v1/events:search", srv.ProducerToken, search)
		wantStatus(t, r, http.StatusForbidden, 7, `"services/producer" may not search events`)
	}
	// Two Authorization headers are refused rather than guessed between.
	req, _ := http.NewRequest("POST", srv.PublicURL+"/v1/events:search", strings.NewReader(search))
	req.Header.Add("Authorization", "Bearer "+srv.ReaderToken)
	req.Header.Add("Authorization", "Bearer "+srv.ReaderToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "2 Authorization headers: send exactly one") {
		t.Errorf("two Authorization headers: %d %s, want 401 saying so", resp.StatusCode, body)
	}
	// A token in the wrong header does not authenticate.
	req, _ = http.NewRequest("POST", srv.PublicURL+"/v1/events:search", strings.NewReader(search))
	req.Header.Set("Grpc-Metadata-Authorization", "Bearer "+srv.ReaderToken)
	resp, err = httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token in Grpc-Metadata-Authorization: %d, want 401", resp.StatusCode)
	}
}

func TestE2ECreateAndSearchREST(t *testing.T) {
	srv := testserver.Start(t)

	t.Run("round trip", func(t *testing.T) {
		id := newID()
		before := time.Now()
		// An offset and microseconds in, UTC with the same instant out.
		ev := createREST(t, srv, id, eventBody("2026-03-04T05:06:07.123456+02:00", "workspaces/w1/daiEngine/e1"))
		checkEventKeys(t, ev)
		want := map[string]any{
			"name":            "events/" + id,
			"eventTime":       "2026-03-04T03:06:07.123456Z",
			"eventSource":     "h2oai-enginemanager-server",
			"action":          "actions/enginemanager/daiEngines/CREATE",
			"readOnly":        false,
			"principal":       "users/jane",
			"loginPrincipal":  "",
			"sourceIpAddress": "1.1.1.1",
			"userAgent":       "e2e",
			"resource":        "workspaces/w1/daiEngine/e1",
			"workspace":       "workspaces/w1",
			"type":            "TYPE_API",
		}
		for k, v := range want {
			if ev[k] != v {
				t.Errorf("%s = %#v, want %#v", k, ev[k], v)
			}
		}
		rt, err := time.Parse(time.RFC3339Nano, ev["receiveTime"].(string))
		if err != nil || rt.Before(before.Add(-time.Second)) || !strings.HasSuffix(ev["receiveTime"].(string), "Z") {
			t.Errorf("receiveTime %v: %v", ev["receiveTime"], err)
		}
		resp := searchREST(t, srv, srv.PublicURL, `{"filter": {"resourceExact": "workspaces/w1/daiEngine/e1"}}`)
		if got := names(t, resp); !slices.Equal(got, []string{"events/" + id}) {
			t.Fatalf("search: %v", got)
		}
		found := resp["events"].([]any)[0].(map[string]any)
		checkEventKeys(t, found)
		for k, v := range want {
			if found[k] != v {
				t.Errorf("searched %s = %#v, want %#v", k, found[k], v)
			}
		}
	})

	t.Run("nanoseconds", func(t *testing.T) {
		ev := createREST(t, srv, newID(), eventBody("2026-03-04T05:06:07.123456789-05:30", "nanos"))
		if got := ev["eventTime"]; got != "2026-03-04T10:36:07.123456789Z" {
			t.Errorf("eventTime %v, want 2026-03-04T10:36:07.123456789Z", got)
		}
	})

	t.Run("every key when empty", func(t *testing.T) {
		// No status, no optional field: the keys are still there, except
		// the status, which is left out rather than null.
		body := `{"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "8.8.8.8"}`
		ev := createREST(t, srv, newID(), body)
		checkEventKeys(t, ev)
		if _, ok := ev["status"]; ok {
			t.Errorf("an event without status has \"status\": %v", ev["status"])
		}
		found := searchREST(t, srv, srv.PublicURL, `{"filter": {"eventSourceExact": "s", "statusCodeRegex": "^$"}}`)
		if evs := found["events"].([]any); len(evs) != 1 {
			t.Errorf("search for the event without status: %v", found)
		} else {
			checkEventKeys(t, evs[0])
			if _, ok := evs[0].(map[string]any)["status"]; ok {
				t.Errorf("a searched event without status has a status")
			}
		}
		for k, v := range map[string]string{"userAgent": "", "resource": "", "workspace": "", "type": "TYPE_UNSPECIFIED"} {
			if ev[k] != v {
				t.Errorf("%s = %#v, want %q", k, ev[k], v)
			}
		}
		for _, k := range []string{"metadata", "requestParameters"} {
			if m, ok := ev[k].(map[string]any); !ok || len(m) != 0 {
				t.Errorf("%s = %#v, want {}", k, ev[k])
			}
		}
		// An empty search result has every key too.
		resp := searchREST(t, srv, srv.PublicURL, `{"filter": {"resourceExact": "no such resource"}}`)
		if got := sortedKeys(resp); !slices.Equal(got, []string{"events", "nextPageToken", "searchedUntilTime"}) {
			t.Errorf("search response keys %v", got)
		}
		if resp["nextPageToken"] != "" || resp["searchedUntilTime"] != "2025-07-01T00:00:00Z" {
			t.Errorf("empty search: %v", resp)
		}
	})

	t.Run("snake_case, null and unknown fields in", func(t *testing.T) {
		id := newID()
		body := `{"event_time": "2026-02-01T00:00:00Z", "event_source": "snake", "action": "a", "read_only": true,
			"status": {"code": 7, "message": "denied"}, "principal": "users/snake", "source_ip_address": "8.8.4.4",
			"user_agent": null, "resource": "snake/r", "request_parameters": {"q": "1"}, "metadata": null, "type": null,
			"name": "events/ignored", "workspace": "workspaces/ignored", "receiveTime": "2000-01-01T00:00:00Z",
			"loginPrincipal": "ignored", "noSuchField": {"x": [1, 2]}}`
		// event_id in the query, the proto spelling.
		r := call(t, "POST", srv.InternalURL+"/v1/events?event_id="+id, srv.ProducerToken, body)
		if r.status != http.StatusOK {
			t.Fatalf("create: %s", r)
		}
		ev := r.json(t)["event"].(map[string]any)
		checkEventKeys(t, ev)
		if ev["name"] != "events/"+id || ev["eventSource"] != "snake" || ev["readOnly"] != true || ev["userAgent"] != "" ||
			ev["workspace"] != "" || ev["loginPrincipal"] != "" || ev["type"] != "TYPE_UNSPECIFIED" {
			t.Errorf("stored event: %s", r.body)
		}
		if st := ev["status"].(map[string]any); fmt.Sprint(st["code"]) != "7" || st["message"] != "denied" {
			t.Errorf("status %v", st)
		}
		if rt := ev["receiveTime"].(string); strings.HasPrefix(rt, "2000") {
			t.Errorf("receiveTime %s was taken from the request", rt)
		}
		// The search request the Python client sends: every unset filter
		// field null, snake_case and camelCase mixed.
		search := `{"filter": {"start_event_time": "2026-01-31T00:00:00+01:00", "endEventTime": null, "event_source_exact": "snake",
			"resourceRegex": null, "read_only": null, "metadataExact": null, "include_types": null, "principal_regex": "^users/"},
			"page_size": null, "pageToken": null, "unknown": 1}`
		resp := searchREST(t, srv, srv.PublicURL, search)
		if got := names(t, resp); !slices.Equal(got, []string{"events/" + id}) {
			t.Errorf("search: %v", got)
		}
		if got := resp["searchedUntilTime"]; got != "2026-01-30T23:00:00Z" {
			t.Errorf("searchedUntilTime %v, want the start in UTC", got)
		}
	})

	t.Run("newest first with paging", func(t *testing.T) {
		var ids []string
		for i := range 5 {
			id := newID()
			ids = append(ids, "events/"+id)
			createREST(t, srv, id, eventBody(fmt.Sprintf("2026-05-01T00:00:0%dZ", i), "paging"))
		}
		slices.Reverse(ids)
		var got []string
		token := ""
		for range 10 {
			resp := searchREST(t, srv, srv.PublicURL, fmt.Sprintf(`{"filter": {"resourceExact": "paging"}, "pageSize": 2, "pageToken": %q}`, token))
			got = append(got, names(t, resp)...)
			token = resp["nextPageToken"].(string)
			if token == "" {
				break
			}
		}
		if !slices.Equal(got, ids) {
			t.Errorf("pages gave %v, want %v", got, ids)
		}
		// The internal listener serves search too.
		resp := searchREST(t, srv, srv.InternalURL, `{"filter": {"resourceExact": "paging"}}`)
		if got := names(t, resp); !slices.Equal(got, ids) {
			t.Errorf("internal search: %v", got)
		}
	})

	t.Run("idempotent retry, conflict", func(t *testing.T) {
		id := newID()
		body := eventBody("2026-06-01T00:00:00Z", "retry")
		first := createREST(t, srv, id, body)
		again := createREST(t, srv, id, body)
		if first["receiveTime"] != again["receiveTime"] {
			t.Errorf("retry returned another event: %v vs %v", first["receiveTime"], again["receiveTime"])
		}
		r := call(t, "POST", srv.InternalURL+"/v1/events?eventId="+id, srv.ProducerToken, eventBody("2026-06-01T00:00:00Z", "other"))
		wantStatus(t, r, http.StatusConflict, 6, "")
	})
}

func TestE2EErrorsREST(t *testing.T) {
	srv := testserver.Start(t)
	create := func(id, body string) *response {
		return call(t, "POST", srv.InternalURL+"/v1/events?eventId="+id, srv.ProducerToken, body)
	}
	search := func(body string) *response {
		return call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken, body)
	}
	good := eventBody("2026-01-01T00:00:00Z", "r")
	for _, tc := range []struct {
		name   string
		r      *response
		status int
		code   int
		msg    string
	}{
		{"bad regex", search(`{"filter": {"resourceRegex": "(a"}}`), 400, 3, "filter.resource_regex is not a valid RE2 regular expression"},
		{"bad status regex", search(`{"filter": {"statusCodeRegex": "[z-a]"}}`), 400, 3, "filter.status_code_regex"},
		{"negative page size", search(`{"pageSize": -1}`), 400, 3, "page_size"},
		{"garbled page token", search(`{"pageToken": "garbage"}`), 400, 3, "page_token is invalid"},
		{"start after end", search(`{"filter": {"startEventTime": "2026-02-01T00:00:00Z", "endEventTime": "2026-01-01T00:00:00Z"}}`), 400, 3, "filter.start_event_time"},
		{"bad timestamp", search(`{"filter": {"startEventTime": "yesterday"}}`), 400, 3, "Timestamp"},
		{"bad JSON", search(`{"filter": `), 400, 3, "the request body is not whole JSON: it ends inside a value"},
		{"JSON syntax error", search(`{"filter": }`), 400, 3, "the request body is not valid JSON: invalid character '}' looking for beginning of value, at byte 12"},
		{"JSON syntax error on create", create(newID(), `{"eventTime" "2026-01-01T00:00:00Z"}`), 400, 3, "the request body is not valid JSON: invalid character '\"' after object key, at byte 14"},
		{"wrong type", search(`{"pageSize": "many"}`), 400, 3, "pageSize"},
		{"bad time in a filter", search(`{"filter": {"startEventTime": "2026-13-01T00:00:00Z"}}`), 400, 3, `filter.start_event_time (line 1:31): invalid google.protobuf.Timestamp value "2026-13-01T00:00:00Z"`},
		{"unknown type name in a filter", search(`{"filter": {"includeTypes": ["TYPE_SYSTEMX"]}}`), 400, 3, `filter.include_types[0]: "TYPE_SYSTEMX" is not a value of EventType (TYPE_UNSPECIFIED, TYPE_API, TYPE_SYSTEM)`},
		{"unknown type name beside an unknown field", search(`{"filter": {"exclude_types": ["TYPE_API", "type_system"], "future": 1}}`), 400, 3, `filter.exclude_types[1]: "type_system" is not a value of EventType`},
		{"unknown type name on create", create(newID(), `{"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "1.1.1.1", "type": "TYPE_BOGUS"}`), 400, 3, `type: "TYPE_BOGUS" is not a value of EventType`},
		{"type number as a string on create", create(newID(), `{"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "1.1.1.1", "type": "1"}`), 400, 3, `type: "1" is not a value of EventType`},
		{"regex too complex", search(`{"filter": {"resourceRegex": "` + strings.Repeat("(?:.?){1000}", 100) + `[XQ]"}}`), 400, 3, "filter.resource_regex is too complex: it compiles to 200003 instructions, the limit is 10000"},
		{"bad event id", create("invalid", good), 400, 3, "event_id must be in UUIDv4 format"},
		{"UUIDv1 event id", create("6ba7b810-9dad-11d1-80b4-00c04fd430c8", good), 400, 3, "event_id must be in UUIDv4 format"},
		{"no event id", create("", good), 400, 3, "event_id must be in UUIDv4 format"},
		{"missing event_time", create(newID(), `{"eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "1.1.1.1"}`), 400, 3, "event.event_time is required"},
		{"missing event_source", create(newID(), `{"eventTime": "2026-01-01T00:00:00Z", "action": "a", "principal": "p", "sourceIpAddress": "1.1.1.1"}`), 400, 3, "event.event_source is required"},
		{"missing principal", create(newID(), `{"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s", "action": "a", "sourceIpAddress": "1.1.1.1"}`), 400, 3, "event.principal is required"},
		{"bad metadata key", create(newID(), `{"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "1.1.1.1", "metadata": {"Bad-Key": "v"}}`), 400, 3, "event.metadata key"},
		{"lone surrogate in a search's last string", search(`{"filter": {"principalExact": "\uD800"}}`), 400, 3, `filter.principal_exact (line 1:31): a \u escape of half a UTF-16 surrogate pair (\uD800 to \uDFFF) without its other half is not a character`},
		{"lone surrogate in a create's last string", create(newID(), `{"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "1.1.1.1", "metadata": {"k": "\udc00"}}`), 400, 3, `metadata["k"] (line 1:`},
		{"bad source IP", create(newID(), `{"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s", "action": "a", "principal": "p", "sourceIpAddress": "nowhere"}`), 400, 3, "event.source_ip_address"},
		{"unknown path", call(t, "GET", srv.PublicURL+"/v2/nothing", srv.ReaderToken, ""), 404, 5, "Not Found"},
		{"unknown path internal", call(t, "POST", srv.InternalURL+"/v1/events:frobnicate", srv.ProducerToken, "{}"), 404, 5, "Not Found"},
		{"wrong method search", call(t, "GET", srv.PublicURL+"/v1/events:search", srv.ReaderToken, ""), 405, 12, "Method Not Allowed"},
		{"wrong method create", call(t, "PUT", srv.InternalURL+"/v1/events", srv.ProducerToken, good), 405, 12, "Method Not Allowed"},
		{"wrong method version", call(t, "POST", srv.PublicURL+"/version", "", "{}"), 405, 12, "Method Not Allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantStatus(t, tc.r, tc.status, tc.code, tc.msg) })
	}
	// A 405 names the method the path has (RFC 9110 §15.5.6).
	for _, c := range []struct{ method, url, allow string }{
		{"GET", srv.PublicURL + "/v1/events:search", "POST"},
		{"PUT", srv.InternalURL + "/v1/events", "POST"},
		{"POST", srv.PublicURL + "/version", "GET, HEAD"},
		{"DELETE", srv.PublicURL + "/v1/log/checkpoint", "GET, HEAD"},
		{"HEAD", srv.PublicURL + "/v1/events:search", "POST"},
		{"GET", srv.PublicURL + "/v1/events", ""}, // nothing creates on the public listener
		{"HEAD", srv.PublicURL + "/v1/events", ""},
		{"PUT", srv.PublicURL + "/.well-known/openid-configuration", "GET, HEAD"}, // the issuer's routes
	} {
		r := call(t, c.method, c.url, srv.ReaderToken, "")
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != c.allow || len(r.header.Values("Allow")) != 1 {
			t.Errorf("%s %s: %d, Allow %q; want 405, Allow %q", c.method, c.url, r.status, r.header.Values("Allow"), c.allow)
		}
	}
}

// TestE2EHead: every GET path answers HEAD as it answers GET (RFC 9110
// §9.3.2), with the same status and header fields and no body: the
// gateway's paths, an error of one (no token), and the issuer's routes.
func TestE2EHead(t *testing.T) {
	srv := testserver.Start(t)
	for _, c := range []struct{ url, token string }{
		{srv.PublicURL + "/version", ""},
		{srv.PublicURL + "/healthz", ""},
		{srv.PublicURL + "/v1/log/checkpoint", srv.ReaderToken},
		{srv.PublicURL + "/v1/log/checkpoint", ""}, // 401
		{srv.PublicURL + "/.well-known/openid-configuration", ""},
		{srv.InternalURL + "/readyz", ""},
	} {
		get, head := call(t, "GET", c.url, c.token, ""), call(t, "HEAD", c.url, c.token, "")
		if head.status != get.status || len(head.body) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes of body; GET: %d", c.url, head.status, len(head.body), get.status)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Www-Authenticate"} {
			if head.header.Get(h) != get.header.Get(h) {
				t.Errorf("HEAD %s: %s %q, GET's %q", c.url, h, head.header.Get(h), get.header.Get(h))
			}
		}
	}
}

// TestE2ESearchTimeout: a search whose regular expression is valid and
// within the limits but costly enough to outlast --search-timeout fails
// with 503 UNAVAILABLE saying why, and is audited as such; the server stays
// responsive. (pebblestore's TestSearchTimeout* cover the partial pages.)
func TestE2ESearchTimeout(t *testing.T) {
	srv := testserver.Start(t, "--search-timeout", "100ms")
	var reqs []string
	for i := range 1000 {
		ev := eventBody("2026-01-01T00:00:00Z", fmt.Sprintf("//engine-manager/workspaces/w%d/daiEngines/engine-%08d", i%7, i*7919))
		reqs = append(reqs, fmt.Sprintf(`{"eventId": %q, "event": %s}`, newID(), ev))
	}
	r := call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, `{"requests": [`+strings.Join(reqs, ",")+`]}`)
	if r.status != 200 {
		t.Fatalf("batch: %s", r)
	}
	// 2,003 instructions, no literal: about 3 ms per resource on a 2020s
	// core, seconds for the 1,000 distinct ones.
	costly := `(?:.?){1000}[XQ]`
	body := fmt.Sprintf(`{"filter": {"resourceRegex": %q, "startEventTime": "2025-12-01T00:00:00Z"}}`, costly)
	r = call(t, "POST", srv.PublicURL+"/v1/events:search", srv.ReaderToken, body)
	wantStatus(t, r, 503, 14, "the search ran out of time before it examined any event")
	// Audited with its outcome.
	audit := searchREST(t, srv, srv.PublicURL, `{"filter": {"actionExact": "actions/audittrail/events/SEARCH", "statusCodeRegex": "^14$"}}`)
	if n := len(audit["events"].([]any)); n != 1 {
		t.Errorf("%d self-audit events of the search that ran out of time, want 1: %v", n, audit)
	}
}

func TestE2EBatchREST(t *testing.T) {
	srv := testserver.Start(t)
	ids := []string{newID(), newID(), "invalid", newID(), newID()}
	items := []string{
		eventBody("2026-01-01T00:00:01Z", "batch"),
		eventBody("2026-01-01T00:00:02Z", "batch"),
		eventBody("2026-01-01T00:00:03Z", "batch"),
		`{"eventTime": "2026-01-01T00:00:04Z", "eventSource": "s", "principal": "p", "sourceIpAddress": "1.1.1.1"}`, // no action
		eventBody("2026-01-01T00:00:05Z", "batch"),
	}
	var reqs []string
	for i := range ids {
		key := "eventId"
		if i%2 == 1 {
			key = "event_id"
		}
		reqs = append(reqs, fmt.Sprintf(`{%q: %q, "event": %s}`, key, ids[i], items[i]))
	}
	r := call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, `{"requests": [`+strings.Join(reqs, ",")+`]}`)
	if r.status != http.StatusOK {
		t.Fatalf("batch: %s", r)
	}
	resp := r.json(t)
	want := []string{"events/" + ids[0], "events/" + ids[1], "events/" + ids[4]}
	if got := names(t, resp); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v in request order", got, want)
	}
	for _, e := range resp["events"].([]any) {
		checkEventKeys(t, e)
	}
	failed, ok := resp["failedRequests"].(map[string]any)
	if !ok || len(failed) != 2 {
		t.Fatalf("failedRequests: %s", r.body)
	}
	for idx, msg := range map[string]string{"2": "event_id must be in UUIDv4 format", "3": "event.action is required"} {
		st, _ := failed[idx].(map[string]any)
		if st == nil || fmt.Sprint(st["code"]) != "3" || st["message"] != msg {
			t.Errorf("failedRequests[%s] = %v, want code 3 %q", idx, failed[idx], msg)
		}
		if d, ok := st["details"].([]any); !ok || len(d) != 0 {
			t.Errorf("failedRequests[%s].details = %v, want []", idx, st["details"])
		}
	}
	// The valid ones are stored.
	got := names(t, searchREST(t, srv, srv.PublicURL, `{"filter": {"resourceExact": "batch"}}`))
	if !slices.Equal(got, []string{want[2], want[1], want[0]}) {
		t.Errorf("search after batch: %v", got)
	}

	// An empty batch is fine, and answers every key.
	r = call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, `{"requests": []}`)
	if r.status != http.StatusOK || r.json(t)["failedRequests"] == nil || r.json(t)["events"] == nil {
		t.Errorf("empty batch: %s", r)
	}

	// Over the limit: the whole call fails and nothing is written.
	var big strings.Builder
	big.WriteString(`{"requests": [`)
	for i := range audittrail.MaxBatch + 1 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"eventId": %q, "event": %s}`, newID(), eventBody("2026-01-02T00:00:00Z", "toomany"))
	}
	big.WriteString(`]}`)
	r = call(t, "POST", srv.InternalURL+"/v1/events:batchCreate", srv.ProducerToken, big.String())
	wantStatus(t, r, http.StatusBadRequest, 3, "the limit is 1000 per batch")
	if got := names(t, searchREST(t, srv, srv.PublicURL, `{"filter": {"resourceExact": "toomany"}}`)); len(got) != 0 {
		t.Errorf("an oversized batch wrote %d events", len(got))
	}
}

// TestE2EBodyTooLarge sends bodies over the limits, audittrail.MaxRequestBodySize
// for the internal listener's creates and server.MaxPublicRequestSize for
// every other request:
// with a Content-Length (refused before the body is read) and chunked
// (refused when the limit is crossed).
func TestE2EBodyTooLarge(t *testing.T) {
	srv := testserver.Start(t)
	limit := fmt.Sprint(audittrail.MaxRequestBodySize)
	publicLimit := fmt.Sprint(server.MaxPublicRequestSize)

	// raw sends the headers of a request declaring a body of length
	// bytes, and the first bytes of the body.
	raw := func(t *testing.T, addr, path, token string, length int) *response {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"requests\": [",
			path, addr, token, length)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return &response{status: resp.StatusCode, header: resp.Header, body: b}
	}
	// post sends a body of n bytes to path, prefix and suffix around a
	// run of 'a', chunked (no declared length) or declared.
	post := func(t *testing.T, url, path, token, prefix, suffix string, n int, chunked bool) *response {
		body := io.MultiReader(strings.NewReader(prefix),
			io.LimitReader(repeatReader('a'), int64(n-len(prefix)-len(suffix))), strings.NewReader(suffix))
		req, _ := http.NewRequest("POST", url+path, body)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.ContentLength = int64(n)
		if chunked {
			req.ContentLength = -1
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return &response{status: resp.StatusCode, header: resp.Header, body: b}
	}
	// search sends a search whose resource regex fills n bytes of body.
	search := func(t *testing.T, url, token string, n int, chunked bool) *response {
		return post(t, url, "/v1/events:search", token, `{"filter": {"resourceRegex": "`, `"}}`, n, chunked)
	}
	// batch sends a batch of one event whose resource fills n bytes of
	// body.
	batch := func(t *testing.T, url, token string, n int, chunked bool) *response {
		prefix := `{"requests": [{"eventId": "` + newID() + `", "event": {"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s", ` +
			`"action": "a", "principal": "p", "sourceIpAddress": "8.8.8.8", "resource": "`
		return post(t, url, "/v1/events:batchCreate", token, prefix, `"}}]}`, n, chunked)
	}

	t.Run("content-length", func(t *testing.T) {
		r := raw(t, srv.InternalAddr, "/v1/events:batchCreate", srv.ProducerToken, audittrail.MaxRequestBodySize+1)
		wantStatus(t, r, http.StatusRequestEntityTooLarge, 8, limit)
	})

	t.Run("routing first", func(t *testing.T) {
		// The public create paths are 405 and unknown paths 404 whatever
		// the body: they never read it.
		wantStatus(t, raw(t, srv.PublicAddr, "/v1/events:batchCreate", srv.ProducerToken, audittrail.MaxRequestBodySize+1),
			http.StatusMethodNotAllowed, 12, "Method Not Allowed")
		wantStatus(t, raw(t, srv.InternalAddr, "/v1/nothing", srv.ProducerToken, audittrail.MaxRequestBodySize+1),
			http.StatusNotFound, 5, "Not Found")
	})

	t.Run("chunked", func(t *testing.T) {
		// A batch whose resource never ends: the body is streamed, without
		// a length, until the server stops reading.
		r := batch(t, srv.InternalURL, srv.ProducerToken, audittrail.MaxRequestBodySize+1, true)
		wantStatus(t, r, http.StatusRequestEntityTooLarge, 8, limit)
	})

	t.Run("just under the limit is read", func(t *testing.T) {
		// A batch of nearly the limit gets past the size check to the
		// handler, which finds the resource too long (a failed request of
		// the batch).
		r := batch(t, srv.InternalURL, srv.ProducerToken, audittrail.MaxRequestBodySize, false)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), "resource is too long") {
			t.Errorf("a batch of %d bytes: HTTP %d %.300s, want 200 with a failed request: resource is too long",
				audittrail.MaxRequestBodySize, r.status, r.body)
		}
	})

	t.Run("internal listener, other than creates", func(t *testing.T) {
		// Only the creates of the internal listener take more than
		// MaxPublicRequestSize: a search over it is refused, declared or
		// chunked, and one of the limit is read.
		r := search(t, srv.InternalURL, srv.ReaderToken, server.MaxPublicRequestSize+1, false)
		wantStatus(t, r, http.StatusRequestEntityTooLarge, 8, publicLimit)
		r = search(t, srv.InternalURL, srv.ReaderToken, server.MaxPublicRequestSize+1, true)
		wantStatus(t, r, http.StatusRequestEntityTooLarge, 8, publicLimit)
		r = search(t, srv.InternalURL, srv.ReaderToken, server.MaxPublicRequestSize, false)
		wantStatus(t, r, http.StatusBadRequest, 3, "filter.resource_regex is too long")
	})

	t.Run("public listener", func(t *testing.T) {
		// The public listener creates nothing, and reads no more than
		// MaxPublicRequestSize of a body: one over it is refused whoever
		// sends it, declared or chunked.
		for _, token := range []string{srv.ReaderToken, ""} {
			r := raw(t, srv.PublicAddr, "/v1/events:search", token, server.MaxPublicRequestSize+1)
			wantStatus(t, r, http.StatusRequestEntityTooLarge, 8, publicLimit)
			r = search(t, srv.PublicURL, token, server.MaxPublicRequestSize+1, true)
			wantStatus(t, r, http.StatusRequestEntityTooLarge, 8, publicLimit)
		}
		r := search(t, srv.PublicURL, srv.ReaderToken, server.MaxPublicRequestSize, false)
		wantStatus(t, r, http.StatusBadRequest, 3, "filter.resource_regex is too long")
	})
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestE2EHTTP2REST sends REST over HTTP/2 with prior knowledge: the same port
// tells it from gRPC by its content type.
func TestE2EHTTP2REST(t *testing.T) {
	srv := testserver.Start(t)
	c := h2cClient(30 * time.Second)
	req, _ := http.NewRequest("POST", srv.PublicURL+"/v1/events:search", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+srv.ReaderToken)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"nextPageToken"`) {
		t.Errorf("h2c REST search: %s %d %s", resp.Proto, resp.StatusCode, b)
	}
	resp, err = c.Post(srv.PublicURL+"/v1/events", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("h2c public create: %d, want 405", resp.StatusCode)
	}
}

// TestE2ERESTErrorBodyBytes: REST error bodies are the same bytes from one
// build of the server to the next. protojson, which writes the
// google.rpc.Status of an error, adds a space after every comma or after
// none, depending on a hash of the binary (protobuf-go's detrand); the
// server compacts what it writes (stableJSON), so a build that drew spaces
// failed this test before.
func TestE2ERESTErrorBodyBytes(t *testing.T) {
	srv := testserver.Start(t)
	for _, c := range []struct {
		name, method, url, body string
		status                  int
		want                    string
	}{
		{"bad filter", "POST", srv.InternalURL + "/v1/events:search", `{"filter": {"includeTypes": ["TYPE_BOGUS"]}}`, http.StatusBadRequest,
			`{"code":3,"message":"filter.include_types[0]: \"TYPE_BOGUS\" is not a value of EventType (TYPE_UNSPECIFIED, TYPE_API, TYPE_SYSTEM)","details":[]}`},
		{"create on the public listener", "POST", srv.PublicURL + "/v1/events", `{}`, http.StatusMethodNotAllowed,
			`{"code":12,"message":"Method Not Allowed","details":[]}`},
	} {
		r := call(t, c.method, c.url, srv.ReaderToken, c.body)
		if r.status != c.status || string(r.body) != c.want {
			t.Errorf("%s: %d %#q, want %d %#q", c.name, r.status, r.body, c.status, c.want)
		}
	}
}

// TestE2EMetricsMethodLabel: a request to a known path of an extra route
// (the built-in issuer's) with a method the path does not have is counted
// under a fixed label, whatever its method. The label was the request's
// own method, and net/http takes any token as a method (up to the header
// limit, 1 MiB): every new one added two series to the metrics for good,
// an unbounded label set any anonymous client could grow (and /metrics
// with it). Standard methods keep their name; others count as OTHER.
func TestE2EMetricsMethodLabel(t *testing.T) {
	srv := testserver.Start(t)
	const made = 20
	for i := range made {
		r := call(t, fmt.Sprintf("MADEUP%d", i), srv.PublicURL+"/.well-known/openid-configuration", "", "")
		if r.status != http.StatusMethodNotAllowed {
			t.Fatalf("made-up method %d: %s", i, r)
		}
	}
	if r := call(t, "PUT", srv.PublicURL+"/.well-known/openid-configuration", "", ""); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %s", r)
	}
	r := call(t, "GET", srv.InternalURL+"/metrics", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %s", r)
	}
	body := string(r.body)
	if n := strings.Count(body, "MADEUP"); n > 0 {
		t.Errorf("/metrics has %d lines naming the made-up methods (%d requests): an unbounded label", n, made)
	}
	for _, want := range []string{
		fmt.Sprintf(`audittrail_requests_total{code="405",listener="public",method="OTHER /.well-known/openid-configuration",protocol="http"} %d`, made),
		`audittrail_requests_total{code="405",listener="public",method="PUT /.well-known/openid-configuration",protocol="http"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
