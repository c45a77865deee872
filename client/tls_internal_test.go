package client

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/testpki"
)

// TestClientCertReload: a certificate renewed on disk is presented after
// the next check; a pair that does not load keeps the previous one.
func TestClientCertReload(t *testing.T) {
	ca := testpki.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeCert := func(name string) {
		c, k := ca.Issue(1, name, true)
		if err := errors.Join(os.WriteFile(certFile, c, 0o600), os.WriteFile(keyFile, k, 0o600)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := newClientCert(certFile, keyFile); err == nil {
		t.Fatal("missing files: no error")
	}
	writeCert("first")
	c, err := newClientCert(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	name := func() string {
		t.Helper()
		got, err := c.get(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(got.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if n := name(); n != "first" {
		t.Fatalf("presented %q, want first", n)
	}
	writeCert("second")
	if n := name(); n != "first" {
		t.Errorf("within a second of the last check: %q, want first (checked at most once a second)", n)
	}
	c.checked = c.checked.Add(-2 * time.Second)
	if n := name(); n != "second" {
		t.Errorf("after renewal: %q, want second", n)
	}
	// A key that does not match (the certificate rewritten, the key not
	// yet): the previous pair stays.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.checked = c.checked.Add(-2 * time.Second)
	if n := name(); n != "second" {
		t.Errorf("with a broken key file: %q, want second kept", n)
	}
}
