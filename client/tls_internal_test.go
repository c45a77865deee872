package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeSelfSigned writes a certificate for name and its key as PEM files.
func writeSelfSigned(t *testing.T, certFile, keyFile, name string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClientCertReload: a certificate renewed on disk is presented after
// the next check; a pair that does not load keeps the previous one.
func TestClientCertReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if _, err := newClientCert(certFile, keyFile); err == nil {
		t.Fatal("missing files: no error")
	}
	writeSelfSigned(t, certFile, keyFile, "first")
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
	writeSelfSigned(t, certFile, keyFile, "second")
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
