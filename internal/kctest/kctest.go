// Package kctest runs a real Keycloak for tests: one per test binary,
// started on first use and stopped when the binary exits, since a start
// costs tens of seconds.
//
//	kc := kctest.Shared(t)
//	realm := kc.NewRealm(t) // events on, a forwarder client, a user, a public client
//
// It runs "kc.sh start-dev" of the Keycloak distribution in
// $AUDITTRAIL_KEYCLOAK_HOME (`make keycloak` unpacks it into .cache/) on a
// free port of 127.0.0.1 over HTTP and on another over HTTPS, with the
// in-memory database (--db=dev-mem), the transaction log in a temporary
// directory, and a bootstrap admin of random password
// (KC_BOOTSTRAP_ADMIN_USERNAME/PASSWORD). The HTTPS certificate, for
// 127.0.0.1, is signed by a CA made at the start, which no system trusts:
// Keycloak behind a private CA, in CAFile. start-dev takes the host name
// of each request (hostname-strict=false), so tokens and the admin API work
// over either URL, as long as a token is used over the URL it came from
// (its issuer). The first start of a
// distribution also builds it for those options (Quarkus' augmentation,
// which writes to its lib/): a file lock in the distribution keeps two test
// binaries from doing it at once. A watchdog process stops Keycloak once
// the test binary has exited, however it exits.
//
// When $AUDITTRAIL_KEYCLOAK_HOME is not set the test is skipped, with the
// reason, unless the environment sets AUDITTRAIL_REQUIRE_KEYCLOAK=1 (as
// `make test` does): then it fails.
package kctest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/flock"
)

// Environment variables.
const (
	HomeEnv    = "AUDITTRAIL_KEYCLOAK_HOME"    // the unpacked distribution (its bin/kc.sh)
	RequireEnv = "AUDITTRAIL_REQUIRE_KEYCLOAK" // =1: a missing Keycloak fails the test instead of skipping it
)

// StartTimeout bounds a start, the first one's augmentation included
// (about 1 minute on 2 idle cores, 3.5 minutes on loaded ones).
const StartTimeout = 8 * time.Minute

// Keycloak is a running Keycloak.
type Keycloak struct {
	URL           string // http://127.0.0.1:PORT
	HTTPSURL      string // https://127.0.0.1:PORT, the same Keycloak with a certificate that CAFile's CA signed
	CAFile        string // the private CA's certificate (PEM), which only a client given it trusts
	AdminUser     string // the bootstrap admin of the master realm
	AdminPassword string
	StartTime     time.Duration // how long the start took

	dir   string         // temporary: the log, the transaction log and the certificates
	roots *x509.CertPool // the private CA's
}

var (
	sharedMu  sync.Mutex
	shared    *Keycloak
	sharedErr error
	realmSeq  atomic.Int64
)

// Shared returns the Keycloak of this test binary, starting it on first
// use, or skips the test (fails it with AUDITTRAIL_REQUIRE_KEYCLOAK=1) when
// no distribution is given.
func Shared(t testing.TB) *Keycloak {
	t.Helper()
	home := os.Getenv(HomeEnv)
	if home == "" {
		msg := "Keycloak is not installed: run `make keycloak` and set " + HomeEnv + " to the directory it prints"
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s (%s=1 requires it)", msg, RequireEnv)
		}
		t.Skip(msg + " to run these tests")
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = start(home)
	}
	if sharedErr != nil {
		t.Fatalf("kctest: %v", sharedErr)
	}
	return shared
}

func start(home string) (*Keycloak, error) {
	kcsh := filepath.Join(home, "bin", "kc.sh")
	if _, err := os.Stat(kcsh); err != nil {
		return nil, fmt.Errorf("%s=%s: no Keycloak distribution there (%v)", HomeEnv, home, err)
	}
	if _, err := exec.LookPath("java"); err != nil && os.Getenv("JAVA_HOME") == "" {
		return nil, fmt.Errorf("Keycloak needs Java 17 or later: no java on PATH and no JAVA_HOME")
	}
	dir, err := os.MkdirTemp("", "kctest-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	httpsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	kc := &Keycloak{URL: "http://127.0.0.1:" + strconv.Itoa(port), HTTPSURL: "https://127.0.0.1:" + strconv.Itoa(httpsPort),
		AdminUser: "admin", AdminPassword: randomHex(16), dir: dir}
	certFile, keyFile, err := kc.makeCertificates()
	if err != nil {
		return nil, fmt.Errorf("making the HTTPS certificate: %v", err)
	}
	// The augmentation of a first start rewrites the distribution's lib/.
	unlock, err := lockWait(filepath.Join(home, ".kctest.lock"), StartTimeout)
	if err != nil {
		return nil, err
	}
	defer unlock() //nolint:errcheck
	logFile, err := os.Create(filepath.Join(dir, "keycloak.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// --http-host is the address of both listeners.
	cmd := exec.Command(kcsh, "start-dev", "--db=dev-mem", "--http-host=127.0.0.1", "--http-port="+strconv.Itoa(port),
		"--https-port="+strconv.Itoa(httpsPort), "--https-certificate-file="+certFile, "--https-certificate-key-file="+keyFile)
	cmd.Env = append(os.Environ(),
		"KC_BOOTSTRAP_ADMIN_USERNAME="+kc.AdminUser,
		"KC_BOOTSTRAP_ADMIN_PASSWORD="+kc.AdminPassword,
		// Narayana's object store, else in the distribution's data/.
		"JAVA_OPTS_APPEND=-Dquarkus.transaction-manager.object-store.directory="+filepath.Join(dir, "transaction-logs"),
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: an interrupt of the tests is the watchdog's
	// to handle.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %v", kcsh, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := watch(cmd.Process.Pid, dir); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	deadline := time.After(StartTimeout)
	for {
		if kc.ready() {
			kc.StartTime = time.Since(began)
			return kc, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("Keycloak exited during its start (%v); %s", err, kc.logTail())
		case <-deadline:
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("Keycloak did not answer within %s; %s", StartTimeout, kc.logTail())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ready reports whether Keycloak serves its master realm over HTTP and
// over HTTPS, with the certificate of the private CA.
func (kc *Keycloak) ready() bool {
	httpsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: kc.roots}, DisableKeepAlives: true}}
	for _, get := range []struct {
		client *http.Client
		url    string
	}{{http.DefaultClient, kc.URL}, {httpsClient, kc.HTTPSURL}} {
		resp, err := get.client.Get(get.url + "/realms/master/.well-known/openid-configuration")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

// makeCertificates makes the private CA (written to CAFile) and Keycloak's
// HTTPS certificate for 127.0.0.1, signed by it, and returns the files of
// the certificate and its key (PKCS #8, which Keycloak reads). They are
// valid from a day before to a week after now: a test binary's Keycloak
// lives no longer.
func (kc *Keycloak) makeCertificates() (certFile, keyFile string, err error) {
	notBefore, notAfter := time.Now().Add(-24*time.Hour), time.Now().Add(7*24*time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kctest private CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: notBefore, NotAfter: notAfter}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	kc.roots = x509.NewCertPool()
	kc.roots.AddCert(ca)
	kc.CAFile = filepath.Join(kc.dir, "ca.crt")
	certFile, keyFile = filepath.Join(kc.dir, "keycloak.crt"), filepath.Join(kc.dir, "keycloak.key")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{kc.CAFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", der}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return "", "", err
		}
	}
	return certFile, keyFile, nil
}

func (kc *Keycloak) logTail() string {
	b, _ := os.ReadFile(filepath.Join(kc.dir, "keycloak.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "Keycloak's log (tail):\n" + string(b)
}

// watch starts a process that, once this process has exited, stops
// Keycloak (pid) and removes dir.
func watch(pid int, dir string) error {
	script := `while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -TERM "$2" 2>/dev/null
for i in $(seq 1 100); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$2" 2>/dev/null
rm -rf "$3"`
	cmd := exec.Command("/bin/sh", "-c", script, "kctest-watchdog", strconv.Itoa(os.Getpid()), strconv.Itoa(pid), dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the watchdog: %v", err)
	}
	go cmd.Wait() //nolint:errcheck // reaps it if it ends first
	return nil
}

// lockWait takes the file lock at path, waiting up to timeout for another
// process to release it.
func lockWait(path string, timeout time.Duration) (func() error, error) {
	deadline := time.Now().Add(timeout)
	for {
		unlock, err := flock.Lock(path)
		if err == nil {
			return unlock, nil
		}
		if !errors.Is(err, flock.ErrLocked) || time.Now().After(deadline) {
			return nil, fmt.Errorf("locking %s: %v", path, err)
		}
		time.Sleep(time.Second)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Realm is a realm made for one test: user and admin events on, a
// confidential client whose service account may read them (view-events),
// a user with a password, and a public client allowing the user's password
// logins (direct access grants).
type Realm struct {
	kc           *Keycloak
	Name         string
	ClientID     string // the confidential client (client credentials)
	ClientSecret string
	PublicClient string // the public client of the user's logins
	Username     string
	Password     string
	UserID       string // the user's id: the sub of its tokens
}

// NewRealm makes a new realm on kc (a name of its own per call).
func (kc *Keycloak) NewRealm(t testing.TB) *Realm {
	t.Helper()
	r := &Realm{
		kc:           kc,
		Name:         fmt.Sprintf("test%d", realmSeq.Add(1)),
		ClientID:     "audittrail-forwarder",
		ClientSecret: randomHex(16),
		PublicClient: "app",
		Username:     "alice",
		Password:     randomHex(8),
	}
	kc.Admin(t, http.MethodPost, "/admin/realms", map[string]any{
		"realm": r.Name, "enabled": true,
		"eventsEnabled": true, "adminEventsEnabled": true, "adminEventsDetailsEnabled": true,
	}, nil)
	base := "/admin/realms/" + r.Name
	kc.Admin(t, http.MethodPost, base+"/clients", map[string]any{
		"clientId": r.ClientID, "enabled": true, "publicClient": false, "secret": r.ClientSecret,
		"serviceAccountsEnabled": true, "standardFlowEnabled": false, "directAccessGrantsEnabled": false,
	}, nil)
	kc.Admin(t, http.MethodPost, base+"/clients", map[string]any{
		"clientId": r.PublicClient, "enabled": true, "publicClient": true, "directAccessGrantsEnabled": true,
	}, nil)
	r.UserID = r.CreateUser(t, r.Username, r.Password)
	var clients []struct{ ID string }
	kc.Admin(t, http.MethodGet, base+"/clients?clientId="+r.ClientID, nil, &clients)
	var sa struct{ ID string }
	kc.Admin(t, http.MethodGet, base+"/clients/"+clients[0].ID+"/service-account-user", nil, &sa)
	kc.Admin(t, http.MethodGet, base+"/clients?clientId=realm-management", nil, &clients)
	var role map[string]any
	kc.Admin(t, http.MethodGet, base+"/clients/"+clients[0].ID+"/roles/view-events", nil, &role)
	kc.Admin(t, http.MethodPost, base+"/users/"+sa.ID+"/role-mappings/clients/"+clients[0].ID, []any{role}, nil)
	return r
}

// CreateUser creates an enabled user with a password (an admin event
// CREATE of resource type USER) and returns its id.
func (r *Realm) CreateUser(t testing.TB, username, password string) string {
	t.Helper()
	loc := r.kc.Admin(t, http.MethodPost, "/admin/realms/"+r.Name+"/users", map[string]any{
		"username": username, "enabled": true, "email": username + "@example.com", "emailVerified": true,
		"firstName": username, "lastName": "Test",
		"credentials": []any{map[string]any{"type": "password", "value": password, "temporary": false}},
	}, nil)
	return loc[strings.LastIndexByte(loc, '/')+1:]
}

// Login makes a password login of username to the public client (a LOGIN
// event, or a LOGIN_ERROR when the password is wrong) and returns the HTTP
// status of the token endpoint's answer.
func (r *Realm) Login(t testing.TB, username, password string) int {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {r.PublicClient}, "username": {username}, "password": {password}}
	resp, err := http.PostForm(r.kc.URL+"/realms/"+r.Name+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// adminToken returns an access token of the bootstrap admin (they last a
// minute: one per call).
func (kc *Keycloak) adminToken(t testing.TB) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {kc.AdminUser}, "password": {kc.AdminPassword}}
	resp, err := http.PostForm(kc.URL+"/realms/master/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("kctest: admin token: HTTP %d: %s", resp.StatusCode, body)
	}
	return tok.AccessToken
}

// Admin calls the admin REST API as the bootstrap admin: body (if not nil)
// is sent as JSON, the answer decoded into out (if not nil). It returns the
// Location header of the answer (a created resource's URL) and fails the
// test on a status of 300 or more.
func (kc *Keycloak) Admin(t testing.TB, method, path string, body, out any) string {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, kc.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+kc.adminToken(t))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("kctest: %s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("kctest: %s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.Header.Get("Location")
}
