package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/flock"
	"github.com/audittrail/audittrail/keycloak"
)

// KeycloakCommand implements "audittrail keycloak": it forwards a Keycloak
// realm's user and admin events to a server's internal listener (package
// keycloak).
type KeycloakCommand struct {
	Stdout, Stderr io.Writer
}

const keycloakSynopsis = `usage: audittrail keycloak --keycloak-url URL --realm REALM --client-id ID --state FILE [--once] [flags]

Forwards a Keycloak realm's events to the audit trail: the user events
(LOGIN, LOGIN_ERROR, LOGOUT, CODE_TO_TOKEN, ...) and the admin events
(changes made through the admin API or console: CREATE, UPDATE, DELETE,
ACTION of a user, a client, a role, ...). It reads them through Keycloak's
admin REST API, as a confidential client of the realm (client credentials)
whose service account has realm-management's view-events role, converts
each to an audit event (docs/configuration.md, "Keycloak events", has the
mapping) and creates them on the server's internal listener, as a producer.
The realm must record them: "Save events" and "Save admin events" in its
realm settings (Keycloak keeps them until their expiration, if one is set).

FILE keeps, for each kind, the time of the newest event forwarded, replaced
once the server has acknowledged a batch: a restarted forwarder goes on from
there. While FILE does not exist, it starts with the oldest event Keycloak
holds. Each poll reads again from --overlap before that time, since
Keycloak's events of one moment may be stored out of order: an event read
twice has the same id and content both times, and the server keeps one.
FILE also keeps when the forwarder last read each kind through to the end,
saved with the last batch, or once at the end of a poll that found nothing
new. FILE.lock keeps a second forwarder off the same FILE. An event that
Keycloak's expiration deleted before it was read is not forwarded: keep the
expiration well above the time the forwarder may be down. When the last read
through of user events is older than the realm keeps them, at start or while
the polls fail, a warning on stderr gives the span of the events that may
have been deleted unread (once per outage; admin events have no such check,
since their expiration is not readable with view-events).

Network errors and refusals of Keycloak or the server are reported on stderr
and the poll is tried again at the next interval, from the same place: what
was not acknowledged is read again. With --once, they end the command with
exit status 1.

The client secret comes from --client-secret-file, or the environment
(AUDITTRAIL_KEYCLOAK_CLIENT_SECRET), or --client-secret (visible to other
users of the machine in the process list).

Keycloak over https is checked against the system's CA certificates, or,
with --keycloak-ca-file, against the CA certificates of that PEM file
instead (a Keycloak whose certificate a private CA signed), as --ca-file
does for the audit trail's connection.

Examples:
  AUDITTRAIL_KEYCLOAK_CLIENT_SECRET=... audittrail keycloak --keycloak-url https://keycloak.example.com \
      --realm acme --client-id audittrail-forwarder --state /var/lib/audittrail-keycloak/acme.state
  audittrail keycloak --keycloak-url http://127.0.0.1:8080 --realm acme --client-id audittrail-forwarder \
      --client-secret-file secret --state acme.state --once

Exit status: 0 stopped by a signal or, with --once, after one poll; 1 an
error; 2 bad usage.

Environment: AUDITTRAIL_INTERNAL_ADDR (--addr), AUDITTRAIL_PRODUCER_TOKEN or
AUDITTRAIL_TOKEN (--token), AUDITTRAIL_KEYCLOAK_URL (--keycloak-url),
AUDITTRAIL_KEYCLOAK_CA_FILE (--keycloak-ca-file),
AUDITTRAIL_KEYCLOAK_CLIENT_SECRET (the client secret).
`

type keycloakFlags struct {
	connFlags
	keycloakURL, keycloakCAFile    string
	realm, clientID                string
	clientSecret, clientSecretFile string
	state, eventSource, kinds      string
	interval, overlap              time.Duration
	once                           bool
}

func newKeycloakFlags(f *keycloakFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("keycloak", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", envDefault("127.0.0.1:8081", "AUDITTRAIL_INTERNAL_ADDR"), "`host:port` of the server's internal listener")
	fs.StringVar(&f.token, "token", envDefault("", "AUDITTRAIL_PRODUCER_TOKEN", "AUDITTRAIL_TOKEN"), "bearer `token` of a producer")
	f.addTLSFlags(fs)
	fs.StringVar(&f.keycloakURL, "keycloak-url", envDefault("", "AUDITTRAIL_KEYCLOAK_URL"), "Keycloak's base `URL` (with its path prefix, if it has one)")
	fs.StringVar(&f.keycloakCAFile, "keycloak-ca-file", envDefault("", "AUDITTRAIL_KEYCLOAK_CA_FILE"), "trust the CA certificates in this PEM `file` for Keycloak's https, instead of the system's")
	fs.StringVar(&f.realm, "realm", "", "the `realm` whose events are forwarded")
	fs.StringVar(&f.clientID, "client-id", "", "`client id` of a confidential client of the realm whose service account has realm-management's view-events role")
	fs.StringVar(&f.clientSecret, "client-secret", "", "the client's `secret` (prefer --client-secret-file or AUDITTRAIL_KEYCLOAK_CLIENT_SECRET)")
	fs.StringVar(&f.clientSecretFile, "client-secret-file", "", "`file` holding the client's secret")
	fs.StringVar(&f.state, "state", "", "`file` keeping the time of the newest event forwarded and of the last read through, per kind (created when missing)")
	fs.StringVar(&f.eventSource, "event-source", keycloak.DefaultEventSource, "event_source of the events created")
	fs.StringVar(&f.kinds, "kinds", "user,admin", "the kinds of events forwarded: user, admin, or both (comma-separated)")
	fs.DurationVar(&f.interval, "interval", 30*time.Second, "time between polls")
	fs.DurationVar(&f.overlap, "overlap", keycloak.DefaultOverlap, "how far before the newest event forwarded each poll reads again")
	fs.BoolVar(&f.once, "once", false, "poll once and exit")
	return fs
}

// Usage returns the help text.
func (c *KeycloakCommand) Usage() string {
	return usageText(keycloakSynopsis, newKeycloakFlags(&keycloakFlags{}))
}

// Run runs the command with the arguments after "keycloak".
func (c *KeycloakCommand) Run(ctx context.Context, args []string) error {
	var f keycloakFlags
	fs := newKeycloakFlags(&f)
	if err := parseFlags(fs, args, c.Usage(), c.Stdout); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	kinds, err := parseKinds(f.kinds)
	if err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErrorf("unexpected argument %q (see -h)", fs.Arg(0))
	case f.keycloakURL == "":
		return usageErrorf("give Keycloak's URL with --keycloak-url")
	case f.realm == "":
		return usageErrorf("give the realm with --realm")
	case f.clientID == "":
		return usageErrorf("give the client id with --client-id")
	case f.state == "":
		return usageErrorf("give the state file with --state (it keeps the position across restarts)")
	case f.interval <= 0:
		return usageErrorf("--interval %s: give a positive interval", f.interval)
	case f.overlap < 0:
		return usageErrorf("--overlap %s: give a duration of 0 or more", f.overlap)
	case f.eventSource == "":
		return usageErrorf("--event-source: give a non-empty event source")
	case len(f.eventSource) > audittrail.MaxFieldLen:
		return usageErrorf("--event-source is %d bytes long, the limit is %d", len(f.eventSource), audittrail.MaxFieldLen)
	}
	u, err := url.Parse(f.keycloakURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErrorf("--keycloak-url %q: give an http or https URL, such as https://keycloak.example.com", f.keycloakURL)
	}
	if f.keycloakCAFile != "" && u.Scheme != "https" {
		return usageErrorf("--keycloak-ca-file is for a Keycloak served over https, and --keycloak-url %q is not: give its https URL, or no CA file", f.keycloakURL)
	}
	httpClient, err := f.keycloakHTTPClient()
	if err != nil {
		return err
	}
	// The state file names the URL: https://kc/ and https://kc are one.
	f.keycloakURL = strings.TrimRight(f.keycloakURL, "/")
	secret, err := f.secret()
	if err != nil {
		return err
	}
	unlock, err := flock.Lock(f.state + ".lock")
	if errors.Is(err, flock.ErrLocked) {
		return fmt.Errorf("%s: another forwarder is running with this state file", f.state)
	}
	if err != nil {
		return err
	}
	defer unlock()
	state, err := keycloak.LoadState(f.state, f.keycloakURL, f.realm)
	if err != nil {
		return err
	}
	cl, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fw := &keycloak.Forwarder{
		Reader:    &keycloak.Reader{URL: f.keycloakURL, Realm: f.realm, ClientID: f.clientID, ClientSecret: secret, HTTPClient: httpClient},
		Converter: keycloak.Converter{Realm: f.realm, EventSource: f.eventSource},
		Create:    cl.BatchCreateEvents,
		Kinds:     kinds,
		Overlap:   f.overlap,
		State:     state,
		Save:      func(s *keycloak.State) error { return s.Save(f.state) },
		Warn:      func(msg string) { fmt.Fprintf(c.Stderr, "audittrail keycloak: %s\n", msg) },
	}
	var expiry *expiryWatch // nil: user events are not forwarded
	if slices.Contains(kinds, keycloak.KindUser) {
		expiry = &expiryWatch{reader: fw.Reader, state: state, overlap: f.overlap, stderr: c.Stderr}
	}
	c.checkRealm(ctx, fw.Reader, kinds, expiry)
	for {
		counts, err := fw.Poll(ctx)
		err = f.withCAHint(err)
		switch {
		case ctx.Err() != nil:
			return nil // stopped by a signal: what was not acknowledged is read again at the next start
		case err != nil && f.once:
			return err
		case err != nil:
			fmt.Fprintf(c.Stderr, "audittrail keycloak: %v (trying again in %s)\n", err, f.interval)
		}
		expiry.polled(ctx, err == nil)
		if f.once || counts[keycloak.KindUser]+counts[keycloak.KindAdmin] > 0 {
			fmt.Fprintf(c.Stdout, "%s\n", summary(kinds, counts, state))
		}
		if f.once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.interval):
		}
	}
}

// checkRealm warns when the realm does not record a kind of events
// forwarded: there would be nothing to forward, silently. It gives the
// realm's expiration of user events to expiry, which warns when it may
// already have deleted some never read (a forwarder stopped, or failing,
// for longer than the expiration). When the settings cannot be read, the
// first poll reports why.
func (c *KeycloakCommand) checkRealm(ctx context.Context, r *keycloak.Reader, kinds []keycloak.Kind, expiry *expiryWatch) {
	cfg, err := r.EventsConfig(ctx)
	if err != nil {
		return
	}
	if slices.Contains(kinds, keycloak.KindUser) && !cfg.EventsEnabled {
		fmt.Fprintf(c.Stderr, "audittrail keycloak: realm %s does not save user events, so there are none to forward: turn on Realm settings > Events > User events settings > Save events\n", r.Realm)
	}
	if slices.Contains(kinds, keycloak.KindAdmin) && !cfg.AdminEventsEnabled {
		fmt.Fprintf(c.Stderr, "audittrail keycloak: realm %s does not save admin events, so there are none to forward: turn on Realm settings > Events > Admin events settings > Save events\n", r.Realm)
	}
	expiry.started(cfg)
}

// expiryWatch warns when the realm's expiration of user events may have
// deleted some that the forwarder never read: at start, after a failed
// poll, and at the first poll that succeeds after failures, once per
// outage (the start and the failed polls right after it are one). A realm
// read through on every poll loses nothing however idle it is, so the
// measure is the state's ReadUpTo, not the time of the newest event.
//
// Admin events have no such check: their expiration is a realm attribute
// that the view-events role does not let the forwarder read.
type expiryWatch struct {
	reader  *keycloak.Reader
	state   *keycloak.State
	overlap time.Duration
	stderr  io.Writer

	expiration time.Duration // the realm's, as last read; 0: none
	known      bool          // expiration was read
	failing    bool          // the last poll failed
	upTo       time.Time     // the state's ReadUpTo after the last failed poll
	readAny    bool          // and whether it had one
	warned     bool          // warned since the last poll that succeeded
}

// started takes the settings read at start and checks the state the
// forwarder starts from.
func (w *expiryWatch) started(cfg *keycloak.EventsConfig) {
	if w == nil {
		return
	}
	w.expiration, w.known = time.Duration(cfg.EventsExpiration)*time.Second, true
	upTo, ok := w.state.ReadUpTo(keycloak.KindUser, w.overlap)
	w.warned = w.check(upTo, ok, time.Now())
}

// polled checks after a poll. A failed one leaves the state's ReadUpTo
// where the last success put it, and the check after each failure tells
// as soon as the outage has outlasted the expiration. The first success
// after failures checks once more, against the expiration read again (it
// may have been changed meanwhile, or never read yet) and the ReadUpTo of
// the last failure, since this success has moved the state's: the outage
// may have outlasted the expiration after the last failure's check. So the
// settings are read once per outage, not on every poll.
func (w *expiryWatch) polled(ctx context.Context, ok bool) {
	if w == nil {
		return
	}
	switch {
	case !ok:
		w.failing = true
		w.upTo, w.readAny = w.state.ReadUpTo(keycloak.KindUser, w.overlap)
		if !w.known {
			w.readExpiration(ctx)
		}
		if !w.warned {
			w.warned = w.check(w.upTo, w.readAny, time.Now())
		}
	case w.failing:
		w.failing = false
		if !w.warned {
			w.readExpiration(ctx)
			w.check(w.upTo, w.readAny, time.Now())
		}
		w.warned = false
	default:
		w.warned = false
	}
}

func (w *expiryWatch) readExpiration(ctx context.Context) {
	if cfg, err := w.reader.EventsConfig(ctx); err == nil {
		w.expiration, w.known = time.Duration(cfg.EventsExpiration)*time.Second, true
	}
}

// check warns, and reports whether it did, when the realm deletes user
// events older than the expiration and they were read only up to upTo,
// before that (ok false: none read yet, so none missed).
func (w *expiryWatch) check(upTo time.Time, ok bool, now time.Time) bool {
	oldestKept := now.Add(-w.expiration)
	if !ok || w.expiration <= 0 || !upTo.Before(oldestKept) {
		return false
	}
	fmt.Fprintf(w.stderr, "audittrail keycloak: realm %s deletes user events after %s, and the forwarder has read all of them only up to about %s: "+
		"the user events from then to about %s may have been deleted before they were read, and are not forwarded\n",
		w.reader.Realm, w.expiration, upTo.UTC().Format(time.RFC3339), oldestKept.UTC().Format(time.RFC3339))
	return true
}

// summary is the line printed after a poll: the events read and
// acknowledged (read again ones included), and the cursors.
func summary(kinds []keycloak.Kind, counts map[keycloak.Kind]int, s *keycloak.State) string {
	var parts []string
	for _, k := range kinds {
		p := fmt.Sprintf("%d %s events", counts[k], k)
		if c, ok := s.Cursors[k]; ok {
			p += " (up to " + time.UnixMilli(c).UTC().Format(time.RFC3339Nano) + ")"
		}
		parts = append(parts, p)
	}
	return "forwarded " + strings.Join(parts, ", ")
}

func parseKinds(s string) ([]keycloak.Kind, error) {
	var kinds []keycloak.Kind
	for _, p := range strings.Split(s, ",") {
		k := keycloak.Kind(strings.TrimSpace(p))
		switch {
		case k != keycloak.KindUser && k != keycloak.KindAdmin:
			return nil, usageErrorf("--kinds %q: %q is not a kind; give user, admin, or user,admin", s, k)
		case slices.Contains(kinds, k):
			return nil, usageErrorf("--kinds %q: %s is given twice", s, k)
		}
		kinds = append(kinds, k)
	}
	return kinds, nil
}

// keycloakHTTPClient returns the client of the requests to Keycloak: with
// --keycloak-ca-file one that trusts the file's CA certificates instead of
// the system's, as --ca-file does for the audit trail (client.WithTLS),
// since a private CA is the only one that should vouch for that Keycloak;
// else nil, the Reader's default.
func (f *keycloakFlags) keycloakHTTPClient() (*http.Client, error) {
	if f.keycloakCAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(f.keycloakCAFile)
	if err != nil {
		return nil, usageErrorf("--keycloak-ca-file: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, usageErrorf("--keycloak-ca-file %s holds no PEM certificate", f.keycloakCAFile)
	}
	return keycloak.NewHTTPClient(roots), nil
}

// withCAHint adds to err, when Keycloak's certificate is signed by an
// authority not trusted, what to do about it: the Reader's error names the
// authority, but not the flag that a person needs.
func (f *keycloakFlags) withCAHint(err error) error {
	var unknown x509.UnknownAuthorityError
	switch {
	case !errors.As(err, &unknown):
		return err
	case f.keycloakCAFile == "":
		return fmt.Errorf("%w: give the certificate of that authority (PEM) with --keycloak-ca-file or AUDITTRAIL_KEYCLOAK_CA_FILE", err)
	default:
		return fmt.Errorf("%w: the file of --keycloak-ca-file, %s, holds no certificate of it", err, f.keycloakCAFile)
	}
}

// secret returns the client secret: from --client-secret-file, the
// environment or --client-secret, exactly one of them.
func (f *keycloakFlags) secret() (string, error) {
	env := os.Getenv("AUDITTRAIL_KEYCLOAK_CLIENT_SECRET")
	n := 0
	for _, s := range []string{f.clientSecret, f.clientSecretFile, env} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return "", usageErrorf("give the client secret with --client-secret-file, AUDITTRAIL_KEYCLOAK_CLIENT_SECRET or --client-secret")
	case n > 1:
		return "", usageErrorf("give the client secret once: --client-secret-file, AUDITTRAIL_KEYCLOAK_CLIENT_SECRET or --client-secret")
	case f.clientSecretFile != "":
		b, err := os.ReadFile(f.clientSecretFile)
		if err != nil {
			return "", usageErrorf("--client-secret-file: %v", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", usageErrorf("--client-secret-file %s is empty", f.clientSecretFile)
		}
		return s, nil
	case env != "":
		return env, nil
	}
	return f.clientSecret, nil
}
