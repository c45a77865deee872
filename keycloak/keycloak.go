// Package keycloak forwards a Keycloak realm's events to the audit trail:
// the user events (logins, failed logins, logouts, token requests, ...) and
// the admin events (changes made through the admin API or console), read
// through Keycloak's admin REST API, converted to audit events and created
// on the service's internal listener. It is what "audittrail keycloak"
// runs (docs/configuration.md, "Keycloak events"; docs/design/keycloak.md).
//
// Reader reads the events, authenticated as a confidential client whose
// service account holds realm-management's view-events role (OAuth 2.0
// client credentials; the token is refreshed before it expires).
// Converter turns them into audit events, deterministically: each event's
// id is derived from the realm, the kind and Keycloak's event id (EventID),
// so an event read twice is created twice with the same id and content,
// which the service answers with the stored event. Forwarder polls: for
// each kind it reads from the cursor (the time of the last event forwarded)
// less an overlap, since Keycloak's events of one moment may commit out of
// order, creates what it read, and only then moves the cursor, which State
// keeps in a file, with the time it last read each kind through to the end
// (ReadThroughAt). Nothing read is lost to a failed create, and nothing is
// stored twice.
package keycloak

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Reader reads a realm's events through Keycloak's admin REST API.
type Reader struct {
	URL          string // Keycloak's base URL, such as https://keycloak.example.com (with its path prefix if it has one)
	Realm        string // the realm whose events are read; the client is a client of this realm
	ClientID     string
	ClientSecret string
	HTTPClient   *http.Client     // when nil, one with RequestTimeout and the system's CA certificates; see NewHTTPClient
	Now          func() time.Time // the clock of the token's expiry; time.Now when nil

	mu      sync.Mutex
	token   string
	expires time.Time
}

// TokenMargin is how long before its expiry a token is replaced.
const TokenMargin = 30 * time.Second

// Error is an answer of Keycloak other than success.
type Error struct {
	URL    string // without the query
	Status int    // HTTP status, 0 when the request did not reach Keycloak
	Body   string // Keycloak's error text, shortened
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("keycloak: %s: HTTP %d", e.URL, e.Status)
	switch e.Status {
	case http.StatusUnauthorized:
		msg += " (the client id or secret is wrong, or the token was refused)"
	case http.StatusForbidden:
		msg += " (the client's service account needs realm-management's view-events role)"
	case http.StatusNotFound:
		msg += " (no such realm, or not a Keycloak URL)"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// RequestTimeout bounds each request to Keycloak of a Reader without an
// HTTPClient: a Keycloak that stops answering fails the poll, which is
// tried again, instead of holding it forever.
const RequestTimeout = time.Minute

var defaultHTTPClient = &http.Client{Timeout: RequestTimeout}

// NewHTTPClient returns an HTTP client for a Reader that trusts the CA
// certificates of roots instead of the system's, with RequestTimeout: for a
// Keycloak whose certificate a private CA signed.
func NewHTTPClient(roots *x509.CertPool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone() // its proxy from the environment, its timeouts, HTTP/2
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t, Timeout: RequestTimeout}
}

// CertificateError is Keycloak's TLS certificate refused: signed by an
// authority the client does not trust (an x509.UnknownAuthorityError, which
// errors.As finds through it), for another host name, or expired.
type CertificateError struct {
	URL string // without the query
	Err error  // crypto/x509's reason
}

func (e *CertificateError) Error() string {
	var unknown x509.UnknownAuthorityError
	if errors.As(e.Err, &unknown) && unknown.Cert != nil {
		return fmt.Sprintf("keycloak: %s: Keycloak's TLS certificate is signed by %q, which is not a certificate authority trusted here",
			e.URL, unknown.Cert.Issuer.String())
	}
	return fmt.Sprintf("keycloak: %s: Keycloak's TLS certificate is refused: %v", e.URL, e.Err)
}

func (e *CertificateError) Unwrap() error { return e.Err }

func (r *Reader) httpClient() *http.Client {
	if r.HTTPClient != nil {
		return r.HTTPClient
	}
	return defaultHTTPClient
}

func (r *Reader) base() string { return strings.TrimRight(r.URL, "/") }

// accessToken returns a valid access token, requesting a new one when
// there is none or it expires within TokenMargin.
func (r *Reader) accessToken(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if r.token != "" && r.expires.Sub(now()) > TokenMargin {
		return r.token, nil
	}
	u := r.base() + "/realms/" + url.PathEscape(r.Realm) + "/protocol/openid-connect/token"
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {r.ClientID}, "client_secret": {r.ClientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := r.do(req, &tok); err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", &Error{URL: u, Status: http.StatusOK, Body: "no access_token in the answer"}
	}
	r.token = tok.AccessToken
	r.expires = now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	return r.token, nil
}

// do sends req and decodes a JSON answer of status 200 into v.
func (r *Reader) do(req *http.Request, v any) error {
	u := *req.URL
	u.RawQuery = ""
	resp, err := r.httpClient().Do(req)
	var refused *tls.CertificateVerificationError
	if errors.As(err, &refused) {
		// Go's text ("tls: failed to verify certificate: x509: certificate
		// signed by unknown authority") does not say whose certificate, or
		// by whom.
		return &CertificateError{URL: u.String(), Err: refused.Err}
	}
	if err != nil {
		return fmt.Errorf("keycloak: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("keycloak: %s: reading the answer: %w", u.String(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return &Error{URL: u.String(), Status: resp.StatusCode, Body: errorText(body)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("keycloak: %s: the answer is not the JSON expected: %w", u.String(), err)
	}
	return nil
}

// errorText returns Keycloak's error message from an error body.
func errorText(body []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		if e.Description != "" {
			return e.Error + ": " + e.Description
		}
		return e.Error
	}
	return clip(strings.TrimSpace(string(body)), 200)
}

// get reads the events of path from dateFrom (Unix milliseconds, inclusive),
// oldest first, first being the offset of the page and max its size.
func (r *Reader) get(ctx context.Context, path string, from int64, first, max int, v any) error {
	tok, err := r.accessToken(ctx)
	if err != nil {
		return err
	}
	q := url.Values{
		"dateFrom":  {strconv.FormatInt(from, 10)},
		"direction": {"asc"},
		"first":     {strconv.Itoa(first)},
		"max":       {strconv.Itoa(max)},
	}
	u := r.base() + "/admin/realms/" + url.PathEscape(r.Realm) + "/" + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	err = r.do(req, v)
	var ke *Error
	if errors.As(err, &ke) && ke.Status == http.StatusUnauthorized {
		// A token revoked or expired early (a restarted Keycloak): the
		// next call asks for a new one.
		r.mu.Lock()
		r.token = ""
		r.mu.Unlock()
	}
	return err
}

// UserEvents returns up to max user events from time from (Unix
// milliseconds, inclusive), oldest first, skipping the first first.
func (r *Reader) UserEvents(ctx context.Context, from int64, first, max int) ([]UserEvent, error) {
	var evs []UserEvent
	return evs, r.get(ctx, "events", from, first, max, &evs)
}

// AdminEvents returns up to max admin events as UserEvents does user events.
func (r *Reader) AdminEvents(ctx context.Context, from int64, first, max int) ([]AdminEvent, error) {
	var evs []AdminEvent
	return evs, r.get(ctx, "admin-events", from, first, max, &evs)
}

// EventsConfig is what a realm records (the admin API's
// RealmEventsConfigRepresentation, in part).
type EventsConfig struct {
	EventsEnabled      bool  `json:"eventsEnabled"`      // "Save events" of user events
	AdminEventsEnabled bool  `json:"adminEventsEnabled"` // "Save events" of admin events
	EventsExpiration   int64 `json:"eventsExpiration"`   // seconds user events are kept; 0: no expiration
}

// EventsConfig reads the realm's events settings (view-events allows it).
func (r *Reader) EventsConfig(ctx context.Context) (*EventsConfig, error) {
	tok, err := r.accessToken(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base()+"/admin/realms/"+url.PathEscape(r.Realm)+"/events/config", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	var c EventsConfig
	return &c, r.do(req, &c)
}
